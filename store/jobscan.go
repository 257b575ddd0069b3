package store

import (
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Job search (JOBSCAN): SCAN's guarantees over the jobs that match a
// filter, at a cost that follows the jobs of the partitions it reads, not
// every job held.
//
// Each queue keeps, per tabled state, the set of its jobs in that state:
// an id table like the index's shards (idindex.go), kept by the one place
// states change ((*Store).move), by a job's arrival (insert, snapshot
// load) and by its drop (unlink), under the queue's shard lock.
// A scan walks partitions one after the other: states in their order
// (numStates ends the list, so a state added to it is scanned by itself),
// and within a state every queue in name order, or just the one named.
// The states every job passes through on its usual way (queued, reserved,
// running, succeeded) are not tabled: a table slot for each would cost
// every push, reserve and ack (a third more per cycle, measured), and
// most queued jobs are packed (packed.go). Each of those states is one
// partition over the id index itself, filtered by queue and state, and
// costs what SCAN costs. The states of jobs that went wrong or wait
// (scheduled, waiting, retry_pending, failed, cancelled, expired) are tabled, so a search
// for a queue's failed jobs costs what they cost, whatever else it holds.
//
// A partition is read as ScanIDs reads an index shard: home slots in
// reverse-binary order, so a table that grows between two calls misses
// none of the ids present throughout. A table that empties is freed (no
// id of it was present throughout) and may come back smaller, which the
// reverse-binary order handles too.
//
// The cursor is text: "0" starts and ends a scan; otherwise
// "state.homeslot.queue", the queue's name in hexadecimal (empty for the
// queued partition). The server keeps nothing between calls.

// tabled are the states a queue keeps tables of; a state added to the
// lifecycle is read over the id index until it is listed here.
var tabled = [numStates]bool{Scheduled: true, RetryPending: true, Failed: true, Cancelled: true, Expired: true, Waiting: true}

// stateSets are a queue's jobs by state: one table per state, those of
// untabled states unused. Each table's own mutex is unused too: the shard lock
// guards them.
type stateSets [numStates]idShard

// Estimates for --maxmemory: a queue's tables once it has held a job
// outside queued, and each table slot (three slots for every four jobs at
// most, up to twice as many right after a table grows).
const (
	setsOverhead = int64(len(stateSets{}))*64 + 16 // and the queue's place among the names
	setSlotBytes = 16
)

// ScanFilter selects the jobs of a JOBSCAN or a bulk action. The zero
// value selects every job.
type ScanFilter struct {
	Queue   string            // "": every queue
	State   State             // 0: every state
	Handler string            // "": any
	Group   string            // "": any, or the fair group ("" is the default group and cannot be asked for alone)
	ID      func(string) bool // nil: any id
	Error   func(string) bool // nil: any; else the last error must match (a job that never failed has "")
	// In, when State is 0, limits the states scanned (a bulk cancel reads
	// no finished job); nil: every state.
	In func(State) bool
}

// first is the first state at or after st that f scans, numStates if none.
func (f *ScanFilter) first(st State) State {
	if f.State != 0 {
		return f.State
	}
	for f.In != nil && st < numStates && !f.In(st) {
		st++
	}
	return st
}

// ErrScanCursor is a JOBSCAN cursor this store cannot have handed out.
var ErrScanCursor = coded("ERR invalid cursor")

// States lists the lifecycle states in order: JOBSCAN's partitions and the
// names its STATE accepts.
func States() []State {
	out := make([]State, 0, numStates-1)
	for st := Scheduled; st < numStates; st++ {
		out = append(out, st)
	}
	return out
}

// ParseState returns the state named name (any case).
func ParseState(name string) (State, bool) {
	for st := Scheduled; st < numStates; st++ {
		if strings.EqualFold(stateNames[st], name) {
			return st, true
		}
	}
	return 0, false
}

// scanCursor is a parsed cursor: the state and queue of the partition and
// the home slot to go on from.
type scanCursor struct {
	st    State
	v     uint64
	queue string
}

func (c scanCursor) String() string {
	if !tabled[c.st] {
		c.queue = "" // the index's partition, whatever the filter
	}
	return strconv.Itoa(int(c.st)) + "." + strconv.FormatUint(c.v, 10) + "." + hex.EncodeToString([]byte(c.queue))
}

func parseCursor(s string, f *ScanFilter) (scanCursor, error) {
	if s == "0" {
		return scanCursor{st: f.first(Scheduled), queue: f.Queue}, nil
	}
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return scanCursor{}, ErrScanCursor
	}
	st, err1 := strconv.ParseUint(parts[0], 10, 8)
	v, err2 := strconv.ParseUint(parts[1], 10, 64)
	q, err3 := hex.DecodeString(parts[2])
	c := scanCursor{st: State(st), v: v, queue: string(q)}
	switch {
	case err1 != nil || err2 != nil || err3 != nil, c.st < Scheduled || c.st >= numStates,
		f.State != 0 && c.st != f.State,
		!tabled[c.st] && c.queue != "", // an untabled state's partition is the index's
		tabled[c.st] && f.Queue != "" && c.queue != f.Queue:
		return scanCursor{}, ErrScanCursor
	}
	return c, nil
}

// ScanJobs continues the scan of the jobs matching f at cursor ("0" to
// start): it reads partitions until it has count ids or has visited
// maxSlots home slots (a partition passed over counts as one), and returns
// the ids found and the cursor to go on with, "0" when the scan is done. A
// page may hold fewer ids than count, or none, before the end. It holds
// one lock at a time, a shard's or an index shard's, for at most
// ScanSlice home slots.
func (s *Store) ScanJobs(cursor string, f ScanFilter, count, maxSlots int) (string, []string, error) {
	c, err := parseCursor(cursor, &f)
	if err != nil {
		return "", nil, err
	}
	var ids []string
	visited := 0
	if c.st == numStates { // In excludes every state
		return "0", nil, nil
	}
	for len(ids) < count && visited < maxSlots {
		var done bool
		if !tabled[c.st] {
			ids, done = s.scanUntabled(&c, &f, ids, count, maxSlots, &visited)
		} else {
			if c.queue == "" { // entering the state, over every queue
				c.queue, c.v = s.nextQueue(c.st, "", true), 0
			}
			done = c.queue == ""
			if !done {
				ids, done = s.scanSet(&c, &f, ids, count, maxSlots, &visited)
				if done && f.Queue == "" {
					if next := s.nextQueue(c.st, c.queue, false); next != "" {
						c.queue, c.v, done = next, 0, false
					}
				}
			}
		}
		visited++
		if !done {
			continue
		}
		// The partition is done: the next state, unless one was asked for.
		if f.State != 0 || f.first(c.st+1) >= numStates {
			return "0", ids, nil
		}
		c = scanCursor{st: f.first(c.st + 1), queue: f.Queue}
	}
	return c.String(), ids, nil
}

// holds reports whether the queue named name holds jobs in state st.
func (s *Store) holds(name string, st State) bool {
	sh := s.shardOf(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	q := sh.queues[name]
	return q != nil && q.counts[st] > 0
}

// nextQueue returns the first queue name after after (or from the first,
// with first) that has job-search tables, "" when none has: a queue
// without jobs in st among them is passed over by the caller, one visited
// slot each, so a call's work stays bounded whatever the number of
// queues. O(log queues), under the names' leaf lock only.
func (s *Store) nextQueue(_ State, after string, first bool) string {
	return s.names.after(after, first)
}

// queueNames is the sorted list of the queues that have job-search tables,
// for a scan over every queue to find the next one without walking them
// all. Its lock is a leaf, taken under a shard's.
type queueNames struct {
	mu    sync.Mutex
	names []string
}

func (n *queueNames) add(name string) {
	n.mu.Lock()
	if i, found := slices.BinarySearch(n.names, name); !found {
		n.names = slices.Insert(n.names, i, name)
	}
	n.mu.Unlock()
}

func (n *queueNames) remove(name string) {
	n.mu.Lock()
	if i, found := slices.BinarySearch(n.names, name); found {
		n.names = slices.Delete(n.names, i, i+1)
	}
	n.mu.Unlock()
}

func (n *queueNames) reset() {
	n.mu.Lock()
	n.names = nil
	n.mu.Unlock()
}

// after is the first name after name (or the first of all, with first),
// "" if none.
func (n *queueNames) after(name string, first bool) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := 0
	if !first {
		var found bool
		if i, found = slices.BinarySearch(n.names, name); found {
			i++
		}
	}
	if i < len(n.names) {
		return n.names[i]
	}
	return ""
}

// scanSet reads c's queue's table of state c.st from home slot c.v on,
// appending matching ids, and reports whether the table is done.
func (s *Store) scanSet(c *scanCursor, f *ScanFilter, ids []string, count, maxSlots int, visited *int) ([]string, bool) {
	sh := s.shardOf(c.queue)
	var found []candidate
	done := false
	sh.mu.Lock()
	q := sh.queues[c.queue]
	if q == nil || q.sets == nil || q.sets[c.st].n == 0 {
		done = true
	} else {
		t := &q.sets[c.st]
		mask := uint64(len(t.slots) - 1)
		for n := 0; n < ScanSlice && len(ids)+len(found) < count && *visited < maxSlots; n++ {
			found = t.scanJobs(c.v&mask, mask, f, found)
			*visited++
			if c.v = nextHome(c.v, mask); c.v == 0 {
				done = true
				break
			}
		}
	}
	sh.mu.Unlock()
	return f.keep(found, ids), done
}

// candidate is a job that passed a filter's exact tests, for its glob
// tests to run after the lock.
type candidate struct{ id, lastError string }

// keep appends to ids the candidates whose id and last error match f's
// patterns.
func (f *ScanFilter) keep(found []candidate, ids []string) []string {
	for _, x := range found {
		if (f.ID == nil || f.ID(x.id)) && (f.Error == nil || f.Error(x.lastError)) {
			ids = append(ids, x.id)
		}
	}
	return ids
}

// matches runs f's exact tests on j. Lock must be held.
func (f *ScanFilter) matches(j *job) bool {
	return (f.Handler == "" || j.ln.key.handler == f.Handler) && (f.Group == "" || j.ln.key.group == f.Group)
}

// scanJobs appends the jobs of home slot b that pass f's exact tests. The
// shard lock must be held.
func (t *idShard) scanJobs(b, mask uint64, f *ScanFilter, out []candidate) []candidate {
	for i := b; ; i = (i + 1) & mask {
		sl := t.slots[i]
		if sl.p == nil {
			return out
		}
		if sl.h&mask != b {
			continue
		}
		if j := sl.ref().j; f.matches(j) {
			out = append(out, candidate{j.id, j.xr().lastError})
		}
	}
}

// scanUntabled reads the partition of an untabled state: the id index
// from c.v on, keeping the ids of c's queue (or any), then checking each
// one's state under its shard lock.
func (s *Store) scanUntabled(c *scanCursor, f *ScanFilter, ids []string, count, maxSlots int, visited *int) ([]string, bool) {
	if f.Queue != "" && !s.holds(f.Queue, c.st) {
		return ids, true // none to find: no walk over the whole index
	}
	next, cands := s.scanIndex(c.v, count-len(ids), maxSlots-*visited, f.Queue, visited)
	var found []candidate
	for _, id := range cands {
		r, sh, err := s.withID(id)
		if err != nil {
			continue // gone meanwhile
		}
		j := r.j
		if j == nil {
			j = r.c.view(r.off)
		}
		if j.state == c.st && f.matches(j) {
			found = append(found, candidate{j.id, j.xr().lastError})
		}
		sh.mu.Unlock()
	}
	c.v = next
	return f.keep(found, ids), next == 0
}

// setAdd files j under its state, when tabled. Lock must be held.
func (q *queue) setAdd(j *job, h uint64) {
	if !tabled[j.state] {
		return
	}
	if q.sets == nil {
		q.sets = new(stateSets)
		q.sh.scan.Add(setsOverhead)
		q.sh.names.add(q.name)
	}
	t := &q.sets[j.state]
	before := len(t.slots)
	t.insert(h, j.id, ref{j: j})
	if d := len(t.slots) - before; d != 0 {
		q.sh.scan.Add(int64(d) * setSlotBytes)
	}
}

// setRemove takes j out of the table of state st. Lock must be held.
func (q *queue) setRemove(j *job, st State, h uint64) {
	if !tabled[st] || q.sets == nil {
		return
	}
	t := &q.sets[st]
	if t.remove(slotOf(h, ref{j: j})) && t.n == 0 {
		q.sh.scan.Add(-int64(len(t.slots)) * setSlotBytes)
		t.slots = nil
		for i := range q.sets {
			if q.sets[i].n > 0 {
				return
			}
		}
		q.freeSets() // no job outside queued: the tables go until one leaves again
	}
}

// setsBytes is the estimate of q's tables. Lock must be held.
func (q *queue) setsBytes() int64 {
	if q.sets == nil {
		return 0
	}
	n := setsOverhead
	for i := range q.sets {
		n += int64(len(q.sets[i].slots)) * setSlotBytes
	}
	return n
}

// freeSets lets a queue's tables go as the queue goes: they are empty.
// Lock must be held.
func (q *queue) freeSets() {
	if q.sets != nil {
		q.sets = nil
		q.sh.scan.Add(-setsOverhead)
		q.sh.names.remove(q.name)
	}
}
