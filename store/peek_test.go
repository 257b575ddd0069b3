package store

import (
	"strconv"
	"testing"
)

// A peek of a long page lets go of the queue's lock between slices: a push
// to the same queue, made while the peek is under way, goes through at
// once, and the page still lists every job once, in order.
func TestPeekReleasesTheLockBetweenSlices(t *testing.T) {
	s, err := New(DefaultConfig(), NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	const now = 1000
	var want []string
	for i := range 200 {
		id, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", Payload: []byte("p"), Priority: int64(i % 3)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	sh := s.shardOf("q")
	slices, pushed := 0, ""
	SetPeekSlice(s, 16, func() {
		slices++
		if !sh.mu.TryLock() {
			t.Fatal("the queue's lock is held between slices")
		}
		sh.mu.Unlock()
		if pushed == "" { // a new job of the lowest priority: it comes last
			pushed, err = s.Push(now, PushOptions{Queue: "q", Handler: "h", Payload: []byte("p"), Priority: -1})
			if err != nil {
				t.Error(err)
			}
		}
	})
	js, err := s.Peek(now, "q", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if slices < 200/16 {
		t.Fatalf("%d slices for 201 jobs in slices of 16", slices)
	}
	if len(js) != 201 || js[200].ID != pushed {
		t.Fatalf("peek listed %d jobs, want 201 ending with %s", len(js), pushed)
	}
	seen := map[string]bool{}
	for i, j := range js {
		if seen[j.ID] {
			t.Fatalf("job %s listed twice", j.ID)
		}
		seen[j.ID] = true
		if i > 0 && j.Priority > js[i-1].Priority {
			t.Fatalf("job %d (priority %d) after one of priority %d", i, j.Priority, js[i-1].Priority)
		}
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("job %s missing", id)
		}
	}
}

// A page stops before the job that would take its payloads past MaxBytes,
// but always holds one job; its cursor goes on from there.
func TestPeekPageBoundsItsBytes(t *testing.T) {
	s, err := New(DefaultConfig(), NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	const now = 1000
	payload := make([]byte, 1000)
	for i := range 10 {
		if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", Payload: payload, ID: "j" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	pg, err := s.PeekPage(now, "q", PeekOptions{Count: 10, MaxBytes: 3500})
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Jobs) != 3 || pg.Done || pg.Jobs[2].ID != "j2" {
		t.Fatalf("page of %d jobs (done %v), want 3 within 3500 bytes", len(pg.Jobs), pg.Done)
	}
	pg, err = s.PeekPage(now, "q", PeekOptions{Count: 10, MaxBytes: 10, After: pg.Next})
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Jobs) != 1 || pg.Jobs[0].ID != "j3" {
		t.Fatalf("page over a tiny budget: %d jobs, want j3 alone", len(pg.Jobs))
	}
	c, err := ParsePeekCursor(pg.Next.String())
	if err != nil || c != pg.Next {
		t.Fatalf("cursor %q read back as %v, %v", pg.Next, c, err)
	}
	for _, bad := range []string{"", "x", "1:", ":1", "1:-1", "1:2:3"} {
		if _, err := ParsePeekCursor(bad); err == nil {
			t.Fatalf("cursor %q accepted", bad)
		}
	}
}
