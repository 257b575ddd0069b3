package dashboard

import "sync"

// The series the charts show, in sample order.
const (
	seriesPushed = iota
	seriesReserved
	seriesAcked
	seriesFailed
	numSeries
)

var seriesNames = [numSeries]string{"pushed", "reserved", "acked", "failed"}

// ringSeconds is how far back the charts go: an hour of one sample a
// second (a sample is 40 bytes: 144 KB in all).
const ringSeconds = 3600

// sample is the event totals at one second.
type sample struct {
	at int64 // Unix seconds
	ev [numSeries]uint64
}

// ring keeps the last samples, oldest first, in a fixed array.
type ring struct {
	mu   sync.Mutex // protects buf, head, n
	buf  []sample
	head int // where the next sample goes
	n    int // samples held
}

func newRing(size int) *ring { return &ring{buf: make([]sample, size+1)} }

func (r *ring) add(s sample) {
	r.mu.Lock()
	r.buf[r.head] = s
	r.head = (r.head + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
	r.mu.Unlock()
}

// rates returns, for each series, the events per second between
// consecutive samples, oldest first, and the time of each (the later
// sample's). A total that went down (it cannot, but a restart of the
// counters would) counts as 0.
func (r *ring) rates() (at []int64, out [numSeries][]float64) {
	r.mu.Lock()
	ss := make([]sample, r.n)
	start := (r.head - r.n + len(r.buf)) % len(r.buf)
	for i := range ss {
		ss[i] = r.buf[(start+i)%len(r.buf)]
	}
	r.mu.Unlock()
	for i := 1; i < len(ss); i++ {
		dt := ss[i].at - ss[i-1].at
		if dt <= 0 {
			dt = 1
		}
		at = append(at, ss[i].at)
		for k := range out {
			v := 0.0
			if ss[i].ev[k] >= ss[i-1].ev[k] {
				v = float64(ss[i].ev[k]-ss[i-1].ev[k]) / float64(dt)
			}
			out[k] = append(out[k], v)
		}
	}
	return at, out
}
