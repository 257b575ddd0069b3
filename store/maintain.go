package store

// Maintenance: the timers of leases, scheduled jobs, retries and parked
// lanes, fired by Tick, and the outcomes they log (expire, due, drop).

import (
	"math"
	"strings"
	"sync/atomic"

	"sluice/backpressure"
)

// NextDeadline is the earliest instant at which maintenance has work (a
// lease, a scheduled job, a retry, a rate window, a retention drop, keys to
// forget, a periodic entry's tick); 0 if none.
func (s *Store) NextDeadline() int64 {
	next := min(s.ret.nextDue.Load(), s.dead.nextDue.Load(), s.idem.nextDue.Load(), s.cron.nextDue.Load())
	for _, sh := range s.shards {
		if d := sh.nextDue.Load(); d < next {
			next = d
		}
	}
	if next == math.MaxInt64 {
		return 0
	}
	return next
}

// Tick applies everything due at now and notifies the affected queues.
// It is the timer's, outside every command: it holds the gate shared, so
// that it never runs inside a transaction (see unit.go).
//
// When a periodic entry was due, Tick returns only once the log holds its
// records (Journal.Wait, after the gate): with appendfsync always nothing
// else would write them until a command waits, and a crash meanwhile
// would lose jobs, and ticks, that no client ever saw.
func (s *Store) Tick(now int64) {
	s.gate.mu.RLock()
	cronDue := s.cron.nextDue.Load() <= now
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
	s.gate.mu.RUnlock()
	if cronDue {
		_ = s.durable(&fx) // a failing log is the commands' to report (MISCONF)
	}
}

// maintain applies everything due at now, shard by shard, then the
// retention drops. It holds at most one lock at a time.
func (s *Store) maintain(now int64, fx *effects) {
	// Resolving the jobs that waited for jobs the timers ended may
	// schedule some at a time already past (deps.go): their timers run in
	// a further round.
	for s.maintainRound(now, fx) {
	}
	if s.ret.nextDue.Load() <= now {
		for _, e := range s.ret.expire(now) {
			s.drop(e, fx)
		}
	}
	if s.dead.nextDue.Load() <= now {
		for _, e := range s.dead.expire(now) {
			s.drop(e, fx)
		}
	}
	if s.idem.nextDue.Load() <= now {
		s.sweepKeys(now, fx)
	}
	if s.cron.nextDue.Load() <= now {
		s.fireCron(now, fx) // cron.go
	}
	if s.batches.due.Load() <= now {
		s.forgetBatches(now, fx) // batch.go
	}
}

// maintainRound fires the timers due at now and resolves what they ended;
// it reports whether timers fell due meanwhile. No lock may be held.
func (s *Store) maintainRound(now int64, fx *effects) bool {
	if old := s.minDue.Load(); old <= now {
		if s.brk.n.Load() > 0 {
			s.runDueInOrder(now, fx)
		}
		next := int64(math.MaxInt64)
		for _, sh := range s.shards {
			d := sh.nextDue.Load()
			if d <= now {
				sh.mu.Lock()
				s.runDue(sh, now, fx)
				sh.mu.Unlock()
				d = sh.nextDue.Load()
			}
			next = min(next, d)
		}
		// Raise the bound to what the shards said, unless a shard lowered
		// it meanwhile. A shard that lowered its nextDue after this scan
		// read it, but before the swap, is caught by the second look; one
		// that did so after the second look lowers the raised bound itself.
		if s.minDue.CompareAndSwap(old, next) {
			for _, sh := range s.shards {
				lowerDue(&s.minDue, sh.nextDue.Load())
			}
		}
		// Timers may end jobs (deadlines, timeouts), which resolves the
		// jobs waiting for them (deps.go), releases their unique keys and,
		// by their filing, evicts others from retention: all happen now,
		// before the operation that ran maintenance reads anything (a push
		// of the key must find it free).
		ended := len(fx.ends) > 0
		if ended {
			s.finishEnds(fx)
		}
		if len(fx.callbacks) > 0 {
			s.pushCallbacks(fx)
		}
		s.releaseKeys(fx)
		s.dropEvicted(fx)
		return ended && s.minDue.Load() <= now
	}
	return false
}

// runDueInOrder fires the timers due at now shard by shard in the order
// of their instants, not of the shards: a breaker over queues of several
// shards then counts lease expiries as they happened, as a single queue
// would. (Shards are read without their locks, so a timer armed meanwhile
// may come out of order; the log records whatever order was applied.)
// No lock may be held.
func (s *Store) runDueInOrder(now int64, fx *effects) {
	for {
		var first *shard
		d1, d2 := int64(math.MaxInt64), int64(math.MaxInt64)
		for _, sh := range s.shards {
			switch d := sh.nextDue.Load(); {
			case d < d1:
				first, d1, d2 = sh, d, d1
			case d < d2:
				d2 = d
			}
		}
		if first == nil || d1 > now {
			return
		}
		first.mu.Lock()
		s.runDue(first, min(now, d2), fx)
		first.mu.Unlock()
	}
}

// runDue fires every timer of sh due at now. Lock must be held.
func (s *Store) runDue(sh *shard, now int64, fx *effects) {
	s.drain(sh)
	for len(sh.timers) > 0 && sh.timers[0].dueAt <= now {
		j := sh.timers[0]
		sh.timers.remove(j)
		switch j.state {
		case Reserved, Running:
			if x := j.x; x != nil && x.timeoutAt != 0 && j.dueAt >= x.timeoutAt {
				s.timeout(j, fx) // deadline.go
			} else {
				s.expire(j, fx)
			}
		case Scheduled, RetryPending:
			if d := j.deadline(); d != 0 && d <= j.dueAt {
				s.lapse(j, j.dueAt, fx)
			} else {
				s.due(j, fx)
			}
		case Queued, Waiting: // only a deadline arms a queued or waiting job's timer
			s.lapse(j, j.dueAt, fx)
		}
	}
	for len(sh.lanes) > 0 && sh.lanes[0].at <= now {
		t := sh.lanes.pop()
		if !t.q.dead && t.q.unparkLane(t.l, t.gen) {
			fx.notify = append(fx.notify, t.q.name)
		}
	}
	sh.updateDue()
}

// due queues a scheduled or retry_pending job whose time has come; its timer
// is already removed. Lock must be held.
func (s *Store) due(j *job, fx *effects) {
	at := j.dueAt
	j.updatedAt = at
	s.move(j, Queued)
	s.enqueue(j, fx)
	j.ln.q.sh.armWait(j, at, 0, fx)
	s.log(Record{Op: OpDue, Now: at, ID: j.id}, fx)
}

// expire ends a lease whose time has come; its timer is already removed.
// Lock must be held.
func (s *Store) expire(j *job, fx *effects) {
	at := j.dueAt
	// A copy: the token may live inside the job's record, which the
	// remembered token would otherwise keep, payload and all, long after
	// the job itself is gone.
	s.expired.add(strings.Clone(j.xr().token), at)
	s.releaseKey(j, fx)
	s.move(j, Queued)
	x := j.ext()
	x.worker, x.timeoutAt = "", 0
	j.runAt, j.updatedAt = at, at
	s.enqueue(j, fx)
	j.ln.q.sh.armWait(j, at, 0, fx)
	if o := s.obs(j.ln.q); o != nil {
		o.Expired()
	}
	s.logOutcome(j, false, Record{Op: OpExpire, Now: at, ID: j.id}, fx)
}

// dropEvicted drops the jobs evicted from retention so far. No lock may be
// held.
func (s *Store) dropEvicted(fx *effects) {
	if fx.drop1.j != nil {
		s.drop(fx.drop1, fx)
		fx.drop1 = retEntry{}
	}
	for i := 0; i < len(fx.drops); i++ {
		s.drop(fx.drops[i], fx)
	}
	fx.drops = fx.drops[:0]
}

// Lock must be held.
func (sh *shard) updateDue() {
	due := int64(math.MaxInt64)
	if len(sh.timers) > 0 {
		due = sh.timers[0].dueAt
	}
	if len(sh.lanes) > 0 && sh.lanes[0].at < due {
		due = sh.lanes[0].at
	}
	sh.setDue(due)
}

// setDue sets the shard's earliest deadline, lowering the store's bound
// when it comes earlier. Lock must be held.
func (sh *shard) setDue(at int64) {
	sh.nextDue.Store(at)
	lowerDue(sh.minDue, at)
}

// lowerDue makes m no later than at.
func lowerDue(m *atomic.Int64, at int64) {
	for {
		cur := m.Load()
		if at >= cur || m.CompareAndSwap(cur, at) {
			return
		}
	}
}

// arm sets j's timer to at. Lock must be held.
func (sh *shard) arm(j *job, at int64, fx *effects) {
	if j.tidx >= 0 {
		sh.timers.remove(j)
	}
	j.ln.q.tseq++
	j.dueAt, j.tseq = at, j.ln.q.tseq
	sh.timers.add(j)
	if at < sh.nextDue.Load() {
		sh.setDue(at)
		fx.timers = true
	}
}

// unarm removes j's timer, if any. Lock must be held.
func (sh *shard) unarm(j *job) {
	if j.tidx >= 0 {
		sh.timers.remove(j)
	}
}

// armLane puts lane l back at the instant its rate window opens. Lock must
// be held.
func (sh *shard) armLane(q *queue, l *lane, at int64, fx *effects) {
	sh.lseq++
	sh.lanes.push(laneTimer{at: at, seq: sh.lseq, gen: l.parkGen, q: q, l: l})
	if at < sh.nextDue.Load() {
		sh.setDue(at)
		fx.timers = true
	}
}

// drain unparks the lanes whose keys were freed by other operations. Lock
// must be held.
func (s *Store) drain(sh *shard) {
	if sh.inboxN.Load() == 0 {
		return
	}
	sh.inboxMu.Lock()
	msgs := sh.inbox
	sh.inbox = nil
	sh.inboxN.Store(0)
	sh.inboxMu.Unlock()
	for _, m := range msgs {
		if !m.q.dead {
			m.q.unparkKey(m.on)
		}
	}
}

// post appends m to sh's inbox. policyMu or a shard lock may be held, never
// a leaf.
func (sh *shard) post(m wakeMsg) {
	sh.inboxMu.Lock()
	sh.inbox = append(sh.inbox, m)
	sh.inboxN.Store(int32(len(sh.inbox)))
	sh.inboxMu.Unlock()
}

// wake hands the waiters of a freed key to their shards' inboxes and notes
// their queues for notification. policyMu or a shard lock may be held,
// never a leaf.
func (s *Store) wake(kind backpressure.Kind, key string, ws []backpressure.Waiter, fx *effects) {
	for _, w := range ws {
		q := w.(*queue)
		q.sh.post(wakeMsg{q: q, on: parkKey{kind, key}})
		if kind == backpressure.Throttle {
			q.sh.post(wakeMsg{q: q, on: parkKey{parkThrottleR, key}})
		}
		fx.notify = append(fx.notify, q.name)
	}
}

// drop forgets a job evicted from retention (the eviction won the job's
// retainGen, so no JOBRETRY can revive it). It takes the job's shard lock,
// which orders the drop's record with FLUSHALL's and, written before the id
// leaves the index, before any later push of the same id. No lock may be
// held.
func (s *Store) drop(e retEntry, fx *effects) {
	j := e.j
	sh := j.ln.q.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if j.dropped { // FLUSHALL forgot it meanwhile
		return
	}
	s.log(Record{Op: OpDrop, Now: e.at, ID: j.id}, fx)
	s.dropLocked(j)
}
