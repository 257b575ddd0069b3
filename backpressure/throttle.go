package backpressure

import "sluice/internal/minheap"

// A throttle stops every admission under a key until an instant: a worker
// that learns an upstream is overloaded holds all of its jobs for a while.
// It applies to the key as a concurrency key and as a rate-limit key, with
// or without a policy. It ends by itself: the registry arms no timer, so a
// refused caller learns the end (Block.Until) and arms its own, as for a
// rate window; the waiters registered on the key are handed back when the
// throttle is changed or lifted, since their timers are then wrong.

// A throttle that ended is forgotten when a later one is set: the ends
// wait in a min-heap, so that which are forgotten depends only on the
// throttles set and their instants, never on the registry's sharding (a
// snapshot carries every throttle still kept, ended or not, and a store
// loaded from it forgets the same ones at the same points as the live one).

type thrState struct {
	until   int64
	waiters map[Waiter]struct{}
}

// SetThrottle stops admissions under key until the instant until (a past
// one lifts the throttle). With extend, an existing later end is kept. It
// returns the key's waiters, to be woken and to look again.
func (r *Registry) SetThrottle(now int64, key string, until int64, extend bool) []Waiter {
	r.thrMu.Lock()
	defer r.thrMu.Unlock()
	r.sweepThrottles(now)
	s := r.shard(key)
	s.mu.Lock()
	t := s.thr[key]
	if t == nil {
		if until <= now {
			s.mu.Unlock()
			return nil
		}
		t = &thrState{}
		s.thr[key] = t
		r.throttles.Add(1)
		s.bytes.Add(PolicyBytes(Throttle, key))
	}
	pushed := false
	if !extend || until > t.until {
		t.until = until
		if until > now {
			r.thrEnds.push(thrEnd{until, key})
			pushed = true
		}
	}
	ws := takeWaiters(&t.waiters)
	if t.until <= now {
		s.deleteThrottle(key)
	}
	s.mu.Unlock()
	if pushed {
		r.compactEnds()
	}
	return ws
}

// Throttled returns the end of key's throttle, 0 if none is in force at
// now.
func (r *Registry) Throttled(now int64, key string) int64 {
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.thr[key]; t != nil && t.until > now {
		return t.until
	}
	return 0
}

// Throttles returns every throttle kept, ended or not, by key, for
// snapshots; RestoreThrottle loads them.
func (r *Registry) Throttles() map[string]int64 {
	out := map[string]int64{}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, t := range s.thr {
			out[k] = t.until
		}
		s.mu.Unlock()
	}
	return out
}

// ThrottleFloor is the earliest time an admission under a key may happen
// (see Admission.Floor), for snapshots; RestoreThrottleFloor loads it.
func (r *Registry) ThrottleFloor() int64 { return r.thrFloor.Load() }

// RestoreThrottleFloor raises the floor of admissions to at least t.
func (r *Registry) RestoreThrottleFloor(t int64) {
	r.thrMu.Lock()
	defer r.thrMu.Unlock()
	r.thrFloor.Store(max(r.thrFloor.Load(), t))
}

// RestoreThrottle keeps a throttle of key ending at until, ended or not,
// as Throttles gave it.
func (r *Registry) RestoreThrottle(key string, until int64) {
	r.thrMu.Lock()
	defer r.thrMu.Unlock()
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.thr[key]
	if t == nil {
		t = &thrState{}
		s.thr[key] = t
		r.throttles.Add(1)
		s.bytes.Add(PolicyBytes(Throttle, key))
	}
	t.until = until
	r.thrEnds.push(thrEnd{until, key})
}

// throttled reports whether key is throttled at now, registering w on it
// if so. Lock must be held.
func (s *shard) throttled(now int64, key string, w Waiter) (Block, bool) {
	t := s.thr[key]
	if t == nil || t.until <= now {
		return Block{}, false
	}
	addWaiter(&t.waiters, w)
	return Block{Kind: Throttle, Key: key, Until: t.until}, true
}

// compactEnds drops the ends that no longer match their key's throttle
// (changed or lifted since) once they outnumber the throttles kept, so
// that setting and lifting one key again and again holds no more memory
// than its throttle: the heap keeps at most about two ends a throttle
// (one a key after compacting).
// Which throttles are forgotten, and when, is unchanged: a stale end
// forgets nothing. thrMu must be held, no shard lock.
func (r *Registry) compactEnds() {
	if len(r.thrEnds) <= 2*int(r.throttles.Load())+64 {
		return
	}
	kept := r.thrEnds[:0]
	seen := make(map[string]bool, r.throttles.Load())
	for _, e := range r.thrEnds {
		if seen[e.key] {
			continue // one end a key: its throttle has one
		}
		s := r.shard(e.key)
		s.mu.Lock()
		if t := s.thr[e.key]; t != nil && t.until == e.until {
			kept = append(kept, e)
			seen[e.key] = true
		}
		s.mu.Unlock()
	}
	clear(r.thrEnds[len(kept):])
	r.thrEnds = nil
	for _, e := range kept {
		r.thrEnds.push(e)
	}
}

// sweepThrottles forgets the throttles that ended by now. thrMu must be
// held, no shard lock.
func (r *Registry) sweepThrottles(now int64) {
	for len(r.thrEnds) > 0 && r.thrEnds[0].until <= now {
		e := r.thrEnds.pop()
		s := r.shard(e.key)
		s.mu.Lock()
		if t := s.thr[e.key]; t != nil && t.until == e.until {
			s.deleteThrottle(e.key)
			// A caller that read its clock before now may still come with
			// an earlier time: it must not be admitted before this end.
			r.thrFloor.Store(max(r.thrFloor.Load(), e.until))
		}
		s.mu.Unlock()
	}
}

// thrEnd is the end of a throttle, as it was set: the key's throttle may
// have changed since.
type thrEnd struct {
	until int64
	key   string
}

// thrEnds is a min-heap of ends (internal/minheap).
type thrEnds []thrEnd

// Less orders ends by instant, then key.
func (e thrEnd) Less(o thrEnd) bool {
	return e.until < o.until || (e.until == o.until && e.key < o.key)
}

func (h *thrEnds) push(e thrEnd) { *h = minheap.Push(*h, e) }

func (h *thrEnds) pop() (e thrEnd) {
	*h, e = minheap.Pop(*h)
	return e
}

// deleteThrottle forgets key's throttle. Lock must be held.
func (s *shard) deleteThrottle(key string) {
	delete(s.thr, key)
	s.nthr.Add(-1)
	s.bytes.Add(-PolicyBytes(Throttle, key))
}
