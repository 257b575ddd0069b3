package blocking

import (
	"sync"
	"sync/atomic"
	"time"

	"sluice/store"
)

// JobWaits holds the clients blocked in JOBWAIT: each waits for one job to
// become terminal. The store announces every job that does (its end hook,
// End), as the change is applied, live or replayed from a group's log, so a
// waiter is woken by the change itself and nothing polls: a parked waiter
// wakes only when its job ends, its deadline passes or its client leaves.
// A waiter is listed under its job's id from just before it first looks
// at the job until it is answered or leaves, and a client that hangs up is
// forgotten at once (its connection's read ends the park).
//
// Lock order: JobWaits.mu is a leaf. End runs under a store shard lock and
// only marks waiters and wakes their Parkers, which never block.
type JobWaits struct {
	st  Getter
	now func() int64

	waiting atomic.Int64 // listed waiters; End returns at once when 0
	wakes   atomic.Int64 // times a parked waiter woke up (Wakeups)
	onAns   atomic.Pointer[func(time.Duration)]
	lat     latency

	mu     sync.Mutex // protects jobs, closed and every jobWaiter's fields
	jobs   map[string]*jobWaiter
	closed bool
}

// Getter is the part of the store JobWaits reads a job's state with.
type Getter interface {
	Get(now int64, id string) (store.Job, bool)
}

// jobWaiter is one blocked JOBWAIT, in its job's list.
type jobWaiter struct {
	id         string
	prev, next *jobWaiter
	listed     bool
	p          Parker
	done       bool // answered: out or err holds the answer
	out        Outcome
	err        error
}

// Outcome is a terminal job as JOBWAIT answers it.
type Outcome struct {
	store.Ended
	// EndedAt is when the end hook saw the job end; zero when it had
	// ended before the wait began.
	EndedAt time.Time
}

// NewJobWaits returns an empty registry over st; now gives the time in
// Unix ms at which a job is read (a node of a group reads at its log's).
// Install its End as the store's end hook.
func NewJobWaits(st Getter, now func() int64) *JobWaits {
	return &JobWaits{st: st, now: now, jobs: make(map[string]*jobWaiter)}
}

// Waiting is the number of clients blocked in JOBWAIT now.
func (r *JobWaits) Waiting() int64 { return r.waiting.Load() }

// Wakeups counts the times a parked JOBWAIT woke up, for whatever reason:
// while no job ends, no client leaves and no deadline passes, it stays
// still.
func (r *JobWaits) Wakeups() int64 { return r.wakes.Load() }

// SetAnswerHook installs fn, called with the time from a job's end (as the
// end hook saw it) to the moment its waiter has its answer, for each waiter
// woken by an end. It must not block (benchmarks, tests).
func (r *JobWaits) SetAnswerHook(fn func(time.Duration)) { r.onAns.Store(&fn) }

// Latencies is the histogram of those times: counts per bucket, whose
// upper bounds are LatencyBounds.
func (r *JobWaits) Latencies() (counts [len(LatencyBounds) + 1]uint64, sum time.Duration) {
	return r.lat.read()
}

// Wait answers the job id's outcome once it is terminal: at once when it
// already is, else when it ends, with the client parked meanwhile (block
// as for Registry.Reserve). ok is false when no answer came: timeout passed
// (0: none), the client left, or the registry was closed (shutdown). An
// unknown id, or a job dropped while waited for (FLUSHALL), answers
// store.ErrNoJob. mayBlock false answers at once, ok false when the job has
// not ended (inside EXEC).
func (r *JobWaits) Wait(id string, timeout time.Duration, mayBlock bool,
	block func() (Parker, func())) (out Outcome, ok bool, err error) {
	w := &jobWaiter{id: id}
	// Listed before the job is read, so that an end racing with the read
	// either came before it (the read sees it) or finds the waiter.
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Outcome{}, false, nil
	}
	r.listLocked(w)
	r.mu.Unlock()
	j, found := r.st.Get(r.now(), id)
	switch {
	case !found:
		r.withdraw(w)
		return Outcome{}, false, store.ErrNoJob
	case j.State.Terminal():
		r.withdraw(w)
		return Outcome{Ended: store.Ended{ID: id, State: j.State, Result: j.Result,
			Error: j.LastError, HasError: j.HasLastError}}, true, nil
	case !mayBlock:
		r.withdraw(w)
		return Outcome{}, false, nil
	}
	p, done := block()
	defer done()
	r.mu.Lock()
	w.p = p // from now on an end wakes it; before, it finds w.done below
	r.mu.Unlock()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		r.mu.Lock()
		if w.done {
			r.mu.Unlock()
			if w.err == nil {
				r.answered(w.out.EndedAt)
			}
			return w.answer()
		}
		r.mu.Unlock()
		left := p.Park(deadline)
		r.wakes.Add(1)
		if left || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			if out, ok, err := r.withdraw(w); ok || err != nil {
				return out, ok, err // it ended as the wait did
			}
			return Outcome{}, false, nil
		}
	}
}

// answer is w's answer, once done: none when the registry closed.
func (w *jobWaiter) answer() (Outcome, bool, error) {
	if w.err == errClosed {
		return Outcome{}, false, nil
	}
	return w.out, w.err == nil, w.err
}

// answered records the time from a job's end to its waiter's answer.
func (r *JobWaits) answered(at time.Time) {
	if at.IsZero() {
		return
	}
	d := time.Since(at)
	r.lat.add(d)
	if fn := r.onAns.Load(); fn != nil {
		(*fn)(d)
	}
}

// withdraw unlists w, unless an end answered it first: then it returns
// that answer.
func (r *JobWaits) withdraw(w *jobWaiter) (Outcome, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.done {
		return w.answer()
	}
	r.unlistLocked(w)
	return Outcome{}, false, nil
}

// Lock must be held.
func (r *JobWaits) listLocked(w *jobWaiter) {
	if head := r.jobs[w.id]; head != nil {
		w.next, head.prev = head, w
	}
	r.jobs[w.id] = w
	w.listed = true
	r.waiting.Add(1)
}

// Lock must be held.
func (r *JobWaits) unlistLocked(w *jobWaiter) {
	if !w.listed {
		return
	}
	switch {
	case w.prev != nil:
		w.prev.next = w.next
	case w.next != nil:
		r.jobs[w.id] = w.next
	default:
		delete(r.jobs, w.id)
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
	r.waiting.Add(-1)
}

// End is the store's end hook: it answers the waiters of e's job (of every
// job when e.ID is "": FLUSHALL dropped them, NOJOB). It runs under a store
// shard lock; it allocates nothing when nobody waits.
func (r *JobWaits) End(e store.Ended) {
	if r.waiting.Load() == 0 {
		return
	}
	at := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.ID == "" {
		for _, head := range r.jobs {
			r.answerLocked(head, Outcome{}, store.ErrNoJob)
		}
		clear(r.jobs)
		return
	}
	head := r.jobs[e.ID]
	if head == nil {
		return
	}
	delete(r.jobs, e.ID)
	r.answerLocked(head, Outcome{Ended: e, EndedAt: at}, nil)
}

// answerLocked answers the list from head and unlists it (the caller
// removes it from jobs). Lock must be held.
func (r *JobWaits) answerLocked(head *jobWaiter, out Outcome, err error) {
	for w := head; w != nil; {
		next := w.next
		w.done, w.out, w.err = true, out, err
		w.out.ID = w.id // the store's id may point into the job
		w.prev, w.next, w.listed = nil, nil, false
		r.waiting.Add(-1)
		if w.p != nil {
			w.p.Wake()
		}
		w = next
	}
}

// Close answers every waiter with nothing and refuses new waits (shutdown).
func (r *JobWaits) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, head := range r.jobs {
		r.answerLocked(head, Outcome{}, errClosed)
	}
	clear(r.jobs)
}

// errClosed answers the waiters of a closing registry; Wait turns it into
// no answer.
var errClosed = closedError{}

type closedError struct{}

func (closedError) Error() string { return "closed" }

// LatencyBounds are the upper bounds of Latencies' buckets (the last
// bucket is above them all).
var LatencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, time.Second,
}

// latency is a histogram of durations over LatencyBounds.
type latency struct {
	counts [len(LatencyBounds) + 1]atomic.Uint64
	sum    atomic.Int64
}

func (l *latency) add(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sum.Add(int64(d))
}

func (l *latency) read() (counts [len(LatencyBounds) + 1]uint64, sum time.Duration) {
	for i := range l.counts {
		counts[i] = l.counts[i].Load()
	}
	return counts, time.Duration(l.sum.Load())
}
