package store

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"sluice/backpressure"
)

// ErrReplay reports a logged record that does not fit the state it is
// replayed on.
var ErrReplay = errors.New("record does not fit the replayed state")

func replayErr(r *Record, format string, args ...any) error {
	return fmt.Errorf("%w: %v record of %s: %s", ErrReplay, r.Op, r.ID, fmt.Sprintf(format, args...))
}

func (o Op) String() string {
	names := [...]string{"", "push", "reserve", "start", "touch", "ack", "fail", "release",
		"cancel", "retry", "pause", "resume", "purge", "policyset", "policydel", "flush",
		"expire", "due", "drop", "snapqueue", "snapjob", "snappolicy", "snapadmissions", "snapexpired", "snapretained", "snapend",
		"idemexpire", "snapidem", "weight", "snapgroup", "snaprotation", "throttle", "snapfloor",
		"cronset", "crondel", "cronfire", "snapcron", "breaker", "snapbreaker",
		"progress", "lapse", "timeout", "uniquerelease", "replace",
		"after", "batchopen", "batchclose", "batchforget", "snapbatch", "batchdone"}
	if int(o) < len(names) && o > 0 {
		return names[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// BeginReplay stops the store from appending to its journal until EndReplay:
// records being replayed are already in the log.
func (s *Store) BeginReplay() { s.replaying = true }

// EndReplay resumes journaling.
func (s *Store) EndReplay() { s.replaying = false }

// Replay applies one logged record's outcome. Maintenance is not run: its
// outcomes are records of their own. Call it from one goroutine, between
// BeginReplay and EndReplay, before serving.
func (s *Store) Replay(r *Record) error {
	var fx effects
	defer s.finish(&fx)
	switch r.Op {
	case OpPush:
		var err error
		if r.IdemKey != "" {
			err = s.replayKeyed(r, &fx)
		} else {
			_, err = s.insertAny(r, &fx)
		}
		if err != nil {
			return replayErr(r, "%v", err)
		}
		return nil
	case OpReserve, OpStart, OpTouch, OpAck, OpFail, OpRelease, OpCancel, OpRetry, OpExpire, OpDue, OpDrop, OpProgress,
		OpLapse, OpTimeout:
		return s.replayJob(r, &fx)
	case OpPause, OpResume, OpPurge:
		sh := s.shardOf(r.Queue)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		q := sh.queues[r.Queue]
		switch r.Op {
		case OpPause:
			sh.queueFor(r.Queue).paused = true
		case OpResume:
			if q != nil {
				q.paused = false
				sh.maybeDelete(q)
			}
		case OpPurge:
			s.purgeLocked(sh, q, r.Now, &fx)
		}
		return nil
	case OpPolicySet, OpPolicyDel:
		s.policyMu.Lock()
		s.applyPolicy(r, &fx)
		s.policyMu.Unlock()
		return nil
	case OpThrottle:
		if r.PolicyKey == "" {
			return replayErr(r, "throttle without a key")
		}
		s.policyMu.Lock()
		s.applyThrottle(r, &fx)
		s.policyMu.Unlock()
		return nil
	case OpFlush:
		s.flush(r.Now, &fx)
		return nil
	case OpBreaker, OpSnapBreaker:
		return s.applyBreaker(r, &fx)
	case OpWeight:
		if r.Limit < 0 || r.Limit > MaxWeight {
			return replayErr(r, "weight %d", r.Limit)
		}
		s.applyWeight(r)
		return nil
	case OpCronSet, OpCronDel, OpCronFire:
		return s.replayCron(r, &fx)
	case OpUniqueRelease:
		return s.replayRelease(r)
	case OpReplace:
		return s.replayReplace(r, &fx)
	case OpAfter:
		return s.replayAfter(r, &fx)
	case OpBatchOpen, OpBatchClose, OpBatchForget, OpBatchDone:
		return s.replayBatch(r, &fx)
	case OpSnapBatch:
		return s.loadBatch(r)
	case OpIdemExpire:
		s.idem.mu.Lock()
		s.idem.sweepLocked(r.Now)
		s.idem.updateDue()
		s.idem.mu.Unlock()
		return nil
	}
	return s.load(r)
}

// replayJob applies a record about one existing job.
func (s *Store) replayJob(r *Record, fx *effects) error {
	x := s.index.get(r.ID)
	if !x.ok() {
		return replayErr(r, "no such job")
	}
	sh := x.shard()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.drain(sh)
	j := x.j
	if j == nil {
		switch r.Op {
		case OpReserve, OpCancel: // it leaves queued, so the packed form
			j = sh.unpack(x.c, x.off)
		default: // every other record is refused for a queued job, unchanged
			j = x.c.view(x.off)
		}
	}
	active := j.state == Reserved || j.state == Running
	switch r.Op {
	case OpReserve:
		if j.state != Queued {
			return replayErr(r, "job is %s", j.state)
		}
		j.ln.q.takeQueued(j)
		rkey, at := "", r.Now
		if r.Admitted {
			rkey = j.ln.key.rkey
			if r.AdmittedAt != 0 {
				at = r.AdmittedAt
			}
		}
		if m := j.ln.more; m != nil {
			s.reg.TakeAll(at, m.all, r.Admitted)
		} else {
			s.reg.Take(at, j.ln.key.ckey, rkey)
		}
		s.brk.mu.Lock()
		s.applyReserve(j, r.Now, r.Token, r.Worker, r.Expires, r.Admitted, r.AdmittedAt, r.RoundRobin, fx)
		s.brk.mu.Unlock()
		return nil
	case OpCancel:
		if cancellable(j) {
			if j.state == Failed {
				s.dead.remove(j)
			}
			s.cancelLocked(j, r.Now, fx)
		}
		return nil
	case OpRetry:
		return s.applyRetry(j, r.Now, fx)
	case OpDue:
		if j.state != Scheduled && j.state != RetryPending {
			return replayErr(r, "job is %s, not scheduled", j.state)
		}
		sh.unarm(j)
		s.due(j, fx)
		return nil
	case OpLapse:
		if j.state != Scheduled && j.state != Queued && j.state != RetryPending && j.state != Waiting {
			return replayErr(r, "job is %s, not waiting", j.state)
		}
		sh.unarm(j)
		s.lapse(j, r.Now, fx)
		return nil
	case OpDrop:
		if !j.state.Terminal() {
			return replayErr(r, "job is %s, not terminal", j.state)
		}
		s.retentionOf(j).remove(j)
		s.charge(j.ln.q, -j.bytes(), false)
		s.dropLocked(j)
		return nil
	}
	if !active {
		return replayErr(r, "job is %s, not reserved or running", j.state)
	}
	switch r.Op {
	case OpStart:
		return s.applyStart(j, r.Now, fx)
	case OpTouch:
		s.applyTouch(j, r.Now, r.Expires, fx)
	case OpAck:
		return s.applyAck(j, r.Now, r.Result, fx)
	case OpProgress:
		if r.Progress == nil {
			return replayErr(r, "progress without a value")
		}
		s.applyProgress(j, r.Now, r.Progress, fx)
	case OpFail:
		if r.State != Failed && r.State != RetryPending {
			return replayErr(r, "outcome %s", r.State)
		}
		s.applyFail(j, r.Now, r.Error, r.HasError, r.State, r.RunAt, fx)
	case OpRelease:
		return s.applyRelease(j, r.Now, r.RunAt, fx)
	case OpExpire:
		sh.unarm(j)
		s.expire(j, fx)
	case OpTimeout:
		if r.State != Failed && r.State != RetryPending {
			return replayErr(r, "outcome %s", r.State)
		}
		sh.unarm(j)
		s.applyTimeout(j, r.Now, r.State, r.RunAt, fx)
	}
	return nil
}

// Dump writes the whole state as snapshot records, in a deterministic
// order, ending with OpSnapEnd. Loading them into an empty store with Replay
// rebuilds the same state. Call it while no other operation runs.
func (s *Store) Dump(now int64, emit func(*Record) error) error {
	s.drainAll()
	policies := s.reg.List(now)
	// Policies and templates first, throttles with them: the admissions
	// of a template's instance are restored under its template.
	for _, p := range policies {
		var rec *Record
		switch {
		case p.Kind == backpressure.Throttle:
			continue // below, with the ended ones still kept
		case p.Template == "":
			rec = &Record{Op: OpSnapPolicy, Kind: p.Kind, PolicyKey: p.Key, Limit: p.Limit, Period: p.Period}
		default:
			continue // an instance, which its template makes again
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
	if f := s.reg.ThrottleFloor(); f > 0 {
		if err := emit(&Record{Op: OpSnapFloor, Until: f}); err != nil {
			return err
		}
	}
	throttles := s.reg.Throttles()
	for _, key := range sortedKeys(throttles) {
		// Now 0: a throttle that ended is kept as it is (RestoreThrottle).
		if err := emit(&Record{Op: OpThrottle, PolicyKey: key, Until: throttles[key]}); err != nil {
			return err
		}
	}
	// Every rate state, with its clock (Now): a window judged later than
	// an operation's time is judged at its clock, so a loaded store must
	// know it to judge as the live one does; an idle instance is kept.
	for _, key := range s.reg.RateKeys() {
		times, clock, ok := s.reg.Admissions(now, key)
		if ok && (len(times) > 0 || clock > 0) {
			if err := emit(&Record{Op: OpSnapAdmissions, PolicyKey: key, Times: times, Now: clock}); err != nil {
				return err
			}
		}
	}
	for _, r := range s.batchRecords() {
		if err := emit(r); err != nil {
			return err
		}
	}
	for _, r := range s.breakerRecords() {
		if err := emit(r); err != nil {
			return err
		}
	}
	for _, w := range s.Weights() {
		if err := emit(&Record{Op: OpWeight, PolicyKey: w.Group, Limit: w.Weight}); err != nil {
			return err
		}
	}
	var queues []*queue
	for _, sh := range s.shards {
		for _, q := range sh.queues {
			queues = append(queues, q)
		}
	}
	sort.Slice(queues, func(i, k int) bool { return queues[i].name < queues[k].name })
	type held struct {
		seq, created uint64
		r            ref
	}
	byQueue := map[*queue][]held{}
	for _, r := range s.index.all() {
		h := held{r: r}
		if r.j != nil {
			h.seq, h.created = r.j.seq, r.j.created
		} else {
			e := r.c.entry(r.off)
			h.seq, h.created = e.seq, e.created
		}
		q := r.lane().q
		byQueue[q] = append(byQueue[q], h)
	}
	for _, q := range queues {
		err := emit(&Record{Op: OpSnapQueue, Queue: q.name, Paused: q.paused,
			Pushed: q.pushed, Succ: q.succ, Failed: q.failed, Seq: q.seq, Created: q.created, TSeq: q.tseq, Turn: q.turn})
		if err != nil {
			return err
		}
		names := make([]string, 0, len(q.fairs))
		for name := range q.fairs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if err := emit(&Record{Op: OpSnapGroup, Queue: q.name, Group: name, Turn: q.fairs[name].turn}); err != nil {
				return err
			}
		}
		jobs := byQueue[q]
		sort.Slice(jobs, func(i, k int) bool {
			return jobs[i].seq < jobs[k].seq || (jobs[i].seq == jobs[k].seq && jobs[i].created < jobs[k].created)
		})
		for _, h := range jobs {
			j := h.r.j
			if j == nil {
				j = h.r.c.view(h.r.off)
			}
			if err := emit(s.jobRecord(j)); err != nil {
				return err
			}
		}
	}
	// Two lists, the dead letters' second; loading files each job by
	// its state.
	for _, r := range []*retention{&s.ret, &s.dead} {
		if ids, times := r.entries(); len(ids) > 0 {
			if err := emit(&Record{Op: OpSnapRetained, RetainedIDs: ids, Times: times}); err != nil {
				return err
			}
		}
	}
	if toks, times := s.expired.list(); len(toks) > 0 {
		if err := emit(&Record{Op: OpSnapExpired, ExpiredTokens: toks, Times: times}); err != nil {
			return err
		}
	}
	for _, e := range s.rotation.entries() {
		if err := emit(&Record{Op: OpSnapRotation, Worker: e.worker, Queue: e.queue}); err != nil {
			return err
		}
	}
	for _, r := range s.idem.entries() {
		if err := emit(&r); err != nil {
			return err
		}
	}
	if err := s.dumpCron(emit); err != nil {
		return err
	}
	return emit(&Record{Op: OpSnapEnd, Now: now})
}

// drainAll lets every shard process its inbox.
func (s *Store) drainAll() {
	for _, sh := range s.shards {
		sh.mu.Lock()
		s.drain(sh)
		sh.mu.Unlock()
	}
}

func (s *Store) jobRecord(j *job) *Record {
	ckeys, rkeys := j.ln.extra()
	return &Record{
		CKeys: ckeys, RKeys: rkeys,
		Op: OpSnapJob, ID: j.id, Queue: j.ln.q.name, Handler: j.ln.key.handler, Payload: j.payload,
		Priority: j.priority, CKey: j.ln.key.ckey, RKey: j.ln.key.rkey, Group: j.ln.key.group, State: j.state,
		Attempt: j.attempt, MaxAtt: j.maxAtt, Backoff: j.backoff,
		CreatedAt: j.createdAt, UpdatedAt: j.updatedAt, RunAt: j.runAt, Expires: j.expires(),
		Token: j.xr().token, Worker: j.xr().worker, Error: j.xr().lastError, HasError: j.xr().hasError,
		Result: j.xr().result, Progress: j.xr().progress,
		Seq: j.seq, Created: j.created, TSeq: j.tseq, KeyScope: j.uscope,
		Deadline: j.xr().deadline, Timeout: j.xr().timeout, TimeoutAt: j.xr().timeoutAt, DueAt: j.timedDue(),
		After: slices.Clone(j.xr().after), Anyway: j.xr().anyway, // a copy: the list changes in place
		Batch: j.batchID(),
	}
}

// load applies a snapshot record.
func (s *Store) load(r *Record) error {
	switch r.Op {
	case OpSnapPolicy:
		s.applyPolicy(&Record{Op: OpPolicySet, Kind: r.Kind, PolicyKey: r.PolicyKey, Limit: r.Limit, Period: r.Period}, &effects{})
	case OpSnapFloor:
		s.reg.RestoreThrottleFloor(r.Until)
	case OpSnapAdmissions:
		s.reg.RestoreAdmissions(r.PolicyKey, r.Times, r.Now)
	case OpSnapQueue:
		sh := s.shardOf(r.Queue)
		sh.mu.Lock()
		q := sh.queueFor(r.Queue)
		q.paused, q.pushed, q.succ, q.failed = r.Paused, r.Pushed, r.Succ, r.Failed
		q.seq, q.created, q.tseq, q.turn = r.Seq, r.Created, r.TSeq, r.Turn
		sh.mu.Unlock()
	case OpSnapGroup:
		return s.loadGroup(r)
	case OpSnapRotation:
		if r.Worker == "" || r.Queue == "" {
			return replayErr(r, "worker or queue is missing")
		}
		s.rotation.set(r.Worker, r.Queue)
	case OpSnapJob:
		return s.loadJob(r)
	case OpSnapRetained:
		if len(r.Times) != len(r.RetainedIDs) {
			return replayErr(r, "retention list is malformed")
		}
		for i, id := range r.RetainedIDs {
			j := s.index.get(id).j
			if j == nil || !j.state.Terminal() {
				return replayErr(r, "retained job %s is missing or not terminal", id)
			}
			s.retentionOf(j).restore(j, r.Times[i])
		}
	case OpSnapExpired:
		if len(r.Times) != len(r.ExpiredTokens) {
			return replayErr(r, "expired token list is malformed")
		}
		for i, tok := range r.ExpiredTokens {
			s.expired.add(tok, r.Times[i])
		}
	case OpSnapIdem:
		if r.IdemKey == "" || r.ID == "" {
			return replayErr(r, "idempotency key or its job id is missing")
		}
		return s.loadKey(r)
	case OpSnapCron:
		return s.loadCron(r)
	case OpSnapEnd:
		return s.registerLoaded()
	default:
		return replayErr(r, "unknown record kind")
	}
	return nil
}

// loadGroup sets a fair group's turn before its jobs are loaded: its
// lanes are placed by it.
func (s *Store) loadGroup(r *Record) error {
	sh := s.shardOf(r.Queue)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	q := sh.queues[r.Queue]
	if q == nil {
		return replayErr(r, "queue %q was not declared", r.Queue)
	}
	f := q.fairs[r.Group]
	if f == nil {
		f = q.newFair(r.Group)
	}
	f.turn = r.Turn
	return nil
}

func (s *Store) loadJob(r *Record) error {
	if !r.State.valid() {
		return replayErr(r, "state %d", r.State)
	}
	sh := s.shardOf(r.Queue)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	q := sh.queues[r.Queue]
	if q == nil {
		return replayErr(r, "queue %q was not declared", r.Queue)
	}
	if packable(r) {
		return s.loadPacked(sh, q, r)
	}
	j := &job{
		payload: r.Payload, priority: r.Priority, state: r.State,
		attempt: r.Attempt, maxAtt: r.MaxAtt, backoff: r.Backoff,
		createdAt: r.CreatedAt, updatedAt: r.UpdatedAt, runAt: r.RunAt,
		seq: r.Seq, created: r.Created, tseq: r.TSeq, tidx: -1, uscope: r.KeyScope,
	}
	if r.KeyScope >= numScopes {
		return replayErr(r, "unknown unique key scope")
	}
	if (r.State == Waiting) != (len(r.After) > 0) {
		return replayErr(r, "a %s job with %d dependencies", r.State, len(r.After))
	}
	if r.Token != "" || r.Worker != "" || r.HasError || r.Result != nil || r.Progress != nil || r.Deadline != 0 || r.Timeout != 0 || r.After != nil ||
		r.Batch != "" {
		j.x = &jobExt{token: r.Token, worker: r.Worker, lastError: r.Error, hasError: r.HasError,
			result: r.Result, progress: r.Progress, deadline: r.Deadline, timeout: r.Timeout, timeoutAt: r.TimeoutAt,
			after: slices.Clone(r.After), anyway: r.Anyway}
	}
	j.id = j.keepID(r.ID)
	j.ln = q.laneRef(r)
	if !s.index.putIfAbsent(j.id, ref{j: j}) {
		q.unref(j.ln)
		return replayErr(r, "duplicate job")
	}
	s.added(sh, q, j.bytes(), false, j.state)
	if tabled[j.state] {
		q.setAdd(j, s.index.hash(j.id))
	}
	if j.state == Waiting {
		s.loadedWaiting(j)
	}
	if r.Batch != "" {
		if j.x.batch = s.batches.m[r.Batch]; j.x.batch == nil || j.state.Terminal() {
			return replayErr(r, "batch %s is missing, or the job ended", r.Batch)
		}
	}
	s.charge(q, j.bytes(), false)
	var at int64
	switch j.state {
	case Queued:
		q.enqueueAt(j, r.Seq)
	case Scheduled, RetryPending:
		at = j.runAt
	case Reserved, Running:
		at = r.Expires
		if m := j.ln.more; m != nil {
			s.reg.TakeAll(0, m.all, false)
		} else {
			s.reg.Take(0, r.CKey, "")
		}
	}
	if r.DueAt != 0 { // a timer that a deadline or timeout moved
		at = r.DueAt
	}
	if at != 0 {
		sh.armAt(j, at, r.TSeq)
	}
	return nil
}

// packable reports whether a snapshot job record can be loaded packed:
// a queued job that never left queued since its push, and so has nothing
// a packed entry does not hold.
func packable(r *Record) bool {
	return r.State == Queued && r.Attempt == 0 && r.Token == "" && r.Worker == "" && r.KeyScope == ScopeNone && r.Batch == "" &&
		!r.HasError && r.Error == "" && r.Result == nil && r.Progress == nil && r.UpdatedAt == r.CreatedAt && r.RunAt == r.CreatedAt &&
		r.TSeq == 0 && r.Expires == 0 && r.Deadline == 0 && r.Timeout == 0 && len(r.Payload)+len(r.ID) <= packMax
}

// loadPacked loads a packable snapshot job record as a packed entry. Lock
// must be held.
func (s *Store) loadPacked(sh *shard, q *queue, r *Record) error {
	l := q.laneRef(r)
	p := packing{
		seq: r.Seq, created: r.Created, createdAt: r.CreatedAt,
		maxAtt: r.MaxAtt, backoff: r.Backoff, id: r.ID, payload: r.Payload,
	}
	if _, ok := q.enqueuePacked(l, &p, r.Priority, nil, nil); !ok {
		q.unref(l)
		return replayErr(r, "duplicate job")
	}
	s.added(sh, q, p.bytes(), false, Queued)
	s.charge(q, p.bytes(), false)
	q.seq = max(q.seq, r.Seq)
	return nil
}

// takeQueued removes a queued job from its lane for a replayed
// reservation. Replay reproduces each lane exactly, so j is its lane's head;
// should it not be, its entry is cut out of the bucket (O(n), but never
// stale: the job may be queued again later). A job unpacked for it has no
// entry left. Lock must be held.
func (q *queue) takeQueued(j *job) {
	l := j.ln
	if j.loose {
		q.removeQueued(j)
		q.took(l)
		return
	}
	if l.n > 0 && l.head().j == j {
		l.popHead()
		q.took(l)
		return
	}
	b := l.bucketOf(j.priority)
	var kept ring[*job]
	for i := 0; i < b.jobs.len(); i++ {
		if e := b.jobs.at(i); e != j {
			kept.push(e)
		}
	}
	b.jobs = kept
	l.n--
	l.clean()
	q.took(l)
}

func (st State) valid() bool { return st >= Scheduled && st < numStates }

// enqueueAt puts a loaded job in its lane with its original entry order.
// Jobs must be loaded in entry order. Lock must be held.
func (q *queue) enqueueAt(j *job, seq uint64) {
	saved := q.seq
	q.seq = seq - 1
	q.enqueue(j)
	if saved > q.seq {
		q.seq = saved
	}
}

// armAt arms a loaded job's timer with its original arming order. Lock must
// be held.
func (sh *shard) armAt(j *job, at int64, tseq uint64) {
	j.dueAt, j.tseq = at, tseq
	sh.timers.add(j)
	sh.updateDue()
}

// entries lists the retained jobs' ids and filing times, oldest first.
func (r *retention) entries() ([]string, []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	var times []int64
	timed := slices.Clone(r.timed) // in the order pop would take them
	slices.SortFunc(timed, func(a, b retEntry) int {
		switch {
		case a.Less(b):
			return -1
		case b.Less(a):
			return 1
		}
		return int(a.gen) - int(b.gen) // one job filed again: a stale entry and a live one
	})
	for i, k := 0, 0; i < r.fifo.len() || k < len(timed); {
		var e retEntry
		if i == r.fifo.len() || k < len(timed) && timed[k].at <= r.fifo.at(i).at {
			e, k = timed[k], k+1
		} else {
			e, i = r.fifo.at(i), i+1
		}
		if e.j.retainGen.Load() == e.gen {
			ids = append(ids, e.j.id)
			times = append(times, e.at)
		}
	}
	return ids, times
}

// restore files a loaded terminal job with its original filing time.
func (r *retention) restore(j *job, at int64) {
	gen := j.retainGen.Add(1)
	r.mu.Lock()
	r.fifo.push(retEntry{j: j, gen: gen, at: at})
	r.live++
	r.updateDue()
	r.mu.Unlock()
}

// list returns the remembered expired tokens and their expiry times, in
// forgetting order.
func (e *expiredTokens) list() ([]string, []int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := append([]expiredToken(nil), e.heap...)
	sort.Slice(h, func(i, k int) bool { return h[i].Less(h[k]) })
	toks, times := make([]string, len(h)), make([]int64, len(h))
	for i, t := range h {
		toks[i], times[i] = t.tok, t.at
	}
	return toks, times
}
