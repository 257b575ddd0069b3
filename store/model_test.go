package store_test

// A deliberately naive reference model of the store, written for
// obviousness, not speed: one slice of every job held, linear scans, and a
// full maintenance pass over all jobs at the start of every operation, as
// docs/semantics.md describes it. It shares nothing with the store but the
// exported types and errors; it keeps its own policy counters and rate
// windows (it does not use backpressure.Registry). The differential tests
// run it side by side with the store and demand identical replies.

import (
	"bytes"
	"slices"
	"sort"
	"strings"

	"sluice/backpressure"
	"sluice/store"
)

const (
	modelDefaultRetention     = 60 * 60 * 1000
	modelDefaultMaxRetained   = 100000
	modelDefaultFailedRet     = 7 * 24 * 60 * 60 * 1000
	modelDefaultMaxFailed     = 1_000_000
	modelDefaultExpiredTokens = 100000
	modelMaxIdentifier        = 1024
	modelDefaultIdemWindow    = 24 * 60 * 60 * 1000
	modelDefaultIdemKeys      = 1_000_000
)

// mkey is a remembered idempotency key: the job id its first push answered
// and when.
type mkey struct {
	id string
	at int64
	// A unique key (UNIQUE): its scope (store.ScopeNone: an idempotency
	// key) and TTL end (0: none).
	scope  store.UniqueScope
	until  int64
	holder *mjob // the job itself: its id may be reused once it is dropped
}

// mjob is one job held by the model.
type mjob struct {
	job store.Job // the record as JOBGET shows it (BlockedBy is computed on read)

	pushSeq     int64  // order of the push
	entry       int64  // order of the latest entry into queued (smaller = earlier)
	dueSeq      int64  // order in which the current due time (expires_at or run_at) was set
	token       string // the current reservation's token, while reserved or running
	lastToken   string // the token of the job's latest reservation, however it ended
	terminalAt  int64  // when the job became terminal
	terminalSeq int64  // order in which it became terminal
	timed       bool   // it became terminal by a timer (a deadline, a timeout)
	lapseAt     int64  // while waiting with a deadline: when it expires (the deadline, or when it began to wait if later)
	timeoutAt   int64  // while reserved or running with a timeout: when the attempt times out
	// The states the job has been in, as noteStates saw them after each
	// operation: a unique key's scope is left for good.
	wasReserved, wasRetryPending, wasTerminal bool
	// While waiting: the jobs it still waits for, in the order named,
	// and ANYWAY (model_deps_test.go).
	waits  []*mjob
	anyway bool
	batch  *mbatch // its batch, until it ends (model_batch_test.go)
}

type expiredToken struct {
	token string
	at    int64 // when its lease expired
}

// maybeExpired answers for a token whose lease expired at the same instant
// as others on the edge of the ExpiredTokens memory: "the most recent N" does
// not say which of the simultaneous ones are kept, so the store may answer
// EXPIRED or what it would say of a forgotten token (otherwise).
type maybeExpired struct{ otherwise error }

func (e *maybeExpired) Error() string { return "EXPIRED or " + e.otherwise.Error() }

type mcounters struct {
	pushed, succeeded, failed int64
}

type mrate struct {
	limit, period int64
	adm           []int64 // admission times, oldest first
}

type model struct {
	retention     int64
	maxRetained   int
	failedRet     int64 // failed jobs' own retention and bound
	maxFailed     int
	expiredTokens int
	maxJobs       int64
	idemWindow    int64
	idemKeys      int
	gen           store.Generator

	jobs     []*mjob // every job held, in no particular order
	seq      int64   // source of the pushSeq, entry, dueSeq and terminalSeq orders
	paused   map[string]bool
	counters map[string]*mcounters
	conc     map[string]int64   // concurrency policies and templates ("t:*"): key → limit
	rate     map[string]*mrate  // rate-limit policies and templates
	inst     map[string][]int64 // admissions of rate-limit keys that follow a template, oldest first
	thr      map[string]int64   // throttles: key → end (ended ones may stay)
	expired  []expiredToken     // every lease expired since the last Flush
	keys     map[string]mkey    // idempotency keys remembered, unique keys held
	// uniqueUntilTerminal is a bug for TestDifferentialDetects: every
	// unique key is held until its job is terminal.
	uniqueUntilTerminal bool

	// Fair groups (docs/semantics.md): the turn of each queue's last
	// reservation, each group's next turn (meaningful while a job of the
	// group is held), the weights set, and each worker's last queue of a
	// round-robin reserve.
	qturn   map[string]uint64
	gturn   map[[2]string]uint64 // by queue and group
	weights map[string]int64
	rr      map[string]string

	brk map[string]*mbrk // circuit breakers, by key (model_breaker_test.go)

	timedEnd bool // a timer is ending the job made terminal

	ends []mend // jobs that ended with waiters to resolve (model_deps_test.go)

	// Batches (model_batch_test.go): by id, the complete ones in
	// completion order, those whose callbacks are to push, and the bounds.
	batches      map[string]*mbatch
	doneBatches  []*mbatch
	callbacks    []*mbatch
	maxBatches   int
	maxBatchJobs int64
}

func newModel(cfg store.Config, gen store.Generator) *model {
	m := &model{
		retention:     cfg.Retention,
		maxRetained:   cfg.MaxRetained,
		failedRet:     cfg.FailedRetention,
		maxFailed:     cfg.MaxFailed,
		expiredTokens: cfg.ExpiredTokens,
		maxJobs:       cfg.MaxJobs,
		idemWindow:    cfg.IdempotencyWindow,
		idemKeys:      cfg.IdempotencyKeys,
		gen:           gen,
		maxBatches:    cfg.MaxBatches,
		maxBatchJobs:  cfg.MaxBatchJobs,
	}
	if m.idemWindow <= 0 {
		m.idemWindow = modelDefaultIdemWindow
	}
	if m.idemKeys <= 0 {
		m.idemKeys = modelDefaultIdemKeys
	}
	if m.retention <= 0 {
		m.retention = modelDefaultRetention
	}
	if m.maxRetained <= 0 {
		m.maxRetained = modelDefaultMaxRetained
	}
	if m.failedRet <= 0 {
		m.failedRet = modelDefaultFailedRet
	}
	if m.maxFailed <= 0 {
		m.maxFailed = modelDefaultMaxFailed
	}
	if m.expiredTokens <= 0 {
		m.expiredTokens = modelDefaultExpiredTokens
	}
	m.reset()
	return m
}

func (m *model) reset() {
	m.jobs = nil
	m.paused = map[string]bool{}
	m.counters = map[string]*mcounters{}
	m.conc = map[string]int64{}
	m.rate = map[string]*mrate{}
	m.inst = map[string][]int64{}
	m.thr = map[string]int64{}
	m.expired = nil
	m.keys = map[string]mkey{}
	m.qturn = map[string]uint64{}
	m.gturn = map[[2]string]uint64{}
	m.weights = map[string]int64{}
	m.rr = map[string]string{}
	m.brk = map[string]*mbrk{}
	m.ends = nil
	m.batches, m.doneBatches, m.callbacks = map[string]*mbatch{}, nil, nil
}

// groupHeld reports whether a job of group g of queue q is held.
func (m *model) groupHeld(q, g string) bool {
	for _, j := range m.jobs {
		if j.job.Queue == q && j.job.Group == g {
			return true
		}
	}
	return false
}

// turnBefore: turns are compared on a circle, as the store does.
func turnBefore(a, b uint64) bool { return int64(a-b) < 0 }

func (m *model) next() int64 { m.seq++; return m.seq }

func (m *model) find(id string) *mjob {
	for _, j := range m.jobs {
		if j.job.ID == id {
			return j
		}
	}
	return nil
}

func (m *model) counter(queue string) *mcounters {
	c := m.counters[queue]
	if c == nil {
		c = &mcounters{}
		m.counters[queue] = c
	}
	return c
}

// ident trims an identifier (queue, handler, job id, worker, policy key) and
// reports whether it is valid: not empty, at most 1024 bytes.
func ident(s *string) bool {
	*s = strings.TrimSpace(*s)
	return *s != "" && len(*s) <= modelMaxIdentifier
}

// optIdent is ident for an identifier that may be absent (empty).
func optIdent(s *string) bool {
	*s = strings.TrimSpace(*s)
	return len(*s) <= modelMaxIdentifier
}

// ---- maintenance ----------------------------------------------------------

// maintain applies everything due at now: expired leases and due timers move
// their jobs to queued (ordered by due time, then by the order the due times
// were set), retention drops terminal jobs, rate windows slide, and queues
// that no longer exist lose their counters.
func (m *model) maintain(now int64) {
	m.settle() // the last operation's own ends
	m.noteStates()
	type due struct {
		j   *mjob
		at  int64
		seq int64
	}
	// One event at a time, the earliest first: an event may make another
	// due at once (a lease that ends after the job's deadline). Then the
	// jobs waiting for those the events ended are resolved, which may
	// schedule some at a time already past: a further round runs them.
	for round := true; round; round = len(m.ends) > 0 && m.settleDue() {
		for {
			var first *due
			for _, j := range m.jobs {
				at, ok := m.dueAt(j)
				if !ok || at > now {
					continue
				}
				if first == nil || at < first.at || (at == first.at && j.dueSeq < first.seq) {
					first = &due{j, at, j.dueSeq}
				}
			}
			if first == nil {
				break
			}
			j, at := first.j, first.at
			switch j.job.State {
			case store.Reserved, store.Running:
				m.brkOutcome(at, j, false)
				m.expired = append(m.expired, expiredToken{j.token, at})
				if j.timeoutAt != 0 && at >= j.timeoutAt {
					m.timedEnd = true
					m.failAttempt(at, j, store.FailOptions{Error: store.TimeoutError, HasError: true})
					m.timedEnd = false
					continue
				}
				j.token = ""
				j.timeoutAt = 0
				j.job.Worker = ""
				j.job.ExpiresAt = 0
				j.job.RunAt = at
			default:
				if j.lapseAt != 0 && (j.job.State == store.Queued || j.job.State == store.Waiting || j.lapseAt <= j.job.RunAt) {
					j.lapseAt = 0
					m.timedEnd = true
					m.makeTerminal(at, j, store.Expired)
					m.timedEnd = false
					continue
				}
			}
			j.job.State = store.Queued
			j.job.UpdatedAt = at
			j.entry = m.next()
			m.waitFrom(at, j)
		}
	}

	kept := m.jobs[:0]
	for _, j := range m.jobs {
		if j.job.State.Terminal() && j.terminalAt+m.retentionOf(j) <= now {
			continue
		}
		kept = append(kept, j)
	}
	clear(m.jobs[len(kept):])
	m.jobs = kept
	m.forgetBatches(now)

	for _, r := range m.rate {
		r.adm = slide(r.adm, now, r.period)
	}
	for k, adm := range m.inst {
		if _, r := m.rateTemplate(k); r != nil {
			m.inst[k] = slide(adm, now, r.period)
		}
	}
	m.forgetVanishedQueues()
}

// queueExists: a queue exists while it holds any job or is paused.
func (m *model) queueExists(q string) bool {
	if m.paused[q] {
		return true
	}
	for _, j := range m.jobs {
		if j.job.Queue == q {
			return true
		}
	}
	return false
}

func (m *model) forgetVanishedQueues() {
	for q := range m.counters {
		if !m.queueExists(q) {
			delete(m.counters, q)
		}
	}
}

// dueAt is when j's next timed event comes: a lease's end (or its
// timeout's), a run time, a deadline.
func (m *model) dueAt(j *mjob) (int64, bool) {
	switch j.job.State {
	case store.Reserved, store.Running:
		return j.job.ExpiresAt, true
	case store.Scheduled, store.RetryPending:
		if j.lapseAt != 0 && j.lapseAt < j.job.RunAt {
			return j.lapseAt, true
		}
		return j.job.RunAt, true
	case store.Queued, store.Waiting:
		return j.lapseAt, j.lapseAt != 0
	}
	return 0, false
}

// waitFrom notes that j began to wait for a reservation at now: its
// deadline, if any, expires it then, or at once if it has passed.
func (m *model) waitFrom(now int64, j *mjob) {
	j.lapseAt = 0
	if j.job.Deadline != 0 {
		j.lapseAt = max(j.job.Deadline, now)
		if j.job.State == store.Queued || j.job.State == store.Waiting {
			j.dueSeq = m.next()
		}
	}
}

// retentionOf is how long terminal j is kept: failed jobs have their own.
func (m *model) retentionOf(j *mjob) int64 {
	if j.job.State == store.Failed {
		return m.failedRet
	}
	return m.retention
}

// makeTerminal moves j into a terminal state and enforces MaxRetained.
func (m *model) makeTerminal(now int64, j *mjob, s store.State) {
	j.job.State = s
	j.job.UpdatedAt = now
	j.job.Worker = ""
	j.job.ExpiresAt = 0
	j.token = ""
	j.lapseAt, j.timeoutAt = 0, 0
	j.timed = m.timedEnd
	j.terminalAt = now
	j.terminalSeq = m.next()
	j.wasTerminal = true // MaxRetained may drop it before noteStates sees it
	m.ended(now, j)
	m.batchEnded(now, j)
	switch s {
	case store.Succeeded:
		m.counter(j.job.Queue).succeeded++
	case store.Failed:
		m.counter(j.job.Queue).failed++
	}
	m.enforceMaxRetained()
}

func (m *model) enforceMaxRetained() {
	m.enforceMax(false, m.maxRetained)
	m.enforceMax(true, m.maxFailed)
	m.forgetVanishedQueues()
}

// enforceMax drops the oldest terminal jobs, failed ones or the others,
// past max.
func (m *model) enforceMax(failed bool, max int) {
	for {
		var term []*mjob
		for _, j := range m.jobs {
			if j.job.State.Terminal() && (j.job.State == store.Failed) == failed {
				term = append(term, j)
			}
		}
		if len(term) <= max {
			break
		}
		// Oldest first: by the time they became terminal; at one instant,
		// jobs timers ended first, by id; then the others, in the order
		// they became terminal (docs/semantics.md "Retention and limits").
		sort.Slice(term, func(a, b int) bool {
			x, y := term[a], term[b]
			switch {
			case x.terminalAt != y.terminalAt:
				return x.terminalAt < y.terminalAt
			case x.timed != y.timed:
				return x.timed
			case x.timed:
				return x.job.ID < y.job.ID
			}
			return x.terminalSeq < y.terminalSeq
		})
		m.drop(term[0])
	}
}

func (m *model) drop(d *mjob) {
	var kept []*mjob
	for _, j := range m.jobs {
		if j != d {
			kept = append(kept, j)
		}
	}
	m.jobs = kept
}

func (m *model) enqueue(now int64, j *mjob) {
	j.job.State = store.Queued
	j.job.RunAt = now
	j.job.UpdatedAt = now
	j.job.Worker = ""
	j.job.ExpiresAt = 0
	j.token = ""
	j.timeoutAt = 0
	j.entry = m.next()
	m.waitFrom(now, j)
}

// ---- policies -------------------------------------------------------------

// slide keeps the admissions in (now-period, ...].
func slide(adm []int64, now, period int64) []int64 {
	live := adm[:0]
	for _, a := range adm {
		if a > now-period {
			live = append(live, a)
		}
	}
	return live
}

// isTemplate: a policy key ending in '*' is a template for every key that
// starts with what comes before it.
func isTemplate(key string) bool { return strings.HasSuffix(key, "*") }

// longestTemplate is the template among keys covering key with the longest
// prefix, or "".
func longestTemplate[V any](policies map[string]V, key string) string {
	best := ""
	for t := range policies {
		if isTemplate(t) && strings.HasPrefix(key, strings.TrimSuffix(t, "*")) && len(t) > len(best) {
			best = t
		}
	}
	return best
}

// concLimit is key's concurrency limit: its own policy's, else its
// template's (named), else none.
func (m *model) concLimit(key string) (limit int64, tmpl string, ok bool) {
	if l, ok := m.conc[key]; ok && !isTemplate(key) {
		return l, "", true
	}
	if t := longestTemplate(m.conc, key); t != "" {
		return m.conc[t], t, true
	}
	return 0, "", false
}

// rateTemplate is the template key's rate window follows, when it has no
// policy of its own.
func (m *model) rateTemplate(key string) (string, *mrate) {
	t := longestTemplate(m.rate, key)
	if t == "" {
		return "", nil
	}
	return t, m.rate[t]
}

// rateOf is key's rate limit, period and admissions: its own policy's,
// else its template's with its own window.
func (m *model) rateOf(key string) (limit, period int64, adm []int64, tmpl string, ok bool) {
	if r := m.rate[key]; r != nil && !isTemplate(key) {
		return r.limit, r.period, r.adm, "", true
	}
	if t, r := m.rateTemplate(key); r != nil {
		return r.limit, r.period, m.inst[key], t, true
	}
	return 0, 0, nil, "", false
}

// admit records an admission at now on key's window, if it has a limit.
func (m *model) admit(now int64, key string) {
	if key == "" {
		return
	}
	if r := m.rate[key]; r != nil && !isTemplate(key) {
		r.adm = append(r.adm, now)
	} else if t, _ := m.rateTemplate(key); t != "" {
		m.inst[key] = append(m.inst[key], now)
	}
}

// forgetOrphans drops the windows of keys no template covers any more.
func (m *model) forgetOrphans() {
	for k := range m.inst {
		if t, _ := m.rateTemplate(k); t == "" || (m.rate[k] != nil && !isTemplate(k)) {
			delete(m.inst, k)
		}
	}
}

func (m *model) throttleBlock(now int64, key string) (backpressure.Block, bool) {
	if key == "" || m.thr[key] <= now {
		return backpressure.Block{}, false
	}
	return backpressure.Block{Kind: backpressure.Throttle, Key: key, Until: m.thr[key]}, true
}

// active counts reserved and running jobs with concurrency key key.
func (m *model) active(key string) int64 {
	var n int64
	for _, j := range m.jobs {
		if slices.Contains(mCKeys(j), key) && (j.job.State == store.Reserved || j.job.State == store.Running) {
			n++
		}
	}
	return n
}

// window returns the admissions of r in (now-period, now], oldest first.
func (r *mrate) window(now int64) []int64 {
	var w []int64
	for _, a := range r.adm {
		if a > now-r.period && a <= now {
			w = append(w, a)
		}
	}
	return w
}

func (m *model) concBlock(key string) (backpressure.Block, bool) {
	if key == "" {
		return backpressure.Block{}, false
	}
	limit, _, ok := m.concLimit(key)
	if !ok {
		return backpressure.Block{}, false
	}
	n := m.active(key)
	if n < limit {
		return backpressure.Block{}, false
	}
	return backpressure.Block{Kind: backpressure.Concurrency, Key: key, Active: n, Limit: limit}, true
}

func (m *model) rateBlock(now int64, key string) (backpressure.Block, bool) {
	if key == "" {
		return backpressure.Block{}, false
	}
	limit, period, adm, _, ok := m.rateOf(key)
	if !ok {
		return backpressure.Block{}, false
	}
	w := (&mrate{limit: limit, period: period, adm: adm}).window(now)
	n := int64(len(w))
	if n < limit {
		return backpressure.Block{}, false
	}
	until := w[n-limit] + period
	return backpressure.Block{Kind: backpressure.RateLimit, Key: key, Active: n, Limit: limit, Until: until}, true
}

// policyBlock says what refuses j now: a throttle of its concurrency key,
// its concurrency limit, a throttle of its rate-limit key, its rate limit,
// in that order (docs/semantics.md).
func (m *model) policyBlock(now int64, j *mjob) (backpressure.Block, bool) {
	bs := m.policyBlocks(now, j)
	if len(bs) == 0 {
		return backpressure.Block{}, false
	}
	return bs[0], true
}

// mCKeys and mRKeys are every key of each kind of j.
func mCKeys(j *mjob) []string {
	if j.job.ConcurrencyKeys != nil {
		return j.job.ConcurrencyKeys
	}
	if j.job.ConcurrencyKey == "" {
		return nil
	}
	return []string{j.job.ConcurrencyKey}
}

func mRKeys(j *mjob) []string {
	if j.job.RateLimitKeys != nil {
		return j.job.RateLimitKeys
	}
	if j.job.RateLimitKey == "" {
		return nil
	}
	return []string{j.job.RateLimitKey}
}

// policyBlocks is every key that refuses j now: each concurrency key (its
// throttle, else its cap), then each rate-limit key (its throttle, else
// its window), in the job's order (docs/semantics.md, "Several keys per
// job").
func (m *model) policyBlocks(now int64, j *mjob) []backpressure.Block {
	var out []backpressure.Block
	for _, k := range mCKeys(j) {
		if b, ok := m.throttleBlock(now, k); ok {
			out = append(out, b)
		} else if b, ok := m.concBlock(k); ok {
			out = append(out, b)
		}
	}
	for _, k := range mRKeys(j) {
		if b, ok := m.throttleBlock(now, k); ok {
			out = append(out, b)
		} else if b, ok := m.rateBlock(now, k); ok {
			out = append(out, b)
		}
	}
	return out
}

func (m *model) blockedBy(now int64, j *mjob) string {
	if j.job.State != store.Queued {
		return ""
	}
	// The documents do not rank a pause against a policy; the store names
	// the pause, the reason that outlasts any policy change.
	if m.paused[j.job.Queue] {
		return "paused"
	}
	if r := m.breakerBlock(now, j); r != "" {
		return r
	}
	if bs := m.policyBlocks(now, j); len(bs) > 0 {
		if j.job.ConcurrencyKeys == nil && j.job.RateLimitKeys == nil {
			return bs[0].String() // one key of each: the first refusal
		}
		words := make([]string, len(bs))
		for i, b := range bs {
			words[i] = b.String()
		}
		return strings.Join(words, ", ")
	}
	return ""
}

func (m *model) view(now int64, j *mjob) store.Job {
	out := j.job
	out.Payload = bytes.Clone(j.job.Payload)
	out.BlockedBy = m.blockedBy(now, j)
	afterView(j, &out)
	return out
}

// ---- tokens ---------------------------------------------------------------

// byToken finds the job whose current reservation is tok. to names the state
// the operation would move the job to, for the WRONGSTATE of a cancelled
// job's last token.
func (m *model) byToken(tok string, to store.State) (*mjob, error) {
	for _, j := range m.jobs {
		if j.token != "" && j.token == tok {
			return j, nil
		}
	}
	otherwise := error(store.ErrNoReservation)
	for _, j := range m.jobs {
		// docs/semantics.md reads literally: the job's last reservation,
		// however it ended (even by release, fail or a forgotten expiry),
		// if the job is now cancelled.
		if j.lastToken != "" && j.lastToken == tok && j.job.State == store.Cancelled {
			otherwise = &store.StateError{ID: j.job.ID, From: store.Cancelled, To: to}
		}
	}
	// The most recent expiredTokens expired tokens are remembered.
	for _, e := range m.expired {
		if e.token != tok {
			continue
		}
		later, sameOrLater := 0, 0
		for _, x := range m.expired {
			if x.at > e.at {
				later++
			}
			if x.at >= e.at {
				sameOrLater++
			}
		}
		switch {
		case sameOrLater <= m.expiredTokens:
			return nil, store.ErrExpired
		case later < m.expiredTokens:
			return nil, &maybeExpired{otherwise}
		}
	}
	return nil, otherwise
}

// mKeys checks a job's further keys of a kind, trimming them: a first
// key, at most 4 in all, none twice.
func mKeys(first string, more []string) bool {
	if len(more) == 0 {
		return true
	}
	if first == "" || 1+len(more) > 4 {
		return false
	}
	seen := []string{first}
	for i := range more {
		if !ident(&more[i]) || slices.Contains(seen, more[i]) {
			return false
		}
		seen = append(seen, more[i])
	}
	return true
}

// mAll is every key of a kind of a job of several; nil for at most one.
func mAll(first string, more []string) []string {
	if len(more) == 0 {
		return nil
	}
	return append([]string{first}, more...)
}

// ---- operations -----------------------------------------------------------

// PushMany is Push, one after another.
// Maintenance runs first, even when every push is refused, as in the
// store.
func (m *model) PushMany(now int64, ps []store.PushOptions, ids []string, errs []error) {
	m.maintain(now)
	for i, p := range ps {
		ids[i], errs[i] = m.Push(now, p)
	}
}

// validPush checks (trimming its names) what every push must satisfy,
// keyed or not, and turns EXPIRES into the deadline; false: ErrInvalid.
func validPush(now int64, p *store.PushOptions) bool {
	if !ident(&p.Queue) || !ident(&p.Handler) || !optIdent(&p.ID) ||
		!optIdent(&p.ConcurrencyKey) || !optIdent(&p.RateLimitKey) || !optIdent(&p.Group) ||
		p.MaxAttempts < 0 || p.Backoff < 0 || p.RunAt < 0 ||
		!mKeys(p.ConcurrencyKey, p.ExtraConcurrencyKeys) || !mKeys(p.RateLimitKey, p.ExtraRateLimitKeys) ||
		p.Deadline < 0 || p.ExpiresIn < 0 || p.Timeout < 0 || (p.Deadline != 0 && p.ExpiresIn != 0) ||
		p.ExpiresIn > store.MaxSpan || p.Timeout > store.MaxSpan {
		return false
	}
	if p.ExpiresIn != 0 {
		p.Deadline = now + p.ExpiresIn
	}
	if p.Deadline != 0 && p.Deadline <= max(now, p.RunAt) {
		return false
	}
	var ok bool
	p.After, ok = mAfter(*p)
	return ok && (p.Batch == "" || ident(&p.Batch))
}

func (m *model) Push(now int64, p store.PushOptions) (string, error) {
	if p.UniqueKey != "" {
		return m.pushUnique(now, p)
	}
	keyed := p.IdempotencyKey != ""
	if !validPush(now, &p) || (keyed && !ident(&p.IdempotencyKey)) {
		return "", store.ErrInvalid
	}
	m.maintain(now)
	// A key seen within the window answers its first push's id, before
	// anything else is checked (docs/semantics.md).
	if keyed {
		m.forgetKeys(now)
		if e, ok := m.keys[p.IdempotencyKey]; ok {
			return e.id, nil
		}
	}
	id, err := m.push(now, p)
	if err == nil && keyed {
		m.keys[p.IdempotencyKey] = mkey{id: id, at: now}
		m.boundKeys()
	}
	return id, err
}

// boundKeys forgets the oldest idempotency keys (first-push time, then
// key) past the bound; unique keys are never forgotten early.
func (m *model) boundKeys() {
	for len(m.keys) > m.idemKeys {
		oldest := ""
		for k, e := range m.keys {
			if e.scope != store.ScopeNone {
				continue
			}
			if o := m.keys[oldest]; oldest == "" || e.at < o.at || (e.at == o.at && k < oldest) {
				oldest = k
			}
		}
		if oldest == "" {
			return
		}
		delete(m.keys, oldest)
	}
}

// noteStates notes the states the jobs are in, which the next operation's
// maintenance may change.
func (m *model) noteStates() {
	for _, j := range m.jobs {
		switch st := j.job.State; {
		case st == store.Reserved || st == store.Running:
			j.wasReserved = true
		case st == store.RetryPending:
			j.wasRetryPending = true
		case st.Terminal():
			j.wasTerminal = true
		}
	}
}

// forgetKeys forgets the keys no longer held at now: idempotency keys past
// the window; unique keys past their TTL, or whose job has left the scope
// (docs/semantics.md): queued until first reserved, active until a run
// ends (retry_pending or terminal), until-terminal until terminal.
func (m *model) forgetKeys(now int64) {
	m.noteStates()
	for k, e := range m.keys {
		held := true
		if e.scope == store.ScopeNone {
			held = e.at+m.idemWindow > now
		} else {
			j := e.holder
			held = (e.until == 0 || e.until > now) && !j.wasTerminal
			switch scope := e.scope; {
			case m.uniqueUntilTerminal:
			case scope == store.ScopeQueued:
				held = held && !j.wasReserved
			case scope == store.ScopeActive:
				held = held && !j.wasRetryPending
			}
		}
		if !held {
			delete(m.keys, k)
		}
	}
}

// pushUnique is Push with a unique key.
func (m *model) pushUnique(now int64, p store.PushOptions) (string, error) {
	if !validPush(now, &p) || p.IdempotencyKey != "" || !ident(&p.UniqueKey) || p.UniqueScope > store.ScopeTerminal ||
		p.OnDuplicate > store.DupExtend || p.UniqueTTL < 0 {
		return "", store.ErrInvalid
	}
	m.maintain(now)
	m.forgetKeys(now)
	if e, ok := m.keys[p.UniqueKey]; ok {
		if p.OnDuplicate == store.DupReject {
			return "", &store.DupKeyError{Key: p.UniqueKey, ID: e.id}
		}
		if p.OnDuplicate == store.DupReplace || p.OnDuplicate == store.DupExtend {
			if e.scope != store.ScopeNone {
				m.replace(now, e.holder, p)
			}
		}
		return e.id, nil
	}
	unique := 0
	for _, e := range m.keys {
		if e.scope != store.ScopeNone {
			unique++
		}
	}
	if unique >= m.idemKeys {
		return "", store.ErrKeysFull
	}
	id, err := m.push(now, p)
	if err != nil {
		return "", err
	}
	scope := p.UniqueScope
	if scope == store.ScopeNone {
		scope = store.ScopeTerminal
	}
	e := mkey{id: id, at: now, scope: scope, holder: m.find(id)}
	if p.UniqueTTL > 0 {
		e.until = now + p.UniqueTTL
	}
	m.keys[p.UniqueKey] = e
	m.boundKeys()
	return id, nil
}

// replace applies ON-DUPLICATE replace or extend to holder j, when it
// waits with p's queue, handler, keys and group: payload, max attempts and
// backoff change; extend moves a scheduled or retry_pending job's run time
// to p's (queued at once when not after now). A queued job keeps its place.
func (m *model) replace(now int64, j *mjob, p store.PushOptions) {
	switch j.job.State {
	case store.Queued, store.Scheduled, store.RetryPending:
	default:
		return
	}
	if j.job.Queue != p.Queue || j.job.Handler != p.Handler || j.job.ConcurrencyKey != p.ConcurrencyKey ||
		j.job.RateLimitKey != p.RateLimitKey || j.job.Group != p.Group ||
		!slices.Equal(j.job.ConcurrencyKeys, mAll(p.ConcurrencyKey, p.ExtraConcurrencyKeys)) ||
		!slices.Equal(j.job.RateLimitKeys, mAll(p.RateLimitKey, p.ExtraRateLimitKeys)) {
		return
	}
	j.job.Payload = bytes.Clone(p.Payload)
	j.job.MaxAttempts, j.job.Backoff = p.MaxAttempts, p.Backoff
	if j.job.MaxAttempts == 0 {
		j.job.MaxAttempts = store.DefaultMaxAttempts
	}
	if j.job.Backoff == 0 {
		j.job.Backoff = store.DefaultBackoff
	}
	j.job.UpdatedAt = now
	if j.job.State == store.Queued || p.OnDuplicate != store.DupExtend {
		return
	}
	runAt := max(p.RunAt, now)
	if runAt == j.job.RunAt {
		return
	}
	if runAt <= now {
		j.job.State = store.Queued
		j.job.RunAt = now
		j.entry = m.next()
	} else {
		j.job.RunAt = runAt
		j.dueSeq = m.next()
	}
}

// push creates the job of a valid push, after maintenance.
func (m *model) push(now int64, p store.PushOptions) (string, error) {
	waits, err := m.depsOf(p.After, p.AfterAnyway)
	if err != nil {
		return "", err
	}
	b, err := m.joinBatch(p.Batch)
	if err != nil {
		return "", err
	}
	if p.ID != "" && m.find(p.ID) != nil {
		return "", store.ErrDupJob
	}
	id := p.ID
	if id == "" {
		for {
			id = string(m.gen.AppendJobID(nil, now))
			if m.find(id) == nil {
				break
			}
		}
	}
	// The documents do not say whether a refused push uses up a generated
	// id; the store asks the generator first, and so does the model.
	if m.maxJobs > 0 && int64(len(m.jobs)) >= m.maxJobs {
		return "", store.ErrFull
	}
	if !m.groupHeld(p.Queue, p.Group) { // a new group starts at the queue's turn
		m.gturn[[2]string{p.Queue, p.Group}] = m.qturn[p.Queue]
	}
	j := &mjob{job: store.Job{
		ID:              id,
		Queue:           p.Queue,
		Handler:         p.Handler,
		Payload:         bytes.Clone(p.Payload),
		Priority:        p.Priority,
		ConcurrencyKey:  p.ConcurrencyKey,
		RateLimitKey:    p.RateLimitKey,
		Group:           p.Group,
		ConcurrencyKeys: mAll(p.ConcurrencyKey, p.ExtraConcurrencyKeys),
		RateLimitKeys:   mAll(p.RateLimitKey, p.ExtraRateLimitKeys),
		MaxAttempts:     p.MaxAttempts,
		Backoff:         p.Backoff,
		CreatedAt:       now,
		UpdatedAt:       now,
		Deadline:        p.Deadline,
		Timeout:         p.Timeout,
	}, pushSeq: m.next()}
	if j.job.MaxAttempts == 0 {
		j.job.MaxAttempts = store.DefaultMaxAttempts
	}
	if j.job.Backoff == 0 {
		j.job.Backoff = store.DefaultBackoff
	}
	if len(waits) > 0 {
		j.job.State = store.Waiting
		j.job.RunAt = max(p.RunAt, 0)
		j.waits, j.anyway = waits, p.AfterAnyway
	} else if p.RunAt > now {
		j.job.State = store.Scheduled
		j.job.RunAt = p.RunAt
		j.dueSeq = m.next()
	} else {
		j.job.State = store.Queued
		j.job.RunAt = now
		j.entry = m.next()
	}
	m.waitFrom(now, j)
	m.jobs = append(m.jobs, j)
	m.counter(p.Queue).pushed++
	m.joined(b, j)
	return id, nil
}

func (m *model) Reserve(now int64, r store.ReserveOptions) ([]store.Reservation, error) {
	if !ident(&r.Worker) || r.Lease <= 0 || r.Count < 0 || len(r.Queues) == 0 {
		return nil, store.ErrInvalid
	}
	r.Queues = slices.Clone(r.Queues)
	for i := range r.Queues {
		if !ident(&r.Queues[i]) {
			return nil, store.ErrInvalid
		}
	}
	if r.Handlers != nil {
		if len(r.Handlers) == 0 {
			return nil, store.ErrInvalid // a filter that admits nothing
		}
		r.Handlers = slices.Clone(r.Handlers)
	}
	for i := range r.Handlers {
		if !ident(&r.Handlers[i]) {
			return nil, store.ErrInvalid
		}
	}
	m.maintain(now)
	count := r.Count
	if count == 0 {
		count = 1
	}
	var out []store.Reservation
	if r.RoundRobin {
		// Start after the worker's last queue; one job per queue in turn.
		var order []string // a queue named twice is one queue
		for _, q := range r.Queues {
			if !contains(order, q) {
				order = append(order, q)
			}
		}
		if i := slices.Index(order, m.rr[r.Worker]); i >= 0 {
			order = append(order[i+1:], order[:i+1]...)
		}
		for len(out) < count {
			had := len(out)
			for _, q := range order {
				if len(out) == count {
					break
				}
				if pick := m.pick(now, r, q); pick != nil {
					out = append(out, m.reserveJob(now, r, pick))
					m.rr[r.Worker] = q
				}
			}
			if len(out) == had {
				break
			}
		}
		return out, nil
	}
	for i := 0; i < count; i++ {
		var pick *mjob
		for _, q := range r.Queues {
			if pick = m.pick(now, r, q); pick != nil {
				break
			}
		}
		if pick == nil {
			break
		}
		out = append(out, m.reserveJob(now, r, pick))
	}
	return out, nil
}

// pick is the job of queue q a reservation takes next, or nil: the highest
// priority, then the group whose turn comes first, then the earliest entry.
func (m *model) pick(now int64, r store.ReserveOptions, q string) *mjob {
	if m.paused[q] {
		return nil
	}
	var pick *mjob
	for _, j := range m.jobs {
		if j.job.Queue != q || j.job.State != store.Queued {
			continue
		}
		if r.Handlers != nil && !contains(r.Handlers, j.job.Handler) {
			continue
		}
		if m.breakerBlock(now, j) != "" {
			continue
		}
		if _, blocked := m.policyBlock(now, j); blocked {
			continue
		}
		if pick == nil || j.job.Priority > pick.job.Priority {
			pick = j
			continue
		}
		if j.job.Priority < pick.job.Priority {
			continue
		}
		tj, tp := m.gturn[[2]string{q, j.job.Group}], m.gturn[[2]string{q, pick.job.Group}]
		if turnBefore(tj, tp) || (tj == tp && j.entry < pick.entry) {
			pick = j
		}
	}
	return pick
}

// reserveJob reserves pick and moves its group's turn on: a group behind
// the queue's turn is brought up to it first.
func (m *model) reserveJob(now int64, r store.ReserveOptions, pick *mjob) store.Reservation {
	gk := [2]string{pick.job.Queue, pick.job.Group}
	if turnBefore(m.gturn[gk], m.qturn[gk[0]]) {
		m.gturn[gk] = m.qturn[gk[0]]
	}
	m.qturn[gk[0]] = m.gturn[gk]
	w := m.weights[pick.job.Group]
	if w == 0 {
		w = 1
	}
	m.gturn[gk] += uint64((1 << 20) / w)
	pick.job.State = store.Reserved
	pick.wasReserved = true // a timer may end the reservation before noteStates sees it
	pick.job.Worker = r.Worker
	pick.job.ExpiresAt = now + r.Lease
	pick.lapseAt, pick.timeoutAt = 0, 0
	if pick.job.Timeout != 0 {
		pick.timeoutAt = now + pick.job.Timeout
		pick.job.ExpiresAt = min(pick.job.ExpiresAt, pick.timeoutAt)
	}
	pick.job.UpdatedAt = now
	pick.dueSeq = m.next()
	pick.token = pick.job.ID + "." + string(m.gen.AppendToken(nil, now))
	pick.lastToken = pick.token
	for _, k := range mRKeys(pick) {
		m.admit(now, k)
	}
	m.brkReserved(now, pick)
	return store.Reservation{
		Token:     pick.token,
		ID:        pick.job.ID,
		Queue:     pick.job.Queue,
		Handler:   pick.job.Handler,
		Payload:   bytes.Clone(pick.job.Payload),
		Priority:  pick.job.Priority,
		Attempt:   pick.job.Attempt,
		ExpiresAt: pick.job.ExpiresAt,
	}
}

// SetWeight sets a fair group's weight, store-wide.
func (m *model) SetWeight(now int64, g string, n int64) error {
	if !ident(&g) || n < 1 || n > 1000 {
		return store.ErrInvalid
	}
	m.maintain(now)
	m.weights[g] = n
	return nil
}

// DeleteWeight gives a group the default weight again.
func (m *model) DeleteWeight(now int64, g string) (bool, error) {
	if !ident(&g) {
		return false, store.ErrInvalid
	}
	m.maintain(now)
	_, ok := m.weights[g]
	delete(m.weights, g)
	return ok, nil
}

// Weights lists the weights set, by group.
func (m *model) Weights() []store.WeightInfo {
	out := []store.WeightInfo{}
	for g, w := range m.weights {
		out = append(out, store.WeightInfo{Group: g, Weight: w})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Group < out[k].Group })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (m *model) Start(now int64, token string) (int64, error) {
	m.maintain(now)
	j, err := m.byToken(token, store.Running)
	if err != nil {
		return 0, err
	}
	if j.job.State != store.Reserved {
		return 0, &store.StateError{ID: j.job.ID, From: j.job.State, To: store.Running}
	}
	j.job.State = store.Running
	j.job.Attempt++
	j.job.UpdatedAt = now
	return j.job.Attempt, nil
}

func (m *model) Touch(now int64, token string, lease int64) (int64, error) {
	if lease <= 0 {
		return 0, store.ErrInvalid
	}
	m.maintain(now)
	j, err := m.byToken(token, store.Running)
	if err != nil {
		return 0, err
	}
	j.job.ExpiresAt = now + lease
	if j.timeoutAt != 0 { // never past the reservation's timeout
		j.job.ExpiresAt = min(j.job.ExpiresAt, j.timeoutAt)
	}
	j.job.UpdatedAt = now
	j.dueSeq = m.next()
	return j.job.ExpiresAt, nil
}

func (m *model) Ack(now int64, token string) error { return m.AckResult(now, token, nil) }

func (m *model) Fail(now int64, token string, o store.FailOptions) (store.State, error) {
	if o.HasRetry && o.RetryIn < 0 {
		return 0, store.ErrInvalid
	}
	m.maintain(now)
	j, err := m.byToken(token, store.Failed)
	if err != nil {
		return 0, err
	}
	m.brkOutcome(now, j, false)
	return m.failAttempt(now, j, o), nil
}

// failAttempt ends j's reservation as a failed attempt (JOBFAIL, a
// timeout), its breakers told already.
func (m *model) failAttempt(now int64, j *mjob, o store.FailOptions) store.State {
	if j.job.State == store.Reserved {
		j.job.Attempt++
	}
	if o.HasError {
		j.job.LastError = o.Error
		j.job.HasLastError = true
	}
	if !o.NoRetry && j.job.Attempt < j.job.MaxAttempts {
		var delay int64
		if o.HasRetry {
			delay = o.RetryIn
		} else {
			delay = j.job.Backoff
			for i := int64(1); i < j.job.Attempt && delay < store.MaxBackoff; i++ {
				delay *= 2
			}
			if delay > store.MaxBackoff {
				delay = store.MaxBackoff
			}
		}
		j.job.State = store.RetryPending
		j.wasRetryPending = true // a timer may queue it again before noteStates sees it
		j.job.RunAt = now + delay
		j.job.UpdatedAt = now
		j.job.Worker = ""
		j.job.ExpiresAt = 0
		j.token = ""
		j.timeoutAt = 0
		j.dueSeq = m.next()
		m.waitFrom(now, j)
		return store.RetryPending
	}
	m.makeTerminal(now, j, store.Failed)
	return store.Failed
}

func (m *model) Release(now int64, token string, delay int64) error {
	if delay < 0 {
		return store.ErrInvalid
	}
	to := store.Queued
	if delay > 0 {
		to = store.Scheduled
	}
	m.maintain(now)
	j, err := m.byToken(token, to)
	if err != nil {
		return err
	}
	if j.job.State != store.Reserved {
		return &store.StateError{ID: j.job.ID, From: j.job.State, To: to}
	}
	m.brkFreed(j)
	if delay == 0 {
		m.enqueue(now, j)
		return nil
	}
	j.job.State = store.Scheduled
	j.job.RunAt = now + delay
	j.job.UpdatedAt = now
	j.job.Worker = ""
	j.job.ExpiresAt = 0
	j.token = ""
	j.timeoutAt = 0
	j.dueSeq = m.next()
	m.waitFrom(now, j)
	return nil
}

func (m *model) Cancel(now int64, id string) (bool, error) {
	if !ident(&id) {
		return false, store.ErrInvalid
	}
	m.maintain(now)
	j := m.find(id)
	if j == nil {
		return false, store.ErrNoJob
	}
	if j.job.State.Terminal() && j.job.State != store.Failed { // a failed job leaves the dead letters
		return false, nil
	}
	if j.job.State == store.Reserved || j.job.State == store.Running {
		m.brkFreed(j)
	}
	m.makeTerminal(now, j, store.Cancelled)
	return true, nil
}

func (m *model) Retry(now int64, id string) error {
	if !ident(&id) {
		return store.ErrInvalid
	}
	m.maintain(now)
	j := m.find(id)
	if j == nil {
		return store.ErrNoJob
	}
	if j.job.State != store.Failed {
		return &store.StateError{ID: id, From: j.job.State, To: store.Queued}
	}
	j.job.Attempt = 0
	j.job.Deadline = 0 // JOBRETRY is not bound by the push's deadline
	m.enqueue(now, j)
	return nil
}

// Delete forgets a finished job; any other is refused.
func (m *model) Delete(now int64, id string) error {
	if !ident(&id) {
		return store.ErrInvalid
	}
	m.maintain(now)
	j := m.find(id)
	if j == nil {
		return store.ErrNoJob
	}
	if !j.job.State.Terminal() {
		return store.ErrWrongState
	}
	m.drop(j)
	m.forgetVanishedQueues()
	return nil
}

func (m *model) Get(now int64, id string) (store.Job, bool) {
	m.maintain(now)
	ident(&id)
	j := m.find(id)
	if j == nil {
		return store.Job{}, false
	}
	return m.view(now, j), true
}

func (m *model) QueueLen(now int64, queue string) (int64, error) {
	if !ident(&queue) {
		return 0, store.ErrInvalid
	}
	m.maintain(now)
	var n int64
	for _, j := range m.jobs {
		if j.job.Queue == queue && j.job.State == store.Queued {
			n++
		}
	}
	return n, nil
}

func (m *model) QueueStats(now int64, queue string) (store.QueueStats, error) {
	if !ident(&queue) {
		return store.QueueStats{}, store.ErrInvalid
	}
	m.maintain(now)
	st := store.QueueStats{Queue: queue, Paused: m.paused[queue]}
	nonTerminal := false
	for _, j := range m.jobs {
		if j.job.Queue != queue {
			continue
		}
		switch j.job.State {
		case store.Queued:
			st.Queued++
			if b, ok := m.policyBlock(now, j); ok {
				if b.Kind == backpressure.Concurrency {
					st.BlockedConcurrency++
				} else {
					st.BlockedRateLimit++
				}
			}
		case store.Scheduled:
			st.Scheduled++
		case store.Reserved:
			st.Reserved++
		case store.Running:
			st.Running++
		case store.RetryPending:
			st.RetryPending++
		case store.Failed:
			st.Failed++
		case store.Expired:
			st.Expired++
		}
		if !j.job.State.Terminal() && j.job.State != store.Waiting { // waiting: nothing to do until its dependencies end
			nonTerminal = true
		}
	}
	if c := m.counters[queue]; c != nil {
		st.PushedTotal, st.SucceededTotal, st.FailedTotal = c.pushed, c.succeeded, c.failed
	}
	switch {
	case st.Paused:
		st.Status = "paused"
	case st.Queued > 0 && st.BlockedConcurrency+st.BlockedRateLimit == st.Queued:
		st.Status = "throttled"
	case nonTerminal:
		st.Status = "active"
	default:
		st.Status = "idle"
	}
	return st, nil
}

func (m *model) Queues(now int64) []string {
	m.maintain(now)
	seen := map[string]bool{}
	var out []string
	for _, j := range m.jobs {
		if !seen[j.job.Queue] {
			seen[j.job.Queue] = true
			out = append(out, j.job.Queue)
		}
	}
	sort.Strings(out)
	return out
}

func (m *model) Pause(now int64, queue string) error {
	if !ident(&queue) {
		return store.ErrInvalid
	}
	m.maintain(now)
	m.paused[queue] = true
	return nil
}

func (m *model) Resume(now int64, queue string) error {
	if !ident(&queue) {
		return store.ErrInvalid
	}
	m.maintain(now)
	delete(m.paused, queue)
	m.forgetVanishedQueues()
	return nil
}

// queuedInOrder lists the queued jobs of queue in reservation order,
// ignoring policies and pauses.
func (m *model) queuedInOrder(queue string) []*mjob {
	var qs []*mjob
	for _, j := range m.jobs {
		if j.job.Queue == queue && j.job.State == store.Queued {
			qs = append(qs, j)
		}
	}
	sort.Slice(qs, func(a, b int) bool {
		if qs[a].job.Priority != qs[b].job.Priority {
			return qs[a].job.Priority > qs[b].job.Priority
		}
		return qs[a].entry < qs[b].entry
	})
	return qs
}

func (m *model) Peek(now int64, queue string, n int) ([]store.Job, error) {
	if !ident(&queue) {
		return nil, store.ErrInvalid
	}
	m.maintain(now)
	if n <= 0 {
		n = store.DefaultPeekCount
	}
	var out []store.Job
	for _, j := range m.queuedInOrder(queue) {
		if len(out) == n {
			break
		}
		out = append(out, m.view(now, j))
	}
	return out, nil
}

func (m *model) Purge(now int64, queue string) (int64, error) {
	if !ident(&queue) {
		return 0, store.ErrInvalid
	}
	m.maintain(now)
	// The victims become terminal at the same instant; which of them
	// MaxRetained drops first is not documented. The store cancels them in
	// push order, and so does the model.
	var victims []*mjob
	for _, j := range m.jobs {
		if j.job.Queue == queue && (j.job.State == store.Queued || j.job.State == store.Scheduled) {
			victims = append(victims, j)
		}
	}
	sort.Slice(victims, func(a, b int) bool { return victims[a].pushSeq < victims[b].pushSeq })
	for _, j := range victims {
		m.makeTerminal(now, j, store.Cancelled)
	}
	return int64(len(victims)), nil
}

func (m *model) SetConcurrency(now int64, key string, limit int64) error {
	if !ident(&key) || limit < 1 {
		return store.ErrInvalid
	}
	m.maintain(now)
	m.conc[key] = limit
	return nil
}

func (m *model) SetRateLimit(now int64, key string, limit, period int64) error {
	if !ident(&key) || limit < 1 || period < 1 {
		return store.ErrInvalid
	}
	m.maintain(now)
	r := m.rate[key]
	if r == nil {
		r = &mrate{}
		if !isTemplate(key) { // a key that followed a template keeps its window
			r.adm = m.inst[key]
		}
		m.rate[key] = r
	}
	r.limit, r.period = limit, period
	m.forgetOrphans()
	return nil
}

func (m *model) DeletePolicy(now int64, kind backpressure.Kind, key string) (bool, error) {
	if kind == backpressure.Breaker {
		key, ok := brkKey(key)
		if !ok {
			return false, store.ErrInvalid
		}
		m.maintain(now)
		_, was := m.brk[key]
		delete(m.brk, key)
		return was, nil
	}
	if kind == backpressure.Throttle {
		if !ident(&key) || isTemplate(key) {
			return false, store.ErrInvalid
		}
		m.maintain(now)
		was := m.thr[key] > now
		delete(m.thr, key)
		return was, nil
	}
	if (kind != backpressure.Concurrency && kind != backpressure.RateLimit) || !ident(&key) {
		return false, store.ErrInvalid
	}
	m.maintain(now)
	defer m.forgetOrphans()
	switch kind {
	case backpressure.Concurrency:
		if _, ok := m.conc[key]; ok {
			delete(m.conc, key)
			return true, nil
		}
	case backpressure.RateLimit:
		if _, ok := m.rate[key]; ok {
			delete(m.rate, key)
			return true, nil
		}
	}
	return false, nil
}

func (m *model) policyInfo(now int64, kind backpressure.Kind, key string) (store.PolicyInfo, bool) {
	var info store.PolicyInfo
	switch {
	case kind == backpressure.Concurrency && isTemplate(key):
		limit, ok := m.conc[key]
		if !ok {
			return info, false
		}
		info.Kind, info.Key, info.Limit = kind, key, limit
		return info, true
	case kind == backpressure.RateLimit && isTemplate(key):
		r := m.rate[key]
		if r == nil {
			return info, false
		}
		info.Kind, info.Key, info.Limit, info.Period = kind, key, r.limit, r.period
		return info, true
	case kind == backpressure.Concurrency:
		limit, tmpl, ok := m.concLimit(key)
		if !ok {
			return info, false
		}
		info.Kind, info.Key, info.Limit, info.Template = kind, key, limit, tmpl
		info.Active = m.active(key)
		info.Blocking = info.Active >= limit
	case kind == backpressure.RateLimit:
		limit, period, adm, tmpl, ok := m.rateOf(key)
		if !ok {
			return info, false
		}
		info.Kind, info.Key, info.Limit, info.Period, info.Template = kind, key, limit, period, tmpl
		info.Active = int64(len((&mrate{period: period, adm: adm}).window(now)))
		if b, blocked := m.rateBlock(now, key); blocked {
			info.Blocking = true
			info.NextFreeAt = b.Until
		}
	case kind == backpressure.Throttle:
		if m.thr[key] <= now {
			return info, false
		}
		info.Kind, info.Key, info.NextFreeAt, info.Blocking = kind, key, m.thr[key], true
	default:
		return info, false
	}
	if info.Blocking {
		for _, j := range m.jobs {
			if j.job.State != store.Queued {
				continue
			}
			if (kind != backpressure.RateLimit && slices.Contains(mCKeys(j), key)) ||
				(kind != backpressure.Concurrency && slices.Contains(mRKeys(j), key)) {
				info.Waiting++
			}
		}
	}
	return info, true
}

func (m *model) GetPolicy(now int64, kind backpressure.Kind, key string) (store.PolicyInfo, bool, error) {
	if kind == backpressure.Breaker {
		key, ok := brkKey(key)
		if !ok {
			return store.PolicyInfo{}, false, store.ErrInvalid
		}
		m.maintain(now)
		if m.brk[key] == nil {
			return store.PolicyInfo{}, false, nil
		}
		return m.brkInfo(now, key), true, nil
	}
	// An unknown kind is invalid, as for POLICYDEL (docs/semantics.md).
	if (kind != backpressure.Concurrency && kind != backpressure.RateLimit && kind != backpressure.Throttle) || !ident(&key) {
		return store.PolicyInfo{}, false, store.ErrInvalid
	}
	m.maintain(now)
	info, ok := m.policyInfo(now, kind, key)
	return info, ok, nil
}

func (m *model) Policies(now int64) []store.PolicyInfo {
	m.maintain(now)
	// Policies and templates, and the keys that follow a template while
	// they are in use: a concurrency key while a job held carries it, a
	// rate-limit key while its window holds admissions.
	ckeys, rkeys, tkeys := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for k := range m.conc {
		ckeys[k] = true
	}
	for k := range m.rate {
		rkeys[k] = true
	}
	for _, j := range m.jobs {
		for _, k := range mCKeys(j) {
			if _, t, ok := m.concLimit(k); ok && t != "" {
				ckeys[k] = true
			}
		}
	}
	for k := range m.inst {
		if info, ok := m.policyInfo(now, backpressure.RateLimit, k); ok && info.Active > 0 {
			rkeys[k] = true
		}
	}
	for k, until := range m.thr {
		if until > now {
			tkeys[k] = true
		}
	}
	var out []store.PolicyInfo
	for _, set := range []struct {
		kind backpressure.Kind
		keys map[string]bool
	}{{backpressure.Concurrency, ckeys}, {backpressure.RateLimit, rkeys}, {backpressure.Throttle, tkeys}} {
		keys := make([]string, 0, len(set.keys))
		for k := range set.keys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			info, _ := m.policyInfo(now, set.kind, k)
			out = append(out, info)
		}
	}
	return append(out, m.brkInfos(now)...)
}

// Throttle stops admissions under key until now+ms, unless one in force
// ends later, or lifts it (ms 0).
func (m *model) Throttle(now int64, key string, ms int64) (int64, error) {
	if !ident(&key) || isTemplate(key) || ms < 0 {
		return 0, store.ErrInvalid
	}
	m.maintain(now)
	if ms == 0 {
		delete(m.thr, key)
		return 0, nil
	}
	if m.thr[key] < now+ms {
		m.thr[key] = now + ms
	}
	return m.thr[key], nil
}

// ReleaseThrottle is Release with a throttle that never shortens one in
// force.
func (m *model) ReleaseThrottle(now int64, token string, delay int64, key string, ms int64) error {
	if delay < 0 || !ident(&key) || isTemplate(key) || ms < 0 {
		return store.ErrInvalid
	}
	to := store.Queued
	if delay > 0 {
		to = store.Scheduled
	}
	m.maintain(now)
	j, err := m.byToken(token, to)
	if err != nil {
		return err
	}
	if j.job.State != store.Reserved {
		return &store.StateError{ID: j.job.ID, From: j.job.State, To: to}
	}
	if until := now + ms; until > now && until > m.thr[key] {
		m.thr[key] = until
	}
	return m.Release(now, token, delay)
}

func (m *model) Flush(now int64) error { m.reset(); return nil }

func (m *model) Tick(now int64) { m.maintain(now) }

func (m *model) Len() int64 {
	m.settle() // what the last operation ended resolves within it
	return int64(len(m.jobs))
}

// nextDue is the earliest lease expiry, scheduled or retry time, or
// retention drop pending.
func (m *model) nextDue() (int64, bool) {
	m.settle()
	var due int64
	any := false
	for _, j := range m.jobs {
		at, ok := m.dueAt(j)
		if j.job.State.Terminal() {
			at, ok = j.terminalAt+m.retentionOf(j), true
		}
		if !ok {
			continue
		}
		if !any || at < due {
			due, any = at, true
		}
	}
	return due, any
}

// deadlines lists the instants at which the model has work due: the
// differential generator jumps the clock to (and around) them.
func (m *model) deadlines() []int64 {
	var ts []int64
	for _, j := range m.jobs {
		if at, ok := m.dueAt(j); ok {
			ts = append(ts, at)
		}
		if j.job.State.Terminal() {
			ts = append(ts, j.terminalAt+m.retentionOf(j))
		}
	}
	for _, r := range m.rate {
		for _, a := range r.adm {
			ts = append(ts, a+r.period)
		}
	}
	for k, adm := range m.inst {
		_, r := m.rateTemplate(k)
		for _, a := range adm {
			ts = append(ts, a+r.period)
		}
	}
	for _, until := range m.thr {
		ts = append(ts, until)
	}
	for _, k := range m.keys { // no maintenance is due then, but a retry's answer changes
		if k.scope == store.ScopeNone {
			ts = append(ts, k.at+m.idemWindow)
		} else if k.until > 0 {
			ts = append(ts, k.until)
		}
	}
	return ts
}

// tokens lists the tokens of current reservations, for the generator.
func (m *model) liveTokens() []string {
	var out []string
	for _, j := range m.jobs {
		if j.token != "" {
			out = append(out, j.token)
		}
	}
	sort.Strings(out)
	return out
}
