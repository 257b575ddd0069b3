package store

import (
	"math"
	"sync"
	"sync/atomic"
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
type retention struct {
	mu   sync.Mutex // protects fifo and live; a leaf lock
	fifo ring[retEntry]
	live int
	max  int
	age  int64
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
	r.fifo = ring[retEntry]{}
	r.live, r.max, r.age = 0, max, age
	r.nextDue.Store(math.MaxInt64)
	r.mu.Unlock()
}

// add files j and, when evict, hands fx the entries evicted to stay within
// max.
func (r *retention) add(j *job, gen uint32, evict bool, fx *effects) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fifo.push(retEntry{j: j, gen: gen, at: j.updatedAt, timed: fx.timed})
	// Jobs ended by timers (a deadline, a timeout) are filed at their
	// timer's instant, which shards visited later may make earlier than
	// the last filing: such an entry moves back to its place, past the
	// few filed in the same pass. Timers of one instant end their jobs in
	// an order that depends on the shards; among them the job id decides,
	// so that which is dropped first by count does not.
	for i := r.fifo.len() - 1; i > 0 && r.fifo.at(i).before(r.fifo.at(i-1)); i-- {
		prev := r.fifo.at(i - 1)
		r.fifo.set(i-1, r.fifo.at(i))
		r.fifo.set(i, prev)
	}
	r.live++
	for evict && r.live > r.max && r.fifo.len() > 0 {
		if e := r.fifo.popFront(); e.j.retainGen.CompareAndSwap(e.gen, e.gen+1) {
			r.live--
			fx.addDrop(e)
		}
	}
	if due := r.fifo.front().at + r.age; due < r.nextDue.Load() {
		r.nextDue.Store(due)
	}
}

// before reports whether e belongs before f, which was filed earlier.
func (e retEntry) before(f retEntry) bool {
	return e.at < f.at || (e.at == f.at && e.timed && f.timed && e.j.id < f.j.id)
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
	for r.fifo.len() > 0 && r.fifo.front().at+r.age <= now {
		if e := r.fifo.popFront(); e.j.retainGen.CompareAndSwap(e.gen, e.gen+1) {
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
	if r.fifo.len() == 0 {
		r.nextDue.Store(math.MaxInt64)
		return
	}
	r.nextDue.Store(r.fifo.front().at + r.age)
}
