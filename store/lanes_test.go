package store

import (
	"fmt"
	"testing"
)

// TestParkedLanesLeaveInAnyOrder: lanes parked on one full concurrency key
// die (their only job cancelled) in an order that takes them from the
// front, the back and the middle of the queue's parked list; the list and
// each lane's place in it stay consistent, and the lanes left come back
// when the key frees.
func TestParkedLanesLeaveInAnyOrder(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRetained = 1 // a cancelled job leaves at the next cancel, and its lane with it
	s, err := New(cfg, NewSeqGenerator())
	must(t, err)
	must(t, s.SetConcurrency(1, "k", 1))
	const n = 9
	ids := make([]string, n)
	for i := range ids {
		ids[i], err = s.Push(1, PushOptions{Queue: "q", Handler: fmt.Sprintf("h%d", i), ConcurrencyKey: "k"})
		must(t, err)
	}
	// The first reservation takes the key's only slot; asking again parks
	// every other lane on the key.
	first, err := s.Reserve(2, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	must(t, err)
	if len(first) != 1 {
		t.Fatalf("first reservation: %d jobs, want 1", len(first))
	}
	rs, err := s.Reserve(3, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	must(t, err)
	if len(rs) != 0 {
		t.Fatalf("reserved %d jobs past a full key", len(rs))
	}
	left := map[string]bool{}
	for _, id := range ids {
		if id != first[0].ID {
			left[id] = true
		}
	}
	var order []string
	for _, i := range []int{0, 8, 4, 1, 7, 2} {
		if ids[i] != first[0].ID {
			order = append(order, ids[i])
		}
	}
	for _, id := range order {
		if _, err := s.Cancel(4, id); err != nil {
			t.Fatalf("cancel %s: %v", id, err)
		}
		delete(left, id)
		if err := s.CheckInvariants(); err != nil {
			t.Fatalf("after cancelling %s: %v", id, err)
		}
	}
	must(t, s.Ack(5, first[0].Token))
	got := map[string]bool{}
	for now := int64(6); len(got) < len(left); now++ {
		rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
		must(t, err)
		if len(rs) != 1 {
			t.Fatalf("at %d: %d jobs reserved, want 1 (reserved so far %v of %v)", now, len(rs), got, left)
		}
		if !left[rs[0].ID] || got[rs[0].ID] {
			t.Fatalf("reserved %s, which is cancelled or was reserved before", rs[0].ID)
		}
		got[rs[0].ID] = true
		must(t, s.Ack(now, rs[0].Token))
		must(t, s.CheckInvariants())
	}
}
