package store

import (
	"fmt"
	"testing"

	"sluice/backpressure"
)

// admitOn pushes a job with rate-limit key rk and reserves it at now: one
// admission under rk.
func admitOn(t *testing.T, s *Store, now int64, rk string) {
	t.Helper()
	if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", RateLimitKey: rk}); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1_000_000, Queues: []string{"q"}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("reserve under %s at %d: %v %v", rk, now, rs, err)
	}
}

// A store loaded from a snapshot forgets the same idle instances of a
// template as the store the snapshot was taken from: the instances were
// made in reverse key order, and the snapshot keeps that order.
func TestLoadedStoreForgetsTheSameInstances(t *testing.T) {
	cfg := DefaultConfig()
	live, err := New(cfg, NewSeqGenerator())
	must(t, err)
	must(t, live.SetRateLimit(900, "t:*", 1, 100))
	for i := 199; i >= 0; i-- {
		admitOn(t, live, 1000, fmt.Sprintf("t:%03d", i))
	}
	loaded := replayAll(t, cfg, dump(t, live, 1000), "load")
	live.gen, loaded.gen = NewSeqGenerator(), NewSeqGenerator()
	for i := range 50 {
		k := fmt.Sprintf("t:new%02d", i)
		admitOn(t, live, 2000, k)
		admitOn(t, loaded, 2000, k)
	}
	if d := sameDump(dump(t, loaded, 2000), dump(t, live, 2000)); d != "" {
		t.Fatalf("the loaded store and the live one differ: %s", d)
	}
	if a, b := live.reg.Bytes(), loaded.reg.Bytes(); a != b {
		t.Fatalf("the registry counts %d bytes live, %d loaded", a, b)
	}
}

// A read (POLICYGET) at a later time than an admission whose clock was
// read before it changes nothing the log does not: the replay forgets the
// same idle instances as the live store.
func TestReadsDoNotDecideWhatIsForgotten(t *testing.T) {
	cfg := DefaultConfig()
	live, err := New(cfg, NewSeqGenerator())
	must(t, err)
	j := &memJournal{}
	live.SetJournal(j)
	must(t, live.SetRateLimit(900, "t:*", 1, 100))
	for i := range 100 {
		admitOn(t, live, 1000, fmt.Sprintf("t:%03d", i))
	}
	for i := range 100 {
		if _, _, err := live.GetPolicy(2000, backpressure.RateLimit, fmt.Sprintf("t:%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		admitOn(t, live, 1999, fmt.Sprintf("t:late%02d", i))
	}
	want := dump(t, live, 2000)
	if d := sameDump(dump(t, replayAll(t, cfg, j.recs, "replay"), 2000), want); d != "" {
		t.Fatalf("the replay differs from the live store: %s", d)
	}
}
