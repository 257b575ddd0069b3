package store

import (
	"fmt"
	"slices"
	"sort"

	"sluice/backpressure"
)

// CheckInvariants verifies the store's internal consistency: every held job
// is in exactly one place for its state (a live lane entry when queued, an
// armed timer when scheduled, retry_pending, reserved or running, nothing
// otherwise), per-queue state counts match the jobs, lanes and heaps agree,
// and the concurrency counters equal the reserved + running jobs per key.
// The running memory estimates of queues, lanes, policies and expired
// tokens equal a recount.
// Packed jobs are live entries of their lane's chunks, each indexed at its
// place, in entry order; dead entries are not indexed. It is meant for
// tests; call it while no other operation runs.
func (s *Store) CheckInvariants() error {
	s.drainAll()
	if err := s.checkCron(); err != nil {
		return err
	}
	refs := s.index.all()
	if int64(len(refs)) != s.Len() {
		return fmt.Errorf("index holds %d jobs, total says %d", len(refs), s.Len())
	}
	var jobs []*job
	indexedPacked := map[ref]bool{}
	var bytes int64
	shardJobs := map[*shard]int64{}
	shardBytes := map[*shard]int64{}
	counts := map[*queue]*[numStates]int64{}
	for _, r := range refs {
		if r.j != nil {
			jobs = append(jobs, r.j)
			bytes += r.j.bytes()
			shardJobs[r.j.ln.q.sh]++
			shardBytes[r.j.ln.q.sh] += r.j.bytes()
			continue
		}
		c := r.c
		if c.b == nil || r.off < c.head || r.off >= c.n || c.dead(r.off) {
			return fmt.Errorf("the index names a packed entry at %d of a chunk that does not hold it live", r.off)
		}
		e := c.entry(r.off)
		if s.index.get(e.id) != r {
			return fmt.Errorf("packed job %s is indexed at a place its id does not find", e.id)
		}
		indexedPacked[r] = true
		bytes += e.bytes()
		q := c.ln.q
		shardJobs[q.sh]++
		shardBytes[q.sh] += e.bytes()
		if q.dead || q.sh.queues[q.name] != q || c.ln.dead || q.lanes[c.ln.key] != c.ln {
			return fmt.Errorf("packed job %s belongs to a lane or queue that is not held", e.id)
		}
		if counts[q] == nil {
			counts[q] = new([numStates]int64)
		}
		counts[q][Queued]++
	}
	if bytes != s.Bytes() {
		return fmt.Errorf("jobs hold %d bytes by the estimate, the running total says %d", bytes, s.Bytes())
	}
	for i, sh := range s.shards {
		if d := sh.nextDue.Load(); d < s.minDue.Load() {
			return fmt.Errorf("shard %d is due at %d, before the store's bound %d", i, d, s.minDue.Load())
		}
		if len(sh.timers) > 0 && sh.timers[0].dueAt < sh.nextDue.Load() {
			return fmt.Errorf("shard %d has a timer at %d, before its due time %d", i, sh.timers[0].dueAt, sh.nextDue.Load())
		}
		if len(sh.lanes) > 0 && sh.lanes[0].at < sh.nextDue.Load() {
			return fmt.Errorf("shard %d has a lane timer at %d, before its due time %d", i, sh.lanes[0].at, sh.nextDue.Load())
		}
		if sh.jobs.Load() != shardJobs[sh] || sh.bytes.Load() != shardBytes[sh] {
			return fmt.Errorf("shard %d counts %d jobs of %d bytes, holds %d of %d", i,
				sh.jobs.Load(), sh.bytes.Load(), shardJobs[sh], shardBytes[sh])
		}
	}
	if s.limited && (s.total.Load() != s.Len() || s.bytes.Load() != s.Bytes()) {
		return fmt.Errorf("store-wide counts say %d jobs of %d bytes, shards %d of %d",
			s.total.Load(), s.bytes.Load(), s.Len(), s.Bytes())
	}
	active := map[string]int64{}
	for _, j := range jobs {
		if j.dropped {
			return fmt.Errorf("job %s is dropped but indexed", j.id)
		}
		if j.loose {
			return fmt.Errorf("job %s was unpacked and left loose", j.id)
		}
		q := j.ln.q
		if q.dead || q.sh.queues[q.name] != q {
			return fmt.Errorf("job %s belongs to a queue that is not held", j.id)
		}
		if counts[q] == nil {
			counts[q] = new([numStates]int64)
		}
		counts[q][j.state]++
		if tabled[j.state] && (q.sets == nil || q.sets[j.state].lookup(s.index.hash(j.id), j.id).j != j) {
			return fmt.Errorf("job %s is %s but not in its queue's %s set", j.id, j.state, j.state)
		}
		if j.ln.dead || q.lanes[j.ln.key] != j.ln {
			return fmt.Errorf("job %s refers to a lane its queue does not hold", j.id)
		}
		armed := j.tidx >= 0 && int(j.tidx) < len(q.sh.timers) && q.sh.timers[j.tidx] == j
		switch j.state {
		case Scheduled, RetryPending, Reserved, Running:
			if !armed {
				return fmt.Errorf("job %s is %s without a timer", j.id, j.state)
			}
		case Queued, Waiting:
			if armed != (j.deadline() != 0) {
				return fmt.Errorf("job %s is %s with deadline %d, armed %v", j.id, j.state, j.deadline(), armed)
			}
		default:
			if j.tidx >= 0 {
				return fmt.Errorf("job %s is %s with a timer", j.id, j.state)
			}
		}
		if j.state == Reserved || j.state == Running {
			for _, k := range j.ln.ckeys() {
				active[k]++
			}
		}
		if j.state.Terminal() != (j.retainGen.Load()%2 == 1) {
			return fmt.Errorf("job %s is %s but retention says %d", j.id, j.state, j.retainGen.Load())
		}
	}
	seenQueued := map[*job]bool{}
	seenPacked := map[ref]bool{}
	for _, sh := range s.shards {
		for i, j := range sh.timers {
			if int(j.tidx) != i {
				return fmt.Errorf("timer heap index of job %s is %d, not %d", j.id, j.tidx, i)
			}
		}
		if err := sh.checkKeyLanes(); err != nil {
			return err
		}
		for name, q := range sh.queues {
			if q.name != name || q.sh != sh {
				return fmt.Errorf("queue %q is misfiled", name)
			}
			c := counts[q]
			if c == nil {
				c = new([numStates]int64)
			}
			var total int64
			for st := Scheduled; st < numStates; st++ {
				if q.counts[st] != c[st] {
					return fmt.Errorf("queue %q counts %d %s jobs, holds %d", name, q.counts[st], st, c[st])
				}
				if tabled[st] && q.sets != nil && int64(q.sets[st].n) != c[st] {
					return fmt.Errorf("queue %q's %s set holds %d jobs, not %d", name, st, q.sets[st].n, c[st])
				}
				total += c[st]
			}
			if total != q.jobs {
				return fmt.Errorf("queue %q counts %d jobs, holds %d", name, q.jobs, total)
			}
			if q.jobs == 0 && !q.paused {
				return fmt.Errorf("queue %q is empty but held", name)
			}
			if err := s.checkLanes(q, seenQueued, seenPacked); err != nil {
				return err
			}
		}
	}
	for _, j := range jobs {
		if (j.state == Queued) != seenQueued[j] {
			return fmt.Errorf("job %s is %s but lane membership is %v", j.id, j.state, seenQueued[j])
		}
	}
	if len(seenPacked) != len(indexedPacked) {
		return fmt.Errorf("lanes hold %d live packed entries, the index %d", len(seenPacked), len(indexedPacked))
	}
	holders := map[string]int64{}
	for _, sh := range s.shards {
		for key, kl := range sh.keyLanes[backpressure.Concurrency] {
			holders[key] += int64(len(kl.lanes))
		}
	}
	var state, scan int64
	var withSets []string
	for _, sh := range s.shards {
		for _, q := range sh.queues {
			state += QueueBytes(q.name)
			for _, l := range q.lanes {
				state += laneBytes(l)
			}
			scan += q.setsBytes()
			if q.sets != nil {
				withSets = append(withSets, q.name)
			}
			for name, f := range q.fairs {
				more := 0
				if f.more != nil {
					more = len(*f.more)
				}
				state += fairBytes(name) + PartOverhead*int64(more)
			}
		}
	}
	for g := range s.weights.m {
		state += WeightOverhead + int64(len(g))
	}
	slices.Sort(withSets)
	if s.names.mu.Lock(); !slices.Equal(s.names.names, withSets) {
		s.names.mu.Unlock()
		return fmt.Errorf("the job search's queue names are %q, the queues with tables %q", s.names.names, withSets)
	}
	s.names.mu.Unlock()
	for _, e := range s.rotation.entries() {
		state += RotationOverhead + int64(len(e.worker))
	}
	if got := s.state.Load(); got != state {
		return fmt.Errorf("queues and lanes take %d bytes by the estimate, the running total says %d", state, got)
	}
	if got := s.scanBytes.Load(); got != scan {
		return fmt.Errorf("tables of jobs by state take %d bytes by the estimate, the running total says %d", scan, got)
	}
	if got, want := s.reg.Bytes(), s.reg.CountBytes(); got != want {
		return fmt.Errorf("policies take %d bytes by the estimate, the running total says %d", want, got)
	}
	if got, want := s.expired.bytes.Load(), s.expired.countBytes(); got != want {
		return fmt.Errorf("expired tokens take %d bytes by the estimate, the running total says %d", want, got)
	}
	if got, want := s.idem.bytes.Load(), s.idem.countBytes(); got != want {
		return fmt.Errorf("idempotency keys take %d bytes by the estimate, the running total says %d", want, got)
	}
	if err := s.checkUniqueKeys(); err != nil {
		return err
	}
	held := s.reg.Holders()
	for key, n := range holders {
		if held[key] != n {
			return fmt.Errorf("concurrency key %q is held by %d lanes, the registry counts %d", key, n, held[key])
		}
	}
	for key, n := range held {
		if holders[key] == 0 {
			return fmt.Errorf("concurrency key %q is held %d times by no lane", key, n)
		}
	}
	keys := make([]string, 0, len(active))
	for k := range active {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got := s.reg.Active(k); got != active[k] {
			return fmt.Errorf("concurrency key %q counts %d active, jobs say %d", k, got, active[k])
		}
	}
	if err := s.checkBreakers(); err != nil {
		return err
	}
	return s.checkShares(refs)
}

// checkBreakers verifies that each breaker holds fewer failures than its
// threshold, that its probes are reserved or running jobs under it, and
// that the memory counted for breakers is what they take.
func (s *Store) checkBreakers() error {
	s.brk.mu.Lock()
	defer s.brk.mu.Unlock()
	if int(s.brk.n.Load()) != len(s.brk.m) {
		return fmt.Errorf("%d breakers counted, %d held", s.brk.n.Load(), len(s.brk.m))
	}
	var bytes int64
	for id, b := range s.brk.m {
		bytes += BreakerBytes(b.key, b.failures, b.probes)
		if b.key != id.String() || int64(len(b.times)) >= b.failures || (b.until == 0 && (b.ok > 0 || len(b.probeIDs) > 0)) {
			return fmt.Errorf("breaker %s: key %q, %d failures held of %d, until %d, %d probes out, %d ok",
				id, b.key, len(b.times), b.failures, b.until, len(b.probeIDs), b.ok)
		}
		for _, pid := range b.probeIDs {
			j := s.index.get(pid).j
			under := false
			if j != nil {
				s.brk.covering(j.ln, func(c *breaker) bool { under = under || c == b; return true })
			}
			if j == nil || (j.state != Reserved && j.state != Running) || !under {
				return fmt.Errorf("breaker %s: probe %s is not a reserved or running job under it", id, pid)
			}
		}
	}
	if got := s.brk.bytes.Load(); got != bytes {
		return fmt.Errorf("breakers take %d bytes by the estimate, the running total says %d", bytes, got)
	}
	return nil
}

// checkKeyLanes verifies that the lists of lanes by policy key hold
// exactly the shard's live lanes with a key, each at its recorded place.
// Lock must be held.
func (sh *shard) checkKeyLanes() error {
	for kind := backpressure.Concurrency; kind <= backpressure.RateLimit; kind++ {
		listed := 0
		for key, kl := range sh.keyLanes[kind] {
			if len(kl.lanes) == 0 {
				return fmt.Errorf("%v key %q has an empty lane list", kind, key)
			}
			for i, l := range kl.lanes {
				at, ok := l.placeOf(inKeyLanes, parkKey{kind, key})
				if l.dead || !l.hasKey(kind, key) || !ok || at != i || l.q.sh != sh || l.q.lanes[l.key] != l {
					return fmt.Errorf("%v key %q lists lane %v at %d wrongly", kind, key, l.key, i)
				}
			}
			listed += len(kl.lanes)
		}
		want := 0
		for _, q := range sh.queues {
			for _, l := range q.lanes {
				if kind == backpressure.Concurrency {
					want += len(l.ckeys())
				} else {
					want += len(l.rkeys())
				}
			}
		}
		if listed != want {
			return fmt.Errorf("%d lanes are listed under %v keys, %d carry one", listed, kind, want)
		}
	}
	return nil
}

// checkLanes verifies one queue's lanes and heaps. Lock must be held.
func (s *Store) checkLanes(q *queue, seen map[*job]bool, seenPacked map[ref]bool) error {
	listed := map[*lane]int{}
	for on, lanes := range q.parked {
		for i, l := range lanes {
			if !l.isListed(on) {
				return fmt.Errorf("lane %v of %q is on the %v list without its flag", l.key, q.name, on)
			}
			if l.more == nil && q.parkedKey(l, on.kind) != on {
				return fmt.Errorf("lane %v of %q is on the %v list, not its key's", l.key, q.name, on)
			}
			if at, _ := l.placeOf(inParked, on); at != i {
				return fmt.Errorf("lane %v of %q is at %d of the %v list but keeps place %d", l.key, q.name, i, on, at)
			}
			listed[l]++
		}
	}
	for l, n := range listed {
		want := len(q.parkedOn(l))
		if n != want {
			return fmt.Errorf("lane %v of %q is listed %d times as parked, flags say %d", l.key, q.name, n, want)
		}
	}
	keyed := 0
	for i, l := range q.keyed {
		if l.kidx != i || !l.keyed() || l.dead || q.lanes[l.key] != l {
			return fmt.Errorf("lane %v of %q is on the keyed list at %d wrongly (its place %d)", l.key, q.name, i, l.kidx)
		}
	}
	for k, l := range q.lanes {
		if l.keyed() {
			keyed++
		}
		if l.byPrio == nil && len(l.buckets) > 1 {
			return fmt.Errorf("lane %v of %q has %d buckets and no index of them", k, q.name, len(l.buckets))
		}
		if l.byPrio != nil && len(l.byPrio) != len(l.buckets) {
			return fmt.Errorf("lane %v of %q indexes %d buckets, holds %d", k, q.name, len(l.byPrio), len(l.buckets))
		}
		for i, b := range l.buckets {
			if b.idx != i || (l.byPrio != nil && l.byPrio[b.prio] != b) {
				return fmt.Errorf("lane %v of %q misplaces its priority %d bucket", k, q.name, b.prio)
			}
		}
		if (l.first.idx >= 0) != slices.Contains(l.buckets, &l.first) {
			return fmt.Errorf("lane %v of %q: its own bucket's place is wrong", k, q.name)
		}
		n := 0
		for _, b := range l.buckets {
			var last uint64
			for i := 0; i < b.jobs.len(); i++ {
				j := b.jobs.at(i)
				if !live(j) || j.ln != l {
					continue
				}
				if seen[j] {
					return fmt.Errorf("job %s is queued twice", j.id)
				}
				if j.priority != b.prio {
					return fmt.Errorf("job %s sits in the priority %d bucket", j.id, b.prio)
				}
				if j.seq <= last {
					return fmt.Errorf("job %s is out of entry order in its ring", j.id)
				}
				last = j.seq
				seen[j] = true
				n++
			}
			np, err := s.checkChunks(l, b, seenPacked)
			if err != nil {
				return fmt.Errorf("lane %v of %q, priority %d: %w", k, q.name, b.prio, err)
			}
			n += np
		}
		if c := l.aside; c != nil && (c.b != nil || c.live != 0 || c.ln != l) {
			return fmt.Errorf("lane %v of %q keeps aside a chunk in use", k, q.name)
		}
		if n != l.n {
			return fmt.Errorf("lane %v of %q counts %d jobs, holds %d", k, q.name, l.n, n)
		}
		if l.n > 0 {
			if h := l.head(); (h.j != nil && !live(h.j)) || (h.c != nil && h.c.dead(h.off)) {
				return fmt.Errorf("lane %v of %q has a stale head", k, q.name)
			}
		}
		onHeap := l.idx >= 0 && l.idx < len(l.p.lanes) && l.p.lanes[l.idx] == l
		if onHeap != l.wanted() {
			return fmt.Errorf("lane %v of %q on heap %v, wanted %v", k, q.name, onHeap, l.wanted())
		}
		if onHeap {
			if prio, seq := l.top(); l.headPrio != prio || l.headSeq != seq {
				return fmt.Errorf("lane %v of %q is placed by a head it no longer has", k, q.name)
			}
		}
		if l.p.g != q.groups[k.handler] || l.p.f != q.fairs[k.group] {
			return fmt.Errorf("lane %v of %q is in a part of another group", k, q.name)
		}
	}
	for name, f := range q.fairs {
		n := int32(0)
		var err error
		f.eachPart(func(p *part) {
			n++
			if p.f != f {
				err = fmt.Errorf("fair group %q of %q holds a part of another", name, q.name)
			}
			for i := 1; i < len(p.lanes); i++ {
				if laneBefore(p.lanes[i], p.lanes[(i-1)/2]) {
					err = fmt.Errorf("lane heap of %q/%q/%q is out of order", q.name, p.g.handler, name)
				}
			}
			onHeap := p.idx >= 0 && int(p.idx) < len(p.g.parts) && p.g.parts[p.idx].p == p
			if onHeap != (len(p.lanes) > 0) {
				err = fmt.Errorf("part %q/%q of %q on heap %v with %d lanes", p.g.handler, name, q.name, onHeap, len(p.lanes))
			}
			if onHeap && (p.g.parts[p.idx].prio != p.lanes[0].headPrio || p.g.parts[p.idx].seq != p.lanes[0].headSeq || p.g.parts[p.idx].turn != f.turn) {
				err = fmt.Errorf("part %q/%q of %q is placed by a key it no longer has", p.g.handler, name, q.name)
			}
		})
		if err != nil {
			return err
		}
		if n != f.parts || n == 0 {
			return fmt.Errorf("fair group %q of %q counts %d parts, holds %d", name, q.name, f.parts, n)
		}
	}
	for h, g := range q.groups {
		onHeap := g.idx >= 0 && g.idx < len(q.heap) && q.heap[g.idx] == g
		if onHeap != (len(g.parts) > 0) {
			return fmt.Errorf("group %q of %q on heap %v with %d parts", h, q.name, onHeap, len(g.parts))
		}
		for i := 1; i < len(g.parts); i++ {
			if g.parts[i].before(&g.parts[(i-1)/partArity]) {
				return fmt.Errorf("part heap of %q/%q is out of order", q.name, h)
			}
		}
	}
	for i := 1; i < len(q.heap); i++ {
		if q.heap[i].parts[0].before(&q.heap[(i-1)/2].parts[0]) {
			return fmt.Errorf("group heap of %q is out of order", q.name)
		}
	}
	if keyed != len(q.keyed) {
		return fmt.Errorf("%q has %d lanes of keyed jobs, its keyed list %d", q.name, keyed, len(q.keyed))
	}
	return nil
}

// laneBefore compares two non-empty lanes by their heads as they are now.
func laneBefore(a, b *lane) bool {
	pa, sa := a.top()
	pb, sb := b.top()
	return precedes(pa, sa, pb, sb)
}

// checkChunks verifies bucket b's packed FIFO and returns its live entries,
// noting each in seen. Lock must be held.
func (s *Store) checkChunks(l *lane, b *bucket, seen map[ref]bool) (int, error) {
	n := 0
	var last uint64
	var prev *chunk
	for c := b.first; c != nil; prev, c = c, c.next {
		if c.prev != prev || c.b != b || c.ln != l {
			return 0, fmt.Errorf("a chunk is misfiled")
		}
		if c.live == 0 && c != b.last {
			return 0, fmt.Errorf("a chunk with no live entry is kept before the last")
		}
		if len(c.buf) > chunkMax || c.n > len(c.buf) {
			return 0, fmt.Errorf("a chunk of %d bytes holds %d", len(c.buf), c.n)
		}
		live := 0
		off := 0
		for off < c.n {
			e := c.entry(off)
			r := ref{c: c, off: off}
			indexed := s.index.get(e.id) == r
			switch {
			case c.dead(off):
				if indexed {
					return 0, fmt.Errorf("dead packed entry %s is indexed", e.id)
				}
			case off < c.head:
				return 0, fmt.Errorf("live packed entry %s sits before its chunk's head", e.id)
			case !indexed:
				return 0, fmt.Errorf("packed job %s is not indexed", e.id)
			case e.seq <= last:
				return 0, fmt.Errorf("packed job %s is out of entry order", e.id)
			case seen[r]:
				return 0, fmt.Errorf("packed job %s is queued twice", e.id)
			default:
				if live == 0 && off != c.head {
					return 0, fmt.Errorf("a chunk's head is not its first live entry")
				}
				last = e.seq
				seen[r] = true
				live++
			}
			off = e.end
		}
		if off != c.n || (live == 0 && c.head != c.n) {
			return 0, fmt.Errorf("a chunk's entries end at %d, its length is %d, its head %d", off, c.n, c.head)
		}
		if live != c.live {
			return 0, fmt.Errorf("a chunk counts %d live entries, holds %d", c.live, live)
		}
		n += live
	}
	if b.last != prev {
		return 0, fmt.Errorf("the last chunk is misplaced")
	}
	if n != b.np {
		return 0, fmt.Errorf("the bucket counts %d packed jobs, holds %d", b.np, n)
	}
	return n, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
