package store

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func idemStore(t *testing.T, mod func(*Config)) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Shards = 8
	cfg.IdempotencyWindow = 1000
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyed(queue, key string) PushOptions {
	return PushOptions{Queue: queue, Handler: "h", Payload: []byte("p"), IdempotencyKey: key}
}

func checkInvariants(t *testing.T, s *Store) {
	t.Helper()
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// A repeat within the window creates nothing and answers the first id,
// whatever its other arguments; at the window's end the key is forgotten.
func TestIdemWindow(t *testing.T) {
	s := idemStore(t, nil)
	id1, err := s.Push(1000, keyed("q", "k"))
	must(t, err)
	p := keyed("other", "k") // another queue, handler, payload: still the same push
	p.Handler, p.Payload, p.Priority = "h2", []byte("different"), 5
	id, err := s.Push(1999, p)
	must(t, err)
	eq(t, "retry's id", id, id1)
	eq(t, "jobs", s.Len(), int64(1))
	eq(t, "keys", s.IdempotencyKeys(), 1)
	if got, _ := s.QueueLen(1999, "other"); got != 0 {
		t.Fatalf("the retry queued a job in another queue: %d", got)
	}
	id2, err := s.Push(2000, keyed("q", "k"))
	must(t, err)
	if id2 == id1 {
		t.Fatalf("a push after the window answered the old id %s", id1)
	}
	eq(t, "jobs after the window", s.Len(), int64(2))
	id, err = s.Push(2500, keyed("q", "k"))
	must(t, err)
	eq(t, "the key now names the new push", id, id2)
	checkInvariants(t, s)
}

// The key outlives its job: dropped by retention, the job is gone, but a
// retry still answers its id and creates nothing.
func TestIdemKeyOutlivesItsJob(t *testing.T) {
	s := idemStore(t, func(c *Config) { c.Retention = 10; c.IdempotencyWindow = 100_000 })
	id1, err := s.Push(1000, keyed("q", "k"))
	must(t, err)
	rs, err := s.Reserve(1000, ReserveOptions{Worker: "w", Lease: 100, Queues: []string{"q"}})
	must(t, err)
	must(t, s.Ack(1000, rs[0].Token))
	s.Tick(2000)
	if _, ok := s.Get(2000, id1); ok {
		t.Fatal("the job should have left retention")
	}
	id, err := s.Push(3000, keyed("q", "k"))
	must(t, err)
	eq(t, "retry's id", id, id1)
	eq(t, "jobs", s.Len(), int64(0))
}

// A push that fails records no key: a later push of the key creates its
// job.
func TestIdemFailedPushRecordsNoKey(t *testing.T) {
	s := idemStore(t, func(c *Config) { c.MaxJobs = 1 })
	bad := keyed("q", "k1")
	bad.Handler = " "
	if _, err := s.Push(1000, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad handler: %v", err)
	}
	dup := keyed("q", "k1")
	dup.ID = "x"
	_, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", ID: "x"})
	must(t, err)
	if _, err := s.Push(1000, dup); !errors.Is(err, ErrDupJob) {
		t.Fatalf("keyed push of a held id: %v", err)
	}
	if _, err := s.Push(1000, keyed("q", "k1")); !errors.Is(err, ErrFull) {
		t.Fatalf("keyed push past MaxJobs: %v", err)
	}
	eq(t, "keys", s.IdempotencyKeys(), 0)
	must(t, s.Flush(1000))
	id, err := s.Push(1000, keyed("q", "k1"))
	must(t, err)
	if id == "x" {
		t.Fatal("a failed push left its key behind")
	}
	if _, err := s.Push(1000, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad input is refused even with a known key: %v", err)
	}
	if _, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", IdempotencyKey: "  "}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("blank key: %v", err)
	}
}

// With ID and IDEMPOTENCY the key decides first: a known key answers its
// id even where the ID would be refused, or where the store is full.
func TestIdemKeyDecidesBeforeID(t *testing.T) {
	s := idemStore(t, func(c *Config) { c.MaxJobs = 1 })
	p := keyed("q", "k")
	p.ID = "a"
	id, err := s.Push(1000, p)
	must(t, err)
	eq(t, "id", id, "a")
	p.ID = "b" // another id, and the store is full: the key answers
	id, err = s.Push(1000, p)
	must(t, err)
	eq(t, "retry with another id", id, "a")
	p.ID = "a"
	id, err = s.Push(1000, p)
	must(t, err)
	eq(t, "retry with the same id", id, "a")
	p.IdempotencyKey = "k2" // a new key with a held id: DUPJOB, no key
	if _, err := s.Push(1000, p); !errors.Is(err, ErrDupJob) {
		t.Fatalf("new key, held id: %v", err)
	}
	eq(t, "keys", s.IdempotencyKeys(), 1)
}

// Past IdempotencyKeys the oldest key is forgotten.
func TestIdemBound(t *testing.T) {
	s := idemStore(t, func(c *Config) { c.IdempotencyKeys = 2; c.IdempotencyWindow = 100_000 })
	ids := map[string]string{}
	for i, k := range []string{"k1", "k2", "k3"} {
		id, err := s.Push(1000+int64(i), keyed("q", k))
		must(t, err)
		ids[k] = id
	}
	eq(t, "keys", s.IdempotencyKeys(), 2)
	id, err := s.Push(1010, keyed("q", "k3"))
	must(t, err)
	eq(t, "k3 is remembered", id, ids["k3"])
	id, err = s.Push(1010, keyed("q", "k1"))
	must(t, err)
	if id == ids["k1"] {
		t.Fatal("k1 should have been forgotten past the bound")
	}
	eq(t, "jobs", s.Len(), int64(4))
	checkInvariants(t, s)
}

// Keys count toward MaxBytes, and maintenance forgets expired keys (and
// their memory) without any push.
func TestIdemMemory(t *testing.T) {
	s := idemStore(t, nil)
	_, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", IdempotencyKey: "order-1"})
	must(t, err)
	m := s.Memory()
	eq(t, "key's estimate", m.Keys, idemKeyBytes("order-1", "j1"))
	eq(t, "used", m.Used(), m.Jobs+m.Queues+m.Policies+m.Tokens+m.Keys)
	if nd := s.NextDeadline(); nd == 0 || nd > 2000 {
		t.Fatalf("NextDeadline %d: the key expires at 2000", nd)
	}
	s.Tick(2000)
	eq(t, "keys after the window", s.IdempotencyKeys(), 0)
	eq(t, "their memory", s.Memory().Keys, int64(0))
	checkInvariants(t, s)

	// A limit that fits a job without a key refuses it with one.
	plain := idemStore(t, nil)
	_, err = plain.Push(1000, PushOptions{Queue: "q", Handler: "h", Payload: []byte("p")})
	must(t, err)
	full := idemStore(t, func(c *Config) { c.MaxBytes = plain.Memory().Used() })
	if _, err := full.Push(1000, keyed("q", "k")); !errors.Is(err, ErrFull) {
		t.Fatalf("push whose key passes maxmemory: %v", err)
	}
	eq(t, "keys", full.IdempotencyKeys(), 0)
	eq(t, "jobs", full.Len(), int64(0))
	eq(t, "memory", full.Memory().Used(), int64(0))
	_, err = full.Push(1000, PushOptions{Queue: "q", Handler: "h", Payload: []byte("p")})
	must(t, err)
}

// A batch repeats a key of its own: the second answers the first's id.
func TestIdemPushMany(t *testing.T) {
	s := idemStore(t, nil)
	ps := []PushOptions{keyed("a", "k"), {Queue: "b", Handler: "h"}, keyed("b", "k"), keyed("c", "k2"), keyed("a", "k2")}
	ids, errs := make([]string, len(ps)), make([]error, len(ps))
	s.PushMany(1000, ps, ids, errs)
	for _, err := range errs {
		must(t, err)
	}
	eq(t, "repeat of k", ids[2], ids[0])
	eq(t, "repeat of k2", ids[4], ids[3])
	eq(t, "jobs", s.Len(), int64(3))
	checkInvariants(t, s)
}

// Many clients push one key at once, to queues in different shards:
// exactly one job, and every client gets its id.
func TestIdemConcurrentPushes(t *testing.T) {
	for round := 0; round < 20; round++ {
		s := idemStore(t, nil)
		const clients = 8
		ids := make([]string, clients)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				<-start
				var err error
				if c%2 == 0 {
					ids[c], err = s.Push(1000, keyed("q"+strconv.Itoa(c), "k"))
				} else {
					out, errs := make([]string, 2), make([]error, 2)
					s.PushMany(1000, []PushOptions{{Queue: "z", Handler: "h"}, keyed("q"+strconv.Itoa(c), "k")}, out, errs)
					ids[c], err = out[1], errs[1]
				}
				if err != nil {
					t.Error(err)
				}
			}(c)
		}
		close(start)
		wg.Wait()
		for c := range ids {
			if ids[c] != ids[0] {
				t.Fatalf("round %d: client %d got %s, client 0 %s", round, c, ids[c], ids[0])
			}
		}
		eq(t, "jobs", s.Len(), int64(1+clients/2))
		checkInvariants(t, s)
	}
}

// The log replays the keys exactly, sweeps included, and so does a dump
// (a rewrite's snapshot).
func TestIdemReplayAndDump(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 4
	cfg.IdempotencyWindow = 1500
	cfg.IdempotencyKeys = 5
	live, _ := New(cfg, NewSeqGenerator())
	j := &memJournal{}
	live.SetJournal(j)
	now := int64(1000)
	for i := 0; i < 40; i++ {
		now += 97
		if i%10 == 9 {
			now += 1600 // past the window: maintenance forgets every key
		}
		_, err := live.Push(now, keyed("q"+strconv.Itoa(i%3), fmt.Sprintf("k%d", i%9)))
		must(t, err)
		if i%7 == 0 {
			live.Tick(now)
		}
	}
	swept := false
	for _, r := range j.recs {
		swept = swept || r.Op == OpIdemExpire
	}
	if !swept {
		t.Fatal("no sweep was logged: the test does not cover them")
	}
	want := dump(t, live, now)
	replayed := replayAll(t, cfg, j.recs, "replay")
	if diff := sameDump(dump(t, replayed, now), want); diff != "" {
		t.Fatalf("replayed: %s", diff)
	}
	loaded := replayAll(t, cfg, want, "load")
	if diff := sameDump(dump(t, loaded, now), want); diff != "" {
		t.Fatalf("loaded: %s", diff)
	}
	checkInvariants(t, loaded)
	eq(t, "keys", loaded.IdempotencyKeys(), live.IdempotencyKeys())
	// Both answer the same for every key afterwards.
	for i := 0; i < 9; i++ {
		k := fmt.Sprintf("k%d", i)
		live.gen, loaded.gen = NewSeqGenerator(), NewSeqGenerator()
		a, err1 := live.Push(now+1, keyed("q", k))
		b, err2 := loaded.Push(now+1, keyed("q", k))
		if a != b || (err1 == nil) != (err2 == nil) {
			t.Fatalf("key %s: live %s %v, loaded %s %v", k, a, err1, b, err2)
		}
	}
}

// recordingJournal notes the sequence numbers waited for.
type recordingJournal struct {
	memJournal
	waited []uint64
}

func (r *recordingJournal) Wait(seq uint64) error {
	r.mu.Lock()
	r.waited = append(r.waited, seq)
	r.mu.Unlock()
	return nil
}

// A retry's reply waits until the first push's record is durable, as the
// first reply does.
func TestIdemRetryWaitsForTheFirstRecord(t *testing.T) {
	s := idemStore(t, nil)
	j := &recordingJournal{}
	s.SetJournal(j)
	_, err := s.Push(1000, keyed("q", "k"))
	must(t, err)
	first := j.waited[0]
	j.waited = nil
	_, err = s.Push(1000, keyed("q", "k"))
	must(t, err)
	if len(j.waited) != 1 || j.waited[0] < first {
		t.Fatalf("the retry waited for %v, want the first push's record %d", j.waited, first)
	}
}

// A snapshot is loaded as it was held, even keys that a push of a later
// key would have forgotten (the clock went back between two pushes).
func TestIdemLoadKeepsEveryKey(t *testing.T) {
	s := idemStore(t, func(c *Config) { c.IdempotencyWindow = 100 })
	_, err := s.Push(1000, keyed("q", "b"))
	must(t, err)
	_, err = s.Push(800, keyed("q", "c")) // expired at 900, before b's push
	must(t, err)
	eq(t, "keys", s.IdempotencyKeys(), 2)
	want := dump(t, s, 1000)
	loaded := replayAll(t, s.cfg, want, "load")
	if diff := sameDump(dump(t, loaded, 1000), want); diff != "" {
		t.Fatalf("loaded: %s", diff)
	}
	checkInvariants(t, loaded)
}
