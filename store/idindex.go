package store

import (
	"hash/maphash"
	"sync"
	"unsafe"
)

// idIndex maps job ids to jobs across all queues, sharded by a hash of the
// id (see hash: generated ids pushed one after another share cache lines).
// Each shard is an open-addressing table (linear probing, backward-shift
// deletion, so no tombstones) that keeps every entry's hash beside its job:
// an insert is one probe sequence that also finds a duplicate, growing never
// hashes an id again, and the GC scans one pointer per entry. Shards are
// many and small so that growing one (which copies its table) stalls only a
// few ids, briefly. Its locks are leaves.
//
// A packed job's slot points at its chunk, with the entry's offset in the
// hash word (see idSlot): many slots share a chunk, each naming one entry.
type idIndex struct {
	seed   maphash.Seed
	shards [idShards]idShard
}

const (
	idShardBits = 8
	idShards    = 1 << idShardBits
)

type idShard struct {
	mu    sync.Mutex // protects slots and n
	slots []idSlot   // nil or a power of two long, at most 3/4 full
	n     int
	_     [24]byte // one cache line per shard: no false sharing between locks
}

// idSlot is one id. Its hash word keeps the id's hash in its low hashBits
// (enough to tell ids apart before comparing them, and far more than any
// table's size needs), then, for a packed job, the entry's offset in its
// chunk and slotPacked.
//
// p is a *job, or a *chunk when slotPacked is set: one pointer word for
// either keeps the slot at 16 bytes and the GC's work at one pointer per
// id. It is only ever converted back to the type it was made from, which
// slotPacked records, so the conversions are the plain pointer casts that
// checkptr accepts.
type idSlot struct {
	h uint64
	p unsafe.Pointer // nil: empty
}

const (
	hashBits   = 64 - 1 - chunkBits
	hashMask   = 1<<hashBits - 1
	slotPacked = 1 << 63
)

// slotOf returns the slot of r, with hash h.
func slotOf(h uint64, r ref) idSlot {
	if r.j != nil {
		return idSlot{h: h & hashMask, p: unsafe.Pointer(r.j)}
	}
	return idSlot{h: h&hashMask | uint64(r.off)<<hashBits | slotPacked, p: unsafe.Pointer(r.c)}
}

func (s idSlot) ref() ref {
	if s.h&slotPacked == 0 {
		return ref{j: (*job)(s.p)}
	}
	return ref{c: (*chunk)(s.p), off: int(s.h>>hashBits) & (chunkMax - 1)}
}

// is reports whether s holds id. Lock must be held: a packed entry's id
// bytes are fixed while it is indexed.
func (s idSlot) is(h uint64, id string) bool {
	if (s.h^h)&hashMask != 0 {
		return false
	}
	if s.h&slotPacked == 0 {
		return (*job)(s.p).id == id
	}
	r := s.ref()
	return string(r.c.idAt(r.off)) == id
}

func (x *idIndex) init() {
	x.seed = maphash.MakeSeed()
	x.reset()
}

// shard returns id's hash and shard: the top bits pick the shard, the low
// bits the slot.
func (x *idIndex) shard(id string) (uint64, *idShard) {
	h := x.hash(id)
	return h, &x.shards[h>>(64-idShardBits)]
}

// hash hashes id. An id in the generated form (16 characters of Crockford
// base32, as RandomGenerator makes them) is a run and an offset: all but
// its low runBits bits, hashed, plus those bits. Ids generated one after
// another by one sub-generator in one millisecond differ only in their
// offsets, so they take neighbouring slots of one shard's table: a run of
// pushes writes a few cache lines, not one random line per id. Any other
// id is hashed whole.
//
// Runs make clusters: ids that fill whole runs (a client's sequential
// upper-case hexadecimal ids look generated) probe further when the table
// is full. runBits bounds that: with runs of 16, such ids left in no order
// cost 14% more than hashed whole, where runs of 64 cost 47%
// (BenchmarkIDIndexScattered/hex, tables three quarters full), while
// generated ids keep the gain.
func (x *idIndex) hash(id string) uint64 {
	if len(id) != 16 {
		return maphash.String(x.seed, id)
	}
	var hi, lo uint64 // the first 8 characters, the last 8: 40 bits each
	for i := range 8 {
		a, b := crockfordValue[id[i]], crockfordValue[id[8+i]]
		if a|b > 31 {
			return maphash.String(x.seed, id)
		}
		hi, lo = hi<<5|uint64(a), lo<<5|uint64(b)
	}
	run := [2]uint64{hi, lo >> runBits}
	return maphash.Comparable(x.seed, run) + lo&(1<<runBits-1)
}

const runBits = 4

func (x *idIndex) get(id string) ref {
	h, t := x.shard(id)
	t.mu.Lock()
	r := t.lookup(h, id)
	t.mu.Unlock()
	return r
}

func (x *idIndex) putIfAbsent(id string, r ref) bool {
	h, t := x.shard(id)
	t.mu.Lock()
	ok := t.insert(h, id, r)
	t.mu.Unlock()
	return ok
}

// remove deletes id if it still names r, and reports whether it did.
func (x *idIndex) remove(id string, r ref) bool {
	h, t := x.shard(id)
	t.mu.Lock()
	ok := t.remove(slotOf(h, r))
	t.mu.Unlock()
	return ok
}

// replace points id, which names the packed entry from, at j.
func (x *idIndex) replace(id string, from ref, j *job) {
	h, t := x.shard(id)
	t.mu.Lock()
	if i, ok := t.find(slotOf(h, from)); ok {
		t.slots[i] = slotOf(h, ref{j: j})
	}
	t.mu.Unlock()
}

func (x *idIndex) reset() {
	for i := range x.shards {
		t := &x.shards[i]
		t.mu.Lock()
		t.slots, t.n = nil, 0
		t.mu.Unlock()
	}
}

func (x *idIndex) all() []ref {
	var out []ref
	x.each(func(r ref) { out = append(out, r) })
	return out
}

// each calls fn with every indexed job, holding one index shard's lock at a
// time; fn must not use the index.
func (x *idIndex) each(fn func(ref)) {
	for i := range x.shards {
		t := &x.shards[i]
		t.mu.Lock()
		for _, s := range t.slots {
			if s.p != nil {
				fn(s.ref())
			}
		}
		t.mu.Unlock()
	}
}

// Lock must be held.
func (t *idShard) lookup(h uint64, id string) ref {
	if t.n == 0 {
		return ref{}
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.p == nil {
			return ref{}
		}
		if s.is(h, id) {
			return s.ref()
		}
	}
}

// insert adds id → r unless id is present. Lock must be held.
func (t *idShard) insert(h uint64, id string, r ref) bool {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.p == nil {
			*s = slotOf(h, r)
			t.n++
			return true
		}
		if s.is(h, id) {
			return false
		}
	}
}

// Lock must be held.
func (t *idShard) grow() {
	old := t.slots
	t.slots = make([]idSlot, max(2*len(old), 8))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.p == nil {
			continue
		}
		i := s.h & mask
		for t.slots[i].p != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// find returns the place of slot want (hash word and pointer alike). Lock
// must be held.
func (t *idShard) find(want idSlot) (uint64, bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := want.h & mask; ; i = (i + 1) & mask {
		switch s := t.slots[i]; {
		case s.p == nil:
			return 0, false
		case s == want:
			return i, true
		}
	}
}

// remove deletes slot want, if present. Lock must be held.
func (t *idShard) remove(want idSlot) bool {
	i, ok := t.find(want)
	if ok {
		t.deleteAt(i)
	}
	return ok
}

// deleteAt empties slot i and moves back the entries after it that may
// take its place, so that every probe sequence stays unbroken. Lock must be
// held.
func (t *idShard) deleteAt(i uint64) {
	mask := uint64(len(t.slots) - 1)
	t.n--
	for k := (i + 1) & mask; ; k = (k + 1) & mask {
		s := t.slots[k]
		if s.p == nil {
			break
		}
		// s may move to the hole at i if i lies between s's home slot
		// and k, cyclically: s is at least as far from home as from i.
		if (k-s.h)&mask >= (k-i)&mask {
			t.slots[i] = s
			i = k
		}
	}
	t.slots[i] = idSlot{}
}
