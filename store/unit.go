package store

import "sync"

// Units: the store's side of a transaction (MULTI/EXEC).
//
// The gate orders whole commands against transactions. Every command
// holds it shared while it runs (the server's dispatcher takes it once per
// command, or once per batch), and so does the timer's Tick; a transaction
// holds it alone, between BeginUnit and EndUnit, so that nothing else
// reads or changes the store while its commands run. Shared holders never
// wait for one another, so the normal path costs two atomic operations per
// command.
//
// Inside a unit, the records its commands log are framed as one (see
// UnitJournal), so that replay applies all of them or none, and the
// queues they notify are told only once the unit is over: a blocked
// reservation served in the middle of a transaction would interleave with
// it, and could be answered before the unit is durable.

// UnitJournal is a Journal that can log several records as one unit, all
// or none of which a replay applies. Between BeginUnit and EndUnit, Append
// buffers records apart and returns 0 (nothing to wait for on its own);
// EndUnit appends them as one and returns the unit's sequence number, for
// Wait (0 when the unit logged nothing). The store calls both with its
// gate held alone, so no other record can be appended meanwhile.
type UnitJournal interface {
	Journal
	BeginUnit()
	EndUnit() uint64
}

// unitState is what a unit in progress keeps. Protected by the gate, held
// alone.
type unitState struct {
	active  bool          // a unit runs (read under the gate held shared too: nothing writes it then)
	notify  *func(string) // the notify callback to restore; nil: none was set
	pending []string      // queues notified during the unit, in order
	keys    []idemAt      // idempotency keys first pushed in the unit, remembered with seq 0
}

// gate is the store's exclusion between commands and transactions.
type gate struct {
	mu   sync.RWMutex // held shared by each command and Tick, alone by a unit
	unit unitState    // protected by mu, held alone

	shares shareState // memory shares (shares.go), kept here while store.go is split
}

// Shared marks the start of a command: it waits while a unit runs. Every
// caller that is not inside a unit pairs it with Unshared; the server's
// dispatcher does it for every command.
func (s *Store) Shared() { s.gate.mu.RLock() }

// Unshared ends what Shared began.
func (s *Store) Unshared() { s.gate.mu.RUnlock() }

// Writable is nil while changes may be made, else the error they would be
// refused with (the log cannot be written).
func (s *Store) Writable() error { return s.writable() }

// BeginUnit starts a unit: it waits until no command runs, then keeps out
// every other command, the timer and blocked reservations until EndUnit.
// The caller then runs the unit's operations from its own goroutine,
// without Shared.
func (s *Store) BeginUnit() {
	s.gate.mu.Lock()
	u := &s.gate.unit
	u.active = true
	u.notify = s.onNotify.Load()
	collect := func(q string) { u.pending = append(u.pending, q) }
	s.onNotify.Store(&collect)
	if uj, ok := s.journal.(UnitJournal); ok && !s.replaying {
		uj.BeginUnit()
	}
}

// EndUnit ends the unit BeginUnit started: its records are logged as one,
// the idempotency keys it remembered are given that record to wait for
// (under idemKeys.mu, inside the gate: doc.go's order), other commands
// run again, the queues it notified are told (so blocked
// reservations are served after it, under the shared gate), and it
// returns once the unit is durable (appendfsync always), or with the
// log's error.
func (s *Store) EndUnit() error {
	var fx effects
	if uj, ok := s.journal.(UnitJournal); ok && !s.replaying {
		fx.seq = uj.EndUnit()
	}
	u := &s.gate.unit
	if fx.seq != 0 && len(u.keys) > 0 {
		// A retry of these keys may run as soon as the gate is let go: it
		// must wait for the unit's record, as the unit's own reply does.
		s.idem.mu.Lock()
		for _, k := range u.keys {
			if e, ok := s.idem.keys[k.key]; ok && e.at == k.at && e.seq == 0 {
				e.seq = fx.seq
				s.idem.keys[k.key] = e
			}
		}
		s.idem.mu.Unlock()
	}
	fn, pending := u.notify, u.pending
	if fn != nil {
		s.onNotify.Store(fn)
	} else {
		s.onNotify.Store(nil)
	}
	clear(u.keys)
	u.active, u.notify, u.pending, u.keys = false, nil, nil, u.keys[:0]
	s.gate.mu.Unlock()
	if len(pending) > 0 && fn != nil {
		s.gate.mu.RLock()
		for _, q := range UniqueNames(pending) {
			(*fn)(q)
		}
		s.gate.mu.RUnlock()
	}
	return s.durable(&fx)
}
