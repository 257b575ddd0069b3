package protocol

import (
	"strconv"
	"sync"
	"time"
)

// Transactions (MULTI/EXEC/DISCARD), as Redis has them.
//
// After MULTI the dispatcher checks each command as it arrives (known,
// arity, authentication, the queue's bounds) and queues a copy of it,
// answering +QUEUED; a command refused there is answered with its error
// and makes EXEC answer EXECABORT, as in Redis. EXEC runs the queued
// commands as one atomic step: with Config.Atomic's unit begun, which
// keeps every other command out (every command runs with the gate held
// shared, EXEC holds it alone) and logs the commands' changes as one
// unit. A command failing at run time answers its error in its slot of
// EXEC's array and the others still apply. A command that would wait
// (JOBRESERVE ... BLOCK) answers at once inside EXEC (Client.MayBlock), as
// BLPOP does in Redis.

// Atomic is what EXEC needs from what the commands change (a
// store.Store): an exclusion that every command holds shared while it
// runs (Shared, Unshared) and a transaction holds alone (BeginUnit), and
// a log that records the transaction's changes as one unit. EndUnit ends
// both and returns once the unit is durable.
type Atomic interface {
	Shared()
	Unshared()
	BeginUnit()
	EndUnit() error
	// Writable is nil when changes may be made, else why not (the log
	// cannot be written). EXEC asks before it waits for the gate: a
	// transaction must not queue up every command behind it for a disk
	// that stays full.
	Writable() error
}

// localAtomic is the exclusion of a server given no Atomic: commands and
// transactions still exclude each other; nothing is logged.
type localAtomic struct{ mu sync.RWMutex }

func (a *localAtomic) Shared()         { a.mu.RLock() }
func (a *localAtomic) Unshared()       { a.mu.RUnlock() }
func (a *localAtomic) Writable() error { return nil }
func (a *localAtomic) BeginUnit()      { a.mu.Lock() }
func (a *localAtomic) EndUnit() error  { a.mu.Unlock(); return nil }

// Transaction errors, in Redis's words where Redis has them.
const (
	ErrMultiNested     = Error("ERR MULTI calls can not be nested")
	ErrExecWithoutMult = Error("ERR EXEC without MULTI")
	ErrDiscardNoMulti  = Error("ERR DISCARD without MULTI")
	ErrExecAbort       = Error("EXECABORT Transaction discarded because of previous errors.")
	// ErrExecReplyTooLarge answers, in its slot, each command of a
	// transaction that did not run because the replies before it already
	// held MaxExecReply bytes.
	ErrExecReplyTooLarge = Error("ERR not run: the transaction's replies before this command are larger than 64 MiB")
	ErrWatchInMulti      = Error("ERR WATCH inside MULTI is not allowed")
	ErrNotInMulti        = Error("ERR Command not allowed inside a transaction")
	ErrWatch             = Error("ERR WATCH is not supported: sluice has no keys to watch; MULTI/EXEC runs the queued commands atomically as they are")
)

// Queued is the reply to a command queued inside MULTI.
const Queued = SimpleString("QUEUED")

// Defaults of the transaction bounds.
const (
	DefaultMultiMaxCommands = 100_000
	DefaultMultiMaxBytes    = 64 << 20
	// MaxExecReply bounds what EXEC's replies hold, all built before the
	// first is written: past it, the commands left answer
	// ErrExecReplyTooLarge and do not run.
	MaxExecReply = 64 << 20
	// maxMultiBytes keeps a transaction's log unit well inside one log
	// record (persistence.MaxRecord, 1 GiB).
	maxMultiBytes = 512 << 20
)

// txArgOverhead is what a queued argument costs beside its bytes: its
// slice header.
const txArgOverhead = 24

// tx is a transaction being queued. Owned by the client's goroutine.
type tx struct {
	cmds  []*Command
	args  [][][]byte
	bytes int64 // what the queued commands hold, as counted against MultiMaxBytes
	dirty bool  // a command was refused while queueing: EXEC aborts
}

// multiMaxBytes is the bound on what one transaction holds.
func (s *Server) multiMaxBytes() int64 {
	if s.cfg.MultiMaxBytes > 0 {
		return s.cfg.MultiMaxBytes
	}
	return max(DefaultMultiMaxBytes, s.cfg.Limits.MaxCommand)
}

// queue answers a command that arrived inside MULTI: refused (and the
// transaction marked to abort) or copied into the queue.
func (c *Client) queue(cmd *Command, args [][]byte) {
	c.begin(0)
	t := c.txn
	refuse := func(err error) {
		t.dirty = true
		c.writeErr(err)
	}
	switch {
	case cmd == nil:
		refuse(UnknownCommand(args))
		return
	case !arityOK(cmd.Arity, len(args)):
		refuse(WrongArity(cmd.Name))
		return
	case !c.authed && cmd.Flags&NoAuth == 0:
		refuse(ErrNoAuth)
		return
	case cmd.Flags&NoMulti != 0:
		refuse(ErrNotInMulti)
		return
	}
	if err := c.permit(cmd, args, "multi"); err != nil {
		refuse(err)
		return
	}
	if len(cmd.Subs) > 0 && len(args) > 1 {
		if sub := cmd.sub(args[1]); sub != nil && !arityOK(sub.Arity, len(args)) {
			refuse(WrongArity(sub.Name))
			return
		}
	}
	size := int64(len(args)) * txArgOverhead
	for _, a := range args {
		size += int64(len(a))
	}
	maxCmds, maxBytes := c.srv.cfg.MultiMaxCommands, c.srv.multiMaxBytes()
	if maxCmds <= 0 {
		maxCmds = DefaultMultiMaxCommands
	}
	if len(t.cmds) >= maxCmds || t.bytes+size > maxBytes {
		refuse(Error("ERR a transaction may queue at most " + strconv.Itoa(maxCmds) + " commands and " +
			strconv.FormatInt(maxBytes, 10) + " bytes: this one is discarded at EXEC; send smaller transactions"))
		return
	}
	// Copy: the arguments point into the read buffer.
	n := 0
	for _, a := range args {
		n += len(a)
	}
	buf := make([]byte, 0, n)
	own := make([][]byte, len(args))
	for i, a := range args {
		buf = append(buf, a...)
		own[i] = buf[len(buf)-len(a) : len(buf) : len(buf)]
	}
	t.cmds = append(t.cmds, cmd)
	t.args = append(t.args, own)
	t.bytes += size
	c.sized()
	c.w.appendReply(Queued, c.errFn)
}

// ---- what the transaction commands' handlers call ----

// Multi starts a transaction (MULTI).
func (c *Client) Multi() error {
	if c.txn != nil {
		return ErrMultiNested // the transaction stays open, as in Redis
	}
	c.txn = &tx{}
	return nil
}

// Discard drops the queued commands (DISCARD).
func (c *Client) Discard() error {
	if c.txn == nil {
		return ErrDiscardNoMulti
	}
	c.endTx()
	return nil
}

// Watch refuses, there being nothing to watch (WATCH).
func (c *Client) Watch() error {
	if c.txn != nil {
		return ErrWatchInMulti
	}
	return ErrWatch
}

// InMulti reports whether the client is queueing a transaction.
func (c *Client) InMulti() bool { return c.txn != nil }

// MayBlock reports whether the command running may wait for work
// (Client.Block): not inside EXEC, where it answers as if it could not
// wait, as Redis's BLPOP inside MULTI does.
func (c *Client) MayBlock() bool { return !c.inExec }

// endTx forgets the transaction and lets go of what it held.
func (c *Client) endTx() {
	c.txn = nil
	c.sized()
}

// Exec runs the queued commands as one atomic step (EXEC) and returns
// their replies, each command's error in its slot. A transaction with a
// command refused while queueing runs nothing: EXECABORT.
func (c *Client) Exec() (any, error) {
	t := c.txn
	if t == nil {
		return nil, ErrExecWithoutMult
	}
	c.endTx()
	if t.dirty {
		return nil, ErrExecAbort
	}
	out := make([]any, len(t.cmds))
	if len(t.cmds) == 0 {
		return out, nil
	}
	a := c.srv.atomic
	for _, cmd := range t.cmds {
		if cmd.Flags&Write != 0 {
			if err := a.Writable(); err != nil {
				return nil, err
			}
			break
		}
	}
	c.commands.Add(int64(len(t.cmds)))
	if r := c.srv.replicator; r != nil {
		return c.execReplicated(r, t, out)
	}
	gated := c.gated
	if gated { // EXEC itself runs without the gate (TxControl); be safe
		a.Unshared()
	}
	a.BeginUnit()
	// The commands see the moment the unit began, not the moment EXEC was
	// read: BeginUnit waits for the commands in flight.
	c.started = time.Now()
	c.gated, c.inExec = true, true
	var size int
	var scratch []byte
	for i, cmd := range t.cmds {
		if size > MaxExecReply {
			// The replies so far are as large as one may be: what is left
			// does not run, each slot says why (as a runtime error would).
			out[i] = ErrExecReplyTooLarge
			continue
		}
		args := t.args[i]
		if !c.userPtr.Load().rules.Load().all {
			// As Redis: rights changed since the command was queued
			// (ACL SETUSER, ACL LOAD) refuse it now, the others run.
			if err := c.permit(cmd, args, "multi"); err != nil {
				out[i] = err
				continue
			}
		}
		began := time.Now()
		c.lastCmd.Store(cmd)
		v, err := c.call(cmd, args)
		c.record(cmd, args, time.Since(began), err != nil)
		if ms := c.srv.monitors.Load(); ms != nil {
			c.monitored(*ms, cmd, args) // as Redis: MULTI, each command as it runs, EXEC
		}
		if err != nil {
			out[i] = err
		} else {
			out[i] = v
		}
		scratch = AppendReply(scratch[:0], out[i], c.w.proto)
		size += len(scratch)
		if cap(scratch) > 1<<20 {
			scratch = nil
		}
	}
	c.inExec = false
	err := a.EndUnit()
	c.gated = false
	if gated {
		a.Shared()
		c.gated = true
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// execReplicated runs a transaction through the replicator: the rights
// are checked here, as Exec checks them; the commands refused here keep
// their error and the others go together.
func (c *Client) execReplicated(r Replicator, t *tx, out []any) (any, error) {
	var cmds []*Command
	var args [][][]byte
	var slots []int
	for i, cmd := range t.cmds {
		if !c.userPtr.Load().rules.Load().all {
			if err := c.permit(cmd, t.args[i], "multi"); err != nil {
				out[i] = err
				continue
			}
		}
		cmds, args, slots = append(cmds, cmd), append(args, t.args[i]), append(slots, i)
	}
	if len(cmds) > 0 {
		res, err := r.Transaction(cmds, args)
		if err != nil {
			return nil, err
		}
		for j, i := range slots {
			if res[j].Err != nil {
				out[i] = res[j].Err
			} else {
				out[i] = res[j].Reply
			}
		}
	}
	for i, cmd := range t.cmds {
		c.lastCmd.Store(cmd)
		if ms := c.srv.monitors.Load(); ms != nil {
			c.monitored(*ms, cmd, t.args[i])
		}
	}
	return out, nil
}
