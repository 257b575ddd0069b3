package store

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"sluice/backpressure"
)

// memJournal keeps records in memory.
type memJournal struct {
	mu   sync.Mutex
	recs []Record
	err  error
}

var _ Journal = (*memJournal)(nil)

func (m *memJournal) Append(r Record) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return uint64(len(m.recs))
}
func (m *memJournal) Wait(uint64) error { return nil }
func (m *memJournal) Err() error        { return m.err }

// sameDump reports the first difference between two dumps.
func sameDump(a, b []Record) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if d := cmp.Diff(b[i], a[i]); d != "" {
			return fmt.Sprintf("%v record %d (-want +got):\n%s", b[i].Op, i, d)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d records, want %d", len(a), len(b))
	}
	return ""
}

func dump(t *testing.T, s *Store, now int64) []Record {
	t.Helper()
	var out []Record
	if err := s.Dump(now, func(r *Record) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// randomOps drives s through n random operations and returns the clock.
func randomOps(t *testing.T, s *Store, rng *rand.Rand, n int) int64 {
	now := int64(1_000)
	var ids, toks []string
	pick := func(xs []string) string {
		if len(xs) == 0 {
			return "none"
		}
		return xs[rng.IntN(len(xs))]
	}
	queues := []string{"a", "b", "c"}
	keys := []string{"", "k1", "k2", "t:1", "t:2"} // t:* may be a template
	for i := 0; i < n; i++ {
		// Batches (batch.go), drawn from i so that the random sequence
		// stays as it was.
		if i%17 == 0 {
			s.OpenBatch(now, BatchOptions{ID: fmt.Sprint("b", (i/17)%4), Always: i%2 == 0,
				Callback: PushOptions{Queue: queues[i%3], Handler: "h2", Payload: []byte("cb")}})
		}
		if i%23 == 0 {
			s.CloseBatch(now, fmt.Sprint("b", (i/23)%4))
		}
		switch op := rng.IntN(20); {
		case op < 5:
			p := PushOptions{Queue: pick(queues), Handler: pick([]string{"h1", "h2"}), Payload: []byte{byte(i)},
				Priority: int64(rng.IntN(3)), ConcurrencyKey: pick(keys), RateLimitKey: pick(keys),
				MaxAttempts: int64(rng.IntN(3)), Backoff: int64(rng.IntN(50)),
				Group: pick([]string{"", "", "g1", "g2", "g3"})}
			if i%3 == 1 && p.ConcurrencyKey != "" && p.RateLimitKey != "" {
				// Several keys (multikey.go), drawn from i so that the
				// random sequence stays as it was; a repeated key is
				// refused.
				p.ExtraConcurrencyKeys = []string{keys[1+i%4]}
				p.ExtraRateLimitKeys = []string{keys[1+(i/3)%4], keys[1+(i/5)%4]}
			}
			if rng.IntN(5) == 0 {
				p.RunAt = now + int64(rng.IntN(300))
			}
			if rng.IntN(6) == 0 {
				p.ID = fmt.Sprintf("x%d", rng.IntN(20))
			}
			if rng.IntN(3) == 0 {
				p.IdempotencyKey = fmt.Sprintf("i%d", rng.IntN(8))
			}
			switch rng.IntN(8) { // deadline.go
			case 0:
				p.ExpiresIn = int64(1 + rng.IntN(300))
			case 1:
				p.Deadline = max(now, p.RunAt) + int64(1+rng.IntN(300))
			}
			if rng.IntN(6) == 0 {
				p.Timeout = int64(1 + rng.IntN(300))
			}
			if i%4 == 2 && len(ids) > 0 { // dependencies (deps.go), drawn from i as above
				p.After = []string{ids[(i*7)%len(ids)]}
				if i%8 == 6 {
					p.After = append(p.After, ids[(i*3)%len(ids)]) // a repeat is refused
					p.AfterAnyway = true
				}
			}
			if i%5 == 3 {
				p.Batch = fmt.Sprint("b", i%4)
			}
			if id, err := s.Push(now, p); err == nil {
				ids = append(ids, id)
			}
		case op < 9:
			rs, _ := s.Reserve(now, ReserveOptions{Worker: pick([]string{"w", "w", "v"}), Lease: int64(50 + rng.IntN(200)),
				Count: 1 + rng.IntN(3), Queues: []string{pick(queues), pick(queues)}, RoundRobin: rng.IntN(3) == 0})
			for _, r := range rs {
				toks = append(toks, r.Token)
			}
		case op == 9:
			s.Start(now, pick(toks))
		case op == 10:
			s.Touch(now, pick(toks), int64(10+rng.IntN(200)))
		case op == 11:
			switch rng.IntN(3) { // results and progress (results.go)
			case 0:
				s.Ack(now, pick(toks))
			case 1:
				s.AckResult(now, pick(toks), []byte(pick([]string{"", "r", "result"})))
			case 2:
				s.Progress(now, pick(toks), []byte(pick([]string{"", "1", "50%"})))
			}
		case op == 12:
			s.Fail(now, pick(toks), FailOptions{Error: "e", HasError: rng.IntN(2) == 0, NoRetry: rng.IntN(4) == 0})
		case op == 13:
			if rng.IntN(3) == 0 {
				s.ReleaseThrottle(now, pick(toks), int64(rng.IntN(2)*100), pick(keys[1:]), int64(rng.IntN(300)))
			} else {
				s.Release(now, pick(toks), int64(rng.IntN(2)*100))
			}
		case op == 14:
			s.Cancel(now, pick(ids))
		case op == 15:
			if rng.IntN(3) == 0 { // JOBDELETE
				s.Delete(now, pick(ids))
			} else {
				s.Retry(now, pick(ids))
			}
		case op == 16:
			switch rng.IntN(4) {
			case 0:
				s.Pause(now, pick(queues))
			case 1:
				s.Resume(now, pick(queues))
			case 2:
				if rng.IntN(4) == 0 {
					s.Purge(now, pick(queues))
				}
			case 3:
				if rng.IntN(50) == 0 {
					s.Flush(now)
				}
			}
		case op == 17:
			k := pick(keys[1:])
			if rng.IntN(3) == 0 {
				k = "t:*"
			}
			switch rng.IntN(8) {
			case 6:
				// Breakers that trip often: low thresholds, short cooldowns.
				s.SetBreaker(now, pick([]string{"handler:h1", "queue:a", "key:k1", "key:t:1"}),
					int64(1+rng.IntN(3)), int64(50+rng.IntN(300)), int64(1+rng.IntN(150)), int64(1+rng.IntN(2)))
			case 7:
				if rng.IntN(4) == 0 {
					s.DeletePolicy(now, backpressure.Breaker, pick([]string{"handler:h1", "queue:a", "key:k1"}))
				}
			case 3:
				if k == "t:*" {
					k = pick(keys[1:])
				}
				s.Throttle(now, k, int64(rng.IntN(300)))
			case 4:
				s.SetWeight(now, pick([]string{"g1", "g2"}), int64(1+rng.IntN(4)))
			case 5:
				s.DeleteWeight(now, pick([]string{"g1", "g2"}))
			case 0:
				s.SetConcurrency(now, k, int64(1+rng.IntN(3)))
			case 1:
				s.SetRateLimit(now, k, int64(1+rng.IntN(3)), int64(50+rng.IntN(200)))
			case 2:
				s.DeletePolicy(now, backpressure.Kind(1+rng.IntN(3)), k)
			}
		default:
			now += int64(rng.IntN(120))
			if rng.IntN(10) == 0 { // periodic entries (cron.go), now and then
				name := pick([]string{"c1", "c2"})
				if rng.IntN(4) == 0 {
					s.CronDel(now, name)
				} else {
					s.CronSet(now, CronOptions{Name: name, Spec: pick([]string{"@every 1s", "@every 2s", "* * * * *"}),
						Queue: pick(queues), Handler: "h1", Payload: []byte(name), ConcurrencyKey: pick(keys)})
				}
			}
		}
	}
	return now
}

// TestReplayEquivalence: replaying the journal of random operations, and
// loading a dump of the result, both rebuild exactly the live state.
func TestReplayEquivalence(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		cfg := DefaultConfig()
		cfg.Shards = 4
		cfg.MaxRetained = 1 + int(seed%7)
		cfg.ExpiredTokens = 1 + int(seed%5)
		cfg.Retention = 500
		cfg.FailedRetention = 300 + int64(seed%3)*400
		cfg.MaxFailed = 1 + int(seed%4)
		cfg.IdempotencyWindow = 200 + int64(seed%4)*300
		cfg.IdempotencyKeys = 2 + int(seed%6)
		live, _ := New(cfg, NewSeqGenerator())
		j := &memJournal{}
		live.SetJournal(j)
		now := randomOps(t, live, rand.New(rand.NewPCG(seed, 1)), 300)
		live.Tick(now)
		if err := live.CheckInvariants(); err != nil {
			t.Fatalf("seed %d: live invariants: %v", seed, err)
		}
		want := dump(t, live, now)

		replayed := replayAll(t, cfg, j.recs, fmt.Sprintf("seed %d: replay", seed))
		replayed.Tick(now)
		if err := replayed.CheckInvariants(); err != nil {
			t.Fatalf("seed %d: replayed invariants: %v", seed, err)
		}
		if diff := sameDump(dump(t, replayed, now), want); diff != "" {
			t.Fatalf("seed %d: replayed state differs: %s", seed, diff)
		}

		loaded := replayAll(t, cfg, want, fmt.Sprintf("seed %d: load", seed))
		if err := loaded.CheckInvariants(); err != nil {
			t.Fatalf("seed %d: loaded invariants: %v", seed, err)
		}
		if diff := sameDump(dump(t, loaded, now), want); diff != "" {
			t.Fatalf("seed %d: loaded state differs: %s", seed, diff)
		}
		// The loaded store keeps working like the live one.
		rng1, rng2 := rand.New(rand.NewPCG(seed, 2)), rand.New(rand.NewPCG(seed, 2))
		live.gen, loaded.gen = NewSeqGenerator(), NewSeqGenerator()
		n1 := randomOps(t, live, rng1, 100)
		n2 := randomOps(t, loaded, rng2, 100)
		if diff := sameDump(dump(t, loaded, n2), dump(t, live, n1)); diff != "" {
			t.Fatalf("seed %d: live and loaded stores diverge after more operations: %s", seed, diff)
		}
	}
}

func TestMisconfRefusesChanges(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	j := &memJournal{}
	s.SetJournal(j)
	id, err := s.Push(1, PushOptions{Queue: "q", Handler: "h"})
	must(t, err)
	j.err = fmt.Errorf("disk full")
	if _, err := s.Push(1, PushOptions{Queue: "q", Handler: "h"}); err == nil || err.Error()[:7] != "MISCONF" {
		t.Fatalf("push while the log fails: %v", err)
	}
	if _, err := s.Reserve(1, ReserveOptions{Worker: "w", Lease: 10, Queues: []string{"q"}}); err == nil {
		t.Fatal("reserve while the log fails should be refused")
	}
	if _, ok := s.Get(1, id); !ok {
		t.Fatal("reads keep working")
	}
	eq(t, "len", s.Len(), 1)
	j.err = nil
	if _, err := s.Push(1, PushOptions{Queue: "q", Handler: "h"}); err != nil {
		t.Fatalf("writes resume: %v", err)
	}
}

// Drops from retention race with FLUSHALL and with pushes that reuse the
// dropped job's id, on other goroutines. Whatever the interleaving, the log
// must replay without an error to the live state: a drop's record comes
// before any push of the same id, and never after a FLUSHALL that already
// forgot the job.
func TestConcurrentDropsReplay(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 4
	cfg.MaxRetained = 4
	live, _ := New(cfg, NewSeqGenerator())
	j := &memJournal{}
	live.SetJournal(j)
	const now = 1_000
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			q := "q" + strconv.Itoa(g)
			for i := 0; i < 3000; i++ {
				// Eight ids per goroutine: each comes back as soon as
				// retention has dropped its previous job.
				id := fmt.Sprintf("g%d-%d", g, i%8)
				if _, err := live.Push(now, PushOptions{ID: id, Queue: q, Handler: "h"}); err != nil {
					continue // still held
				}
				rs, err := live.Reserve(now, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{q}})
				if err != nil || len(rs) == 0 {
					continue // a FLUSHALL took it
				}
				_ = live.Ack(now, rs[0].Token)
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			_ = live.Flush(now)
		}
	}()
	wg.Wait()
	if err := live.CheckInvariants(); err != nil {
		t.Fatalf("live invariants: %v", err)
	}
	replayed := replayAll(t, cfg, j.recs, "replay")
	if diff := sameDump(dump(t, replayed, now), dump(t, live, now)); diff != "" {
		t.Fatalf("replayed state differs: %s", diff)
	}
}

// replayAll applies recs to a new store, as a log replay or the load of a
// rewrite's snapshot does, and fails the test at the first refused record.
func replayAll(t *testing.T, cfg Config, recs []Record, what string) *Store {
	t.Helper()
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	s.BeginReplay()
	for i := range recs {
		if err := s.Replay(&recs[i]); err != nil {
			t.Fatalf("%s: record %d of %d (%v %s): %v", what, i, len(recs), recs[i].Op, recs[i].ID, err)
		}
	}
	s.EndReplay()
	return s
}
