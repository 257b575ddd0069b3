package store

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sluice/internal/minheap"
)

// Idempotency keys (JOBPUSH ... IDEMPOTENCY key).
//
// A keyed push that finds its key remembered, and younger than the window,
// creates nothing and answers the job id the key was first pushed with,
// whatever became of that job since. Keys are server-wide: one key names
// one push whatever its queue. A key is remembered from its first push for
// Config.IdempotencyWindow; past Config.IdempotencyKeys keys the oldest are
// forgotten early, so under a heavier load the guarantee lasts as long as
// the newest IdempotencyKeys keys span.
//
// Exactness: every keyed push takes idemKeys.mu before its queue's shard
// lock and holds it across the check, the insert and the key's record, so
// two pushes of one key, to any queues, never both create a job. Pushes
// without a key never take it.
//
// Determinism: which keys are remembered depends only on the records of
// the log. A push's record carries its key; a keyed push first forgets the
// keys that expired at its own time (which replay repeats from the record),
// then adds its key, then forgets the oldest keys (by first-push time, then
// key) past the bound. Maintenance forgets expired keys too, on whole
// seconds (updateDue), and logs that it did (OpIdemExpire), so that a
// replay forgets the same keys at the same place among the pushes.

// IdemKeyOverhead is the memory a remembered key costs besides its own
// bytes and its job id's: its map entry, its heap entry and the
// allocator's rounding. BenchmarkStateMemory/idempotency-key measures 165
// bytes for a 36-byte key and a 16-byte id (both included); 120 rounds
// the other 113 up.
const IdemKeyOverhead = 120

// idemSweepEvery is the grid maintenance sweeps expired keys on, which
// bounds the OpIdemExpire records to one a second.
const idemSweepEvery = 1000 // ms

// idemKeyBytes is the memory estimate of one remembered key.
func idemKeyBytes(key, id string) int64 { return IdemKeyOverhead + int64(len(key)+len(id)) }

// idemKeys remembers idempotency keys; see above.
type idemKeys struct {
	// mu protects keys and heap. It is taken after policyMu and before any
	// shard lock (doc.go), and held across a keyed push.
	mu     sync.Mutex
	keys   map[string]idemEntry
	heap   []idemAt // every key by first-push time; an entry is stale once its key was replaced or forgotten
	max    int
	window int64
	bytes  atomic.Int64 // the estimate of the keys remembered (idemKeyBytes each)
	// nextDue is no later than the first instant at which maintenance has
	// keys to forget; MaxInt64 when none are held.
	_       [64]byte
	nextDue atomic.Int64
	_       [56]byte
}

type idemEntry struct {
	id  string
	at  int64  // the first push's time
	seq uint64 // the first push's journal record, for a retry to wait on (0 once replayed)
}

type idemAt struct {
	at  int64
	key string
}

func (a idemAt) Less(b idemAt) bool { return a.at < b.at || (a.at == b.at && a.key < b.key) }

func (k *idemKeys) init(max int, window int64) {
	k.mu.Lock()
	k.max, k.window = max, window
	k.resetLocked()
	k.mu.Unlock()
}

// Lock must be held.
func (k *idemKeys) resetLocked() {
	k.keys = make(map[string]idemEntry)
	k.heap = nil
	k.bytes.Store(0)
	k.nextDue.Store(math.MaxInt64)
}

// get returns key's entry if it is remembered and within the window at
// now. Lock must be held.
func (k *idemKeys) get(key string, now int64) (idemEntry, bool) {
	e, ok := k.keys[key]
	if !ok || e.at+k.window <= now {
		return idemEntry{}, false
	}
	return e, true
}

// put remembers key for the job id pushed at at (seq: its record), after
// forgetting the keys expired at at, then forgets the oldest keys past the
// bound. Lock must be held.
func (k *idemKeys) put(key, id string, at int64, seq uint64) {
	k.sweepLocked(at)
	k.restore(key, id, at, seq)
	for len(k.keys) > k.max {
		k.popOldest()
	}
	k.updateDue()
}

// restore remembers key as put does, but forgets nothing: a snapshot's
// keys are loaded as they were held. Lock must be held.
func (k *idemKeys) restore(key, id string, at int64, seq uint64) {
	if old, ok := k.keys[key]; ok { // expired but not yet forgotten: replaced
		k.bytes.Add(-idemKeyBytes(key, old.id))
	}
	// A copy: the id may live in the job's record, which would otherwise
	// stay, payload and all, as long as the key.
	id = strings.Clone(id)
	k.keys[key] = idemEntry{id: id, at: at, seq: seq}
	k.bytes.Add(idemKeyBytes(key, id))
	k.pushHeap(idemAt{at: at, key: key})
	k.updateDue()
}

// sweepLocked forgets the keys expired at now and reports how many it
// forgot. Lock must be held.
func (k *idemKeys) sweepLocked(now int64) int {
	n := 0
	for len(k.heap) > 0 && k.heap[0].at+k.window <= now {
		if k.popOldest() {
			n++
		}
	}
	return n
}

// popOldest removes the oldest heap entry and forgets its key if the entry
// is not stale; it reports whether it forgot one. Lock must be held.
func (k *idemKeys) popOldest() bool {
	top := k.popHeap()
	e, ok := k.keys[top.key]
	if !ok || e.at != top.at {
		return false
	}
	delete(k.keys, top.key)
	k.bytes.Add(-idemKeyBytes(top.key, e.id))
	return true
}

// Lock must be held.
func (k *idemKeys) pushHeap(v idemAt) { k.heap = minheap.Push(k.heap, v) }

// Lock must be held.
func (k *idemKeys) popHeap() idemAt {
	h, top := minheap.Pop(k.heap)
	if len(h) == 0 {
		h = nil // give a drained buffer back
	}
	k.heap = h
	return top
}

// updateDue sets nextDue to the first whole second (of Unix time) at or
// after the oldest key's expiry. The grid spaces maintenance's sweeps a
// second apart at least, and, being a function of the keys held alone,
// makes a replayed or loaded store sweep when the live one did. Lock must
// be held.
func (k *idemKeys) updateDue() {
	if len(k.heap) == 0 {
		k.nextDue.Store(math.MaxInt64)
		return
	}
	due := k.heap[0].at + k.window
	if r := due % idemSweepEvery; r != 0 {
		if due > 0 {
			due += idemSweepEvery - r
		} else {
			due -= r
		}
	}
	k.nextDue.Store(due)
}

// entries lists the keys remembered, by first-push time, then key, with
// their ids and times. Expired keys not yet forgotten are listed too, so
// that a loaded store forgets them when the live one would.
func (k *idemKeys) entries() (keys, ids []string, times []int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	all := make([]idemAt, 0, len(k.keys))
	for key, e := range k.keys {
		all = append(all, idemAt{at: e.at, key: key})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Less(all[j]) })
	for _, a := range all {
		keys = append(keys, a.key)
		ids = append(ids, k.keys[a.key].id)
		times = append(times, a.at)
	}
	return keys, ids, times
}

// countBytes recounts what bytes keeps, for consistency checks.
func (k *idemKeys) countBytes() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	var n int64
	for key, e := range k.keys {
		n += idemKeyBytes(key, e.id)
	}
	return n
}

// IdempotencyKeys is the number of idempotency keys remembered, expired
// ones not yet forgotten included.
func (s *Store) IdempotencyKeys() int {
	s.idem.mu.Lock()
	defer s.idem.mu.Unlock()
	return len(s.idem.keys)
}

// sweepKeys forgets the expired keys, logging that it did. No lock may be
// held.
func (s *Store) sweepKeys(now int64, fx *effects) {
	s.idem.mu.Lock()
	defer s.idem.mu.Unlock()
	if s.idem.nextDue.Load() > now {
		return // another operation swept meanwhile
	}
	if s.idem.sweepLocked(now) > 0 {
		s.log(Record{Op: OpIdemExpire, Now: now}, fx)
	}
	s.idem.updateDue()
}

// pushKeyed is insert for a push with an idempotency key. It reports
// whether the job is queued, and dup when the key was already remembered:
// r.ID is then the first push's id and nothing changed. The key's check,
// the insert and the key's record are one critical section of idem.mu.
func (s *Store) pushKeyed(r *Record, fx *effects) (queued, dup bool, err error) {
	s.idem.mu.Lock()
	defer s.idem.mu.Unlock()
	if e, ok := s.idem.get(r.IdemKey, r.Now); ok {
		r.ID = e.id
		// The first push's record may not be synced yet: the retry's
		// reply waits for it as the first reply does.
		fx.seq = max(fx.seq, e.seq)
		return false, true, nil
	}
	// The key's memory is counted while the job is admitted, so that
	// MaxBytes refuses a push whose job fits but whose key does not.
	idLen := len(r.ID)
	if idLen == 0 {
		idLen = 16 // a generated id
	}
	reserved := IdemKeyOverhead + int64(len(r.IdemKey)+idLen)
	s.idem.bytes.Add(reserved)
	defer s.idem.bytes.Add(-reserved)
	if queued, err = s.insert(r, fx); err != nil {
		return false, false, err
	}
	s.idem.put(r.IdemKey, r.ID, r.Now, fx.seq)
	if u := &s.gate.unit; u.active && fx.seq == 0 {
		// Inside a unit the record has no sequence number of its own yet:
		// EndUnit gives the key the unit's before any retry can run.
		u.keys = append(u.keys, idemAt{at: r.Now, key: r.IdemKey})
	}
	return queued, false, nil
}

// replayKeyed applies a logged keyed push.
func (s *Store) replayKeyed(r *Record, fx *effects) error {
	s.idem.mu.Lock()
	defer s.idem.mu.Unlock()
	if _, err := s.insert(r, fx); err != nil {
		return err
	}
	s.idem.put(r.IdemKey, r.ID, r.Now, 0)
	return nil
}
