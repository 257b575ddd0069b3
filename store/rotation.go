package store

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// Round-robin across queues (JOBRESERVE ... ROUNDROBIN): a worker's
// reserve starts with the queue after the one that last gave it a job
// under ROUNDROBIN, in the order its QUEUES list names them, and takes one
// job from each queue in turn. The store remembers, per worker id, that
// queue: set by every round-robin reservation, live or replayed (the
// reserve record says it was one), so a replica and a replayed log agree.
// At most MaxRotations workers are remembered, the least recently served
// forgotten first; a forgotten worker starts with its first queue again.

// MaxRotations bounds the workers whose last queue is remembered.
const MaxRotations = 1 << 16

// RotationOverhead estimates a remembered worker for --maxmemory, its
// id's length aside.
const RotationOverhead = 160

type rotation struct {
	mu    sync.Mutex // protects m and lru; a leaf lock
	m     map[string]*list.Element
	lru   list.List     // of *rotEntry, least recently set first
	state *atomic.Int64 // the store's memory estimate
}

type rotEntry struct{ worker, queue string }

func (r *rotation) init() { r.m = make(map[string]*list.Element) }

// reset forgets every worker.
func (r *rotation) reset() {
	r.mu.Lock()
	r.m = make(map[string]*list.Element)
	r.lru.Init()
	r.mu.Unlock()
}

// last is the queue that last gave worker a job under round-robin, or "".
func (r *rotation) last(worker string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.m[worker]; e != nil {
		return e.Value.(*rotEntry).queue
	}
	return ""
}

// set remembers queue as the one that last gave worker a job.
func (r *rotation) set(worker, queue string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.m[worker]; e != nil {
		e.Value.(*rotEntry).queue = queue
		r.lru.MoveToBack(e)
		return
	}
	r.m[worker] = r.lru.PushBack(&rotEntry{worker: worker, queue: queue})
	r.state.Add(RotationOverhead + int64(len(worker)))
	for r.lru.Len() > MaxRotations {
		old := r.lru.Remove(r.lru.Front()).(*rotEntry)
		delete(r.m, old.worker)
		r.state.Add(-RotationOverhead - int64(len(old.worker)))
	}
}

// entries lists the remembered workers, least recently set first.
func (r *rotation) entries() []rotEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]rotEntry, 0, r.lru.Len())
	for e := r.lru.Front(); e != nil; e = e.Next() {
		out = append(out, *e.Value.(*rotEntry))
	}
	return out
}

// rotated is queues in the order a round-robin reserve of a worker whose
// last queue was last tries them: from the one after last, wrapping round.
func rotated(queues []string, last string) []string {
	for i, q := range queues {
		if q == last {
			out := make([]string, 0, len(queues))
			out = append(out, queues[i+1:]...)
			return append(out, queues[:i+1]...)
		}
	}
	return queues
}
