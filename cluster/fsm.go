package cluster

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"sluice/protocol"
	"sluice/store"
)

// FSM applies committed entries to a node's store through the command
// table, the same on every node: the store is deterministic given each
// entry's time and the generator (EntryGenerator, seeded by the entry).
// Entries are applied one at a time by raft's FSM goroutine.
type FSM struct {
	st     *store.Store
	gen    *store.EntryGenerator
	table  *protocol.Table
	client *protocol.Client
	srv    *protocol.Server // whose users are replicated state too
	log    zerolog.Logger

	now    atomic.Int64          // time of the last entry applied (Unix ms)
	index  atomic.Uint64         // raft index of the last entry applied
	broken atomic.Pointer[error] // set once an entry could not be applied
	// onBreak, when set, runs (once, on its own goroutine) when the node
	// stops applying: the node leaves raft (Node.Open sets it).
	onBreak func()
}

// Applied is what applying an entry returned to the node that proposed it:
// each batch's results, in the entry's order.
type Applied struct {
	Results [][]protocol.Result
	Err     error // the entry was not applied (the node stopped applying)
}

// ErrStopped answers every entry after one this node could not apply: it
// stops, never skips.
var ErrStopped = errors.New("this node stopped applying the replicated log: an entry it cannot apply came before")

// NewFSM applies entries to st, which must draw its ids and tokens from
// gen, running the commands of table on a detached client of srv.
func NewFSM(st *store.Store, gen *store.EntryGenerator, table *protocol.Table, srv *protocol.Server, log zerolog.Logger) *FSM {
	return &FSM{st: st, gen: gen, table: table, client: srv.Detached(), srv: srv, log: log}
}

// Now is the time of the entry being or last applied: the time every
// command on this node runs at (the handlers' Env.Now), so that a read
// never moves the store past what the log says (0 before any entry).
func (f *FSM) Now() int64 { return f.now.Load() }

// AppliedIndex is the raft index of the last entry applied.
func (f *FSM) AppliedIndex() uint64 { return f.index.Load() }

// Broken is the error that stopped this node applying, or nil.
func (f *FSM) Broken() error {
	if p := f.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if f.Broken() != nil {
		return Applied{Err: ErrStopped}
	}
	e, err := DecodeEntry(l.Data)
	if err == nil {
		err = f.knows(e)
	}
	if err != nil {
		err = fmt.Errorf("raft entry %d: %w", l.Index, err)
		f.stop(err)
		f.log.Error().Err(err).Uint64("index", l.Index).
			Msg("cannot apply a replicated entry: this node stops applying (it never skips one) and leaves the group; upgrade it or replace it from a snapshot")
		return Applied{Err: err}
	}
	now := max(e.Now, f.now.Load()) // time never goes back, whatever a leader sent
	f.gen.Begin(e.Seed[:])
	// Reads on this node see the entry's time from now on (Env.Now).
	f.now.Store(now)
	var out Applied
	switch e.Kind {
	case KindTick:
		f.st.Tick(now)
	case KindCommands:
		// Maintenance first, at the entry's time, on every node: reads
		// run at this time from now on (Env.Now) and would otherwise run
		// what is due here on their node alone, since a command refused
		// early runs none.
		f.st.Tick(now)
		out.Results = make([][]protocol.Result, len(e.Batches))
		at := time.UnixMilli(now)
		for i, b := range e.Batches {
			out.Results[i] = f.applyBatch(b, at)
		}
	}
	f.index.Store(l.Index)
	return out
}

// knows checks that every command of e is one this node can run: a
// command it lacks (a newer leader's) or of the wrong arity stops it, as
// an unknown format would; it is never answered with an error and skipped.
func (f *FSM) knows(e *Entry) error {
	for _, b := range e.Batches {
		for _, args := range b {
			cmd := f.table.Lookup(args[0])
			if cmd == nil {
				return fmt.Errorf("%w: command %q", ErrEntryVersion, args[0])
			}
			if !cmd.ArityOK(len(args)) {
				return fmt.Errorf("%w: command %q with %d arguments", ErrEntryVersion, args[0], len(args)-1)
			}
		}
	}
	return nil
}

// stop marks the node as no longer applying and tells onBreak, once.
func (f *FSM) stop(err error) {
	if f.broken.CompareAndSwap(nil, &err) && f.onBreak != nil {
		go f.onBreak()
	}
}

// applyBatch runs one client's commands: one under the gate shared, as a
// connection's command runs; several as one unit, as EXEC runs them.
func (f *FSM) applyBatch(b Batch, at time.Time) []protocol.Result {
	res := make([]protocol.Result, len(b))
	if len(b) == 1 {
		f.st.Shared()
		res[0] = f.run(b[0], at)
		f.st.Unshared()
		return res
	}
	f.st.BeginUnit()
	for i, cmd := range b {
		res[i] = f.run(cmd, at)
	}
	if err := f.st.EndUnit(); err != nil {
		f.log.Error().Err(err).Msg("a replicated transaction's unit did not end cleanly")
	}
	return res
}

func (f *FSM) run(args [][]byte, at time.Time) protocol.Result {
	cmd := f.table.Lookup(args[0]) // known: Apply checked (knows)
	v, err := f.client.RunDetached(cmd, args, at)
	return protocol.Result{Reply: v, Err: err}
}
