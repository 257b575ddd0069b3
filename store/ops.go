package store

import (
	"strings"

	"sluice/backpressure"
)

// Push enqueues a job (JOBPUSH) and returns its id.
func (s *Store) Push(now int64, p PushOptions) (string, error) {
	qname, err := ident("queue", p.Queue)
	if err != nil {
		return "", err
	}
	handler, err := ident("handler", p.Handler)
	if err != nil {
		return "", err
	}
	id := ""
	if p.ID != "" {
		if id, err = ident("job id", p.ID); err != nil {
			return "", err
		}
	}
	ckey, err := optIdent("concurrency key", p.ConcurrencyKey)
	if err != nil {
		return "", err
	}
	rkey, err := optIdent("rate-limit key", p.RateLimitKey)
	if err != nil {
		return "", err
	}
	switch {
	case p.MaxAttempts < 0:
		return "", invalid("max attempts must not be negative")
	case p.Backoff < 0:
		return "", invalid("backoff must not be negative")
	case p.RunAt < 0:
		return "", invalid("run time must not be negative")
	}
	j := &job{
		payload: p.Payload, priority: p.Priority,
		maxAtt: p.MaxAttempts, backoff: p.Backoff,
		createdAt: now, updatedAt: now, tidx: -1,
	}
	if j.maxAtt == 0 {
		j.maxAtt = DefaultMaxAttempts
	}
	if j.backoff == 0 {
		j.backoff = DefaultBackoff
	}

	var fx effects
	s.maintain(now, &fx)
	sh := s.shardOf(qname)
	sh.mu.Lock()
	s.drain(sh)
	q := sh.queueFor(qname)
	j.q = q
	if id == "" {
		for {
			id = s.gen.JobID(now)
			if s.index.putIfAbsent(id, j) {
				break
			}
		}
	} else if !s.index.putIfAbsent(id, j) {
		sh.maybeDelete(q)
		sh.mu.Unlock()
		s.finish(&fx)
		return "", ErrDupJob
	}
	j.id = id
	if n := s.total.Add(1); s.cfg.MaxJobs > 0 && n > s.cfg.MaxJobs {
		s.total.Add(-1)
		s.index.remove(id, j)
		sh.maybeDelete(q)
		sh.mu.Unlock()
		s.finish(&fx)
		return "", ErrFull
	}
	q.jobs++
	q.pushed++
	q.created++
	j.created = q.created
	j.ln = q.laneFor(laneKey{handler, ckey, rkey})
	j.ln.refs++
	queued := p.RunAt <= now
	if queued {
		j.state, j.runAt = Queued, now
		q.counts[Queued]++
		q.enqueue(j)
	} else {
		j.state, j.runAt = Scheduled, p.RunAt
		q.counts[Scheduled]++
		sh.arm(j, p.RunAt, &fx)
	}
	sh.mu.Unlock()
	s.finish(&fx)
	if queued {
		s.notify(qname)
	}
	return id, nil
}

// Reserve reserves up to Count jobs (JOBRESERVE). It returns nil when
// nothing is eligible.
func (s *Store) Reserve(now int64, o ReserveOptions) ([]Reservation, error) {
	worker, err := ident("worker", o.Worker)
	if err != nil {
		return nil, err
	}
	if o.Lease < 1 {
		return nil, invalid("lease must be a positive number of milliseconds")
	}
	want := o.Count
	if want == 0 {
		want = 1
	}
	if want < 0 {
		return nil, invalid("count must be positive")
	}
	if len(o.Queues) == 0 {
		return nil, invalid("at least one queue is required")
	}
	queues := make([]string, len(o.Queues))
	for i, name := range o.Queues {
		if queues[i], err = ident("queue", name); err != nil {
			return nil, err
		}
	}
	var handlers []string
	if o.Handlers != nil {
		if len(o.Handlers) == 0 {
			return nil, invalid("at least one handler is required")
		}
		handlers = make([]string, 0, len(o.Handlers))
		for _, h := range o.Handlers {
			if h, err = ident("handler", h); err != nil {
				return nil, err
			}
			if !seen(handlers, h) {
				handlers = append(handlers, h)
			}
		}
	}

	var fx effects
	s.maintain(now, &fx)
	var out []Reservation
	for _, name := range queues {
		if len(out) == want {
			break
		}
		sh := s.shardOf(name)
		sh.mu.Lock()
		if q := sh.queues[name]; q != nil && !q.paused {
			out = s.reserveFrom(q, now, worker, o.Lease, handlers, want, out, &fx)
		}
		sh.mu.Unlock()
	}
	s.finish(&fx)
	return out, nil
}

// reserveFrom takes eligible jobs from q until out holds want. Lock must be
// held.
func (s *Store) reserveFrom(q *queue, now int64, worker string, lease int64, handlers []string, want int, out []Reservation, fx *effects) []Reservation {
	sh := q.sh
	for len(out) < want {
		s.drain(sh)
		l := q.best(handlers)
		if l == nil {
			break
		}
		b, ok, wake := s.reg.Admit(now, l.key.ckey, l.key.rkey, q)
		if len(wake) > 0 {
			s.wake(backpressure.Concurrency, l.key.ckey, wake, fx)
		}
		if !ok {
			q.park(l, parkKey{b.Kind, b.Key})
			if b.Kind == backpressure.RateLimit {
				sh.armLane(q, l, b.Until, fx)
			}
			continue
		}
		j := l.popHead()
		q.dequeued(l)
		q.fix(l)
		s.move(j, Reserved)
		j.token = j.id + "." + s.gen.Token(now)
		j.worker = worker
		j.expiresAt = now + lease
		j.updatedAt = now
		sh.arm(j, j.expiresAt, fx)
		out = append(out, Reservation{
			Token: j.token, ID: j.id, Queue: q.name, Handler: l.key.handler,
			Payload: j.payload, Priority: j.priority, Attempt: j.attempt, ExpiresAt: j.expiresAt,
		})
	}
	return out
}

// best is the lane whose head would be reserved next, among the handlers
// given (all when nil). Lock must be held.
func (q *queue) best(handlers []string) *lane {
	if handlers == nil {
		if len(q.heap) == 0 {
			return nil
		}
		return q.heap[0].lanes[0]
	}
	var best *lane
	for _, h := range handlers {
		g := q.groups[h]
		if g == nil || len(g.lanes) == 0 {
			continue
		}
		if l := g.lanes[0]; best == nil || before(l.head(), best.head()) {
			best = l
		}
	}
	return best
}

// withToken finds the job reserved under token and returns it with its shard
// locked. to is the state the caller wants to move it to, for the error of a
// cancelled job.
func (s *Store) withToken(token string, to State) (*job, *shard, error) {
	i := strings.LastIndexByte(token, '.')
	if i <= 0 {
		return nil, nil, ErrNoReservation
	}
	j := s.index.get(token[:i])
	if j == nil {
		if s.expired.has(token) {
			return nil, nil, ErrExpired
		}
		return nil, nil, ErrNoReservation
	}
	sh := j.q.sh
	sh.mu.Lock()
	s.drain(sh)
	if !j.dropped && j.token == token && (j.state == Reserved || j.state == Running) {
		return j, sh, nil
	}
	var err error
	switch {
	case s.expired.has(token):
		err = ErrExpired
	case !j.dropped && j.token == token && j.state == Cancelled:
		err = &StateError{ID: j.id, From: Cancelled, To: to}
	default:
		err = ErrNoReservation
	}
	sh.mu.Unlock()
	return nil, nil, err
}

// Start marks a reserved job running (JOBSTART) and returns its attempt.
func (s *Store) Start(now int64, token string) (int64, error) {
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	j, sh, err := s.withToken(token, Running)
	if err != nil {
		return 0, err
	}
	defer sh.mu.Unlock()
	if err := s.move(j, Running); err != nil {
		return 0, err
	}
	j.attempt++
	j.updatedAt = now
	return j.attempt, nil
}

// Touch extends a lease to now+lease (JOBTOUCH) and returns the new expiry.
func (s *Store) Touch(now int64, token string, lease int64) (int64, error) {
	if lease < 1 {
		return 0, invalid("lease must be a positive number of milliseconds")
	}
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	j, sh, err := s.withToken(token, Running)
	if err != nil {
		return 0, err
	}
	defer sh.mu.Unlock()
	j.expiresAt = now + lease
	j.updatedAt = now
	sh.arm(j, j.expiresAt, &fx)
	return j.expiresAt, nil
}

// endReservation clears what belongs to a reservation that ended by ack,
// fail, release or cancel. Lock must be held.
func (s *Store) endReservation(j *job, fx *effects) {
	j.q.sh.unarm(j)
	j.worker, j.expiresAt = "", 0
	s.releaseKey(j, fx)
}

// Ack completes a job (JOBACK).
func (s *Store) Ack(now int64, token string) error {
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	j, sh, err := s.withToken(token, Succeeded)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if j.state == Reserved {
		j.attempt++
	}
	s.move(j, Succeeded)
	j.updatedAt = now
	s.endReservation(j, &fx)
	s.terminal(j, &fx)
	return nil
}

// Fail records a failed attempt (JOBFAIL) and returns the job's new state.
func (s *Store) Fail(now int64, token string, o FailOptions) (State, error) {
	if o.HasRetry && o.RetryIn < 0 {
		return 0, invalid("retry delay must not be negative")
	}
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	j, sh, err := s.withToken(token, Failed)
	if err != nil {
		return 0, err
	}
	defer sh.mu.Unlock()
	if j.state == Reserved {
		j.attempt++
	}
	if o.HasError {
		j.lastError, j.hasError = o.Error, true
	}
	j.updatedAt = now
	s.endReservation(j, &fx)
	if !o.NoRetry && j.attempt < j.maxAtt {
		delay := backoff(j.backoff, j.attempt)
		if o.HasRetry {
			delay = o.RetryIn
		}
		s.move(j, RetryPending)
		j.runAt = now + delay
		sh.arm(j, j.runAt, &fx)
		return RetryPending, nil
	}
	s.move(j, Failed)
	s.terminal(j, &fx)
	return Failed, nil
}

// backoff is base * 2^(attempt-1), capped at MaxBackoff.
func backoff(base, attempt int64) int64 {
	shift := attempt - 1
	if shift < 0 {
		shift = 0
	}
	if shift >= 62 || base > MaxBackoff>>shift {
		return MaxBackoff
	}
	return min(base<<shift, MaxBackoff)
}

// Release gives a reserved job back without using an attempt (JOBRELEASE):
// queued, or scheduled after delay ms when delay > 0.
func (s *Store) Release(now int64, token string, delay int64) error {
	if delay < 0 {
		return invalid("delay must not be negative")
	}
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	to := Queued
	if delay > 0 {
		to = Scheduled
	}
	j, sh, err := s.withToken(token, to)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if err := s.move(j, to); err != nil {
		return err
	}
	j.updatedAt = now
	s.endReservation(j, &fx)
	if delay > 0 {
		j.runAt = now + delay
		sh.arm(j, j.runAt, &fx)
		return nil
	}
	j.runAt = now
	j.q.enqueue(j)
	fx.notify = append(fx.notify, j.q.name)
	return nil
}

// withID finds a job by id and returns it with its shard locked.
func (s *Store) withID(id string) (*job, *shard, error) {
	id, err := ident("job id", id)
	if err != nil {
		return nil, nil, err
	}
	j := s.index.get(id)
	if j == nil {
		return nil, nil, ErrNoJob
	}
	sh := j.q.sh
	sh.mu.Lock()
	s.drain(sh)
	if j.dropped {
		sh.mu.Unlock()
		return nil, nil, ErrNoJob
	}
	return j, sh, nil
}

// Cancel cancels a non-terminal job (JOBCANCEL). It reports false if the job
// was already terminal.
func (s *Store) Cancel(now int64, id string) (bool, error) {
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	j, sh, err := s.withID(id)
	if err != nil {
		return false, err
	}
	defer sh.mu.Unlock()
	if j.state.Terminal() {
		return false, nil
	}
	s.cancelLocked(j, now, &fx)
	return true, nil
}

// cancelLocked cancels a non-terminal job. Lock must be held.
func (s *Store) cancelLocked(j *job, now int64, fx *effects) {
	switch j.state {
	case Queued:
		j.q.removeQueued(j)
	case Reserved, Running:
		s.endReservation(j, fx)
	case Scheduled, RetryPending:
		j.q.sh.unarm(j)
	}
	s.move(j, Cancelled)
	j.updatedAt = now
	s.terminal(j, fx)
}

// Retry puts a failed job back in its queue with its attempts reset
// (JOBRETRY).
func (s *Store) Retry(now int64, id string) error {
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	j, sh, err := s.withID(id)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if err := s.move(j, Queued); err != nil {
		return err
	}
	s.ret.remove(j)
	j.attempt = 0
	j.runAt, j.updatedAt = now, now
	j.q.enqueue(j)
	fx.notify = append(fx.notify, j.q.name)
	return nil
}

// Get returns a copy of a job's record with the blocked_by explanation
// (JOBGET).
func (s *Store) Get(now int64, id string) (Job, bool) {
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	j, sh, err := s.withID(id)
	if err != nil {
		return Job{}, false
	}
	defer sh.mu.Unlock()
	return s.snapshot(j, now), true
}

// snapshot copies a job's record. Lock must be held.
func (s *Store) snapshot(j *job, now int64) Job {
	out := Job{
		ID: j.id, Queue: j.q.name, Handler: j.ln.key.handler, Payload: j.payload,
		State: j.state, Priority: j.priority,
		ConcurrencyKey: j.ln.key.ckey, RateLimitKey: j.ln.key.rkey,
		Attempt: j.attempt, MaxAttempts: j.maxAtt, Backoff: j.backoff,
		CreatedAt: j.createdAt, UpdatedAt: j.updatedAt, RunAt: j.runAt,
		LastError: j.lastError, HasLastError: j.hasError,
	}
	if j.state == Reserved || j.state == Running {
		out.Worker, out.ExpiresAt = j.worker, j.expiresAt
	}
	if j.state == Queued {
		if j.q.paused {
			out.BlockedBy = "paused"
		} else if b, blocked := s.reg.Check(now, j.ln.key.ckey, j.ln.key.rkey); blocked {
			out.BlockedBy = b.String()
		}
	}
	return out
}

// withQueue runs fn with the named queue's shard locked; q is nil when the
// queue does not exist.
func (s *Store) withQueue(now int64, name string, fn func(sh *shard, q *queue, fx *effects)) error {
	name, err := ident("queue", name)
	if err != nil {
		return err
	}
	var fx effects
	s.maintain(now, &fx)
	sh := s.shardOf(name)
	sh.mu.Lock()
	s.drain(sh)
	fn(sh, sh.queues[name], &fx)
	sh.mu.Unlock()
	s.finish(&fx)
	return nil
}

// QueueLen is the number of queued jobs in a queue (QUEUELEN).
func (s *Store) QueueLen(now int64, name string) (int64, error) {
	var n int64
	err := s.withQueue(now, name, func(_ *shard, q *queue, _ *effects) {
		if q != nil {
			n = q.counts[Queued]
		}
	})
	return n, err
}

// QueueStats describes a queue (QUEUESTATS).
func (s *Store) QueueStats(now int64, name string) (QueueStats, error) {
	st := QueueStats{Status: "idle"}
	err := s.withQueue(now, name, func(_ *shard, q *queue, _ *effects) {
		st.Queue = strings.TrimSpace(name)
		if q == nil {
			return
		}
		st.Queued, st.Scheduled = q.counts[Queued], q.counts[Scheduled]
		st.Reserved, st.Running = q.counts[Reserved], q.counts[Running]
		st.RetryPending, st.Failed = q.counts[RetryPending], q.counts[Failed]
		st.Paused = q.paused
		st.PushedTotal, st.SucceededTotal, st.FailedTotal = q.pushed, q.succ, q.failed
		for k, l := range q.lanes {
			if l.n == 0 || (k.ckey == "" && k.rkey == "") {
				continue
			}
			if b, blocked := s.reg.Check(now, k.ckey, k.rkey); blocked {
				if b.Kind == backpressure.Concurrency {
					st.BlockedConcurrency += int64(l.n)
				} else {
					st.BlockedRateLimit += int64(l.n)
				}
			}
		}
		switch {
		case q.paused:
			st.Status = "paused"
		case st.Queued > 0 && st.BlockedConcurrency+st.BlockedRateLimit == st.Queued:
			st.Status = "throttled"
		case st.Queued+st.Scheduled+st.Reserved+st.Running+st.RetryPending > 0:
			st.Status = "active"
		}
	})
	return st, err
}

// Queues lists the queues that hold any job, sorted (QUEUES).
func (s *Store) Queues(now int64) []string {
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
	names := map[string]struct{}{}
	for _, sh := range s.shards {
		sh.mu.Lock()
		for name, q := range sh.queues {
			if q.jobs > 0 {
				names[name] = struct{}{}
			}
		}
		sh.mu.Unlock()
	}
	return sortedKeys(names)
}

// Pause stops reservations from a queue (QUEUEPAUSE); pushes still land.
func (s *Store) Pause(now int64, name string) error {
	return s.withQueue(now, name, func(sh *shard, q *queue, _ *effects) {
		if q == nil {
			q = sh.queueFor(strings.TrimSpace(name))
		}
		q.paused = true
	})
}

// Resume lets reservations take from a queue again (QUEUERESUME).
func (s *Store) Resume(now int64, name string) error {
	return s.withQueue(now, name, func(sh *shard, q *queue, fx *effects) {
		if q == nil || !q.paused {
			return
		}
		q.paused = false
		sh.maybeDelete(q)
		if q.counts[Queued] > 0 {
			fx.notify = append(fx.notify, q.name)
		}
	})
}

// Peek lists up to n queued jobs (DefaultPeekCount when n <= 0) in the order
// reservations would take them if no policy blocked anything (QUEUEPEEK).
func (s *Store) Peek(now int64, name string, n int) ([]Job, error) {
	if n <= 0 {
		n = DefaultPeekCount
	}
	var out []Job
	err := s.withQueue(now, name, func(_ *shard, q *queue, _ *effects) {
		if q == nil {
			return
		}
		for _, j := range q.ordered(n) {
			out = append(out, s.snapshot(j, now))
		}
	})
	return out, err
}

// Purge cancels every queued and scheduled job of a queue (QUEUEPURGE) and
// returns how many.
func (s *Store) Purge(now int64, name string) (int64, error) {
	var n int64
	err := s.withQueue(now, name, func(sh *shard, q *queue, fx *effects) {
		if q == nil {
			return
		}
		var victims []*job
		for _, l := range q.lanes {
			for _, b := range l.buckets {
				for i := 0; i < b.jobs.len(); i++ {
					if j := b.jobs.at(i); live(j) {
						victims = append(victims, j)
					}
				}
			}
		}
		for _, j := range sh.timers {
			if j.q == q && j.state == Scheduled {
				victims = append(victims, j)
			}
		}
		sortJobs(victims, func(a, b *job) bool { return a.created < b.created })
		for _, j := range victims {
			s.cancelLocked(j, now, fx)
		}
		n = int64(len(victims))
	})
	return n, err
}

// SetConcurrency creates or changes a concurrency policy (POLICYSET
// CONCURRENCY).
func (s *Store) SetConcurrency(now int64, key string, limit int64) error {
	key, err := ident("key", key)
	if err != nil {
		return err
	}
	ws, err := s.reg.SetConcurrency(key, limit)
	if err != nil {
		return invalid("%s", err.Error())
	}
	s.policyChanged(now, backpressure.Concurrency, key, ws)
	return nil
}

// SetRateLimit creates or changes a rate-limit policy (POLICYSET RATELIMIT).
func (s *Store) SetRateLimit(now int64, key string, limit, period int64) error {
	key, err := ident("key", key)
	if err != nil {
		return err
	}
	ws, err := s.reg.SetRateLimit(key, limit, period)
	if err != nil {
		return invalid("%s", err.Error())
	}
	s.policyChanged(now, backpressure.RateLimit, key, ws)
	return nil
}

// DeletePolicy removes a policy (POLICYDEL) and reports whether it existed.
func (s *Store) DeletePolicy(now int64, kind backpressure.Kind, key string) (bool, error) {
	key, err := ident("key", key)
	if err != nil {
		return false, err
	}
	ok, ws := s.reg.Delete(kind, key)
	s.policyChanged(now, kind, key, ws)
	return ok, nil
}

func (s *Store) policyChanged(now int64, kind backpressure.Kind, key string, ws []backpressure.Waiter) {
	var fx effects
	s.maintain(now, &fx)
	s.wake(kind, key, ws, &fx)
	s.finish(&fx)
}

// GetPolicy returns a policy with its live usage (POLICYGET).
func (s *Store) GetPolicy(now int64, kind backpressure.Kind, key string) (PolicyInfo, bool, error) {
	key, err := ident("key", key)
	if err != nil {
		return PolicyInfo{}, false, err
	}
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
	info, ok := s.reg.Get(now, kind, key)
	if !ok {
		return PolicyInfo{}, false, nil
	}
	return s.withWaiting(info), true, nil
}

// Policies lists every policy with its live usage (POLICYLIST).
func (s *Store) Policies(now int64) []PolicyInfo {
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
	infos := s.reg.List(now)
	out := make([]PolicyInfo, len(infos))
	for i, info := range infos {
		out[i] = s.withWaiting(info)
	}
	return out
}

// withWaiting adds the number of queued jobs the policy blocks now.
func (s *Store) withWaiting(info backpressure.Info) PolicyInfo {
	p := PolicyInfo{Info: info}
	if !info.Blocking {
		return p
	}
	for _, sh := range s.shards {
		sh.mu.Lock()
		m := sh.ckeys
		if info.Kind == backpressure.RateLimit {
			m = sh.rkeys
		}
		if c := m[info.Key]; c != nil {
			p.Waiting += c.queued
		}
		sh.mu.Unlock()
	}
	return p
}

// Flush drops every job, queue, pause, policy and remembered token
// (FLUSHALL). Operations running concurrently may land before or after it.
func (s *Store) Flush(now int64) {
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, q := range sh.queues {
			q.dead = true
		}
		sh.queues = make(map[string]*queue)
		sh.timers, sh.lanes = nil, nil
		sh.ckeys = make(map[string]*keyCount)
		sh.rkeys = make(map[string]*keyCount)
		sh.nextDue.Store(1<<63 - 1)
		sh.inboxMu.Lock()
		sh.inbox = nil
		sh.inboxN.Store(0)
		sh.inboxMu.Unlock()
		sh.mu.Unlock()
	}
	// Guard stale pointers that operations in flight may hold.
	for _, j := range s.index.all() {
		j.q.sh.mu.Lock()
		j.dropped = true
		j.q.sh.mu.Unlock()
	}
	s.index.reset()
	s.reg.Reset()
	s.expired.init(s.cfg.ExpiredTokens)
	s.ret.init(s.cfg.MaxRetained, s.cfg.Retention)
	s.total.Store(0)
}
