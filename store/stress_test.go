package store_test

// A concurrent stress test: goroutines hammer one store with mixed
// operations on shared queues and keys, under a shared fake clock, and the
// store must come out consistent: its own invariant check passes, no pushed
// job is lost, the public counters agree with the jobs, and once every
// pause and policy is lifted and time has passed, everything drains.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"sluice/backpressure"
	"sluice/store"
)

// tokenPool shares recent tokens between goroutines, so that they race on
// each other's reservations.
type tokenPool struct {
	mu   sync.Mutex // protects toks and next
	toks [64]string
	next int
}

func (p *tokenPool) add(tok string) {
	p.mu.Lock()
	p.toks[p.next%len(p.toks)] = tok
	p.next++
	p.mu.Unlock()
}

func (p *tokenPool) get(r *rand.Rand) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.toks[r.IntN(len(p.toks))]
}

var stressQueues = []string{"s1", "s2", "s3"}

// stressRun is what the concurrent phase leaves for the checks.
type stressRun struct {
	st       *store.Store
	now      int64
	pushed   map[string]string // id → queue, of every successful push
	perQueue map[string]int64  // successful pushes per queue
}

// runStress runs workers goroutines of opsEach mixed operations against one
// store, on shared queues and keys, under a shared advancing clock. With
// drops false, cfg must keep every job for the whole run, and the workers
// then also check that every job they pushed stays readable.
func runStress(t *testing.T, cfg store.Config, workers, opsEach int, drops bool) stressRun {
	t.Helper()
	queues := stressQueues
	handlers := []string{"h1", "h2"}

	var clock atomic.Int64
	clock.Store(1_000_000)
	st, err := store.New(cfg, store.NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	// c1's policy never changes, so its active count may never exceed 2.
	if err := st.SetConcurrency(clock.Load(), "c1", 2); err != nil {
		t.Fatal(err)
	}
	if err := st.SetRateLimit(clock.Load(), "r1", 5, 20); err != nil {
		t.Fatal(err)
	}

	var (
		pool     tokenPool
		mu       sync.Mutex            // protects pushed, perQueue
		pushed   = map[string]string{} // id → queue
		perQueue = map[string]int64{}
		failures = make(chan string, workers)
	)
	// How many operations of each kind succeeded: a stress test whose
	// operations all bounce off stale tokens tests little.
	var okOps [8]atomic.Int64
	const (
		okReserved = iota
		okStart
		okTouch
		okAck
		okFail
		okRelease
		okCancel
		okRetry
	)
	tally := func(i int, err error) error {
		if err == nil {
			okOps[i].Add(1)
		}
		return err
	}
	expect := func(err error, allowed ...error) error {
		if err == nil {
			return nil
		}
		for _, a := range allowed {
			if errors.Is(err, a) {
				return nil
			}
		}
		return err
	}

	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []string // this goroutine's recent tokens
			var ids []string
			fail := func(format string, args ...any) {
				select {
				case failures <- fmt.Sprintf("worker %d: ", w) + fmt.Sprintf(format, args...):
				default:
				}
			}
			tok := func() string {
				if len(mine) > 0 && r.IntN(4) > 0 {
					return mine[r.IntN(len(mine))]
				}
				return pool.get(r)
			}
			anyID := func() string {
				if len(ids) == 0 || r.IntN(5) == 0 {
					return fmt.Sprintf("w%d-%d", r.IntN(workers), r.IntN(opsEach))
				}
				return ids[r.IntN(len(ids))]
			}
			for i := 0; i < opsEach; i++ {
				if r.IntN(4) == 0 {
					clock.Add(int64(1 + r.IntN(4)))
				}
				if r.IntN(500) == 0 {
					clock.Add(150)
				}
				now := clock.Load()
				switch c := r.IntN(100); {
				case c < 25:
					p := store.PushOptions{
						Queue:    queues[r.IntN(len(queues))],
						Handler:  handlers[r.IntN(len(handlers))],
						Payload:  []byte("x"),
						Priority: int64(r.IntN(3)),
					}
					if r.IntN(2) == 0 {
						p.ID = fmt.Sprintf("w%d-%d", w, i)
						if r.IntN(10) == 0 {
							p.ID = fmt.Sprintf("w%d-%d", r.IntN(workers), r.IntN(i+1))
						}
					}
					if r.IntN(3) == 0 {
						p.ConcurrencyKey = []string{"c1", "c2"}[r.IntN(2)]
					}
					if r.IntN(3) == 0 {
						p.RateLimitKey = []string{"r1", "r2"}[r.IntN(2)]
					}
					if r.IntN(8) == 0 {
						p.RunAt = now + int64(1+r.IntN(50))
					}
					p.MaxAttempts = int64(1 + r.IntN(3))
					p.Backoff = int64(1 + r.IntN(20))
					id, err := st.Push(now, p)
					if err != nil {
						if expect(err, store.ErrDupJob) != nil || p.ID == "" {
							fail("Push(%+v): %v", p, err)
						}
						break
					}
					ids = append(ids, id)
					mu.Lock()
					if q, dup := pushed[id]; dup && !drops {
						fail("Push returned id %s twice (queues %s, %s)", id, q, p.Queue)
					}
					pushed[id] = p.Queue
					perQueue[p.Queue]++
					mu.Unlock()
				case c < 45:
					ro := store.ReserveOptions{
						Worker: fmt.Sprintf("w%d", w),
						Lease:  int64(5 + r.IntN(200)),
						Count:  1 + r.IntN(3),
						Queues: []string{queues[r.IntN(3)], queues[r.IntN(3)]},
					}
					if r.IntN(4) == 0 {
						ro.Handlers = []string{handlers[r.IntN(2)]}
					}
					res, err := st.Reserve(now, ro)
					if err != nil {
						fail("Reserve: %v", err)
						break
					}
					okOps[okReserved].Add(int64(len(res)))
					if len(res) > ro.Count {
						fail("Reserve COUNT %d gave %d", ro.Count, len(res))
					}
					for _, x := range res {
						if x.Queue != ro.Queues[0] && x.Queue != ro.Queues[1] {
							fail("Reserve from %v gave a job of %s", ro.Queues, x.Queue)
						}
						if ro.Handlers != nil && x.Handler != ro.Handlers[0] {
							fail("Reserve for %v gave a job of handler %s", ro.Handlers, x.Handler)
						}
						mine = append(mine, x.Token)
						pool.add(x.Token)
					}
					if len(mine) > 16 {
						mine = mine[len(mine)-16:]
					}
				case c < 53:
					if _, err := st.Start(now, tok()); expect(tally(okStart, err), store.ErrNoReservation, store.ErrExpired, store.ErrWrongState) != nil {
						fail("Start: %v", err)
					}
				case c < 57:
					if _, err := st.Touch(now, tok(), int64(10+r.IntN(100))); expect(tally(okTouch, err), store.ErrNoReservation, store.ErrExpired, store.ErrWrongState) != nil {
						fail("Touch: %v", err)
					}
				case c < 67:
					if err := st.Ack(now, tok()); expect(tally(okAck, err), store.ErrNoReservation, store.ErrExpired, store.ErrWrongState) != nil {
						fail("Ack: %v", err)
					}
				case c < 73:
					o := store.FailOptions{HasError: true, Error: "e"}
					switch r.IntN(3) {
					case 0:
						o.HasRetry, o.RetryIn = true, int64(r.IntN(30))
					case 1:
						o.NoRetry = true
					}
					if _, err := st.Fail(now, tok(), o); expect(tally(okFail, err), store.ErrNoReservation, store.ErrExpired, store.ErrWrongState) != nil {
						fail("Fail: %v", err)
					}
				case c < 77:
					if err := st.Release(now, tok(), int64(r.IntN(2)*r.IntN(30))); expect(tally(okRelease, err), store.ErrNoReservation, store.ErrExpired, store.ErrWrongState) != nil {
						fail("Release: %v", err)
					}
				case c < 80:
					ok, err := st.Cancel(now, anyID())
					if expect(err, store.ErrNoJob) != nil {
						fail("Cancel: %v", err)
					}
					if ok {
						okOps[okCancel].Add(1)
					}
				case c < 83:
					if err := st.Retry(now, anyID()); expect(tally(okRetry, err), store.ErrNoJob, store.ErrWrongState) != nil {
						fail("Retry: %v", err)
					}
				case c < 87:
					if len(ids) > 0 {
						id := ids[r.IntN(len(ids))]
						if j, ok := st.Get(now, id); (!ok && !drops) || (ok && j.ID != id) {
							fail("Get(%s) of a pushed job: %v %+v", id, ok, j)
						}
					}
				case c < 90:
					qs, err := st.QueueStats(now, queues[r.IntN(3)])
					if err != nil || qs.Queued < 0 || qs.Reserved < 0 || qs.Running < 0 || qs.BlockedConcurrency+qs.BlockedRateLimit > qs.Queued {
						fail("QueueStats: %+v", qs)
					}
				case c < 92:
					if p, ok, err := st.GetPolicy(now, backpressure.Concurrency, "c1"); err != nil || !ok || p.Active > 2 {
						fail("c1 policy: %v %+v", ok, p)
					}
				case c < 93:
					st.Peek(now, queues[r.IntN(3)], 5)
				case c < 94:
					if r.IntN(4) == 0 {
						st.Purge(now, queues[r.IntN(3)])
					}
				case c < 95:
					q := queues[r.IntN(3)]
					if r.IntN(2) == 0 {
						_ = st.Pause(now, q)
					} else {
						_ = st.Resume(now, q)
					}
				case c < 97:
					switch r.IntN(4) {
					case 0:
						_ = st.SetConcurrency(now, "c2", int64(1+r.IntN(3)))
					case 1:
						st.DeletePolicy(now, backpressure.Concurrency, "c2")
					case 2:
						_ = st.SetRateLimit(now, "r2", int64(1+r.IntN(3)), int64(1+r.IntN(30)))
					case 3:
						st.DeletePolicy(now, backpressure.RateLimit, "r2")
					}
				case c < 98:
					st.Policies(now)
					st.Queues(now)
				default:
					st.Tick(now)
				}
			}
		}(w)
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	t.Logf("%d workers × %d operations in %v, %d jobs pushed", workers, opsEach, time.Since(start), len(pushed))
	names := []string{"reserved", "started", "touched", "acked", "failed", "released", "cancelled", "retried"}
	var summary []string
	for i, name := range names {
		n := okOps[i].Load()
		summary = append(summary, fmt.Sprintf("%s %d", name, n))
		if n < 5 {
			t.Errorf("only %d successful %s operations: the mix does not exercise the store", n, name)
		}
	}
	t.Log(strings.Join(summary, ", "))
	if t.Failed() {
		t.FailNow()
	}
	if err := st.CheckInvariants(); err != nil {
		t.Fatalf("CheckInvariants after the concurrent phase: %v", err)
	}
	return stressRun{st: st, now: clock.Load(), pushed: pushed, perQueue: perQueue}
}

// drainAll lifts every pause and policy, lets every lease, delay and
// back-off run out, and reserves and acks until nothing is left; it returns
// the time it ends at.
func drainAll(t *testing.T, st *store.Store, now int64, limit int) int64 {
	t.Helper()
	queues := stressQueues
	for _, q := range queues {
		if err := st.Resume(now, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range st.Policies(now) {
		if ok, err := st.DeletePolicy(now, p.Kind, p.Key); !ok || err != nil {
			t.Fatalf("DeletePolicy(%v, %s) of a listed policy: %v %v", p.Kind, p.Key, ok, err)
		}
	}
	if ps := st.Policies(now); len(ps) != 0 {
		t.Fatalf("policies left after deleting all: %+v", ps)
	}
	now += 2 * 60 * 60 * 1000 // past every lease, delay and the one-hour back-off cap
	for rounds := 0; ; rounds++ {
		res, err := st.Reserve(now, store.ReserveOptions{Worker: "drain", Lease: 1000, Count: 50, Queues: queues})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) == 0 {
			break
		}
		if rounds > limit {
			t.Fatal("drain does not end")
		}
		for _, x := range res {
			if err := st.Ack(now, x.Token); err != nil {
				t.Fatalf("Ack(%s) while draining: %v", x.Token, err)
			}
		}
	}
	if err := st.CheckInvariants(); err != nil {
		t.Fatalf("CheckInvariants after draining: %v", err)
	}
	return now
}

// TestStress keeps every job (long retention), so it can demand that none
// is lost and that every counter matches the jobs exactly.
func TestStress(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.Shards = 4
	cfg.Retention = 48 * 60 * 60 * 1000 // nothing is dropped during the test
	cfg.ExpiredTokens = 500
	r := runStress(t, cfg, 8, 15000, false)
	st, pushed, perQueue, queues := r.st, r.pushed, r.perQueue, stressQueues
	checkAccounts(t, st, r.now, pushed, perQueue, queues)

	now := drainAll(t, st, r.now, len(pushed))
	for id := range pushed {
		j, ok := st.Get(now, id)
		if !ok {
			t.Errorf("job %s lost after draining", id)
			continue
		}
		if !j.State.Terminal() {
			t.Errorf("job %s is %s after draining: %+v", id, j.State, j)
		}
	}
	checkAccounts(t, st, now, pushed, perQueue, queues)
	for _, q := range queues {
		qs, err := st.QueueStats(now, q)
		if err != nil {
			t.Errorf("QueueStats(%s): %v", q, err)
			continue
		}
		want := qs // drained: nothing left in a live state
		want.Queued, want.Scheduled, want.Reserved, want.Running, want.RetryPending, want.Status = 0, 0, 0, 0, 0, "idle"
		if d := cmp.Diff(want, qs); d != "" {
			t.Errorf("queue %s not drained (-want +got):\n%s", q, d)
		}
	}
}

// TestStressRetention runs the same mix with a short retention and a small
// MaxRetained, so that drops race with everything else. Which terminal jobs
// are gone cannot be predicted, but what is held must add up, nothing
// non-terminal may vanish, and in the end everything is dropped.
func TestStressRetention(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.Shards = 2
	cfg.Retention = 10_000
	cfg.MaxRetained = 2000
	cfg.FailedRetention = 10_000
	cfg.MaxFailed = 100 // the failed jobs' own bound, checked with the others'
	cfg.ExpiredTokens = 50
	r := runStress(t, cfg, 8, 8000, true)
	st := r.st

	check := func(now int64, wantTerminal bool) {
		t.Helper()
		var held, terminal int64
		states := map[string]*[16]int64{}
		for _, q := range stressQueues {
			states[q] = new([16]int64)
		}
		for id := range r.pushed {
			j, ok := st.Get(now, id)
			if !ok {
				continue
			}
			held++
			states[j.Queue][j.State]++
			if j.State.Terminal() {
				terminal++
			} else if wantTerminal {
				t.Errorf("job %s is %s after draining", id, j.State)
			}
		}
		if n := st.Len(); n != held {
			t.Errorf("Len = %d, but %d of the pushed jobs are held", n, held)
		}
		if terminal > int64(cfg.MaxRetained+cfg.MaxFailed) {
			t.Errorf("%d terminal jobs held, MaxRetained + MaxFailed is %d", terminal, cfg.MaxRetained+cfg.MaxFailed)
		}
		for _, q := range stressQueues {
			qs, err := st.QueueStats(now, q)
			c := states[q]
			if err != nil || qs.Queued != c[store.Queued] || qs.Scheduled != c[store.Scheduled] ||
				qs.Reserved != c[store.Reserved] || qs.Running != c[store.Running] ||
				qs.RetryPending != c[store.RetryPending] || qs.Failed != c[store.Failed] {
				t.Errorf("QueueStats(%s) = %+v, %v; the held jobs' states say %v", q, qs, err, c[:store.Cancelled+1])
			}
		}
	}
	check(r.now, false)
	// Non-terminal jobs are never dropped: everything not terminal now
	// must still be there after draining (then terminal).
	var live []string
	for id := range r.pushed {
		if j, ok := st.Get(r.now, id); ok && !j.State.Terminal() {
			live = append(live, id)
		}
	}
	now := drainAll(t, st, r.now, len(r.pushed))
	check(now, true)
	for _, id := range live {
		j, ok := st.Get(now, id)
		if !ok && len(live) <= cfg.MaxRetained {
			t.Errorf("job %s, live before draining, was lost", id)
		} else if ok && !j.State.Terminal() {
			t.Errorf("job %s is %s after draining", id, j.State)
		}
	}

	// Past the retention everything is dropped, and the queues vanish with
	// their counters.
	now += cfg.Retention
	if qs := st.Queues(now); len(qs) != 0 {
		t.Errorf("Queues after every job was dropped: %q", qs)
	}
	if n := st.Len(); n != 0 {
		t.Errorf("Len after every job was dropped: %d", n)
	}
	for _, q := range stressQueues {
		qs, err := st.QueueStats(now, q)
		if err != nil {
			t.Errorf("QueueStats(%s) of a vanished queue: %v", q, err)
		} else if d := cmp.Diff(store.QueueStats{Queue: q, Status: "idle"}, qs); d != "" {
			t.Errorf("QueueStats(%s) of a vanished queue (-want +got):\n%s", q, d)
		}
	}
	if err := st.CheckInvariants(); err != nil {
		t.Fatalf("CheckInvariants after everything was dropped: %v", err)
	}
}

// checkAccounts verifies through the public API that every pushed job is
// held exactly once and that the counters agree with the jobs.
func checkAccounts(t *testing.T, st *store.Store, now int64, pushed map[string]string, perQueue map[string]int64, queues []string) {
	t.Helper()
	type tally struct{ states [16]int64 }
	byQueue := map[string]*tally{}
	active := map[string]int64{}
	for _, q := range queues {
		byQueue[q] = &tally{}
	}
	for id, q := range pushed {
		j, ok := st.Get(now, id)
		if !ok {
			t.Errorf("job %s (queue %s) lost", id, q)
			continue
		}
		if j.Queue != q {
			t.Errorf("job %s moved from queue %s to %s", id, q, j.Queue)
			continue
		}
		byQueue[q].states[j.State]++
		if (j.State == store.Reserved || j.State == store.Running) && j.ConcurrencyKey != "" {
			active[j.ConcurrencyKey]++
		}
	}
	if got := st.Len(); got != int64(len(pushed)) {
		t.Errorf("Len = %d, want %d pushed jobs (nothing is old enough to be dropped)", got, len(pushed))
	}
	for _, q := range queues {
		qs, err := st.QueueStats(now, q)
		if err != nil {
			t.Fatal(err)
		}
		c := byQueue[q].states
		want := store.QueueStats{
			Queued: c[store.Queued], Scheduled: c[store.Scheduled], Reserved: c[store.Reserved],
			Running: c[store.Running], RetryPending: c[store.RetryPending], Failed: c[store.Failed],
		}
		if qs.Queued != want.Queued || qs.Scheduled != want.Scheduled || qs.Reserved != want.Reserved ||
			qs.Running != want.Running || qs.RetryPending != want.RetryPending || qs.Failed != want.Failed {
			t.Errorf("QueueStats(%s) = %+v, but the jobs' states say %+v", q, qs, want)
		}
		if qs.PushedTotal != perQueue[q] {
			t.Errorf("QueueStats(%s).PushedTotal = %d, want %d", q, qs.PushedTotal, perQueue[q])
		}
		if qs.SucceededTotal != c[store.Succeeded] {
			t.Errorf("QueueStats(%s).SucceededTotal = %d, but %d jobs succeeded", q, qs.SucceededTotal, c[store.Succeeded])
		}
		if qs.FailedTotal < c[store.Failed] {
			t.Errorf("QueueStats(%s).FailedTotal = %d, but %d jobs are failed", q, qs.FailedTotal, c[store.Failed])
		}
		if n, err := st.QueueLen(now, q); err != nil || n != want.Queued {
			t.Errorf("QueueLen(%s) = %d, want %d", q, n, want.Queued)
		}
	}
	for _, p := range st.Policies(now) {
		if p.Kind == backpressure.Concurrency && p.Active != active[p.Key] {
			t.Errorf("policy %s: active %d, but %d jobs with the key are reserved or running", p.Key, p.Active, active[p.Key])
		}
	}
}
