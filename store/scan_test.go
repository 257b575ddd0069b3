package store

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
)

// heldIDs is every id the index holds now.
func heldIDs(s *Store) map[string]bool {
	out := map[string]bool{}
	s.index.each(func(r ref) {
		if r.j != nil {
			out[r.j.id] = true
		} else {
			out[string(r.c.idAt(r.off))] = true
		}
	})
	return out
}

// scanOps changes the store the way a busy server does while a scan runs:
// pushes (which grow the index tables), reservations, acks and cancels
// (which end jobs, and past MaxRetained drop them from the index), and time
// passing.
type scanOps struct {
	s      *Store
	r      *rand.Rand
	now    int64
	pushed map[string]bool
	ids    []string
}

func (o *scanOps) step(t *testing.T) {
	q := "q" + strconv.Itoa(o.r.IntN(8))
	switch k := o.r.IntN(10); {
	case k < 5:
		var p PushOptions
		p = PushOptions{Queue: q, Handler: "h", Payload: []byte("p")}
		if o.r.IntN(3) == 0 {
			p.RunAt = o.now + 500 // scheduled
		}
		id, err := o.s.Push(o.now, p)
		if err != nil {
			t.Fatal(err)
		}
		o.pushed[id] = true
		o.ids = append(o.ids, id)
	case k < 8:
		rs, err := o.s.Reserve(o.now, ReserveOptions{Worker: "w", Lease: 1000, Count: 1 + o.r.IntN(3), Queues: []string{q}})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range rs {
			if o.r.IntN(2) == 0 {
				if err := o.s.Ack(o.now, res.Token); err != nil {
					t.Fatal(err)
				}
			}
		}
	case k < 9:
		if len(o.ids) > 0 {
			_, _ = o.s.Cancel(o.now, o.ids[o.r.IntN(len(o.ids))]) // maybe terminal already
		}
	default:
		o.now += int64(o.r.IntN(300))
		o.s.Tick(o.now)
	}
}

func newScanOps(t *testing.T, seed uint64) *scanOps {
	cfg := DefaultConfig()
	cfg.Shards = 4
	cfg.MaxRetained = 200 // ended jobs leave the index soon
	s, err := New(cfg, NewRandomGenerator())
	if err != nil {
		t.Fatal(err)
	}
	return &scanOps{s: s, r: rand.New(rand.NewPCG(seed, 99)), now: 1_000_000, pushed: map[string]bool{}}
}

// A scan returns every id held from its start to its end, and only ids
// that were held at some point, while jobs come and go between its steps.
func TestScanIDsUnderChange(t *testing.T) {
	for seed := range uint64(4) {
		o := newScanOps(t, seed)
		for range 8000 {
			o.step(t)
		}
		before := heldIDs(o.s)
		seen := map[string]int{}
		cursor, calls := uint64(0), 0
		for {
			count := 1 + o.r.IntN(40)
			next, ids := o.s.ScanIDs(cursor, count, 10*count)
			calls++
			for _, id := range ids {
				if !o.pushed[id] {
					t.Fatalf("seed %d: scan returned %q, never pushed", seed, id)
				}
				seen[id]++
			}
			if next == 0 {
				break
			}
			cursor = next
			for range o.r.IntN(20) {
				o.step(t)
			}
		}
		after := heldIDs(o.s)
		missed := 0
		for id := range before {
			if after[id] && seen[id] == 0 { // held throughout: generated ids never come back
				missed++
			}
		}
		if missed > 0 {
			t.Fatalf("seed %d: %d ids held throughout the scan were not returned (%d before, %d after, %d calls)",
				seed, missed, len(before), len(after), calls)
		}
		if len(before) < 1000 || len(o.ids) < 2000 {
			t.Fatalf("seed %d: too few jobs to test anything: %d held, %d pushed", seed, len(before), len(o.ids))
		}
	}
}

// A scan of a store nobody changes returns each id exactly once, in pages
// of at most count ids plus the rest of the last home slot visited.
func TestScanIDsStillStore(t *testing.T) {
	o := newScanOps(t, 9)
	for range 5000 {
		o.step(t)
	}
	held := heldIDs(o.s)
	for _, count := range []int{1, 10, 1000, 100_000} {
		seen := map[string]int{}
		cursor := uint64(0)
		for {
			next, ids := o.s.ScanIDs(cursor, count, 10*count)
			if len(ids) > count+8 {
				t.Fatalf("a page of %d ids for count %d", len(ids), count)
			}
			for _, id := range ids {
				seen[id]++
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		for id := range held {
			if seen[id] != 1 {
				t.Fatalf("count %d: %s returned %d times", count, id, seen[id])
			}
		}
		if len(seen) != len(held) {
			t.Fatalf("count %d: %d ids returned, %d held", count, len(seen), len(held))
		}
	}
}

// Any cursor is safe, including ones for tables larger than the store's
// and ones from before a FLUSHALL.
func TestScanIDsAnyCursor(t *testing.T) {
	o := newScanOps(t, 3)
	for range 2000 {
		o.step(t)
	}
	r := rand.New(rand.NewPCG(5, 5))
	for range 2000 {
		c := r.Uint64()
		if r.IntN(2) == 0 {
			c &= 1<<20 - 1
		}
		o.s.ScanIDs(c, 1+r.IntN(50), 1+r.IntN(500))
	}
	next, _ := o.s.ScanIDs(0, 5, 50)
	if err := o.s.Flush(o.now); err != nil {
		t.Fatal(err)
	}
	if next, ids := o.s.ScanIDs(next, 100, 1000); next != 0 || len(ids) != 0 {
		t.Fatalf("after FLUSHALL: cursor %d, %d ids", next, len(ids))
	}
	if next, ids := o.s.ScanIDs(0, 5, 0); next != 0 || len(ids) != 0 {
		t.Fatalf("no slots to visit: cursor %d, %d ids", next, len(ids))
	}
}

// Scans run beside pushes, reservations and acks on other goroutines
// (under -race), and still return every job held throughout.
func TestScanIDsConcurrent(t *testing.T) {
	s, err := New(DefaultConfig(), NewRandomGenerator())
	if err != nil {
		t.Fatal(err)
	}
	const now = 1_000_000
	var first []string
	for i := range 2000 {
		id, err := s.Push(now, PushOptions{Queue: "keep" + strconv.Itoa(i%5), Handler: "h", Payload: []byte("p")})
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, id)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := "churn" + strconv.Itoa(w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Push(now, PushOptions{Queue: q, Handler: "h", Payload: []byte("p")}); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 1 {
					rs, _ := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1000, Count: 2, Queues: []string{q}})
					for _, r := range rs {
						_ = s.Ack(now, r.Token)
					}
				}
			}
		}()
	}
	for range 3 {
		seen := map[string]bool{}
		cursor := uint64(0)
		for {
			next, ids := s.ScanIDs(cursor, 20, 200)
			for _, id := range ids {
				seen[id] = true
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		for _, id := range first {
			if !seen[id] {
				t.Fatalf("job %s, held throughout, not returned", id)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkScanIDs(b *testing.B) {
	s, err := New(DefaultConfig(), NewRandomGenerator())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100_000 {
		if _, err := s.Push(1, PushOptions{Queue: "q" + strconv.Itoa(i%10), Handler: "h", Payload: []byte("p")}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cursor := uint64(0)
		for {
			next, _ := s.ScanIDs(cursor, 100, 1000)
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
}
