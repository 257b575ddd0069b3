package store_test

// Batches in the naive model (docs/semantics.md "Batches"): a job joins an
// open batch at its push and is counted at its first end; a closed batch
// with nothing pending completes, and its callback (ON always, or every
// job succeeded) is pushed after the operation, at the instant it
// completed; a complete batch is forgotten after the retention.

import (
	"fmt"
	"strings"

	"sluice/store"
)

type mbatch struct {
	id             string
	cb             store.PushOptions
	hasCB, always  bool
	closed, done   bool
	doneAt         int64
	total, pending int64
	counts         map[store.State]int64
	cbID           string
}

// OpenBatch is BATCHOPEN.
func (m *model) OpenBatch(now int64, o store.BatchOptions) error {
	if !ident(&o.ID) {
		return store.ErrInvalid
	}
	cb := o.Callback
	hasCB := cb.Queue != "" || cb.Handler != ""
	if hasCB && (!ident(&cb.Queue) || !ident(&cb.Handler)) {
		return store.ErrInvalid
	}
	if !hasCB && o.Always {
		return store.ErrInvalid
	}
	m.maintain(now)
	switch {
	case m.batches[o.ID] != nil:
		return store.ErrInvalid
	case m.openBatches() >= m.maxBatches:
		return store.ErrBatchesFull
	}
	cb.Payload = append([]byte(nil), cb.Payload...)
	m.batches[o.ID] = &mbatch{id: o.ID, cb: cb, hasCB: hasCB, always: o.Always, counts: map[store.State]int64{}}
	return nil
}

func (m *model) openBatches() int {
	n := 0
	for _, b := range m.batches {
		if !b.done {
			n++
		}
	}
	return n
}

// CloseBatch is BATCHCLOSE.
func (m *model) CloseBatch(now int64, id string) error {
	if !ident(&id) {
		return store.ErrInvalid
	}
	m.maintain(now)
	b := m.batches[id]
	if b == nil || b.closed {
		return store.ErrNoBatch
	}
	b.closed = true
	m.maybeComplete(b, now)
	return nil
}

// maybeComplete completes b if it is closed with nothing pending.
func (m *model) maybeComplete(b *mbatch, now int64) {
	if !b.closed || b.pending > 0 || b.done {
		return
	}
	b.done, b.doneAt = true, now
	m.doneBatches = append(m.doneBatches, b)
	if b.hasCB && (b.always || b.counts[store.Succeeded] == b.total) {
		m.callbacks = append(m.callbacks, b)
	}
}

// joinBatch checks the batch a push joins; the job is counted by joined.
func (m *model) joinBatch(id string) (*mbatch, error) {
	if id == "" {
		return nil, nil
	}
	b := m.batches[id]
	switch {
	case b == nil || b.closed:
		return nil, store.ErrNoBatch
	case b.total >= m.maxBatchJobs:
		return nil, store.ErrBatchFull
	}
	return b, nil
}

func (m *model) joined(b *mbatch, j *mjob) {
	if b != nil {
		b.total++
		b.pending++
		j.batch = b
	}
}

// batchEnded counts j's end in its batch.
func (m *model) batchEnded(now int64, j *mjob) {
	b := j.batch
	if b == nil {
		return
	}
	j.batch = nil
	b.counts[j.job.State]++
	b.pending--
	m.maybeComplete(b, now)
}

// pushCallbacks pushes the callbacks of the batches completed.
func (m *model) pushCallbacks() {
	for len(m.callbacks) > 0 {
		b := m.callbacks[0]
		m.callbacks = m.callbacks[1:]
		if id, err := m.push(b.doneAt, b.cb); err == nil {
			b.cbID = id
		}
	}
}

// forgetBatches forgets the complete batches past retention, oldest
// completion first.
func (m *model) forgetBatches(now int64) {
	for len(m.doneBatches) > 0 && m.doneBatches[0].doneAt+m.retention <= now {
		delete(m.batches, m.doneBatches[0].id)
		m.doneBatches = m.doneBatches[1:]
	}
}

// GetBatch is BATCHGET.
func (m *model) GetBatch(now int64, id string) (store.BatchInfo, bool) {
	m.maintain(now)
	b := m.batches[id]
	if b == nil {
		return store.BatchInfo{}, false
	}
	info := store.BatchInfo{ID: b.id, State: "open", Total: b.total, Succeeded: b.counts[store.Succeeded],
		Failed: b.counts[store.Failed], Cancelled: b.counts[store.Cancelled], Expired: b.counts[store.Expired],
		Pending: b.pending, Callback: b.cbID, HasCallback: b.hasCB, Always: b.always,
		CallbackQueue: b.cb.Queue, CallbackHandler: b.cb.Handler, DoneAt: b.doneAt}
	switch {
	case b.done:
		info.State = "done"
	case b.closed:
		info.State = "closed"
	}
	if b.done && b.hasCB && b.cbID == "" {
		info.CallbackState = "skipped"
	}
	if b.cbID != "" {
		if j := m.find(b.cbID); j != nil {
			info.CallbackState = j.job.State.String()
		} else {
			info.CallbackState = "dropped"
		}
	}
	return info, true
}

// ---- the generator's batch operations ---------------------------------------

var diffBatches = []string{"b1", "b2", "b3"}

func (g *opGen) batchOp(now int64) op {
	id := g.pick(diffBatches)
	switch c := g.src.intn(10); {
	case c < 4:
		o := store.BatchOptions{ID: id}
		if g.chance(70) {
			o.Callback = store.PushOptions{Queue: g.pick(diffQueues), Handler: g.pick(diffHandlers), Payload: []byte("cb")}
			o.Always = g.chance(50)
		}
		if g.chance(3) {
			o.ID = " "
		}
		return op{fmt.Sprintf("OpenBatch(%q, cb=%q/%q always=%v)", o.ID, o.Callback.Queue, o.Callback.Handler, o.Always), func(s sut) reply {
			return reply{text: errText(s.OpenBatch(now, o))}
		}}
	case c < 7:
		return op{fmt.Sprintf("CloseBatch(%q)", id), func(s sut) reply {
			return reply{text: errText(s.CloseBatch(now, id))}
		}}
	default:
		return op{fmt.Sprintf("GetBatch(%q)", id), func(s sut) reply {
			b, ok := s.GetBatch(now, id)
			if !ok {
				return reply{text: "absent"}
			}
			return reply{text: fmtBatch(b)}
		}}
	}
}

func fmtBatch(b store.BatchInfo) string {
	return strings.TrimSpace(fmt.Sprintf("%+v", b))
}
