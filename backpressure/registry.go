package backpressure

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"sluice/internal/ascii"
)

// Kind is the kind of a policy.
type Kind uint8

// The policy kinds.
const (
	Concurrency Kind = iota + 1
	RateLimit
	// Throttle is not a policy but a pause of admissions under a key
	// until an instant (SetThrottle); it shares the policies' keys.
	Throttle
	// Breaker is not a policy of the registry either: a circuit breaker
	// on a handler, a queue or a key, which the store keeps; it shares
	// the policies' listing.
	Breaker
)

func (k Kind) String() string {
	switch k {
	case Concurrency:
		return "concurrency"
	case RateLimit:
		return "ratelimit"
	case Throttle:
		return "throttle"
	case Breaker:
		return "breaker"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind reads "concurrency", "ratelimit", "throttle" or "breaker" (any
// case).
func ParseKind(s string) (Kind, bool) {
	switch {
	case ascii.EqualFold(s, "concurrency"):
		return Concurrency, true
	case ascii.EqualFold(s, "ratelimit"):
		return RateLimit, true
	case ascii.EqualFold(s, "throttle"):
		return Throttle, true
	case ascii.EqualFold(s, "breaker"):
		return Breaker, true
	}
	return 0, false
}

// Errors returned for invalid policies.
var (
	ErrLimit  = errors.New("limit must be a positive integer")
	ErrPeriod = errors.New("period must be a positive number of milliseconds")
)

// Waiter is whatever the caller registers to be woken when a key may admit
// again. It must be comparable; the registry only stores and returns it.
type Waiter any

// Block says which policy refused an admission.
type Block struct {
	Kind   Kind
	Key    string
	Active int64 // active jobs (concurrency) or admissions in the window (rate limit)
	Limit  int64
	Until  int64 // rate limit and throttle: the first instant the key admits again
}

// String renders the block the way JOBGET's blocked_by shows it.
func (b Block) String() string {
	switch b.Kind {
	case Concurrency:
		return fmt.Sprintf("concurrency:%s %d/%d", b.Key, b.Active, b.Limit)
	case Throttle:
		return fmt.Sprintf("throttled:%s until %d", b.Key, b.Until)
	}
	return fmt.Sprintf("ratelimit:%s until %d", b.Key, b.Until)
}

// Info is a policy with its live usage, as POLICYGET shows it.
type Info struct {
	Kind       Kind
	Key        string
	Limit      int64
	Period     int64 // rate limit only
	Active     int64
	NextFreeAt int64 // rate limit: 0 when the window is not full; throttle: its end
	Blocking   bool  // the policy refuses admissions right now
	// Template is the template ("tenant:*") an instance takes its policy
	// from; empty for an exact policy and for a template itself.
	Template string
	// A breaker's (kind Breaker): its state (closed, open or half-open),
	// cooldown and probes; Limit is its threshold of failures, Period its
	// window, Active the failures in it, NextFreeAt the end of an open
	// breaker's cooldown. ProbesOut are probes reserved and not yet
	// resolved, ProbesOK those that succeeded, in this half-open spell.
	State               string
	Cooldown, Probes    int64
	ProbesOut, ProbesOK int64
}

const numShards = 16

// Registry holds every policy and the live counters of every key in use.
// The zero value is not usable; call New.
type Registry struct {
	shards [numShards]shard
	bytes  atomic.Int64 // estimated memory of the keys' states (see Bytes)
	tm     templates
	// throttles counts the shards' throttle states, so that admissions
	// look none up while there are none.
	throttles atomic.Int64
	thrMu     sync.Mutex // protects thrEnds; taken before a shard's lock
	thrEnds   thrEnds    // the ends of throttles, to forget them (throttle.go)
	// thrFloor is the latest end of a throttle forgotten (sweepThrottles):
	// an admission under a key happens no earlier, for a caller may have
	// read its clock before the throttle ended and was forgotten.
	thrFloor atomic.Int64
}

type shard struct {
	mu   sync.Mutex            // protects conc, rate, thr and insts
	conc map[string]*concState // keys with a policy or active jobs
	rate map[string]*rateState // keys with a rate-limit policy or a live instance of a template
	thr  map[string]*thrState  // throttled keys (some may have ended)
	// ifirst and ilast are the ends of the list of rate-limit instances
	// of templates (linked by rateState.next), for forgetting those whose
	// window emptied (sweep). It may hold states forgotten since.
	ifirst, ilast *rateState
	bytes         *atomic.Int64 // the registry's
	nthr          *atomic.Int64 // the registry's count of throttles
	tm            *templates    // the registry's
	_             [32]byte      // one cache line per shard: no false sharing between locks
}

// Estimates of the memory the registry holds, which Bytes adds up:
// BenchmarkPolicyMemory measures 99 bytes per concurrency key and 179 per
// rate-limit key with a 10-byte key (the state, its policy, its map entry
// and the allocator's rounding; the estimate adds the key's own length to
// these), and 8.9 per admission of a rate limit: 8 per slot of its
// admission times, which grow with use to at most about twice its limit.
// BenchmarkTemplateMemory measures 99 bytes per concurrency instance of a
// template and 147 per rate-limit instance with one admission (which
// shares its template's policy).
const (
	ConcKeyOverhead = 100
	RateKeyOverhead = 170
	InstOverhead    = 130
	AdmissionBytes  = 8
	// ThrottleKeyOverhead is a throttled key's state and map entry.
	ThrottleKeyOverhead = 80
)

// Bytes is the estimated memory of every key's state: concurrency keys
// in use or with a policy, rate-limit policies and instances and their
// admissions, templates and throttles.
func (r *Registry) Bytes() int64 { return r.bytes.Load() + r.tm.bytes() }

// PolicyBytes is what a new policy (or template, or throttle) on key adds
// to Bytes at least.
func PolicyBytes(kind Kind, key string) int64 {
	switch kind {
	case RateLimit:
		return RateKeyOverhead + int64(len(key))
	case Throttle:
		return ThrottleKeyOverhead + int64(len(key))
	}
	return ConcKeyOverhead + int64(len(key))
}

type concState struct {
	limit   int64     // 0: no exact policy
	tmpl    *template // the template covering the key (limit 0 only); nil: none
	active  int64
	holders int64 // Keys holding the state (Hold): it is kept while they do
	waiters map[Waiter]struct{}
	gone    bool // removed from its shard's map: a Keys holding it looks again
}

// unused reports whether the state may leave its shard's map: nothing
// refers to it and it counts nothing.
func (c *concState) unused() bool {
	return c.limit == 0 && c.active == 0 && c.holders == 0 && len(c.waiters) == 0
}

// cap is the key's limit: its exact policy's, else its template's; 0 for
// none.
func (c *concState) cap() int64 {
	if c.limit > 0 {
		return c.limit
	}
	if c.tmpl != nil {
		return c.tmpl.limit
	}
	return 0
}

type rateState struct {
	// pol holds the limit and period: the key's own policy, or the
	// template an instance (inst) follows. Kept apart so that an
	// instance, of which there may be a great many, is small.
	pol *template
	adm []int64 // admission times, ascending; adm[head:] are live
	// clock is the latest time the window was judged at. Callers read
	// their clocks before taking the lock, so a caller may arrive with a
	// time older than one already used; it is judged at clock instead, or
	// a window trimmed for the newer time would count too few for the
	// older one and admit past the limit.
	clock   int64
	waiters map[Waiter]struct{}
	key     string     // instances: the key, to forget it by
	next    *rateState // instances: the next in the shard's list
	prev    *rateState // instances: the previous in the shard's list
	linked  bool       // instances: in the shard's list
	head    int32
	gone    bool // removed from its shard's map: a Keys holding it looks again
	inst    bool // an instance of a template
}

// Keys is a caller's pair of keys with where their state lives, so that
// admitting and releasing jobs of the same keys again and again (a
// store lane's) skips hashing the keys and looking them up. Set CKey and
// RKey; the rest fills in on use. A Keys must not be used from two
// goroutines at once.
type Keys struct {
	CKey, RKey string
	cs, rs     *shard
	c          *concState // checked under cs.mu: nil or gone means look up
	r          *rateState // likewise under rs.mu
	held       *concState // the state Hold counted k on, until Drop
}

// Hold keeps the state of k's concurrency key while k holds it, even when
// the key has no policy and no active job: a caller that admits and
// releases jobs of the same keys again and again (a store lane) would
// otherwise create and delete it every time. Each Hold needs a Drop.
func (r *Registry) Hold(k *Keys) {
	if k.CKey == "" || k.held != nil {
		return
	}
	s := k.concShard(r)
	s.mu.Lock()
	c := k.conc()
	c.holders++
	k.held = c
	s.mu.Unlock()
}

// Drop ends a Hold.
func (r *Registry) Drop(k *Keys) {
	c := k.held
	if c == nil {
		return
	}
	k.held = nil
	s := k.cs
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone { // Reset forgot it meanwhile
		return
	}
	c.holders--
	if c.unused() {
		s.deleteConc(k.CKey, c)
	}
}

// concShard is the registry shard of k's concurrency key.
func (k *Keys) concShard(r *Registry) *shard {
	if k.cs == nil {
		k.cs = r.shard(k.CKey)
	}
	return k.cs
}

// rateShard is the registry shard of k's rate-limit key.
func (k *Keys) rateShard(r *Registry) *shard {
	if k.rs == nil {
		k.rs = r.shard(k.RKey)
	}
	return k.rs
}

// conc returns k's concurrency state, creating it. cs.mu must be held.
func (k *Keys) conc() *concState {
	if k.c == nil || k.c.gone {
		k.c = k.cs.concLocked(k.CKey)
	}
	return k.c
}

// rate returns k's rate-limit state, or nil without a policy. rs.mu must
// be held.
func (k *Keys) rate() *rateState {
	if k.r == nil || k.r.gone {
		k.r = k.rs.rate[k.RKey]
	}
	return k.r
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{}
	r.tm.init()
	for i := range r.shards {
		r.shards[i].conc = make(map[string]*concState)
		r.shards[i].rate = make(map[string]*rateState)
		r.shards[i].thr = make(map[string]*thrState)
		r.shards[i].bytes = &r.bytes
		r.shards[i].tm = &r.tm
		r.shards[i].nthr = &r.throttles
	}
	return r
}

func (r *Registry) shard(key string) *shard {
	// A fixed hash (FNV-1a), so that a key lands in the same shard in
	// every process: the instances of templates a shard lists, and so
	// which of them an admission forgets (sweep), must be the same in a
	// live store, its replay and every node of a group.
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &r.shards[h%numShards]
}

// Admission is Admit's answer.
type Admission struct {
	OK    bool
	Block Block // why not, when !OK
	// Rated is true when an admission was recorded on the rate-limit key
	// (it had a policy), at At. A log records both so replay counts the
	// same.
	Rated bool
	At    int64
	// Floor, when later than now, is the earliest time the admission may
	// be said to happen: a throttle of one of its keys that ended then
	// was forgotten since the caller read its clock.
	Floor int64
	// Wake lists waiters the caller must wake: a refused admission briefly
	// counted the job on its concurrency key, and whoever saw the key full
	// meanwhile is handed back.
	Wake []Waiter
	// Blocks names every key that refuses (AdmitAll only; Block is among
	// them).
	Blocks []Block
}

// Admit decides whether a job with concurrency key ckey and rate-limit key
// rkey (either may be empty) may be reserved at now. When it may, the job is
// counted active on ckey and, if rkey has a policy, an admission is recorded
// at now. When it may not, nothing is counted, w is registered on the
// blocking key, and the block is returned.
func (r *Registry) Admit(now int64, ckey, rkey string, w Waiter) Admission {
	k := Keys{CKey: ckey, RKey: rkey}
	return r.AdmitKeys(now, &k, w)
}

// AdmitKeys is Admit for a cached pair of keys.
func (r *Registry) AdmitKeys(now int64, k *Keys, w Waiter) Admission {
	throttles := r.throttles.Load() > 0
	var floor int64
	if f := r.thrFloor.Load(); now < f && (k.CKey != "" || k.RKey != "") {
		floor = f
	}
	if k.CKey != "" {
		s := k.concShard(r)
		s.mu.Lock()
		if throttles {
			if b, blocked := s.throttled(now, k.CKey, w); blocked {
				s.mu.Unlock()
				return Admission{Block: b}
			}
		}
		c := k.conc()
		if n := c.cap(); n > 0 && c.active >= n {
			b := Block{Kind: Concurrency, Key: k.CKey, Active: c.active, Limit: n}
			addWaiter(&c.waiters, w)
			s.mu.Unlock()
			return Admission{Block: b}
		}
		c.active++
		s.mu.Unlock()
	}
	rated, at := false, int64(0)
	if k.RKey != "" {
		s := k.rateShard(r)
		s.mu.Lock()
		if throttles {
			if b, blocked := s.throttled(now, k.RKey, w); blocked {
				s.mu.Unlock()
				return Admission{Block: b, Wake: r.ReleaseKeys(k)} // undo the tentative count
			}
		}
		rs := k.rate()
		if rs == nil {
			rs = s.instance(k.RKey)
			k.r = rs
		}
		if rs != nil {
			// A refusal drops nothing from the window: only what the log
			// keeps (an admission, a policy change) does, so that a
			// replay holds what the live store held (see trim).
			if b, blocked := rs.peek(now, k.RKey); blocked {
				addWaiter(&rs.waiters, w)
				s.mu.Unlock()
				return Admission{Block: b, Wake: r.ReleaseKeys(k)} // undo the tentative count
			}
			at = rs.at(now)
			s.trim(rs, at)
			s.record(rs, at)
			rated = true
			if rs.inst {
				s.sweep(at)
			}
		}
		s.mu.Unlock()
	}
	return Admission{OK: true, Rated: rated, At: at, Floor: floor}
}

// Take counts a job active on ckey and records an admission at now on rkey
// (if it has a policy; pass "" when the logged admission recorded none)
// without checking limits. Replay uses it to restore decided outcomes.
func (r *Registry) Take(now int64, ckey, rkey string) {
	if ckey != "" {
		s := r.shard(ckey)
		s.mu.Lock()
		s.concLocked(ckey).active++
		s.mu.Unlock()
	}
	if rkey != "" {
		s := r.shard(rkey)
		s.mu.Lock()
		rs := s.rate[rkey]
		if rs == nil {
			rs = s.instance(rkey)
		}
		if rs != nil {
			t := rs.at(now)
			s.trim(rs, t)
			s.record(rs, t)
			if rs.inst {
				s.sweep(t)
			}
		}
		s.mu.Unlock()
	}
}

// Release ends one active job on ckey. If the key may now admit, the waiters
// registered on it are returned (and forgotten): the caller wakes them.
func (r *Registry) Release(ckey string) []Waiter {
	k := Keys{CKey: ckey}
	return r.ReleaseKeys(&k)
}

// ReleaseKeys is Release for a cached pair of keys (its concurrency key).
func (r *Registry) ReleaseKeys(k *Keys) []Waiter {
	if k.CKey == "" {
		return nil
	}
	s := k.concShard(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.c == nil || k.c.gone {
		k.c = s.conc[k.CKey]
	}
	c := k.c
	if c == nil || c.active == 0 {
		return nil // a release without a matching admission; nothing to do
	}
	c.active--
	var ws []Waiter
	if n := c.cap(); n == 0 || c.active < n {
		ws = takeWaiters(&c.waiters)
	}
	if c.unused() {
		s.deleteConc(k.CKey, c)
	}
	return ws
}

// Check reports, without counting anything, whether a job with these keys
// would be refused at now, and by which policy (concurrency first).
func (r *Registry) Check(now int64, ckey, rkey string) (Block, bool) {
	throttles := r.throttles.Load() > 0
	if ckey != "" {
		s := r.shard(ckey)
		s.mu.Lock()
		if throttles {
			if b, blocked := s.throttled(now, ckey, nil); blocked {
				s.mu.Unlock()
				return b, true
			}
		}
		c := s.conc[ckey]
		if c != nil && c.cap() > 0 && c.active >= c.cap() {
			b := Block{Kind: Concurrency, Key: ckey, Active: c.active, Limit: c.cap()}
			s.mu.Unlock()
			return b, true
		}
		s.mu.Unlock()
	}
	if rkey != "" {
		s := r.shard(rkey)
		s.mu.Lock()
		defer s.mu.Unlock()
		if throttles {
			if b, blocked := s.throttled(now, rkey, nil); blocked {
				return b, true
			}
		}
		if rs := s.rate[rkey]; rs != nil {
			return rs.peek(now, rkey)
		}
	}
	return Block{}, false
}

// CountBytes recounts what Bytes keeps, for consistency checks.
func (r *Registry) CountBytes() int64 {
	var n int64
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k := range s.conc {
			n += PolicyBytes(Concurrency, k)
		}
		for k, rs := range s.rate {
			n += rs.bytes(k)
		}
		for k := range s.thr {
			n += PolicyBytes(Throttle, k)
		}
		s.mu.Unlock()
	}
	return n + r.tm.bytes()
}

// Active is the number of active jobs counted on a concurrency key.
func (r *Registry) Active(ckey string) int64 {
	s := r.shard(ckey)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conc[ckey]; c != nil {
		return c.active
	}
	return 0
}

// Holders returns, for every concurrency key whose state is held (Hold),
// how many Keys hold it; for consistency checks.
func (r *Registry) Holders() map[string]int64 {
	out := map[string]int64{}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, c := range s.conc {
			if c.holders > 0 {
				out[k] = c.holders
			}
		}
		s.mu.Unlock()
	}
	return out
}

// SetConcurrency creates or changes a concurrency policy. Lowering a limit
// evicts nobody. The waiters of the key are returned to be woken. key must
// not be a template (SetTemplate).
func (r *Registry) SetConcurrency(key string, limit int64) ([]Waiter, error) {
	if limit < 1 {
		return nil, ErrLimit
	}
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.concLocked(key)
	c.limit = limit
	return takeWaiters(&c.waiters), nil
}

// SetRateLimit creates or changes a rate-limit policy at now. Admissions
// still inside the old window at now are kept and judged against the new
// limit and period. (Trimming to the old window first makes the result
// independent of when the window was last looked at.)
func (r *Registry) SetRateLimit(now int64, key string, limit, period int64) ([]Waiter, error) {
	if limit < 1 {
		return nil, ErrLimit
	}
	if period < 1 {
		return nil, ErrPeriod
	}
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.rate[key]
	if rs == nil {
		rs = &rateState{}
		s.rate[key] = rs
		s.bytes.Add(PolicyBytes(RateLimit, key))
	} else {
		s.trim(rs, rs.at(now))
		if rs.inst {
			s.bytes.Add(RateKeyOverhead - InstOverhead)
		}
	}
	// An instance becomes the exact policy, its window kept.
	if rs.linked {
		s.unlink(rs) // the list holds instances only
	}
	rs.pol, rs.inst = &template{kind: RateLimit, key: key, limit: limit, period: period}, false
	return takeWaiters(&rs.waiters), nil
}

// Delete removes a policy. Deleting a rate limit forgets its admissions. It
// reports whether a policy existed, and returns the key's waiters.
func (r *Registry) Delete(kind Kind, key string) (bool, []Waiter) {
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case Concurrency:
		c := s.conc[key]
		if c == nil || c.limit == 0 {
			return false, nil
		}
		c.limit = 0
		c.tmpl = r.tm.lookup(Concurrency, key) // a template takes the key over
		ws := takeWaiters(&c.waiters)
		if c.unused() {
			s.deleteConc(key, c)
		}
		return true, ws
	case RateLimit:
		rs := s.rate[key]
		if rs == nil || rs.inst {
			return false, nil
		}
		s.deleteRate(key, rs)
		return true, takeWaiters(&rs.waiters)
	}
	return false, nil
}

// Get returns a policy with its live usage at now: an exact policy, a
// template (by its own key, "tenant:*"), the template a key falls under
// (Template set), or the key's throttle (kind Throttle, while it lasts).
func (r *Registry) Get(now int64, kind Kind, key string) (Info, bool) {
	if IsTemplate(key) && kind != Throttle {
		return r.tm.info(kind, key)
	}
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.infoLocked(now, kind, key)
	if !ok && kind != Throttle {
		if t := r.tm.lookup(kind, key); t != nil {
			info, ok = Info{Kind: kind, Key: key, Limit: t.limit, Period: t.period, Template: t.key}, true
		}
	}
	return info, ok
}

// List returns every policy, sorted by kind then key: exact policies,
// templates, their live instances (a concurrency key with queued or active
// jobs, a rate-limit key with admissions in its window) and the throttles
// in force.
func (r *Registry) List(now int64) []Info {
	out := r.tm.list()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, c := range s.conc {
			// An instance is live while a job holds its key: a lane
			// (Hold) or an active job.
			if c.limit > 0 || (c.tmpl != nil && (c.active > 0 || c.holders > 0)) {
				info, _ := s.infoLocked(now, Concurrency, k)
				out = append(out, info)
			}
		}
		for k := range s.rate {
			if info, _ := s.infoLocked(now, RateLimit, k); info.Template == "" || info.Active > 0 {
				out = append(out, info)
			}
		}
		for k := range s.thr {
			if info, ok := s.infoLocked(now, Throttle, k); ok {
				out = append(out, info)
			}
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Reset forgets every policy and counter.
func (r *Registry) Reset() {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for _, c := range s.conc {
			c.gone = true
		}
		for _, rs := range s.rate {
			rs.gone = true
		}
		s.conc = make(map[string]*concState)
		s.rate = make(map[string]*rateState)
		s.thr = make(map[string]*thrState)
		s.ifirst, s.ilast = nil, nil
		s.mu.Unlock()
	}
	r.tm.reset()
	r.thrMu.Lock()
	r.thrEnds = nil
	r.thrFloor.Store(0)
	r.thrMu.Unlock()
	r.throttles.Store(0)
	r.bytes.Store(0)
}

// Lock must be held.
func (s *shard) concLocked(key string) *concState {
	c := s.conc[key]
	if c == nil {
		c = &concState{tmpl: s.tm.lookup(Concurrency, key)}
		s.conc[key] = c
		s.bytes.Add(PolicyBytes(Concurrency, key))
	}
	return c
}

// deleteConc forgets c, key's unused state. Lock must be held.
func (s *shard) deleteConc(key string, c *concState) {
	c.gone = true
	delete(s.conc, key)
	s.bytes.Add(-PolicyBytes(Concurrency, key))
}

// Lock must be held.
func (s *shard) infoLocked(now int64, kind Kind, key string) (Info, bool) {
	switch kind {
	case Concurrency:
		c := s.conc[key]
		if c == nil || c.cap() == 0 {
			return Info{}, false
		}
		info := Info{Kind: Concurrency, Key: key, Limit: c.cap(), Active: c.active,
			Blocking: c.active >= c.cap()}
		if c.limit == 0 {
			info.Template = c.tmpl.key
		}
		return info, true
	case RateLimit:
		rs := s.rate[key]
		if rs == nil {
			return Info{}, false
		}
		b, blocked := rs.peek(now, key)
		_, n := rs.live(now)
		info := Info{Kind: RateLimit, Key: key, Limit: rs.pol.limit, Period: rs.pol.period,
			Active: n, Blocking: blocked}
		if blocked {
			info.NextFreeAt = b.Until
		}
		if rs.inst {
			info.Template = rs.pol.key
		}
		return info, true
	case Throttle:
		t := s.thr[key]
		if t == nil || t.until <= now {
			return Info{}, false
		}
		return Info{Kind: Throttle, Key: key, NextFreeAt: t.until, Blocking: true}, true
	}
	return Info{}, false
}

// peek reports whether rs's window is full at now (or at its clock, if
// later) without dropping what left it: reads (POLICYGET, blocked_by, the
// dump) judge the window this way, so that they never change what a node
// holds or counts, nor its clock: only what the log keeps moves that (a
// refusal needs not: a window full at a time is full at every earlier one
// with no admission between).
func (rs *rateState) peek(now int64, key string) (Block, bool) {
	live, n := rs.live(now)
	limit := rs.pol.limit
	if n < limit {
		return Block{}, false
	}
	// The window admits again once the (n-limit+1)th oldest admission has
	// left it: at that admission's time + period.
	until := live[int(n-limit)] + rs.pol.period
	return Block{Kind: RateLimit, Key: key, Active: n, Limit: limit, Until: until}, true
}

// live is the admissions in rs's window at now (or at its clock, if
// later), oldest first, and how many. Lock must be held.
func (rs *rateState) live(now int64) ([]int64, int64) {
	now = max(now, rs.clock)
	held := rs.adm[rs.head:]
	first := sort.Search(len(held), func(i int) bool { return held[i] > now-rs.pol.period })
	return held[first:], int64(len(held) - first)
}

func (rs *rateState) count() int64 { return int64(len(rs.adm) - int(rs.head)) }

// at is the time to judge the window at: now, or the latest time already
// used if that is later.
func (rs *rateState) at(now int64) int64 {
	if now > rs.clock {
		rs.clock = now
	}
	return rs.clock
}

// trim drops admissions that have left rs's window (now - period, now]
// and counts the memory they held no more. --maxmemory counts the
// admissions held (8 bytes each), not the capacity of the slice they sit
// in, and only what the log keeps (an admission, a policy change) trims,
// never a read or a refusal: so what a window holds, and the count, are
// the same on every node of a group and in every replay, whatever was read
// where. Lock must be held.
func (s *shard) trim(rs *rateState, now int64) {
	before := rs.count()
	rs.trim(now)
	if dropped := before - rs.count(); dropped > 0 && !rs.gone {
		s.bytes.Add(-AdmissionBytes * dropped)
	}
}

// trim drops admissions that have left the window (now - period, now].
func (rs *rateState) trim(now int64) {
	for int(rs.head) < len(rs.adm) && rs.adm[rs.head] <= now-rs.pol.period {
		rs.head++
	}
	if rs.head > 32 && int(rs.head)*2 >= len(rs.adm) {
		n := copy(rs.adm, rs.adm[rs.head:])
		rs.adm = rs.adm[:n]
		rs.head = 0
	}
}

// record adds an admission at t to rs, which callers take from at (so
// times only grow), and counts the memory its times grew by. Lock must be
// held.
func (s *shard) record(rs *rateState, t int64) {
	rs.adm = append(rs.adm, t)
	if !rs.gone {
		s.bytes.Add(AdmissionBytes)
	}
}

func addWaiter(m *map[Waiter]struct{}, w Waiter) {
	if w == nil {
		return
	}
	if *m == nil {
		*m = make(map[Waiter]struct{}, 1)
	}
	(*m)[w] = struct{}{}
}

func takeWaiters(m *map[Waiter]struct{}) []Waiter {
	if len(*m) == 0 {
		return nil
	}
	ws := make([]Waiter, 0, len(*m))
	for w := range *m {
		ws = append(ws, w)
	}
	*m = nil
	return ws
}

// Admissions returns the admission times a rate-limit key holds (those
// still in its window when an admission or a policy change last judged
// it: a read trims nothing, see trim), and the latest time its window was
// judged at (its clock), for snapshots: a read changes neither. ok is false
// when the key has no rate state (no policy, no live instance). now is
// unused.
func (r *Registry) Admissions(now int64, key string) (times []int64, clock int64, ok bool) {
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.rate[key]
	if rs == nil {
		return nil, 0, false
	}
	return append([]int64(nil), rs.adm[rs.head:]...), rs.clock, true
}

// RateKeys lists every key with a rate state, for snapshots: the keys of
// policies, sorted, then each shard's instances of templates (idle or not)
// in the order of its list, which decides which idle ones are forgotten
// first (sweep): a store that restores them in this order (each instance
// joins the end of its shard's list) forgets the same ones as this one.
func (r *Registry) RateKeys() []string {
	var exact, inst []string
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, rs := range s.rate {
			if !rs.inst {
				exact = append(exact, k)
			}
		}
		for rs := s.ifirst; rs != nil; rs = rs.next {
			inst = append(inst, rs.key)
		}
		s.mu.Unlock()
	}
	sort.Strings(exact)
	return append(exact, inst...)
}

// RestoreAdmissions records the given admission times on a rate-limit key
// that has a policy or falls under a template, and raises its clock to
// clock, for loading snapshots.
func (r *Registry) RestoreAdmissions(key string, times []int64, clock int64) {
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.rate[key]
	if rs == nil {
		rs = s.instance(key)
	}
	if rs != nil {
		for _, t := range times { // ascending, as Admissions gave them
			s.record(rs, rs.at(t))
		}
		rs.at(clock)
	}
}

// bytes is the estimated memory of key's rate state.
func (rs *rateState) bytes(key string) int64 {
	n := int64(RateKeyOverhead)
	if rs.inst {
		n = InstOverhead
	}
	return n + int64(len(key)) + AdmissionBytes*rs.count()
}
