package store

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sluice/backpressure"
)

// Circuit breakers (POLICYSET BREAKER) stop reservations of the jobs of a
// handler, a queue or a key (a job's concurrency or rate-limit key) after
// repeated failures. Closed, a breaker counts failures (JOBFAIL of an
// attempt, retried or final, and lease expiries) in a rolling window;
// the threshold-th within it opens the breaker for its cooldown. Open, its
// jobs stay queued and their lanes are parked on it, with a lane timer at
// the cooldown's end. From then on it is half-open: the next `probes`
// reservations of its jobs are probes; when all of them succeed (JOBACK)
// it closes with an empty window, and a probe that fails (or whose lease
// expires) opens it again for a new cooldown. A probe given back
// (JOBRELEASE) or cancelled frees its place for another. While every
// probe is out, lanes are parked on the breaker and woken when one
// resolves.
//
// Determinism: a breaker changes only with a logged record (reserve, ack,
// fail, expire, release, cancel, the breaker's own), judged at the
// record's time; the open-to-half-open step is a function of that time.
// Breakers over several queues see records from several shards, so the
// breaker change and the record's append to the journal happen in one
// critical section of breakers.mu: the log order is the order of the
// changes, and a replay, a follower or a loaded snapshot goes through the
// same states. A breaker appears or goes only while every shard lock is
// held, so that an operation, under its shard lock, sees a stable count
// of breakers and skips all this when there are none.

// brkTarget is what a breaker watches.
type brkTarget uint8

const (
	brkQueue brkTarget = iota + 1
	brkHandler
	brkKey
)

var brkTargetNames = [...]string{"", "queue", "handler", "key"}

type brkID struct {
	t    brkTarget
	name string
}

func (id brkID) String() string { return brkTargetNames[id.t] + ":" + id.name }

// parseBreakerKey reads a breaker's key: handler:name, queue:name or
// key:name.
func parseBreakerKey(s string) (brkID, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return brkID{}, invalid("a breaker is named handler:<name>, queue:<name> or key:<name>")
	}
	id := brkID{name: s[i+1:]}
	for t := brkQueue; t <= brkKey; t++ {
		if strings.EqualFold(s[:i], brkTargetNames[t]) {
			id.t = t
		}
	}
	if id.t == 0 {
		return brkID{}, invalid("a breaker is named handler:<name>, queue:<name> or key:<name>")
	}
	name, err := ident(brkTargetNames[id.t], id.name)
	if err != nil {
		return brkID{}, err
	}
	if id.t == brkKey && backpressure.IsTemplate(name) {
		return brkID{}, invalid("a breaker names one key, not a template")
	}
	id.name = name
	return id, nil
}

// Bounds of a breaker's settings: its window keeps at most `failures`
// times, so both bound its memory.
const (
	MaxBreakerFailures = 10000
	MaxBreakerProbes   = 1000
	// BreakerOverhead is a breaker's state and map entry; each failure
	// its window may hold adds 8 bytes, each probe BreakerProbeBytes
	// (its place in the list of probes and the id it shares).
	BreakerOverhead   = 240
	BreakerProbeBytes = 24
)

// BreakerBytes is what --maxmemory counts for a breaker: its whole window
// and every probe at once, so that it never grows past what was admitted.
func BreakerBytes(key string, failures, probes int64) int64 {
	return BreakerOverhead + int64(len(key)) + 8*failures + BreakerProbeBytes*probes
}

type breaker struct {
	id                                 brkID
	key                                string // id.String(): its parking key and its name in listings
	failures, window, cooldown, probes int64
	times                              []int64 // failures in the window, in log order; fewer than failures
	until                              int64   // 0: closed; else open before until, half-open from it on
	ok                                 int64   // probes that succeeded in this half-open spell
	probeIDs                           []string
	waiters                            map[*queue]struct{} // queues with lanes parked on the breaker
}

type brkState uint8

const (
	brkClosed brkState = iota
	brkOpen
	brkHalf
)

var brkStateNames = [...]string{"closed", "open", "half-open"}

func (b *breaker) state(now int64) brkState {
	switch {
	case b.until == 0:
		return brkClosed
	case now < b.until:
		return brkOpen
	}
	return brkHalf
}

// blocks reports whether b refuses a reservation at now: open, or
// half-open with every probe taken.
func (b *breaker) blocks(now int64) bool {
	switch b.state(now) {
	case brkOpen:
		return true
	case brkHalf:
		return b.ok+int64(len(b.probeIDs)) >= b.probes
	}
	return false
}

// reason is b's blocked_by.
func (b *breaker) reason(now int64) string {
	if b.state(now) == brkOpen {
		return fmt.Sprintf("breaker:%s open until %d", b.key, b.until)
	}
	return fmt.Sprintf("breaker:%s half-open probes %d/%d", b.key, b.ok+int64(len(b.probeIDs)), b.probes)
}

func (b *breaker) open(now int64) {
	b.until = now + b.cooldown
	b.times, b.ok, b.probeIDs = nil, 0, nil
}

func (b *breaker) close() {
	b.until = 0
	b.times, b.ok, b.probeIDs = nil, 0, nil
}

// inWindow counts the failures held that are inside the window at now.
func (b *breaker) inWindow(now int64) int64 {
	var n int64
	for _, t := range b.times {
		if t > now-b.window {
			n++
		}
	}
	return n
}

func (b *breaker) probe(id string) int {
	for i, p := range b.probeIDs {
		if p == id {
			return i
		}
	}
	return -1
}

func (b *breaker) info(now int64) backpressure.Info {
	info := backpressure.Info{Kind: backpressure.Breaker, Key: b.key, Limit: b.failures, Period: b.window,
		Cooldown: b.cooldown, Probes: b.probes, Blocking: b.blocks(now),
		State: brkStateNames[b.state(now)], ProbesOut: int64(len(b.probeIDs)), ProbesOK: b.ok}
	switch b.state(now) {
	case brkClosed:
		info.Active = b.inWindow(now)
	case brkOpen:
		info.NextFreeAt = b.until
	}
	return info
}

type breakers struct {
	// mu protects every breaker's state. It is taken under a shard lock
	// or policyMu, before the leaf locks (the registry's, an inbox, the
	// journal's): a change to a breaker and its record's append are one
	// critical section of it.
	mu sync.Mutex
	// m changes only while every shard lock and mu are held, so either
	// is enough to read it; so do n, which counts the breakers, and gen,
	// which tells lanes that their list of breakers (over) is stale.
	m     map[brkID]*breaker
	n     atomic.Int32
	gen   atomic.Uint64
	bytes atomic.Int64
}

func (bs *breakers) reset() {
	bs.mu.Lock()
	bs.m = make(map[brkID]*breaker)
	bs.mu.Unlock()
	bs.n.Store(0)
	bs.gen.Add(1)
	bs.bytes.Store(0)
}

// over is the list of breakers over lane l's jobs, kept on the lane until
// breakers come or go, so that a reservation or an outcome of a lane no
// breaker watches looks nothing up and takes no lock. The shard lock
// must be held.
func (bs *breakers) over(l *lane) []*breaker {
	if g := bs.gen.Load(); l.brkGen != g {
		l.brks = l.brks[:0]
		bs.covering(l, func(b *breaker) bool { l.brks = append(l.brks, b); return true })
		if len(l.brks) == 0 {
			l.brks = nil
		}
		l.brkGen = g
	}
	return l.brks
}

// covering calls fn with each breaker over a job of lane l: its queue's,
// its handler's, its concurrency key's, its rate-limit key's (each key's
// of a job of several, once), in that order. mu or a shard lock must be
// held.
func (bs *breakers) covering(l *lane, fn func(*breaker) bool) {
	k := &l.key
	if b := bs.m[brkID{brkQueue, l.q.name}]; b != nil && !fn(b) {
		return
	}
	if b := bs.m[brkID{brkHandler, k.handler}]; b != nil && !fn(b) {
		return
	}
	if l.more != nil {
		for _, key := range l.more.ckeys {
			if b := bs.m[brkID{brkKey, key}]; b != nil && !fn(b) {
				return
			}
		}
		for _, key := range l.more.rkeys {
			if slices.Contains(l.more.ckeys, key) {
				continue // once
			}
			if b := bs.m[brkID{brkKey, key}]; b != nil && !fn(b) {
				return
			}
		}
		return
	}
	if k.ckey != "" {
		if b := bs.m[brkID{brkKey, k.ckey}]; b != nil && !fn(b) {
			return
		}
	}
	if k.rkey != "" && k.rkey != k.ckey {
		if b := bs.m[brkID{brkKey, k.rkey}]; b != nil {
			fn(b)
		}
	}
}

// brkBlocking is the first of a lane's breakers (over) that refuses a
// reservation at now, or nil. mu must be held.
func brkBlocking(now int64, over []*breaker) *breaker {
	for _, b := range over {
		if b.blocks(now) {
			return b
		}
	}
	return nil
}

// parkKind is the kind lane l is parked under for b, one of the breakers
// over it.
func (b *breaker) parkKind(l *lane) backpressure.Kind {
	switch {
	case b.id.t == brkQueue:
		return parkBrkQ
	case b.id.t == brkHandler:
		return parkBrkH
	case l.hasKey(backpressure.Concurrency, b.id.name):
		return parkBrkC
	}
	return parkBrkR
}

// brkReserved makes j, reserved at now, a probe of every half-open breaker
// over it. A replay applies it without asking blocking first: it restores
// what the live store decided. mu must be held.
func brkReserved(now int64, j *job, over []*breaker) {
	for _, b := range over {
		if b.state(now) == brkHalf {
			b.probeIDs = append(b.probeIDs, j.id)
		}
	}
}

// brkOutcome counts j's attempt ending at now, a success or not, on every
// breaker over it, and returns the queues to wake. A probe's outcome
// counts whatever the breaker's state at now says (probes exist only in a
// half-open spell); otherwise only a closed breaker counts, and only
// failures. mu must be held.
func brkOutcome(now int64, j *job, success bool, over []*breaker) (wake []*breaker) {
	for _, b := range over {
		if i := b.probe(j.id); i >= 0 {
			b.probeIDs = append(b.probeIDs[:i], b.probeIDs[i+1:]...)
			if !success {
				b.open(now)
				wake = append(wake, b)
			} else if b.ok++; b.ok >= b.probes {
				b.close()
				wake = append(wake, b)
			}
			continue
		}
		if success || b.until != 0 {
			continue
		}
		// Drop what left the window, wherever it sits (concurrent
		// commands log in another order than their times), then count
		// this one.
		kept := b.times[:0]
		for _, t := range b.times {
			if t > now-b.window {
				kept = append(kept, t)
			}
		}
		b.times = append(kept, now)
		if int64(len(b.times)) >= b.failures {
			b.open(now)
			wake = append(wake, b)
		}
	}
	return wake
}

// brkFreed forgets j as a probe (given back or cancelled: neither a success
// nor a failure), which frees its place. mu must be held.
func brkFreed(j *job, over []*breaker) (wake []*breaker) {
	for _, b := range over {
		if i := b.probe(j.id); i >= 0 {
			b.probeIDs = append(b.probeIDs[:i], b.probeIDs[i+1:]...)
			wake = append(wake, b)
		}
	}
	return wake
}

// wakeBreakers hands the queues parked on bs to their shards' inboxes. A
// shard lock or policyMu may be held, and breakers.mu, never a leaf.
func (s *Store) wakeBreakers(bs []*breaker, fx *effects) {
	for _, b := range bs {
		for q := range b.waiters {
			switch b.id.t {
			case brkQueue:
				q.sh.post(wakeMsg{q: q, on: parkKey{parkBrkQ, b.key}})
			case brkHandler:
				q.sh.post(wakeMsg{q: q, on: parkKey{parkBrkH, b.key}})
			default:
				q.sh.post(wakeMsg{q: q, on: parkKey{parkBrkC, b.key}})
				q.sh.post(wakeMsg{q: q, on: parkKey{parkBrkR, b.key}})
			}
			fx.notify = append(fx.notify, q.name)
		}
		b.waiters = nil
	}
}

// logOutcome logs r, the end of j's attempt (ack, fail, expire), and
// counts it on the breakers over j in the same critical section. The
// shard lock must be held.
func (s *Store) logOutcome(j *job, success bool, r Record, fx *effects) {
	var over []*breaker
	if s.brk.n.Load() > 0 {
		over = s.brk.over(j.ln)
	}
	if over == nil {
		s.log(r, fx)
		return
	}
	s.brk.mu.Lock()
	wake := brkOutcome(r.Now, j, success, over)
	s.log(r, fx)
	s.wakeBreakers(wake, fx)
	s.brk.mu.Unlock()
}

// probeFreed forgets j, leaving reserved or running without an outcome
// (release, cancel), as a probe. The shard lock must be held.
func (s *Store) probeFreed(j *job, fx *effects) {
	if s.brk.n.Load() == 0 {
		return
	}
	over := s.brk.over(j.ln)
	if over == nil {
		return
	}
	s.brk.mu.Lock()
	s.wakeBreakers(brkFreed(j, over), fx)
	s.brk.mu.Unlock()
}

// breakerBlock is the blocked_by of a queued job of lane l that a breaker
// refuses at now, or "". The shard lock must be held.
func (s *Store) breakerBlock(now int64, l *lane) string {
	if s.brk.n.Load() == 0 {
		return ""
	}
	over := s.brk.over(l)
	if over == nil {
		return ""
	}
	s.brk.mu.Lock()
	defer s.brk.mu.Unlock()
	if b := brkBlocking(now, over); b != nil {
		return b.reason(now)
	}
	return ""
}

// SetBreaker creates a breaker, or sets one anew (closed, its window
// empty), on key (handler:name, queue:name or key:name): failures within
// window ms open it for cooldown ms, then probes jobs may go.
func (s *Store) SetBreaker(now int64, key string, failures, window, cooldown, probes int64) error {
	id, err := parseBreakerKey(key)
	if err != nil {
		return err
	}
	switch {
	case failures < 1 || failures > MaxBreakerFailures:
		return invalid("failures must be between 1 and %d", MaxBreakerFailures)
	case window < 1:
		return invalid("window must be a positive number of milliseconds")
	case cooldown < 1:
		return invalid("cooldown must be a positive number of milliseconds")
	case probes < 1 || probes > MaxBreakerProbes:
		return invalid("probes must be between 1 and %d", MaxBreakerProbes)
	}
	return s.changeBreaker(now, &Record{Op: OpBreaker, PolicyKey: id.String(),
		Limit: failures, Period: window, Cooldown: cooldown, Probes: probes}, id)
}

// deleteBreaker removes a breaker (POLICYDEL BREAKER) and reports whether
// it existed.
func (s *Store) deleteBreaker(now int64, key string) (bool, error) {
	id, err := parseBreakerKey(key)
	if err != nil {
		return false, err
	}
	rec := &Record{Op: OpBreaker, PolicyKey: id.String()}
	err = s.changeBreaker(now, rec, id)
	return rec.Existed, err
}

// changeBreaker logs and applies r under every lock: policyMu, every
// shard's, breakers.mu. r.Existed tells whether the breaker existed.
func (s *Store) changeBreaker(now int64, r *Record, id brkID) error {
	if err := s.writable(); err != nil {
		return err
	}
	r.Now = now
	var fx effects
	s.maintain(now, &fx)
	s.policyMu.Lock()
	for _, sh := range s.shards {
		sh.mu.Lock()
	}
	s.brk.mu.Lock()
	old := s.brk.m[id]
	r.Existed = old != nil
	var err error
	switch {
	case r.Limit == 0 && old == nil: // nothing to delete, nothing to log
	case r.Limit > 0:
		size := BreakerBytes(r.PolicyKey, r.Limit, r.Probes)
		if old != nil {
			size -= BreakerBytes(old.key, old.failures, old.probes)
		}
		if size > 0 {
			err = s.admitState(size)
		}
	}
	if err == nil && (r.Limit > 0 || old != nil) {
		s.log(*r, &fx)
		s.applyBreakerLocked(r, id, &fx)
	}
	s.brk.mu.Unlock()
	for _, sh := range s.shards {
		sh.mu.Unlock()
	}
	s.policyMu.Unlock()
	s.finish(&fx)
	if err != nil {
		return err
	}
	return s.durable(&fx)
}

// applyBreaker applies a breaker record, live or replayed.
func (s *Store) applyBreaker(r *Record, fx *effects) error {
	id, err := parseBreakerKey(r.PolicyKey)
	if err != nil {
		return replayErr(r, "%v", err)
	}
	if r.Limit < 0 || r.Limit > MaxBreakerFailures || r.Probes < 0 || r.Probes > MaxBreakerProbes ||
		(r.Limit > 0 && (r.Period < 1 || r.Cooldown < 1 || r.Probes < 1)) {
		return replayErr(r, "breaker settings out of range")
	}
	if r.Op == OpSnapBreaker && (r.Limit == 0 || int64(len(r.Times)) >= r.Limit || r.Until < 0 || r.ProbesOK < 0 ||
		r.ProbesOK+int64(len(r.ProbeIDs)) > r.Probes || (r.Until == 0 && r.ProbesOK+int64(len(r.ProbeIDs)) > 0)) {
		return replayErr(r, "breaker state out of range")
	}
	s.policyMu.Lock()
	for _, sh := range s.shards {
		sh.mu.Lock()
	}
	s.brk.mu.Lock()
	s.applyBreakerLocked(r, id, fx)
	s.brk.mu.Unlock()
	for _, sh := range s.shards {
		sh.mu.Unlock()
	}
	s.policyMu.Unlock()
	return nil
}

// applyBreakerLocked sets, deletes (Limit 0) or restores (snapbreaker)
// a breaker as r says. Every lock of changeBreaker must be held.
func (s *Store) applyBreakerLocked(r *Record, id brkID, fx *effects) {
	s.brk.gen.Add(1) // every lane's list of breakers is stale
	b := s.brk.m[id]
	if b != nil {
		s.brk.bytes.Add(-BreakerBytes(b.key, b.failures, b.probes))
		s.wakeBreakers([]*breaker{b}, fx)
	}
	if r.Limit == 0 {
		if b != nil {
			delete(s.brk.m, id)
			s.brk.n.Add(-1)
		}
		return
	}
	if b == nil {
		b = &breaker{id: id, key: id.String()}
		s.brk.m[id] = b
		s.brk.n.Add(1)
	}
	b.failures, b.window, b.cooldown, b.probes = r.Limit, r.Period, r.Cooldown, r.Probes
	b.close()
	if r.Op == OpSnapBreaker {
		b.times = append([]int64(nil), r.Times...)
		b.until, b.ok = r.Until, r.ProbesOK
		b.probeIDs = append([]string(nil), r.ProbeIDs...)
	}
	s.brk.bytes.Add(BreakerBytes(b.key, b.failures, b.probes))
}

// breakerInfos lists every breaker at now, sorted by key.
func (s *Store) breakerInfos(now int64) []backpressure.Info {
	s.brk.mu.Lock()
	defer s.brk.mu.Unlock()
	out := make([]backpressure.Info, 0, len(s.brk.m))
	for _, b := range s.brk.m {
		out = append(out, b.info(now))
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Key < out[k].Key })
	return out
}

// breakerRecords are the snapshot records of every breaker, sorted by
// key.
func (s *Store) breakerRecords() []*Record {
	s.brk.mu.Lock()
	defer s.brk.mu.Unlock()
	out := make([]*Record, 0, len(s.brk.m))
	for _, b := range s.brk.m {
		out = append(out, &Record{Op: OpSnapBreaker, PolicyKey: b.key, Limit: b.failures, Period: b.window,
			Cooldown: b.cooldown, Probes: b.probes, Times: append([]int64(nil), b.times...), Until: b.until,
			ProbesOK: b.ok, ProbeIDs: append([]string(nil), b.probeIDs...)})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].PolicyKey < out[k].PolicyKey })
	return out
}

// getBreaker is POLICYGET BREAKER key.
func (s *Store) getBreaker(now int64, key string) (PolicyInfo, bool, error) {
	id, err := parseBreakerKey(key)
	if err != nil {
		return PolicyInfo{}, false, err
	}
	s.brk.mu.Lock()
	b := s.brk.m[id]
	var info backpressure.Info
	if b != nil {
		info = b.info(now)
	}
	s.brk.mu.Unlock()
	if b == nil {
		return PolicyInfo{}, false, nil
	}
	return s.withWaiting(info), true, nil
}

// breakerWaiting counts the queued jobs the breaker key refuses. No lock
// may be held.
func (s *Store) breakerWaiting(key string) int64 {
	id, err := parseBreakerKey(key)
	if err != nil {
		return 0
	}
	var n int64
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, q := range sh.queues {
			if id.t == brkQueue && q.name != id.name {
				continue
			}
			for k, l := range q.lanes {
				switch {
				case l.n == 0:
				case id.t == brkHandler && k.handler != id.name:
				case id.t == brkKey && !l.hasKey(backpressure.Concurrency, id.name) && !l.hasKey(backpressure.RateLimit, id.name):
				default:
					n += int64(l.n)
				}
			}
		}
		sh.mu.Unlock()
	}
	return n
}
