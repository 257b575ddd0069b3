package store

import (
	"bytes"
	"errors"
	"sync"
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

// syncJournal numbers records, tells how far it has appended, and notes
// the highest sequence number waited for.
type syncJournal struct {
	mu     sync.Mutex
	ops    []Op
	waited uint64
}

func (j *syncJournal) Append(r Record) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ops = append(j.ops, r.Op)
	return uint64(len(j.ops))
}

func (j *syncJournal) Appended() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return uint64(len(j.ops))
}

func (j *syncJournal) Wait(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.waited = max(j.waited, seq)
	return nil
}

func (j *syncJournal) Err() error { return nil }

// seqOf is the sequence number of the last record of op.
func (j *syncJournal) seqOf(op Op) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := len(j.ops) - 1; i >= 0; i-- {
		if j.ops[i] == op {
			return uint64(i + 1)
		}
	}
	return 0
}

// SyncEnd waits for the record that ended the job, whichever way it ended
// (an ack logs before filing the job, an expiry after), and for everything
// appended when the job is gone.
func TestSyncEndWaitsForTheEndingRecord(t *testing.T) {
	j := &syncJournal{}
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	s.SetJournal(j)
	id, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h"})
	must(t, err)
	rs, err := s.Reserve(1000, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	must(t, err)
	must(t, s.Ack(1001, rs[0].Token))
	must(t, s.SyncEnd(id))
	if want := j.seqOf(OpAck); want == 0 || j.waited < want {
		t.Fatalf("SyncEnd waited for %d, the ack is record %d", j.waited, want)
	}
	late, err := s.Push(1002, PushOptions{Queue: "q", Handler: "h", Deadline: 2000})
	must(t, err)
	s.Tick(2001) // the deadline passes: the job expires, logged after it is filed
	if got, _ := s.Get(2001, late); got.State != Expired {
		t.Fatalf("the job is %s, want expired", got.State)
	}
	must(t, s.SyncEnd(late))
	if want := j.seqOf(OpLapse); want == 0 || j.waited < want {
		t.Fatalf("SyncEnd waited for %d, the expiry is record %d", j.waited, want)
	}
	s.Flush(2002)
	must(t, s.SyncEnd(late))
	if j.waited != j.Appended() {
		t.Fatalf("for a job gone SyncEnd waited for %d of %d appended", j.waited, j.Appended())
	}
}
