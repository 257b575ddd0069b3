package store

import "math/bits"

// Scan support: SCAN over job ids, with Redis's guarantees and none of its
// per-cursor server state.
//
// The ids live in the id index's shards, each an open-addressing table
// whose size only grows, by doubling (FLUSHALL empties it). A cursor names
// an index shard and a home slot of that shard's table, the slot where an
// id's probe sequence starts (its hash's low bits). One step visits a home
// slot: the ids whose probe starts there lie between it and the next empty
// slot, since deletion shifts entries back and leaves no gaps. Home slots
// are visited in Redis's reverse-binary order, so when a table doubles
// between two steps, the slots already visited are exactly the images of
// the ones visited before it grew, and no id present throughout is missed
// (some may come twice). Where an id sits within its probe run (it moves
// when a table grows or a neighbour is deleted) does not matter: a step
// finds every id of its home slot, under the shard's lock.
//
// The cursor is the home-slot counter shifted left by idShardBits, with
// the index shard in the low bits; 0 starts and ends a scan.

// ScanSlice is how many home slots a scan visits under one index shard
// lock before letting go of it.
const ScanSlice = 128

// ScanIDs continues the scan at cursor: it visits home slots until it has
// at least count ids or has visited maxSlots slots, and returns the ids
// found (a copy) and the cursor to continue with, 0 when the scan is done.
// Empty index shards are passed over at no cost to maxSlots. Any cursor
// is safe: one this store did not hand out gives ids from some point on.
// It takes index shard locks only, one at a time, for at most ScanSlice
// slots each.
func (s *Store) ScanIDs(cursor uint64, count, maxSlots int) (next uint64, ids []string) {
	visited := 0
	return s.scanIndex(cursor, count, maxSlots, "", &visited)
}

// scanIndex is ScanIDs keeping only the ids of queue (any, when empty),
// read without their shard locks: a job's queue never changes. visited
// counts the slots it looks at (JOBSCAN's budget spans several calls).
func (s *Store) scanIndex(cursor uint64, count, maxSlots int, queue string, visited *int) (next uint64, ids []string) {
	x := &s.index
	sh := int(cursor & (idShards - 1))
	v := cursor >> idShardBits
	n0 := *visited
	for sh < idShards && len(ids) < count && *visited-n0 < maxSlots {
		t := &x.shards[sh]
		t.mu.Lock()
		if t.n == 0 {
			v = 0 // an empty table: nothing here, whatever the cursor said
		} else {
			mask := uint64(len(t.slots) - 1)
			for n := 0; n < ScanSlice && len(ids) < count && *visited-n0 < maxSlots; n++ {
				ids = t.scanHome(v&mask, mask, queue, ids)
				*visited++
				if v = nextHome(v, mask); v == 0 {
					break
				}
			}
		}
		t.mu.Unlock()
		if v == 0 {
			sh++
		}
	}
	if sh == idShards {
		return 0, ids
	}
	return v<<idShardBits | uint64(sh), ids
}

// scanHome appends the ids whose home slot is b, of queue only when it is
// not empty. Lock must be held.
func (t *idShard) scanHome(b, mask uint64, queue string, ids []string) []string {
	for i := b; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s.p == nil {
			return ids // a table is never full: there is an empty slot
		}
		if s.h&mask != b {
			continue
		}
		r := s.ref()
		if queue != "" && r.lane().q.name != queue {
			continue
		}
		if r.j != nil {
			ids = append(ids, r.j.id)
		} else {
			ids = append(ids, string(r.c.idAt(r.off))) // fixed while indexed
		}
	}
}

// nextHome is the home slot after v in reverse-binary order for a table of
// mask+1 slots: the reversed counter plus one. 0 means every slot has been
// visited.
func nextHome(v, mask uint64) uint64 {
	v |= ^mask
	v = bits.Reverse64(v)
	v++
	return bits.Reverse64(v)
}
