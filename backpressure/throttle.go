package backpressure

// A throttle stops every admission under a key until an instant: a worker
// that learns an upstream is overloaded holds all of its jobs for a while.
// It applies to the key as a concurrency key and as a rate-limit key, with
// or without a policy. It ends by itself: the registry arms no timer, so a
// refused caller learns the end (Block.Until) and arms its own, as for a
// rate window; the waiters registered on the key are handed back when the
// throttle is changed or lifted, since their timers are then wrong.

type thrState struct {
	until   int64
	waiters map[Waiter]struct{}
}

// SetThrottle stops admissions under key until the instant until (a past
// one lifts the throttle). With extend, an existing later end is kept. It
// returns the key's waiters, to be woken and to look again.
func (r *Registry) SetThrottle(now int64, key string, until int64, extend bool) []Waiter {
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepThrottles(now, key)
	t := s.thr[key]
	if t == nil {
		if until <= now {
			return nil
		}
		t = &thrState{}
		s.thr[key] = t
		r.throttles.Add(1)
		s.bytes.Add(PolicyBytes(Throttle, key))
	}
	if !extend || until > t.until {
		t.until = until
	}
	ws := takeWaiters(&t.waiters)
	if t.until <= now {
		s.deleteThrottle(key)
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

// Throttles returns every throttle in force at now, by key, for snapshots.
func (r *Registry) Throttles(now int64) map[string]int64 {
	out := map[string]int64{}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, t := range s.thr {
			if t.until > now {
				out[k] = t.until
			}
		}
		s.mu.Unlock()
	}
	return out
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

// sweepThrottles forgets the throttles of the shard that ended by now,
// but for keep's, whose waiters the caller hands back. It runs when a
// throttle is set, a logged change, so every node forgets the same ones at
// the same point. Lock must be held.
func (s *shard) sweepThrottles(now int64, keep string) {
	for k, t := range s.thr {
		if t.until <= now && k != keep {
			s.deleteThrottle(k)
		}
	}
}

// deleteThrottle forgets key's throttle. Lock must be held.
func (s *shard) deleteThrottle(key string) {
	delete(s.thr, key)
	s.nthr.Add(-1)
	s.bytes.Add(-PolicyBytes(Throttle, key))
}
