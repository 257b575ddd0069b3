package store

import (
	"math"
	"sync"
	"sync/atomic"

	"sluice/internal/minheap"
)

// The dead letters' defaults (Config.FailedRetention, MaxFailed). Failed
// jobs are kept far longer than the others: they wait for someone to look
// at them. The count bounds their memory when no --maxmemory does: a
// failed job with a 100-byte payload and a 20-byte error takes 468 bytes
// of heap (BenchmarkDeadLetterMemory; the estimate counts 426), so a
// million of them is about 470 MB: ten times the other terminal jobs'
// bound, for a week of a thousand failures an hour with room to spare.
const (
	DefaultFailedRetention = 7 * 24 * 60 * 60 * 1000
	DefaultMaxFailed       = 1_000_000
)

// retention keeps terminal jobs readable for a while, oldest dropped first.
//
// Oldest is a total order: by filing time; at one instant, jobs ended by
// timers (a deadline, a timeout) first, by id among themselves, so that
// which is dropped first by count does not hang on the order maintenance
// visits the shards in; then the others, in filing order. Jobs ended by
// operations come nearly in time order and are kept in a FIFO; jobs ended
// by timers come in any order (a timer's instant is often earlier than the
// last filing, and thousands may share one deadline) and are kept in a
// heap beside it, so that filing n of them costs O(n log n), not O(n²).
type retention struct {
	mu    sync.Mutex // protects fifo, timed and live; a leaf lock
	fifo  ring[retEntry]
	timed []retEntry // a min-heap of the entries filed by timers
	live  int
	max   int
	age   int64
	// nextDue is no later than the oldest entry's due time (when its age
	// runs out). Every operation reads it (maintain), so it has cache
	// lines of its own and is written only when it must move earlier or
	// when expire has looked: evictions leave it early, which costs one
	// needless look at most, never a late drop.
	_       [64]byte
	nextDue atomic.Int64
	_       [56]byte
}

type retEntry struct {
	j     *job
	gen   uint32 // the job's retainGen when filed (odd)
	timed bool   // filed by a timer (a deadline, a timeout)
	at    int64
}

func (r *retention) init(max int, age int64) {
	r.mu.Lock()
	r.fifo, r.timed = ring[retEntry]{}, nil
	r.live, r.max, r.age = 0, max, age
	r.nextDue.Store(math.MaxInt64)
	r.mu.Unlock()
}

// add files j and, when evict, hands fx the entries evicted to stay within
// max.
func (r *retention) add(j *job, gen uint32, evict bool, fx *effects) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := retEntry{j: j, gen: gen, at: j.updatedAt, timed: fx.timed}
	if e.timed {
		r.timed = minheap.Push(r.timed, e)
	} else {
		// A caller may come with a time older than the last filing's: it
		// moves back to its place, past the few filed meanwhile.
		r.fifo.push(e)
		for i := r.fifo.len() - 1; i > 0 && r.fifo.at(i).at < r.fifo.at(i-1).at; i-- {
			prev := r.fifo.at(i - 1)
			r.fifo.set(i-1, r.fifo.at(i))
			r.fifo.set(i, prev)
		}
	}
	r.live++
	for evict && r.live > r.max && r.len() > 0 {
		if e := r.pop(); e.j.retainGen.CompareAndSwap(e.gen, e.gen+1) {
			r.live--
			fx.addDrop(e)
		}
	}
	if r.len() > 0 {
		if due := r.oldest().at + r.age; due < r.nextDue.Load() {
			r.nextDue.Store(due)
		}
	}
}

// Less orders the timer-filed entries: by time, then by id.
func (e retEntry) Less(f retEntry) bool { return e.at < f.at || (e.at == f.at && e.j.id < f.j.id) }

// len is the number of entries, stale ones included. Lock must be held.
func (r *retention) len() int { return r.fifo.len() + len(r.timed) }

// timedFirst reports whether the oldest entry is the heap's. Lock must be
// held; there must be an entry.
func (r *retention) timedFirst() bool {
	return r.fifo.len() == 0 || len(r.timed) > 0 && r.timed[0].at <= r.fifo.front().at
}

// oldest is the oldest entry. Lock must be held; there must be one.
func (r *retention) oldest() retEntry {
	if r.timedFirst() {
		return r.timed[0]
	}
	return r.fifo.front()
}

// pop removes the oldest entry and returns it. Lock must be held; there
// must be one.
func (r *retention) pop() retEntry {
	if r.timedFirst() {
		var e retEntry
		if r.timed, e = minheap.Pop(r.timed); len(r.timed) == 0 {
			r.timed = nil
		}
		return e
	}
	return r.fifo.popFront()
}

// DeadLetters is the number of failed jobs held (INFO).
func (s *Store) DeadLetters() int64 {
	s.dead.mu.Lock()
	defer s.dead.mu.Unlock()
	return int64(s.dead.live)
}

// expire returns the entries whose retention ran out at now.
func (r *retention) expire(now int64) []retEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []retEntry
	for r.len() > 0 && r.oldest().at+r.age <= now {
		if e := r.pop(); e.j.retainGen.CompareAndSwap(e.gen, e.gen+1) {
			r.live--
			out = append(out, e)
		}
	}
	r.updateDue()
	return out
}

// remove takes j out of retention (JOBRETRY) and reports whether it was
// there: false means an eviction claimed it first. The stale entry stays in
// the FIFO and is skipped later.
func (r *retention) remove(j *job) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := j.retainGen.Load(); g%2 == 1 && j.retainGen.CompareAndSwap(g, g+1) {
		r.live--
		return true
	}
	return false
}

// Lock must be held.
func (r *retention) updateDue() {
	if r.len() == 0 {
		r.nextDue.Store(math.MaxInt64)
		return
	}
	r.nextDue.Store(r.oldest().at + r.age)
}
