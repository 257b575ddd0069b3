package store

// Dependencies (JOBPUSH ... AFTER n id ... [ANYWAY]).
//
// A job pushed after other jobs that have not all succeeded is created
// waiting: it is in no lane and has no timer but its deadline's, so a
// reservation never sees it and it costs reserve nothing. The depTable
// keeps, by dependency id, the waiting jobs registered on it (waiters);
// each waiting job keeps the ids it still waits for (jobExt.after, at most
// MaxAfter). When a dependency ends (terminal), its shard lock detaches its
// waiters and the operation, after its locks, resolves each of them under
// its own shard lock (runEnds): the id leaves the waiter's list, and a
// waiter with nothing left becomes queued (or scheduled, if its run time
// is still ahead). A dependency that ends other than succeeded cancels its
// waiters with error "dependency <id> <state>", and so theirs in turn,
// unless they were pushed ANYWAY: then it counts as met. The work per end
// is O(waiters).
//
// Each resolution is logged (OpAfter) under the waiter's shard lock, so a
// replay never resolves anything itself: it registers a replayed waiting
// job on those of its dependencies that have not ended, as the push did,
// and applies the records. A push's record lists the dependencies that
// had not succeeded when it checked them; one that ended before its
// waiter was registered is resolved by the push itself, logged the same
// way.
//
// Locking: deps.mu orders the pushes with AFTER against the resolutions,
// so that a push's job is in place before any end resolves it; it comes
// after cronTable.mu and before the shard locks. listMu guards waiters and
// is a leaf.

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// MaxAfter bounds the dependencies one job names.
const MaxAfter = 64

// Estimates of the memory dependencies hold (Memory.Deps): an id in a
// waiting job's list (besides the id's bytes), a waiter in a
// dependency's list, and a dependency's list itself (besides its id).
const (
	DepOverhead     = 16
	WaiterOverhead  = 16
	WaitersOverhead = 64
)

// ErrDepFailed refuses a push after a job that ended without success
// (unless ANYWAY).
var ErrDepFailed = coded("DEPFAILED a dependency ended without success")

// depFailedError names the dependency and its state.
type depFailedError struct {
	ID    string
	State State
}

func (e *depFailedError) Error() string {
	return "DEPFAILED dependency " + e.ID + " is " + e.State.String() + " (push with ANYWAY to run anyway)"
}
func (e *depFailedError) Is(target error) bool { return target == ErrDepFailed }
func (e *depFailedError) Code() string         { return "DEPFAILED" }

type depTable struct {
	mu      sync.Mutex // orders pushes with AFTER and resolutions; see above
	listMu  sync.Mutex // guards waiters; a leaf
	waiters map[string][]*job
	n       atomic.Int64 // len(waiters): ends skip the table while it is empty
	bytes   atomic.Int64 // estimated memory of the registrations (Memory.Deps)
	waiting atomic.Int64 // jobs waiting
	loading []*job       // snapshot: waiting jobs loaded, registered at OpSnapEnd
}

func (d *depTable) init() {
	d.waiters = make(map[string][]*job)
	d.n.Store(0)
	d.bytes.Store(0)
	d.waiting.Store(0)
	d.loading = nil
}

// depEnd is a dependency that ended, with the waiters it had.
type depEnd struct {
	id    string
	state State
	at    int64
	timed bool // a timer ended it (a deadline, a timeout): see retention.add
	ws    []*job
}

func depBytes(id string) int64 { return DepOverhead + int64(len(id)) }

// WaitingJobs is the number of jobs waiting for dependencies (INFO).
func (s *Store) WaitingJobs() int64 { return s.deps.waiting.Load() }

// checkAfter validates a push's dependency list. id is the job's own id
// ("" when generated).
func checkAfter(id string, after []string) ([]string, error) {
	if len(after) > MaxAfter {
		return nil, invalid("a job waits for at most %d jobs", MaxAfter)
	}
	out := make([]string, 0, len(after))
	for _, a := range after {
		a, err := ident("dependency id", a)
		if err != nil {
			return nil, err
		}
		if a == id {
			return nil, invalid("a job cannot wait for itself")
		}
		if slices.Contains(out, a) {
			return nil, invalid("dependency %s is named twice", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// insertAny is insert for any push, with dependencies or not.
func (s *Store) insertAny(r *Record, fx *effects) (bool, error) {
	if len(r.After) > 0 {
		return s.insertAfter(r, fx)
	}
	return s.insert(r, fx)
}

// insertAfter is insert for a push with dependencies. Live, it checks
// them first: each must exist, and one that ended without success refuses
// the push (unless ANYWAY: it counts as met, as a succeeded one does). The
// job is then inserted waiting on those not met, or as any push when none
// is left, and registered on each of them. No lock may be held.
func (s *Store) insertAfter(r *Record, fx *effects) (bool, error) {
	// Jobs whose retention ran out by now are gone before the check,
	// whatever the order maintenance would drop them in.
	s.dropEvicted(fx)
	d := &s.deps
	d.mu.Lock()
	defer d.mu.Unlock()
	if !s.replaying {
		unmet := r.After[:0:0]
		for _, id := range r.After {
			st, ok := s.watch(id, nil)
			switch {
			case !ok:
				return false, invalid("dependency %s: no such job", id)
			case st == Succeeded:
			case st.Terminal():
				if !r.Anyway {
					return false, &depFailedError{ID: id, State: st}
				}
			default:
				unmet = append(unmet, id)
			}
		}
		if len(unmet) == 0 {
			r.After, r.Anyway = nil, false
			return s.insert(r, fx)
		}
		r.After = unmet
	}
	sh := s.shardOf(r.Queue)
	sh.mu.Lock()
	s.drain(sh)
	j, err := s.insertJob(sh, sh.queueFor(r.Queue), r, fx)
	sh.mu.Unlock()
	if err != nil {
		return false, err
	}
	var ends []depEnd
	for _, id := range r.After {
		if st, ok := s.watch(id, j); !ok || st.Terminal() {
			if !ok {
				st = Cancelled // gone by retention since the check: its outcome is lost
			}
			if !s.replaying { // a replay has the resolution's record
				ends = append(ends, depEnd{id: id, state: st, at: r.Now, ws: []*job{j}})
			}
		}
	}
	if len(ends) > 0 { // resolved now, apart from the operation's other ends
		saved := fx.ends
		fx.ends = ends
		s.runEnds(fx)
		fx.ends = saved
	}
	return false, nil
}

// watch reads the state of job id and, when w is set and the job has not
// ended, registers w as waiting for it. It reports false if there is no
// such job. No lock may be held.
func (s *Store) watch(id string, w *job) (State, bool) {
	r, sh, err := s.withID(id)
	if err != nil {
		return 0, false
	}
	defer sh.mu.Unlock()
	st := Queued // packed
	if r.j != nil {
		st = r.j.state
	}
	if w != nil && !st.Terminal() {
		d := &s.deps
		d.listMu.Lock()
		ws, had := d.waiters[id]
		d.waiters[id] = append(ws, w)
		if !had {
			d.n.Add(1)
			d.bytes.Add(WaitersOverhead + int64(len(id)))
		}
		d.listMu.Unlock()
		d.bytes.Add(WaiterOverhead)
	}
	return st, true
}

// depEnded detaches the waiters of j, which has just ended, for the
// operation to resolve after its locks. Lock must be held.
func (s *Store) depEnded(j *job, fx *effects) {
	d := &s.deps
	d.listMu.Lock()
	ws, ok := d.waiters[j.id]
	if ok {
		delete(d.waiters, j.id)
		d.n.Add(-1)
	}
	d.listMu.Unlock()
	if !ok {
		return
	}
	d.bytes.Add(-int64(len(ws))*WaiterOverhead - WaitersOverhead - int64(len(j.id)))
	if !s.replaying {
		fx.ends = append(fx.ends, depEnd{id: j.id, state: j.state, at: j.updatedAt, timed: fx.timed, ws: ws})
	}
}

// runEnds resolves the waiters of the dependencies that ended, and of
// those their resolution ends in turn, in rounds: the ends of a round in
// order of time, then id (not in the order the shards' maintenance met
// them), each one's waiters in push order (not in the order they
// registered in, which a loaded snapshot changes). The queues' order and
// retention's are then the same in every store. deps.mu must be held, no
// other lock.
func (s *Store) runEnds(fx *effects) {
	timed := fx.timed
	for len(fx.ends) > 0 {
		round := fx.ends
		fx.ends = nil
		slices.SortFunc(round, func(a, b depEnd) int {
			if a.at != b.at {
				return cmp.Compare(a.at, b.at)
			}
			return strings.Compare(a.id, b.id)
		})
		for _, e := range round {
			slices.SortFunc(e.ws, pushOrder)
			fx.timed = e.timed // the waiters it cancels are filed as it was
			var held *shard
			for _, w := range e.ws {
				if sh := w.ln.q.sh; sh != held {
					if held != nil {
						held.mu.Unlock()
					}
					held = sh
					sh.mu.Lock()
					s.drain(sh)
				}
				s.resolveDep(w, e.id, e.state, e.at, fx)
			}
			if held != nil {
				held.mu.Unlock()
			}
		}
	}
	fx.timed = timed
}

// pushOrder orders waiters by push time, then queue and push order in
// it: fields set at the push and never changed, so no lock is needed.
func pushOrder(a, b *job) int {
	switch {
	case a.createdAt != b.createdAt:
		return cmp.Compare(a.createdAt, b.createdAt)
	case a.ln.q.name != b.ln.q.name:
		return strings.Compare(a.ln.q.name, b.ln.q.name)
	}
	return cmp.Compare(a.created, b.created)
}

// finishEnds runs the resolutions an operation left. No lock may be held.
func (s *Store) finishEnds(fx *effects) {
	s.deps.mu.Lock()
	s.runEnds(fx)
	s.deps.mu.Unlock()
}

// resolveDep applies the end of dependency id (in state st, at at) to w,
// and logs it, if w still waits for it; it reports whether it did. Lock
// must be held.
func (s *Store) resolveDep(w *job, id string, st State, at int64, fx *effects) bool {
	if w.dropped || w.state != Waiting || w.x == nil {
		return false
	}
	x := w.x
	i := slices.Index(x.after, id)
	if i < 0 {
		return false
	}
	if st == Succeeded || x.anyway {
		x.after = slices.Delete(x.after, i, i+1)
		s.deps.bytes.Add(-depBytes(id))
		if len(x.after) == 0 {
			x.after, x.anyway = nil, false
			s.unblock(w, at, fx)
		}
	} else {
		msg := "dependency " + id + " " + st.String()
		s.count(w.ln.q.sh, 0, int64(len(msg)-len(x.lastError)))
		s.charge(w.ln.q, int64(len(msg)-len(x.lastError)), false)
		x.lastError, x.hasError = msg, true
		s.cancelLocked(w, at, fx)
	}
	s.log(Record{Op: OpAfter, Now: at, ID: w.id, DepID: id, State: st, Timed: fx.timed}, fx)
	return true
}

// unblock queues w, whose last dependency was just met at at, or
// schedules it when its run time is still ahead. Lock must be held.
func (s *Store) unblock(w *job, at int64, fx *effects) {
	sh := w.ln.q.sh
	sh.unarm(w) // a deadline's timer
	w.updatedAt = at
	if w.runAt > at {
		s.move(w, Scheduled)
		sh.armWait(w, at, w.runAt, fx)
		return
	}
	s.move(w, Queued)
	w.runAt = at
	s.enqueue(w, fx)
	sh.armWait(w, at, 0, fx)
}

// clearAfter forgets what w, leaving waiting other than by its
// dependencies, waited for. Lock must be held.
func (s *Store) clearAfter(w *job) {
	if w.x == nil {
		return
	}
	for _, id := range w.x.after {
		s.deps.bytes.Add(-depBytes(id))
	}
	w.x.after, w.x.anyway = nil, false
}

// replayAfter applies a logged OpAfter.
func (s *Store) replayAfter(r *Record, fx *effects) error {
	if r.DepID == "" || !r.State.Terminal() {
		return replayErr(r, "dependency %q in state %s", r.DepID, r.State)
	}
	x := s.index.get(r.ID)
	if !x.ok() || x.j == nil {
		return replayErr(r, "no such waiting job")
	}
	sh := x.shard()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	fx.timed = r.Timed
	defer func() { fx.timed = false }()
	if !s.resolveDep(x.j, r.DepID, r.State, r.Now, fx) {
		return replayErr(r, "job does not wait for %s", r.DepID)
	}
	return nil
}

// loadedWaiting notes a waiting job loaded from a snapshot. Lock must be
// held.
func (s *Store) loadedWaiting(j *job) {
	for _, id := range j.x.after {
		s.deps.bytes.Add(depBytes(id))
	}
	s.deps.waiting.Add(1)
	s.deps.loading = append(s.deps.loading, j)
}

// registerLoaded registers the waiting jobs of a snapshot on their
// dependencies, once every job is loaded (OpSnapEnd).
func (s *Store) registerLoaded() error {
	for _, j := range s.deps.loading {
		for _, id := range j.x.after {
			if st, ok := s.watch(id, j); !ok || st.Terminal() {
				return replayErr(&Record{Op: OpSnapJob, ID: j.id}, "dependency %s is missing or ended", id)
			}
		}
	}
	s.deps.loading = nil
	return nil
}
