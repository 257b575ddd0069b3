package backpressure

import (
	"fmt"
	"testing"
)

func pairs(ps ...[2]string) []*Keys {
	out := make([]*Keys, len(ps))
	for i, p := range ps {
		out[i] = &Keys{CKey: p[0], RKey: p[1]}
	}
	return out
}

// TestAdmitAllRefusalRecordsNothing: a job of several keys refused by one
// of them counts nothing on the others (no slot under a cap, no
// admission in a window), the refusal names every key that refuses, and
// its waiter waits on the key that ends last.
func TestAdmitAllRefusalRecordsNothing(t *testing.T) {
	r := New()
	mustOK := func(_ []Waiter, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustOK(r.SetConcurrency("global", 2))
	mustOK(r.SetConcurrency("cust:a", 1))
	mustOK(r.SetRateLimit(0, "win", 5, 1000))
	mustOK(r.SetRateLimit(0, "cwin", 1, 1000))
	job := func() []*Keys { return pairs([2]string{"global", "win"}, [2]string{"cust:a", "cwin"}) }

	if a := r.AdmitAll(100, job(), "w1"); !a.OK || !a.Rated || a.At != 100 {
		t.Fatalf("first admission = %+v", a)
	}
	// cust:a is full and cwin's window too: both named, nothing counted.
	a := r.AdmitAll(200, job(), "w2")
	if a.OK || len(a.Blocks) != 2 {
		t.Fatalf("second admission = %+v, want refused by two keys", a)
	}
	if got := fmt.Sprint(a.Blocks[0], " ", a.Blocks[1]); got != "concurrency:cust:a 1/1 ratelimit:cwin until 1100" {
		t.Fatalf("blocks = %s", got)
	}
	if a.Block.Key != "cwin" {
		t.Fatalf("waits on %s, want cwin (its window ends by itself, and nothing admits before)", a.Block.Key)
	}
	if n := r.Active("global"); n != 1 {
		t.Fatalf("global counts %d active jobs after a refusal, want 1", n)
	}
	if times, _, _ := r.Admissions(0, "win"); len(times) != 1 {
		t.Fatalf("win holds %v after a refusal, want one admission", times)
	}
	// A job refused by its second key alone leaves the first untouched.
	b := r.AdmitAll(300, pairs([2]string{"global", "win"}, [2]string{"", "cwin"}), "w3")
	if b.OK || len(b.Blocks) != 1 || b.Blocks[0].Key != "cwin" {
		t.Fatalf("admission = %+v, want refused by cwin", b)
	}
	if n := r.Active("global"); n != 1 {
		t.Fatalf("global counts %d after a refusal by another key, want 1", n)
	}
	if times, _, _ := r.Admissions(0, "win"); len(times) != 1 {
		t.Fatalf("win holds %v after a refusal by another key", times)
	}
	// The waiter is on cwin: lifting its policy hands it back.
	if _, ws := r.Delete(RateLimit, "cwin"); fmt.Sprint(ws) != "[w2]" && fmt.Sprint(ws) != "[w2 w3]" && fmt.Sprint(ws) != "[w3 w2]" {
		t.Fatalf("cwin's waiters = %v, want w2 among them", ws)
	}
	// With cwin gone only cust:a refuses; releasing it wakes the waiter.
	c := r.AdmitAll(400, job(), "w4")
	if c.OK || c.Block.Key != "cust:a" {
		t.Fatalf("admission = %+v, want refused by cust:a", c)
	}
	if ws := r.Release("cust:a"); fmt.Sprint(ws) != "[w4]" {
		t.Fatalf("released cust:a wakes %v, want [w4]", ws)
	}
	if a := r.AdmitAll(500, job(), nil); !a.OK {
		t.Fatalf("admission after the release = %+v", a)
	}
	if n := r.Active("global"); n != 2 {
		t.Fatalf("global counts %d, want 2", n)
	}
}

// TestAdmitAllJudgesAtOneInstant: every window of a job is judged and
// recorded at the latest of now and their clocks, so a replay passing At
// to TakeAll records the same times.
func TestAdmitAllJudgesAtOneInstant(t *testing.T) {
	r := New()
	r.SetRateLimit(0, "x", 10, 1000)
	r.SetRateLimit(0, "y", 10, 1000)
	r.Admit(500, "", "y", nil) // y's clock is 500
	a := r.AdmitAll(400, pairs([2]string{"", "x"}, [2]string{"", "y"}), nil)
	if !a.OK || a.At != 500 {
		t.Fatalf("admission = %+v, want at 500", a)
	}
	for _, k := range []string{"x", "y"} {
		if times, clock, _ := r.Admissions(0, k); times[len(times)-1] != 500 || clock != 500 {
			t.Fatalf("%s holds %v (clock %d), want the last at 500", k, times, clock)
		}
	}
	replay := New()
	replay.SetRateLimit(0, "x", 10, 1000)
	replay.SetRateLimit(0, "y", 10, 1000)
	replay.Take(500, "", "y")
	replay.TakeAll(a.At, pairs([2]string{"", "x"}, [2]string{"", "y"}), true)
	for _, k := range []string{"x", "y"} {
		w, _, _ := r.Admissions(0, k)
		g, _, _ := replay.Admissions(0, k)
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Fatalf("%s: replay holds %v, live %v", k, g, w)
		}
	}
}
