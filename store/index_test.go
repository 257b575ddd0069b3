package store

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestIDShardAgainstMap drives one index shard with hashes crowded into a
// few home slots, so that probe sequences run long, wrap around and cross
// each other, and checks every answer and the whole content against a map.
func TestIDShardAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var sh idShard
	want := map[string]*job{}
	hashes := map[string]uint64{}
	hashOf := func(id string) uint64 {
		h, ok := hashes[id]
		if !ok {
			h = r.Uint64()&^63 | uint64(r.IntN(5)) | uint64(r.IntN(2))<<60
			hashes[id] = h
		}
		return h
	}
	for step := 0; step < 200_000; step++ {
		id := "j" + strconv.Itoa(r.IntN(300))
		h := hashOf(id)
		switch r.IntN(3) {
		case 0:
			j := &job{id: id}
			_, had := want[id]
			if got := sh.insert(h, id, ref{j: j}); got == had {
				t.Fatalf("step %d: insert %s = %v with the id present %v", step, id, got, had)
			}
			if !had {
				want[id] = j
			}
		case 1:
			j := want[id]
			if j == nil || r.IntN(4) == 0 {
				j = &job{id: id} // a job the shard does not hold under id
			}
			_, had := want[id]
			if got := sh.remove(slotOf(h, ref{j: j})); got != (had && want[id] == j) {
				t.Fatalf("step %d: remove %s = %v", step, id, got)
			}
			if want[id] == j {
				delete(want, id)
			}
		case 2:
			if got := sh.lookup(h, id).j; got != want[id] {
				t.Fatalf("step %d: lookup %s = %p, want %p", step, id, got, want[id])
			}
		}
		if sh.n != len(want) {
			t.Fatalf("step %d: shard counts %d, map holds %d", step, sh.n, len(want))
		}
	}
	for id, j := range want {
		if got := sh.lookup(hashOf(id), id).j; got != j {
			t.Fatalf("lookup %s at the end = %p, want %p", id, got, j)
		}
	}
	held := 0
	for _, s := range sh.slots {
		if s.p != nil {
			held++
		}
	}
	if held != len(want) {
		t.Fatalf("slots hold %d jobs, want %d", held, len(want))
	}
}
