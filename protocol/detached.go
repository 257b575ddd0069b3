package protocol

import "time"

// A detached client has no connection. A replicated node applies the
// commands of its log through one, so that they run through the same
// handlers as a connection's commands: rights were checked where the
// command was received, and nothing waits (BLOCK answers at once, as inside
// EXEC). What a handler registers to undo should its reply not be written
// (OnWriteFailure) is dropped: the reply goes to a connection on another
// node, or to none.

// Detached returns a new detached client of s, authenticated as the
// default user.
func (s *Server) Detached() *Client {
	c := &Client{srv: s, id: s.nextID.Add(1), addr: "replicated", laddr: "replicated", born: time.Now()}
	c.userPtr.Store(s.acl.def)
	c.authed = true
	c.errFn = c.errText
	return c
}

// RunDetached runs cmd with args on a detached client as if it began at
// now. A panic in the handler answers ErrInternal, as for a connection.
// It must be called from one goroutine at a time per client.
func (c *Client) RunDetached(cmd *Command, args [][]byte, now time.Time) (any, error) {
	c.started = now
	c.inExec = true
	v, err := c.call(cmd, args)
	c.onFail = c.onFail[:0]
	return v, err
}

// Ungated runs fn without the gate the command holds, and takes it back
// after: a replicated write waits there for its entry, which takes the
// gate where it is applied (as a blocked command lets it go while it
// waits). Owner goroutine only, from a handler.
func (c *Client) Ungated(fn func()) {
	held := c.gated
	if held {
		c.leave()
	}
	fn()
	if held {
		c.enter()
	}
}

// Replicator runs a transaction's commands as one replicated step: every
// node applies them together, and the results come back here.
type Replicator interface {
	Transaction(cmds []*Command, args [][][]byte) ([]Result, error)
}

// SetReplicator makes EXEC hand its commands to r instead of running them
// here (a node of a replicated group). Call before serving.
func (s *Server) SetReplicator(r Replicator) { s.replicator = r }

// ArityOK reports whether a call of cmd with n words (the name included)
// has an arity the command accepts.
func (c *Command) ArityOK(n int) bool { return arityOK(c.Arity, n) }
