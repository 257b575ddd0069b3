package store

import (
	"container/heap"
	"math/rand/v2"
	"testing"

	"sluice/internal/minheap"
)

// The store's heaps in their two styles, measured on the same work: a
// rolling window of n timers, one pushed per one popped, at pseudo-random
// instants (the shape of leases and parked lanes).

const heapBenchSize = 1024

func heapBenchTimes(n int) []int64 {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]int64, n)
	for i := range out {
		out[i] = r.Int64N(1 << 20)
	}
	return out
}

// BenchmarkLaneTimers: the parked-lane heap as the store has it.
func BenchmarkLaneTimers(b *testing.B) {
	at := heapBenchTimes(heapBenchSize * 2)
	var h laneTimers
	for i := 0; i < heapBenchSize; i++ {
		h.push(laneTimer{at: at[i], seq: uint64(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := h.pop()
		h.push(laneTimer{at: t.at + at[i%len(at)], seq: uint64(i)})
	}
}

// boxedLaneTimers is laneTimers through container/heap, for comparison.
type boxedLaneTimers []laneTimer

func (h boxedLaneTimers) Len() int           { return len(h) }
func (h boxedLaneTimers) Less(i, k int) bool { return h[i].Less(h[k]) }
func (h boxedLaneTimers) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *boxedLaneTimers) Push(x any)        { *h = append(*h, x.(laneTimer)) }
func (h *boxedLaneTimers) Pop() any {
	s := *h
	t := s[len(s)-1]
	*h = s[:len(s)-1]
	return t
}

func BenchmarkLaneTimersContainerHeap(b *testing.B) {
	at := heapBenchTimes(heapBenchSize * 2)
	var h boxedLaneTimers
	for i := 0; i < heapBenchSize; i++ {
		heap.Push(&h, laneTimer{at: at[i], seq: uint64(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := heap.Pop(&h).(laneTimer)
		heap.Push(&h, laneTimer{at: t.at + at[i%len(at)], seq: uint64(i)})
	}
}

func heapBenchJobs(n int) []*job {
	q := &queue{name: "q"}
	ln := &lane{q: q}
	js := make([]*job, n)
	for i := range js {
		js[i] = &job{ln: ln, tidx: -1}
	}
	return js
}

// BenchmarkJobTimers: the indexed job-timer heap as the store has it; a
// lease armed, one removed early (an ack) and the earliest fired.
func BenchmarkJobTimers(b *testing.B) {
	at := heapBenchTimes(heapBenchSize * 2)
	js := heapBenchJobs(heapBenchSize)
	var h jobHeap
	for i, j := range js {
		j.dueAt, j.tseq = at[i], uint64(i)
		h.add(j)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := h[0]
		h.remove(j)
		j.dueAt, j.tseq = j.dueAt+at[i%len(at)], uint64(i)
		h.add(j)
		k := js[i%len(js)]
		h.remove(k)
		h.add(k)
	}
}

// boxedJobHeap is jobHeap through container/heap, for comparison.
type boxedJobHeap struct{ jobHeap }

func (h *boxedJobHeap) Len() int           { return len(h.jobHeap) }
func (h *boxedJobHeap) Less(i, k int) bool { return h.jobHeap.less(i, k) }
func (h *boxedJobHeap) Swap(i, k int)      { h.jobHeap.swap(i, k) }
func (h *boxedJobHeap) Push(x any) {
	j := x.(*job)
	j.tidx = int32(len(h.jobHeap))
	h.jobHeap = append(h.jobHeap, j)
}
func (h *boxedJobHeap) Pop() any {
	s := h.jobHeap
	j := s[len(s)-1]
	s[len(s)-1] = nil
	h.jobHeap = s[:len(s)-1]
	j.tidx = -1
	return j
}

func BenchmarkJobTimersContainerHeap(b *testing.B) {
	at := heapBenchTimes(heapBenchSize * 2)
	js := heapBenchJobs(heapBenchSize)
	h := &boxedJobHeap{}
	for i, j := range js {
		j.dueAt, j.tseq = at[i], uint64(i)
		heap.Push(h, j)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := h.jobHeap[0]
		heap.Remove(h, int(j.tidx))
		j.dueAt, j.tseq = j.dueAt+at[i%len(at)], uint64(i)
		heap.Push(h, j)
		k := js[i%len(js)]
		heap.Remove(h, int(k.tidx))
		heap.Push(h, k)
	}
}

// BenchmarkLaneTimersGeneric: the same heap on internal/minheap's generic code.
func BenchmarkLaneTimersGeneric(b *testing.B) {
	at := heapBenchTimes(heapBenchSize * 2)
	var h []laneTimer
	for i := 0; i < heapBenchSize; i++ {
		h = minheap.Push(h, laneTimer{at: at[i], seq: uint64(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var t laneTimer
		h, t = minheap.Pop(h)
		h = minheap.Push(h, laneTimer{at: t.at + at[i%len(at)], seq: uint64(i)})
	}
}
