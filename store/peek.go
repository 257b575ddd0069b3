package store

import (
	"container/heap"
	"sort"
)

// ordered returns up to n queued jobs of q in reservation order, ignoring
// policies and parking: a k-way merge of the lanes, each walked bucket by
// bucket, each bucket's ring and chunks merged by entry order. Lock must be
// held.
func (q *queue) ordered(n int) []ref {
	var h cursorHeap
	for _, l := range q.lanes {
		if l.n == 0 {
			continue
		}
		bs := append([]*bucket(nil), l.buckets...)
		sort.Slice(bs, func(i, k int) bool { return bs[i].prio > bs[k].prio })
		c := &cursor{buckets: bs, b: -1}
		if c.next() {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	var out []ref
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
	b, i    int    // bucket, and place in its ring
	c       *chunk // place in its chunks: c at off, nil when past them
	off     int
	cur     ref
	prio    int64 // cur's priority and entry order
	seq     uint64
}

func (c *cursor) next() bool {
	for c.b < len(c.buckets) {
		if c.b >= 0 {
			b := c.buckets[c.b]
			jobs := &b.jobs
			for c.i < jobs.len() && !live(jobs.at(c.i)) {
				c.i++
			}
			var j *job
			if c.i < jobs.len() {
				j = jobs.at(c.i)
			}
			if c.c != nil && (j == nil || c.c.seqAt(c.off) < j.seq) {
				c.cur, c.prio, c.seq = ref{c: c.c, off: c.off}, b.prio, c.c.seqAt(c.off)
				c.off = c.c.nextLive(c.off)
				c.skipChunks()
				return true
			}
			if j != nil {
				c.i++
				c.cur, c.prio, c.seq = ref{j: j}, b.prio, j.seq
				return true
			}
		}
		c.b, c.i = c.b+1, 0
		if c.b < len(c.buckets) {
			c.c = c.buckets[c.b].first
			if c.c != nil {
				c.off = c.c.head
			}
			c.skipChunks()
		}
	}
	return false
}

// skipChunks moves the chunk place past chunks with nothing left.
func (c *cursor) skipChunks() {
	for c.c != nil && c.off >= c.c.n {
		c.c = c.c.next
		if c.c != nil {
			c.off = c.c.head
		}
	}
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, k int) bool {
	return precedes(h[i].prio, h[i].seq, h[k].prio, h[k].seq)
}
func (h cursorHeap) Swap(i, k int) { h[i], h[k] = h[k], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
