package store

import (
	"fmt"
	"hash/maphash"
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

func genID(ms, ctr uint64) string { return string(appendGenID(nil, ms, ctr)) }

// TestIDHashKeepsRunsTogether checks that ids a sub-generator makes one
// after another in one millisecond hash to neighbouring slots of one shard,
// which is what makes a run of pushes touch few cache lines, and that a
// run ends every 1<<runBits counts, so ids chosen to be consecutive cannot
// build one long cluster.
func TestIDHashKeepsRunsTogether(t *testing.T) {
	var x idIndex
	x.init()
	g := NewRandomGenerator()
	ids := map[string]bool{}
	for range 20_000 {
		ids[string(g.AppendJobID(nil, 1_700_000_000_000))] = true
	}
	neighbours := 0
	for id := range ids {
		next := genID(1_700_000_000_000, decode(t, id[9:])+1)
		if !ids[next] || decode(t, id[9:])&(1<<runBits-1) == 1<<runBits-1 {
			continue
		}
		neighbours++
		h, sh := x.shard(id)
		hn, shn := x.shard(next)
		if hn != h+1 || shn != sh {
			t.Fatalf("%s and the next id %s hash to %#x and %#x, shards %p and %p", id, next, h, hn, sh, shn)
		}
	}
	if neighbours < 10_000 {
		t.Fatalf("only %d of %d generated ids have their successor in the same run", neighbours, len(ids))
	}
	breaks := 0
	for c := uint64(0); c < 1<<12; c++ {
		a, b := x.hash(genID(7, c)), x.hash(genID(7, c+1))
		if (c+1)%(1<<runBits) == 0 {
			if b == a+1 {
				breaks++ // a 1 in 2^64 coincidence, at most once
			}
		} else if b != a+1 {
			t.Fatalf("counts %d and %d in one run hash to %#x and %#x", c, c+1, a, b)
		}
	}
	if breaks > 1 {
		t.Fatalf("%d runs of consecutive ids went on past %d ids", breaks, 1<<runBits)
	}
}

// decode reads Crockford base32 characters as a number.
func decode(t *testing.T, s string) uint64 {
	var v uint64
	for i := range len(s) {
		d := crockfordValue[s[i]]
		if d > 31 {
			t.Fatalf("%q is not Crockford base32", s)
		}
		v = v<<5 | uint64(d)
	}
	return v
}

// TestIDHashOfOtherIDs checks that any id not in the generated form, the
// ids clients choose, is hashed whole, and that the generated form is only
// the canonical one: the lower-case or look-alike spellings of a generated
// id are other ids.
func TestIDHashOfOtherIDs(t *testing.T) {
	var x idIndex
	x.init()
	for _, id := range []string{
		"", "j1", "order-42", "0000000000000000X", "000000000000000",
		"01hzx3k9q7m2abcd", // lower case
		"01HZX3K9Q7M2ABCU", // U is not in the alphabet
		"01HZX3K9Q7M2ABCI", "01HZX3K9Q7M2ABCL", "01HZX3K9Q7M2ABCO",
		"01HZX3K9Q7M2ABC\x00", "\xff1HZX3K9Q7M2ABCD",
	} {
		if got, want := x.hash(id), maphash.String(x.seed, id); got != want {
			t.Errorf("hash(%q) = %#x, want the whole id's hash %#x", id, got, want)
		}
	}
	if x.hash("01HZX3K9Q7M2ABCD") == maphash.String(x.seed, "01HZX3K9Q7M2ABCD") {
		t.Errorf("a generated-form id was hashed whole")
	}
}

// TestIDIndexAgainstMap drives the whole index with ids in the generated
// form, crowded into a few runs that cross run boundaries, mixed with
// other ids, and checks every answer against a map.
func TestIDIndexAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var x idIndex
	x.init()
	want := map[string]*job{}
	id := func() string {
		switch r.IntN(3) {
		case 0:
			return "c" + strconv.Itoa(r.IntN(200))
		default:
			return genID(uint64(r.IntN(2)), uint64(r.IntN(3))<<26|60+uint64(r.IntN(200)))
		}
	}
	for step := 0; step < 200_000; step++ {
		id := id()
		switch r.IntN(3) {
		case 0:
			j := &job{id: id}
			_, had := want[id]
			if got := x.putIfAbsent(id, ref{j: j}); got == had {
				t.Fatalf("step %d: put %s = %v with the id present %v", step, id, got, had)
			}
			if !had {
				want[id] = j
			}
		case 1:
			if j := want[id]; j != nil && x.remove(id, ref{j: j}) {
				delete(want, id)
			} else if j != nil {
				t.Fatalf("step %d: remove %s failed", step, id)
			}
		case 2:
			if got := x.get(id).j; got != want[id] {
				t.Fatalf("step %d: get %s = %p, want %p", step, id, got, want[id])
			}
		}
	}
	if got := len(x.all()); got != len(want) {
		t.Fatalf("index holds %d ids, want %d", got, len(want))
	}
	for id, j := range want {
		if got := x.get(id).j; got != j {
			t.Fatalf("get %s at the end = %p, want %p", id, got, j)
		}
	}
}

// idSchemes make the i-th id of a benchmark: generated ids come as a
// server pushing about 300 a millisecond makes them; "hex" ids are a
// client's own sequential upper-case hexadecimal ids, which look like
// generated ones and fill whole runs; "named" ids are hashed whole.
func idSchemes() map[string]func(i int) string {
	g := NewRandomGenerator()
	var ms int64 = 1_700_000_000_000
	return map[string]func(i int) string{
		"generated": func(i int) string {
			if i%300 == 0 {
				ms++
			}
			return string(g.AppendJobID(nil, ms))
		},
		"hex":   func(i int) string { return fmt.Sprintf("%016X", i) },
		"named": func(i int) string { return "job-" + strconv.Itoa(i) },
	}
}

// benchIDs indexes held jobs and returns them with n more to come.
func benchIDs(b *testing.B, scheme func(int) string, held, n int) (*idIndex, []job) {
	x := &idIndex{}
	x.init()
	jobs := make([]job, held+n)
	for i := range jobs {
		jobs[i].id = scheme(i)
	}
	for i := range held {
		x.putIfAbsent(jobs[i].id, ref{j: &jobs[i]})
	}
	return x, jobs
}

// idsHeld leaves most shards three quarters full, where linear probing is
// slowest: their tables grow past 6,144 ids.
const idsHeld = 1_500_000

// BenchmarkIDIndexQueue measures the id index in a queue's steady state:
// each op indexes a new id, looks up the oldest and removes it.
func BenchmarkIDIndexQueue(b *testing.B) {
	for _, name := range []string{"generated", "hex", "named"} {
		b.Run(name, func(b *testing.B) {
			x, jobs := benchIDs(b, idSchemes()[name], idsHeld, b.N)
			b.ResetTimer()
			for i := range b.N {
				x.putIfAbsent(jobs[idsHeld+i].id, ref{j: &jobs[idsHeld+i]})
				if r := x.get(jobs[i].id); r.j != &jobs[i] || !x.remove(jobs[i].id, r) {
					b.Fatal("lost an id")
				}
			}
		})
	}
}

// BenchmarkIDIndexScattered measures ids leaving in no order: each op
// removes a random held id, indexes a new one and looks up one that is
// not there, the lookups that walk a whole cluster.
func BenchmarkIDIndexScattered(b *testing.B) {
	for _, name := range []string{"generated", "hex", "named"} {
		b.Run(name, func(b *testing.B) {
			x, jobs := benchIDs(b, idSchemes()[name], idsHeld, b.N)
			missing := make([]string, b.N)
			for i := range missing {
				missing[i] = fmt.Sprintf("%016X", 1<<40+i)
			}
			live := make([]int, idsHeld)
			for i := range live {
				live[i] = i
			}
			r := rand.New(rand.NewPCG(1, 2))
			b.ResetTimer()
			for i := range b.N {
				k := r.IntN(idsHeld)
				v := &jobs[live[k]]
				if got := x.get(v.id); got.j != v || !x.remove(v.id, got) {
					b.Fatal("lost an id")
				}
				x.putIfAbsent(jobs[idsHeld+i].id, ref{j: &jobs[idsHeld+i]})
				live[k] = idsHeld + i
				if x.get(missing[i]).ok() {
					b.Fatal("found an id never indexed")
				}
			}
		})
	}
}
