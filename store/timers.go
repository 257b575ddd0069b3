package store

// A job has at most one timer at a time: its lease while reserved or
// running, its due time while scheduled or retry_pending. The job timers of
// a shard form an indexed min-heap by (due time, arming order), so a timer
// is removed in O(log n) when the job moves on (ack, cancel...) and the heap
// holds only live timers.
//
// Lanes parked on a full rate window wait on a second, lazy heap: each entry
// carries the lane's park generation and is ignored if the lane moved on.
//
// Both are written out rather than built on internal/minheap or container/heap:
// they run on every lease and parked lane, and measured about twice as fast
// written out (see internal/minheap for the numbers).

type jobHeap []*job

// less orders timers by due time, then arming order within a queue, then
// queue name: a total order, so the same timers fire in the same order
// however the heap was built (live, or loaded from a snapshot).
func (h jobHeap) less(i, k int) bool {
	a, b := h[i], h[k]
	if a.dueAt != b.dueAt {
		return a.dueAt < b.dueAt
	}
	if a.tseq != b.tseq {
		return a.tseq < b.tseq
	}
	return a.ln.q.name < b.ln.q.name
}

func (h jobHeap) swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].tidx, h[k].tidx = int32(i), int32(k)
}

func (h jobHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.swap(i, p)
		i = p
	}
}

func (h jobHeap) down(i int) bool {
	i0, n := i, len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > i0
}

func (h *jobHeap) add(j *job) {
	j.tidx = int32(len(*h))
	*h = append(*h, j)
	h.up(len(*h) - 1)
}

func (h *jobHeap) remove(j *job) {
	i := int(j.tidx)
	s := *h
	n := len(s) - 1
	if i != n {
		s.swap(i, n)
	}
	s[n] = nil
	s = s[:n]
	*h = s
	if i != n && !s.down(i) {
		s.up(i)
	}
	j.tidx = -1
}

type laneTimer struct {
	at  int64
	seq uint64
	gen uint32
	q   *queue
	l   *lane
}

func (a laneTimer) Less(b laneTimer) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

type laneTimers []laneTimer

func (h laneTimers) less(i, k int) bool { return h[i].Less(h[k]) }

func (h *laneTimers) push(t laneTimer) {
	*h = append(*h, t)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *laneTimers) pop() laneTimer {
	s := *h
	t := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = laneTimer{}
	s = s[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return t
}
