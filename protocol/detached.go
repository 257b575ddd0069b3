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

// DetachedAs returns a detached client of s logged in as u, for a caller
// inside the process that has checked u's password itself (the web
// dashboard). addr names the caller in CLIENT LIST's place, the slow log
// and ACL LOG.
func (s *Server) DetachedAs(u *User, addr string) *Client {
	c := s.Detached()
	c.userPtr.Store(u)
	c.addr = addr
	return c
}

// Run runs cmd with args on a detached client the way a connection runs a
// command it has read: the arity, the user's rights, the gate that orders
// commands against transactions, the command's statistics and the slow
// log. Nothing waits (BLOCK answers at once, as inside EXEC). On a node of
// a replicated group cmd comes from the client table, so a write is
// proposed as a client's would be. One goroutine at a time per client.
func (c *Client) Run(cmd *Command, args [][]byte) (any, error) {
	c.started = time.Now()
	if !arityOK(cmd.Arity, len(args)) {
		return nil, WrongArity(cmd.Name)
	}
	r := c.userPtr.Load().rules.Load()
	if !r.enabled { // switched off since the caller checked its password
		return nil, ErrNoAuth
	}
	if !r.all {
		if err := c.permit(cmd, args, "toplevel"); err != nil {
			return nil, err
		}
	}
	c.inExec = true
	var v any
	var err error
	if cmd.Flags&TxControl != 0 {
		v, err = c.call(cmd, args)
	} else {
		c.enter()
		v, err = c.call(cmd, args)
		c.leave()
	}
	c.observe(cmd, args, err != nil)
	c.onFail = c.onFail[:0]
	return v, err
}
