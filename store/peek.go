package store

import (
	"container/heap"
	"sort"
)

// ordered returns up to n queued jobs of q in reservation order, ignoring
// policies and parking: a k-way merge of the lanes, each walked bucket by
// bucket. Lock must be held.
func (q *queue) ordered(n int) []*job {
	var h cursorHeap
	for _, l := range q.lanes {
		if l.n == 0 {
			continue
		}
		bs := append([]*bucket(nil), l.buckets...)
		sort.Slice(bs, func(i, k int) bool { return bs[i].prio > bs[k].prio })
		c := &cursor{buckets: bs}
		if c.next() {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	var out []*job
	for len(out) < n && len(h) > 0 {
		c := h[0]
		out = append(out, c.cur)
		if c.next() {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return out
}

// cursor walks one lane's live jobs in order.
type cursor struct {
	buckets []*bucket
	b, i    int
	cur     *job
}

func (c *cursor) next() bool {
	for c.b < len(c.buckets) {
		jobs := &c.buckets[c.b].jobs
		for c.i < jobs.len() {
			j := jobs.at(c.i)
			c.i++
			if live(j) {
				c.cur = j
				return true
			}
		}
		c.b, c.i = c.b+1, 0
	}
	return false
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, k int) bool { return before(h[i].cur, h[k].cur) }
func (h cursorHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

func sortJobs(js []*job, less func(a, b *job) bool) {
	sort.Slice(js, func(i, k int) bool { return less(js[i], js[k]) })
}
