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
// It is meant for tests; call it while no other operation runs.
func (s *Store) CheckInvariants() error {
	s.drainAll()
	jobs := s.index.all()
	if int64(len(jobs)) != s.Len() {
		return fmt.Errorf("index holds %d jobs, total says %d", len(jobs), s.Len())
	}
	var bytes int64
	shardJobs := map[*shard]int64{}
	shardBytes := map[*shard]int64{}
	for _, j := range jobs {
		bytes += j.bytes()
		shardJobs[j.ln.q.sh]++
		shardBytes[j.ln.q.sh] += j.bytes()
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
	counts := map[*queue]*[numStates]int64{}
	active := map[string]int64{}
	for _, j := range jobs {
		if j.dropped {
			return fmt.Errorf("job %s is dropped but indexed", j.id)
		}
		q := j.ln.q
		if q.dead || q.sh.queues[q.name] != q {
			return fmt.Errorf("job %s belongs to a queue that is not held", j.id)
		}
		if counts[q] == nil {
			counts[q] = new([numStates]int64)
		}
		counts[q][j.state]++
		if j.ln.dead || q.lanes[j.ln.key] != j.ln {
			return fmt.Errorf("job %s refers to a lane its queue does not hold", j.id)
		}
		armed := j.tidx >= 0 && int(j.tidx) < len(q.sh.timers) && q.sh.timers[j.tidx] == j
		switch j.state {
		case Scheduled, RetryPending, Reserved, Running:
			if !armed {
				return fmt.Errorf("job %s is %s without a timer", j.id, j.state)
			}
		default:
			if j.tidx >= 0 {
				return fmt.Errorf("job %s is %s with a timer", j.id, j.state)
			}
		}
		if (j.state == Reserved || j.state == Running) && j.ln.key.ckey != "" {
			active[j.ln.key.ckey]++
		}
		if j.state.Terminal() != (j.retainGen.Load()%2 == 1) {
			return fmt.Errorf("job %s is %s but retention says %d", j.id, j.state, j.retainGen.Load())
		}
	}
	seenQueued := map[*job]bool{}
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
				total += c[st]
			}
			if total != q.jobs {
				return fmt.Errorf("queue %q counts %d jobs, holds %d", name, q.jobs, total)
			}
			if q.jobs == 0 && !q.paused {
				return fmt.Errorf("queue %q is empty but held", name)
			}
			if err := q.checkLanes(seenQueued); err != nil {
				return err
			}
		}
	}
	for _, j := range jobs {
		if (j.state == Queued) != seenQueued[j] {
			return fmt.Errorf("job %s is %s but lane membership is %v", j.id, j.state, seenQueued[j])
		}
	}
	holders := map[string]int64{}
	for _, sh := range s.shards {
		for key, kl := range sh.keyLanes[backpressure.Concurrency] {
			holders[key] += int64(len(kl.lanes))
		}
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
				lk := l.key.ckey
				if kind == backpressure.RateLimit {
					lk = l.key.rkey
				}
				if l.dead || lk != key || l.kpos[kind] != i || l.q.sh != sh || l.q.lanes[l.key] != l {
					return fmt.Errorf("%v key %q lists lane %v at %d wrongly", kind, key, l.key, i)
				}
			}
			listed += len(kl.lanes)
		}
		want := 0
		for _, q := range sh.queues {
			for k := range q.lanes {
				if (kind == backpressure.Concurrency && k.ckey != "") || (kind == backpressure.RateLimit && k.rkey != "") {
					want++
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
func (q *queue) checkLanes(seen map[*job]bool) error {
	listed := map[*lane]int{}
	for on, lanes := range q.parked {
		for _, l := range lanes {
			if !l.listed[on.kind] {
				return fmt.Errorf("lane %v of %q is on the %v list without its flag", l.key, q.name, on)
			}
			listed[l]++
		}
	}
	for l, n := range listed {
		if want := btoi(l.listed[1]) + btoi(l.listed[2]); n != want {
			return fmt.Errorf("lane %v of %q is listed %d times as parked, flags say %d", l.key, q.name, n, want)
		}
	}
	for k, l := range q.lanes {
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
				seen[j] = true
				n++
			}
		}
		if n != l.n {
			return fmt.Errorf("lane %v of %q counts %d jobs, holds %d", k, q.name, l.n, n)
		}
		if l.n > 0 && !live(l.head()) {
			return fmt.Errorf("lane %v of %q has a stale head", k, q.name)
		}
		onHeap := l.idx >= 0 && l.idx < len(l.g.lanes) && l.g.lanes[l.idx] == l
		if onHeap != l.wanted() {
			return fmt.Errorf("lane %v of %q on heap %v, wanted %v", k, q.name, onHeap, l.wanted())
		}
		if onHeap && (l.headPrio != l.head().priority || l.headSeq != l.head().seq) {
			return fmt.Errorf("lane %v of %q is placed by a head it no longer has", k, q.name)
		}
	}
	for h, g := range q.groups {
		onHeap := g.idx >= 0 && g.idx < len(q.heap) && q.heap[g.idx] == g
		if onHeap != (len(g.lanes) > 0) {
			return fmt.Errorf("group %q of %q on heap %v with %d lanes", h, q.name, onHeap, len(g.lanes))
		}
		for i := 1; i < len(g.lanes); i++ {
			if before(g.lanes[i].head(), g.lanes[(i-1)/2].head()) {
				return fmt.Errorf("lane heap of %q/%q is out of order", q.name, h)
			}
		}
	}
	for i := 1; i < len(q.heap); i++ {
		if before(q.heap[i].lanes[0].head(), q.heap[(i-1)/2].lanes[0].head()) {
			return fmt.Errorf("group heap of %q is out of order", q.name)
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
