package hist

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestIndexValueRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 1<<40 + 7, 1<<63 + 5} {
		got := value(index(v))
		diff := float64(got) - float64(v)
		if diff < 0 {
			diff = -diff
		}
		if v >= subCount && diff/float64(v) > 1.0/halfSub {
			t.Errorf("value(index(%d)) = %d: off by %.3f%%", v, got, 100*diff/float64(v))
		}
		if v < subCount && got != v {
			t.Errorf("value(index(%d)) = %d, want exact", v, got)
		}
	}
	// Indexes are monotonic in the value.
	prev := -1
	for v := uint64(0); v < 1<<22; v += 97 {
		i := index(v)
		if i < prev {
			t.Fatalf("index(%d) = %d < %d", v, i, prev)
		}
		prev = i
	}
	if i := index(^uint64(0)); i >= nBuckets {
		t.Fatalf("index(max) = %d, want < %d", i, nBuckets)
	}
}

func TestQuantilesAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, a, b Histogram
	var vals []float64
	for i := 0; i < 100000; i++ {
		d := time.Duration(r.ExpFloat64() * 50000) // mean 50µs
		vals = append(vals, float64(d))
		h.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	sort.Float64s(vals)
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		for name, x := range map[string]*Histogram{"direct": &h, "merged": &a} {
			got := float64(x.Quantile(q))
			if got < want*0.98 || got > want*1.02 {
				t.Errorf("%s q%.3f = %.0f, want %.0f ±2%%", name, q, got, want)
			}
		}
	}
	if h.Count() != 100000 || a.Count() != 100000 {
		t.Fatalf("counts %d %d", h.Count(), a.Count())
	}
	if h.Quantile(1) != h.Max() {
		t.Fatalf("q1 %v != max %v", h.Quantile(1), h.Max())
	}
}
