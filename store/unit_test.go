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
