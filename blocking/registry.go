package blocking

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"sluice/store"
)

// Reserver is the part of the store the registry needs.
type Reserver interface {
	Reserve(now int64, o store.ReserveOptions) ([]store.Reservation, error)
	Release(now int64, token string, delay int64) error
}

// Registry holds the clients blocked in JOBRESERVE.
type Registry struct {
	st  Reserver
	log zerolog.Logger
	now func() int64

	waiting atomic.Int64 // registered waiters; Notify returns at once when 0

	mu      sync.Mutex // protects queues, dirty, fresh, marks, serving, closed, snap and every waiter's state, nodes and triedAt
	queues  map[string]*waitList
	dirty   map[string]struct{}
	fresh   []*waiter // registered, not yet tried since they were listed
	marks   uint64    // counts dirty marks: a waiter tried since the last one cannot have gained anything
	serving bool
	closed  bool
	snap    []*waiter // serveQueueLocked's scratch, reused by the one serving goroutine
}

// waitList is a queue's waiters in arrival order: an intrusive list of the
// waiters' own nodes, so that listing a waiter on a queue allocates nothing
// beyond the waiter's one array of nodes.
type waitList struct {
	head, tail *node
	n          int
}

// node is one waiter's place in one queue's waitList.
type node struct {
	prev, next *node
	w          *waiter
}

// Lock must be held.
func (l *waitList) pushBack(n *node) {
	n.prev, n.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
	l.n++
}

// Lock must be held.
func (l *waitList) remove(n *node) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
	l.n--
}

type waitState uint8

const (
	waiting waitState = iota
	served
	cancelled
)

type waiter struct {
	opts  store.ReserveOptions
	ch    chan result // buffered: the server never blocks handing over
	state waitState
	nodes []node // one per queue, parallel to opts.Queues
	p     Parker // the client's side of the wait; nil until it waits
	// triedAt is marks+1 as of the start of the waiter's last attempt that
	// found nothing (0: none). While marks has not moved since, trying it
	// again for another of its queues would find nothing either: without
	// this, a waiter on n queues was tried n times, each over n queues.
	triedAt uint64
}

// left reports whether w's client has gone. Such a waiter is never served:
// a job reserved for it would only be released again, after its client
// (or whoever killed it) may already have looked. Lock must be held.
func (w *waiter) left() bool { return w.p != nil && w.p.Left() }

// Parker is a blocked client's side of a wait: the goroutine of the
// command waits in Park on its own connection, so that one wake-up, from
// whoever hands it work, is all it takes to answer.
type Parker interface {
	// Park waits until Wake is called, deadline passes (zero: no
	// deadline) or the client leaves, and reports whether it left (or the
	// server is shutting down: nothing more is handed to it). A Wake that
	// came before Park makes it return at once. It may also return early,
	// so the caller looks for its result again after every return.
	Park(deadline time.Time) (left bool)
	// Wake ends the current Park, or the next one. Any goroutine may call
	// it, any number of times; after the wait is over it does nothing.
	Wake()
	// Left reports whether the client has gone: disconnected or killed.
	// Any goroutine may call it.
	Left() bool
}

type result struct {
	res []store.Reservation
	err error
}

// New returns an empty registry over st. now gives the time in Unix ms.
func New(st Reserver, log zerolog.Logger, now func() int64) *Registry {
	return &Registry{st: st, log: log, now: now,
		queues: make(map[string]*waitList), dirty: make(map[string]struct{})}
}

// Waiting is the number of clients blocked now.
func (r *Registry) Waiting() int64 { return r.waiting.Load() }

// Reserve reserves for a blocking client. It first tries at once; if
// nothing is eligible it waits, first-come first-served with the other
// waiters of the same queues, until work is handed over, timeout passes
// (0: forever), the client leaves (its Parker says so), or the registry is
// closed (shutdown). It returns nil, nil when nothing was reserved. block is
// called just before waiting (the server flushes earlier replies there) and
// gives the client's Parker; its done function runs when the wait ends,
// before any change the end of the wait makes to the store (giving back
// what was handed to a client that left). The store is therefore changed
// only in the caller's context: a server that lets its store's gate go
// in block, so that transactions run meanwhile, takes it back in done,
// and no release lands inside another client's transaction.
func (r *Registry) Reserve(o store.ReserveOptions, timeout time.Duration,
	block func() (Parker, func())) ([]store.Reservation, error) {
	res, err := r.st.Reserve(r.now(), o)
	if err != nil || len(res) > 0 {
		return res, err
	}
	o.Queues = store.UniqueNames(slices.Clone(o.Queues)) // a waiter is listed once per queue
	w := &waiter{opts: o, ch: make(chan result, 1)}
	// Count the waiter before the final attempt (made by serving it below),
	// so that a push racing with us either sees the count and notifies, or
	// happened before our attempt and is found by it. Listing it marks no
	// queue dirty: nothing became eligible for the waiters already there,
	// so only the new waiter is tried (as fresh), and registering costs in
	// proportion to its own queues, however many others wait on them.
	r.waiting.Add(1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.waiting.Add(-1)
		return nil, nil
	}
	w.nodes = make([]node, len(o.Queues))
	for i, q := range o.Queues {
		l := r.queues[q]
		if l == nil {
			l = &waitList{}
			r.queues[q] = l
		}
		w.nodes[i].w = w
		l.pushBack(&w.nodes[i])
	}
	r.fresh = append(r.fresh, w)
	r.mu.Unlock()
	r.serve()
	select {
	case got := <-w.ch: // served by our own final attempt
		return got.res, got.err
	default:
	}

	p, done := block()
	ended := false
	end := func() { // done, once: before a release, or on the way out
		if !ended {
			ended = true
			done()
		}
	}
	defer end()
	r.mu.Lock()
	w.p = p // from now on a hand-over wakes it; before, it finds w.ch below
	r.mu.Unlock()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		select {
		case got := <-w.ch:
			if p.Left() { // handed over as the client went: it is gone all the same
				end()
				r.release(got.res)
				return nil, nil
			}
			return got.res, got.err
		default:
		}
		if p.Park(deadline) {
			got := r.cancel(w)
			end()
			r.release(got.res)
			return nil, nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			got := r.cancel(w) // timeout: the client still gets what came meanwhile
			return got.res, got.err
		}
	}
}

// cancel withdraws w and returns what was handed over to it meanwhile, if
// anything: the caller returns it (timeout) or releases it (the client is
// gone), once the wait's done has run.
func (r *Registry) cancel(w *waiter) result {
	r.mu.Lock()
	if w.state == waiting {
		r.removeLocked(w, cancelled)
		r.mu.Unlock()
		return result{}
	}
	r.mu.Unlock()
	return <-w.ch // served: the result is already in the channel
}

// Lock must be held.
func (r *Registry) removeLocked(w *waiter, to waitState) {
	w.state = to
	for i := range w.nodes {
		q := w.opts.Queues[i]
		if l := r.queues[q]; l != nil {
			l.remove(&w.nodes[i])
			if l.n == 0 {
				delete(r.queues, q)
			}
		}
	}
	w.nodes = nil
	r.waiting.Add(-1)
}

// Notify tells the registry that work in queue may have become eligible.
// It is the store's notify callback: safe from any goroutine, cheap when
// nobody waits.
func (r *Registry) Notify(queue string) {
	if r.waiting.Load() == 0 {
		return
	}
	r.mu.Lock()
	if r.queues[queue] == nil {
		r.mu.Unlock()
		return
	}
	r.dirty[queue] = struct{}{}
	r.marks++
	r.mu.Unlock()
	r.serve()
}

// serve serves dirty queues, then fresh waiters, until none is left,
// unless another goroutine is already doing it (it will see the dirty
// marks and fresh waiters). Dirty queues go first: their older waiters
// come before a fresh one for the work that arrived.
func (r *Registry) serve() {
	r.mu.Lock()
	if r.serving {
		r.mu.Unlock()
		return
	}
	r.serving = true
	for (len(r.dirty) > 0 || len(r.fresh) > 0) && !r.closed {
		if len(r.dirty) > 0 {
			var q string
			for q = range r.dirty {
				break
			}
			delete(r.dirty, q)
			r.serveQueueLocked(q)
			continue
		}
		w := r.fresh[0]
		r.fresh[0] = nil
		r.fresh = r.fresh[1:]
		if len(r.fresh) == 0 {
			r.fresh = nil // let the array go
		}
		if w.state == waiting && !w.left() && w.triedAt != r.marks+1 {
			r.tryLocked(w)
		}
	}
	r.serving = false
	r.mu.Unlock()
}

// serveQueueLocked offers work in q to its waiters in arrival order. The
// lock is released around each store call.
//
// Lock must be held.
func (r *Registry) serveQueueLocked(q string) {
	l := r.queues[q]
	if l == nil {
		return
	}
	snapshot := r.snap[:0]
	for n := l.head; n != nil; n = n.next {
		snapshot = append(snapshot, n.w)
	}
	defer func() { // keep the array, not the waiters
		clear(snapshot)
		r.snap = snapshot[:0]
	}()
	var empty map[string]bool // handlers that got nothing
	for _, w := range snapshot {
		if w.state != waiting || r.closed || w.left() {
			continue
		}
		if w.opts.Handlers != nil && covered(w.opts.Handlers, empty) {
			continue
		}
		if w.triedAt == r.marks+1 {
			continue
		}
		if r.tryLocked(w) {
			continue
		}
		if w.opts.Handlers == nil {
			return // nothing in q is eligible for anyone
		}
		if empty == nil {
			empty = make(map[string]bool)
		}
		for _, h := range w.opts.Handlers {
			empty[h] = true
		}
	}
}

// tryLocked makes one attempt for w, a waiting waiter, and hands over what
// it got. It reports false when the attempt found nothing (w still waits).
// The lock is released around the store call.
//
// Lock must be held.
func (r *Registry) tryLocked(w *waiter) bool {
	attempt := r.marks + 1
	r.mu.Unlock()
	res, err := r.st.Reserve(r.now(), w.opts)
	r.mu.Lock()
	if w.state != waiting || w.left() {
		// Timed out, left or shut down while we reserved for it.
		r.mu.Unlock()
		r.release(res)
		r.mu.Lock()
		return true
	}
	if err != nil || len(res) > 0 {
		r.removeLocked(w, served)
		w.ch <- result{res, err}
		if p := w.p; p != nil {
			r.mu.Unlock()
			p.Wake()
			r.mu.Lock()
		}
		return true
	}
	w.triedAt = attempt
	return false
}

func covered(hs []string, empty map[string]bool) bool {
	if len(empty) == 0 {
		return false
	}
	for _, h := range hs {
		if !empty[h] {
			return false
		}
	}
	return true
}

// release gives back reservations nobody took. It changes the store, so it
// runs where a command may: in a notifier (which holds the gate as its
// command does) or, in Reserve, only once the wait's done has run.
func (r *Registry) release(res []store.Reservation) {
	for _, rv := range res {
		if err := r.st.Release(r.now(), rv.Token, 0); err != nil {
			r.log.Warn().Err(err).Str("job", rv.ID).Msg("could not release a reservation nobody took")
		}
	}
}

// Close answers every waiter with nothing and refuses new waits (shutdown).
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	r.answerAllLocked(result{})
}

// Interrupt answers every waiter with err and goes on taking new waits: a
// node that stops leading its group unblocks its clients (Redis's
// UNBLOCKED), which ask again where the group now leads.
func (r *Registry) Interrupt(err error) {
	r.mu.Lock()
	r.answerAllLocked(result{err: err})
}

// answerAllLocked answers every waiter with res, empties the registry and
// unlocks it.
//
// Lock must be held.
func (r *Registry) answerAllLocked(res result) {
	var wake []Parker
	for _, l := range r.queues {
		for n := l.head; n != nil; n = n.next {
			w := n.w
			if w.state == waiting {
				w.state = served
				w.ch <- res
				r.waiting.Add(-1)
				if w.p != nil {
					wake = append(wake, w.p)
				}
			}
		}
	}
	r.queues = make(map[string]*waitList)
	r.fresh = nil
	r.mu.Unlock()
	for _, p := range wake {
		p.Wake()
	}
}
