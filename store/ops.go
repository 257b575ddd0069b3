package store

import (
	"bytes"
	"errors"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"sluice/backpressure"
)

// Push enqueues a job (JOBPUSH) and returns its id.
func (s *Store) Push(now int64, p PushOptions) (string, error) {
	var id [1]string
	var err [1]error
	s.PushMany(now, []PushOptions{p}, id[:], err[:])
	return id[0], err[0]
}

// PushMany pushes ps in order at now, as that many calls of Push would, and
// sets ids[i] or errs[i] for each. Pushes to one shard that follow one
// another share one hold of its lock, and the whole batch shares one wait
// for the log: a pipeline of pushes pays for those once, not per push.
// ids and errs must be as long as ps.
func (s *Store) PushMany(now int64, ps []PushOptions, ids []string, errs []error) {
	var fx effects
	s.maintain(now, &fx)
	var held *shard
	defer func() { // as insert's deferred unlock: a panic must not leave the shard locked
		if held != nil {
			held.mu.Unlock()
		}
	}()
	var notes [4]string // queues to notify, few in a batch
	notify := notes[:0]
	for i := range ps {
		var rec Record
		err := s.pushRecord(now, ps[i], &rec)
		if err == nil && rec.IdemKey != "" {
			// Its lock comes before any shard's (doc.go).
			if held != nil {
				held.mu.Unlock()
				held = nil
			}
			var queued bool
			queued, _, err = s.pushKeyed(&rec, ps[i].OnDuplicate, &fx)
			if queued && !seen(notify, rec.Queue) {
				notify = append(notify, rec.Queue)
			}
		} else if err == nil && len(rec.After) > 0 {
			// The dependencies' lock comes before any shard's (deps.go).
			if held != nil {
				held.mu.Unlock()
				held = nil
			}
			var queued bool
			queued, err = s.insertAfter(&rec, &fx)
			if queued && !seen(notify, rec.Queue) {
				notify = append(notify, rec.Queue)
			}
		} else if err == nil {
			if sh := s.shardOf(rec.Queue); sh != held {
				if held != nil {
					held.mu.Unlock()
				}
				held = sh
				sh.mu.Lock()
				s.drain(sh)
			}
			var queued bool
			queued, err = s.insertLocked(held, &rec, &fx)
			if queued && !seen(notify, rec.Queue) {
				notify = append(notify, rec.Queue)
			}
		}
		ids[i], errs[i] = rec.ID, err
		if err != nil {
			ids[i] = ""
		}
	}
	if held != nil {
		held.mu.Unlock()
		held = nil
	}
	s.finish(&fx)
	for _, q := range notify {
		s.notify(q)
	}
	if err := s.durable(&fx); err != nil {
		for i := range errs {
			if errs[i] == nil {
				ids[i], errs[i] = "", err
			}
		}
	}
}

// pushRecord checks p and fills rec with the record of its push at now.
// (Filled in place: the record is large, and a push copying it once more
// measured a few per cent slower.)
func (s *Store) pushRecord(now int64, p PushOptions, rec *Record) error {
	qname, err := ident("queue", p.Queue)
	if err != nil {
		return err
	}
	handler, err := ident("handler", p.Handler)
	if err != nil {
		return err
	}
	id := ""
	if p.ID != "" {
		if id, err = ident("job id", p.ID); err != nil {
			return err
		}
	}
	ckey, err := optIdent("concurrency key", p.ConcurrencyKey)
	if err != nil {
		return err
	}
	rkey, err := optIdent("rate-limit key", p.RateLimitKey)
	if err != nil {
		return err
	}
	ckeys, err := checkKeys("concurrency key", ckey, p.ExtraConcurrencyKeys)
	if err != nil {
		return err
	}
	rkeys, err := checkKeys("rate-limit key", rkey, p.ExtraRateLimitKeys)
	if err != nil {
		return err
	}
	group, err := optIdent("group", p.Group)
	if err != nil {
		return err
	}
	ikey := ""
	if p.IdempotencyKey != "" {
		if ikey, err = ident("idempotency key", p.IdempotencyKey); err != nil {
			return err
		}
	}
	scope, until := ScopeNone, int64(0)
	if p.UniqueKey != "" {
		if ikey != "" {
			return invalid("a push takes an idempotency key or a unique key, not both")
		}
		if ikey, err = ident("unique key", p.UniqueKey); err != nil {
			return err
		}
		if scope = p.UniqueScope; scope == ScopeNone {
			scope = ScopeTerminal
		}
		switch {
		case scope >= numScopes:
			return invalid("unknown unique key scope")
		case p.OnDuplicate > DupExtend:
			return invalid("unknown ON-DUPLICATE action")
		case p.UniqueTTL < 0:
			return invalid("unique key TTL must not be negative")
		case p.UniqueTTL > 0:
			until = now + p.UniqueTTL
		}
	}
	switch {
	case p.MaxAttempts < 0:
		return invalid("max attempts must not be negative")
	case p.Backoff < 0:
		return invalid("backoff must not be negative")
	case p.RunAt < 0:
		return invalid("run time must not be negative")
	}
	deadline, err := pushDeadline(now, p)
	if err != nil {
		return err
	}
	batch := ""
	if p.Batch != "" {
		if batch, err = ident("batch id", p.Batch); err != nil {
			return err
		}
	}
	var after []string
	if len(p.After) > 0 {
		if after, err = checkAfter(id, p.After); err != nil {
			return err
		}
	} else if p.AfterAnyway {
		return invalid("ANYWAY needs AFTER")
	}
	if err := s.writable(); err != nil {
		return err
	}
	*rec = Record{
		Op: OpPush, Now: now, ID: id, Queue: qname, Handler: handler, Payload: p.Payload,
		Priority: p.Priority, CKey: ckey, RKey: rkey, RunAt: p.RunAt,
		MaxAtt: p.MaxAttempts, Backoff: p.Backoff, IdemKey: ikey, Group: group,
		CKeys: ckeys, RKeys: rkeys,
		Deadline: deadline, Timeout: p.Timeout,
		KeyScope: scope, KeyUntil: until,
		After: after, Anyway: p.AfterAnyway && len(after) > 0, Batch: batch,
	}
	if rec.MaxAtt == 0 {
		rec.MaxAtt = DefaultMaxAttempts
	}
	if rec.Backoff == 0 {
		rec.Backoff = DefaultBackoff
	}
	return nil
}

// insert adds the job r describes, generating its id when r.ID is empty,
// and logs r. It reports whether the job is queued (not scheduled). It
// keeps a copy of the payload, never r.Payload itself.
func (s *Store) insert(r *Record, fx *effects) (bool, error) {
	sh := s.shardOf(r.Queue)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.drain(sh)
	return s.insertLocked(sh, r, fx)
}

// insertLocked is insert with r.Queue's shard, sh, locked and drained.
func (s *Store) insertLocked(sh *shard, r *Record, fx *effects) (bool, error) {
	if len(r.After) > 0 {
		return false, invalid("a push with dependencies takes the dependencies' lock") // insertAfter
	}
	now := r.Now
	q := sh.queueFor(r.Queue)
	// A unique key's holder is a record: it must note leaving its scope.
	if r.RunAt <= now && len(r.Payload)+len(r.ID) <= packMax && r.Deadline == 0 && r.Timeout == 0 && r.KeyScope == ScopeNone &&
		r.Batch == "" && r.BatchCB == "" {
		err := s.insertPacked(sh, q, r, fx)
		return err == nil, err
	}
	j, err := s.insertJob(sh, q, r, fx)
	return err == nil && j.state == Queued, err
}

// insertJob is insertLocked for a job that is not packed: it returns the
// job. A push with dependencies (r.After) is inserted waiting. Lock must be
// held.
func (s *Store) insertJob(sh *shard, q *queue, r *Record, fx *effects) (*job, error) {
	now := r.Now
	j := &job{
		payload: bytes.Clone(r.Payload), priority: r.Priority, maxAtt: r.MaxAtt, backoff: r.Backoff,
		createdAt: now, updatedAt: now, tidx: -1, uscope: r.KeyScope,
	}
	if r.Deadline != 0 || r.Timeout != 0 || len(r.After) > 0 || r.Batch != "" {
		j.x = &jobExt{deadline: r.Deadline, timeout: r.Timeout}
	}
	if r.Batch != "" {
		b, err := s.joinBatch(r.Batch)
		if err != nil {
			sh.maybeDelete(q)
			return nil, err
		}
		j.x.batch = b
	}
	// The lane comes first: whoever finds j in the index reaches its
	// queue, and so its shard, through it.
	j.ln = q.laneRef(r)
	if r.ID == "" {
		for {
			j.id = s.newID(sh, j, now)
			if s.index.putIfAbsent(j.id, ref{j: j}) {
				break
			}
		}
		r.ID = j.id
	} else {
		j.id = j.keepID(r.ID)
		if !s.index.putIfAbsent(j.id, ref{j: j}) {
			q.unref(j.ln)
			sh.maybeDelete(q)
			if j.x != nil && j.x.batch != nil {
				s.leaveBatch(j.x.batch)
			}
			return nil, ErrDupJob
		}
	}
	size := j.bytes()
	if s.replaying {
		s.charge(q, size, false)
	} else if err := s.admit(q, size); err != nil { // shares and limits (shares.go)
		s.index.remove(j.id, ref{j: j})
		q.unref(j.ln)
		sh.maybeDelete(q)
		if j.x != nil && j.x.batch != nil {
			s.leaveBatch(j.x.batch)
		}
		return nil, err
	}
	queued := r.RunAt <= now
	switch {
	case len(r.After) > 0:
		j.state, j.runAt = Waiting, r.RunAt
		j.x.after, j.x.anyway = slices.Clone(r.After), r.Anyway
		for _, id := range r.After {
			s.deps.bytes.Add(depBytes(id))
		}
		s.deps.waiting.Add(1)
		queued = false
	case queued:
		j.state, j.runAt = Queued, now
	default:
		j.state, j.runAt = Scheduled, r.RunAt
	}
	s.added(sh, q, size, s.limited && !s.replaying, j.state)
	q.pushed++
	q.created++
	j.created = q.created
	switch {
	case queued:
		q.enqueue(j)
		sh.armWait(j, now, 0, fx)
	case j.state == Waiting:
		q.setAdd(j, sh.index.hash(j.id))
		sh.armWait(j, now, 0, fx) // its deadline, if any
	default:
		q.setAdd(j, sh.index.hash(j.id))
		sh.armWait(j, now, r.RunAt, fx)
	}
	s.pushed(q, r, fx)
	if r.BatchCB != "" && s.replaying {
		s.calledBack(r)
	}
	return j, nil
}

// added counts a new job of size bytes in state st in q, and store-wide
// unless admitJob already has (admitted): a push or a snapshot's job,
// whole or packed. Lock must be held.
func (s *Store) added(sh *shard, q *queue, size int64, admitted bool, st State) {
	s.counted(sh, size, admitted)
	q.jobs++
	q.counts[st]++
}

// pushed logs the push r, its job's id set, and tells the observer. Lock
// must be held.
func (s *Store) pushed(q *queue, r *Record, fx *effects) {
	s.log(*r, fx)
	if o := s.obs(q); o != nil {
		o.Pushed()
	}
}

// insertPacked is insert for a job pushed straight into queued, which is
// packed. Lock must be held.
func (s *Store) insertPacked(sh *shard, q *queue, r *Record, fx *effects) error {
	now := r.Now
	l := q.laneRef(r)
	p := packing{
		seq: q.seq + 1, created: q.created + 1, createdAt: now,
		maxAtt: r.MaxAtt, backoff: r.Backoff, id: r.ID, payload: r.Payload,
	}
	var gen func() string
	if r.ID == "" {
		gen = func() string {
			sh.idBuf = s.appendJobID(sh, sh.idBuf[:0], now)
			// Read only until the next call: put copies it.
			return unsafe.String(unsafe.SliceData(sh.idBuf), len(sh.idBuf))
		}
	}
	var limit func() bool
	var refused error
	size := p.bytes
	if !s.replaying && (s.limited || s.sharing()) {
		limit = func() bool {
			refused = s.admit(q, size())
			return refused == nil
		}
	}
	id, ok := q.enqueuePacked(l, &p, r.Priority, gen, limit)
	if !ok {
		q.unref(l)
		sh.maybeDelete(q)
		if refused != nil {
			return refused
		}
		return ErrDupJob
	}
	if limit == nil {
		s.charge(q, size(), false)
	}
	s.added(sh, q, size(), limit != nil, Queued)
	q.pushed++
	q.created++
	q.seq++
	if r.ID == "" {
		r.ID = sh.keepID(id) // the chunk's bytes change once the job leaves
	}
	s.pushed(q, r, fx)
	return nil
}

// idBlock is the size of the buffers generated ids of packed jobs are
// copied to for Push to return.
const idBlock = 1024

// keepID returns a copy of a generated id that outlives its entry. Ids are
// appended to a buffer of the shard and never written over, so one
// allocation serves many pushes; a buffer lives on while any of its ids
// does. Lock must be held.
func (sh *shard) keepID(id string) string {
	if len(sh.ids)+len(id) > cap(sh.ids) {
		if len(id) > idBlock/8 {
			return strings.Clone(id)
		}
		sh.ids = make([]byte, 0, idBlock)
	}
	n := len(sh.ids)
	sh.ids = append(sh.ids, id...)
	return unsafe.String(&sh.ids[n], len(id)) // those bytes are never written again
}

// newID generates an id for j, in j.text when it fits. Lock must be held.
func (s *Store) newID(sh *shard, j *job, now int64) string {
	b := s.appendJobID(sh, j.text[:0], now)
	// b is in j.text if it fits; else append made it a copy of its own.
	// Either way nothing else refers to it.
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// appendJobID appends a new id for a job of shard sh. Lock must be held.
func (s *Store) appendJobID(sh *shard, dst []byte, now int64) []byte {
	if s.slotGen != nil {
		return s.slotGen.AppendJobIDFrom(dst, now, sh.genSlot)
	}
	return s.gen.AppendJobID(dst, now)
}

// keepID copies a given id into j.text when it fits there, so that its
// first token can follow it, and returns the id to keep.
func (j *job) keepID(id string) string {
	if len(id) > len(j.text) {
		return id
	}
	n := copy(j.text[:], id)
	return unsafe.String(&j.text[0], n)
}

// newToken makes the token of j's next reservation: its id, "." and a
// generated part. The first token of a job whose id is in j.text goes
// right after it. Lock must be held.
func (s *Store) newToken(j *job, now int64) string {
	if n := len(j.id); !j.tokText && n > 0 && n < len(j.text) && unsafe.StringData(j.id) == &j.text[0] {
		b := s.gen.AppendToken(append(j.text[:n], '.'), now)
		if len(b) <= len(j.text) {
			j.tokText = true // written once: later tokens go elsewhere
			return unsafe.String(&j.text[0], len(b))
		}
		return unsafe.String(unsafe.SliceData(b), len(b)) // a copy of its own
	}
	b := s.gen.AppendToken(append(append(make([]byte, 0, len(j.id)+1+16), j.id...), '.'), now)
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is ours alone
}

// admitJob counts a new job of size estimated bytes in the store-wide
// counts unless that passes MaxJobs or MaxBytes: check and count are one
// atomic step, so concurrent pushes never pass a limit together.
func (s *Store) admitJob(size int64) error {
	if n := s.total.Add(1); s.cfg.MaxJobs > 0 && n > s.cfg.MaxJobs {
		s.total.Add(-1)
		return ErrFull
	}
	if n := s.bytes.Add(size); s.cfg.MaxBytes > 0 && n+s.otherBytes() > s.cfg.MaxBytes {
		s.bytes.Add(-size)
		s.total.Add(-1)
		return errFullMemory
	}
	return nil
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
	queues = UniqueNames(queues)
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
			handlers = append(handlers, h)
		}
		handlers = UniqueNames(handlers)
	}

	if err := s.writable(); err != nil {
		return nil, err
	}
	var fx effects
	s.maintain(now, &fx)
	var out []Reservation
	if o.RoundRobin {
		out = s.reserveRound(now, worker, o.Lease, handlers, queues, want, &fx)
	}
	for _, name := range queues {
		if len(out) == want || o.RoundRobin {
			break
		}
		sh := s.shardOf(name)
		sh.mu.Lock()
		if q := sh.queues[name]; q != nil && !q.paused {
			out = s.reserveFrom(q, now, worker, o.Lease, handlers, want, false, out, &fx)
		}
		sh.mu.Unlock()
	}
	s.finish(&fx)
	if err := s.durable(&fx); err != nil {
		return nil, err
	}
	return out, nil
}

// reserveRound is Reserve under ROUNDROBIN: one job from each queue in
// turn, starting after the queue that last gave worker a job, until out
// holds want or a whole round finds nothing.
func (s *Store) reserveRound(now int64, worker string, lease int64, handlers, queues []string, want int, fx *effects) []Reservation {
	var out []Reservation
	order := rotated(queues, s.rotation.last(worker))
	for len(out) < want {
		had := len(out)
		for _, name := range order {
			if len(out) == want {
				break
			}
			sh := s.shardOf(name)
			sh.mu.Lock()
			if q := sh.queues[name]; q != nil && !q.paused {
				out = s.reserveFrom(q, now, worker, lease, handlers, len(out)+1, true, out, fx)
			}
			sh.mu.Unlock()
		}
		if len(out) == had {
			break
		}
	}
	return out
}

// reserveFrom takes eligible jobs from q until out holds want; rr tells a
// round-robin reserve. Lock must be held.
func (s *Store) reserveFrom(q *queue, now int64, worker string, lease int64, handlers []string, want int, rr bool, out []Reservation, fx *effects) []Reservation {
	sh := q.sh
	// Under breakers, their check, the admission and the reservation's
	// record are one critical section of breakers.mu (breaker.go).
	brks := s.brk.n.Load() > 0
	for len(out) < want {
		s.drain(sh)
		l := q.best(handlers)
		if l == nil {
			break
		}
		var over []*breaker
		if brks {
			over = s.brk.over(l)
		}
		brk := over != nil
		if brk {
			s.brk.mu.Lock()
			if b := brkBlocking(now, over); b != nil {
				if b.waiters == nil {
					b.waiters = make(map[*queue]struct{}, 1)
				}
				b.waiters[q] = struct{}{}
				until := b.until
				s.brk.mu.Unlock()
				q.park(l, parkKey{b.parkKind(l), b.key})
				if until > now { // open: it turns half-open by itself
					sh.armLane(q, l, until, fx)
				}
				continue
			}
		}
		var a backpressure.Admission
		if l.more != nil {
			a = s.reg.AdmitAll(now, l.more.all, q)
		} else {
			a = s.reg.AdmitKeys(now, &l.keys, q)
		}
		if len(a.Wake) > 0 {
			s.wake(backpressure.Concurrency, l.key.ckey, a.Wake, fx)
		}
		if !a.OK {
			if brk {
				s.brk.mu.Unlock()
			}
			on := parkKey{a.Block.Kind, a.Block.Key}
			if on.kind == backpressure.Throttle {
				on.kind = l.throttleKind(on.key)
			}
			q.park(l, on)
			if a.Block.Kind != backpressure.Concurrency { // a rate window or a throttle ends by itself
				sh.armLane(q, l, a.Block.Until, fx)
			}
			continue
		}
		j := l.popHead()
		q.took(l)
		// A rate admission may be recorded a moment later than now (see
		// backpressure's clock); the reservation then happens at that time,
		// so its expires_at tells the admission's time.
		at := max(now, a.Floor)
		if a.Rated && a.At > at {
			at = a.At
		}
		s.applyReserve(j, at, s.newToken(j, at), worker, at+lease, a.Rated, a.At, rr, fx)
		if brk {
			s.brk.mu.Unlock()
		}
		out = append(out, Reservation{
			Token: j.x.token, ID: j.id, Queue: q.name, Handler: l.p.g.handler, // the lane's own key is on a line reserve does not otherwise read
			Payload: j.payload, Priority: j.priority, Attempt: j.attempt, ExpiresAt: j.dueAt,
		})
	}
	return out
}

// applyReserve makes j, already out of its lane, reserved. rated tells
// whether an admission was recorded on its rate-limit key, at ratedAt; rr
// that it was a round-robin reserve, which makes j's queue the worker's
// last. Lock must be held, and breakers.mu when a breaker is over j.
func (s *Store) applyReserve(j *job, now int64, token, worker string, expires int64, rated bool, ratedAt int64, rr bool, fx *effects) {
	s.move(j, Reserved)
	x := j.ext()
	x.token, x.worker, x.startedAt = token, worker, now
	j.updatedAt = now
	if x.timeout != 0 {
		x.timeoutAt = now + x.timeout
	}
	j.ln.q.sh.arm(j, x.leaseEnd(expires), fx)
	if o := s.obs(j.ln.q); o != nil {
		o.Reserved(now - j.runAt)
	}
	if rr {
		s.rotation.set(worker, j.ln.q.name)
	}
	if s.brk.n.Load() > 0 {
		if over := s.brk.over(j.ln); over != nil {
			brkReserved(now, j, over)
		}
	}
	s.log(Record{Op: OpReserve, Now: now, ID: j.id, Token: token, Worker: worker, Expires: expires, Admitted: rated, AdmittedAt: ratedAt, RoundRobin: rr}, fx)
}

// best is the lane whose head would be reserved next, among the handlers
// given (all when nil). Lock must be held.
func (q *queue) best(handlers []string) *lane {
	if handlers == nil {
		if len(q.heap) == 0 {
			return nil
		}
		return q.heap[0].parts[0].p.lanes[0]
	}
	var best *partKey
	for _, h := range handlers {
		g := q.groups[h]
		if g == nil || len(g.parts) == 0 {
			continue
		}
		if k := &g.parts[0]; best == nil || k.before(best) {
			best = k
		}
	}
	if best == nil {
		return nil
	}
	return best.p.lanes[0]
}

// withToken finds the job reserved under token and returns it with its shard
// locked. to is the state the caller wants to move it to, for the error of a
// cancelled job.
func (s *Store) withToken(token string, to State) (*job, *shard, error) {
	i := strings.LastIndexByte(token, '.')
	if i <= 0 {
		return nil, nil, ErrNoReservation
	}
	j := s.index.get(token[:i]).j
	if j == nil { // none, or packed: never reserved
		if s.expired.has(token) {
			return nil, nil, ErrExpired
		}
		return nil, nil, ErrNoReservation
	}
	sh := j.ln.q.sh
	sh.mu.Lock()
	s.drain(sh)
	if !j.dropped && j.xr().token == token && (j.state == Reserved || j.state == Running) {
		return j, sh, nil
	}
	var err error
	switch {
	case s.expired.has(token):
		err = ErrExpired
	case !j.dropped && j.xr().token == token && j.state == Cancelled:
		err = &StateError{ID: j.id, From: Cancelled, To: to}
	default:
		err = ErrNoReservation
	}
	sh.mu.Unlock()
	return nil, nil, err
}

// byToken begins a change to the job reserved under token: the refusal
// while the journal fails, maintenance, then the job with its shard locked.
// to is the state the caller wants to move it to, for the error of a
// cancelled job. The caller applies the change and ends with done. (No
// callback: an fx passed to one would have to live on the heap.)
func (s *Store) byToken(now int64, token string, to State, fx *effects) (*job, *shard, error) {
	if err := s.writable(); err != nil {
		return nil, nil, err
	}
	s.maintain(now, fx)
	return s.withToken(token, to)
}

// byID is byToken for operations that name a job by id.
func (s *Store) byID(now int64, id string, fx *effects) (ref, *shard, error) {
	if err := s.writable(); err != nil {
		return ref{}, nil, err
	}
	s.maintain(now, fx)
	return s.withID(id)
}

// done ends a change begun by byToken or byID: it unlocks sh (nil when no
// job was found), performs the after-lock effects and waits for
// durability.
func (s *Store) done(sh *shard, err error, fx *effects) error {
	if sh != nil {
		sh.mu.Unlock()
	}
	s.finish(fx)
	if err != nil {
		return err
	}
	return s.durable(fx)
}

// Start marks a reserved job running (JOBSTART) and returns its attempt.
func (s *Store) Start(now int64, token string) (int64, error) {
	var fx effects
	var attempt int64
	j, sh, err := s.byToken(now, token, Running, &fx)
	if err == nil {
		if err = s.applyStart(j, now, &fx); err == nil {
			attempt = j.attempt
		}
	}
	return attempt, s.done(sh, err, &fx)
}

// Lock must be held.
func (s *Store) applyStart(j *job, now int64, fx *effects) error {
	if err := s.move(j, Running); err != nil {
		return err
	}
	j.attempt++
	j.updatedAt, j.ext().startedAt = now, now
	s.log(Record{Op: OpStart, Now: now, ID: j.id}, fx)
	return nil
}

// Touch extends a lease to now+lease (JOBTOUCH) and returns the new expiry.
func (s *Store) Touch(now int64, token string, lease int64) (int64, error) {
	if lease < 1 {
		return 0, invalid("lease must be a positive number of milliseconds")
	}
	expires := now + lease
	var fx effects
	j, sh, err := s.byToken(now, token, Running, &fx)
	if err == nil {
		s.applyTouch(j, now, expires, &fx)
		expires = j.dueAt // no later than the reservation's timeout
	}
	return expires, s.done(sh, err, &fx)
}

// Lock must be held.
func (s *Store) applyTouch(j *job, now, expires int64, fx *effects) {
	j.updatedAt = now
	j.ln.q.sh.arm(j, j.xr().leaseEnd(expires), fx)
	s.log(Record{Op: OpTouch, Now: now, ID: j.id, Expires: expires}, fx)
}

// endReservation clears what belongs to a reservation that ended by ack,
// fail, release or cancel. Lock must be held.
func (s *Store) endReservation(j *job, fx *effects) {
	j.ln.q.sh.unarm(j)
	x := j.ext()
	x.worker, x.timeoutAt = "", 0
	s.releaseKey(j, fx)
}

// Ack completes a job (JOBACK).
func (s *Store) Ack(now int64, token string) error { return s.AckResult(now, token, nil) }

// AckResult completes a job and keeps result as its result (JOBACK ...
// RESULT); nil: none. result is copied.
func (s *Store) AckResult(now int64, token string, result []byte) error {
	var fx effects
	j, sh, err := s.byToken(now, token, Succeeded, &fx)
	if err == nil {
		err = s.applyAck(j, now, result, &fx)
	}
	return s.done(sh, err, &fx)
}

// Lock must be held.
func (s *Store) applyAck(j *job, now int64, result []byte, fx *effects) error {
	from := j.state
	if err := s.move(j, Succeeded); err != nil {
		return err
	}
	if from == Reserved {
		j.attempt++
	}
	j.updatedAt = now
	if result != nil {
		s.setResult(j, result)
	}
	s.endReservation(j, fx)
	s.terminal(j, fx)
	if o := s.obs(j.ln.q); o != nil {
		ran := int64(-1)
		if j.xr().startedAt > 0 {
			ran = now - j.xr().startedAt
		}
		o.Acked(ran)
	}
	s.logOutcome(j, true, Record{Op: OpAck, Now: now, ID: j.id, Result: j.xr().result}, fx)
	return nil
}

// Fail records a failed attempt (JOBFAIL) and returns the job's new state.
func (s *Store) Fail(now int64, token string, o FailOptions) (State, error) {
	if o.HasRetry && o.RetryIn < 0 {
		return 0, invalid("retry delay must not be negative")
	}
	var fx effects
	var state State
	j, sh, err := s.byToken(now, token, Failed, &fx)
	if err == nil {
		attempt := j.attempt
		if j.state == Reserved {
			attempt++
		}
		state = Failed
		var runAt int64
		if !o.NoRetry && attempt < j.maxAtt {
			state = RetryPending
			runAt = now + backoff(j.backoff, attempt)
			if o.HasRetry {
				runAt = now + o.RetryIn
			}
		}
		s.applyFail(j, now, o.Error, o.HasError, state, runAt, &fx)
	}
	return state, s.done(sh, err, &fx)
}

// applyFail records a failed attempt with its decided outcome: state is
// RetryPending (due at runAt) or Failed. Lock must be held.
func (s *Store) applyFail(j *job, now int64, msg string, hasMsg bool, state State, runAt int64, fx *effects) {
	s.applyFailOp(OpFail, j, now, msg, hasMsg, state, runAt, fx)
}

// applyFailOp is applyFail logged as op (fail, or timeout). Lock must be
// held.
func (s *Store) applyFailOp(op Op, j *job, now int64, msg string, hasMsg bool, state State, runAt int64, fx *effects) {
	if j.state == Reserved {
		j.attempt++
	}
	if hasMsg {
		x := j.ext()
		s.count(j.ln.q.sh, 0, int64(len(msg)-len(x.lastError)))
		s.charge(j.ln.q, int64(len(msg)-len(x.lastError)), false)
		x.lastError, x.hasError = msg, true
	}
	j.updatedAt = now
	s.endReservation(j, fx)
	s.move(j, state)
	if state == RetryPending {
		j.runAt = runAt
		j.ln.q.sh.armWait(j, now, runAt, fx)
	} else {
		s.terminal(j, fx)
	}
	if o := s.obs(j.ln.q); o != nil {
		if state == RetryPending {
			o.Retried()
		} else {
			o.Failed()
		}
	}
	r := Record{Op: op, Now: now, ID: j.id, Error: msg, HasError: hasMsg, State: state, RunAt: runAt}
	if op == OpTimeout {
		r.Error, r.HasError = "", false // implied
	}
	s.logOutcome(j, false, r, fx)
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
	to, runAt := Queued, now
	if delay > 0 {
		to, runAt = Scheduled, now+delay
	}
	var fx effects
	j, sh, err := s.byToken(now, token, to, &fx)
	if err == nil {
		err = s.applyRelease(j, now, runAt, &fx)
	}
	return s.done(sh, err, &fx)
}

// applyRelease gives j back: queued when runAt <= now, else scheduled. Lock
// must be held.
func (s *Store) applyRelease(j *job, now, runAt int64, fx *effects) error {
	to := Queued
	if runAt > now {
		to = Scheduled
	}
	if j.state != Reserved { // the table also lets running jobs be queued, by lease expiry
		return &StateError{ID: j.id, From: j.state, To: to}
	}
	if err := s.move(j, to); err != nil {
		return err
	}
	j.updatedAt = now
	s.endReservation(j, fx)
	s.probeFreed(j, fx)
	j.runAt = runAt
	if to == Scheduled {
		j.ln.q.sh.armWait(j, now, runAt, fx)
	} else {
		j.runAt = now
		s.enqueue(j, fx)
		j.ln.q.sh.armWait(j, now, 0, fx)
	}
	s.log(Record{Op: OpRelease, Now: now, ID: j.id, RunAt: runAt}, fx)
	return nil
}

// withID finds a job by id and returns it with its shard locked.
func (s *Store) withID(id string) (ref, *shard, error) {
	id, err := ident("job id", id)
	if err != nil {
		return ref{}, nil, err
	}
	for {
		r := s.index.get(id)
		if !r.ok() {
			return ref{}, nil, ErrNoJob
		}
		sh := r.shard()
		sh.mu.Lock()
		s.drain(sh)
		if r.j != nil {
			if r.j.dropped {
				sh.mu.Unlock()
				return ref{}, nil, ErrNoJob
			}
			return r, sh, nil
		}
		// A packed entry changes only under this lock, and with it its
		// index slot: if the index still names it, it is the job.
		if s.index.get(id) == r {
			return r, sh, nil
		}
		// It left the packed form (or FLUSHALL dropped it) before the
		// lock was taken: the index knows what it became.
		sh.mu.Unlock()
	}
}

// Cancel cancels a job that is not terminal, or failed (JOBCANCEL): a
// failed job leaves the dead letters for the other terminal jobs'
// retention. It reports false if the job was already succeeded, cancelled
// or expired.
func (s *Store) Cancel(now int64, id string) (bool, error) {
	var fx effects
	cancelled := false
	r, sh, err := s.byID(now, id, &fx)
	if err == nil && r.j == nil {
		r.j = sh.unpack(r.c, r.off) // it leaves queued, so the packed form
	}
	if j := r.j; err == nil && cancellable(j) {
		if j.state == Failed && !s.dead.remove(j) {
			err = ErrNoJob // evicted from retention a moment ago
		} else {
			s.cancelLocked(j, now, &fx)
			s.log(Record{Op: OpCancel, Now: now, ID: j.id}, &fx)
			cancelled = true
		}
	}
	return cancelled, s.done(sh, err, &fx)
}

// cancellable reports whether JOBCANCEL changes j. Lock must be held.
func cancellable(j *job) bool { return !j.state.Terminal() || j.state == Failed }

// cancelLocked cancels a non-terminal job. Lock must be held.
func (s *Store) cancelLocked(j *job, now int64, fx *effects) {
	from := j.state
	s.move(j, Cancelled)
	switch from {
	case Queued:
		j.ln.q.removeQueued(j) // after the move: the entry it leaves must read as stale
	case Reserved, Running:
		s.endReservation(j, fx)
		s.probeFreed(j, fx)
	case Scheduled, RetryPending:
		j.ln.q.sh.unarm(j)
	case Waiting:
		s.clearAfter(j)
	}
	if j.x != nil && j.x.deadline != 0 {
		j.ln.q.sh.unarm(j) // a queued job's deadline timer
	}
	j.updatedAt = now
	s.terminal(j, fx)
	if o := s.obs(j.ln.q); o != nil {
		o.Cancelled()
	}
}

// Retry puts a failed job back in its queue with its attempts reset
// (JOBRETRY).
func (s *Store) Retry(now int64, id string) error {
	var fx effects
	r, sh, err := s.byID(now, id, &fx)
	if err == nil {
		if r.j == nil { // queued: only read
			r.j = r.c.view(r.off)
		}
		err = s.applyRetry(r.j, now, &fx)
	}
	return s.done(sh, err, &fx)
}

// Lock must be held.
func (s *Store) applyRetry(j *job, now int64, fx *effects) error {
	if j.state != Failed {
		return &StateError{ID: j.id, From: j.state, To: Queued}
	}
	if !s.dead.remove(j) {
		return ErrNoJob // evicted from retention a moment ago
	}
	if err := s.move(j, Queued); err != nil {
		return err
	}
	j.attempt = 0
	j.runAt, j.updatedAt = now, now
	if j.x != nil {
		j.x.deadline = 0 // the operator's retry is not bound by the producer's deadline
	}
	s.enqueue(j, fx)
	if o := s.obs(j.ln.q); o != nil {
		o.Retried()
	}
	s.log(Record{Op: OpRetry, Now: now, ID: j.id}, fx)
	return nil
}

// Get returns a copy of a job's record with the blocked_by explanation
// (JOBGET).
func (s *Store) Get(now int64, id string) (Job, bool) {
	var fx effects
	s.maintain(now, &fx)
	defer s.finish(&fx)
	r, sh, err := s.withID(id)
	if err != nil {
		return Job{}, false
	}
	defer sh.mu.Unlock()
	return s.snapshotRef(r, now), true
}

// snapshotRef copies a job's record, packed or not. Lock must be held.
func (s *Store) snapshotRef(r ref, now int64) Job {
	j := r.j
	if j == nil {
		j = r.c.view(r.off)
		j.payload = bytes.Clone(j.payload) // the chunk's bytes change once the job leaves
	}
	return s.snapshot(j, now)
}

// snapshot copies a job's record. Lock must be held.
func (s *Store) snapshot(j *job, now int64) Job {
	out := Job{
		ID: j.id, Queue: j.ln.q.name, Handler: j.ln.key.handler, Payload: j.payload,
		State: j.state, Priority: j.priority,
		ConcurrencyKey: j.ln.key.ckey, RateLimitKey: j.ln.key.rkey, Group: j.ln.key.group,
		Attempt: j.attempt, MaxAttempts: j.maxAtt, Backoff: j.backoff,
		CreatedAt: j.createdAt, UpdatedAt: j.updatedAt, RunAt: j.runAt,
		LastError: j.xr().lastError, HasLastError: j.xr().hasError,
		Result: j.xr().result, Progress: j.xr().progress,
		Deadline: j.xr().deadline, Timeout: j.xr().timeout,
	}
	if m := j.ln.more; m != nil {
		if len(m.ckeys) > 1 {
			out.ConcurrencyKeys = slices.Clone(m.ckeys)
		}
		if len(m.rkeys) > 1 {
			out.RateLimitKeys = slices.Clone(m.rkeys)
		}
	}
	if j.state == Reserved || j.state == Running {
		out.Worker, out.ExpiresAt = j.xr().worker, j.dueAt
	}
	if j.state == Waiting && len(j.xr().after) > 0 {
		out.After = slices.Clone(j.x.after)
		out.BlockedBy = "after:" + j.x.after[0]
	}
	if j.state == Queued {
		if j.ln.q.paused {
			out.BlockedBy = "paused"
		} else if r := s.breakerBlock(now, j.ln); r != "" {
			out.BlockedBy = r
		} else {
			out.BlockedBy = s.blocksOf(now, j.ln)
		}
	}
	return out
}

// errUnchanged tells withQueue that fn had nothing to change: nothing is
// logged, and the caller gets no error.
var errUnchanged = errors.New("unchanged")

// withQueue runs fn with the named queue's shard locked; q is nil when the
// queue does not exist. A change (rec != nil) is refused while the journal
// fails, and logged after fn unless fn refuses it (an error: fn changed
// nothing).
func (s *Store) withQueue(now int64, name string, rec *Record, fn func(sh *shard, q *queue, fx *effects) error) error {
	name, err := ident("queue", name)
	if err != nil {
		return err
	}
	if rec != nil {
		if err := s.writable(); err != nil {
			return err
		}
		rec.Now, rec.Queue = now, name
	}
	var fx effects
	s.maintain(now, &fx)
	sh := s.shardOf(name)
	sh.mu.Lock()
	s.drain(sh)
	if err := fn(sh, sh.queues[name], &fx); err != nil {
		sh.mu.Unlock()
		s.finish(&fx)
		if err == errUnchanged {
			return nil
		}
		return err
	}
	if rec != nil {
		s.log(*rec, &fx)
	}
	sh.mu.Unlock()
	s.finish(&fx)
	return s.durable(&fx)
}

// QueueLen is the number of queued jobs in a queue (QUEUELEN).
func (s *Store) QueueLen(now int64, name string) (int64, error) {
	var n int64
	err := s.withQueue(now, name, nil, func(_ *shard, q *queue, _ *effects) error {
		if q != nil {
			n = q.counts[Queued]
		}
		return nil
	})
	return n, err
}

// Queues lists the queues that hold any job, sorted (QUEUES).
func (s *Store) Queues(now int64) []string {
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
	names := map[string]struct{}{}
	for _, sh := range s.shards {
		sh.mu.Lock()
		s.drain(sh)
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
	return s.withQueue(now, name, &Record{Op: OpPause}, func(sh *shard, q *queue, _ *effects) error {
		if q == nil {
			name = strings.TrimSpace(name)
			if err := s.admitState(QueueBytes(name)); err != nil {
				return err // a paused queue that does not exist yet is state too
			}
			q = sh.queueFor(name)
		} else if q.paused {
			return errUnchanged // a pause again is not logged again
		}
		q.paused = true
		return nil
	})
}

// Resume lets reservations take from a queue again (QUEUERESUME).
func (s *Store) Resume(now int64, name string) error {
	return s.withQueue(now, name, &Record{Op: OpResume}, func(sh *shard, q *queue, fx *effects) error {
		if q == nil || !q.paused {
			return errUnchanged
		}
		q.paused = false
		sh.maybeDelete(q)
		if q.counts[Queued] > 0 {
			fx.notify = append(fx.notify, q.name)
		}
		return nil
	})
}

// Peek lists up to n queued jobs (DefaultPeekCount when n <= 0) in the order
// reservations would take them if no policy blocked anything: PeekPage's
// first page, without a bound on its bytes.
func (s *Store) Peek(now int64, name string, n int) ([]Job, error) {
	pg, err := s.PeekPage(now, name, PeekOptions{Count: n})
	return pg.Jobs, err
}

// Purge cancels every queued and scheduled job of a queue (QUEUEPURGE) and
// returns how many.
func (s *Store) Purge(now int64, name string) (int64, error) {
	var n int64
	err := s.withQueue(now, name, &Record{Op: OpPurge}, func(sh *shard, q *queue, fx *effects) error {
		n = s.purgeLocked(sh, q, now, fx)
		return nil
	})
	return n, err
}

// purgeLocked cancels q's queued and scheduled jobs in push order. Lock must
// be held.
func (s *Store) purgeLocked(sh *shard, q *queue, now int64, fx *effects) int64 {
	if q == nil {
		return 0
	}
	type victim struct {
		created uint64
		r       ref
	}
	var victims []victim
	for _, l := range q.lanes {
		for _, b := range l.buckets {
			for i := 0; i < b.jobs.len(); i++ {
				if j := b.jobs.at(i); live(j) {
					victims = append(victims, victim{j.created, ref{j: j}})
				}
			}
			for c := b.first; c != nil; c = c.next {
				for off := c.head; off < c.n; off = c.nextLive(off) {
					victims = append(victims, victim{c.entry(off).created, ref{c: c, off: off}})
				}
			}
		}
	}
	for _, j := range sh.timers {
		if j.ln.q == q && j.state == Scheduled {
			victims = append(victims, victim{j.created, ref{j: j}})
		}
	}
	sort.Slice(victims, func(i, k int) bool { return victims[i].created < victims[k].created })
	for _, v := range victims {
		j := v.r.j
		if j == nil {
			j = sh.unpack(v.r.c, v.r.off)
		}
		s.cancelLocked(j, now, fx)
	}
	return int64(len(victims))
}

// SetConcurrency creates or changes a concurrency policy (POLICYSET
// CONCURRENCY).
func (s *Store) SetConcurrency(now int64, key string, limit int64) error {
	if limit < 1 {
		return invalid("%s", backpressure.ErrLimit.Error())
	}
	return s.changePolicy(now, &Record{Op: OpPolicySet, Kind: backpressure.Concurrency, PolicyKey: key, Limit: limit})
}

// SetRateLimit creates or changes a rate-limit policy (POLICYSET RATELIMIT).
func (s *Store) SetRateLimit(now int64, key string, limit, period int64) error {
	switch {
	case limit < 1:
		return invalid("%s", backpressure.ErrLimit.Error())
	case period < 1:
		return invalid("%s", backpressure.ErrPeriod.Error())
	}
	return s.changePolicy(now, &Record{Op: OpPolicySet, Kind: backpressure.RateLimit, PolicyKey: key, Limit: limit, Period: period})
}

// DeletePolicy removes a policy (POLICYDEL) and reports whether it existed.
func (s *Store) DeletePolicy(now int64, kind backpressure.Kind, key string) (bool, error) {
	if kind == backpressure.Throttle {
		return s.liftThrottle(now, key)
	}
	if kind == backpressure.Breaker {
		return s.deleteBreaker(now, key)
	}
	if kind != backpressure.Concurrency && kind != backpressure.RateLimit {
		return false, invalid("unknown policy kind")
	}
	rec := &Record{Op: OpPolicyDel, Kind: kind, PolicyKey: key}
	err := s.changePolicy(now, rec)
	return rec.Existed, err
}

// changePolicy applies a policy record. The record is
// logged before the registry changes, under policyMu: a reservation that
// sees the new policy is then always logged after it. For a delete,
// r.Existed reports whether a policy existed.
func (s *Store) changePolicy(now int64, r *Record) error {
	key, err := ident("key", r.PolicyKey)
	if err != nil {
		return err
	}
	r.PolicyKey, r.Now = key, now
	if err := s.writable(); err != nil {
		return err
	}
	var fx effects
	s.maintain(now, &fx)
	s.policyMu.Lock()
	if r.Op == OpPolicyDel {
		if !s.hasPolicy(now, r.Kind, key) {
			s.policyMu.Unlock() // nothing to delete, nothing to log
			s.finish(&fx)
			return nil
		}
		r.Existed = true
	} else if !s.hasPolicy(now, r.Kind, key) {
		// A new policy is state that --maxmemory counts; changing one is
		// not refused.
		if err := s.admitState(backpressure.PolicyBytes(r.Kind, key)); err != nil {
			s.policyMu.Unlock()
			s.finish(&fx)
			return err
		}
	}
	s.log(*r, &fx)
	s.applyPolicy(r, &fx)
	s.policyMu.Unlock()
	s.finish(&fx)
	return s.durable(&fx)
}

// hasPolicy reports whether key has a policy (or is a template) of its
// own, not one from a template.
func (s *Store) hasPolicy(now int64, kind backpressure.Kind, key string) bool {
	info, ok := s.reg.Get(now, kind, key)
	return ok && info.Template == ""
}

// applyPolicy changes the registry as r says. policyMu must be held.
func (s *Store) applyPolicy(r *Record, fx *effects) {
	if backpressure.IsTemplate(r.PolicyKey) {
		var woken []backpressure.Woken
		if r.Op == OpPolicyDel {
			_, woken = s.reg.DeleteTemplate(r.Now, r.Kind, r.PolicyKey)
		} else {
			woken, _ = s.reg.SetTemplate(r.Now, r.Kind, r.PolicyKey, r.Limit, r.Period)
		}
		for _, w := range woken {
			s.wake(w.Kind, w.Key, w.Waiters, fx)
		}
		return
	}
	var ws []backpressure.Waiter
	switch {
	case r.Op == OpPolicyDel:
		_, ws = s.reg.Delete(r.Kind, r.PolicyKey)
	case r.Kind == backpressure.Concurrency:
		ws, _ = s.reg.SetConcurrency(r.PolicyKey, r.Limit)
	default:
		ws, _ = s.reg.SetRateLimit(r.Now, r.PolicyKey, r.Limit, r.Period)
	}
	s.wake(r.Kind, r.PolicyKey, ws, fx)
}

// GetPolicy returns a policy with its live usage (POLICYGET).
func (s *Store) GetPolicy(now int64, kind backpressure.Kind, key string) (PolicyInfo, bool, error) {
	if kind == backpressure.Breaker {
		var fx effects
		s.maintain(now, &fx)
		s.finish(&fx)
		return s.getBreaker(now, key)
	}
	if kind != backpressure.Concurrency && kind != backpressure.RateLimit && kind != backpressure.Throttle {
		return PolicyInfo{}, false, invalid("unknown policy kind")
	}
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
	infos := append(s.reg.List(now), s.breakerInfos(now)...) // Breaker sorts last
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
	if info.Kind == backpressure.Breaker {
		p.Waiting = s.breakerWaiting(info.Key)
		return p
	}
	kinds := []backpressure.Kind{info.Kind}
	if info.Kind == backpressure.Throttle { // the key as either
		kinds = []backpressure.Kind{backpressure.Concurrency, backpressure.RateLimit}
	}
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, kind := range kinds {
			if kl := sh.keyLanes[kind][info.Key]; kl != nil {
				for _, l := range kl.lanes {
					if info.Kind == backpressure.Throttle && kind == backpressure.RateLimit && l.hasKey(backpressure.Concurrency, info.Key) {
						continue // counted as a concurrency key
					}
					p.Waiting += int64(l.n)
				}
			}
		}
		sh.mu.Unlock()
	}
	return p
}

// Flush drops every job, queue, pause, policy and remembered token
// (FLUSHALL). It holds every shard lock at once (in shard order; the only
// operation that does), so it is atomic against all others.
func (s *Store) Flush(now int64) error {
	if err := s.writable(); err != nil {
		return err
	}
	var fx effects
	s.flush(now, &fx)
	return s.durable(&fx)
}

// flush empties everything and logs it, holding every lock: policyMu,
// idemKeys.mu, then each shard's in order. No lock may be held.
func (s *Store) flush(now int64, fx *effects) {
	s.policyMu.Lock()
	s.idem.mu.Lock()
	s.cron.mu.Lock()
	s.deps.mu.Lock()
	for _, sh := range s.shards {
		sh.mu.Lock()
	}
	s.log(Record{Op: OpFlush, Now: now}, fx) // nothing while replaying
	s.flushLocked()
	for _, sh := range s.shards {
		sh.mu.Unlock()
	}
	s.deps.mu.Unlock()
	s.cron.mu.Unlock()
	s.idem.mu.Unlock()
	s.policyMu.Unlock()
	s.flushed()
}

// flushLocked empties everything, idempotency keys and periodic entries
// included. Every shard lock, cronTable.mu, idemKeys.mu and policyMu must
// be held.
func (s *Store) flushLocked() {
	s.unshare()
	// Guard stale pointers that operations waiting for a lock may hold
	// (walking the index in place: a list of a million refs would be tens
	// of megabytes allocated to empty the store).
	s.index.each(func(r ref) {
		if r.j != nil {
			r.j.dropped = true
		}
	})
	for _, sh := range s.shards {
		for _, q := range sh.queues {
			q.dead = true
		}
		sh.queues = make(map[string]*queue)
		sh.timers, sh.lanes = nil, nil
		sh.keyLanes = [3]map[string]*keyLanes{}
		sh.nextDue.Store(1<<63 - 1)
		sh.jobs.Store(0)
		sh.bytes.Store(0)
		sh.inboxMu.Lock()
		sh.inbox = nil
		sh.inboxN.Store(0)
		sh.inboxMu.Unlock()
	}
	s.index.reset()
	s.reg.Reset()
	s.expired.init(s.cfg.ExpiredTokens)
	s.ret.init(s.cfg.MaxRetained, s.cfg.Retention)
	s.dead.init(s.cfg.MaxFailed, s.cfg.FailedRetention)
	s.idem.resetLocked()
	s.weights.mu.Lock()
	s.weights.m = make(map[string]uint32)
	s.weights.mu.Unlock()
	s.rotation.reset()
	s.cron.resetLocked()
	s.deps.listMu.Lock()
	s.deps.init()
	s.deps.listMu.Unlock()
	s.batches.mu.Lock()
	s.batches.init(s.cfg.MaxBatches, s.cfg.MaxBatchJobs)
	s.batches.mu.Unlock()
	s.brk.reset()
	s.total.Store(0)
	s.bytes.Store(0)
	s.state.Store(0)
	s.scanBytes.Store(0)
	s.names.reset()
}
