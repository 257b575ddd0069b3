package commands

import (
	"sluice/protocol"
	"sluice/store"
)

func batchCommands(e *Env) []protocol.Command {
	return []protocol.Command{
		{Name: "batchopen", Arity: -2, Flags: protocol.Write | protocol.Fast, Handler: e.batchOpen,
			Group: "jobs", Summary: "Open a batch of jobs, with a callback job pushed once all of them ended.",
			Args: []protocol.Arg{str("id"),
				{Name: "callback", Type: "block", Token: "CALLBACK", Optional: true, Args: []protocol.Arg{
					str("queue"), str("handler"), str("payload")}},
				{Name: "on", Type: "oneof", Token: "ON", Optional: true, Args: []protocol.Arg{
					{Name: "success", Type: "pure-token", Token: "SUCCESS"}, {Name: "always", Type: "pure-token", Token: "ALWAYS"}}}}},
		{Name: "batchclose", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.batchClose,
			Group: "jobs", Summary: "Close a batch: no job joins it any more, and it completes once its jobs all ended.",
			Args: []protocol.Arg{str("id")}},
		{Name: "batchget", Arity: 2, Flags: protocol.ReadOnly | protocol.Fast, Handler: e.batchGet,
			Group: "jobs", Summary: "Show a batch's progress.", Args: []protocol.Arg{str("id")}},
	}
}

// BATCHOPEN id [CALLBACK queue handler payload] [ON success | always]
func (e *Env) batchOpen(c *protocol.Client, args [][]byte) (any, error) {
	var o store.BatchOptions
	var err error
	if o.ID, err = ident(args[1], "batch id"); err != nil {
		return nil, err
	}
	on := false
	for i := 2; i < len(args); {
		switch {
		case keyword(args[i], "CALLBACK") && o.Callback.Queue == "":
			if i+3 >= len(args) {
				return nil, protocol.ErrSyntax
			}
			if o.Callback.Queue, err = ident(args[i+1], "queue"); err != nil {
				return nil, err
			}
			if o.Callback.Handler, err = ident(args[i+2], "handler"); err != nil {
				return nil, err
			}
			if err := e.checkPayload(args[i+3]); err != nil {
				return nil, err
			}
			o.Callback.Payload = args[i+3] // copied by the store
			i += 4
		case keyword(args[i], "ON") && !on && i+1 < len(args):
			switch {
			case keyword(args[i+1], "success"):
			case keyword(args[i+1], "always"):
				o.Always = true
			default:
				return nil, protocol.Error("ERR ON must be success or always")
			}
			on = true
			i += 2
		default:
			return nil, protocol.ErrSyntax
		}
	}
	if on && o.Callback.Queue == "" {
		return nil, protocol.Error("ERR ON needs CALLBACK")
	}
	if err := e.Store.OpenBatch(e.now(c), o); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// BATCHCLOSE id
func (e *Env) batchClose(c *protocol.Client, args [][]byte) (any, error) {
	id, err := ident(args[1], "batch id")
	if err != nil {
		return nil, err
	}
	if err := e.Store.CloseBatch(e.now(c), id); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// BATCHGET id
func (e *Env) batchGet(c *protocol.Client, args [][]byte) (any, error) {
	id, err := ident(args[1], "batch id")
	if err != nil {
		return nil, err
	}
	b, ok := e.Store.GetBatch(e.now(c), id)
	if !ok {
		return nil, nil
	}
	on := any(nil)
	if b.HasCallback {
		on = "success"
		if b.Always {
			on = "always"
		}
	}
	return protocol.Map{
		"id", b.ID, "state", b.State, "total", b.Total, "succeeded", b.Succeeded, "failed", b.Failed,
		"cancelled", b.Cancelled, "expired", b.Expired, "pending", b.Pending,
		"callback", nullable(b.Callback), "callback_state", nullable(b.CallbackState), "on", on,
		"done_at", nullableTime(b.DoneAt),
	}, nil
}
