package store

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Inside a unit nothing else runs: the timer's Tick waits for it, and the
// queues it notifies are told only after it, so a blocked reservation is
// never served in the middle of a transaction.
func TestUnitExcludesTickAndDefersNotifications(t *testing.T) {
	s, err := New(DefaultConfig(), NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var told []string
	s.SetNotify(func(q string) { mu.Lock(); told = append(told, q); mu.Unlock() })
	notified := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(told) }

	s.BeginUnit()
	for _, q := range []string{"a", "b", "a"} {
		if _, err := s.Push(1000, PushOptions{Queue: q, Handler: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := notified(); len(got) != 0 {
		t.Fatalf("notified %v inside the unit", got)
	}
	ticked := make(chan struct{})
	go func() { s.Tick(2000); close(ticked) }()
	select {
	case <-ticked:
		t.Fatal("Tick ran inside a unit")
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.EndUnit(); err != nil {
		t.Fatal(err)
	}
	<-ticked
	if got := notified(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("notified %v after the unit, want [a b]", got)
	}
	// Outside a unit, a push notifies at once again.
	if _, err := s.Push(3000, PushOptions{Queue: "c", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	if got := notified(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("notified %v, want [a b c]", got)
	}
}

// unitJournal is a UnitJournal whose records become durable only when the
// test says so: Wait blocks until sync has passed the sequence number, and
// reports every wait it has to make on waits.
type unitJournal struct {
	mu       sync.Mutex
	cond     *sync.Cond
	inUnit   bool
	appended uint64
	synced   uint64
	waits    chan uint64
}

var _ UnitJournal = (*unitJournal)(nil)

func newUnitJournal() *unitJournal {
	j := &unitJournal{waits: make(chan uint64, 16)}
	j.cond = sync.NewCond(&j.mu)
	return j
}

func (j *unitJournal) Append(Record) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.inUnit {
		return 0
	}
	j.appended++
	return j.appended
}

func (j *unitJournal) BeginUnit() { j.mu.Lock(); j.inUnit = true; j.mu.Unlock() }

func (j *unitJournal) EndUnit() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.inUnit = false
	j.appended++
	return j.appended
}

func (j *unitJournal) Wait(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.synced >= seq {
		return nil
	}
	j.waits <- seq
	for j.synced < seq {
		j.cond.Wait()
	}
	return nil
}

func (j *unitJournal) Err() error { return nil }

// sync makes everything appended so far durable.
func (j *unitJournal) sync() {
	j.mu.Lock()
	j.synced = j.appended
	j.cond.Broadcast()
	j.mu.Unlock()
}

// A retry of a key first pushed inside a unit waits for the unit's record,
// as the unit's own reply does, even when it runs between the unit's end
// and its fsync: otherwise a crash could lose a job the retry was told of.
func TestIdemRetryAfterUnitWaitsForTheUnit(t *testing.T) {
	s := idemStore(t, nil)
	j := newUnitJournal()
	s.SetJournal(j)

	s.BeginUnit()
	id, err := s.Push(1000, keyed("q", "k"))
	must(t, err)
	ended := make(chan error, 1)
	go func() { ended <- s.EndUnit() }()
	unitSeq := <-j.waits // EndUnit let the gate go and waits for its fsync

	type result struct {
		id  string
		err error
	}
	retried := make(chan result, 1)
	go func() {
		id, err := s.Push(1000, keyed("q", "k"))
		retried <- result{id, err}
	}()
	select {
	case r := <-retried:
		t.Fatalf("the retry answered %q, %v before the unit's record was durable", r.id, r.err)
	case seq := <-j.waits:
		if seq < unitSeq {
			t.Fatalf("the retry waited for record %d, want the unit's %d", seq, unitSeq)
		}
	}
	j.sync()
	must(t, <-ended)
	r := <-retried
	must(t, r.err)
	eq(t, "retry's id", r.id, id)
	checkInvariants(t, s)
}
