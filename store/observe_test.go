package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"sluice/backpressure"
)

// recorder is an Observer that writes every event down as "queue event".
type recorder struct {
	mu     sync.Mutex
	asked  map[string]int
	events []string
}

type queueRecorder struct {
	r    *recorder
	name string
}

func (r *recorder) Queue(name string) QueueObserver {
	r.mu.Lock()
	r.asked[name]++
	r.mu.Unlock()
	return &queueRecorder{r, name}
}

func (q *queueRecorder) add(format string, args ...any) {
	q.r.mu.Lock()
	q.r.events = append(q.r.events, q.name+" "+fmt.Sprintf(format, args...))
	q.r.mu.Unlock()
}

func (q *queueRecorder) Pushed()          { q.add("pushed") }
func (q *queueRecorder) Reserved(w int64) { q.add("reserved waited=%d", w) }
func (q *queueRecorder) Acked(ran int64)  { q.add("acked ran=%d", ran) }
func (q *queueRecorder) Failed()          { q.add("failed") }
func (q *queueRecorder) Retried()         { q.add("retried") }
func (q *queueRecorder) Expired()         { q.add("expired") }
func (q *queueRecorder) Cancelled()       { q.add("cancelled") }

func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := strings.Join(r.events, "; ")
	r.events = nil
	return out
}

func TestObserverSeesEachOutcome(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{asked: map[string]int{}}
	f.push("early h") // before the observer: not counted
	f.s.SetObserver(rec)
	if got := rec.take(); got != "" {
		t.Fatalf("installing the observer reported %q", got)
	}

	f.now += 5
	f.push("q h id=a max=2 backoff=10")
	f.now += 7
	tok := f.reserveOne("q")
	f.now += 3
	if _, err := f.s.Start(f.now, tok); err != nil {
		t.Fatal(err)
	}
	f.now += 20
	if _, err := f.s.Fail(f.now, tok, FailOptions{}); err != nil {
		t.Fatal(err)
	}
	f.now += 10 // the retry is due now
	tok = f.reserveOne("q")
	f.now += 4
	if err := f.s.Ack(f.now, tok); err != nil { // acked without JOBSTART: ran since the reservation
		t.Fatal(err)
	}
	want := "q pushed; q reserved waited=7; q retried; q reserved waited=0; q acked ran=4"
	if got := rec.take(); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}

	f.push("q h id=b")
	f.reserveOne("q")
	f.now += 30_000 + 1 // the lease (30 s) runs out at the next operation
	f.push("other h id=c")
	tok = f.reserveOne("q")
	if _, err := f.s.Fail(f.now, tok, FailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Retry(f.now, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Cancel(f.now, "b"); err != nil {
		t.Fatal(err)
	}
	want = "q pushed; q reserved waited=0; q expired; other pushed; q reserved waited=1; q failed; q retried; q cancelled"
	if got := rec.take(); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	if rec.asked["q"] != 1 || rec.asked["other"] != 1 || rec.asked["early"] != 0 {
		t.Fatalf("Queue asked %v, want once per queue that had events", rec.asked)
	}
	f.check()
}

// reserveOne reserves one job from queue with a 30 s lease and returns its token.
func (f *fixture) reserveOne(queue string) string {
	f.t.Helper()
	rs, err := f.s.Reserve(f.now, ReserveOptions{Worker: "w", Lease: 30_000, Queues: []string{queue}})
	if err != nil || len(rs) != 1 {
		f.t.Fatalf("reserve %s: %v %v", queue, rs, err)
	}
	return rs[0].Token
}

func TestMaxBytes(t *testing.T) {
	cfg := DefaultConfig()
	// Three jobs, their queue and its one lane.
	cfg.MaxBytes = 3*JobBytes(100, 1, 0) + QueueBytes("q") + LaneOverhead
	cfg.Retention = 1000
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1_000_000)
	payload := make([]byte, 100)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", ID: id, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	if used := s.Memory().Used(); used != cfg.MaxBytes {
		t.Fatalf("memory used = %d, want %d", used, cfg.MaxBytes)
	}
	_, err = s.Push(now, PushOptions{Queue: "q", Handler: "h", ID: "d", Payload: payload})
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "maxmemory") {
		t.Fatalf("push over the limit: %v", err)
	}
	if _, ok := s.Get(now, "d"); ok || s.Len() != 3 {
		t.Fatalf("a refused push left a job behind (len %d)", s.Len())
	}
	// Reads and acks still work; an acked job is held until retention drops it.
	rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	if err != nil || len(rs) != 1 {
		t.Fatal(rs, err)
	}
	if err := s.Ack(now, rs[0].Token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", Payload: payload}); !errors.Is(err, ErrFull) {
		t.Fatalf("push while the acked job is retained: %v", err)
	}
	now += 1000 // retention ends: the acked job's bytes are freed
	if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", ID: "e", Payload: payload}); err != nil {
		t.Fatalf("push after retention freed memory: %v", err)
	}
	// A last error counts too.
	rs, _ = s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	if _, err := s.Fail(now, rs[0].Token, FailOptions{Error: "boom", HasError: true}); err != nil {
		t.Fatal(err)
	}
	if want := 2*JobBytes(100, 1, 0) + JobBytes(100, 1, 4); s.Bytes() != want {
		t.Fatalf("Bytes = %d, want %d", s.Bytes(), want)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	s.Flush(now)
	if s.Bytes() != 0 {
		t.Fatalf("Bytes after FLUSHALL = %d", s.Bytes())
	}
}

// --maxmemory counts state besides jobs: pausing queues that do not exist
// and setting new policies stop with FULL at the limit and change nothing;
// resuming such a queue gives its memory back; changing a policy that
// exists is never refused.
func TestMaxBytesCountsQueuesAndPolicies(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytes = 100_000
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	j := &memJournal{}
	s.SetJournal(j)
	now := int64(1000)
	paused := 0
	for ; paused < 10_000; paused++ {
		err := s.Pause(now, "q"+strconv.Itoa(paused))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	queues := func(from, to int) (n int64) {
		for i := from; i < to; i++ {
			n += QueueBytes("q" + strconv.Itoa(i))
		}
		return n
	}
	m := s.Memory()
	if paused == 10_000 || m.Queues != queues(0, paused) || m.Used() > cfg.MaxBytes {
		t.Fatalf("%d pauses of unknown queues went through, memory %+v", paused, m)
	}
	records := len(j.recs)
	if records != paused {
		t.Fatalf("%d records for %d pauses: the refused one was logged", records, paused)
	}
	if st, _ := s.QueueStats(now, "q"+strconv.Itoa(paused)); st.Paused {
		t.Fatal("a refused pause paused the queue")
	}
	// The room left under the limit takes a few policies, not a queue.
	policies := 0
	for ; policies < 100; policies++ {
		err := s.SetConcurrency(now, "k"+strconv.Itoa(policies), 3)
		if errors.Is(err, ErrFull) {
			if !strings.Contains(err.Error(), "maxmemory") {
				t.Fatal(err)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if policies == 100 || s.Memory().Used() > cfg.MaxBytes {
		t.Fatalf("%d policies set, memory %+v", policies, s.Memory())
	}
	if err := s.SetRateLimit(now, "newkey", 3, 1000); !errors.Is(err, ErrFull) {
		t.Fatalf("a new rate limit past the limit: %v", err)
	}
	if _, ok, _ := s.GetPolicy(now, backpressure.RateLimit, "newkey"); ok || len(j.recs) != records+policies {
		t.Fatal("a refused policy was kept or logged")
	}
	if err := s.SetConcurrency(now, "k0", 5); err != nil {
		t.Fatalf("changing an existing policy at the limit: %v", err)
	}
	if err := s.Pause(now, "q0"); err != nil {
		t.Fatalf("pausing a paused queue again: %v", err)
	}
	// Resuming an empty queue forgets it, and its memory with it.
	for i := range 10 {
		if err := s.Resume(now, "q"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Memory().Queues; got != queues(10, paused) {
		t.Fatalf("queues take %d after 10 resumes, want %d", got, queues(10, paused))
	}
	if err := s.SetRateLimit(now, "newkey", 3, 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
