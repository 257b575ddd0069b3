package store

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"unicode"

	"github.com/tidwall/match"
)

// Memory shares (--maxmemory-share): a limit on the estimated memory
// (JobBytes) of the jobs held by the queues whose names match a pattern, so
// that one tenant cannot fill the server for everyone. A push that would
// take a share past its limit is refused with FULL, as --maxmemory refuses
// one, and changes nothing; a queue that matches several patterns is
// checked against each. Like --maxmemory, shares apply at admission only: a
// replayed log is never refused, and a failed attempt's error message is
// counted but never refused.
//
// Each queue counts the bytes of its jobs (queue.bytes) wherever its
// shard's count changes: a push, a failed attempt's message, a drop from
// retention (seen as its OpDrop record is logged, the one point outside
// store.go that every drop passes), a replayed or loaded job, FLUSHALL. A
// share's usage is the sum over the queues it matches, kept in an atomic
// counter so that pushes on different shards check and count in one step,
// as admitJob does for --maxmemory. SetShares recomputes the usages from
// the queues with every shard lock held.

// Share limits the estimated job memory of the queues whose names match
// Pattern (a glob, as ACL key patterns) to Bytes.
type Share struct {
	Pattern string
	Bytes   int64
}

// ShareUsage is a share and the bytes its queues hold.
type ShareUsage struct {
	Share
	Used int64
}

type shareRule struct {
	Share
	used atomic.Int64 // bytes of the jobs of the queues matching Pattern
}

// shareSet is the shares in force; never changed once published, except
// for the rules' usages.
type shareSet struct{ rules []*shareRule }

// shareState is the store's shares. It lives beside the gate (unit.go)
// so that store.go stays as it is while it is being split; it belongs with
// the Store's other counts.
type shareState struct {
	set atomic.Pointer[shareSet] // nil: no shares
}

// SetShares replaces the shares in force. A pattern may appear once; every
// limit must be at least one byte. The usages are counted from the queues
// held, with every shard locked, so no push slips between. An empty list
// removes the shares.
func (s *Store) SetShares(shares []Share) error {
	set := &shareSet{}
	seen := map[string]bool{}
	for _, sh := range shares {
		switch {
		case sh.Pattern == "" || strings.ContainsFunc(sh.Pattern, unicode.IsSpace):
			return invalid("a memory share's pattern must be non-empty and hold no spaces")
		case sh.Bytes < 1:
			return invalid("memory share %s: the limit must be at least one byte", sh.Pattern)
		case seen[sh.Pattern]:
			return invalid("memory share %s is given twice", sh.Pattern)
		}
		seen[sh.Pattern] = true
		set.rules = append(set.rules, &shareRule{Share: sh})
	}
	for _, sh := range s.shards {
		sh.mu.Lock()
	}
	defer func() {
		for _, sh := range s.shards {
			sh.mu.Unlock()
		}
	}()
	if len(set.rules) == 0 {
		s.gate.shares.set.Store(nil)
		return nil
	}
	for _, sh := range s.shards {
		for _, q := range sh.queues {
			for _, r := range set.rules {
				if match.Match(q.name, r.Pattern) {
					r.used.Add(q.bytes)
				}
			}
		}
	}
	s.gate.shares.set.Store(set)
	return nil
}

// Shares lists the shares in force with their usages, by pattern.
func (s *Store) Shares() []ShareUsage {
	set := s.gate.shares.set.Load()
	if set == nil {
		return nil
	}
	out := make([]ShareUsage, len(set.rules))
	for i, r := range set.rules {
		out[i] = ShareUsage{Share: r.Share, Used: r.used.Load()}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Pattern < out[k].Pattern })
	return out
}

// sharesOf is the rules of set that q's name matches, worked out once per
// set. Lock must be held.
func (q *queue) sharesOf(set *shareSet) []*shareRule {
	if q.shareSet != set {
		q.shareSet, q.shareRules = set, q.shareRules[:0]
		for _, r := range set.rules {
			if match.Match(q.name, r.Pattern) {
				q.shareRules = append(q.shareRules, r)
			}
		}
	}
	return q.shareRules
}

// charge counts d more bytes of jobs in q and in the shares it matches.
// With check, it refuses (FULL) a growth that takes a share past its
// limit, and then changes nothing. Lock must be held.
func (s *Store) charge(q *queue, d int64, check bool) error {
	q.bytes += d
	set := s.gate.shares.set.Load()
	if set == nil {
		return nil
	}
	rules := q.sharesOf(set)
	for i, r := range rules {
		if n := r.used.Add(d); check && d > 0 && n > r.Bytes {
			for _, x := range rules[:i+1] {
				x.used.Add(-d)
			}
			q.bytes -= d
			return &fullError{"FULL job memory of the queues matching '" + r.Pattern + "' is at its share (maxmemory-share)"}
		}
	}
	return nil
}

// sharing reports whether shares are in force.
func (s *Store) sharing() bool { return s.gate.shares.set.Load() != nil }

// admit counts a new job of size bytes of q, live: in its shares, then in
// the store-wide limits; a refusal by either changes nothing. Lock must
// be held.
func (s *Store) admit(q *queue, size int64) error {
	if err := s.charge(q, size, true); err != nil {
		return err
	}
	if s.limited {
		if err := s.admitJob(size); err != nil {
			s.charge(q, -size, false)
			return err
		}
	}
	return nil
}

// dropping uncounts the job an OpDrop record names, as it leaves. Lock
// must be held.
func (s *Store) dropping(id string) {
	if r := s.index.get(id); r.j != nil {
		s.charge(r.j.ln.q, -r.j.bytes(), false)
	}
}

// unshare forgets every share's usage (FLUSHALL: no job is left). Every
// shard lock must be held.
func (s *Store) unshare() {
	if set := s.gate.shares.set.Load(); set != nil {
		for _, r := range set.rules {
			r.used.Store(0)
		}
	}
}

// checkShares: each queue counts the bytes of its jobs, and each share the
// bytes of the queues it matches (CheckInvariants).
func (s *Store) checkShares(refs []ref) error {
	held := map[*queue]int64{}
	for _, r := range refs {
		if r.j != nil {
			held[r.j.ln.q] += r.j.bytes()
		} else {
			e := r.c.entry(r.off)
			held[r.c.ln.q] += e.bytes()
		}
	}
	set := s.gate.shares.set.Load()
	var used map[*shareRule]int64
	if set != nil {
		used = map[*shareRule]int64{}
	}
	for _, sh := range s.shards {
		for _, q := range sh.queues {
			if q.bytes != held[q] {
				return fmt.Errorf("queue %s counts %d bytes of jobs, holds %d", q.name, q.bytes, held[q])
			}
			if set != nil {
				for _, r := range set.rules {
					if match.Match(q.name, r.Pattern) {
						used[r] += q.bytes
					}
				}
			}
		}
	}
	for r, n := range used {
		if r.used.Load() != n {
			return fmt.Errorf("share %s counts %d bytes, its queues hold %d", r.Pattern, r.used.Load(), n)
		}
	}
	if set != nil {
		for _, r := range set.rules {
			if _, ok := used[r]; !ok && r.used.Load() != 0 {
				return fmt.Errorf("share %s counts %d bytes, its queues hold none", r.Pattern, r.used.Load())
			}
		}
	}
	return nil
}
