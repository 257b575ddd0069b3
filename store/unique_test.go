package store

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func uniq(queue, key string, scope UniqueScope, on OnDuplicate) PushOptions {
	return PushOptions{Queue: queue, Handler: "h", Payload: []byte("p"), UniqueKey: key, UniqueScope: scope, OnDuplicate: on}
}

func reserveOne(t *testing.T, s *Store, now int64, q string) Reservation {
	t.Helper()
	rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{q}})
	must(t, err)
	if len(rs) != 1 {
		t.Fatalf("reserved %d jobs, want 1", len(rs))
	}
	return rs[0]
}

// keep answers the holder, reject names it, and neither creates a job.
func TestUniqueKeepAndReject(t *testing.T) {
	s := idemStore(t, nil)
	id1, err := s.Push(1000, uniq("q", "k", ScopeTerminal, DupKeep))
	must(t, err)
	id, err := s.Push(1001, uniq("q", "k", ScopeTerminal, DupKeep))
	must(t, err)
	eq(t, "keep's id", id, id1)
	_, err = s.Push(1002, uniq("q", "k", ScopeTerminal, DupReject))
	var dk *DupKeyError
	if !errors.As(err, &dk) || dk.ID != id1 || !errors.Is(err, ErrDupKey) {
		t.Fatalf("reject: %v, want DUPKEY naming %s", err, id1)
	}
	eq(t, "message", err.Error(), "DUPKEY key k is held by job "+id1)
	eq(t, "jobs", s.Len(), int64(1))
	eq(t, "unique keys", s.UniqueKeys(), 1)
	// Far past the idempotency window: a unique key without TTL is held.
	id, err = s.Push(1_000_000, uniq("q", "k", ScopeTerminal, DupKeep))
	must(t, err)
	eq(t, "still held", id, id1)
	checkInvariants(t, s)
}

// Each scope lets the key go where the docs say.
func TestUniqueScopes(t *testing.T) {
	for _, tc := range []struct {
		scope UniqueScope
		// held after: reserve, a failed attempt (retry_pending), and the
		// retry's reservation
		afterReserve, afterFail, afterRetryReserve bool
	}{
		{ScopeQueued, false, false, false},
		{ScopeActive, true, false, false},
		{ScopeTerminal, true, true, true},
	} {
		t.Run(tc.scope.String(), func(t *testing.T) {
			s := idemStore(t, nil)
			p := uniq("q", "k", tc.scope, DupKeep)
			p.MaxAttempts = 3
			id1, err := s.Push(1000, p)
			must(t, err)
			r := reserveOne(t, s, 1001, "q")
			heldNow(t, s, p, id1, 1002, tc.afterReserve, "after reserve")
			_, err = s.Fail(1003, r.Token, FailOptions{RetryIn: 10, HasRetry: true})
			must(t, err)
			heldNow(t, s, p, id1, 1004, tc.afterFail, "after a failed attempt")
			s.Tick(1020)
			r = reserveOne(t, s, 1020, "q")
			heldNow(t, s, p, id1, 1021, tc.afterRetryReserve, "after the retry's reserve")
			must(t, s.Ack(1022, r.Token))
			heldNow(t, s, p, id1, 1023, false, "after ack")
		})
	}
}

// heldNow reports by a push of p to another queue whether p's key is still
// held by id1 at now; a push that created a job is cancelled again, which
// lets its key go.
func heldNow(t *testing.T, s *Store, p PushOptions, id1 string, now int64, want bool, when string) {
	t.Helper()
	p.Queue = "probe"
	p.ID = "probe" + strconv.FormatInt(now, 10)
	id, err := s.Push(now, p)
	must(t, err)
	if got := id == id1; got != want {
		t.Fatalf("%s: held %v, want %v", when, got, want)
	}
	if id != id1 {
		_, err := s.Cancel(now, id)
		must(t, err)
	}
	checkInvariants(t, s)
}

// replace swaps a waiting holder's payload and options; extend also moves
// a scheduled holder's run time (debounce); neither touches a holder that
// runs, which answers as keep.
func TestUniqueReplaceAndExtend(t *testing.T) {
	s := idemStore(t, nil)
	p := uniq("q", "k", ScopeQueued, DupExtend)
	p.RunAt = 1500
	id1, err := s.Push(1000, p)
	must(t, err)
	p.Payload, p.RunAt, p.MaxAttempts = []byte("second"), 1900, 7
	id, err := s.Push(1400, p)
	must(t, err)
	eq(t, "extend's id", id, id1)
	j, _ := s.Get(1400, id1)
	eq(t, "payload", string(j.Payload), "second")
	eq(t, "run at", j.RunAt, int64(1900))
	eq(t, "max attempts", j.MaxAttempts, int64(7))
	eq(t, "state", j.State, Scheduled)
	s.Tick(1500)
	j, _ = s.Get(1500, id1)
	eq(t, "not due at the old time", j.State, Scheduled)
	// replace keeps the run time.
	p.OnDuplicate, p.Payload, p.RunAt = DupReplace, []byte("third"), 5000
	_, err = s.Push(1600, p)
	must(t, err)
	j, _ = s.Get(1600, id1)
	eq(t, "replaced payload", string(j.Payload), "third")
	eq(t, "replace keeps the run time", j.RunAt, int64(1900))
	// extend to now queues it at once.
	p.OnDuplicate, p.RunAt = DupExtend, 0
	_, err = s.Push(1700, p)
	must(t, err)
	j, _ = s.Get(1700, id1)
	eq(t, "queued by extend", j.State, Queued)
	eq(t, "jobs", s.Len(), int64(1))
	checkInvariants(t, s)
	// Another handler: not the same job, so keep.
	o := p
	o.Handler, o.Payload = "h2", []byte("other")
	id, err = s.Push(1701, o)
	must(t, err)
	eq(t, "another handler keeps", id, id1)
	j, _ = s.Get(1701, id1)
	eq(t, "payload kept", string(j.Payload), "third")
	checkInvariants(t, s)
}

// A TTL ends the key before its scope does.
func TestUniqueTTL(t *testing.T) {
	s := idemStore(t, nil)
	p := uniq("q", "k", ScopeTerminal, DupKeep)
	p.UniqueTTL = 500
	id1, err := s.Push(1000, p)
	must(t, err)
	id, err := s.Push(1499, p)
	must(t, err)
	eq(t, "within the TTL", id, id1)
	id, err = s.Push(1500, p)
	must(t, err)
	if id == id1 {
		t.Fatal("the key outlived its TTL")
	}
	eq(t, "jobs", s.Len(), int64(2))
	s.Tick(5000)
	eq(t, "keys after the sweep", s.UniqueKeys(), 0)
	checkInvariants(t, s)
}

// Idempotency and unique keys share one table: one key, one holder; the
// bound forgets idempotency keys only and refuses a unique key past it.
func TestUniqueSharesTheIdempotencyTable(t *testing.T) {
	s := idemStore(t, func(c *Config) { c.IdempotencyKeys = 3 })
	id1, err := s.Push(1000, uniq("q", "k", ScopeTerminal, DupKeep))
	must(t, err)
	id, err := s.Push(1001, keyed("q", "k"))
	must(t, err)
	eq(t, "an idempotency key answers the unique key's holder", id, id1)
	for i := 0; i < 5; i++ {
		_, err := s.Push(1002, keyed("q", "i"+strconv.Itoa(i)))
		must(t, err)
	}
	eq(t, "idempotency keys", s.IdempotencyKeys(), 2)
	_, err = s.Push(1003, uniq("q", "k2", ScopeTerminal, DupKeep))
	must(t, err)
	_, err = s.Push(1004, uniq("q", "k3", ScopeTerminal, DupKeep))
	must(t, err)
	eq(t, "idempotency keys left", s.IdempotencyKeys(), 0)
	if _, err := s.Push(1005, uniq("q", "k4", ScopeTerminal, DupKeep)); !errors.Is(err, ErrKeysFull) {
		t.Fatalf("a fourth unique key: %v, want %v", err, ErrKeysFull)
	}
	id, err = s.Push(1006, uniq("q", "k", ScopeTerminal, DupKeep))
	must(t, err)
	eq(t, "the held key still answers", id, id1)
	if _, err := s.Push(1007, PushOptions{Queue: "q", Handler: "h", UniqueKey: "x", IdempotencyKey: "y"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("both keys: %v", err)
	}
	checkInvariants(t, s)
}

// Concurrent pushes of the same keys create one job per key, and a replay
// of the log, or a load of the dump, holds the same keys with the same
// holders, releases included.
func TestUniqueConcurrentAndReplay(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 8
	live, _ := New(cfg, NewSeqGenerator())
	j := &memJournal{}
	live.SetJournal(j)
	const keys, clients = 200, 16
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < keys; i++ {
				k := (i + c*7) % keys
				p := uniq("q"+strconv.Itoa(k%5), "k"+strconv.Itoa(k), UniqueScope(1+k%3), OnDuplicate(c%4))
				p.Payload = []byte(fmt.Sprintf("c%d", c))
				if k%4 == 0 {
					p.RunAt = 5000
				}
				if _, err := live.Push(1000, p); err != nil && !errors.Is(err, ErrDupKey) {
					t.Error(err)
				}
				if i%10 == 0 {
					live.Reserve(1000, ReserveOptions{Worker: "w", Lease: 100, Queues: []string{"q" + strconv.Itoa(c%5)}})
				}
			}
		}(c)
	}
	wg.Wait()
	// Acks one at a time: jobs made terminal at once in several shards may
	// be filed into retention in another order than their records'.
	for q := 0; q < 5; q++ {
		rs, err := live.Reserve(1000, ReserveOptions{Worker: "w2", Lease: 100, Count: 5, Queues: []string{"q" + strconv.Itoa(q)}})
		must(t, err)
		for i, r := range rs {
			if i%2 == 0 {
				must(t, live.Ack(1000, r.Token))
			} else {
				_, err := live.Fail(1000, r.Token, FailOptions{})
				must(t, err)
			}
		}
	}
	checkInvariants(t, live)
	jobs := live.Len()
	released := 0
	for _, r := range j.recs {
		if r.Op == OpUniqueRelease {
			released++
		}
	}
	if released == 0 {
		t.Fatal("no key was released: the test does not cover releases")
	}
	eq(t, "jobs = keys held + keys released", jobs, int64(live.UniqueKeys()+released))
	want := dump(t, live, 1000)
	replayed := replayAll(t, cfg, j.recs, "replay")
	if diff := sameDump(dump(t, replayed, 1000), want); diff != "" {
		t.Fatalf("replayed: %s", diff)
	}
	checkInvariants(t, replayed)
	loaded := replayAll(t, cfg, want, "load")
	if diff := sameDump(dump(t, loaded, 1000), want); diff != "" {
		t.Fatalf("loaded: %s", diff)
	}
	checkInvariants(t, loaded)
	// The loaded store lets keys go as the live one does.
	for _, s := range []*Store{live, loaded} {
		s.Tick(6000)
		for q := 0; q < 5; q++ {
			for {
				rs, err := s.Reserve(6000, ReserveOptions{Worker: "w", Lease: 100, Queues: []string{"q" + strconv.Itoa(q)}})
				must(t, err)
				if len(rs) == 0 {
					break
				}
				must(t, s.Ack(6000, rs[0].Token))
			}
		}
		eq(t, "keys held once every job ran", s.UniqueKeys(), 0)
		checkInvariants(t, s)
	}
}

// A log torn after a job's end but before its key's release record leaves
// the key held by a job out of its scope: ReleaseStranded lets it go and
// logs the release, so a push of the key creates a job again and a dump
// of the store loads.
func TestUniqueReleaseStrandedByATornLog(t *testing.T) {
	cfg := DefaultConfig()
	live, _ := New(cfg, NewSeqGenerator())
	j := &memJournal{}
	live.SetJournal(j)
	id, err := live.Push(1000, uniq("q", "k", ScopeTerminal, DupReject))
	must(t, err)
	rs, err := live.Reserve(1000, ReserveOptions{Worker: "w", Lease: 100, Queues: []string{"q"}})
	must(t, err)
	must(t, live.Ack(1000, rs[0].Token))
	n := len(j.recs)
	if n == 0 || j.recs[n-1].Op != OpUniqueRelease {
		t.Fatalf("the ack's last record is %v, want uniquerelease", j.recs[n-1].Op)
	}
	torn := replayAll(t, cfg, j.recs[:n-1], "torn")
	if _, err := torn.Push(1001, uniq("q", "k", ScopeTerminal, DupReject)); !errors.Is(err, ErrDupKey) {
		t.Fatalf("before the fix-up the key is still held by %s: %v", id, err)
	}
	tj := &memJournal{}
	torn.SetJournal(tj)
	eq(t, "keys released", torn.ReleaseStranded(), 1)
	eq(t, "records logged", len(tj.recs), 1)
	eq(t, "record", tj.recs[0].Op, OpUniqueRelease)
	eq(t, "keys held", torn.UniqueKeys(), 0)
	checkInvariants(t, torn)
	loaded := replayAll(t, cfg, dump(t, torn, 1001), "load")
	checkInvariants(t, loaded)
	eq(t, "a second call", torn.ReleaseStranded(), 0)
	id2, err := torn.Push(1001, uniq("q", "k", ScopeTerminal, DupReject))
	must(t, err)
	if id2 == id {
		t.Fatalf("the push answered the old holder %s", id)
	}
}

// A holder of several keys is replaced by a push of the same keys, and
// kept by a push of other keys.
func TestUniqueReplaceSeveralKeys(t *testing.T) {
	s := idemStore(t, nil)
	p := uniq("q", "k", ScopeTerminal, DupReplace)
	p.ConcurrencyKey, p.ExtraConcurrencyKeys = "a", []string{"b"}
	id1, err := s.Push(1000, p)
	must(t, err)
	p.Payload = []byte("new")
	id, err := s.Push(1001, p)
	must(t, err)
	eq(t, "replace's id", id, id1)
	j, _ := s.Get(1001, id1)
	eq(t, "payload replaced", string(j.Payload), "new")
	o := p
	o.ExtraConcurrencyKeys, o.Payload = []string{"c"}, []byte("other")
	_, err = s.Push(1002, o)
	must(t, err)
	j, _ = s.Get(1002, id1)
	eq(t, "other keys keep", string(j.Payload), "new")
	checkInvariants(t, s)
}

// Keys released by their jobs' scope do not leave their TTL entries
// behind until the TTL ends: the heap keeps about as many entries as keys
// held with a TTL.
func TestUniqueTTLHeapStaysBounded(t *testing.T) {
	s := idemStore(t, nil)
	for i := range 10_000 {
		p := uniq("q", "k"+strconv.Itoa(i), ScopeQueued, DupKeep)
		p.UniqueTTL = 86_400_000
		_, err := s.Push(1000, p)
		must(t, err)
		rs, err := s.Reserve(1000, ReserveOptions{Worker: "w", Lease: 100, Queues: []string{"q"}})
		must(t, err)
		must(t, s.Ack(1000, rs[0].Token))
	}
	eq(t, "keys held", s.UniqueKeys(), 0)
	s.idem.mu.Lock()
	n := len(s.idem.ttl)
	s.idem.mu.Unlock()
	if n > 64 {
		t.Fatalf("%d TTL entries kept for 0 keys held", n)
	}
	checkInvariants(t, s)
}

// A replace that would grow its holder past --maxmemory is refused with
// the memory error and changes nothing; one that fits goes through.
func TestUniqueReplaceWithinMemory(t *testing.T) {
	s := idemStore(t, func(c *Config) { c.MaxBytes = 64 << 10 })
	p := uniq("q", "k", ScopeTerminal, DupReplace)
	id1, err := s.Push(1000, p)
	must(t, err)
	before := s.Memory()
	big := p
	big.Payload = make([]byte, 128<<10)
	if _, err := s.Push(1001, big); !errors.Is(err, ErrFull) {
		t.Fatalf("a replace past the limit answered %v, want the memory limit's FULL", err)
	}
	j, _ := s.Get(1001, id1)
	eq(t, "payload kept", string(j.Payload), "p")
	if after := s.Memory(); after != before {
		t.Fatalf("a refused replace changed the memory counted: %+v, before %+v", after, before)
	}
	checkInvariants(t, s)
	fits := p
	fits.Payload = make([]byte, 1<<10)
	id, err := s.Push(1002, fits)
	must(t, err)
	eq(t, "replace's id", id, id1)
	j, _ = s.Get(1002, id1)
	eq(t, "payload replaced", len(j.Payload), 1<<10)
	checkInvariants(t, s)
}

// An extend that the queue's memory share refuses changes nothing: the
// holder's payload, run time and update time, and the share's usage.
func TestUniqueExtendRefusedByShare(t *testing.T) {
	s := idemStore(t, nil)
	must(t, s.SetShares([]Share{{Pattern: "q", Bytes: 8 << 10}}))
	p := uniq("q", "k", ScopeTerminal, DupExtend)
	p.RunAt = 6000
	id, err := s.Push(1000, p)
	must(t, err)
	before := s.Shares()[0].Used
	j0, _ := s.Get(1000, id)
	big := p
	big.RunAt = 9000
	big.Payload = make([]byte, 16<<10)
	if _, err := s.Push(1001, big); !errors.Is(err, ErrFull) {
		t.Fatalf("an extend past the share answered %v, want FULL", err)
	}
	j, _ := s.Get(1001, id)
	if string(j.Payload) != "p" || j.RunAt != j0.RunAt || j.UpdatedAt != j0.UpdatedAt {
		t.Fatalf("the refused extend changed the job: %+v (was %+v)", j, j0)
	}
	if got := s.Shares()[0].Used; got != before {
		t.Fatalf("share usage %d, was %d", got, before)
	}
	checkInvariants(t, s)
}
