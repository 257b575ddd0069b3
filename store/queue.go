package store

import (
	"container/heap"
	"unsafe"

	"sluice/backpressure"
)

// A queue's queued jobs live in lanes: one lane per (handler,
// concurrency_key, rate_limit_key). Inside a lane, jobs are kept in priority
// buckets (a heap of buckets, highest priority first), each a FIFO by entry
// into queued. Every job of a lane is blocked or admitted by the same keys, so
// a lane whose key refuses admissions is parked off the heaps as a whole and
// costs nothing until its key may admit again. Lanes of one handler and
// one fair group (JOBPUSH's GROUP, fair.go) form a part (a heap of lanes
// ordered by their head job); the parts of one handler form a handler group
// (a heap of parts ordered by head priority, then their fair group's turn,
// then head entry order); the queue keeps a heap of handler groups ordered
// the same way by their best part. Reserve therefore looks at O(log)
// entries whatever is blocked, and a HANDLERS filter looks only at the
// handler groups it names.
//
// All of it is guarded by the lock of the shard that owns the queue.

type laneKey struct {
	handler, ckey, rkey, group string
	more                       string // the further keys of a job of several (multikey.go); "" for none
}

// keyOf is the lane's policy key of kind (or of the park kinds below).
func (k laneKey) keyOf(kind backpressure.Kind) string {
	if kind == backpressure.Concurrency || kind == parkThrottleC {
		return k.ckey
	}
	return k.rkey
}

// A lane refused by a throttle is parked under the kind that says which
// of its keys the throttle is on: the two may both be throttled, and it
// is listed once per kind.
// Likewise a lane refused by a circuit breaker (breaker.go) is parked
// under the breaker's key ("handler:name" and the like) with the kind of
// what the breaker watches: its queue, its handler, its concurrency key or
// its rate-limit key.
const (
	parkThrottleC = backpressure.Throttle // on its concurrency key
	parkBrkQ      = backpressure.Breaker
	parkBrkH      = parkBrkQ + 1
	parkBrkC      = parkBrkQ + 2
	parkBrkR      = parkBrkQ + 3
	parkThrottleR = parkBrkQ + 4 // on its rate-limit key
	numParkKinds  = parkThrottleR + 1
)

// parkedKey is the key lane l of q is listed under in q.parked for kind.
func (q *queue) parkedKey(l *lane, kind backpressure.Kind) parkKey {
	switch kind {
	case parkBrkQ:
		return parkKey{kind, brkID{brkQueue, q.name}.String()}
	case parkBrkH:
		return parkKey{kind, brkID{brkHandler, l.key.handler}.String()}
	case parkBrkC:
		return parkKey{kind, brkID{brkKey, l.key.ckey}.String()}
	case parkBrkR:
		return parkKey{kind, brkID{brkKey, l.key.rkey}.String()}
	}
	return parkKey{kind, l.key.keyOf(kind)}
}

type parkKey struct {
	kind backpressure.Kind
	key  string
}

type queue struct {
	name    string
	sh      *shard
	paused  bool
	lanes   map[laneKey]*lane
	groups  map[string]*group   // handler groups, by handler
	fairs   map[string]*fair    // fair groups, by name ("" for jobs pushed without GROUP)
	turn    uint64              // the fair turn of the last reservation (fair.go)
	heap    groupHeap           // groups with at least one unparked, non-empty lane
	parked  map[parkKey][]*lane // lanes parked on a key; may hold stale entries
	seq     uint64              // entry order into queued
	created uint64              // push order
	tseq    uint64              // timer arming order
	counts  [numStates]int64
	sets    *stateSets // jobs by state but queued, for JOBSCAN (jobscan.go); nil until one leaves queued
	jobs    int64      // jobs held (any state) that belong to the queue
	pushed  int64
	succ    int64
	failed  int64
	dead    bool          // removed from its shard; no job refers to it
	obs     QueueObserver // from the store's Observer, asked once; nil without one
	// bytes is the estimated memory of the queue's jobs (JobBytes), for
	// the memory shares; shareSet and shareRules cache the shares it
	// matches (shares.go).
	bytes      int64
	shareSet   *shareSet
	shareRules []*shareRule

	// keyed are the lanes of jobs with a policy key, in no order, each
	// at its lane.kidx: what QueueStats walks, a slice per hold
	// (stats.go). statsGen numbers its walks.
	keyed    []*lane
	statsGen uint64
}

// group is a handler group: the parts of one handler.
type group struct {
	handler string
	parts   partHeap
	idx     int // in queue.heap, -1 when absent
	count   int // parts of this handler, on the heap or not
}

type lane struct {
	// Read or written by every push, reserve and ack of the lane: first,
	// in the lane's first four cache lines, so that a reservation from a
	// lane not touched for a while (one of 100,000 fair groups) reads as
	// few lines as it can.
	q        *queue
	p        *part
	n        int       // live queued jobs
	idx      int       // in p.lanes, -1 when absent
	refs     int64     // jobs of any state that belong to the lane
	more     *laneMore // a lane of several keys of a kind (multikey.go); nil for most
	buckets  bucketHeap
	headPrio int64  // the head's priority and entry order, copied when the
	headSeq  uint64 // lane is placed in its group's heap (fix), so that heap comparisons read the lanes themselves
	parked   bool
	dead     bool
	parkGen  uint32            // bumped at every park, so a stale unpark timer is ignored
	keys     backpressure.Keys // the lane's policy keys, with their state cached

	// first is the lane's own bucket, used whenever it is free: a lane of
	// one priority (the common case) never allocates another, and a lane
	// drained as fast as it fills reuses it at every push.
	first bucket

	// Read by fewer operations.

	// byPrio finds the bucket of a priority once the lane has held two
	// priorities at once; until then it is nil and the lane has at most
	// one bucket. Once made, it holds every bucket.
	byPrio map[int64]*bucket
	spare  *bucket // the last other bucket emptied, kept for reuse
	aside  *chunk  // an emptied chunk, kept for the lane's next packed job

	key    laneKey
	brks   []*breaker // the breakers over the lane's jobs, as of brkGen (breakers.over)
	brkGen uint64
	on     parkKey
	// listed[kind] is set while the lane is in q.parked under its key of
	// that kind, so parking again (after a rate window reopened it, say)
	// does not list it twice.
	listed [numParkKinds]bool // by Kind (1 and 2) and park kind (3 and on)
	// pos[inKeyLanes][kind] is the lane's place in its shard's list of
	// lanes of its key of that kind (see keyLanes); pos[inParked][kind]
	// its place in q.parked under that key, while listed[kind].
	pos [2][numParkKinds]int

	kidx     int    // in q.keyed, when the lane has a key
	statsGen uint64 // the last QueueStats walk that judged the lane
}

// The lists of lanes a lane keeps its place in (lane.pos).
const (
	inKeyLanes = iota
	inParked
)

// addLane appends l to lanes, the list named by list under on.
func addLane(lanes []*lane, l *lane, list int, on parkKey) []*lane {
	l.setPlace(list, on, len(lanes))
	return append(lanes, l)
}

// removeLane takes l out of lanes, the list named by list under on, in
// O(1), moving the last lane to its place, and reports whether l was
// there.
func removeLane(lanes []*lane, l *lane, list int, on parkKey) ([]*lane, bool) {
	i, ok := l.placeOf(list, on)
	if !ok || i >= len(lanes) || lanes[i] != l {
		return lanes, false
	}
	last := len(lanes) - 1
	moved := lanes[last]
	lanes[i] = moved
	moved.setPlace(list, on, i)
	lanes[last] = nil
	if l.more != nil {
		l.more.forget(list, on)
	}
	return lanes[:last], true
}

// ahead is the reservation order between two lanes on a heap, by their
// heads as of their last fix.
func ahead(a, b *lane) bool { return precedes(a.headPrio, a.headSeq, b.headPrio, b.headSeq) }

// bucket is one priority's FIFO: packed entries in chunks, and a ring of
// *job, each in entry order; its head is the older of their fronts (see
// packed.go).
type bucket struct {
	prio        int64
	jobs        ring[*job]
	first, last *chunk // every chunk holds a live entry, but the last may not
	np          int    // live packed entries
	grown       int    // chunks made for the bucket since it was made: the next one's size
	idx         int
}

// keyLanes lists a shard's lanes that carry one policy key. POLICYGET's
// waiting figure sums their queued jobs when it is asked for, so that
// pushes and reservations keep no per-key count of their own.
type keyLanes struct {
	lanes []*lane
}

func precedes(prioA int64, seqA uint64, prioB int64, seqB uint64) bool {
	if prioA != prioB {
		return prioA > prioB
	}
	return seqA < seqB
}

// head is the lane's next job. The lane must be non-empty.
func (l *lane) head() ref { return l.topBucket().front() }

// topBucket is the lane's highest-priority bucket: its own first bucket
// when that leads, found without reading the bucket heap's array (one
// more cold line when the lane was not touched for a while). The lane
// must hold a bucket.
func (l *lane) topBucket() *bucket {
	if l.first.idx == 0 {
		return &l.first
	}
	return l.buckets[0]
}

// top is the priority and entry order of the lane's next job. The lane
// must be non-empty.
func (l *lane) top() (int64, uint64) {
	b := l.topBucket()
	return b.prio, b.front().seq()
}

// live reports whether a lane entry is still a queued job of that lane
// (cancelled jobs leave stale entries behind, skipped lazily).
func live(j *job) bool { return j.state == Queued && !j.dropped }

// bucketOf returns the lane's bucket of priority prio, or nil.
func (l *lane) bucketOf(prio int64) *bucket {
	if l.byPrio != nil {
		return l.byPrio[prio]
	}
	if len(l.buckets) > 0 && l.buckets[0].prio == prio {
		return l.buckets[0]
	}
	return nil
}

// pushJob appends j to its priority bucket.
func (l *lane) pushJob(j *job) {
	l.bucketFor(j.priority).jobs.push(j)
	l.n++
}

// bucketFor returns the lane's bucket of priority prio, creating it.
func (l *lane) bucketFor(prio int64) *bucket {
	var b *bucket
	if len(l.buckets) > 0 && l.buckets[0].prio == prio {
		b = l.buckets[0] // the common case: one priority
	} else {
		b = l.bucketOf(prio)
	}
	if b == nil {
		switch {
		case l.first.idx < 0:
			b = &l.first
		case l.spare != nil:
			b, l.spare = l.spare, nil
		default:
			b = &bucket{}
		}
		b.prio, b.grown = prio, 0
		if l.byPrio == nil && len(l.buckets) > 0 {
			l.byPrio = make(map[int64]*bucket, 2)
			for _, o := range l.buckets {
				l.byPrio[o.prio] = o
			}
		}
		if l.byPrio != nil {
			l.byPrio[prio] = b
		}
		heap.Push(&l.buckets, b)
	}
	return b
}

// popHead removes and returns the head job, unpacking it if packed.
func (l *lane) popHead() *job {
	var j *job
	if r := l.head(); r.j != nil {
		j = l.topBucket().jobs.popFront()
	} else {
		j = l.q.sh.unpack(r.c, r.off)
		j.loose = false
	}
	l.n--
	l.clean()
	return j
}

// clean restores the invariant that the top bucket starts with a live job,
// dropping stale entries and empty buckets.
func (l *lane) clean() {
	for len(l.buckets) > 0 {
		b := l.topBucket()
		for b.jobs.len() > 0 && !live(b.jobs.front()) {
			b.jobs.popFront()
		}
		if b.jobs.len() > 0 || b.np > 0 {
			return
		}
		heap.Pop(&l.buckets)
		if l.byPrio != nil {
			delete(l.byPrio, b.prio)
		}
		b.dropChunks(l)
		if b != &l.first {
			l.spare = b
		}
	}
}

// reset forgets every entry.
func (l *lane) reset() {
	for _, b := range l.buckets {
		b.idx = -1
		b.jobs = ring[*job]{}
		b.dropChunks(l)
	}
	l.buckets = nil
	l.byPrio = nil
	l.spare = nil
	l.n = 0
}

// wanted reports whether the lane should be on its group's heap.
func (l *lane) wanted() bool { return l.n > 0 && !l.parked && !l.dead }

// fix puts lane l (whose head or status may have changed), its part and
// its group in the right place of the heaps. Lock must be held.
func (q *queue) fix(l *lane) {
	p := l.p
	if l.wanted() {
		l.headPrio, l.headSeq = l.top()
	}
	switch {
	case l.wanted() && l.idx < 0:
		heap.Push(&p.lanes, l)
	case l.wanted():
		heap.Fix(&p.lanes, l.idx)
	case l.idx >= 0:
		heap.Remove(&p.lanes, l.idx)
	}
	q.fixPart(p)
}

// fixPart puts part p (whose best lane or fair turn may have changed) and
// its group in the right place of the heaps. Lock must be held.
func (q *queue) fixPart(p *part) {
	g := p.g
	switch {
	case len(p.lanes) > 0:
		top := p.lanes[0]
		k := partKey{prio: top.headPrio, turn: p.f.turn, seq: top.headSeq, p: p}
		if p.idx < 0 {
			g.parts.push(k)
		} else {
			g.parts.fix(int(p.idx), k)
		}
	case p.idx >= 0:
		g.parts.remove(int(p.idx))
	}
	switch {
	case len(g.parts) > 0 && g.idx < 0:
		heap.Push(&q.heap, g)
	case len(g.parts) > 0:
		heap.Fix(&q.heap, g.idx)
	case g.idx >= 0:
		heap.Remove(&q.heap, g.idx)
	}
}

// laneFor returns the lane of (handler, ckey, rkey, group, more),
// creating it; ckeys and rkeys are the further keys more encodes. Lock
// must be held.
func (q *queue) laneFor(k laneKey, ckeys, rkeys []string) *lane {
	if l := q.lanes[k]; l != nil {
		return l
	}
	g := q.groups[k.handler]
	if g == nil {
		g = &group{handler: k.handler, idx: -1}
		q.groups[k.handler] = g
	}
	p := q.partFor(g, k.group)
	p.count++
	l := &lane{q: q, key: k, p: p, idx: -1, keys: backpressure.Keys{CKey: k.ckey, RKey: k.rkey}}
	l.first.idx = -1
	if k.more != "" {
		l.more = newMore(l, ckeys, rkeys)
		for _, ks := range l.more.all {
			q.sh.reg.Hold(ks)
		}
		for _, key := range l.more.ckeys {
			q.sh.listLane(backpressure.Concurrency, key, l)
		}
		for _, key := range l.more.rkeys {
			q.sh.listLane(backpressure.RateLimit, key, l)
		}
	} else {
		if k.ckey != "" {
			q.sh.listLane(backpressure.Concurrency, k.ckey, l)
			q.sh.reg.Hold(&l.keys)
		}
		if k.rkey != "" {
			q.sh.listLane(backpressure.RateLimit, k.rkey, l)
		}
	}
	q.lanes[k] = l
	if l.keyed() {
		l.kidx = len(q.keyed)
		q.keyed = append(q.keyed, l)
	}
	q.sh.state.Add(laneBytes(l))
	return l
}

// laneRef returns the lane of the job r describes, creating it, and
// counts the job in it. Lock must be held.
func (q *queue) laneRef(r *Record) *lane {
	l := q.laneFor(laneKey{r.Handler, r.CKey, r.RKey, r.Group, moreKey(r.CKeys, r.RKeys)}, r.CKeys, r.RKeys)
	l.refs++
	return l
}

// unref drops a job's reference to its lane, deleting the lane when nothing
// refers to it. Lock must be held.
func (q *queue) unref(l *lane) {
	l.refs--
	if l.refs > 0 {
		return
	}
	l.dead = true
	q.fix(l)
	delete(q.lanes, l.key)
	if l.keyed() {
		q.unlistKeyed(l)
	}
	q.sh.state.Add(-laneBytes(l))
	l.aside = nil
	for _, on := range q.parkedOn(l) {
		q.unlistParked(on, l)
	}
	for _, key := range l.ckeys() {
		q.sh.unlistLane(backpressure.Concurrency, key, l)
	}
	for _, key := range l.rkeys() {
		q.sh.unlistLane(backpressure.RateLimit, key, l)
	}
	if l.more != nil {
		for _, ks := range l.more.all {
			q.sh.reg.Drop(ks)
		}
	} else {
		q.sh.reg.Drop(&l.keys)
	}
	l.p.count--
	if l.p.count == 0 {
		q.dropPart(l.p, l.key.group)
	}
}

// enqueue makes j queued at the back of its lane. Lock must be held.
func (q *queue) enqueue(j *job) {
	q.seq++
	j.seq = q.seq
	l := j.ln
	had, old := l.n > 0, uint64(0)
	if had {
		_, old = l.top()
	}
	l.pushJob(j)
	q.placed(l, had, old)
}

// placed fixes lane l after a push when its head changed (had: it held
// jobs before, the first of them at entry order old). Lock must be held.
func (q *queue) placed(l *lane, had bool, old uint64) {
	if !had || l.idx < 0 {
		q.fix(l)
	} else if _, seq := l.top(); seq != old {
		q.fix(l)
	}
}

// enqueuePacked makes the job p describes queued at the back of lane l, as
// a packed entry, and indexes it. A generated id (gen set) is made here,
// again until it is new; a given one that is not new is refused. limit,
// when set, may refuse the job after it is indexed (it then takes it out
// of the index again). It returns the id, or false. Lock must be held.
func (q *queue) enqueuePacked(l *lane, p *packing, prio int64, gen func() string, limit func() bool) (string, bool) {
	b := l.bucketOf(prio)
	c := l.chunkFor(b, p)
	ix := q.sh.index
	for {
		if gen != nil {
			p.id = gen()
			if c.n+c.size(p) > len(c.buf) { // a longer id than the chunk was picked for
				c = l.chunkFor(b, p)
			}
		}
		end := c.put(p)
		// The entry is written before it is indexed: from then on the
		// index may read its id.
		id := c.idAt(c.n)
		ids := unsafe.String(unsafe.SliceData(id), len(id))
		r := ref{c: c, off: c.n}
		if !ix.putIfAbsent(ids, r) {
			if gen != nil {
				continue
			}
			q.keepAside(l, c)
			return "", false
		}
		if limit != nil && !limit() {
			ix.remove(ids, r)
			q.keepAside(l, c)
			return "", false
		}
		had, old := l.n > 0, uint64(0)
		if had {
			_, old = l.top()
		}
		l.commitPacked(c, end, prio)
		q.placed(l, had, old)
		return ids, true
	}
}

// keepAside keeps a chunk picked for a refused packed job for the next
// one, if it is in no bucket. Lock must be held.
func (q *queue) keepAside(l *lane, c *chunk) {
	if c.b == nil {
		l.aside = c
	}
}

// removeQueued takes a job that just left queued for a terminal state out
// of its lane wherever it is: the entry stays behind, stale, and is skipped
// later. A job unpacked for this (loose) has no entry left, and the dead
// one it leaves may be the lane's head. Lock must be held.
func (q *queue) removeQueued(j *job) {
	l := j.ln
	wasHead := j.loose || l.n > 0 && l.head().j == j
	j.loose = false
	l.n--
	switch {
	case l.n == 0:
		l.reset()
	case wasHead:
		l.clean()
	default:
		return
	}
	q.fix(l)
}

// park takes lane l off the heaps until key frees. Lock must be held.
func (q *queue) park(l *lane, on parkKey) {
	l.parked = true
	l.parkGen++
	l.on = on
	if !l.isListed(on) {
		if q.parked == nil {
			q.parked = make(map[parkKey][]*lane)
		}
		q.parked[on] = addLane(q.parked[on], l, inParked, on)
		l.setListed(on, true)
	}
	q.fix(l)
}

// unlistParked takes a dying lane out of q.parked, where it is listed
// under key on, so that lanes which come and go on a key that never frees
// do not pile up there. Lock must be held.
func (q *queue) unlistParked(on parkKey, l *lane) {
	lanes, _ := removeLane(q.parked[on], l, inParked, on)
	if len(lanes) == 0 {
		delete(q.parked, on)
	} else {
		q.parked[on] = lanes
	}
	l.setListed(on, false)
}

// unparkKey puts back every lane parked on key. Lock must be held.
func (q *queue) unparkKey(on parkKey) bool {
	lanes := q.parked[on]
	if lanes == nil {
		return false
	}
	delete(q.parked, on)
	any := false
	for _, l := range lanes {
		l.setListed(on, false)
		if l.parked && l.on == on && !l.dead {
			l.parked = false
			q.fix(l)
			any = true
		}
	}
	return any
}

// unparkLane puts back one lane (a rate window opened). Lock must be held.
func (q *queue) unparkLane(l *lane, gen uint32) bool {
	if !l.parked || l.parkGen != gen || l.dead {
		return false
	}
	l.parked = false
	q.fix(l)
	return true
}

// groupHeap orders handler groups by their best part.
type groupHeap []*group

func (h groupHeap) Len() int { return len(h) }
func (h groupHeap) Less(i, k int) bool {
	return h[i].parts[0].before(&h[k].parts[0])
}
func (h groupHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].idx, h[k].idx = i, k
}
func (h *groupHeap) Push(x any) {
	g := x.(*group)
	g.idx = len(*h)
	*h = append(*h, g)
}
func (h *groupHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	g.idx = -1
	return g
}

// laneHeap orders lanes by their head job.
type laneHeap []*lane

func (h laneHeap) Len() int           { return len(h) }
func (h laneHeap) Less(i, k int) bool { return ahead(h[i], h[k]) }
func (h laneHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].idx, h[k].idx = i, k
}
func (h *laneHeap) Push(x any) {
	l := x.(*lane)
	l.idx = len(*h)
	*h = append(*h, l)
}
func (h *laneHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.idx = -1
	return l
}

// bucketHeap orders a lane's buckets, highest priority first.
type bucketHeap []*bucket

func (h bucketHeap) Len() int           { return len(h) }
func (h bucketHeap) Less(i, k int) bool { return h[i].prio > h[k].prio }
func (h bucketHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].idx, h[k].idx = i, k
}
func (h *bucketHeap) Push(x any) {
	b := x.(*bucket)
	b.idx = len(*h)
	*h = append(*h, b)
}
func (h *bucketHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	b.idx = -1
	return b
}
