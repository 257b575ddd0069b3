package store

import (
	"testing"
)

// Two generators given the same entries draw the same ids and tokens; ids
// stay unique and ordered within and across milliseconds; a restored state
// goes on where the saved one left off.
func TestEntryGeneratorDeterministicAndUnique(t *testing.T) {
	var a, b EntryGenerator
	seen := map[string]bool{}
	draw := func(g *EntryGenerator, now int64) (id, tok string) {
		return string(g.AppendJobID(nil, now)), string(g.AppendToken(nil, now))
	}
	now := int64(1765100000000)
	for e := range 200 {
		seed := []byte{byte(e), byte(e >> 8), 7, 7, 7, 7, 7, 7}
		a.Begin(seed)
		b.Begin(seed)
		if e%3 == 0 {
			now++
		}
		prev := ""
		for range 50 {
			ia, ta := draw(&a, now)
			ib, tb := draw(&b, now)
			if ia != ib || ta != tb {
				t.Fatalf("entry %d: %s/%s vs %s/%s", e, ia, ta, ib, tb)
			}
			if seen[ia] || seen["t"+ta] {
				t.Fatalf("entry %d: %s or token %s drawn twice", e, ia, ta)
			}
			if prev != "" && ia <= prev {
				t.Fatalf("ids out of order: %s after %s", ia, prev)
			}
			seen[ia], seen["t"+ta], prev = true, true, ia
		}
	}
	var c EntryGenerator
	if err := c.SetState(a.State()); err != nil {
		t.Fatal(err)
	}
	a.Begin([]byte("seed"))
	c.Begin([]byte("seed"))
	if x, y := string(a.AppendJobID(nil, now)), string(c.AppendJobID(nil, now)); x != y || seen[x] {
		t.Fatalf("after restore: %s vs %s (seen before: %v)", x, y, seen[x])
	}
	if err := c.SetState([]byte("short")); err == nil {
		t.Fatal("a short state accepted")
	}
}

// A token is not told by the one before it: its second half comes from
// the entry's seed, so two generators at the same count with different
// seeds draw different tokens.
func TestEntryGeneratorTokensFollowTheSeed(t *testing.T) {
	var a, b EntryGenerator
	a.Begin([]byte("0123456789abcdef"))
	b.Begin([]byte("0123456789abcdeX"))
	ta, tb := string(a.AppendToken(nil, 0)), string(b.AppendToken(nil, 0))
	if len(ta) != 26 || ta[:13] != tb[:13] || ta[13:] == tb[13:] {
		t.Fatalf("tokens %s and %s", ta, tb)
	}
}
