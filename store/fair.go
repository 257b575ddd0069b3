package store

// Fair groups (JOBPUSH ... GROUP g). Among a queue's eligible jobs of the
// same priority, reservations rotate between fair groups by virtual time
// (stride scheduling): each group has a turn, and a reservation from a
// group moves its turn on by fairScale/weight, so that while groups stay
// backlogged a group of weight 2 is served twice as often as one of weight
// 1, and equal weights take turns. The queue remembers the turn of its last
// reservation: a group is made at that turn, and a group found behind it
// when it is served (it was idle, or blocked, while the others were served)
// is brought up to it first, so having waited earns it the next turn only,
// never a burst. Jobs pushed without GROUP form the group "".
//
// Turns change only when a job is reserved (live or replayed) and when a
// group is made (a push, logged), so a replica and a replayed log reach the
// same turns; the snapshot carries them (OpSnapGroup).
//
// A group is kept while a lane of the queue refers to it (a job of any
// state), and forgotten with its last lane.
//
// Turns are compared as a window on a circle (before), so they may wrap
// around; a group left idle for more than 2^43 reservations of its queue
// would read as ahead, which at a million reservations a second takes
// longer than three months.

import (
	"sort"
	"sync"
)

// fairScale is the turn a group of weight 1 advances by per reservation.
const fairScale = 1 << 20

// MaxWeight is the largest weight of a fair group (POLICYSET WEIGHT).
const MaxWeight = 1000

// Estimates for --maxmemory (see observe.go): a fair group held by a queue
// (its record and its place in the queue's map: BenchmarkFairGroupMemory
// measures 120 bytes for an idle one), and one more part when its jobs
// have more than one handler; a weight policy. Names add their length.
const (
	FairOverhead   = 160
	PartOverhead   = 96
	WeightOverhead = 64
)

// fairBytes is the estimate of the fair group name: the default group,
// which every queue with jobs has, is part of the queue's.
func fairBytes(name string) int64 {
	if name == "" {
		return 0
	}
	return FairOverhead + int64(len(name))
}

// fair is a fair group of a queue. It is kept small (an idle group costs
// its record and its place in the queue's map; BenchmarkFairGroupMemory):
// its name is its key there and in its lanes' keys.
type fair struct {
	turn   uint64 // the group's next turn
	weight uint32 // cached from the store's weights; 1 when none
	parts  int32  // parts in use: first (when first.g != nil) and more
	first  part   // the part of the group's first handler, kept inline
	more   *[]*part
}

// part is a handler group's share of a fair group: the lanes of one
// handler and one fair group, ordered by head job.
type part struct {
	f     *fair
	g     *group
	lanes laneHeap
	idx   int32 // in g.parts, -1 when absent
	count int32 // lanes of the part, on the heap or not
}

// behind reports whether turn a comes before turn b.
func behind(a, b uint64) bool { return int64(a-b) < 0 }

// stride is how far a reservation moves a group of weight w on.
func stride(w uint32) uint64 { return fairScale / uint64(max(w, 1)) }

// partFor returns the part of g and the fair group named name, making
// them. Lock must be held.
func (q *queue) partFor(g *group, name string) *part {
	f := q.fairs[name]
	if f == nil {
		f = q.newFair(name)
	}
	if f.first.g == g {
		return &f.first
	}
	if f.more != nil {
		for _, p := range *f.more {
			if p.g == g {
				return p
			}
		}
	}
	var p *part
	if f.first.g == nil {
		p = &f.first
	} else {
		p = &part{idx: -1}
		if f.more == nil {
			f.more = new([]*part)
		}
		*f.more = append(*f.more, p)
		q.sh.state.Add(PartOverhead)
	}
	p.f, p.g = f, g
	f.parts++
	g.count++
	return p
}

// newFair makes the fair group name, at the queue's current turn. Lock
// must be held.
func (q *queue) newFair(name string) *fair {
	f := &fair{turn: q.turn, weight: q.sh.weights.of(name)}
	f.first.idx = -1
	q.fairs[name] = f
	q.sh.state.Add(fairBytes(name))
	return f
}

// dropPart forgets a part that has no lane left, then its handler group
// and its fair group, named name, if they have no part left. Lock must be
// held.
func (q *queue) dropPart(p *part, name string) {
	f, g := p.f, p.g
	g.count--
	if g.count == 0 {
		delete(q.groups, g.handler)
	}
	f.parts--
	if p == &f.first {
		f.first = part{idx: -1}
	} else {
		more := *f.more
		for i, o := range more {
			if o == p {
				*f.more = append(more[:i], more[i+1:]...)
				break
			}
		}
		if len(*f.more) == 0 {
			f.more = nil
		}
		q.sh.state.Add(-PartOverhead)
	}
	if f.parts == 0 {
		delete(q.fairs, name)
		q.sh.state.Add(-fairBytes(name))
	}
}

// eachPart calls fn for every part of f in use.
func (f *fair) eachPart(fn func(*part)) {
	if f.first.g != nil {
		fn(&f.first)
	}
	if f.more != nil {
		for _, p := range *f.more {
			fn(p)
		}
	}
}

// took moves the fair turn on for a job just taken from lane l for a
// reservation, and puts l and every part of its group back in place. Live
// and replayed reservations both come here. Lock must be held.
func (q *queue) took(l *lane) {
	f := l.p.f
	if behind(f.turn, q.turn) {
		f.turn = q.turn // idle or blocked meanwhile: the current turn, no burst
	}
	q.turn = f.turn
	f.turn += stride(f.weight)
	q.fix(l)
	if f.parts > 1 {
		f.eachPart(func(p *part) {
			if p != l.p {
				q.fixPart(p)
			}
		})
	}
}

// reweigh gives the fair group name weight w in q. Lock must be held.
func (q *queue) reweigh(name string, w uint32) {
	if f := q.fairs[name]; f != nil {
		f.weight = w
	}
}

// weights are the fair groups' weights, store-wide (POLICYSET WEIGHT). A
// change holds mu and every shard lock, so a reader holding any shard lock
// reads m unguarded.
type weights struct {
	mu sync.Mutex // protects m, with every shard lock (see above)
	m  map[string]uint32
}

// of is the weight of group name: 1 unless set. mu or a shard lock must be
// held.
func (w *weights) of(name string) uint32 {
	if v, ok := w.m[name]; ok {
		return v
	}
	return 1
}

// WeightInfo is a fair group's weight (POLICYGET WEIGHT, POLICYLIST).
type WeightInfo struct {
	Group  string
	Weight int64
}

// SetWeight gives fair group g weight n (POLICYSET WEIGHT): in every queue,
// while its groups stay backlogged, g is served n times as often as a
// group of weight 1.
func (s *Store) SetWeight(now int64, g string, n int64) error {
	if n < 1 || n > MaxWeight {
		return invalid("weight must be between 1 and %d", MaxWeight)
	}
	return s.changeWeight(now, &Record{Op: OpWeight, PolicyKey: g, Limit: n})
}

// DeleteWeight gives g the default weight, 1, again (POLICYDEL WEIGHT) and
// reports whether it had another.
func (s *Store) DeleteWeight(now int64, g string) (bool, error) {
	r := &Record{Op: OpWeight, PolicyKey: g}
	err := s.changeWeight(now, r)
	return r.Existed, err
}

// changeWeight applies and logs a weight record (Limit 0: delete),
// holding every shard lock, so that it is ordered against every
// reservation of every queue in the log as it was applied.
func (s *Store) changeWeight(now int64, r *Record) error {
	key, err := ident("group", r.PolicyKey)
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
	for _, sh := range s.shards {
		sh.mu.Lock()
		s.drain(sh)
	}
	s.weights.mu.Lock()
	old, had := s.weights.m[key]
	switch {
	case r.Limit == 0 && !had, r.Limit != 0 && had && int64(old) == r.Limit:
		err = errUnchanged
	case r.Limit != 0 && !had:
		err = s.admitState(WeightOverhead + int64(len(key)))
	}
	if err == nil {
		r.Existed = had && r.Limit == 0
		s.log(*r, &fx)
		s.applyWeightLocked(r)
	}
	s.weights.mu.Unlock()
	for _, sh := range s.shards {
		sh.mu.Unlock()
	}
	s.policyMu.Unlock()
	s.finish(&fx)
	if err == errUnchanged {
		return nil
	}
	if err != nil {
		return err
	}
	return s.durable(&fx)
}

// applyWeight applies a weight record while replaying.
func (s *Store) applyWeight(r *Record) {
	for _, sh := range s.shards {
		sh.mu.Lock()
	}
	s.weights.mu.Lock()
	s.applyWeightLocked(r)
	s.weights.mu.Unlock()
	for _, sh := range s.shards {
		sh.mu.Unlock()
	}
}

// applyWeightLocked sets or deletes (Limit 0) a weight. weights.mu and
// every shard lock must be held.
func (s *Store) applyWeightLocked(r *Record) {
	_, had := s.weights.m[r.PolicyKey]
	w := uint32(1)
	switch {
	case r.Limit == 0:
		if had {
			delete(s.weights.m, r.PolicyKey)
			s.state.Add(-WeightOverhead - int64(len(r.PolicyKey)))
		}
	default:
		w = uint32(r.Limit)
		if !had {
			s.state.Add(WeightOverhead + int64(len(r.PolicyKey)))
		}
		s.weights.m[r.PolicyKey] = w
	}
	for _, sh := range s.shards {
		for _, q := range sh.queues {
			q.reweigh(r.PolicyKey, w)
		}
	}
}

// GetWeight returns the weight set for group g (POLICYGET WEIGHT).
func (s *Store) GetWeight(g string) (WeightInfo, bool, error) {
	g, err := ident("group", g)
	if err != nil {
		return WeightInfo{}, false, err
	}
	s.weights.mu.Lock()
	defer s.weights.mu.Unlock()
	w, ok := s.weights.m[g]
	return WeightInfo{Group: g, Weight: int64(w)}, ok, nil
}

// Weights lists the weights set, by group name (POLICYLIST).
func (s *Store) Weights() []WeightInfo {
	s.weights.mu.Lock()
	out := make([]WeightInfo, 0, len(s.weights.m))
	for g, w := range s.weights.m {
		out = append(out, WeightInfo{Group: g, Weight: int64(w)})
	}
	s.weights.mu.Unlock()
	sort.Slice(out, func(i, k int) bool { return out[i].Group < out[k].Group })
	return out
}

// partKey places a part in its handler group's heap: its head's priority
// and entry order and its fair group's turn, copied there when it is
// placed (fixPart), so that the heap's comparisons read the heap's own
// array, not parts scattered in memory: with 100,000 groups a reservation
// moves one part through some 9 levels of the heap.
type partKey struct {
	prio int64
	turn uint64
	seq  uint64
	p    *part
}

// before is the reservation order: priority first, then the fair turn,
// then entry order.
func (a *partKey) before(b *partKey) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	if a.turn != b.turn {
		return behind(a.turn, b.turn)
	}
	return a.seq < b.seq
}

// partHeap is a 4-ary min-heap of parts by partKey: half the depth of a
// binary heap, and a node's four children share two cache lines.
type partHeap []partKey

const partArity = 4

func (h partHeap) set(i int, k partKey) {
	h[i] = k
	k.p.idx = int32(i)
}

func (h partHeap) up(i int) {
	k := h[i]
	for i > 0 {
		parent := (i - 1) / partArity
		if !k.before(&h[parent]) {
			break
		}
		h.set(i, h[parent])
		i = parent
	}
	h.set(i, k)
}

func (h partHeap) down(i int) {
	k := h[i]
	n := len(h)
	for {
		first := i*partArity + 1
		if first >= n {
			break
		}
		best := first
		for c := first + 1; c < first+partArity && c < n; c++ {
			if h[c].before(&h[best]) {
				best = c
			}
		}
		if !h[best].before(&k) {
			break
		}
		h.set(i, h[best])
		i = best
	}
	h.set(i, k)
}

// push adds k, whose part is on no heap.
func (h *partHeap) push(k partKey) {
	*h = append(*h, k)
	h.up(len(*h) - 1)
}

// fix re-places the entry at i with key k.
func (h partHeap) fix(i int, k partKey) {
	old := h[i]
	h[i] = k
	if k.before(&old) {
		h.up(i)
	} else {
		h.down(i)
	}
}

// remove takes the entry at i out.
func (h *partHeap) remove(i int) {
	old := *h
	last := len(old) - 1
	p := old[i].p
	if i != last {
		old[i] = old[last]
	}
	old[last] = partKey{}
	*h = old[:last]
	if i != last {
		h.fix(i, old[i])
	}
	p.idx = -1
	if c := cap(*h); c > 64 && len(*h) < c/4 {
		// Give back what a past backlog grew: idle groups hold no place.
		*h = append(make(partHeap, 0, c/2), *h...)
	}
}
