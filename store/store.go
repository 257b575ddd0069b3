package store

import (
	"errors"
	"hash/maphash"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"sluice/backpressure"
)

// Generator makes job ids and reservation tokens. Injected so that the same
// operations always give the same state (tests, log replay). It must be safe
// for concurrent use. It appends to a buffer, which lets the store keep an
// id and a token inside the job's own record instead of allocating each.
type Generator interface {
	// AppendJobID appends a new job id, at most MaxIdentifier bytes;
	// roughly time-ordered for production use.
	AppendJobID(dst []byte, now int64) []byte
	// AppendToken appends a string never appended before by this
	// generator.
	AppendToken(dst []byte, now int64) []byte
}

// slotGenerator is a Generator made of sub-generators a caller may pick
// (RandomGenerator). Each queue shard draws its generated ids from one of
// them: pushes to a queue then get ids that count up, which the id index
// keeps side by side, and a sub-generator's lock is rarely contended.
type slotGenerator interface {
	AppendJobIDFrom(dst []byte, now int64, slot int) []byte
}

// Config tunes a Store. DefaultConfig gives the documented defaults.
type Config struct {
	Shards        int   // queue shards, a power of two; default 32
	Retention     int64 // ms a terminal job stays readable; default 1 h
	MaxRetained   int   // terminal jobs kept at most, oldest dropped first; default 100,000
	ExpiredTokens int   // expired tokens remembered; default 100,000
	MaxJobs       int64 // jobs held at most (FULL beyond); default 0, no limit
	MaxBytes      int64 // estimated job memory held at most (FULL beyond, see JobBytes); default 0, no limit
	// IdempotencyWindow is how long a push's idempotency key is
	// remembered, in ms; default 24 h.
	IdempotencyWindow int64
	// IdempotencyKeys bounds the keys remembered: past it the oldest are
	// forgotten early. Default 1,000,000.
	IdempotencyKeys int
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Shards:        32,
		Retention:     60 * 60 * 1000,
		MaxRetained:   100_000,
		ExpiredTokens: 100_000,

		IdempotencyWindow: 24 * 60 * 60 * 1000,
		IdempotencyKeys:   1_000_000,
	}
}

// Validate reports the first setting a user must change.
func (c Config) Validate() error {
	switch {
	case c.Shards < 1 || c.Shards&(c.Shards-1) != 0 || c.Shards > 1024:
		return errors.New("store: Shards must be a power of two between 1 and 1024")
	case c.Retention < 1:
		return errors.New("store: Retention must be at least 1 ms")
	case c.MaxRetained < 1:
		return errors.New("store: MaxRetained must be at least 1")
	case c.ExpiredTokens < 1:
		return errors.New("store: ExpiredTokens must be at least 1")
	case c.MaxJobs < 0:
		return errors.New("store: MaxJobs must be 0 (no limit) or positive")
	case c.MaxBytes < 0:
		return errors.New("store: MaxBytes must be 0 (no limit) or positive")
	case c.IdempotencyWindow < 1:
		return errors.New("store: IdempotencyWindow must be at least 1 ms")
	case c.IdempotencyKeys < 1:
		return errors.New("store: IdempotencyKeys must be at least 1")
	}
	return nil
}

// Store holds every job, queue and policy. All methods are safe for
// concurrent use; see doc.go for the locking rules.
type Store struct {
	cfg     Config
	gen     Generator
	slotGen slotGenerator // gen's, if it has slots
	reg     *backpressure.Registry
	shards  []*shard
	index   idIndex
	expired expiredTokens
	ret     retention
	idem    idemKeys
	// limited is set when MaxJobs or MaxBytes is: only then do pushes
	// also keep the store-wide counts below, which their limits are
	// checked against in one atomic step. Each shard always counts its own
	// jobs (shard.jobs, shard.bytes), which Len and Bytes add up, so
	// without a limit pushes on different shards share no write.
	limited bool
	_       [64]byte
	total   atomic.Int64 // jobs held, when limited
	_       [56]byte
	bytes   atomic.Int64 // estimated memory of the jobs held (JobBytes), when limited
	_       [56]byte
	// state is the estimated memory of the queues and lanes (QueueBytes,
	// LaneOverhead), counted as they come and go: rarely, next to pushes.
	state atomic.Int64
	_     [56]byte
	// minDue is no later than any shard's nextDue: every operation reads
	// it (maintain), and only when it is due does one look at the shards.
	// A shard lowers it when it arms an earlier timer; maintain raises it
	// after running what was due.
	minDue atomic.Int64
	_      [56]byte

	onNotify atomic.Pointer[func(string)]
	onTimer  atomic.Pointer[func()]

	gate gate // commands shared, a transaction alone (unit.go)

	journal   Journal    // nil: no log
	observer  Observer   // nil: none; set before serving
	replaying bool       // set while Load replays a log: nothing is appended
	policyMu  sync.Mutex // orders policy changes with their records

	peekSlice int    // tests: jobs per slice of PeekPage (0: peekSlice)
	peekHook  func() // tests: called by PeekPage between slices, no lock held
}

type job struct {
	id        string // in text when it fits there
	ln        *lane  // never changes: queue, handler, concurrency and rate-limit keys
	payload   []byte
	priority  int64
	seq       uint64 // entry order into queued, per queue
	created   uint64 // push order, per queue
	state     State
	dropped   bool
	tokText   bool // text holds the token of a reservation after the id
	loose     bool // unpacked, queued in no FIFO entry, until the caller takes it out
	attempt   int64
	maxAtt    int64
	backoff   int64
	createdAt int64
	updatedAt int64
	runAt     int64
	x         *jobExt // what only reserved or failed jobs need; nil until then
	// timer: dueAt is the lease expiry (expires_at while reserved or
	// running) or run_at while armed; tidx its place
	// in the shard's timer heap (-1 when unarmed); tseq its arming order in
	// its queue, which orders jobs of one queue due at the same instant.
	dueAt int64
	tseq  uint64
	tidx  int32
	// retainGen is odd while the job sits in retention. It is read by the
	// retention sweeper without the shard lock, hence atomic.
	retainGen atomic.Uint32
	// text holds the id and, from the first reservation on, "." and that
	// reservation's token: when they fit, the id and that token are
	// strings pointing into the
	// record, which saves allocating them. A byte of text is written
	// before any string covers it and never changes once the job is in
	// the index.
	text [32]byte
}

// jobExt holds the fields a job gets once reserved or failed, kept apart so
// that a queued job that never ran costs less memory.
type jobExt struct {
	token     string // current reservation, or the last one after it ended
	worker    string
	lastError string
	hasError  bool
	startedAt int64 // the last JOBSTART, or the reservation; 0 if unknown (metrics only)
}

// noExt is what a job without an extension reads.
var noExt jobExt

// ext returns j's extension, creating it. Lock must be held.
func (j *job) ext() *jobExt {
	if j.x == nil {
		j.x = &jobExt{}
	}
	return j.x
}

// xr returns j's extension for reading. Lock must be held.
func (j *job) xr() *jobExt {
	if j.x == nil {
		return &noExt
	}
	return j.x
}

// expires is the lease expiry while reserved or running, else 0. Lock must
// be held.
func (j *job) expires() int64 {
	if j.state == Reserved || j.state == Running {
		return j.dueAt
	}
	return 0
}

type shard struct {
	mu      sync.Mutex             // protects everything below but the atomics and the inbox
	reg     *backpressure.Registry // the store's, for lanes to hold their keys
	minDue  *atomic.Int64          // the store's
	state   *atomic.Int64          // the store's: memory of queues and lanes
	index   *idIndex               // the store's, which unpacking updates
	queues  map[string]*queue      // queues held by this shard
	timers  jobHeap                // armed job timers
	lanes   laneTimers             // parked-lane timers
	lseq    uint64                 // parked-lane timer order
	idBuf   []byte                 // scratch for generated ids of packed jobs
	genSlot int                    // the sub-generator of slotGen this shard's ids come from
	ids     []byte                 // generated ids handed out, appended only (keepID)
	// keyLanes[kind][key] lists the lanes that carry a policy key of
	// that kind (backpressure.Concurrency or RateLimit).
	keyLanes [3]map[string]*keyLanes

	// jobs and bytes count the jobs of this shard's queues and their
	// estimated memory (JobBytes); Len and Bytes add them up. Atomic: a
	// drop from retention changes them without the lock.
	jobs  atomic.Int64
	bytes atomic.Int64

	// nextDue is read by every operation of every goroutine (maintain): it
	// gets cache lines of its own, away from the mutex above.
	_       [64]byte
	nextDue atomic.Int64 // earliest timer of either heap; MaxInt64 when none
	_       [56]byte

	inboxMu sync.Mutex // protects inbox; a leaf lock
	inbox   []wakeMsg  // keys freed elsewhere, to unpark lanes here
	inboxN  atomic.Int32
}

// wakeMsg is an inbox message: lanes of q parked on a key that freed.
type wakeMsg struct {
	q  *queue
	on parkKey
}

// effects are actions an operation performs after releasing its locks.
type effects struct {
	notify []string   // queues that may have eligible work
	drop1  retEntry   // the first retention drop (j nil: none), kept apart
	drops  []retEntry // from the rest so that one drop allocates nothing
	timers bool       // a timer earlier than before may have been armed
	seq    uint64     // the operation's last journal record
}

// addDrop notes a job evicted from retention, to drop after the locks.
func (fx *effects) addDrop(e retEntry) {
	if fx.drop1.j == nil && len(fx.drops) == 0 {
		fx.drop1 = e
	} else {
		fx.drops = append(fx.drops, e)
	}
}

// New returns an empty store.
func New(cfg Config, gen Generator) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if gen == nil {
		return nil, errors.New("store: a Generator is required")
	}
	s := &Store{cfg: cfg, gen: gen, reg: backpressure.New(), limited: cfg.MaxJobs > 0 || cfg.MaxBytes > 0}
	s.slotGen, _ = gen.(slotGenerator)
	s.shards = make([]*shard, cfg.Shards)
	s.minDue.Store(math.MaxInt64)
	for i := range s.shards {
		s.shards[i] = newShard(s.reg, &s.minDue, &s.index)
		s.shards[i].state = &s.state
		s.shards[i].genSlot = i
	}
	s.index.init()
	s.expired.init(cfg.ExpiredTokens)
	s.ret.init(cfg.MaxRetained, cfg.Retention)
	s.idem.init(cfg.IdempotencyKeys, cfg.IdempotencyWindow)
	return s, nil
}

func newShard(reg *backpressure.Registry, minDue *atomic.Int64, index *idIndex) *shard {
	sh := &shard{
		queues: make(map[string]*queue),
		reg:    reg,
		minDue: minDue,
		index:  index,
	}
	sh.nextDue.Store(math.MaxInt64)
	return sh
}

// SetNotify installs fn, called (outside every lock, possibly from several
// goroutines at once) with a queue name whenever work in that queue may have
// become eligible: a push, a release, a lease expiry, a due timer, a freed
// concurrency slot, a rate window opening, a policy change or a resume.
func (s *Store) SetNotify(fn func(queue string)) { s.onNotify.Store(&fn) }

// SetTimerHook installs fn, called when a timer earlier than the last
// NextDeadline may have been armed. It must not block.
func (s *Store) SetTimerHook(fn func()) { s.onTimer.Store(&fn) }

// NextDeadline is the earliest instant at which maintenance has work (a
// lease, a scheduled job, a retry, a rate window, a retention drop, keys to
// forget); 0 if none.
func (s *Store) NextDeadline() int64 {
	next := min(s.ret.nextDue.Load(), s.idem.nextDue.Load())
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
func (s *Store) Tick(now int64) {
	s.gate.mu.RLock()
	defer s.gate.mu.RUnlock()
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
}

// Len is the number of jobs held, terminal ones included (DBSIZE).
func (s *Store) Len() int64 {
	var n int64
	for _, sh := range s.shards {
		n += sh.jobs.Load()
	}
	return n
}

// count adds dn jobs of db estimated bytes to sh's counts, and to the
// store's when a limit needs them. Any lock may be held.
func (s *Store) count(sh *shard, dn, db int64) {
	sh.jobs.Add(dn)
	sh.bytes.Add(db)
	if s.limited {
		s.total.Add(dn)
		s.bytes.Add(db)
	}
}

// counted counts a new job of size bytes in sh, and store-wide unless
// admitJob already has (admitted).
func (s *Store) counted(sh *shard, size int64, admitted bool) {
	if admitted {
		sh.jobs.Add(1)
		sh.bytes.Add(size)
		return
	}
	s.count(sh, 1, size)
}

// shardOf picks a queue's shard with a fixed hash (FNV-1a), so a queue lands
// in the same shard in every process: maintenance visits shards in order,
// and replay must visit them in the same order as the live store did.
func (s *Store) shardOf(queue string) *shard {
	h := uint64(14695981039346656037)
	for i := 0; i < len(queue); i++ {
		h ^= uint64(queue[i])
		h *= 1099511628211
	}
	return s.shards[h&uint64(len(s.shards)-1)]
}

// maintain applies everything due at now, shard by shard, then the
// retention drops. It holds at most one lock at a time.
func (s *Store) maintain(now int64, fx *effects) {
	if old := s.minDue.Load(); old <= now {
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
	}
	if s.ret.nextDue.Load() <= now {
		for _, e := range s.ret.expire(now) {
			s.drop(e, fx)
		}
	}
	if s.idem.nextDue.Load() <= now {
		s.sweepKeys(now, fx)
	}
}

// finish performs what an operation left for after its locks.
func (s *Store) finish(fx *effects) {
	if fx.drop1.j != nil {
		s.drop(fx.drop1, fx)
	}
	for i := 0; i < len(fx.drops); i++ {
		s.drop(fx.drops[i], fx)
	}
	if fx.timers {
		if fn := s.onTimer.Load(); fn != nil {
			(*fn)()
		}
	}
	if len(fx.notify) > 0 {
		if fn := s.onNotify.Load(); fn != nil {
			for _, name := range UniqueNames(fx.notify) {
				(*fn)(name)
			}
		}
	}
}

// UniqueNames drops repeats from names, keeping first appearances in
// order, and returns the result in names' own array. Its cost is linear
// however many names a client sends.
func UniqueNames(names []string) []string {
	out := names[:0]
	if len(names) <= 16 {
		for _, n := range names {
			if !seen(out, n) {
				out = append(out, n)
			}
		}
		return out
	}
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		if _, ok := set[n]; !ok {
			set[n] = struct{}{}
			out = append(out, n)
		}
	}
	return out
}

func seen(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func (s *Store) notify(name string) {
	if fn := s.onNotify.Load(); fn != nil {
		(*fn)(name)
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
			s.expire(j, fx)
		case Scheduled, RetryPending:
			s.due(j, fx)
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

// enqueue puts j, just moved to queued, at the back of its lane and notes
// its queue for the waiters. Lock must be held.
func (s *Store) enqueue(j *job, fx *effects) {
	j.ln.q.enqueue(j)
	fx.notify = append(fx.notify, j.ln.q.name)
}

// due queues a scheduled or retry_pending job whose time has come; its timer
// is already removed. Lock must be held.
func (s *Store) due(j *job, fx *effects) {
	j.updatedAt = j.dueAt
	s.move(j, Queued)
	s.enqueue(j, fx)
	s.log(Record{Op: OpDue, Now: j.dueAt, ID: j.id}, fx)
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
	j.ext().worker = ""
	j.runAt, j.updatedAt = at, at
	s.enqueue(j, fx)
	if o := s.obs(j.ln.q); o != nil {
		o.Expired()
	}
	s.log(Record{Op: OpExpire, Now: at, ID: j.id}, fx)
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
		fx.notify = append(fx.notify, q.name)
	}
}

// releaseKey ends j's count on its concurrency key. Lock must be held.
func (s *Store) releaseKey(j *job, fx *effects) {
	if ck := j.ln.key.ckey; ck != "" {
		if ws := s.reg.ReleaseKeys(&j.ln.keys); len(ws) > 0 {
			s.wake(backpressure.Concurrency, ck, ws, fx)
		}
	}
}

// move changes j's state through the lifecycle table. Lock must be held.
func (s *Store) move(j *job, to State) error {
	if !allowed[j.state][to] {
		return &StateError{ID: j.id, From: j.state, To: to}
	}
	j.ln.q.counts[j.state]--
	j.ln.q.counts[to]++
	j.state = to
	return nil
}

// terminal files a job that just became terminal into retention. Lock must
// be held.
func (s *Store) terminal(j *job, fx *effects) {
	switch j.state {
	case Succeeded:
		j.ln.q.succ++
	case Failed:
		j.ln.q.failed++
	}
	gen := j.retainGen.Add(1) // odd: retained
	// A replayed log carries its drops as records: no eviction of its own.
	s.ret.add(j, gen, !s.replaying, fx)
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

// dropLocked forgets a job at once. Lock must be held.
func (s *Store) dropLocked(j *job) {
	s.index.remove(j.id, ref{j: j})
	s.count(j.ln.q.sh, -1, -j.bytes())
	s.unlink(j)
}

// unlink takes a dropped job out of its queue. Lock must be held.
func (s *Store) unlink(j *job) {
	j.dropped = true
	q := j.ln.q
	q.counts[j.state]--
	q.jobs--
	q.unref(j.ln)
	q.sh.maybeDelete(q)
}

// queueFor returns the named queue, creating it. Lock must be held.
func (sh *shard) queueFor(name string) *queue {
	q := sh.queues[name]
	if q == nil {
		q = &queue{name: name, sh: sh, lanes: make(map[laneKey]*lane), groups: make(map[string]*group)}
		sh.queues[name] = q
		sh.state.Add(QueueBytes(name))
	}
	return q
}

// maybeDelete forgets a queue that holds nothing. Lock must be held.
func (sh *shard) maybeDelete(q *queue) {
	if q.jobs == 0 && !q.paused && !q.dead {
		q.dead = true
		delete(sh.queues, q.name)
		sh.state.Add(-QueueBytes(q.name))
	}
}

// listLane adds l to the lanes of key. Lock must be held.
func (sh *shard) listLane(kind backpressure.Kind, key string, l *lane) {
	m := sh.keyLanes[kind]
	if m == nil {
		m = make(map[string]*keyLanes)
		sh.keyLanes[kind] = m
	}
	kl := m[key]
	if kl == nil {
		kl = &keyLanes{}
		m[key] = kl
	}
	l.kpos[kind] = len(kl.lanes)
	kl.lanes = append(kl.lanes, l)
}

// unlistLane removes l from the lanes of key. Lock must be held.
func (sh *shard) unlistLane(kind backpressure.Kind, key string, l *lane) {
	m := sh.keyLanes[kind]
	kl := m[key]
	i := l.kpos[kind]
	if kl == nil || i >= len(kl.lanes) || kl.lanes[i] != l {
		return // a lane from before a FLUSHALL, which emptied the lists
	}
	last := len(kl.lanes) - 1
	moved := kl.lanes[last]
	kl.lanes[i] = moved
	moved.kpos[kind] = i
	kl.lanes[last] = nil
	kl.lanes = kl.lanes[:last]
	if last == 0 {
		delete(m, key)
	}
}

// ident validates an identifier (PROTOCOL.md "Conventions").
func ident(what, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", invalid("%s must not be empty", what)
	}
	if len(v) > MaxIdentifier {
		return "", invalid("%s is longer than %d bytes", what, MaxIdentifier)
	}
	return v, nil
}

// optIdent validates an optional identifier: empty means none.
func optIdent(what, v string) (string, error) {
	v = strings.TrimSpace(v)
	if len(v) > MaxIdentifier {
		return "", invalid("%s is longer than %d bytes", what, MaxIdentifier)
	}
	return v, nil
}

// idIndex maps job ids to jobs across all queues, sharded by a hash of the
// id (see hash: generated ids pushed one after another share cache lines).
// Each shard is an open-addressing table (linear probing, backward-shift
// deletion, so no tombstones) that keeps every entry's hash beside its job:
// an insert is one probe sequence that also finds a duplicate, growing never
// hashes an id again, and the GC scans one pointer per entry. Shards are
// many and small so that growing one (which copies its table) stalls only a
// few ids, briefly. Its locks are leaves.
//
// A packed job's slot points at its chunk, with the entry's offset in the
// hash word (see idSlot): many slots share a chunk, each naming one entry.
type idIndex struct {
	seed   maphash.Seed
	shards [idShards]idShard
}

const (
	idShardBits = 8
	idShards    = 1 << idShardBits
)

type idShard struct {
	mu    sync.Mutex // protects slots and n
	slots []idSlot   // nil or a power of two long, at most 3/4 full
	n     int
	_     [24]byte // one cache line per shard: no false sharing between locks
}

// idSlot is one id. Its hash word keeps the id's hash in its low hashBits
// (enough to tell ids apart before comparing them, and far more than any
// table's size needs), then, for a packed job, the entry's offset in its
// chunk and slotPacked.
//
// p is a *job, or a *chunk when slotPacked is set: one pointer word for
// either keeps the slot at 16 bytes and the GC's work at one pointer per
// id. It is only ever converted back to the type it was made from, which
// slotPacked records, so the conversions are the plain pointer casts that
// checkptr accepts.
type idSlot struct {
	h uint64
	p unsafe.Pointer // nil: empty
}

const (
	hashBits   = 64 - 1 - chunkBits
	hashMask   = 1<<hashBits - 1
	slotPacked = 1 << 63
)

// slotOf returns the slot of r, with hash h.
func slotOf(h uint64, r ref) idSlot {
	if r.j != nil {
		return idSlot{h: h & hashMask, p: unsafe.Pointer(r.j)}
	}
	return idSlot{h: h&hashMask | uint64(r.off)<<hashBits | slotPacked, p: unsafe.Pointer(r.c)}
}

func (s idSlot) ref() ref {
	if s.h&slotPacked == 0 {
		return ref{j: (*job)(s.p)}
	}
	return ref{c: (*chunk)(s.p), off: int(s.h>>hashBits) & (chunkMax - 1)}
}

// is reports whether s holds id. Lock must be held: a packed entry's id
// bytes are fixed while it is indexed.
func (s idSlot) is(h uint64, id string) bool {
	if (s.h^h)&hashMask != 0 {
		return false
	}
	if s.h&slotPacked == 0 {
		return (*job)(s.p).id == id
	}
	r := s.ref()
	return string(r.c.idAt(r.off)) == id
}

func (x *idIndex) init() {
	x.seed = maphash.MakeSeed()
	x.reset()
}

// shard returns id's hash and shard: the top bits pick the shard, the low
// bits the slot.
func (x *idIndex) shard(id string) (uint64, *idShard) {
	h := x.hash(id)
	return h, &x.shards[h>>(64-idShardBits)]
}

// hash hashes id. An id in the generated form (16 characters of Crockford
// base32, as RandomGenerator makes them) is a run and an offset: all but
// its low runBits bits, hashed, plus those bits. Ids generated one after
// another by one sub-generator in one millisecond differ only in their
// offsets, so they take neighbouring slots of one shard's table: a run of
// pushes writes a few cache lines, not one random line per id. Any other
// id is hashed whole.
//
// Runs make clusters: ids that fill whole runs (a client's sequential
// upper-case hexadecimal ids look generated) probe further when the table
// is full. runBits bounds that: with runs of 16, such ids left in no order
// cost 14% more than hashed whole, where runs of 64 cost 47%
// (BenchmarkIDIndexScattered/hex, tables three quarters full), while
// generated ids keep the gain.
func (x *idIndex) hash(id string) uint64 {
	if len(id) != 16 {
		return maphash.String(x.seed, id)
	}
	var hi, lo uint64 // the first 8 characters, the last 8: 40 bits each
	for i := range 8 {
		a, b := crockfordValue[id[i]], crockfordValue[id[8+i]]
		if a|b > 31 {
			return maphash.String(x.seed, id)
		}
		hi, lo = hi<<5|uint64(a), lo<<5|uint64(b)
	}
	run := [2]uint64{hi, lo >> runBits}
	return maphash.Comparable(x.seed, run) + lo&(1<<runBits-1)
}

const runBits = 4

func (x *idIndex) get(id string) ref {
	h, t := x.shard(id)
	t.mu.Lock()
	r := t.lookup(h, id)
	t.mu.Unlock()
	return r
}

func (x *idIndex) putIfAbsent(id string, r ref) bool {
	h, t := x.shard(id)
	t.mu.Lock()
	ok := t.insert(h, id, r)
	t.mu.Unlock()
	return ok
}

// remove deletes id if it still names r, and reports whether it did.
func (x *idIndex) remove(id string, r ref) bool {
	h, t := x.shard(id)
	t.mu.Lock()
	ok := t.remove(slotOf(h, r))
	t.mu.Unlock()
	return ok
}

// replace points id, which names the packed entry from, at j.
func (x *idIndex) replace(id string, from ref, j *job) {
	h, t := x.shard(id)
	t.mu.Lock()
	if i, ok := t.find(slotOf(h, from)); ok {
		t.slots[i] = slotOf(h, ref{j: j})
	}
	t.mu.Unlock()
}

func (x *idIndex) reset() {
	for i := range x.shards {
		t := &x.shards[i]
		t.mu.Lock()
		t.slots, t.n = nil, 0
		t.mu.Unlock()
	}
}

func (x *idIndex) all() []ref {
	var out []ref
	x.each(func(r ref) { out = append(out, r) })
	return out
}

// each calls fn with every indexed job, holding one index shard's lock at a
// time; fn must not use the index.
func (x *idIndex) each(fn func(ref)) {
	for i := range x.shards {
		t := &x.shards[i]
		t.mu.Lock()
		for _, s := range t.slots {
			if s.p != nil {
				fn(s.ref())
			}
		}
		t.mu.Unlock()
	}
}

// Lock must be held.
func (t *idShard) lookup(h uint64, id string) ref {
	if t.n == 0 {
		return ref{}
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.p == nil {
			return ref{}
		}
		if s.is(h, id) {
			return s.ref()
		}
	}
}

// insert adds id → r unless id is present. Lock must be held.
func (t *idShard) insert(h uint64, id string, r ref) bool {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.p == nil {
			*s = slotOf(h, r)
			t.n++
			return true
		}
		if s.is(h, id) {
			return false
		}
	}
}

// Lock must be held.
func (t *idShard) grow() {
	old := t.slots
	t.slots = make([]idSlot, max(2*len(old), 8))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.p == nil {
			continue
		}
		i := s.h & mask
		for t.slots[i].p != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// find returns the place of slot want (hash word and pointer alike). Lock
// must be held.
func (t *idShard) find(want idSlot) (uint64, bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := want.h & mask; ; i = (i + 1) & mask {
		switch s := t.slots[i]; {
		case s.p == nil:
			return 0, false
		case s == want:
			return i, true
		}
	}
}

// remove deletes slot want, if present. Lock must be held.
func (t *idShard) remove(want idSlot) bool {
	i, ok := t.find(want)
	if ok {
		t.deleteAt(i)
	}
	return ok
}

// deleteAt empties slot i and moves back the entries after it that may
// take its place, so that every probe sequence stays unbroken. Lock must be
// held.
func (t *idShard) deleteAt(i uint64) {
	mask := uint64(len(t.slots) - 1)
	t.n--
	for k := (i + 1) & mask; ; k = (k + 1) & mask {
		s := t.slots[k]
		if s.p == nil {
			break
		}
		// s may move to the hole at i if i lies between s's home slot
		// and k, cyclically: s is at least as far from home as from i.
		if (k-s.h)&mask >= (k-i)&mask {
			t.slots[i] = s
			i = k
		}
	}
	t.slots[i] = idSlot{}
}

// expiredTokens remembers the most recent tokens whose lease expired. When
// over its bound it forgets the token that expired first (ties: the smaller
// token), an order that does not depend on when maintenance noticed the
// expiries, so a replayed store remembers the same tokens as the live one.
type expiredTokens struct {
	mu    sync.Mutex // protects set and heap; a leaf lock
	set   map[string]struct{}
	heap  []expiredToken
	max   int
	bytes atomic.Int64 // their estimated memory (ExpiredTokenOverhead each, plus the token)
}

type expiredToken struct {
	at  int64
	tok string
}

func (a expiredToken) less(b expiredToken) bool {
	return a.at < b.at || (a.at == b.at && a.tok < b.tok)
}

func (e *expiredTokens) init(max int) {
	e.mu.Lock()
	e.set = make(map[string]struct{})
	e.heap = nil
	e.max = max
	e.bytes.Store(0)
	e.mu.Unlock()
}

func (e *expiredTokens) add(tok string, at int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.set[tok]; ok {
		return
	}
	e.set[tok] = struct{}{}
	e.bytes.Add(ExpiredTokenOverhead + int64(len(tok)))
	e.heap = heapPush(e.heap, expiredToken{at, tok})
	for len(e.heap) > e.max {
		tok := e.popLocked().tok
		delete(e.set, tok)
		e.bytes.Add(-ExpiredTokenOverhead - int64(len(tok)))
	}
}

// Lock must be held.
func (e *expiredTokens) popLocked() expiredToken {
	h, top := heapPop(e.heap)
	e.heap = h
	return top
}

// countBytes recounts what bytes keeps, for consistency checks.
func (e *expiredTokens) countBytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for tok := range e.set {
		n += ExpiredTokenOverhead + int64(len(tok))
	}
	return n
}

func (e *expiredTokens) has(tok string) bool {
	e.mu.Lock()
	_, ok := e.set[tok]
	e.mu.Unlock()
	return ok
}

// retention keeps terminal jobs readable for a while, oldest dropped first.
type retention struct {
	mu   sync.Mutex // protects fifo and live; a leaf lock
	fifo ring[retEntry]
	live int
	max  int
	age  int64
	// nextDue is no later than the oldest entry's due time (when its age
	// runs out). Every operation reads it (maintain), so it has cache
	// lines of its own and is written only when it must move earlier or
	// when expire has looked: evictions leave it early, which costs one
	// needless look at most, never a late drop.
	_       [64]byte
	nextDue atomic.Int64
	_       [56]byte
}

type retEntry struct {
	j   *job
	gen uint32 // the job's retainGen when filed (odd)
	at  int64
}

func (r *retention) init(max int, age int64) {
	r.mu.Lock()
	r.fifo = ring[retEntry]{}
	r.live, r.max, r.age = 0, max, age
	r.nextDue.Store(math.MaxInt64)
	r.mu.Unlock()
}

// add files j and, when evict, hands fx the entries evicted to stay within
// max.
func (r *retention) add(j *job, gen uint32, evict bool, fx *effects) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fifo.push(retEntry{j: j, gen: gen, at: j.updatedAt})
	r.live++
	for evict && r.live > r.max && r.fifo.len() > 0 {
		if e := r.fifo.popFront(); e.j.retainGen.CompareAndSwap(e.gen, e.gen+1) {
			r.live--
			fx.addDrop(e)
		}
	}
	if due := r.fifo.front().at + r.age; due < r.nextDue.Load() {
		r.nextDue.Store(due)
	}
}

// expire returns the entries whose retention ran out at now.
func (r *retention) expire(now int64) []retEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []retEntry
	for r.fifo.len() > 0 && r.fifo.front().at+r.age <= now {
		if e := r.fifo.popFront(); e.j.retainGen.CompareAndSwap(e.gen, e.gen+1) {
			r.live--
			out = append(out, e)
		}
	}
	r.updateDue()
	return out
}

// remove takes j out of retention (JOBRETRY) and reports whether it was
// there: false means an eviction claimed it first. The stale entry stays in
// the FIFO and is skipped later.
func (r *retention) remove(j *job) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := j.retainGen.Load(); g%2 == 1 && j.retainGen.CompareAndSwap(g, g+1) {
		r.live--
		return true
	}
	return false
}

// Lock must be held.
func (r *retention) updateDue() {
	if r.fifo.len() == 0 {
		r.nextDue.Store(math.MaxInt64)
		return
	}
	r.nextDue.Store(r.fifo.front().at + r.age)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
