package blocking

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/store"
)

// jobWaitFixture is a store whose end hook feeds a JobWaits, with n jobs
// reserved (their tokens in toks).
func jobWaitFixture(t *testing.T, n int) (*store.Store, *JobWaits, []store.Reservation) {
	t.Helper()
	st, err := store.New(store.DefaultConfig(), store.NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	r := NewJobWaits(st, func() int64 { return 10 })
	st.SetEndHook(r.End)
	for i := 0; i < n; i++ {
		if _, err := st.Push(1, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := st.Reserve(2, store.ReserveOptions{Worker: "w", Lease: 60_000, Count: n, Queues: []string{"q"}})
	if err != nil || len(rs) != n {
		t.Fatal(rs, err)
	}
	return st, r, rs
}

// countingParker is a chanParker that says when its owner first parks.
type countingParker struct {
	*chanParker
	parked chan struct{}
	once   sync.Once
}

func (p *countingParker) Park(deadline time.Time) bool {
	p.once.Do(func() { close(p.parked) })
	return p.chanParker.Park(deadline)
}

type waitResult struct {
	out Outcome
	ok  bool
	err error
}

// startWait runs a Wait on id and returns its answer's channel once the
// waiter is parked; closing gone makes its client leave.
func startWait(t *testing.T, r *JobWaits, id string, timeout time.Duration, gone chan struct{}) <-chan waitResult {
	t.Helper()
	p := &countingParker{chanParker: newParker(gone), parked: make(chan struct{})}
	ch := make(chan waitResult, 1)
	go func() {
		out, ok, err := r.Wait(id, timeout, true, func() (Parker, func()) { return p, func() {} })
		ch <- waitResult{out, ok, err}
	}()
	select {
	case <-p.parked:
	case w := <-ch:
		t.Fatalf("the wait on %s ended before parking: %+v", id, w)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter never parked")
	}
	return ch
}

// TestJobWaitWokenByTheEndNotByPolling: many waiters on one job and one on
// another stay parked, with no wake-up at all, while nothing ends; an ack
// answers exactly its job's waiters with its result, at once.
func TestJobWaitWokenByTheEndNotByPolling(t *testing.T) {
	st, r, rs := jobWaitFixture(t, 2)
	var many []<-chan waitResult
	for i := 0; i < 5; i++ {
		many = append(many, startWait(t, r, rs[0].ID, 0, make(chan struct{})))
	}
	other := startWait(t, r, rs[1].ID, 0, make(chan struct{}))
	if n := r.Waiting(); n != 6 {
		t.Fatalf("Waiting = %d, want 6", n)
	}
	time.Sleep(100 * time.Millisecond) // nothing ends meanwhile
	if n := r.Wakeups(); n != 0 {
		t.Fatalf("%d wake-ups while nothing ended: the waiters poll", n)
	}
	var hooked atomic.Int64
	r.SetAnswerHook(func(time.Duration) { hooked.Add(1) })
	if err := st.AckResult(3, rs[0].Token, []byte("42")); err != nil {
		t.Fatal(err)
	}
	for _, ch := range many {
		select {
		case w := <-ch:
			if !w.ok || w.err != nil || w.out.State != store.Succeeded || string(w.out.Result) != "42" ||
				w.out.ID != rs[0].ID || w.out.EndedAt.IsZero() {
				t.Fatalf("answer %+v", w)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter was not answered when its job ended")
		}
	}
	select {
	case w := <-other:
		t.Fatalf("the other job's waiter was answered: %+v", w)
	case <-time.After(20 * time.Millisecond):
	}
	if n := r.Waiting(); n != 1 || hooked.Load() != 5 {
		t.Fatalf("Waiting = %d, answers timed = %d; want 1 and 5", n, hooked.Load())
	}
	if _, err := st.Fail(4, rs[1].Token, store.FailOptions{Error: "boom", HasError: true, NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	if w := <-other; !w.ok || w.out.State != store.Failed || w.out.Error != "boom" || w.out.Result != nil {
		t.Fatalf("failed job's answer %+v", w)
	}
	if counts, _ := r.Latencies(); sum(counts[:]) != 6 {
		t.Fatalf("latency histogram holds %d answers, want 6", sum(counts[:]))
	}
}

func sum(xs []uint64) (n uint64) {
	for _, x := range xs {
		n += x
	}
	return n
}

// TestJobWaitAtOnce: a terminal job answers at once, an unknown one
// NOJOB, and a job that has not ended answers nothing when the wait may
// not block (inside EXEC); none of them stays listed.
func TestJobWaitAtOnce(t *testing.T) {
	st, r, rs := jobWaitFixture(t, 2)
	if err := st.AckResult(3, rs[0].Token, []byte("r")); err != nil {
		t.Fatal(err)
	}
	blocked := func() (Parker, func()) { t.Fatal("blocked"); return nil, nil }
	out, ok, err := r.Wait(rs[0].ID, 0, true, blocked)
	if !ok || err != nil || string(out.Result) != "r" || !out.EndedAt.IsZero() {
		t.Fatalf("terminal: %+v %v %v", out, ok, err)
	}
	if _, _, err := r.Wait("nope", 0, true, blocked); !errors.Is(err, store.ErrNoJob) {
		t.Fatalf("unknown: %v", err)
	}
	if _, ok, err := r.Wait(rs[1].ID, 0, false, blocked); ok || err != nil {
		t.Fatalf("may not block: %v %v", ok, err)
	}
	if n := r.Waiting(); n != 0 || len(r.jobs) != 0 {
		t.Fatalf("%d waiters left listed", n)
	}
}

// TestJobWaitForgetsWhoLeaves: a timeout or a client that hangs up ends
// the wait with no answer and unlists the waiter; a flush answers NOJOB;
// Close answers nothing.
func TestJobWaitForgetsWhoLeaves(t *testing.T) {
	st, r, rs := jobWaitFixture(t, 3)
	timed := startWait(t, r, rs[0].ID, 30*time.Millisecond, make(chan struct{}))
	gone := make(chan struct{})
	leaving := startWait(t, r, rs[0].ID, 0, gone)
	close(gone)
	for _, ch := range []<-chan waitResult{timed, leaving} {
		if w := <-ch; w.ok || w.err != nil {
			t.Fatalf("answer %+v", w)
		}
	}
	if n := r.Waiting(); n != 0 || len(r.jobs) != 0 {
		t.Fatalf("%d waiters (%d jobs) kept after they left", n, len(r.jobs))
	}
	flushed := startWait(t, r, rs[1].ID, 0, make(chan struct{}))
	if err := st.Flush(5); err != nil {
		t.Fatal(err)
	}
	if w := <-flushed; !errors.Is(w.err, store.ErrNoJob) {
		t.Fatalf("after flush: %+v", w)
	}
	id, _ := st.Push(6, store.PushOptions{Queue: "q", Handler: "h"})
	closed := startWait(t, r, id, 0, make(chan struct{}))
	r.Close()
	if w := <-closed; w.ok || w.err != nil {
		t.Fatalf("after close: %+v", w)
	}
	if _, ok, err := r.Wait(id, 0, true, noBlock); ok || err != nil {
		t.Fatalf("a wait after close: %v %v", ok, err)
	}
	if n := r.Waiting(); n != 0 {
		t.Fatalf("Waiting = %d after close", n)
	}
}

// BenchmarkJobWaitEndNobodyWaits is what every job's end costs while no
// client waits in JOBWAIT: the store calls End for each.
func BenchmarkJobWaitEndNobodyWaits(b *testing.B) {
	r := NewJobWaits(nil, func() int64 { return 0 })
	e := store.Ended{ID: "job", State: store.Succeeded}
	b.ReportAllocs()
	for b.Loop() {
		r.End(e)
	}
}

// BenchmarkJobWaitEndAnswers is a job's end answering one parked waiter,
// while 1,000 others wait on other jobs: listing, the end and the wake.
func BenchmarkJobWaitEndAnswers(b *testing.B) {
	r := NewJobWaits(nil, func() int64 { return 0 })
	for i := 0; i < 1000; i++ {
		r.mu.Lock()
		r.listLocked(&jobWaiter{id: "other" + strconv.Itoa(i)})
		r.mu.Unlock()
	}
	e := store.Ended{ID: "job", State: store.Succeeded}
	p := newParker(make(chan struct{}))
	b.ReportAllocs()
	for b.Loop() {
		w := &jobWaiter{id: "job", p: p}
		r.mu.Lock()
		r.listLocked(w)
		r.mu.Unlock()
		r.End(e)
		<-p.wake
	}
}
