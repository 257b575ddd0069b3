package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestMultiKeyParksAndWakes: a lane of several keys refused by more than
// one is parked on the one that ends last (a rate window), stays off the
// heaps, names every refusing key in blocked_by, and, when that key frees
// while another still refuses, is parked on that other one and woken when
// it frees: no wake-up is lost across the re-park.
func TestMultiKeyParksAndWakes(t *testing.T) {
	f := newFixture(t)
	must(t, f.s.SetConcurrency(f.now, "global", 1))
	must(t, f.s.SetConcurrency(f.now, "cust:*", 1))
	must(t, f.s.SetRateLimit(f.now, "win", 1, 500))
	j1 := f.push("q h ck=global ck+=cust:a rk=win")
	j2 := f.push("q h ck=global ck+=cust:a rk=win")
	j3 := f.push("q h ck=cust:a")
	id, tok1 := f.one("q")
	eq(t, "first", id, j1)

	none, _ := f.one("q")
	eq(t, "reserved while every key refuses", none, "")
	j, _ := f.s.Get(f.now, j2)
	eq(t, "blocked_by", j.BlockedBy, fmt.Sprintf("concurrency:global 1/1, concurrency:cust:a 1/1, ratelimit:win until %d", f.now+500))
	eq(t, "concurrency keys", fmt.Sprint(j.ConcurrencyKeys), "[global cust:a]")
	eq(t, "rate-limit keys", fmt.Sprint(j.RateLimitKeys), "[]")
	q := f.s.shardOf("q").queues["q"]
	eq(t, "lanes on the heap", len(q.heap), 0)
	l := q.lanes[laneKey{"h", "global", "win", "", moreKey([]string{"cust:a"}, nil)}]
	if l == nil || !l.parked || l.on.key != "win" {
		t.Fatalf("lane of j2 parked on %+v, want on win", l)
	}

	// j1 done: global and cust:a free, j3 goes; j2's lane stays parked on
	// its window.
	must(t, f.s.Ack(f.now, tok1))
	id, tok3 := f.one("q")
	eq(t, "after the ack", id, j3)
	none, _ = f.one("q")
	eq(t, "j2 before its window opens", none, "")

	// The window opens; cust:a (held by j3, whose lease lasts 1000 ms)
	// still refuses: parked on it.
	f.now += 500
	f.s.Tick(f.now)
	none, _ = f.one("q")
	eq(t, "j2 while cust:a is held", none, "")
	if !l.parked || l.on.key != "cust:a" {
		t.Fatalf("lane of j2 parked on %+v, want on cust:a", l.on)
	}
	j, _ = f.s.Get(f.now, j2)
	eq(t, "blocked_by", j.BlockedBy, "concurrency:cust:a 1/1")
	must(t, f.s.Ack(f.now, tok3))
	id, _ = f.one("q")
	eq(t, "j2 once cust:a frees", id, j2)
	f.check()
}

// TestMultiKeyRefusalRecordsNothing: a job refused by one of its keys
// takes no slot under its other caps and no admission in its other
// windows, so a job of those keys alone still goes.
func TestMultiKeyRefusalRecordsNothing(t *testing.T) {
	f := newFixture(t)
	must(t, f.s.SetConcurrency(f.now, "global", 1))
	must(t, f.s.SetRateLimit(f.now, "gwin", 1, 1000))
	must(t, f.s.SetConcurrency(f.now, "cust:a", 1))
	_, tok := f.one("q") // nothing yet
	eq(t, "empty", tok, "")
	hold := f.push("q h ck=cust:a")
	id, _ := f.one("q")
	eq(t, "holder", id, hold)
	f.push("q h ck=global ck+=cust:a rk=gwin")
	none, _ := f.one("q")
	eq(t, "refused by cust:a", none, "")
	p, _, _ := f.s.GetPolicy(f.now, 1, "global")
	eq(t, "global active", p.Active, int64(0))
	w, _, _ := f.s.GetPolicy(f.now, 2, "gwin")
	eq(t, "gwin admissions", w.Active, int64(0))
	other := f.push("q h ck=global rk=gwin")
	id, _ = f.one("q")
	eq(t, "a job of global and gwin alone", id, other)
}

// TestMultiKeyBadInput: a fifth key of a kind, a key given twice, and a
// further key without a first are refused with a clear error and change
// nothing.
func TestMultiKeyBadInput(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		p    PushOptions
		want string
	}{
		{PushOptions{ConcurrencyKey: "a", ExtraConcurrencyKeys: []string{"b", "c", "d", "e"}}, "at most 4 concurrency keys, 5 are given"},
		{PushOptions{RateLimitKey: "a", ExtraRateLimitKeys: []string{"b", "c", "d", "e"}}, "at most 4 rate-limit keys, 5 are given"},
		{PushOptions{ConcurrencyKey: "a", ExtraConcurrencyKeys: []string{"b", " a "}}, `concurrency key "a" is given twice`},
		{PushOptions{RateLimitKey: "x", ExtraRateLimitKeys: []string{"y", "y"}}, `rate-limit key "y" is given twice`},
		{PushOptions{ExtraConcurrencyKeys: []string{"b"}}, "after an empty one"},
		{PushOptions{ConcurrencyKey: "a", ExtraConcurrencyKeys: []string{" "}}, "must not be empty"},
	} {
		c.p.Queue, c.p.Handler = "q", "h"
		_, err := f.s.Push(f.now, c.p)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("push %+v: %v, want an error saying %q", c.p, err, c.want)
		}
	}
	if st, _ := f.s.QueueStats(f.now, "q"); st.Queued != 0 || st.PushedTotal != 0 {
		t.Fatalf("refused pushes left %+v", st)
	}
	// Four of each, the same key as both kinds, is fine.
	id := f.push("q h ck=a ck+=b ck+=c ck+=d rk=a rk+=b rk+=c rk+=d")
	j, _ := f.s.Get(f.now, id)
	eq(t, "keys", fmt.Sprint(j.ConcurrencyKeys, j.RateLimitKeys), "[a b c d] [a b c d]")
	got, _ := f.one("q")
	eq(t, "reserved", got, id)
}

// SplitBlockedBy undoes blocksOf's join: one reason a key, a key that
// holds ", " itself kept whole.
func TestSplitBlockedBy(t *testing.T) {
	for in, want := range map[string][]string{
		"concurrency:a 2/2":                         {"concurrency:a 2/2"},
		"concurrency:a, b 1/1, ratelimit:x 2/2":     {"concurrency:a, b 1/1", "ratelimit:x 2/2"},
		"throttled:k until 5, breaker:key:api open": {"throttled:k until 5", "breaker:key:api open"},
		"paused": {"paused"},
	} {
		if got := SplitBlockedBy(in); !slices.Equal(got, want) {
			t.Errorf("SplitBlockedBy(%q) = %q, want %q", in, got, want)
		}
	}
}
