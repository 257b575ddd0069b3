package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"sluice/backpressure"
)

// TestBreakerLifecycle: failures within the window open a handler's
// breaker; its jobs stay queued with blocked_by saying so, the store's
// next deadline is the cooldown's end and Tick then notifies the queue;
// half-open lets exactly `probes` jobs go; their success closes it.
func TestBreakerLifecycle(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var notified []string
	f.s.SetNotify(func(q string) { mu.Lock(); notified = append(notified, q); mu.Unlock() })
	must(t, f.s.SetBreaker(f.now, "handler:h", 2, 1000, 500, 2))
	var ids []string
	for range 6 {
		ids = append(ids, f.push("q h"))
	}
	other := f.push("q2 other")
	_, toks := f.reserve(2, nil, "q")
	f.now += 10
	_, err := f.s.Fail(f.now, toks[0], FailOptions{NoRetry: true})
	must(t, err)
	p, _, _ := f.s.GetPolicy(f.now, backpressure.Breaker, "handler:h")
	eq(t, "after one failure", fmt.Sprintln(p.State, p.Active), "closed 1\n")
	_, err = f.s.Fail(f.now, toks[1], FailOptions{}) // a retried failure counts too
	must(t, err)
	until := f.now + 500
	p, ok, err := f.s.GetPolicy(f.now, backpressure.Breaker, "handler:h")
	if err != nil || !ok || p.State != "open" || p.NextFreeAt != until || !p.Blocking || p.Waiting != 4 {
		t.Fatalf("POLICYGET BREAKER after two failures = %+v %v %v", p, ok, err)
	}
	got, _ := f.reserve(5, nil, "q", "q2")
	eq(t, "reserved while open", got, []string{other})
	j, _ := f.s.Get(f.now, ids[2])
	eq(t, "blocked_by", j.BlockedBy, fmt.Sprintf("breaker:handler:h open until %d", until))
	eq(t, "next deadline", f.s.NextDeadline(), until)

	f.now = until - 1
	f.s.Tick(f.now)
	none, _ := f.one("q")
	eq(t, "reserved before the cooldown's end", none, "")
	mu.Lock()
	notified = nil
	mu.Unlock()
	f.now = until
	f.s.Tick(f.now)
	mu.Lock()
	eq(t, "notified at the cooldown's end", notified, []string{"q"})
	mu.Unlock()
	probes, ptoks := f.reserve(5, nil, "q")
	eq(t, "probes", len(probes), 2)
	p, _, _ = f.s.GetPolicy(f.now, backpressure.Breaker, "handler:h")
	eq(t, "half-open", fmt.Sprintln(p.State, p.ProbesOut, p.Blocking), "half-open 2 true\n")
	j, _ = f.s.Get(f.now, ids[5])
	eq(t, "blocked_by half-open", j.BlockedBy, "breaker:handler:h half-open probes 2/2")
	must(t, f.s.Ack(f.now, ptoks[0]))
	none, _ = f.one("q")
	eq(t, "a probe's place is not reused", none, "")
	must(t, f.s.Ack(f.now, ptoks[1]))
	p, _, _ = f.s.GetPolicy(f.now, backpressure.Breaker, "handler:h")
	eq(t, "closed after the probes", fmt.Sprintln(p.State, p.Active, p.ProbesOut, p.ProbesOK), "closed 0 0 0\n")
	got, _ = f.reserve(5, nil, "q")
	eq(t, "reserved once closed", len(got), 2) // the retried job waits for its backoff
	f.check()
}

// TestBreakerProbeOutcomes: a probe that fails, or whose lease expires,
// opens the breaker again for a new cooldown; a probe given back or
// cancelled frees its place; failures outside the window do not add up.
func TestBreakerProbeOutcomes(t *testing.T) {
	f := newFixture(t)
	must(t, f.s.SetBreaker(f.now, "key:api", 2, 100, 50, 1))
	for range 8 {
		f.push("q h ck=api")
	}
	fail := func() {
		t.Helper()
		_, tok := f.one("q")
		if tok == "" {
			t.Fatal("nothing reserved")
		}
		_, err := f.s.Fail(f.now, tok, FailOptions{NoRetry: true})
		must(t, err)
	}
	fail()
	f.now += 100 // the first failure leaves the window
	fail()
	p, _, _ := f.s.GetPolicy(f.now, backpressure.Breaker, "key:api")
	eq(t, "two failures 100 ms apart", fmt.Sprintln(p.State, p.Active), "closed 1\n")
	f.now += 10
	fail()
	p, _, _ = f.s.GetPolicy(f.now, backpressure.Breaker, "key:api")
	eq(t, "two within the window", p.State, "open")

	f.now += 50
	_, tok := f.one("q")
	must(t, f.s.Release(f.now, tok, 0)) // given back: its place frees
	id2, tok := f.one("q")
	if id2 == "" {
		t.Fatal("no probe after a released one")
	}
	if _, err := f.s.Cancel(f.now, id2); err != nil { // cancelled: likewise
		t.Fatal(err)
	}
	_, tok = f.one("q")
	if tok == "" {
		t.Fatal("no probe after a cancelled one")
	}
	_, err := f.s.Fail(f.now, tok, FailOptions{NoRetry: true})
	must(t, err)
	p, _, _ = f.s.GetPolicy(f.now, backpressure.Breaker, "key:api")
	eq(t, "a failed probe reopens", fmt.Sprintln(p.State, p.NextFreeAt), fmt.Sprintln("open", f.now+50))

	f.now += 50
	_, tok = f.one("q")
	if tok == "" {
		t.Fatal("no probe")
	}
	// The probe's lease (1000 ms) runs out: a failure.
	f.now += 1000
	f.s.Tick(f.now)
	p, _, _ = f.s.GetPolicy(f.now, backpressure.Breaker, "key:api")
	eq(t, "an expired probe reopens", fmt.Sprintln(p.State, p.NextFreeAt), fmt.Sprintln("open", f.now+50))
	f.check()

	// POLICYDEL puts the parked lanes back at once.
	ok, err := f.s.DeletePolicy(f.now, backpressure.Breaker, "key:api")
	if err != nil || !ok {
		t.Fatalf("POLICYDEL BREAKER = %v %v", ok, err)
	}
	if id, _ := f.one("q"); id == "" {
		t.Fatal("nothing reserved after the breaker was deleted")
	}
	f.check()
}

// TestBreakerBadInput: malformed breakers are refused and change nothing.
func TestBreakerBadInput(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		key                     string
		fails, win, cool, probe int64
	}{
		{"h", 1, 1, 1, 1}, {"handler:", 1, 1, 1, 1}, {"nope:x", 1, 1, 1, 1}, {"key:t:*", 1, 1, 1, 1},
		{"handler:h", 0, 1, 1, 1}, {"handler:h", MaxBreakerFailures + 1, 1, 1, 1}, {"handler:h", 1, 0, 1, 1},
		{"handler:h", 1, 1, 0, 1}, {"handler:h", 1, 1, 1, 0}, {"handler:h", 1, 1, 1, MaxBreakerProbes + 1},
	} {
		if err := f.s.SetBreaker(f.now, c.key, c.fails, c.win, c.cool, c.probe); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetBreaker(%+v) = %v, want INVALID", c, err)
		}
	}
	if ps := f.s.Policies(f.now); len(ps) != 0 {
		t.Fatalf("policies after refusals: %+v", ps)
	}
	if _, _, err := f.s.GetPolicy(f.now, backpressure.Breaker, "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("POLICYGET BREAKER x = %v", err)
	}
}

// TestBreakerMaxMemory: a breaker counts toward --maxmemory with its
// whole window and probes; one that does not fit is refused.
func TestBreakerMaxMemory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytes = BreakerBytes("handler:h", 100, 1) + 10
	s, _ := New(cfg, NewSeqGenerator())
	must(t, s.SetBreaker(1, "handler:h", 100, 10, 10, 1))
	eq(t, "counted", s.Memory().Policies, BreakerBytes("handler:h", 100, 1))
	if err := s.SetBreaker(1, "handler:g", 1, 10, 10, 1); !errors.Is(err, ErrFull) {
		t.Fatalf("a second breaker past maxmemory: %v", err)
	}
	if err := s.SetBreaker(1, "handler:h", 200, 10, 10, 1); !errors.Is(err, ErrFull) {
		t.Fatalf("a larger window past maxmemory: %v", err)
	}
	must(t, s.SetBreaker(1, "handler:h", 5, 10, 10, 1)) // smaller: always allowed
	eq(t, "recounted", s.Memory().Policies, BreakerBytes("handler:h", 5, 1))
	if _, err := s.DeletePolicy(1, backpressure.Breaker, "handler:h"); err != nil {
		t.Fatal(err)
	}
	eq(t, "freed", s.Memory().Policies, int64(0))
	must(t, s.CheckInvariants())
}

// TestBreakerConcurrentReplay: workers on queues of several shards fail,
// ack and let leases run out under one handler's breaker at once; the
// journal, replayed, rebuilds the same breaker and jobs, and so does the
// dump, loaded. On the way, every reservation the log holds is one the
// replayed breaker admits at that point: the log's order is the order in
// which the live store changed the breaker.
func TestBreakerConcurrentReplay(t *testing.T) {
	for round := range 20 {
		cfg := DefaultConfig()
		cfg.Shards = 8
		live, _ := New(cfg, NewSeqGenerator())
		j := &lockedJournal{}
		live.SetJournal(j)
		now := int64(1_000_000)
		must(t, live.SetBreaker(now, "handler:h", 4, 30, 5, 3))
		runBreakerWorkload(live, &now, round)
		now += 5
		live.Tick(now)
		must(t, live.CheckInvariants())
		want := breakerDump(t, live, now)
		if !slices.ContainsFunc(j.recs, func(r Record) bool { return r.Op == OpExpire }) {
			t.Fatal("no lease ran out: the test does not cover expiries")
		}
		replayed := replayChecked(t, cfg, j.recs)
		replayed.Tick(now)
		if diff := sameDump(breakerDump(t, replayed, now), want); diff != "" {
			t.Fatalf("round %d: replayed state differs: %s", round, diff)
		}
		loaded := replayAll(t, cfg, dump(t, live, now), "load")
		if diff := sameDump(breakerDump(t, loaded, now), want); diff != "" {
			t.Fatalf("round %d: loaded state differs: %s", round, diff)
		}
	}
}

// replayChecked replays recs, checking before each reservation that no
// breaker refuses it.
func replayChecked(t *testing.T, cfg Config, recs []Record) *Store {
	t.Helper()
	s, _ := New(cfg, NewSeqGenerator())
	s.BeginReplay()
	reserves := 0
	for i := range recs {
		r := &recs[i]
		if r.Op == OpReserve {
			reserves++
			l := s.index.get(r.ID).lane()
			s.brk.mu.Lock()
			b := brkBlocking(r.Now, s.brk.over(l))
			s.brk.mu.Unlock()
			if b != nil {
				t.Fatalf("record %d: %s was reserved at %d, which breaker %s refuses then (%s)", i, r.ID, r.Now, b.key, b.reason(r.Now))
			}
		}
		if err := s.Replay(r); err != nil {
			t.Fatalf("record %d of %d (%v %s): %v", i, len(recs), r.Op, r.ID, err)
		}
	}
	s.EndReplay()
	if reserves == 0 {
		t.Fatal("nothing reserved: the test does not cover breakers")
	}
	return s
}

// runBreakerWorkload has 4 workers push, reserve, fail, ack and let leases
// run out on queues of their own, all under breaker handler:h, from a
// shared clock.
func runBreakerWorkload(s *Store, now *int64, seed int) {
	var wg sync.WaitGroup
	var clock sync.Mutex
	tick := func() int64 { clock.Lock(); defer clock.Unlock(); *now++; return *now }
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
			q := fmt.Sprintf("q%d", w)
			for range 300 {
				at := tick()
				s.Push(at, PushOptions{Queue: q, Handler: "h", MaxAttempts: 2, Backoff: 1})
				rs, _ := s.Reserve(at, ReserveOptions{Worker: q, Lease: int64(1 + rng.IntN(20)), Queues: []string{q}})
				for _, r := range rs {
					switch rng.IntN(5) {
					case 0:
						s.Fail(at, r.Token, FailOptions{})
					case 1: // its lease runs out
					default:
						s.Ack(at, r.Token)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// breakerDump is s's dump without the order of retention and of expired
// tokens, which concurrent operations may file in another order than they
// log them (no breaker depends on it).
func breakerDump(t *testing.T, s *Store, now int64) []Record {
	return slices.DeleteFunc(dump(t, s, now), func(r Record) bool {
		return r.Op == OpSnapRetained || r.Op == OpSnapExpired
	})
}

// lockedJournal is memJournal for concurrent appends.
type lockedJournal struct {
	mu   sync.Mutex
	recs []Record
}

func (m *lockedJournal) Append(r Record) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return uint64(len(m.recs))
}
func (m *lockedJournal) Wait(uint64) error { return nil }
func (m *lockedJournal) Err() error        { return nil }

// TestBreakerBadRecords: a breaker record a live store could not have
// written is refused by replay, which changes nothing.
func TestBreakerBadRecords(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	s.BeginReplay()
	for _, r := range []Record{
		{Op: OpBreaker, Now: 1, PolicyKey: "h", Limit: 1, Period: 1, Cooldown: 1, Probes: 1},
		{Op: OpBreaker, Now: 1, PolicyKey: "handler:h", Limit: 1, Period: 0, Cooldown: 1, Probes: 1},
		{Op: OpBreaker, Now: 1, PolicyKey: "handler:h", Limit: MaxBreakerFailures + 1, Period: 1, Cooldown: 1, Probes: 1},
		{Op: OpSnapBreaker, PolicyKey: "handler:h", Limit: 2, Period: 1, Cooldown: 1, Probes: 1, Times: []int64{1, 2}},
		{Op: OpSnapBreaker, PolicyKey: "handler:h", Limit: 2, Period: 1, Cooldown: 1, Probes: 1, Until: 5, ProbeIDs: []string{"a", "b"}},
		{Op: OpSnapBreaker, PolicyKey: "handler:h", Limit: 2, Period: 1, Cooldown: 1, Probes: 1, ProbesOK: 1},
		{Op: OpSnapBreaker, PolicyKey: "handler:h", Period: 1, Cooldown: 1, Probes: 1},
	} {
		if err := s.Replay(&r); !errors.Is(err, ErrReplay) {
			t.Errorf("%+v: %v, want a replay error", r, err)
		}
	}
	s.EndReplay()
	if ps := s.Policies(1); len(ps) != 0 {
		t.Fatalf("policies after refused records: %+v", ps)
	}
	must(t, s.CheckInvariants())
}

// Failures logged out of their times' order (concurrent commands) still
// leave the window by their times: a failure older than the window does
// not count, wherever it sits among the others.
func TestBreakerWindowDropsEveryStaleFailure(t *testing.T) {
	f := newFixture(t)
	must(t, f.s.SetBreaker(f.now, "handler:h", 3, 100, 500, 1))
	for range 3 {
		f.push("q h")
	}
	_, toks := f.reserve(3, nil, "q")
	t0 := f.now
	_, err := f.s.Fail(t0+55, toks[0], FailOptions{NoRetry: true})
	must(t, err)
	_, err = f.s.Fail(t0+50, toks[1], FailOptions{NoRetry: true}) // logged after, its time earlier
	must(t, err)
	f.now = t0 + 153 // (53, 153]: only the failure at 55 is in the window
	_, err = f.s.Fail(f.now, toks[2], FailOptions{NoRetry: true})
	must(t, err)
	p, _, _ := f.s.GetPolicy(f.now, backpressure.Breaker, "handler:h")
	eq(t, "two failures in the window", fmt.Sprintln(p.State, p.Active), "closed 2\n")
}
