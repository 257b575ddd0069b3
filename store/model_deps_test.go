package store_test

// Dependencies in the naive model (docs/semantics.md "Dependencies"): a
// job pushed AFTER jobs that have not all succeeded waits; when one ends,
// each job waiting for it (in push order) has it met, and is queued or
// scheduled once nothing is left, or is cancelled with error "dependency
// <id> <state>" when it ended without success and the job was not pushed
// ANYWAY. The ends of one operation are resolved after it, in order of
// time and then id, those their cancellations cause in a further round.

import (
	"slices"
	"sort"
	"strings"

	"sluice/store"
)

// mend is a job that ended, whose waiters are still to be resolved.
type mend struct {
	dep   *mjob // the job itself: its id may be reused once it is dropped
	id    string
	state store.State
	at    int64
	timed bool
}

// mAfter checks a push's dependency list and returns it trimmed, in a
// slice of its own (the caller's is shared with the store).
func mAfter(p store.PushOptions) ([]string, bool) {
	if len(p.After) == 0 {
		return nil, !p.AfterAnyway
	}
	if len(p.After) > store.MaxAfter {
		return nil, false
	}
	id := strings.TrimSpace(p.ID)
	out := make([]string, 0, len(p.After))
	for _, a := range p.After {
		if !ident(&a) || a == id || slices.Contains(out, a) {
			return nil, false
		}
		out = append(out, a)
	}
	return out, true
}

// depsOf finds the jobs a push waits for: none when each has succeeded
// (or ended, with ANYWAY). Every one must be held; one that ended without
// success refuses the push unless ANYWAY.
func (m *model) depsOf(after []string, anyway bool) ([]*mjob, error) {
	var waits []*mjob
	for _, id := range after {
		d := m.find(id)
		switch {
		case d == nil:
			return nil, store.ErrInvalid
		case d.job.State == store.Succeeded:
		case d.job.State.Terminal():
			if !anyway {
				return nil, store.ErrDepFailed
			}
		default:
			waits = append(waits, d)
		}
	}
	return waits, nil
}

// ended notes that j just ended, for settle.
func (m *model) ended(now int64, j *mjob) {
	j.waits, j.anyway = nil, false
	m.ends = append(m.ends, mend{dep: j, id: j.job.ID, state: j.job.State, at: now, timed: m.timedEnd})
}

// settle resolves the waiters of the jobs that ended.
func (m *model) settle() {
	for len(m.ends) > 0 {
		round := m.ends
		m.ends = nil
		sort.SliceStable(round, func(a, b int) bool {
			if round[a].at != round[b].at {
				return round[a].at < round[b].at
			}
			return round[a].id < round[b].id
		})
		for _, e := range round {
			var ws []*mjob
			for _, w := range m.jobs {
				if w.job.State == store.Waiting && slices.Contains(w.waits, e.dep) {
					ws = append(ws, w)
				}
			}
			sort.Slice(ws, func(a, b int) bool {
				x, y := ws[a], ws[b]
				switch {
				case x.job.CreatedAt != y.job.CreatedAt:
					return x.job.CreatedAt < y.job.CreatedAt
				case x.job.Queue != y.job.Queue:
					return x.job.Queue < y.job.Queue
				}
				return x.pushSeq < y.pushSeq
			})
			for _, w := range ws {
				if e.state == store.Succeeded || w.anyway {
					w.waits = slices.DeleteFunc(w.waits, func(d *mjob) bool { return d == e.dep })
					if len(w.waits) == 0 {
						m.unblock(e.at, w)
					}
					continue
				}
				w.job.LastError, w.job.HasLastError = "dependency "+e.id+" "+e.state.String(), true
				m.timedEnd = e.timed
				m.makeTerminal(e.at, w, store.Cancelled)
				m.timedEnd = false
			}
		}
	}
	m.pushCallbacks() // model_batch_test.go
}

// settleDue settles the ends the timers met (before retention and the
// operation), and asks for a further round of events: a job it scheduled
// may be due already.
func (m *model) settleDue() bool {
	m.settle()
	return true
}

// unblock queues w, its last dependency met at at, or schedules it when
// its run time is ahead.
func (m *model) unblock(at int64, w *mjob) {
	w.waits, w.anyway = nil, false
	if w.job.RunAt > at {
		w.job.State = store.Scheduled
		w.job.UpdatedAt = at
		w.dueSeq = m.next()
		m.waitFrom(at, w)
		return
	}
	m.enqueue(at, w)
}

// afterView is what JOBGET shows of a waiting job's dependencies.
func afterView(j *mjob, out *store.Job) {
	if j.job.State != store.Waiting || len(j.waits) == 0 {
		return
	}
	for _, d := range j.waits {
		out.After = append(out.After, d.job.ID)
	}
	out.BlockedBy = "after:" + out.After[0]
}
