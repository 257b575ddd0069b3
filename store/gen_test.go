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

// TestPushesToAQueueCountUp: a queue's shard draws its ids from one
// sub-generator, so pushes to it in one millisecond get ids that count up,
// which the id index keeps side by side; packed or not, pushed alone or in
// a batch.
func TestPushesToAQueueCountUp(t *testing.T) {
	s, err := New(DefaultConfig(), NewRandomGenerator())
	if err != nil {
		t.Fatal(err)
	}
	const now = 1_700_000_000_000
	var ids []string
	for i := range 40 {
		p := PushOptions{Queue: "q", Handler: "h", Payload: []byte("x")}
		if i%3 == 0 {
			p.Payload = make([]byte, packMax+1) // not packed
		}
		id, err := s.Push(now, p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ps := make([]PushOptions, 20)
	for i := range ps {
		ps[i] = PushOptions{Queue: "q", Handler: "h"}
	}
	batch, errs := make([]string, len(ps)), make([]error, len(ps))
	s.PushMany(now, ps, batch, errs)
	ids = append(ids, batch...)
	ctr := func(id string) (v uint64) {
		for i := 9; i < 16; i++ {
			v = v<<5 | uint64(crockfordValue[id[i]])
		}
		return v
	}
	for i := 1; i < len(ids); i++ {
		if ids[i][:9] != ids[0][:9] || ctr(ids[i]) != ctr(ids[i-1])+1 {
			t.Fatalf("id %d %s does not follow %s", i, ids[i], ids[i-1])
		}
	}
}
