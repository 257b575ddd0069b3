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
	"container/heap"
	"sort"
	"sync"
)

// fairScale is the turn a group of weight 1 advances by per reservation.
const fairScale = 1 << 20

// MaxWeight is the largest weight of a fair group (POLICYSET WEIGHT).
const MaxWeight = 1000

// Estimates for --maxmemory (see observe.go): a fair group held by a queue
// (its record and its place in the queue's map) and one more part when its
// jobs have more than one handler; a weight policy. Names add their length.
const (
	FairOverhead   = 128
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

// fair is a fair group of a queue.
type fair struct {
	name   string
	turn   uint64 // the group's next turn
	weight uint32 // cached from the store's weights; 1 when none
	parts  int32  // parts in use: first (when first.g != nil) and more
	first  part   // the part of the group's first handler, kept inline
	more   []*part
}

// part is a handler group's share of a fair group: the lanes of one
// handler and one fair group, ordered by head job.
type part struct {
	f     *fair
	g     *group
	lanes laneHeap
	idx   int // in g.parts, -1 when absent
	count int // lanes of the part, on the heap or not
	// The head's priority and entry order and the group's turn, copied
	// when the part is placed in its group's heap (fixPart).
	prio int64
	turn uint64
	seq  uint64
}

// before is the reservation order of two parts on a heap: priority first,
// then the fair turn, then entry order.
func (p *part) before(o *part) bool {
	if p.prio != o.prio {
		return p.prio > o.prio
	}
	if p.turn != o.turn {
		return behind(p.turn, o.turn)
	}
	return p.seq < o.seq
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
	for _, p := range f.more {
		if p.g == g {
			return p
		}
	}
	var p *part
	if f.first.g == nil {
		p = &f.first
	} else {
		p = &part{idx: -1}
		f.more = append(f.more, p)
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
	f := &fair{name: name, turn: q.turn, weight: q.sh.weights.of(name)}
	f.first.idx = -1
	q.fairs[name] = f
	q.sh.state.Add(fairBytes(name))
	return f
}

// dropPart forgets a part that has no lane left, then its handler group
// and its fair group if they have no part left. Lock must be held.
func (q *queue) dropPart(p *part) {
	f, g := p.f, p.g
	g.count--
	if g.count == 0 {
		delete(q.groups, g.handler)
	}
	f.parts--
	if p == &f.first {
		f.first = part{idx: -1}
	} else {
		for i, o := range f.more {
			if o == p {
				f.more = append(f.more[:i], f.more[i+1:]...)
				break
			}
		}
		q.sh.state.Add(-PartOverhead)
	}
	if f.parts == 0 {
		delete(q.fairs, f.name)
		q.sh.state.Add(-fairBytes(f.name))
	}
}

// eachPart calls fn for every part of f in use.
func (f *fair) eachPart(fn func(*part)) {
	if f.first.g != nil {
		fn(&f.first)
	}
	for _, p := range f.more {
		fn(p)
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

// partHeap orders a handler group's parts (part.before).
type partHeap []*part

func (h partHeap) Len() int           { return len(h) }
func (h partHeap) Less(i, k int) bool { return h[i].before(h[k]) }
func (h partHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].idx, h[k].idx = i, k
}
func (h *partHeap) Push(x any) {
	p := x.(*part)
	p.idx = len(*h)
	*h = append(*h, p)
}
func (h *partHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.idx = -1
	return p
}

var _ heap.Interface = (*partHeap)(nil)
