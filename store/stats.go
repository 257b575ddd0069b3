package store

import (
	"strings"
	"time"

	"sluice/backpressure"
)

// QUEUESTATS's blocked counts judge every lane of keyed jobs against its
// keys. A queue of 100,000 fair groups, each with a key of its own, has
// 100,000 such lanes: judged under one hold of the shard lock, that hold
// stalled the shard's pushes and reserves for 66-120 ms. So a queue's
// lanes of keyed jobs are also kept in a list (queue.keyed), and
// QueueStats judges at most statsSlice of them per hold, letting go of
// the lock in between, as a peek or a scan does.
//
// The walk goes down the list. A lane leaves the list by a swap with the
// last one, so a lane the walk has passed may move below it; each lane is
// stamped with the walk that judged it (lane.statsGen), so the walk skips
// it. A lane there from the first hold to the last is judged once; one
// that arrives meanwhile (at the top) is not, one that leaves may or may
// not have been. The other figures are read in the last hold, and the
// blocked counts, which may mix the moments of several holds, are held to
// at most the queued count there. A queue of no more than statsSlice
// keyed lanes is read in one hold, so its figures are of one moment, as
// they always were.

// statsSlice is how many lanes QueueStats judges per hold of the lock.
var statsSlice = 1024

// statsHold, when set (tests and benchmarks), is told after each hold of
// QueueStats, after letting go, how many lanes it judged and how long
// it held the lock.
var statsHold func(lanes int, held time.Duration)

// keyed reports whether the lane's jobs have a policy key, which
// QueueStats judges.
func (l *lane) keyed() bool { return l.key.ckey != "" || l.key.rkey != "" }

// unlistKeyed takes l out of q.keyed in O(1), moving the last lane to
// its place. Lock must be held.
func (q *queue) unlistKeyed(l *lane) {
	last := len(q.keyed) - 1
	if l.kidx > last || q.keyed[l.kidx] != l {
		return
	}
	moved := q.keyed[last]
	q.keyed[l.kidx] = moved
	moved.kidx = l.kidx
	q.keyed[last] = nil
	q.keyed = q.keyed[:last]
	if len(q.keyed) == 0 {
		q.keyed = nil
	}
}

// QueueStats describes a queue (QUEUESTATS). It holds the queue's lock
// for at most statsSlice lanes at a time (see above).
func (s *Store) QueueStats(now int64, name string) (QueueStats, error) {
	st := QueueStats{Status: "idle"}
	var (
		walk *queue // the queue being walked
		gen  uint64 // the walk's stamp
		at   int    // lanes below at in walk.keyed are still to be judged
		bc   int64  // blocked by concurrency so far
		br   int64  // blocked by a rate limit so far
		done bool
	)
	for !done {
		judged := 0
		var held time.Duration
		err := s.withQueue(now, name, nil, func(_ *shard, q *queue, _ *effects) error {
			if statsHold != nil {
				began := time.Now()
				defer func() { held = time.Since(began) }()
			}
			st.Queue = strings.TrimSpace(name)
			if q == nil {
				done = true // gone meanwhile, or never there: idle
				return nil
			}
			if q != walk { // the first hold, or the queue went and came back
				q.statsGen++
				walk, gen, at, bc, br = q, q.statsGen, len(q.keyed), 0, 0
			}
			at = min(at, len(q.keyed))
			for at > 0 && judged < statsSlice {
				at--
				l := q.keyed[at]
				if l.statsGen == gen {
					continue // moved down after it was judged
				}
				l.statsGen = gen
				judged++
				c, r := s.blockedIn(now, l)
				bc += c
				br += r
			}
			if at > 0 {
				return nil // the rest after letting go
			}
			done = true
			st.Queued, st.Scheduled = q.counts[Queued], q.counts[Scheduled]
			st.Reserved, st.Running = q.counts[Reserved], q.counts[Running]
			st.RetryPending, st.Failed = q.counts[RetryPending], q.counts[Failed]
			st.Expired = q.counts[Expired]
			st.Paused = q.paused
			st.PushedTotal, st.SucceededTotal, st.FailedTotal = q.pushed, q.succ, q.failed
			st.BlockedConcurrency = min(bc, st.Queued)
			st.BlockedRateLimit = min(br, st.Queued-st.BlockedConcurrency)
			switch {
			case q.paused:
				st.Status = "paused"
			case st.Queued > 0 && st.BlockedConcurrency+st.BlockedRateLimit == st.Queued:
				st.Status = "throttled"
			case st.Queued+st.Scheduled+st.Reserved+st.Running+st.RetryPending > 0:
				st.Status = "active"
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		if statsHold != nil {
			statsHold(judged, held)
		}
	}
	return st, nil
}

// blockedIn is how many of lane l's queued jobs its keys refuse now, as
// (by a concurrency key, by a rate limit). Lock must be held.
func (s *Store) blockedIn(now int64, l *lane) (conc, rate int64) {
	if l.n == 0 {
		return 0, 0
	}
	k := l.key
	b, blocked := s.reg.Check(now, k.ckey, k.rkey)
	if l.more != nil {
		ks := make([]*backpressure.Keys, len(l.more.all))
		for i, p := range l.more.all {
			ks[i] = &backpressure.Keys{CKey: p.CKey, RKey: p.RKey}
		}
		bs := s.reg.CheckAll(now, ks)
		b, blocked = backpressure.Block{}, len(bs) > 0
		if blocked {
			b = bs[0]
		}
	}
	switch {
	case !blocked:
		return 0, 0
	case b.Kind == backpressure.Concurrency:
		return int64(l.n), 0
	}
	return 0, int64(l.n)
}
