package store

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ids made concurrently in the same millisecond, and across a clock that
// stands still or goes back, are all distinct, and a later millisecond
// sorts after an earlier one.
func TestRandomGeneratorIDsAreUnique(t *testing.T) {
	g := NewRandomGenerator()
	var mu sync.Mutex
	seen := make(map[string]bool)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]string, 0, 20000)
			for i := 0; i < 20000; i++ {
				now := int64(1_700_000_000_000 + i/5000 - w%2) // several ids per ms, some late
				local = append(local, string(g.AppendJobID(nil, now)))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if len(id) != 16 {
					t.Errorf("id %q is not 16 characters", id)
				}
				if seen[id] {
					t.Errorf("id %q made twice", id)
				}
				seen[id] = true
			}
		}(w)
	}
	wg.Wait()
	if a, b := string(g.AppendJobID(nil, 1_800_000_000_000)), string(g.AppendJobID(nil, 1_800_000_000_001)); a[:9] >= b[:9] {
		t.Fatalf("a later millisecond does not sort later: %s, %s", a, b)
	}
}

// A slot that counts through its whole range within one millisecond moves
// on to the next millisecond instead of repeating an id.
func TestRandomGeneratorCounterOverflow(t *testing.T) {
	g := NewRandomGenerator()
	for i := range g.slots {
		g.slots[i].last = 5
		g.slots[i].ctr = 1<<genCtrBits - 1
	}
	next := string(NewRandomGenerator().AppendJobID(nil, 6))[:9]
	if id := string(g.AppendJobID(nil, 5)); id[:9] != next {
		t.Fatalf("after a full count, id %s is not in the next millisecond (%s)", id, next)
	}
	seen := make(map[string]bool)
	for i := 0; i < 1000; i++ {
		id := string(g.AppendJobID(nil, 5))
		if seen[id] {
			t.Fatalf("id %q repeated after the counter wrapped", id)
		}
		seen[id] = true
	}
}

// UniqueNames keeps first appearances in order, for short lists and for
// the long ones it handles with a set.
func TestUniqueNames(t *testing.T) {
	short := UniqueNames([]string{"b", "a", "b", "c", "a"})
	if strings.Join(short, ",") != "b,a,c" {
		t.Fatalf("short: %v", short)
	}
	var long, want []string
	for i := 0; i < 100; i++ {
		long = append(long, strconv.Itoa(i%40))
		if i < 40 {
			want = append(want, strconv.Itoa(i))
		}
	}
	if got := UniqueNames(long); !slices.Equal(got, want) {
		t.Fatalf("long: %v", got)
	}
}
