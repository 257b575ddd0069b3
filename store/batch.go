package store

// Batches (BATCHOPEN, JOBPUSH ... BATCH, BATCHCLOSE, BATCHGET).
//
// A batch counts its jobs by outcome. Each job of a batch is a record that
// points at its batch; when it ends (terminal) its shard lock counts the
// end under batches.mu, a leaf. A batch is complete once it is closed and
// none of its jobs is pending; then its callback job, if it has one (and,
// with ON success, if every job succeeded), is pushed right after the
// operation that completed it, outside its locks, as a push logged with
// the batch's id (Record.BatchCB): a replay counts the ends as the live
// store did and takes the callback from that record, never pushing it
// itself. A complete batch is kept for the retention of terminal jobs,
// then forgotten by maintenance (OpBatchForget).

import (
	"sync"
	"sync/atomic"
)

// Defaults of the batches' bounds (Config.MaxBatches, MaxBatchJobs).
const (
	DefaultMaxBatches   = 10_000
	DefaultMaxBatchJobs = 1_000_000
	// BatchOverhead estimates a batch's memory besides its id and its
	// callback's strings (--maxmemory, INFO memory used_memory_batches).
	BatchOverhead = 256
)

// BatchOptions describe a new batch.
type BatchOptions struct {
	ID string
	// Callback, when Queue is set, is pushed once the batch is complete:
	// always with Always, else only if every job succeeded.
	Callback PushOptions
	Always   bool
}

// BatchInfo is BATCHGET's answer.
type BatchInfo struct {
	ID                                  string
	State                               string // open, closed (waiting for its jobs) or done
	Total, Succeeded, Failed, Cancelled int64
	Expired, Pending                    int64
	Callback                            string // the callback job's id; "" when none was pushed
	CallbackState                       string // its state; "skipped" when not pushed (ON success and a job did not succeed); "" when none
	HasCallback, Always                 bool
	CallbackQueue, CallbackHandler      string
	DoneAt                              int64
}

// ErrNoBatch refuses a push to, or a close of, a batch that is not open.
var ErrNoBatch = coded("NOBATCH no such open batch")

type batch struct {
	id      string
	cb      Record // the callback's push (Op 0 when none)
	always  bool
	closed  bool
	done    bool  // complete: closed and nothing pending
	doneAt  int64 // when it completed
	cbID    string
	counts  [numStates]int64 // ends, by terminal state
	total   int64
	pending int64
}

func (b *batch) bytes() int64 {
	return BatchOverhead + int64(len(b.id)+len(b.cb.Queue)+len(b.cb.Handler)+len(b.cb.Payload)+len(b.cbID))
}

type batches struct {
	mu     sync.Mutex // a leaf: taken under a shard lock by a job's end
	m      map[string]*batch
	open   int      // batches not complete
	doneQ  []*batch // complete ones, in completion order, for forgetting
	bytes  atomic.Int64
	n      atomic.Int64 // len(m): ends skip the table while it is empty
	due    atomic.Int64 // when the oldest complete batch is forgotten
	max    int
	maxJob int64
}

func (bs *batches) init(max int, maxJobs int64) {
	bs.m = make(map[string]*batch)
	bs.open, bs.doneQ = 0, nil
	bs.bytes.Store(0)
	bs.n.Store(0)
	bs.due.Store(1<<63 - 1)
	bs.max, bs.maxJob = max, maxJobs
}

// OpenBatch creates a batch (BATCHOPEN).
func (s *Store) OpenBatch(now int64, o BatchOptions) error {
	id, err := ident("batch id", o.ID)
	if err != nil {
		return err
	}
	var cb Record
	if o.Callback.Queue != "" || o.Callback.Handler != "" {
		o.Callback.After, o.Callback.AfterAnyway, o.Callback.Batch = nil, false, ""
		if err := s.pushRecord(now, o.Callback, &cb); err != nil {
			return err
		}
		if cb.IdemKey != "" || cb.ID != "" || cb.RunAt != 0 || cb.Deadline != 0 {
			return invalid("a batch's callback takes no ID, IDEMPOTENCY, UNIQUE, DELAY, AT, EXPIRES or DEADLINE")
		}
	} else if o.Always {
		return invalid("ON needs CALLBACK")
	}
	if err := s.writable(); err != nil {
		return err
	}
	var fx effects
	s.maintain(now, &fx)
	bs := &s.batches
	bs.mu.Lock()
	switch {
	case bs.m[id] != nil:
		err = invalid("batch %s exists", id)
	case !s.replaying && bs.open >= bs.max:
		err = ErrBatchesFull
	}
	if err == nil {
		b := &batch{id: id, cb: cb, always: o.Always}
		if err = s.admitState(b.bytes()); err == nil {
			s.addBatch(b)
			r := Record{Op: OpBatchOpen, Now: now, Batch: id, Anyway: o.Always}
			if cb.Op != 0 {
				r.Queue, r.Handler, r.Payload, r.Priority = cb.Queue, cb.Handler, cb.Payload, cb.Priority
				r.CKey, r.RKey, r.CKeys, r.RKeys, r.Group = cb.CKey, cb.RKey, cb.CKeys, cb.RKeys, cb.Group
				r.MaxAtt, r.Backoff, r.Timeout = cb.MaxAtt, cb.Backoff, cb.Timeout
			}
			s.log(r, &fx)
		}
	}
	bs.mu.Unlock()
	s.finish(&fx)
	if err != nil {
		return err
	}
	return s.durable(&fx)
}

// ErrBatchFull refuses a job past MaxBatchJobs in one batch.
var ErrBatchFull = coded("FULL the batch holds as many jobs as it may (max-batch-jobs)")

// ErrBatchesFull refuses a batch past MaxBatches open ones.
var ErrBatchesFull = coded("FULL the server holds as many open batches as it may (max-batches)")

// addBatch files b. batches.mu must be held.
func (s *Store) addBatch(b *batch) {
	bs := &s.batches
	b.cb.Payload = append([]byte(nil), b.cb.Payload...)
	bs.m[b.id] = b
	bs.n.Store(int64(len(bs.m)))
	bs.open++
	bs.bytes.Add(b.bytes())
}

// CloseBatch closes a batch (BATCHCLOSE): no job joins it any more, and it
// completes once none of its jobs is pending.
func (s *Store) CloseBatch(now int64, id string) error {
	id, err := ident("batch id", id)
	if err != nil {
		return err
	}
	if err := s.writable(); err != nil {
		return err
	}
	var fx effects
	s.maintain(now, &fx)
	bs := &s.batches
	bs.mu.Lock()
	b := bs.m[id]
	if b == nil || b.closed {
		err = ErrNoBatch
	} else {
		b.closed = true
		s.log(Record{Op: OpBatchClose, Now: now, Batch: id}, &fx)
		s.maybeComplete(b, now, &fx)
	}
	bs.mu.Unlock()
	s.finish(&fx)
	if err != nil {
		return err
	}
	return s.durable(&fx)
}

// maybeComplete completes b if it is closed and nothing is pending: its
// callback is left to the operation to push after its locks. batches.mu
// must be held.
// The completion is logged (OpBatchDone) as it happens: a job's end is
// counted before its own record is logged, so the log may hold a batch's
// close before the end that completed it; a replay counts the ends in
// any order and completes the batch by the record alone.
func (s *Store) maybeComplete(b *batch, now int64, fx *effects) {
	if s.replaying || !b.closed || b.pending > 0 || b.done {
		return
	}
	s.complete(b, now)
	s.log(Record{Op: OpBatchDone, Now: now, Batch: b.id}, fx)
	if b.cb.Op == 0 || (!b.always && b.counts[Succeeded] != b.total) {
		return // nothing to push
	}
	fx.callbacks = append(fx.callbacks, b)
}

// complete marks b complete at now. batches.mu must be held.
func (s *Store) complete(b *batch, now int64) {
	b.done, b.doneAt = true, now
	s.batches.open--
	s.batches.doneQ = append(s.batches.doneQ, b)
	s.batches.updateDue(s.cfg.Retention)
}

// batchEnded counts the end of j, a job of batch b. Lock must be held.
func (s *Store) batchEnded(j *job, b *batch, fx *effects) {
	bs := &s.batches
	bs.mu.Lock()
	if bs.m[b.id] == b {
		b.counts[j.state]++
		b.pending--
		s.maybeComplete(b, j.updatedAt, fx)
	}
	bs.mu.Unlock()
	j.x.batch = nil // counted once: a failed job retried is no longer the batch's
}

// pushCallbacks pushes the callbacks of the batches the operation
// completed. No lock may be held.
func (s *Store) pushCallbacks(fx *effects) {
	for len(fx.callbacks) > 0 {
		b := fx.callbacks[0]
		fx.callbacks = fx.callbacks[1:]
		r := b.cb
		r.Op, r.Now, r.BatchCB = OpPush, b.doneAt, b.id
		if _, err := s.insert(&r, fx); err != nil {
			continue // FULL: the batch shows no callback
		}
		s.batches.mu.Lock()
		b.cbID = r.ID
		s.batches.bytes.Add(int64(len(r.ID)))
		s.batches.mu.Unlock()
	}
}

// batchOf finds the open batch a push joins and counts the job in it.
// batches.mu is taken; the shard lock of the job must be held.
func (s *Store) joinBatch(id string) (*batch, error) {
	bs := &s.batches
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[id]
	if b == nil || b.closed {
		return nil, ErrNoBatch
	}
	if !s.replaying && b.total >= bs.maxJob {
		return nil, ErrBatchFull
	}
	b.total++
	b.pending++
	return b, nil
}

// leaveBatch undoes joinBatch for a push that failed after it. Lock must
// be held.
func (s *Store) leaveBatch(b *batch) {
	bs := &s.batches
	bs.mu.Lock()
	b.total--
	b.pending--
	bs.mu.Unlock()
}

// GetBatch answers BATCHGET.
func (s *Store) GetBatch(now int64, id string) (BatchInfo, bool) {
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	bs := &s.batches
	bs.mu.Lock()
	b := bs.m[id]
	if b == nil {
		bs.mu.Unlock()
		return BatchInfo{}, false
	}
	info := BatchInfo{ID: b.id, State: "open", Total: b.total, Succeeded: b.counts[Succeeded],
		Failed: b.counts[Failed], Cancelled: b.counts[Cancelled], Expired: b.counts[Expired], Pending: b.pending,
		Callback: b.cbID, HasCallback: b.cb.Op != 0, Always: b.always, CallbackQueue: b.cb.Queue, CallbackHandler: b.cb.Handler,
		DoneAt: b.doneAt}
	switch {
	case b.done:
		info.State = "done"
	case b.closed:
		info.State = "closed"
	}
	if b.done && b.cb.Op != 0 && b.cbID == "" {
		info.CallbackState = "skipped"
	}
	bs.mu.Unlock()
	if info.Callback != "" {
		if j, ok := s.getNoMaintain(now, info.Callback); ok {
			info.CallbackState = j.State.String()
		} else {
			info.CallbackState = "dropped"
		}
	}
	return info, true
}

// getNoMaintain is Get without maintenance (the caller ran it).
func (s *Store) getNoMaintain(now int64, id string) (Job, bool) {
	r, sh, err := s.withID(id)
	if err != nil {
		return Job{}, false
	}
	defer sh.mu.Unlock()
	return s.snapshotRef(r, now), true
}

// OpenBatches is the number of batches not complete (INFO).
func (s *Store) OpenBatches() int {
	s.batches.mu.Lock()
	defer s.batches.mu.Unlock()
	return s.batches.open
}

// forgetBatches forgets the complete batches whose retention ran out at
// now, logging each. No lock may be held.
func (s *Store) forgetBatches(now int64, fx *effects) {
	bs := &s.batches
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for len(bs.doneQ) > 0 && bs.doneQ[0].doneAt+s.cfg.Retention <= now {
		b := bs.doneQ[0]
		bs.doneQ = bs.doneQ[1:]
		s.dropBatch(b)
		s.log(Record{Op: OpBatchForget, Now: b.doneAt + s.cfg.Retention, Batch: b.id}, fx)
	}
	bs.updateDue(s.cfg.Retention)
}

// updateDue publishes when the oldest complete batch is forgotten. mu
// must be held.
func (bs *batches) updateDue(age int64) {
	if len(bs.doneQ) == 0 {
		bs.due.Store(1<<63 - 1)
	} else {
		bs.due.Store(bs.doneQ[0].doneAt + age)
	}
}

// dropBatch forgets b. batches.mu must be held.
func (s *Store) dropBatch(b *batch) {
	bs := &s.batches
	delete(bs.m, b.id)
	bs.n.Store(int64(len(bs.m)))
	bs.bytes.Add(-b.bytes())
}

// replayBatch applies a logged batch record.
func (s *Store) replayBatch(r *Record, fx *effects) error {
	bs := &s.batches
	switch r.Op {
	case OpBatchOpen:
		var cb Record
		if r.Queue != "" {
			cb = Record{Op: OpPush, Queue: r.Queue, Handler: r.Handler, Payload: r.Payload, Priority: r.Priority,
				CKey: r.CKey, RKey: r.RKey, CKeys: r.CKeys, RKeys: r.RKeys, Group: r.Group,
				MaxAtt: r.MaxAtt, Backoff: r.Backoff, Timeout: r.Timeout}
		}
		bs.mu.Lock()
		defer bs.mu.Unlock()
		if bs.m[r.Batch] != nil {
			return replayErr(r, "batch %s exists", r.Batch)
		}
		s.addBatch(&batch{id: r.Batch, cb: cb, always: r.Anyway})
	case OpBatchClose:
		bs.mu.Lock()
		defer bs.mu.Unlock()
		b := bs.m[r.Batch]
		if b == nil || b.closed {
			return replayErr(r, "batch %s is not open", r.Batch)
		}
		b.closed = true
		s.maybeComplete(b, r.Now, fx)
	case OpBatchDone:
		bs.mu.Lock()
		defer bs.mu.Unlock()
		b := bs.m[r.Batch]
		if b == nil || !b.closed || b.done {
			return replayErr(r, "batch %s is not closed, or done", r.Batch)
		}
		s.complete(b, r.Now)
	case OpBatchForget:
		bs.mu.Lock()
		defer bs.mu.Unlock()
		if len(bs.doneQ) == 0 || bs.doneQ[0].id != r.Batch {
			return replayErr(r, "batch %s is not the oldest complete one", r.Batch)
		}
		b := bs.doneQ[0]
		bs.doneQ = bs.doneQ[1:]
		s.dropBatch(b)
		bs.updateDue(s.cfg.Retention)
	}
	return nil
}

// calledBack notes, in a replay, that the push r is batch r.BatchCB's
// callback.
func (s *Store) calledBack(r *Record) {
	bs := &s.batches
	bs.mu.Lock()
	if b := bs.m[r.BatchCB]; b != nil {
		b.cbID = r.ID
		bs.bytes.Add(int64(len(r.ID)))
	}
	bs.mu.Unlock()
}

// batchRecords are the snapshot records of the batches, in id order.
func (s *Store) batchRecords() []*Record {
	bs := &s.batches
	bs.mu.Lock()
	defer bs.mu.Unlock()
	// Complete ones first, in completion order (which forgetting keeps),
	// then the others by id.
	list := append([]*batch(nil), bs.doneQ...)
	for _, id := range sortedKeys(bs.m) {
		if b := bs.m[id]; !b.done {
			list = append(list, b)
		}
	}
	out := make([]*Record, 0, len(list))
	for _, b := range list {
		r := &Record{Op: OpSnapBatch, Batch: b.id, Anyway: b.always, BatchClosed: b.closed, BatchDone: b.done, Now: b.doneAt,
			BatchCounts: []int64{b.total, b.pending, b.counts[Succeeded], b.counts[Failed], b.counts[Cancelled], b.counts[Expired]},
			ID:          b.cbID}
		if b.cb.Op != 0 {
			r.Queue, r.Handler, r.Payload, r.Priority = b.cb.Queue, b.cb.Handler, b.cb.Payload, b.cb.Priority
			r.CKey, r.RKey, r.CKeys, r.RKeys, r.Group = b.cb.CKey, b.cb.RKey, b.cb.CKeys, b.cb.RKeys, b.cb.Group
			r.MaxAtt, r.Backoff, r.Timeout = b.cb.MaxAtt, b.cb.Backoff, b.cb.Timeout
		}
		out = append(out, r)
	}
	return out
}

// loadBatch restores a snapshot's batch.
func (s *Store) loadBatch(r *Record) error {
	if err := s.replayBatch(&Record{Op: OpBatchOpen, Batch: r.Batch, Anyway: r.Anyway, Queue: r.Queue, Handler: r.Handler,
		Payload: r.Payload, Priority: r.Priority, CKey: r.CKey, RKey: r.RKey, CKeys: r.CKeys, RKeys: r.RKeys, Group: r.Group,
		MaxAtt: r.MaxAtt, Backoff: r.Backoff, Timeout: r.Timeout}, nil); err != nil {
		return err
	}
	if len(r.BatchCounts) != 6 {
		return replayErr(r, "batch counts are malformed")
	}
	bs := &s.batches
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[r.Batch]
	b.closed, b.done, b.doneAt = r.BatchClosed, r.BatchDone, r.Now
	c := r.BatchCounts
	b.total, b.pending, b.cbID = c[0], c[1], r.ID
	b.counts[Succeeded], b.counts[Failed], b.counts[Cancelled], b.counts[Expired] = c[2], c[3], c[4], c[5]
	bs.bytes.Add(int64(len(b.cbID)))
	if b.done {
		bs.open--
		bs.doneQ = append(bs.doneQ, b)
		bs.updateDue(s.cfg.Retention)
	}
	return nil
}

// batchID is the id of j's batch, "" if none. Lock must be held.
func (j *job) batchID() string {
	if j.x == nil || j.x.batch == nil {
		return ""
	}
	return j.x.batch.id
}
