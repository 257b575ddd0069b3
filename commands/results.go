package commands

import (
	"time"

	"sluice/blocking"
	"sluice/protocol"
	"sluice/store"
)

// Results, progress and waiting (docs/commands.md "JOBWAIT"): JOBACK ...
// RESULT, JOBPROGRESS, JOBWAIT, and the fields JOBGET adds for them.

func resultCommands(e *Env) []protocol.Command {
	return []protocol.Command{
		{Name: "jobprogress", Arity: 3, Flags: protocol.Write | protocol.Fast, Handler: e.jobProgress,
			Group: "jobs", Summary: "Record a reserved or running job's progress (at most 1024 bytes); the lease is not extended.",
			Args: []protocol.Arg{str("token"), str("value")}},
		{Name: "jobwait", Arity: -2, Flags: protocol.ReadOnly | protocol.Blocking, Handler: e.jobWait,
			Waits: func([][]byte) bool { return true }, Group: "jobs",
			Summary: "Wait until a job is terminal; returns its state, result and last error.",
			Args:    []protocol.Arg{str("id"), {Name: "timeout-ms", Type: "integer", Optional: true}}},
	}
}

var ackArgs = []protocol.Arg{str("token"), opt("RESULT", str("result"))}

// JOBACK token [RESULT result]
func (e *Env) jobAck(c *protocol.Client, args [][]byte) (any, error) {
	var result []byte
	o := newOptions(args[2:])
	for o.more() {
		kw, err := o.next()
		if err != nil {
			return nil, err
		}
		if kw != "RESULT" || result != nil {
			return nil, protocol.ErrSyntax
		}
		v, err := o.value()
		if err != nil {
			return nil, err
		}
		if int64(len(v)) > e.MaxPayload {
			return nil, protocol.Error("ERR result is larger than max-payload (" + protocol.Int(e.MaxPayload) + " bytes)")
		}
		if result = v; v == nil {
			result = []byte{} // an empty result is kept, not none
		}
	}
	if err := e.Store.AckResult(e.now(c), string(args[1]), result); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// JOBPROGRESS token value
func (e *Env) jobProgress(c *protocol.Client, args [][]byte) (any, error) {
	if len(args[2]) > store.MaxProgress {
		return nil, protocol.Error("ERR progress is larger than " + protocol.Int(store.MaxProgress) + " bytes")
	}
	if err := e.Store.Progress(e.now(c), string(args[1]), args[2]); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// JOBWAIT id [timeout-ms]: the job's id, state, result and last error
// once it is terminal; a null array when timeout-ms (0, the default:
// none) passes first, or at once inside EXEC when the job has not ended.
func (e *Env) jobWait(c *protocol.Client, args [][]byte) (any, error) {
	id, err := ident(args[1], "id")
	if err != nil {
		return nil, err
	}
	var timeout int64
	if len(args) > 3 {
		return nil, protocol.ErrSyntax
	}
	if len(args) == 3 {
		o := newOptions(args[2:])
		if timeout, err = reserveBlock(o); err != nil {
			return nil, err
		}
	}
	if e.JobWaits == nil {
		return nil, protocol.Error("ERR JOBWAIT is not available on this server")
	}
	out, ok, err := e.JobWaits.Wait(id, time.Duration(timeout)*time.Millisecond, c.MayBlock(),
		func() (blocking.Parker, func()) { return c.Block() })
	if err != nil {
		return nil, err
	}
	if !ok {
		return protocol.NullArray, nil
	}
	// With appendfsync always, the end is told only once it is synced;
	// not inside EXEC, which holds every other client off meanwhile.
	if c.MayBlock() {
		if err := e.Store.SyncEnd(id); err != nil {
			return nil, err
		}
	}
	return waitReply(out.Ended), nil
}

// waitReply is JOBWAIT's answer: a map (a flat array in RESP2).
func waitReply(e store.Ended) protocol.Map {
	var lastErr any
	if e.HasError {
		lastErr = e.Error
	}
	return protocol.Map{"id", e.ID, "state", e.State.String(), "result", nullBytes(e.Result), "last_error", lastErr}
}

// nullBytes is a null bulk string for nil (none), else the bytes.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// jobWaiting is the number of clients blocked in JOBWAIT (INFO clients).
func (e *Env) jobWaiting() int64 {
	if e.JobWaits == nil {
		return 0
	}
	return e.JobWaits.Waiting()
}
