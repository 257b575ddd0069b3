package store

import "sluice/backpressure"

// Throttles (POLICYTHROTTLE, JOBRELEASE ... THROTTLE) stop admissions
// under a key until an instant. The registry keeps them; a lane refused by
// one is parked on the key like a saturated one and a lane timer puts it
// back when the throttle ends, so throttled jobs cost reservations nothing
// and blocked reservers wake without polling. Changing or lifting a
// throttle hands its parked lanes back at once (their timers would be
// wrong). A throttle is logged as its outcome, the instant it ends.

// Throttle stops admissions under key for ms milliseconds from now, or
// lifts its throttle when ms is 0 (POLICYTHROTTLE). A throttle in force
// that ends later is kept: workers that each learn of the same overload
// never cut each other's back-off short. It returns when the key's
// throttle ends (0: lifted).
func (s *Store) Throttle(now int64, key string, ms int64) (int64, error) {
	key, err := throttleArgs(key, ms)
	if err != nil {
		return 0, err
	}
	if err := s.writable(); err != nil {
		return 0, err
	}
	var fx effects
	s.maintain(now, &fx)
	s.policyMu.Lock()
	until, err := s.throttleLocked(now, key, now+ms, ms > 0, &fx)
	s.policyMu.Unlock()
	s.finish(&fx)
	if err != nil {
		return 0, err
	}
	return until, s.durable(&fx)
}

// ReleaseThrottle is Release that also throttles key for ms from now, in
// one step (JOBRELEASE token DELAY ms THROTTLE key ms): a worker that
// learned an upstream is overloaded gives its job back and holds every job
// of the key. A throttle already ending later is kept; ms 0 changes none.
func (s *Store) ReleaseThrottle(now int64, token string, delay int64, key string, ms int64) error {
	if delay < 0 {
		return invalid("delay must not be negative")
	}
	key, err := throttleArgs(key, ms)
	if err != nil {
		return err
	}
	to := Queued
	if delay > 0 {
		to = Scheduled
	}
	if err := s.writable(); err != nil {
		return err
	}
	var fx effects
	s.maintain(now, &fx)
	// policyMu before the shard lock, as everywhere: the throttle is in
	// force before the job is queued again, so no other worker can take
	// it (or any job of the key) in between.
	s.policyMu.Lock()
	j, sh, err := s.withToken(token, to)
	if err == nil && j.state != Reserved {
		err = &StateError{ID: j.id, From: j.state, To: to}
	}
	if err == nil {
		_, err = s.throttleLocked(now, key, now+ms, true, &fx)
	}
	if err == nil {
		err = s.applyRelease(j, now, now+delay, &fx)
	}
	if sh != nil {
		sh.mu.Unlock()
	}
	s.policyMu.Unlock()
	s.finish(&fx)
	if err != nil {
		return err
	}
	return s.durable(&fx)
}

func throttleArgs(key string, ms int64) (string, error) {
	key, err := ident("key", key)
	if err != nil {
		return "", err
	}
	if backpressure.IsTemplate(key) {
		return "", invalid("a throttle names one key, not a template")
	}
	if ms < 0 {
		return "", invalid("throttle must not be negative")
	}
	return key, nil
}

// throttleLocked makes key's throttle end at until (lifted when until <=
// now); with extend, a throttle ending later is kept. It logs and applies
// the change, if any, and returns the throttle's end (0: none). policyMu
// must be held.
func (s *Store) throttleLocked(now int64, key string, until int64, extend bool, fx *effects) (int64, error) {
	cur := s.reg.Throttled(now, key)
	if until <= now {
		until = 0
	}
	if until == cur || (extend && cur > until) {
		return cur, nil // nothing changes, nothing to log
	}
	if cur == 0 {
		if err := s.admitState(backpressure.PolicyBytes(backpressure.Throttle, key)); err != nil {
			return 0, err
		}
	}
	r := Record{Op: OpThrottle, Now: now, PolicyKey: key, Until: until}
	s.log(r, fx)
	s.applyThrottle(&r, fx)
	return until, nil
}

// applyThrottle changes the registry as r says. policyMu must be held.
func (s *Store) applyThrottle(r *Record, fx *effects) {
	if r.Now == 0 { // a snapshot's (Dump)
		s.reg.RestoreThrottle(r.PolicyKey, r.Until)
		return
	}
	ws := s.reg.SetThrottle(r.Now, r.PolicyKey, r.Until, false)
	s.wake(backpressure.Throttle, r.PolicyKey, ws, fx)
}

// liftThrottle ends key's throttle (POLICYDEL THROTTLE) and reports
// whether one was in force.
func (s *Store) liftThrottle(now int64, key string) (bool, error) {
	key, err := throttleArgs(key, 0)
	if err != nil {
		return false, err
	}
	if err := s.writable(); err != nil {
		return false, err
	}
	var fx effects
	s.maintain(now, &fx)
	s.policyMu.Lock()
	was := s.reg.Throttled(now, key) > 0
	_, err = s.throttleLocked(now, key, 0, false, &fx)
	s.policyMu.Unlock()
	s.finish(&fx)
	if err != nil {
		return false, err
	}
	return was, s.durable(&fx)
}
