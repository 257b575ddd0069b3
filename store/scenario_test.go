package store

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"sluice/backpressure"
)

// fixture is a store on a fake clock with deterministic ids and tokens.
type fixture struct {
	t   *testing.T
	s   *Store
	now int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Shards = 4
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, s: s, now: 1_000_000}
}

func (f *fixture) check() {
	f.t.Helper()
	if err := f.s.CheckInvariants(); err != nil {
		f.t.Fatalf("invariants: %v", err)
	}
}

// push takes "queue handler [key=value ...]" with keys id, prio, ck, rk,
// ck+, rk+ (further keys), delay, max, backoff.
func (f *fixture) push(spec string) string {
	f.t.Helper()
	fs := strings.Fields(spec)
	p := PushOptions{Queue: fs[0], Handler: fs[1], Payload: []byte("p")}
	for _, kv := range fs[2:] {
		k, v, _ := strings.Cut(kv, "=")
		var n int64
		fmt.Sscan(v, &n)
		switch k {
		case "id":
			p.ID = v
		case "prio":
			p.Priority = n
		case "ck":
			p.ConcurrencyKey = v
		case "rk":
			p.RateLimitKey = v
		case "ck+": // a further concurrency key
			p.ExtraConcurrencyKeys = append(p.ExtraConcurrencyKeys, v)
		case "rk+": // a further rate-limit key
			p.ExtraRateLimitKeys = append(p.ExtraRateLimitKeys, v)
		case "delay":
			p.RunAt = f.now + n
		case "max":
			p.MaxAttempts = n
		case "backoff":
			p.Backoff = n
		default:
			f.t.Fatalf("bad push key %q", k)
		}
	}
	id, err := f.s.Push(f.now, p)
	if err != nil {
		f.t.Fatalf("push %q: %v", spec, err)
	}
	f.check()
	return id
}

// reserve returns the ids reserved, with the tokens in f.tok.
func (f *fixture) reserve(count int, handlers []string, queues ...string) ([]string, []string) {
	f.t.Helper()
	rs, err := f.s.Reserve(f.now, ReserveOptions{Worker: "w", Lease: 1000, Count: count, Handlers: handlers, Queues: queues})
	if err != nil {
		f.t.Fatalf("reserve: %v", err)
	}
	f.check()
	var ids, toks []string
	for _, r := range rs {
		ids = append(ids, r.ID)
		toks = append(toks, r.Token)
	}
	return ids, toks
}

func (f *fixture) one(queues ...string) (string, string) {
	f.t.Helper()
	ids, toks := f.reserve(1, nil, queues...)
	if len(ids) == 0 {
		return "", ""
	}
	return ids[0], toks[0]
}

func (f *fixture) state(id string) State {
	f.t.Helper()
	j, ok := f.s.Get(f.now, id)
	if !ok {
		f.t.Fatalf("job %s not found", id)
	}
	return j.State
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		name string
		run  func(f *fixture)
	}{
		{"empty queue reserves nothing", func(f *fixture) {
			ids, _ := f.reserve(1, nil, "q")
			eq(f.t, "ids", len(ids), 0)
		}},
		{"unknown queues create nothing", func(f *fixture) {
			f.reserve(3, nil, "nope", "other")
			eq(f.t, "queues", f.s.Queues(f.now), []string{})
			eq(f.t, "len", f.s.Len(), 0)
		}},
		{"FIFO", func(f *fixture) {
			a, b, c := f.push("q h"), f.push("q h"), f.push("q h")
			ids, _ := f.reserve(3, nil, "q")
			eq(f.t, "order", ids, []string{a, b, c})
		}},
		{"priority, higher first, FIFO among equals", func(f *fixture) {
			lo := f.push("q h prio=-5")
			m1 := f.push("q h prio=3")
			hi := f.push("q h prio=9")
			m2 := f.push("q h2 prio=3")
			ids, _ := f.reserve(4, nil, "q")
			eq(f.t, "order", ids, []string{hi, m1, m2, lo})
		}},
		{"queue order beats cross-queue priority", func(f *fixture) {
			low := f.push("a h prio=0")
			f.push("b h prio=100")
			id, _ := f.one("a", "b")
			eq(f.t, "first", id, low)
		}},
		{"handler filter skips without mutating", func(f *fixture) {
			x := f.push("q x prio=10")
			y := f.push("q y")
			ids, _ := f.reserve(1, []string{"y"}, "q")
			eq(f.t, "filtered", ids, []string{y})
			eq(f.t, "x untouched", f.state(x), Queued)
			id, _ := f.one("q")
			eq(f.t, "x next", id, x)
		}},
		{"skips to a later queue when earlier ones hold only unmatched or blocked work", func(f *fixture) {
			f.s.SetConcurrency(f.now, "k", 1)
			f.push("a x")
			busy := f.push("b h ck=k")
			f.push("b h ck=k")
			_, tok := f.one("b")
			_ = tok
			want := f.push("c h")
			ids, _ := f.reserve(1, []string{"h"}, "a", "b", "c")
			eq(f.t, "picked", ids, []string{want})
			eq(f.t, "busy", f.state(busy), Reserved)
		}},
		{"a blocked higher-priority job is skipped for a lower eligible one", func(f *fixture) {
			f.s.SetConcurrency(f.now, "k", 1)
			f.push("q h ck=k prio=5")
			hi := f.push("q h ck=k prio=5")
			lo := f.push("q h prio=1")
			f.one("q")
			id, _ := f.one("q")
			eq(f.t, "lower", id, lo)
			j, _ := f.s.Get(f.now, hi)
			eq(f.t, "blocked_by", j.BlockedBy, "concurrency:k 1/1")
		}},
		{"jobs without keys or with unconfigured keys are unconstrained", func(f *fixture) {
			for i := 0; i < 5; i++ {
				f.push("q h ck=free rk=open")
				f.push("q h")
			}
			ids, _ := f.reserve(10, nil, "q")
			eq(f.t, "all", len(ids), 10)
			p, ok, _ := f.s.GetPolicy(f.now, backpressure.Concurrency, "free")
			eq(f.t, "no policy", ok, false)
			_ = p
			// Unconfigured keys still count active jobs, so a policy set later sees them.
			f.s.SetConcurrency(f.now, "free", 3)
			p, _, _ = f.s.GetPolicy(f.now, backpressure.Concurrency, "free")
			eq(f.t, "active", p.Active, 5)
		}},
		{"unconfigured rate keys record no admissions", func(f *fixture) {
			f.push("q h rk=r")
			f.one("q")
			f.s.SetRateLimit(f.now, "r", 1, 1000)
			p, _, _ := f.s.GetPolicy(f.now, backpressure.RateLimit, "r")
			eq(f.t, "admissions", p.Active, 0)
			f.push("q h rk=r")
			id, _ := f.one("q")
			if id == "" {
				f.t.Fatal("window should be empty")
			}
		}},
		{"rate window reopens exactly at admission + period", func(f *fixture) {
			f.s.SetRateLimit(f.now, "r", 2, 1000)
			for i := 0; i < 4; i++ {
				f.push("q h rk=r")
			}
			start := f.now
			f.one("q")
			f.now += 300
			f.one("q")
			id, _ := f.one("q")
			eq(f.t, "full", id, "")
			p, _, _ := f.s.GetPolicy(f.now, backpressure.RateLimit, "r")
			eq(f.t, "next_free_at", p.NextFreeAt, start+1000)
			eq(f.t, "waiting", p.Waiting, 2)
			f.now = start + 999
			id, _ = f.one("q")
			eq(f.t, "still full at +999", id, "")
			f.now = start + 1000
			id, _ = f.one("q")
			if id == "" {
				f.t.Fatal("window should reopen at admission + period")
			}
			id, _ = f.one("q")
			eq(f.t, "full again", id, "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.run(f)
			f.check()
		})
	}
}

func TestCapacityReopens(t *testing.T) {
	ends := map[string]func(f *fixture, id, tok string){
		"release": func(f *fixture, id, tok string) { must(f.t, f.s.Release(f.now, tok, 0)) },
		"ack":     func(f *fixture, id, tok string) { must(f.t, f.s.Ack(f.now, tok)) },
		"fail": func(f *fixture, id, tok string) {
			_, err := f.s.Fail(f.now, tok, FailOptions{})
			must(f.t, err)
		},
		"cancel": func(f *fixture, id, tok string) {
			_, err := f.s.Cancel(f.now, id)
			must(f.t, err)
		},
		"lease expiry": func(f *fixture, id, tok string) { f.now += 1000 },
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			must(t, f.s.SetConcurrency(f.now, "k", 1))
			a := f.push("q h ck=k")
			b := f.push("q h ck=k")
			id, tok := f.one("q")
			eq(t, "first", id, a)
			none, _ := f.one("q")
			eq(t, "blocked", none, "")
			end(f, id, tok)
			f.check()
			next, _ := f.one("q")
			want := b
			if name == "release" || name == "lease expiry" {
				want = b // a re-entered at the back
			}
			eq(t, "reopened", next, want)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLeaseExpiryReclaimedBeforeSelection(t *testing.T) {
	f := newFixture(t)
	a := f.push("q h prio=1")
	b := f.push("q h")
	_, tok := f.one("q")
	f.now += 1000 // a's lease ends exactly now
	id, _ := f.one("q")
	eq(t, "higher priority reclaimed first", id, a)
	eq(t, "b waits", f.state(b), Queued)
	if err := f.s.Ack(f.now, tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("late ack: %v, want EXPIRED", err)
	}
	j, _ := f.s.Get(f.now, a)
	eq(t, "run_at is the expiry", j.RunAt, f.now)
}

func TestRetriesAndBackoff(t *testing.T) {
	f := newFixture(t)
	id := f.push("q h max=3 backoff=100")
	_, tok := f.one("q")
	at, err := f.s.Start(f.now, tok)
	must(t, err)
	eq(t, "attempt", at, 1)
	st, err := f.s.Fail(f.now, tok, FailOptions{Error: "boom", HasError: true})
	must(t, err)
	eq(t, "state", st, RetryPending)
	j, _ := f.s.Get(f.now, id)
	eq(t, "run_at", j.RunAt, f.now+100)
	eq(t, "last_error", j.LastError, "boom")
	f.now += 99
	none, _ := f.one("q")
	eq(t, "not yet", none, "")
	f.now++
	_, tok = f.one("q")
	f.s.Start(f.now, tok)
	st, _ = f.s.Fail(f.now, tok, FailOptions{})
	eq(t, "second failure", st, RetryPending)
	j, _ = f.s.Get(f.now, id)
	eq(t, "doubled", j.RunAt, f.now+200)
	f.now += 200
	_, tok = f.one("q")
	st, _ = f.s.Fail(f.now, tok, FailOptions{}) // reserved job failed directly: the attempt counts
	eq(t, "exhausted", st, Failed)
	j, _ = f.s.Get(f.now, id)
	eq(t, "attempts", j.Attempt, 3)
	must(t, f.s.Retry(f.now, id))
	j, _ = f.s.Get(f.now, id)
	eq(t, "revived", []any{j.State, j.Attempt}, []any{Queued, 0})
	eq(t, "backoff cap", backoff(1000, 40), MaxBackoff)
	eq(t, "backoff 3", backoff(1000, 3), 4000)
}

func TestScheduled(t *testing.T) {
	f := newFixture(t)
	id := f.push("q h delay=500")
	eq(t, "state", f.state(id), Scheduled)
	none, _ := f.one("q")
	eq(t, "not due", none, "")
	f.now += 500
	got, _ := f.one("q")
	eq(t, "due", got, id)
}

func TestStaleTokens(t *testing.T) {
	f := newFixture(t)
	id := f.push("q h max=2")
	_, tok := f.one("q")
	must(t, f.s.Release(f.now, tok, 0))
	if err := f.s.Ack(f.now, tok); !errors.Is(err, ErrNoReservation) {
		t.Fatalf("ack after release: %v", err)
	}
	_, tok2 := f.one("q")
	if tok2 == tok {
		t.Fatal("token reused")
	}
	if _, err := f.s.Start(f.now, "garbage"); !errors.Is(err, ErrNoReservation) {
		t.Fatalf("garbage token: %v", err)
	}
	f.s.Start(f.now, tok2)
	if _, err := f.s.Start(f.now, tok2); !errors.Is(err, ErrWrongState) {
		t.Fatalf("second start: %v", err)
	}
	f.s.Cancel(f.now, id)
	err := f.s.Ack(f.now, tok2)
	var se *StateError
	if !errors.As(err, &se) || se.From != Cancelled {
		t.Fatalf("ack after cancel: %v", err)
	}
}

func TestPausedQueue(t *testing.T) {
	f := newFixture(t)
	must(t, f.s.Pause(f.now, "q"))
	id := f.push("q h")
	none, _ := f.one("q")
	eq(t, "paused", none, "")
	j, _ := f.s.Get(f.now, id)
	eq(t, "blocked_by", j.BlockedBy, "paused")
	st, _ := f.s.QueueStats(f.now, "q")
	eq(t, "status", st.Status, "paused")
	must(t, f.s.Resume(f.now, "q"))
	got, _ := f.one("q")
	eq(t, "resumed", got, id)
}

func TestRetentionDropsOldest(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRetained = 2
	cfg.Retention = 10_000
	s, _ := New(cfg, NewSeqGenerator())
	f := &fixture{t: t, s: s, now: 1}
	var ids []string
	for i := 0; i < 3; i++ {
		id := f.push("q h")
		_, tok := f.one("q")
		must(t, s.Ack(f.now, tok))
		ids = append(ids, id)
	}
	if _, ok := s.Get(f.now, ids[0]); ok {
		t.Fatal("oldest terminal job should be dropped")
	}
	eq(t, "len", s.Len(), 2)
	f.now += 10_000
	eq(t, "aged out", s.Len(), 2) // Len does no maintenance
	s.Tick(f.now)
	eq(t, "aged out after tick", s.Len(), 0)
	eq(t, "queues", s.Queues(f.now), []string{})
	f.check()
}

func TestOperationsRefuseWrongStates(t *testing.T) {
	f := newFixture(t)
	sched := f.push("q h delay=100")
	var se *StateError
	if err := f.s.Retry(f.now, sched); !errors.As(err, &se) || se.From != Scheduled {
		t.Fatalf("retry of a scheduled job: %v", err)
	}
	f.push("q h")
	_, tok := f.one("q")
	f.s.Start(f.now, tok)
	if err := f.s.Release(f.now, tok, 0); !errors.As(err, &se) || se.From != Running || se.To != Queued {
		t.Fatalf("release of a running job: %v", err)
	}
	if err := f.s.Release(f.now, tok, 0); err == nil || err.Error() != "WRONGSTATE job j2 cannot go from running to queued" {
		t.Fatalf("error text: %v", err)
	}
	f.check()
}

// A lane held back by a rate limit again and again is listed once among
// the parked lanes, not once per wait.
func TestRateLimitedLaneIsListedOnce(t *testing.T) {
	s, err := New(DefaultConfig(), NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1000)
	if err := s.SetRateLimit(now, "r", 1, 10); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", RateLimitKey: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	opts := ReserveOptions{Worker: "w", Lease: 1 << 30, Queues: []string{"q"}, Count: 2}
	for i := 0; i < 100; i++ {
		// One admission per window: the second pick parks the lane until
		// the window reopens.
		if rs, err := s.Reserve(now, opts); err != nil || len(rs) != 1 {
			t.Fatalf("round %d: %d reservations, %v", i, len(rs), err)
		}
		now += 10
	}
	q := s.shardOf("q").queues["q"]
	if n := len(q.parked[parkKey{backpressure.RateLimit, "r"}]); n != 1 {
		t.Fatalf("the lane is listed %d times as parked", n)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestPushManyNotifiesEachQueueOnce: a batch of pushes wakes the waiters of
// every queue it queued work in, once, and of no other.
func TestPushManyNotifiesEachQueueOnce(t *testing.T) {
	f := newFixture(t)
	if _, err := f.s.Push(f.now, PushOptions{Queue: "q4", Handler: "h", ID: "only"}); err != nil {
		t.Fatal(err)
	}
	var notified []string
	f.s.SetNotify(func(q string) { notified = append(notified, q) })
	ps := []PushOptions{
		{Queue: "q1", Handler: "h"},
		{Queue: "q1", Handler: "h"},
		{Queue: "q2", Handler: "h", RunAt: f.now + 1000}, // scheduled: nothing to take yet
		{Queue: "q3", Handler: "h"},
		{Queue: "", Handler: "h"}, // invalid
		{Queue: "q1", Handler: "h"},
		{Queue: "q3", Handler: "h"},
		{Queue: "q5", Handler: "h", ID: "only"}, // a duplicate: q5 gets no job
	}
	ids, errs := make([]string, len(ps)), make([]error, len(ps))
	f.s.PushMany(f.now, ps, ids, errs)
	for i := range ps {
		failed := i == 4 || i == 7
		if (errs[i] != nil) != failed || (ids[i] == "") != failed {
			t.Fatalf("push %d: id %q, error %v", i, ids[i], errs[i])
		}
	}
	if got := strings.Join(notified, " "); got != "q1 q3" {
		t.Fatalf("notified %q, want \"q1 q3\"", got)
	}
	if n, _ := f.s.QueueLen(f.now, "q1"); n != 3 {
		t.Fatalf("q1 holds %d jobs, want 3", n)
	}
	f.check()
}

// panicky is an Observer whose handle panics on the first push it counts.
type panicky struct{ armed bool }

func (p *panicky) Queue(string) QueueObserver { return p }
func (p *panicky) Pushed() {
	if p.armed {
		p.armed = false
		panic("observer")
	}
}
func (p *panicky) Reserved(int64) {}
func (p *panicky) Acked(int64)    {}
func (p *panicky) Failed()        {}
func (p *panicky) Retried()       {}
func (p *panicky) Expired()       {}
func (p *panicky) Cancelled()     {}

// TestPushManyPanicUnlocks: a panic under a shard's lock (here an
// Observer's) leaves the shard unlocked, as Push's deferred unlock does.
func TestPushManyPanicUnlocks(t *testing.T) {
	f := newFixture(t)
	obs := &panicky{armed: true}
	f.s.SetObserver(obs)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the Observer's panic did not reach PushMany's caller")
			}
		}()
		ids, errs := make([]string, 1), make([]error, 1)
		f.s.PushMany(f.now, []PushOptions{{Queue: "q", Handler: "h"}}, ids, errs)
	}()
	done := make(chan error, 1)
	go func() { _, err := f.s.Push(f.now, PushOptions{Queue: "q", Handler: "h"}); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Push after a panic in PushMany is stuck on the shard's lock")
	}
}

// TestFlushAllocatesLittle: emptying a store of many jobs does not build a
// list of them first.
func TestFlushAllocatesLittle(t *testing.T) {
	f := newFixture(t)
	ps := make([]PushOptions, 64)
	for i := range ps {
		ps[i] = PushOptions{Queue: "q", Handler: "h", Payload: []byte("p")}
	}
	ids, errs := make([]string, len(ps)), make([]error, len(ps))
	for range 200_000 / len(ps) {
		f.s.PushMany(f.now, ps, ids, errs)
	}
	if _, err := f.s.Push(f.now, PushOptions{Queue: "q", Handler: "h", Payload: make([]byte, packMax+1)}); err != nil {
		t.Fatal(err) // one job outside the chunks, which Flush marks dropped
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := f.s.Flush(f.now); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("Flush of %d jobs allocated %d bytes", 200_000/len(ps)*len(ps)+1, n)
	}
	if f.s.Len() != 0 {
		t.Fatalf("%d jobs left", f.s.Len())
	}
	f.check()
}
