package store

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

func after(queue string, anyway bool, ids ...string) PushOptions {
	return PushOptions{Queue: queue, Handler: "h", Payload: []byte("p"), After: ids, AfterAnyway: anyway}
}

func depStore(t *testing.T) (*Store, *memJournal) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Shards = 8
	s, err := New(cfg, NewSeqGenerator())
	must(t, err)
	j := &memJournal{}
	s.SetJournal(j)
	return s, j
}

func getJob(t *testing.T, s *Store, now int64, id string) Job {
	t.Helper()
	j, ok := s.Get(now, id)
	if !ok {
		t.Fatalf("job %s is missing", id)
	}
	return j
}

// checkReplays replays j's records and loads a dump of s: both give s's
// state.
func checkReplays(t *testing.T, s *Store, j *memJournal, now int64) {
	t.Helper()
	checkInvariants(t, s)
	want := dump(t, s, now)
	cfg := s.cfg
	r := replayAll(t, cfg, j.recs, "replay")
	checkInvariants(t, r)
	if d := sameDump(dump(t, r, now), want); d != "" {
		t.Fatalf("replayed state differs: %s", d)
	}
	l := replayAll(t, cfg, want, "load")
	checkInvariants(t, l)
	if d := sameDump(dump(t, l, now), want); d != "" {
		t.Fatalf("loaded state differs: %s", d)
	}
}

// A job waits, in no lane, until every dependency succeeded, then is
// queued at once; JOBGET names what it waits for.
func TestAfterWaitsForEveryDependency(t *testing.T) {
	s, jr := depStore(t)
	a, _ := s.Push(1000, PushOptions{Queue: "a", Handler: "h", Payload: []byte("a")})
	b, _ := s.Push(1000, PushOptions{Queue: "b", Handler: "h", Payload: []byte("b")})
	d, err := s.Push(1001, after("c", false, a, b))
	must(t, err)
	j := getJob(t, s, 1001, d)
	eq(t, "state", j.State, Waiting)
	eq(t, "blocked_by", j.BlockedBy, "after:"+a)
	eq(t, "after", j.After, []string{a, b})
	eq(t, "waiting", s.WaitingJobs(), int64(1))
	if rs, _ := s.Reserve(1002, ReserveOptions{Worker: "w", Lease: 100, Queues: []string{"c"}}); len(rs) != 0 {
		t.Fatalf("reserved a waiting job: %v", rs)
	}
	ra := reserveOne(t, s, 1003, "a")
	must(t, s.Ack(1004, ra.Token))
	j = getJob(t, s, 1004, d)
	eq(t, "state after a", j.State, Waiting)
	eq(t, "blocked_by after a", j.BlockedBy, "after:"+b)
	eq(t, "after after a", j.After, []string{b})
	checkReplays(t, s, jr, 1004)

	rb := reserveOne(t, s, 1005, "b")
	must(t, s.Ack(1006, rb.Token))
	j = getJob(t, s, 1006, d)
	eq(t, "state after b", j.State, Queued)
	eq(t, "run_at", j.RunAt, int64(1006))
	eq(t, "blocked_by", j.BlockedBy, "")
	eq(t, "waiting", s.WaitingJobs(), int64(0))
	eq(t, "dependency memory", s.Memory().Deps, int64(0))
	rd := reserveOne(t, s, 1007, "c")
	eq(t, "reserved", rd.ID, d)
	checkReplays(t, s, jr, 1007)
}

// A dependency that ends without success cancels its waiters, and theirs
// in turn; ANYWAY waiters run anyway.
func TestAfterFailureCascades(t *testing.T) {
	s, jr := depStore(t)
	a, _ := s.Push(1000, PushOptions{Queue: "a", Handler: "h", Payload: []byte("a")})
	d, err := s.Push(1001, after("b", false, a))
	must(t, err)
	e, err := s.Push(1001, after("c", false, d))
	must(t, err)
	f, err := s.Push(1001, after("c", true, a))
	must(t, err)
	g, err := s.Push(1001, after("d", true, e))
	must(t, err)
	ra := reserveOne(t, s, 1002, "a")
	_, err = s.Fail(1003, ra.Token, FailOptions{NoRetry: true})
	must(t, err)
	for _, tc := range []struct {
		id    string
		state State
		err   string
	}{
		{d, Cancelled, "dependency " + a + " failed"},
		{e, Cancelled, "dependency " + d + " cancelled"},
		{f, Queued, ""},
		{g, Queued, ""},
	} {
		j := getJob(t, s, 1003, tc.id)
		eq(t, tc.id+" state", j.State, tc.state)
		eq(t, tc.id+" error", j.LastError, tc.err)
		eq(t, tc.id+" updated", j.UpdatedAt, int64(1003))
	}
	eq(t, "waiting", s.WaitingJobs(), int64(0))
	checkReplays(t, s, jr, 1003)
}

// Bad dependencies are refused and change nothing; met ones count as met.
func TestAfterRefusals(t *testing.T) {
	s, _ := depStore(t)
	a, _ := s.Push(1000, PushOptions{Queue: "a", Handler: "h", Payload: []byte("a")})
	c, _ := s.Push(1000, PushOptions{Queue: "a", Handler: "h", Payload: []byte("c")})
	must2 := func(_ bool, err error) { must(t, err) }
	must2(s.Cancel(1000, c))
	many := make([]string, MaxAfter+1)
	for i := range many {
		many[i] = fmt.Sprint("m", i)
	}
	for _, tc := range []struct {
		p    PushOptions
		want string
	}{
		{after("q", false, "nope"), "ERR dependency nope: no such job"},
		{after("q", false, a, "nope"), "ERR dependency nope: no such job"},
		{PushOptions{Queue: "q", Handler: "h", ID: "me", After: []string{"me"}}, "ERR a job cannot wait for itself"},
		{after("q", false, a, a), "ERR dependency " + a + " is named twice"},
		{after("q", false, many...), "ERR a job waits for at most 64 jobs"},
		{after("q", false, c), "DEPFAILED dependency " + c + " is cancelled (push with ANYWAY to run anyway)"},
		{PushOptions{Queue: "q", Handler: "h", AfterAnyway: true}, "ERR ANYWAY needs AFTER"},
	} {
		_, err := s.Push(1001, tc.p)
		if err == nil || err.Error() != tc.want {
			t.Fatalf("push %v: %v, want %s", tc.p.After, err, tc.want)
		}
	}
	if _, err := s.Push(1001, after("q", false, c)); !errors.Is(err, ErrDepFailed) {
		t.Fatalf("not ErrDepFailed: %v", err)
	}
	eq(t, "jobs", s.Len(), int64(2))
	eq(t, "waiting", s.WaitingJobs(), int64(0))
	// A cancelled dependency with ANYWAY, and a succeeded one: met.
	ra := reserveOne(t, s, 1002, "a")
	must(t, s.Ack(1003, ra.Token))
	d, err := s.Push(1004, after("q", true, a, c))
	must(t, err)
	eq(t, "state", getJob(t, s, 1004, d).State, Queued)
	checkInvariants(t, s)
}

// A waiting job whose run time is still ahead is scheduled when its
// dependencies are met; one cancelled or expired while waiting is not
// touched by them later.
func TestAfterScheduleCancelExpire(t *testing.T) {
	s, jr := depStore(t)
	a, _ := s.Push(1000, PushOptions{Queue: "a", Handler: "h", Payload: []byte("a")})
	p := after("b", false, a)
	p.RunAt = 5000
	d, err := s.Push(1000, p)
	must(t, err)
	x, err := s.Push(1000, after("b", false, a))
	must(t, err)
	p = after("c", false, a)
	p.ExpiresIn = 100
	y, err := s.Push(1000, p)
	must(t, err)
	ok, err := s.Cancel(1001, x)
	must(t, err)
	eq(t, "cancelled", ok, true)
	eq(t, "x after", getJob(t, s, 1001, x).After, []string(nil))
	s.Tick(1100)
	eq(t, "y", getJob(t, s, 1100, y).State, Expired)
	eq(t, "waiting", s.WaitingJobs(), int64(1))
	ra := reserveOne(t, s, 1200, "a")
	must(t, s.Ack(1201, ra.Token))
	j := getJob(t, s, 1201, d)
	eq(t, "d", j.State, Scheduled)
	eq(t, "d run_at", j.RunAt, int64(5000))
	eq(t, "x", getJob(t, s, 1201, x).State, Cancelled)
	checkReplays(t, s, jr, 1201)
	s.Tick(5000)
	eq(t, "d due", getJob(t, s, 5000, d).State, Queued)
	checkReplays(t, s, jr, 5000)
}

// The waiting state is JOBSCAN's, and a flush forgets the dependencies.
func TestAfterScanAndFlush(t *testing.T) {
	s, _ := depStore(t)
	a, _ := s.Push(1000, PushOptions{Queue: "a", Handler: "h", Payload: []byte("a")})
	d, _ := s.Push(1000, after("a", false, a))
	_, ids, err := s.ScanJobs("0", ScanFilter{State: Waiting}, 10, 1000)
	must(t, err)
	if len(ids) != 1 || ids[0] != d {
		t.Fatalf("scan waiting: %v", ids)
	}
	if s.Memory().Deps <= 0 {
		t.Fatal("dependencies' memory is not counted")
	}
	must(t, s.Flush(1001))
	eq(t, "waiting", s.WaitingJobs(), int64(0))
	eq(t, "memory", s.Memory().Deps, int64(0))
	if !strings.HasPrefix(Waiting.String(), "waiting") {
		t.Fatal(Waiting.String())
	}
}

// Pushes after jobs that end meanwhile, on other goroutines and shards:
// no waiter is left waiting for a job that ended, and the log replays to
// the same state.
func TestAfterConcurrentEnds(t *testing.T) {
	s, jr := depStore(t)
	const n = 200
	deps := make([]string, n)
	for i := range deps {
		deps[i], _ = s.Push(1000, PushOptions{Queue: fmt.Sprint("d", i%5), Handler: "h", Payload: []byte("d")})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var waiters []string
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				p := after(fmt.Sprint("w", (g+i)%3), i%5 == 0, deps[(i*7+g)%n], deps[(i*13+g+1)%n])
				if p.After[0] == p.After[1] {
					continue
				}
				id, err := s.Push(1001, p)
				if err != nil && !errors.Is(err, ErrDepFailed) {
					t.Error(err)
					return
				}
				if err == nil {
					mu.Lock()
					waiters = append(waiters, id)
					mu.Unlock()
				}
			}
		}(g)
	}
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < n; k++ {
				rs, err := s.Reserve(1001, ReserveOptions{Worker: "w", Lease: 100000,
					Queues: []string{"d0", "d1", "d2", "d3", "d4"}})
				if err != nil || len(rs) == 0 {
					return
				}
				if k%4 == g {
					s.Fail(1001, rs[0].Token, FailOptions{NoRetry: true})
				} else {
					s.Ack(1001, rs[0].Token)
				}
			}
		}(g)
	}
	wg.Wait()
	for _, id := range waiters {
		j := getJob(t, s, 1001, id)
		if j.State == Waiting {
			for _, d := range j.After {
				if dj := getJob(t, s, 1001, d); dj.State.Terminal() {
					t.Fatalf("%s waits for %s, which is %s", id, d, dj.State)
				}
			}
		}
	}
	// Terminal jobs of one instant on different shards are filed into
	// retention in the order their locks ran, which the log need not
	// keep (as for any concurrent operations): compare them as sets.
	checkInvariants(t, s)
	want := retainedAsSet(dump(t, s, 1001))
	r := replayAll(t, s.cfg, jr.recs, "replay")
	checkInvariants(t, r)
	if d := sameDump(retainedAsSet(dump(t, r, 1001)), want); d != "" {
		t.Fatalf("replayed state differs: %s", d)
	}
}

func retainedAsSet(recs []Record) []Record {
	for i := range recs {
		if r := &recs[i]; r.Op == OpSnapRetained {
			type e struct {
				id string
				at int64
			}
			es := make([]e, len(r.RetainedIDs))
			for k := range es {
				es[k] = e{r.RetainedIDs[k], r.Times[k]}
			}
			sort.Slice(es, func(a, b int) bool { return es[a].id < es[b].id })
			for k := range es {
				r.RetainedIDs[k], r.Times[k] = es[k].id, es[k].at
			}
		}
	}
	return recs
}
