package backpressure

// Several keys per job (JOBPUSH ... CONCURRENCY a CONCURRENCY b RATELIMIT
// x RATELIMIT y). A job is admitted only when every one of its keys
// admits, and a refusal counts nothing under any of them: AdmitAll holds
// the shards of all the keys at once (taken in shard order, the only
// call that holds two: no other takes a second shard while holding one,
// so the order cannot deadlock), judges every key, and only then counts
// the job on each. A refusal names every key that refuses; the caller
// waits on one of them (see park), which is enough to be woken in time:
// nothing can admit the job before that key does.

// MaxKeys is the most keys of one kind a job may carry.
const MaxKeys = 4

// AdmitAll is AdmitKeys for a job with several pairs of keys (any of
// whose CKey or RKey may be empty). Every rate window is judged at one
// instant, the latest of now and the windows' clocks, and an admission is
// recorded on each rate-limit key with a policy at that instant (At): a
// replay passes it to TakeAll. When refused, Block is the key w waits on
// and Blocks names every key that refuses.
func (r *Registry) AdmitAll(now int64, ks []*Keys, w Waiter) Admission {
	mask := r.lockAll(ks)
	defer r.unlockAll(mask)
	var floor int64
	if f := r.thrFloor.Load(); now < f {
		floor = f
	}
	t := r.judgeAt(now, ks)
	blocks, park := r.judgeAll(now, t, ks)
	if len(blocks) > 0 {
		park.wait(blocks[park.i], w)
		return Admission{Block: blocks[park.i], Blocks: blocks}
	}
	rated := false
	for _, k := range ks {
		if k.CKey != "" {
			k.conc().active++
		}
	}
	for _, k := range ks {
		if k.RKey != "" && k.rs.recordAt(t, k) {
			rated = true
		}
	}
	return Admission{OK: true, Rated: rated, At: t, Floor: floor}
}

// TakeAll is Take for several pairs of keys: replay restores an admission
// AdmitAll decided, at the instant it was recorded (rated: on every
// rate-limit key with a policy).
func (r *Registry) TakeAll(at int64, ks []*Keys, rated bool) {
	mask := r.lockAll(ks)
	defer r.unlockAll(mask)
	for _, k := range ks {
		if k.CKey != "" {
			k.conc().active++
		}
	}
	if !rated {
		return
	}
	for _, k := range ks {
		if k.RKey != "" {
			k.rs.recordAt(at, k)
		}
	}
}

// CheckAll reports, without counting anything, every key of ks that
// would refuse a job at now (JOBGET's blocked_by), in the job's order:
// its concurrency keys, then its rate-limit keys.
func (r *Registry) CheckAll(now int64, ks []*Keys) []Block {
	mask := r.lockAll(ks)
	defer r.unlockAll(mask)
	blocks, _ := r.judgeAll(now, r.judgeAt(now, ks), ks)
	return blocks
}

// lockAll locks the shards of every key of ks, in shard order, and
// returns which.
func (r *Registry) lockAll(ks []*Keys) uint32 {
	var mask uint32
	for _, k := range ks {
		if k.CKey != "" {
			mask |= 1 << r.index(k.concShard(r))
		}
		if k.RKey != "" {
			mask |= 1 << r.index(k.rateShard(r))
		}
	}
	for i := range r.shards {
		if mask&(1<<i) != 0 {
			r.shards[i].mu.Lock()
		}
	}
	return mask
}

func (r *Registry) unlockAll(mask uint32) {
	for i := range r.shards {
		if mask&(1<<i) != 0 {
			r.shards[i].mu.Unlock()
		}
	}
}

// index is s's place among r's shards.
func (r *Registry) index(s *shard) int {
	for i := range r.shards {
		if &r.shards[i] == s {
			return i
		}
	}
	panic("backpressure: a shard of another registry")
}

// judgeAt is the instant every window of ks is judged at: now, or the
// latest clock of one of them. Their shards must be locked.
func (r *Registry) judgeAt(now int64, ks []*Keys) int64 {
	t := now
	for _, k := range ks {
		if k.RKey != "" {
			if rs := k.rate(); rs != nil && rs.clock > t {
				t = rs.clock
			}
		}
	}
	return t
}

// parkAt says which refusal a caller waits on: the block at i, a
// concurrency key's (conc) or not, of the pair k.
type parkAt struct {
	i    int
	k    *Keys
	conc bool
}

// judgeAll returns every refusal of ks at now (windows judged at t),
// concurrency keys first, and the one to wait on: of those that end by
// themselves (a throttle, a full window) the one that ends last, since
// nothing admits the job before; else the first full concurrency key.
// Their shards must be locked.
func (r *Registry) judgeAll(now, t int64, ks []*Keys) ([]Block, parkAt) {
	throttles := r.throttles.Load() > 0
	var blocks []Block
	park := parkAt{i: -1}
	timed := false
	note := func(b Block, k *Keys, conc bool) {
		blocks = append(blocks, b)
		switch {
		case b.Kind != Concurrency && (!timed || b.Until > blocks[park.i].Until):
			park, timed = parkAt{len(blocks) - 1, k, conc}, true
		case park.i < 0:
			park = parkAt{len(blocks) - 1, k, conc}
		}
	}
	for _, k := range ks {
		if k.CKey == "" {
			continue
		}
		if throttles {
			if b, blocked := k.cs.throttled(now, k.CKey, nil); blocked {
				note(b, k, true)
				continue
			}
		}
		if c := k.cs.conc[k.CKey]; c != nil && !c.gone {
			if n := c.cap(); n > 0 && c.active >= n {
				note(Block{Kind: Concurrency, Key: k.CKey, Active: c.active, Limit: n}, k, true)
			}
		}
	}
	for _, k := range ks {
		if k.RKey == "" {
			continue
		}
		if throttles {
			if b, blocked := k.rs.throttled(now, k.RKey, nil); blocked {
				note(b, k, false)
				continue
			}
		}
		// A key without a rate state admits: under a template its
		// instance would start empty.
		if rs := k.rate(); rs != nil {
			if b, blocked := rs.peek(t, k.RKey); blocked {
				note(b, k, false)
			}
		}
	}
	return blocks, park
}

// wait registers w on the key p names, which refused with b. Its shard
// must be locked.
func (p parkAt) wait(b Block, w Waiter) {
	k := p.k
	switch {
	case b.Kind == Throttle && p.conc:
		k.cs.throttled(0, k.CKey, w)
	case b.Kind == Throttle:
		k.rs.throttled(0, k.RKey, w)
	case b.Kind == Concurrency:
		addWaiter(&k.conc().waiters, w)
	default:
		addWaiter(&k.rate().waiters, w)
	}
}

// recordAt records an admission at t on k's rate-limit key, making its
// instance under a template, and reports whether the key has a policy.
// Its shard (s) must be locked.
func (s *shard) recordAt(t int64, k *Keys) bool {
	rs := k.rate()
	if rs == nil {
		rs = s.instance(k.RKey)
		k.r = rs
	}
	if rs == nil {
		return false
	}
	at := rs.at(t)
	s.trim(rs, at)
	s.record(rs, at)
	if rs.inst {
		s.sweep(at)
	}
	return true
}
