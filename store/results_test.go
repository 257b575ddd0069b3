package store

import (
	"bytes"
	"errors"
	"testing"
)

// TestResultsKeptReplayedAndCounted: a result and a progress report are
// shown by Get, counted in the store's memory, logged so that a replay and
// a dump rebuild them, and announced to the end hook.
func TestResultsKeptReplayedAndCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 2
	s, _ := New(cfg, NewSeqGenerator())
	j := &memJournal{}
	s.SetJournal(j)
	var ends []Ended
	s.SetEndHook(func(e Ended) { e.ID = string([]byte(e.ID)); ends = append(ends, e) })
	id, _ := s.Push(1, PushOptions{Queue: "q", Handler: "h", Payload: []byte("p")})
	id2, _ := s.Push(1, PushOptions{Queue: "q", Handler: "h", Payload: []byte("p")})
	rs, err := s.Reserve(2, ReserveOptions{Worker: "w", Lease: 1000, Count: 2, Queues: []string{"q"}})
	if err != nil || len(rs) != 2 {
		t.Fatal(rs, err)
	}
	before := s.Bytes()
	if err := s.Progress(3, rs[0].Token, []byte("50%")); err != nil {
		t.Fatal(err)
	}
	if err := s.Progress(4, rs[0].Token, bytes.Repeat([]byte("x"), MaxProgress+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized progress: %v", err)
	}
	if err := s.Progress(4, "q.nope", []byte("1")); !errors.Is(err, ErrNoReservation) {
		t.Fatalf("foreign token: %v", err)
	}
	if got, _ := s.Get(5, id); string(got.Progress) != "50%" || got.UpdatedAt != 3 || got.ExpiresAt != 1002 {
		t.Fatalf("after progress: %+v (the lease stays as it was)", got)
	}
	if err := s.AckResult(6, rs[0].Token, []byte("done!")); err != nil {
		t.Fatal(err)
	}
	if err := s.AckResult(6, rs[1].Token, []byte{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Bytes() - before; got != int64(len("50%")+len("done!")) {
		t.Fatalf("memory grew by %d, want %d", got, len("50%")+len("done!"))
	}
	got, _ := s.Get(7, id)
	if string(got.Result) != "done!" || string(got.Progress) != "50%" || got.State != Succeeded {
		t.Fatalf("after ack: %+v", got)
	}
	if g2, _ := s.Get(7, id2); g2.Result == nil || len(g2.Result) != 0 || g2.Progress != nil {
		t.Fatalf("an empty result is kept as empty, no progress as none: %+v", g2)
	}
	if len(ends) != 2 || ends[0].ID != id || string(ends[0].Result) != "done!" || ends[0].State != Succeeded {
		t.Fatalf("end hook saw %+v", ends)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s, 8)
	replayed := replayAll(t, cfg, j.recs, "replay")
	if r, _ := replayed.Get(7, id); string(r.Result) != "done!" || string(r.Progress) != "50%" {
		t.Fatalf("replayed: %+v", r)
	}
	if replayed.Bytes() != s.Bytes() {
		t.Fatalf("replayed memory %d, live %d", replayed.Bytes(), s.Bytes())
	}
	loaded := replayAll(t, cfg, want, "load")
	if r, _ := loaded.Get(7, id); string(r.Result) != "done!" || string(r.Progress) != "50%" {
		t.Fatalf("loaded: %+v", r)
	}
	if r, _ := loaded.Get(7, id2); r.Result == nil {
		t.Fatalf("loaded empty result: %+v", r)
	}
	if loaded.Bytes() != s.Bytes() {
		t.Fatalf("loaded memory %d, live %d", loaded.Bytes(), s.Bytes())
	}
	// Dropping the jobs gives their memory back.
	s.Flush(9)
	if s.Bytes() != 0 || len(ends) != 3 || ends[2].ID != "" {
		t.Fatalf("after flush: %d bytes, ends %+v", s.Bytes(), ends)
	}
}
