package store

import (
	"container/heap"
	"errors"
	"sort"
	"strconv"
	"strings"
)

// PeekCursor is a place in a queue's reservation order: just after the job
// with priority Prio and entry order Seq. The zero value is the start.
type PeekCursor struct {
	Prio int64
	Seq  uint64
	set  bool
}

// String renders c as QUEUEPEEK's CURSOR: "0" for the start, else an
// opaque "prio:seq".
func (c PeekCursor) String() string {
	if !c.set {
		return "0"
	}
	return strconv.FormatInt(c.Prio, 10) + ":" + strconv.FormatUint(c.Seq, 10)
}

// ErrCursor is returned by ParsePeekCursor for text String did not make.
var ErrCursor = errors.New("invalid cursor")

// ParsePeekCursor reads a cursor String made.
func ParsePeekCursor(s string) (PeekCursor, error) {
	if s == "0" {
		return PeekCursor{}, nil
	}
	p, q, ok := strings.Cut(s, ":")
	if !ok {
		return PeekCursor{}, ErrCursor
	}
	prio, err1 := strconv.ParseInt(p, 10, 64)
	seq, err2 := strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil {
		return PeekCursor{}, ErrCursor
	}
	return PeekCursor{Prio: prio, Seq: seq, set: true}, nil
}

// PeekOptions is what QUEUEPEEK asks for.
type PeekOptions struct {
	Count    int        // jobs at most; DefaultPeekCount when <= 0
	MaxBytes int64      // payload and id bytes at most, but always one job; 0: no bound
	After    PeekCursor // start just after this place
}

// PeekPage is a page of a queue's queued jobs in reservation order.
type PeekPage struct {
	Jobs []Job
	Next PeekCursor // where the next page starts
	Done bool       // no queued job was left after the page when it was read
}

// peekSlice is how many jobs Peek gathers under one hold of the queue's
// lock: between slices it lets go, so a peek of a long page never stalls
// the queue's pushes and reserves for longer than a slice takes.
const peekSlice = 64

// PeekPage lists a page of a queue's queued jobs (QUEUEPEEK) in the order
// reservations would take them if no policy blocked anything. It holds the
// queue's lock for a slice of at most peekSlice jobs at a time and resumes
// from the place the slice ended, so jobs that move meanwhile are seen as
// they are when their slice is read: a job queued the whole time and after
// o.After is listed once, in order. It stops once the next job would take
// the page past o.MaxBytes.
func (s *Store) PeekPage(now int64, name string, o PeekOptions) (PeekPage, error) {
	n := o.Count
	if n <= 0 {
		n = DefaultPeekCount
	}
	slice := peekSlice
	if s.peekSlice > 0 {
		slice = s.peekSlice
	}
	pg := PeekPage{Next: o.After}
	var size int64
	var buf []placed
	for {
		want := min(slice, n-len(pg.Jobs))
		got, full := 0, false
		err := s.withQueue(now, name, nil, func(_ *shard, q *queue, _ *effects) error {
			if q == nil {
				return nil
			}
			buf = q.orderedAfter(pg.Next, want, buf[:0])
			got = len(buf)
			for _, p := range buf {
				j := s.snapshotRef(p.r, now)
				b := int64(len(j.Payload) + len(j.ID))
				if o.MaxBytes > 0 && size+b > o.MaxBytes && len(pg.Jobs) > 0 {
					full = true
					return nil
				}
				size += b
				pg.Jobs = append(pg.Jobs, j)
				pg.Next = PeekCursor{Prio: p.prio, Seq: p.seq, set: true}
			}
			return nil
		})
		if err != nil {
			return PeekPage{}, err
		}
		if full || len(pg.Jobs) == n {
			return pg, nil
		}
		if got < want {
			pg.Done = true
			return pg, nil
		}
		if s.peekHook != nil {
			s.peekHook()
		}
	}
}

// placed is a queued job with its place in the reservation order.
type placed struct {
	r    ref
	prio int64
	seq  uint64
}

// orderedAfter appends to out up to n queued jobs of q that come after
// place after in reservation order, ignoring policies and parking: a k-way
// merge of the lanes, each walked bucket by bucket, each bucket's ring and
// chunks merged by entry order. Lock must be held.
func (q *queue) orderedAfter(after PeekCursor, n int, out []placed) []placed {
	var h cursorHeap
	for _, l := range q.lanes {
		if l.n == 0 {
			continue
		}
		bs := append([]*bucket(nil), l.buckets...)
		sort.Slice(bs, func(i, k int) bool { return bs[i].prio > bs[k].prio })
		c := &cursor{buckets: bs, b: -1, fb: -1}
		if after.set {
			c.seek(after)
		}
		if c.next() {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(out) < n && len(h) > 0 {
		c := h[0]
		out = append(out, placed{c.cur, c.prio, c.seq})
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
	// fb is the bucket seek started in the middle of (-1: none): its
	// ring entries up to fseq are skipped. (A ring holds jobs in entry
	// order, but a stale entry of a job that came back reads the job's
	// newer entry order, so the search in seek may start early.)
	fb   int
	fseq uint64
}

// seek places c just before the first job after place a. Its cost is a
// binary search of a ring and a walk of chunks, not of the jobs before a.
func (c *cursor) seek(a PeekCursor) {
	k := sort.Search(len(c.buckets), func(i int) bool { return c.buckets[i].prio <= a.Prio })
	c.b = k
	if k == len(c.buckets) {
		return
	}
	b := c.buckets[k]
	c.c = b.first
	if c.c != nil {
		c.off = c.c.head
	}
	if b.prio == a.Prio {
		c.fb, c.fseq = k, a.Seq
		c.i = sort.Search(b.jobs.len(), func(i int) bool { return b.jobs.at(i).seq > a.Seq })
		for c.c != nil && c.c.next != nil && c.c.next.seq0 <= a.Seq {
			c.c = c.c.next // every entry of c.c came before the next chunk's first
			c.off = c.c.head
		}
		for c.c != nil && c.off < c.c.n && (c.c.dead(c.off) || c.c.seqAt(c.off) <= a.Seq) {
			c.off = c.c.entry(c.off).end
		}
	}
	c.skipChunks()
}

func (c *cursor) next() bool {
	for c.b < len(c.buckets) {
		if c.b >= 0 {
			b := c.buckets[c.b]
			jobs := &b.jobs
			for c.i < jobs.len() && (!live(jobs.at(c.i)) || c.b == c.fb && jobs.at(c.i).seq <= c.fseq) {
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
