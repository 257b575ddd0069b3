package store

// Expiry (JOBPUSH EXPIRES or DEADLINE) and execution timeout (TIMEOUT).
//
// A job with a deadline that waits for a reservation (scheduled, queued or
// retry_pending) has its timer armed at the earlier of its run time and
// its deadline; a queued one, which otherwise has no timer, at its
// deadline. When the deadline comes first the job ends expired (lapse).
// A reservation of a job with a timeout has its timer at the earlier of
// its lease's end and the timeout's; when the timeout comes, the attempt
// fails with error "timeout" (applyTimeout). Both are outcomes of
// maintenance, logged as records of their own (OpLapse, OpTimeout).

import "strings"

// MaxSpan bounds EXPIRES and TIMEOUT (10 years, as the commands bound every
// duration), so that now plus either never overflows.
const MaxSpan = 10 * 365 * 24 * 3600 * 1000

// TimeoutError is the error a timed-out attempt records.
const TimeoutError = "timeout"

// pushDeadline checks p's expiry options and returns its deadline at now,
// 0 for none. A deadline not after the job's run time is refused: the job
// could never be reserved.
func pushDeadline(now int64, p PushOptions) (int64, error) {
	switch {
	case p.Deadline < 0 || p.ExpiresIn < 0:
		return 0, invalid("expiry must be a positive time")
	case p.Timeout < 0:
		return 0, invalid("timeout must be a positive number of milliseconds")
	case p.ExpiresIn > MaxSpan || p.Timeout > MaxSpan:
		return 0, invalid("EXPIRES and TIMEOUT must be at most 10 years")
	case p.Deadline != 0 && p.ExpiresIn != 0:
		return 0, invalid("EXPIRES and DEADLINE are exclusive")
	}
	d := p.Deadline
	if p.ExpiresIn != 0 {
		d = now + p.ExpiresIn
	}
	if d != 0 && d <= max(now, p.RunAt) {
		return 0, invalid("the deadline must be after the job's run time")
	}
	return d, nil
}

// deadline is j's deadline, 0 if none. Lock must be held.
func (j *job) deadline() int64 {
	if j.x == nil {
		return 0
	}
	return j.x.deadline
}

// leaseEnd is when a lease to expires really ends: no later than the
// reservation's timeout. Lock must be held.
func (x *jobExt) leaseEnd(expires int64) int64 {
	if x.timeoutAt != 0 && x.timeoutAt < expires {
		return x.timeoutAt
	}
	return expires
}

// timedDue is j's timer instant when a deadline or timeout may have moved
// it (snapshots keep it), else 0. Lock must be held.
func (j *job) timedDue() int64 {
	if j.tidx < 0 || j.x == nil || (j.x.deadline == 0 && j.x.timeout == 0) {
		return 0
	}
	return j.dueAt
}

// armWait arms the timer of j, which has just started to wait at now:
// until runAt (scheduled, retry_pending) or, runAt 0, for a reservation
// (queued). Its deadline, if any, comes first when earlier; one already
// passed fires at now. Lock must be held.
func (sh *shard) armWait(j *job, now, runAt int64, fx *effects) {
	at := runAt
	if d := j.deadline(); d != 0 {
		d = max(d, now)
		if at == 0 || d < at {
			at = d
		}
	}
	if at != 0 {
		sh.arm(j, at, fx)
	}
}

// lapse ends a waiting job whose deadline came at at; its timer is
// already removed. Lock must be held.
func (s *Store) lapse(j *job, at int64, fx *effects) {
	from := j.state
	s.move(j, Expired)
	if from == Queued {
		j.ln.q.removeQueued(j) // after the move: the entry it leaves must read as stale
	}
	if from == Waiting {
		s.clearAfter(j)
	}
	j.updatedAt = at
	fx.timed = true
	s.terminal(j, fx)
	fx.timed = false
	s.log(Record{Op: OpLapse, Now: at, ID: j.id}, fx)
}

// timeout fails the attempt of a reservation that ran past its timeout;
// its timer is already removed. Lock must be held.
func (s *Store) timeout(j *job, fx *effects) {
	at := j.dueAt
	attempt := j.attempt
	if j.state == Reserved {
		attempt++
	}
	state, runAt := Failed, int64(0)
	if attempt < j.maxAtt {
		state, runAt = RetryPending, at+backoff(j.backoff, attempt)
	}
	s.applyTimeout(j, at, state, runAt, fx)
}

// applyTimeout records a timed-out attempt with its decided outcome: the
// lease's token is remembered as expired (JOBACK answers EXPIRED), and the
// rest is JOBFAIL's, error "timeout". Lock must be held.
func (s *Store) applyTimeout(j *job, at int64, state State, runAt int64, fx *effects) {
	// A copy: the token may live inside the job's record (see expire).
	s.expired.add(strings.Clone(j.xr().token), at)
	fx.timed = true
	s.applyFailOp(OpTimeout, j, at, TimeoutError, true, state, runAt, fx)
	fx.timed = false
}
