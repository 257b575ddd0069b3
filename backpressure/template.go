package backpressure

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// A template is a policy for every key under a prefix: "tenant:*" gives
// each distinct key starting with "tenant:" a cap (or a window) of its
// own. The longest matching prefix wins, and an exact policy wins over any
// template. A key's state points at its template; templates are never
// changed in place but replaced, so a state whose pointer differs from
// what a lookup gives is out of date (reresolve).

// IsTemplate reports whether a policy key is a template: it ends in '*'.
func IsTemplate(key string) bool { return strings.HasSuffix(key, "*") }

type template struct {
	kind          Kind
	key           string // as set, with its '*'
	limit, period int64
}

// templates holds the templates of each kind.
type templates struct {
	mu     sync.RWMutex // protects sets; a leaf, taken under a shard's lock
	sets   [3]tmplSet   // by Kind (1 and 2)
	n      atomic.Int32 // templates of both kinds: none skips every lookup
	nbytes atomic.Int64 // their estimated memory
}

type tmplSet struct {
	byPrefix map[string]*template
	lens     []int // distinct prefix lengths, longest first
}

func (tm *templates) init() {
	for i := range tm.sets {
		tm.sets[i] = tmplSet{byPrefix: map[string]*template{}}
	}
}

func (tm *templates) reset() {
	tm.mu.Lock()
	tm.init()
	tm.n.Store(0)
	tm.nbytes.Store(0)
	tm.mu.Unlock()
}

func (tm *templates) bytes() int64 { return tm.nbytes.Load() }

// lookup returns the template of kind whose prefix is the longest one
// key starts with, or nil.
func (tm *templates) lookup(kind Kind, key string) *template {
	if tm.n.Load() == 0 || (kind != Concurrency && kind != RateLimit) {
		return nil
	}
	tm.mu.RLock()
	defer tm.mu.RUnlock()
	set := &tm.sets[kind]
	for _, n := range set.lens {
		if n <= len(key) {
			if t := set.byPrefix[key[:n]]; t != nil {
				return t
			}
		}
	}
	return nil
}

// put replaces (t non-nil) or deletes the template of prefix, and
// reports whether one existed.
func (tm *templates) put(kind Kind, prefix string, t *template) bool {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	set := &tm.sets[kind]
	_, had := set.byPrefix[prefix]
	switch {
	case t != nil:
		set.byPrefix[prefix] = t
	case had:
		delete(set.byPrefix, prefix)
	default:
		return false
	}
	if t != nil && !had {
		tm.n.Add(1)
		tm.nbytes.Add(PolicyBytes(kind, t.key))
	} else if t == nil {
		tm.n.Add(-1)
		tm.nbytes.Add(-PolicyBytes(kind, prefix+"*"))
	}
	seen := map[int]bool{}
	set.lens = set.lens[:0]
	for p := range set.byPrefix {
		if !seen[len(p)] {
			seen[len(p)] = true
			set.lens = append(set.lens, len(p))
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(set.lens)))
	return had
}

func (t *template) info() Info {
	return Info{Kind: t.kind, Key: t.key, Limit: t.limit, Period: t.period}
}

// info returns the template set on key ("tenant:*").
func (tm *templates) info(kind Kind, key string) (Info, bool) {
	tm.mu.RLock()
	defer tm.mu.RUnlock()
	if kind != Concurrency && kind != RateLimit {
		return Info{}, false
	}
	t := tm.sets[kind].byPrefix[strings.TrimSuffix(key, "*")]
	if t == nil {
		return Info{}, false
	}
	return t.info(), true
}

// list returns every template, unsorted.
func (tm *templates) list() []Info {
	tm.mu.RLock()
	defer tm.mu.RUnlock()
	var out []Info
	for i := range tm.sets {
		for _, t := range tm.sets[i].byPrefix {
			out = append(out, t.info())
		}
	}
	return out
}

// Woken are the waiters of one key, to be woken.
type Woken struct {
	Kind    Kind
	Key     string
	Waiters []Waiter
}

// SetTemplate creates or changes a template ("tenant:*") at now. Its
// instances follow at once: a rate-limit instance keeps the admissions
// still in its window, as SetRateLimit does. period is for RateLimit only.
// It returns the waiters of every key whose limit changed.
func (r *Registry) SetTemplate(now int64, kind Kind, key string, limit, period int64) ([]Woken, error) {
	if limit < 1 {
		return nil, ErrLimit
	}
	if kind == RateLimit && period < 1 {
		return nil, ErrPeriod
	}
	if kind != RateLimit {
		period = 0
	}
	r.tm.put(kind, strings.TrimSuffix(key, "*"), &template{kind: kind, key: key, limit: limit, period: period})
	return r.reresolve(now, kind), nil
}

// DeleteTemplate removes a template. Its instances fall under the next
// longest template, or under none: a rate-limit instance left without a
// template forgets its admissions, as deleting a policy does. It reports
// whether the template existed, and returns the waiters to wake.
func (r *Registry) DeleteTemplate(now int64, kind Kind, key string) (bool, []Woken) {
	if kind != Concurrency && kind != RateLimit {
		return false, nil
	}
	if !r.tm.put(kind, strings.TrimSuffix(key, "*"), nil) {
		return false, nil
	}
	return true, r.reresolve(now, kind)
}

// reresolve points every state of kind without an exact policy at the
// template that now covers its key, shard by shard. A state created
// meanwhile already looked the new templates up.
func (r *Registry) reresolve(now int64, kind Kind) []Woken {
	var out []Woken
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		if kind == Concurrency {
			for key, c := range s.conc {
				if c.limit > 0 {
					continue // the exact policy wins
				}
				t := r.tm.lookup(kind, key)
				if t == c.tmpl {
					continue
				}
				c.tmpl = t
				if ws := takeWaiters(&c.waiters); len(ws) > 0 {
					out = append(out, Woken{kind, key, ws})
				}
				if c.unused() {
					s.deleteConc(key, c)
				}
			}
		} else {
			for key, rs := range s.rate {
				if !rs.inst {
					continue // an exact policy
				}
				t := r.tm.lookup(kind, key)
				if t == rs.pol {
					continue
				}
				if ws := takeWaiters(&rs.waiters); len(ws) > 0 {
					out = append(out, Woken{kind, key, ws})
				}
				if t == nil {
					s.deleteRate(key, rs)
					continue
				}
				s.trim(rs, rs.at(now))
				rs.pol = t
			}
		}
		s.mu.Unlock()
	}
	// The shards' maps gave the keys in no particular order: sort them, so
	// that every node of a group wakes lanes in the same order.
	sort.Slice(out, func(i, k int) bool { return out[i].Key < out[k].Key })
	return out
}

// instance is a rate-limit instance of the template covering key, made
// now; nil when no template covers it. Lock must be held.
func (s *shard) instance(key string) *rateState {
	t := s.tm.lookup(RateLimit, key)
	if t == nil {
		return nil
	}
	rs := &rateState{pol: t, inst: true, key: key}
	s.rate[key] = rs
	s.link(rs)
	s.bytes.Add(InstOverhead + int64(len(key)))
	return rs
}

// link appends rs to the shard's list of instances. Lock must be held.
func (s *shard) link(rs *rateState) {
	rs.prev, rs.next, rs.linked = s.ilast, nil, true
	if s.ilast == nil {
		s.ifirst = rs
	} else {
		s.ilast.next = rs
	}
	s.ilast = rs
}

// unlink takes rs off the shard's list of instances, which so holds
// exactly the instances in the shard's map: a snapshot lists them in its
// order (RateKeys). Lock must be held.
func (s *shard) unlink(rs *rateState) {
	if rs.prev == nil {
		s.ifirst = rs.next
	} else {
		rs.prev.next = rs.next
	}
	if rs.next == nil {
		s.ilast = rs.prev
	} else {
		rs.next.prev = rs.prev
	}
	rs.prev, rs.next, rs.linked = nil, nil, false
}

// sweepStep is how many listed instances an admission looks at: more than
// one, so that the list shrinks as fast as instances are made.
const sweepStep = 2

// sweep looks at the oldest entries of the shard's list of instances,
// forgetting those whose window is empty at now and that nobody waits on,
// and moving the others to the back. It runs at every admission recorded
// on an instance (live and in replay alike, at the same instants), so idle
// instances are forgotten as new ones are made. Lock must be held.
func (s *shard) sweep(now int64) {
	for range sweepStep {
		rs := s.ifirst
		if rs == nil {
			return
		}
		s.unlink(rs)
		switch {
		case rs.gone || !rs.inst: // forgotten, or now an exact policy
		case len(rs.waiters) == 0 && now >= rs.clock && (rs.count() == 0 || rs.adm[len(rs.adm)-1] <= now-rs.pol.period):
			// Idle. (Not when the window was judged later than now: a
			// new instance would judge it at now, an older time, where
			// this one judges at its clock.)
			s.deleteRate(rs.key, rs)
		default:
			s.link(rs)
		}
	}
}

// deleteRate forgets key's rate state and its admissions. Lock must be
// held.
func (s *shard) deleteRate(key string, rs *rateState) {
	if rs.linked {
		s.unlink(rs)
	}
	rs.gone = true
	delete(s.rate, key)
	s.bytes.Add(-rs.bytes(key))
}
