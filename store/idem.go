package store

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sluice/internal/minheap"
)

// Idempotency keys (JOBPUSH ... IDEMPOTENCY key) and unique keys (JOBPUSH
// ... UNIQUE key): one table of keys, each held by one job.
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
//
// Unique keys. A unique key (KeyScope set) is held by its job while the job
// is in the key's scope (UniqueScope) and, with a TTL, until KeyUntil. A
// push that finds it held does what its OnDuplicate says: keep answers the
// holder's id, reject refuses with a DupKeyError, replace and extend change
// a waiting holder (replaceHolder). An idempotency key is the same thing
// with the window for scope and keep for answer, and both kinds share the
// table, its lock, its bound and its memory count: a key names one holder
// whichever kind it is. The bound forgets idempotency keys only; a unique
// key past it is refused (ErrKeysFull), never forgotten early.
//
// A job that holds a unique key has its scope in job.uscope, and move
// notes (leftScope) when it leaves it. The operation then forgets the key
// after its shard lock, under idemKeys.mu, and logs that it did
// (OpUniqueRelease): like the idempotency keys' sweeps, the release is a
// record of its own, so a replay forgets the key at the same place among
// the pushes, and replay never releases a key on its own. Until the record,
// the key is still held: a concurrent push sees the holder it would have
// seen a moment earlier.

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
	heap   []idemAt             // every idempotency key by first-push time; an entry is stale once its key was replaced or forgotten
	ttl    []idemAt             // every unique key with a TTL, by its end (at); stale as heap's
	uniq   map[string]uniqEntry // the unique keys' scopes and TTLs
	owner  map[string]string    // job id → the unique key it holds
	nUniq  int                  // unique keys held
	nTTL   int                  // unique keys held with a TTL: ttl holds no more than twice as many entries, plus a few
	max    int
	window int64
	bytes  atomic.Int64 // the estimate of the keys remembered (keyBytes each)
	// pending are the jobs that left their unique key's scope, noted
	// under their shard lock (a leaf lock, pendMu) for the operation to
	// release after it (releaseKeys).
	pendMu  sync.Mutex
	pending []string
	pendN   atomic.Int32
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

// uniqEntry is what a unique key has besides an idempotency key's entry,
// kept in a map of its own so that idempotency keys cost no more.
type uniqEntry struct {
	scope UniqueScope
	until int64 // the TTL's end; 0: none
}

// keyEntry is a key's entry with, for a unique key, its uniqEntry.
type keyEntry struct {
	idemEntry
	uniqEntry
}

// unique reports whether e is a unique key, not an idempotency key.
func (e keyEntry) unique() bool { return e.scope != ScopeNone }

// entry returns key's entry. Lock must be held.
func (k *idemKeys) entry(key string) (keyEntry, bool) {
	e, ok := k.keys[key]
	if !ok {
		return keyEntry{}, false
	}
	ke := keyEntry{idemEntry: e}
	if k.nUniq > 0 {
		ke.uniqEntry = k.uniq[key]
	}
	return ke, true
}

// UniqueKeyOverhead is what a unique key costs besides an idempotency
// key's: its entries in the map of unique keys' scopes and in the map from
// holder to key, and its TTL heap entry. BenchmarkStateMemory/unique-key
// measures 270 bytes for a key with a TTL, 36 bytes long, and a 16-byte
// id, of which an idempotency key's estimate counts 172; 100 rounds the
// other 98 up.
const UniqueKeyOverhead = 100

// keyBytes is the memory estimate of entry e of key.
func keyBytes(key string, e keyEntry) int64 {
	n := idemKeyBytes(key, e.id)
	if e.unique() {
		n += UniqueKeyOverhead
	}
	return n
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
	k.heap, k.ttl, k.nTTL = nil, nil, 0
	k.owner = make(map[string]string)
	k.uniq = make(map[string]uniqEntry)
	k.nUniq = 0
	k.pendMu.Lock()
	k.pending = nil
	k.pendN.Store(0)
	k.pendMu.Unlock()
	k.bytes.Store(0)
	k.nextDue.Store(math.MaxInt64)
}

// get returns key's entry if it is remembered and within the window at
// now. Lock must be held.
func (k *idemKeys) get(key string, now int64) (keyEntry, bool) {
	e, ok := k.entry(key)
	if !ok || k.expired(e, now) {
		return keyEntry{}, false
	}
	return e, true
}

// expired reports whether e is no longer held at now, though maybe not
// yet forgotten.
func (k *idemKeys) expired(e keyEntry, now int64) bool {
	if e.unique() {
		return e.until > 0 && e.until <= now
	}
	return e.at+k.window <= now
}

// put remembers key for the job id pushed at at (seq: its record; scope
// and until: a unique key's), after forgetting the keys expired at at,
// then forgets the oldest idempotency keys past the bound. Lock must be
// held.
func (k *idemKeys) put(key, id string, at int64, seq uint64, scope UniqueScope, until int64) {
	k.sweepLocked(at)
	k.restore(key, id, at, seq, scope, until)
	for len(k.keys) > k.max && len(k.heap) > 0 {
		k.popOldest()
	}
	k.updateDue()
}

// restore remembers key as put does, but forgets nothing: a snapshot's
// keys are loaded as they were held. Lock must be held.
func (k *idemKeys) restore(key, id string, at int64, seq uint64, scope UniqueScope, until int64) {
	k.forget(key) // expired but not yet forgotten: replaced
	// A copy: the id may live in the job's record, which would otherwise
	// stay, payload and all, as long as the key.
	id = strings.Clone(id)
	e := keyEntry{idemEntry{id: id, at: at, seq: seq}, uniqEntry{scope: scope, until: until}}
	k.keys[key] = e.idemEntry
	k.bytes.Add(keyBytes(key, e))
	if !e.unique() {
		k.pushHeap(idemAt{at: at, key: key})
	} else {
		k.nUniq++
		k.uniq[key] = e.uniqEntry
		k.owner[id] = key
		if until > 0 {
			k.ttl = minheap.Push(k.ttl, idemAt{at: until, key: key})
			k.nTTL++
		}
	}
	k.updateDue()
}

// liveUnique counts the unique keys held at now: those whose TTL ended are
// not, though not yet forgotten. It costs O(keys ended), which the TTL
// heap holds at its top. Lock must be held.
func (k *idemKeys) liveUnique(now int64) int {
	ended := map[string]bool{} // a key's stale entry may match it too
	var walk func(i int)
	walk = func(i int) {
		if i >= len(k.ttl) || k.ttl[i].at > now {
			return
		}
		if e, ok := k.entry(k.ttl[i].key); ok && e.unique() && e.until == k.ttl[i].at {
			ended[k.ttl[i].key] = true
		}
		walk(2*i + 1)
		walk(2*i + 2)
	}
	walk(0)
	return k.nUniq - len(ended)
}

// forget drops key's entry, if any, and reports whether there was one.
// Its heap entries go stale. Lock must be held.
func (k *idemKeys) forget(key string) bool {
	e, ok := k.entry(key)
	if !ok {
		return false
	}
	delete(k.keys, key)
	k.bytes.Add(-keyBytes(key, e))
	if e.unique() {
		delete(k.uniq, key)
		k.nUniq--
		if k.owner[e.id] == key {
			delete(k.owner, e.id)
		}
		if e.until > 0 {
			k.nTTL--
			if len(k.ttl) > 2*k.nTTL+64 {
				k.compactTTL()
			}
		}
	}
	return true
}

// compactTTL drops the stale entries of the TTL heap: a key its job's
// scope released leaves its entry until its TTL ends, and a day's TTL at a
// high push rate would otherwise keep a day of them, uncounted. Sorted, the
// live entries are a heap again. Lock must be held.
func (k *idemKeys) compactTTL() {
	live := k.ttl[:0]
	for _, a := range k.ttl {
		if e, ok := k.entry(a.key); ok && e.unique() && e.until == a.at {
			live = append(live, a)
		}
	}
	clear(k.ttl[len(live):])
	slices.SortFunc(live, func(a, b idemAt) int {
		switch {
		case a.Less(b):
			return -1
		case b.Less(a):
			return 1
		}
		return 0
	})
	k.ttl = live
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
	for len(k.ttl) > 0 && k.ttl[0].at <= now {
		var top idemAt
		if k.ttl, top = minheap.Pop(k.ttl); len(k.ttl) == 0 {
			k.ttl = nil
		}
		if e, ok := k.entry(top.key); ok && e.unique() && e.until == top.at {
			k.forget(top.key)
			n++
		}
	}
	return n
}

// popOldest removes the oldest heap entry and forgets its key if the entry
// is not stale; it reports whether it forgot one. Lock must be held.
func (k *idemKeys) popOldest() bool {
	top := k.popHeap()
	e, ok := k.entry(top.key)
	if !ok || e.unique() || e.at != top.at {
		return false
	}
	return k.forget(top.key)
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
// after the first key's expiry. The grid spaces maintenance's sweeps a
// second apart at least, and, being a function of the keys held alone,
// makes a replayed or loaded store sweep when the live one did. Lock must
// be held.
func (k *idemKeys) updateDue() {
	due := int64(math.MaxInt64)
	if len(k.heap) > 0 {
		due = k.heap[0].at + k.window
	}
	if len(k.ttl) > 0 {
		due = min(due, k.ttl[0].at)
	}
	if due == math.MaxInt64 {
		k.nextDue.Store(due)
		return
	}
	if r := due % idemSweepEvery; r != 0 {
		if due > 0 {
			due += idemSweepEvery - r
		} else {
			due -= r
		}
	}
	k.nextDue.Store(due)
}

// entries lists the keys remembered, by first-push time, then key, as
// snapidem records. Expired keys not yet forgotten are listed too, so
// that a loaded store forgets them when the live one would.
func (k *idemKeys) entries() []Record {
	k.mu.Lock()
	defer k.mu.Unlock()
	all := make([]idemAt, 0, len(k.keys))
	for key, e := range k.keys {
		all = append(all, idemAt{at: e.at, key: key})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Less(all[j]) })
	out := make([]Record, 0, len(all))
	for _, a := range all {
		e, _ := k.entry(a.key)
		out = append(out, Record{Op: OpSnapIdem, IdemKey: a.key, ID: e.id, Now: e.at, KeyScope: e.scope, KeyUntil: e.until})
	}
	return out
}

// countBytes recounts what bytes keeps, for consistency checks.
func (k *idemKeys) countBytes() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	var n int64
	for key := range k.keys {
		e, _ := k.entry(key)
		n += keyBytes(key, e)
	}
	return n
}

// IdempotencyKeys is the number of idempotency keys remembered, expired
// ones not yet forgotten included.
func (s *Store) IdempotencyKeys() int {
	s.idem.mu.Lock()
	defer s.idem.mu.Unlock()
	return len(s.idem.keys) - s.idem.nUniq
}

// UniqueKeys is the number of unique keys held, expired ones not yet
// forgotten included.
func (s *Store) UniqueKeys() int {
	s.idem.mu.Lock()
	defer s.idem.mu.Unlock()
	return s.idem.nUniq
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

// pushKeyed is insert for a push with an idempotency or unique key. It
// reports whether the job is queued, and dup when the key was already held:
// r.ID is then the holder's id and no job was created (a replace or extend
// may have changed the holder). The key's check, the insert and the key's
// record are one critical section of idem.mu.
func (s *Store) pushKeyed(r *Record, on OnDuplicate, fx *effects) (queued, dup bool, err error) {
	s.idem.mu.Lock()
	defer s.idem.mu.Unlock()
	if e, ok := s.idem.get(r.IdemKey, r.Now); ok {
		if r.KeyScope != ScopeNone {
			switch on {
			case DupReject:
				return false, false, &DupKeyError{Key: r.IdemKey, ID: e.id}
			case DupReplace, DupExtend:
				if !e.unique() {
					break
				}
				ok, err := s.replaceHolder(e.id, r, on == DupExtend, fx)
				if err != nil {
					return false, false, err
				}
				if ok {
					r.ID = e.id
					return false, true, nil
				}
			}
		}
		r.ID = e.id
		// The first push's record may not be synced yet: the retry's
		// reply waits for it as the first reply does.
		fx.seq = max(fx.seq, e.seq)
		return false, true, nil
	}
	if r.KeyScope != ScopeNone && s.idem.nUniq >= s.idem.max && s.idem.liveUnique(r.Now) >= s.idem.max {
		return false, false, ErrKeysFull
	}
	// The key's memory is counted while the job is admitted, so that
	// MaxBytes refuses a push whose job fits but whose key does not.
	idLen := len(r.ID)
	if idLen == 0 {
		idLen = 16 // a generated id
	}
	reserved := IdemKeyOverhead + int64(len(r.IdemKey)+idLen)
	if r.KeyScope != ScopeNone {
		reserved += UniqueKeyOverhead
	}
	s.idem.bytes.Add(reserved)
	defer s.idem.bytes.Add(-reserved)
	if queued, err = s.insertAny(r, fx); err != nil {
		return false, false, err
	}
	s.idem.put(r.IdemKey, r.ID, r.Now, fx.seq, r.KeyScope, r.KeyUntil)
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
	if _, err := s.insertAny(r, fx); err != nil {
		return err
	}
	s.idem.put(r.IdemKey, r.ID, r.Now, 0, r.KeyScope, r.KeyUntil)
	return nil
}

// leftScope notes that j left its unique key's scope, for the operation
// to release the key after its locks (releaseKeys). A replay releases
// keys only by their records. j's shard lock must be held.
func (s *Store) leftScope(j *job) {
	j.uscope = ScopeNone
	if s.replaying {
		return
	}
	k := &s.idem
	k.pendMu.Lock()
	k.pending = append(k.pending, j.id)
	k.pendN.Add(1)
	k.pendMu.Unlock()
}

// ReleaseStranded forgets the unique keys whose holder left the key's
// scope, or is gone, without the release's record following: a log torn
// between a job's change and that record (kill -9, a failed write). Replay
// releases keys only by their records, so such a key would stay held for
// good, and a dump of it could not be loaded. Each release is logged, so
// the log is whole again. Call once after the log's replay, with the
// journal set, before serving; no lock may be held. It returns how many
// keys it released.
func (s *Store) ReleaseStranded() int {
	k := &s.idem
	k.mu.Lock()
	ids := make([]string, 0, len(k.owner))
	for id := range k.owner {
		ids = append(ids, id)
	}
	k.mu.Unlock()
	slices.Sort(ids) // the records' order does not hang on the map's
	var stranded []string
	for _, id := range ids {
		held := false
		if x := s.index.get(id); x.ok() && x.j != nil {
			sh := x.shard()
			sh.mu.Lock()
			held = !x.j.dropped && x.j.uscope != ScopeNone
			sh.mu.Unlock()
		}
		if !held {
			stranded = append(stranded, id)
		}
	}
	if len(stranded) == 0 {
		return 0
	}
	k.pendMu.Lock()
	k.pending = append(k.pending, stranded...)
	k.pendN.Add(int32(len(stranded)))
	k.pendMu.Unlock()
	var fx effects
	s.releaseKeys(&fx)
	s.finish(&fx)
	return len(stranded)
}

// releaseKeys forgets the unique keys of the jobs that left their scope,
// logging each. No lock may be held.
func (s *Store) releaseKeys(fx *effects) {
	k := &s.idem
	if k.pendN.Load() == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pendMu.Lock()
	ids := k.pending
	k.pending = nil
	k.pendN.Store(0)
	k.pendMu.Unlock()
	for _, id := range ids {
		if key, ok := k.owner[id]; ok && k.forget(key) {
			s.log(Record{Op: OpUniqueRelease, IdemKey: key, ID: id}, fx)
		}
	}
	k.updateDue()
}

// replayRelease applies a logged OpUniqueRelease.
func (s *Store) replayRelease(r *Record) error {
	k := &s.idem
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.entry(r.IdemKey); !ok || e.id != r.ID || !e.unique() {
		return replayErr(r, "unique key %q is not held by job %s", r.IdemKey, r.ID)
	}
	k.forget(r.IdemKey)
	k.updateDue()
	return nil
}

// replaceHolder applies a duplicate push r (ON-DUPLICATE replace, or
// extend) to the key's holder id, and reports whether it did: only a
// holder that still waits (queued, scheduled or retry_pending) in r's
// queue, with r's handler, keys and group, is changed; the caller answers
// as keep otherwise. A replace that would take the job's memory past
// --maxmemory or its queue's share is refused with that error, and
// changes nothing. idem.mu must be held.
func (s *Store) replaceHolder(id string, r *Record, extend bool, fx *effects) (bool, error) {
	ref, sh, err := s.withID(id)
	if err != nil {
		return false, nil
	}
	defer sh.mu.Unlock()
	j := ref.j
	if j == nil || j.uscope == ScopeNone { // packed: never a unique key's holder
		return false, nil
	}
	switch j.state {
	case Queued, Scheduled, RetryPending:
	default:
		return false, nil
	}
	l := j.ln
	if l.q.name != r.Queue || l.key != (laneKey{r.Handler, r.CKey, r.RKey, r.Group, moreKey(r.CKeys, r.RKeys)}) {
		return false, nil
	}
	runAt := j.runAt
	if extend {
		runAt = max(r.RunAt, r.Now)
	}
	if err := s.applyReplace(j, r.Now, r.Payload, r.MaxAtt, r.Backoff, runAt, true, fx); err != nil {
		return false, err
	}
	s.log(Record{Op: OpReplace, Now: r.Now, ID: j.id, Payload: r.Payload, MaxAtt: r.MaxAtt, Backoff: r.Backoff, RunAt: runAt}, fx)
	return true, nil
}

// applyReplace gives waiting job j a new payload, max attempts and backoff,
// and a scheduled or retry_pending job the run time runAt (queued at once
// when runAt <= now). A queued job keeps its place: its entry in its lane
// cannot move. live checks the memory the job grows by against the
// store's limit and its queue's shares first, and refuses it with
// nothing changed; replay never refuses. Lock must be held.
func (s *Store) applyReplace(j *job, now int64, payload []byte, maxAtt, backoff, runAt int64, live bool, fx *effects) error {
	q := j.ln.q
	old := j.bytes()
	was, wasMax, wasBackoff := j.payload, j.maxAtt, j.backoff
	j.payload = bytes.Clone(payload)
	j.maxAtt, j.backoff = maxAtt, backoff
	d := j.bytes() - old
	if live && d > 0 {
		if err := s.grow(q, d); err != nil {
			j.payload, j.maxAtt, j.backoff = was, wasMax, wasBackoff
			return err
		}
	} else {
		s.count(q.sh, 0, d)
		s.charge(q, d, false)
	}
	j.updatedAt = now
	if j.state == Queued || runAt == j.runAt {
		return nil
	}
	q.sh.unarm(j)
	j.runAt = runAt
	if runAt <= now {
		s.move(j, Queued)
		j.runAt = now
		s.enqueue(j, fx)
		q.sh.armWait(j, now, 0, fx) // its deadline, if any
	} else {
		q.sh.armWait(j, now, runAt, fx)
	}
	return nil
}

// grow counts d more bytes of a job of q, live, unless that passes its
// queue's shares or the store's memory limit: check and count are one
// step, as admitJob's. Lock must be held.
func (s *Store) grow(q *queue, d int64) error {
	if err := s.charge(q, d, true); err != nil {
		return err
	}
	if s.limited {
		if n := s.bytes.Add(d); s.cfg.MaxBytes > 0 && n+s.otherBytes() > s.cfg.MaxBytes {
			s.bytes.Add(-d)
			s.charge(q, -d, false)
			return errFullMemory
		}
	}
	q.sh.bytes.Add(d)
	return nil
}

// replayReplace applies a logged OpReplace.
func (s *Store) replayReplace(r *Record, fx *effects) error {
	x := s.index.get(r.ID)
	if !x.ok() || x.j == nil {
		return replayErr(r, "no such job record")
	}
	sh := x.shard()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.drain(sh)
	switch j := x.j; j.state {
	case Queued, Scheduled, RetryPending:
		return s.applyReplace(j, r.Now, r.Payload, r.MaxAtt, r.Backoff, r.RunAt, false, fx)
	default:
		return replayErr(r, "job is %s", j.state)
	}
}

// loadKey loads a snapshot's key (OpSnapIdem); a unique key's holder was
// loaded before it, with its scope (snapjob's KeyScope).
func (s *Store) loadKey(r *Record) error {
	if r.IdemKey == "" || r.ID == "" {
		return replayErr(r, "idempotency key or its job id is missing")
	}
	if r.KeyScope >= numScopes {
		return replayErr(r, "unknown unique key scope")
	}
	if r.KeyScope != ScopeNone {
		x := s.index.get(r.ID)
		if !x.ok() || x.j == nil {
			return replayErr(r, "unique key's job is missing")
		}
		sh := x.shard()
		sh.mu.Lock()
		scope := x.j.uscope
		sh.mu.Unlock()
		if scope != r.KeyScope {
			return replayErr(r, "unique key's job holds it in scope %s", scope)
		}
	}
	s.idem.mu.Lock()
	s.idem.restore(r.IdemKey, r.ID, r.Now, 0, r.KeyScope, r.KeyUntil)
	s.idem.mu.Unlock()
	return nil
}

// checkUniqueKeys checks that every unique key's holder is known and holds
// it in the key's scope. It must run between operations.
func (s *Store) checkUniqueKeys() error {
	k := &s.idem
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for key := range k.keys {
		e, _ := k.entry(key)
		if !e.unique() {
			continue
		}
		n++
		if k.owner[e.id] != key {
			return fmt.Errorf("unique key %q is held by job %s, which the owners map does not name", key, e.id)
		}
		j := s.index.get(e.id).j
		if j == nil || j.uscope != e.scope {
			return fmt.Errorf("unique key %q's holder %s does not hold it in scope %s", key, e.id, e.scope)
		}
	}
	if n != k.nUniq || len(k.owner) != n || len(k.uniq) != n {
		return fmt.Errorf("%d unique keys held, counted %d, %d owners", n, k.nUniq, len(k.owner))
	}
	return nil
}
