package store

// Several keys per job (JOBPUSH ... CONCURRENCY a CONCURRENCY b RATELIMIT
// x RATELIMIT y). A job's first keys of each kind stay where a job of one
// key keeps them (laneKey's ckey and rkey, the record's CKey and RKey);
// the others make the lane key's more, and the lane keeps them all in a
// laneMore, made only for such lanes: a lane of at most one key of each
// kind costs and runs as before.
//
// Admission asks every key at once (backpressure.AdmitAll). A refused lane
// is parked on one key that refuses it, the one the registry registered it
// on: a throttle or a full window that ends last (nothing admits the lane
// before), else the first full concurrency key. When that key frees, the
// lane is tried again and, if another key still refuses, parked on that
// one: a lane is always parked on a key that refuses it and woken when
// that key may admit, so no wake-up is lost.
//
// A lane of several keys is listed under each of them (keyLanes) and may
// be parked under any: its places in those lists are kept in laneMore.pos,
// by list and key, rather than in lane.pos by kind.

import (
	"slices"
	"strconv"
	"strings"

	"sluice/backpressure"
)

// MaxKeys is the most concurrency keys, and the most rate-limit keys, one
// job may carry.
const MaxKeys = backpressure.MaxKeys

// MoreOverhead estimates a lane's laneMore (for --maxmemory): the struct,
// its slices and a key state cache per pair; the keys add their length
// twice (in the lane key's more and in the lists).
const MoreOverhead = 320

// laneMore is what a lane of several keys of a kind keeps beyond a lane's.
type laneMore struct {
	ckeys, rkeys []string            // every key of each kind, the first included
	keys         []backpressure.Keys // pairs 2 and on: keys[i] holds ckeys[i+1] and rkeys[i+1], either may be ""
	all          []*backpressure.Keys
	pos          []place // the lane's places in lists (see queue.go's addLane)
}

// place is a lane's place i in the list named by list under key on.
type place struct {
	list int
	on   parkKey
	i    int
}

// moreKey encodes a job's further keys (beyond the first of each kind)
// as part of its lane key: lengths first, so that no two lists encode
// alike.
func moreKey(ckeys, rkeys []string) string {
	if len(ckeys) == 0 && len(rkeys) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range ckeys {
		b.WriteString("c" + strconv.Itoa(len(k)) + ":" + k)
	}
	for _, k := range rkeys {
		b.WriteString("r" + strconv.Itoa(len(k)) + ":" + k)
	}
	return b.String()
}

// newMore makes the laneMore of a lane with key k and further keys ckeys
// and rkeys.
func newMore(l *lane, ckeys, rkeys []string) *laneMore {
	m := &laneMore{
		ckeys: append(nonEmpty(l.key.ckey), ckeys...),
		rkeys: append(nonEmpty(l.key.rkey), rkeys...),
	}
	n := max(len(m.ckeys), len(m.rkeys))
	if n > 1 {
		m.keys = make([]backpressure.Keys, n-1)
	}
	m.all = make([]*backpressure.Keys, 0, n)
	m.all = append(m.all, &l.keys)
	for i := range m.keys {
		if i+1 < len(m.ckeys) {
			m.keys[i].CKey = m.ckeys[i+1]
		}
		if i+1 < len(m.rkeys) {
			m.keys[i].RKey = m.rkeys[i+1]
		}
		m.all = append(m.all, &m.keys[i])
	}
	return m
}

func nonEmpty(k string) []string {
	if k == "" {
		return nil
	}
	return []string{k}
}

// moreBytes is the memory a lane's laneMore adds to LaneOverhead.
func moreBytes(k laneKey, m *laneMore) int64 {
	if m == nil {
		return 0
	}
	return MoreOverhead + 2*int64(len(k.more))
}

// laneBytes is the estimated memory of lane l.
func laneBytes(l *lane) int64 { return LaneOverhead + moreBytes(l.key, l.more) }

// ckeys is every concurrency key of lane l, in the job's order.
func (l *lane) ckeys() []string {
	if l.more != nil {
		return l.more.ckeys
	}
	return nonEmpty(l.key.ckey)
}

// rkeys is every rate-limit key of lane l, in the job's order.
func (l *lane) rkeys() []string {
	if l.more != nil {
		return l.more.rkeys
	}
	return nonEmpty(l.key.rkey)
}

// extra returns the further keys (beyond the first of each kind) of lane
// l, as a push record carries them.
func (l *lane) extra() (ckeys, rkeys []string) {
	if l.more == nil {
		return nil, nil
	}
	return tail(l.more.ckeys), tail(l.more.rkeys)
}

func tail(keys []string) []string {
	if len(keys) < 2 {
		return nil
	}
	return slices.Clone(keys[1:])
}

// hasKey reports whether key is one of lane l's keys of kind.
func (l *lane) hasKey(kind backpressure.Kind, key string) bool {
	if l.more == nil {
		return key != "" && l.key.keyOf(kind) == key
	}
	if kind == backpressure.Concurrency {
		return slices.Contains(l.more.ckeys, key)
	}
	return slices.Contains(l.more.rkeys, key)
}

// find is lane l's place in the list named by list under on, or nil.
func (m *laneMore) find(list int, on parkKey) *place {
	for i := range m.pos {
		if p := &m.pos[i]; p.list == list && p.on == on {
			return p
		}
	}
	return nil
}

// forget drops lane l's place in the list named by list under on.
func (m *laneMore) forget(list int, on parkKey) {
	for i := range m.pos {
		if m.pos[i].list == list && m.pos[i].on == on {
			m.pos = slices.Delete(m.pos, i, i+1)
			return
		}
	}
}

// setPlace keeps i as lane l's place in the list named by list under on.
func (l *lane) setPlace(list int, on parkKey, i int) {
	if l.more == nil {
		l.pos[list][on.kind] = i
		return
	}
	if p := l.more.find(list, on); p != nil {
		p.i = i
		return
	}
	l.more.pos = append(l.more.pos, place{list, on, i})
}

// placeOf is lane l's place in the list named by list under on, and
// whether it keeps one.
func (l *lane) placeOf(list int, on parkKey) (int, bool) {
	if l.more == nil {
		return l.pos[list][on.kind], true
	}
	if p := l.more.find(list, on); p != nil {
		return p.i, true
	}
	return 0, false
}

// isListed reports whether lane l is in q.parked under on.
func (l *lane) isListed(on parkKey) bool {
	if l.more == nil {
		return l.listed[on.kind]
	}
	return l.more.find(inParked, on) != nil
}

// setListed notes whether lane l is in q.parked under on.
func (l *lane) setListed(on parkKey, listed bool) {
	if l.more == nil {
		l.listed[on.kind] = listed
		return
	}
	if !listed {
		l.more.forget(inParked, on)
	}
	// Listing keeps a place (addLane), which notes it.
}

// parkedOn lists the keys lane l is in q.parked under.
func (q *queue) parkedOn(l *lane) []parkKey {
	var out []parkKey
	if l.more != nil {
		for _, p := range l.more.pos {
			if p.list == inParked {
				out = append(out, p.on)
			}
		}
		return out
	}
	for kind, listed := range l.listed {
		if listed {
			out = append(out, q.parkedKey(l, backpressure.Kind(kind)))
		}
	}
	return out
}

// throttleKind is the kind a lane is parked under for a throttle on key:
// on its concurrency keys, or on its rate-limit keys.
func (l *lane) throttleKind(key string) backpressure.Kind {
	if l.hasKey(backpressure.Concurrency, key) {
		return parkThrottleC
	}
	return parkThrottleR
}

// blocksOf says, for JOBGET's blocked_by, every key of lane l that
// refuses its jobs at now, joined by ", "; "" when none does.
func (s *Store) blocksOf(now int64, l *lane) string {
	if l.more == nil {
		if b, blocked := s.reg.Check(now, l.key.ckey, l.key.rkey); blocked {
			return b.String()
		}
		return ""
	}
	// A copy of the pairs: the lane's own caches are used under the shard
	// lock only by changes, and a read must not race them.
	ks := make([]*backpressure.Keys, len(l.more.all))
	for i, k := range l.more.all {
		ks[i] = &backpressure.Keys{CKey: k.CKey, RKey: k.RKey}
	}
	var out []string
	for _, b := range s.reg.CheckAll(now, ks) {
		out = append(out, b.String())
	}
	return strings.Join(out, ", ")
}

// SplitBlockedBy cuts a blocked_by that names several keys (as blocksOf
// joins them, with ", ") into one reason a key: a reason starts with its
// kind, and a key may itself hold ", ". One reason comes back whole.
func SplitBlockedBy(s string) []string {
	var out []string
	start := 0
	for i := 0; i+2 < len(s); i++ {
		if s[i] != ',' || s[i+1] != ' ' {
			continue
		}
		rest := s[i+2:]
		for _, p := range []string{"concurrency:", "ratelimit:", "throttled:", "breaker:"} {
			if strings.HasPrefix(rest, p) {
				out = append(out, s[start:i])
				start = i + 2
				break
			}
		}
	}
	return append(out, s[start:])
}

// checkKeys validates a job's keys of one kind: first and more (the
// further ones), trimmed in place. At most MaxKeys, none twice.
func checkKeys(what string, first string, more []string) ([]string, error) {
	if len(more) == 0 {
		return nil, nil
	}
	if first == "" {
		return nil, invalid("a %s is given after an empty one", what)
	}
	if 1+len(more) > MaxKeys {
		return nil, invalid("a job takes at most %d %ss, %d are given", MaxKeys, what, 1+len(more))
	}
	out := make([]string, len(more))
	for i, k := range more {
		k, err := ident(what, k)
		if err != nil {
			return nil, err
		}
		if k == first || slices.Contains(out[:i], k) {
			return nil, invalid("%s %q is given twice", what, k)
		}
		out[i] = k
	}
	return out, nil
}
