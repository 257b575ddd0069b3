package store

// Results and progress. A job acked with a RESULT keeps it for as long as
// it is retained; a running job's last reported progress is kept with it
// until it is dropped. Both are counted in the job's memory (and so toward
// --maxmemory) but never refuse the ack or the report: refusing an ack
// for memory would strand the job in reserved. Their sizes are bounded by
// the commands (--max-payload for a result, MaxProgress for progress).
//
// A job that becomes terminal is announced to the end hook (SetEndHook),
// under its shard lock, with what a waiter needs to answer: JOBWAIT's
// waiters are woken by that, never by polling.

// MaxProgress is the largest progress value in bytes. Each report is
// logged and replicated, and a worker may report often: a small bound keeps
// that cheap, and progress is a percentage or a short status; anything
// bigger belongs in the result.
const MaxProgress = 1024

// Ended is a job that just became terminal, as the end hook sees it. ID ""
// means every job was dropped at once (FLUSHALL). Result and Error are the
// job's own, never changed in place: the hook may keep them, not the ID.
type Ended struct {
	ID       string
	State    State
	Result   []byte
	Error    string
	HasError bool
}

// SetEndHook installs fn, called whenever a job becomes terminal (live or
// replayed, on every node of a group, as the change is applied) and once
// with Ended{} after FLUSHALL. It runs with a shard lock held: it must be a
// leaf, never block nor call back into the store.
func (s *Store) SetEndHook(fn func(Ended)) { s.onEnd.Store(&fn) }

// ended announces j, just terminal, to the end hook. Lock must be held.
func (s *Store) ended(j *job) {
	if fn := s.onEnd.Load(); fn != nil {
		x := j.xr()
		(*fn)(Ended{ID: j.id, State: j.state, Result: x.result, Error: x.lastError, HasError: x.hasError})
	}
}

// SyncEnd waits until the record that ended job id is durable, when the
// journal can tell how far it has appended (the append-only log): JOBWAIT
// answers only with an end that a crash right after would not undo. The
// end hook runs before its operation's records are synced, and may run
// before they are appended (an expiry logs after filing the job); the
// job's shard lock, taken here, orders this after that operation's
// critical section, which appends its records before releasing it, and
// everything appended by then is waited for (one fsync, shared with the
// writes around it). While the log cannot be written it does not wait:
// the answer then tells the end as applied, as before the log failed,
// rather than hang until the disk comes back.
func (s *Store) SyncEnd(id string) error {
	aj, ok := s.journal.(interface{ Appended() uint64 })
	if !ok || s.journal.Err() != nil { // no journal: not ok either
		return nil
	}
	if _, sh, err := s.withID(id); err == nil {
		sh.mu.Unlock()
	}
	return s.durable(&effects{seq: aj.Appended()})
}

// flushed tells the end hook that every job is gone. No lock may be held.
func (s *Store) flushed() {
	if fn := s.onEnd.Load(); fn != nil {
		(*fn)(Ended{})
	}
}

// resultBytes is what the result and progress add to a job's memory.
func (x *jobExt) resultBytes() int64 { return int64(len(x.result) + len(x.progress)) }

// setResult keeps a copy of result as j's result and counts its memory.
// Lock must be held.
func (s *Store) setResult(j *job, result []byte) {
	x := j.ext()
	d := int64(len(result) - len(x.result))
	s.count(j.ln.q.sh, 0, d)
	s.charge(j.ln.q, d, false)
	x.result = append([]byte{}, result...)
}

// Progress records a reserved or running job's progress (JOBPROGRESS). It
// does not extend the lease: a worker that is alive says so with JOBTOUCH.
func (s *Store) Progress(now int64, token string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	if len(value) > MaxProgress {
		return invalid("progress is larger than %d bytes", MaxProgress)
	}
	var fx effects
	j, sh, err := s.byToken(now, token, Running, &fx)
	if err == nil {
		s.applyProgress(j, now, value, &fx)
	}
	return s.done(sh, err, &fx)
}

// applyProgress keeps a copy of value as j's progress. Lock must be held.
func (s *Store) applyProgress(j *job, now int64, value []byte, fx *effects) {
	x := j.ext()
	d := int64(len(value) - len(x.progress))
	s.count(j.ln.q.sh, 0, d)
	s.charge(j.ln.q, d, false)
	x.progress = append([]byte{}, value...)
	j.updatedAt = now
	s.log(Record{Op: OpProgress, Now: now, ID: j.id, Progress: x.progress}, fx)
}
