package store

import (
	"errors"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

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
	Shards      int   // queue shards, a power of two; default 32
	Retention   int64 // ms a succeeded, cancelled or expired job stays readable; default 1 h
	MaxRetained int   // succeeded, cancelled and expired jobs kept at most, oldest dropped first; default 100,000
	// FailedRetention is how long a failed job (a dead letter) is kept
	// unless retried or cancelled first, in ms; default 7 days.
	FailedRetention int64
	// MaxFailed bounds the failed jobs kept, oldest dropped first;
	// default 1,000,000.
	MaxFailed     int
	ExpiredTokens int   // expired tokens remembered; default 100,000
	MaxJobs       int64 // jobs held at most (FULL beyond); default 0, no limit
	MaxBytes      int64 // estimated job memory held at most (FULL beyond, see JobBytes); default 0, no limit
	// IdempotencyWindow is how long a push's idempotency key is
	// remembered, in ms; default 24 h.
	IdempotencyWindow int64
	// IdempotencyKeys bounds the keys remembered: past it the oldest are
	// forgotten early. Default 1,000,000.
	IdempotencyKeys int
	// MaxCron bounds the periodic entries (cron.go); default 10,000.
	MaxCron int
	// MaxBatches bounds the batches not complete, MaxBatchJobs the jobs of
	// one batch (batch.go); defaults 10,000 and 1,000,000.
	MaxBatches   int
	MaxBatchJobs int64
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Shards:        32,
		Retention:     60 * 60 * 1000,
		MaxRetained:   100_000,
		ExpiredTokens: 100_000,

		FailedRetention: DefaultFailedRetention,
		MaxFailed:       DefaultMaxFailed,

		IdempotencyWindow: 24 * 60 * 60 * 1000,
		IdempotencyKeys:   1_000_000,
		MaxCron:           DefaultMaxCron,
		MaxBatches:        DefaultMaxBatches,
		MaxBatchJobs:      DefaultMaxBatchJobs,
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
	case c.FailedRetention < 1:
		return errors.New("store: FailedRetention must be at least 1 ms")
	case c.MaxFailed < 1:
		return errors.New("store: MaxFailed must be at least 1")
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
	case c.MaxCron < 0:
		return errors.New("store: MaxCron must not be negative")
	case c.MaxBatches < 0 || c.MaxBatchJobs < 0:
		return errors.New("store: MaxBatches and MaxBatchJobs must not be negative")
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
	ret     retention // succeeded, cancelled and expired jobs
	dead    retention // failed jobs: the dead letters
	idem    idemKeys
	cron    cronTable
	deps    depTable // dependencies (deps.go)
	batches batches  // batches (batch.go)
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
	// scanBytes is the estimated memory of the queues' tables of jobs by
	// state (jobscan.go), counted as they grow and go.
	scanBytes atomic.Int64
	_         [56]byte
	names     queueNames // the queues with job-search tables, sorted (jobscan.go)
	// minDue is no later than any shard's nextDue: every operation reads
	// it (maintain), and only when it is due does one look at the shards.
	// A shard lowers it when it arms an earlier timer; maintain raises it
	// after running what was due.
	minDue atomic.Int64
	_      [56]byte

	onNotify atomic.Pointer[func(string)]
	onTimer  atomic.Pointer[func()]
	onEnd    atomic.Pointer[func(Ended)] // results.go

	gate gate // commands shared, a transaction alone (unit.go)

	journal   Journal    // nil: no log
	observer  Observer   // nil: none; set before serving
	replaying bool       // set while Load replays a log: nothing is appended
	policyMu  sync.Mutex // orders policy changes with their records
	weights   weights    // fair groups' weights (fair.go)
	rotation  rotation   // where round-robin reserves start, by worker (rotation.go)
	brk       breakers   // circuit breakers (breaker.go)

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
	tokText   bool        // text holds the token of a reservation after the id
	loose     bool        // unpacked, queued in no FIFO entry, until the caller takes it out
	uscope    UniqueScope // the scope of the unique key it holds (idem.go); ScopeNone: none, or left
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
	startedAt int64  // the last JOBSTART, or the reservation; 0 if unknown (metrics only)
	result    []byte // JOBACK's RESULT; nil: none (never changed in place, so readers may keep it)
	progress  []byte // the last JOBPROGRESS; nil: none (never changed in place)
	// JOBPUSH EXPIRES/DEADLINE and TIMEOUT (deadline.go); a job with
	// either gets its extension at its push. timeoutAt is when the
	// current reservation times out, 0 when none.
	deadline  int64
	timeout   int64
	timeoutAt int64
	// Dependencies (deps.go): the ids a waiting job still waits for, in
	// the order named, and whether one that ends without success counts
	// as met (ANYWAY).
	after  []string
	anyway bool
	batch  *batch // the batch it belongs to, until it ends (batch.go)
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
	scan    *atomic.Int64          // the store's: memory of the tables of jobs by state
	names   *queueNames            // the store's: the queues that have such tables
	weights *weights               // the store's, read under this lock (fair.go)
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
	timed  bool       // a timer is ending the job being filed into retention
	seq    uint64     // the operation's last journal record
	ends   []depEnd   // dependencies that ended with waiters to resolve (deps.go)
	// batches completed, whose callbacks are to push (batch.go)
	callbacks []*batch
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
		s.shards[i].scan = &s.scanBytes
		s.shards[i].names = &s.names
		s.shards[i].weights = &s.weights
		s.shards[i].genSlot = i
	}
	s.weights.m = make(map[string]uint32)
	s.rotation.init()
	s.rotation.state = &s.state
	s.brk.reset()
	s.index.init()
	s.expired.init(cfg.ExpiredTokens)
	s.ret.init(cfg.MaxRetained, cfg.Retention)
	s.dead.init(cfg.MaxFailed, cfg.FailedRetention)
	s.idem.init(cfg.IdempotencyKeys, cfg.IdempotencyWindow)
	s.cron.init(cfg.MaxCron)
	s.deps.init()
	s.batches.init(cfg.MaxBatches, cfg.MaxBatchJobs)
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

// finish performs what an operation left for after its locks.
func (s *Store) finish(fx *effects) {
	if len(fx.ends) > 0 {
		s.finishEnds(fx) // first: a cascade may end more jobs, with keys and drops
	}
	if len(fx.callbacks) > 0 {
		s.pushCallbacks(fx)
	}
	s.releaseKeys(fx) // first: a drop's job left its scope long ago
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

// enqueue puts j, just moved to queued, at the back of its lane and notes
// its queue for the waiters. Lock must be held.
func (s *Store) enqueue(j *job, fx *effects) {
	j.ln.q.enqueue(j)
	fx.notify = append(fx.notify, j.ln.q.name)
}

// releaseKey ends j's count on its concurrency keys. Lock must be held.
func (s *Store) releaseKey(j *job, fx *effects) {
	if m := j.ln.more; m != nil {
		for _, k := range m.all {
			if k.CKey != "" {
				if ws := s.reg.ReleaseKeys(k); len(ws) > 0 {
					s.wake(backpressure.Concurrency, k.CKey, ws, fx)
				}
			}
		}
		return
	}
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
	if j.uscope != ScopeNone && j.uscope.leftBy(j.state, to) {
		s.leftScope(j)
	}
	q := j.ln.q
	q.counts[j.state]--
	q.counts[to]++
	from := j.state
	j.state = to
	if from == Waiting {
		s.deps.waiting.Add(-1)
	}
	if tabled[from] || tabled[to] {
		h := q.sh.index.hash(j.id)
		q.setRemove(j, from, h)
		q.setAdd(j, h)
	}
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
	s.retentionOf(j).add(j, gen, !s.replaying, fx)
	if s.deps.n.Load() > 0 {
		s.depEnded(j, fx)
	}
	if j.x != nil && j.x.batch != nil {
		s.batchEnded(j, j.x.batch, fx)
	}
	s.ended(j)
}

// retentionOf is the retention a terminal job is filed in: failed jobs
// have their own. Lock must be held.
func (s *Store) retentionOf(j *job) *retention {
	if j.state == Failed {
		return &s.dead
	}
	return &s.ret
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
	if tabled[j.state] {
		q.setRemove(j, j.state, q.sh.index.hash(j.id))
	}
	q.jobs--
	q.unref(j.ln)
	q.sh.maybeDelete(q)
}

// queueFor returns the named queue, creating it. Lock must be held.
func (sh *shard) queueFor(name string) *queue {
	q := sh.queues[name]
	if q == nil {
		q = &queue{name: name, sh: sh, lanes: make(map[laneKey]*lane), groups: make(map[string]*group),
			fairs: make(map[string]*fair)}
		sh.queues[name] = q
		sh.state.Add(QueueBytes(name))
	}
	return q
}

// maybeDelete forgets a queue that holds nothing. Lock must be held.
func (sh *shard) maybeDelete(q *queue) {
	if q.jobs == 0 && !q.paused && !q.dead {
		q.dead = true
		q.freeSets()
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
	kl.lanes = addLane(kl.lanes, l, inKeyLanes, parkKey{kind, key})
}

// unlistLane removes l from the lanes of key. Lock must be held.
func (sh *shard) unlistLane(kind backpressure.Kind, key string, l *lane) {
	m := sh.keyLanes[kind]
	kl := m[key]
	if kl == nil {
		return // a lane from before a FLUSHALL, which emptied the lists
	}
	lanes, ok := removeLane(kl.lanes, l, inKeyLanes, parkKey{kind, key})
	if !ok {
		return // the same
	}
	kl.lanes = lanes
	if len(lanes) == 0 {
		delete(m, key)
	}
}

// Ident validates an identifier (PROTOCOL.md "Conventions"): it is trimmed
// of surrounding whitespace, and must then be neither empty nor longer than
// MaxIdentifier bytes. what names it in the error. The protocol layer
// checks its arguments with it too, naming them as its commands do, so
// that there is one rule.
func Ident(what, v string) (string, error) { return ident(what, v) }

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

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
