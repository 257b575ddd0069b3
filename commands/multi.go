package commands

import "sluice/protocol"

// Transactions: the protocol package keeps the queue and runs EXEC as one
// atomic step; these are their rows.
func txCommands() []protocol.Command {
	const tx = protocol.TxControl | protocol.Fast
	return []protocol.Command{
		{Name: "multi", Arity: 1, Flags: tx, Handler: multi, Group: "transactions",
			Summary: "Start a transaction: the commands that follow are queued until EXEC."},
		{Name: "exec", Arity: 1, Flags: protocol.TxControl, Handler: exec, Group: "transactions",
			Summary: "Run the queued commands as one atomic step, logged as one unit."},
		{Name: "discard", Arity: 1, Flags: tx, Handler: discard, Group: "transactions",
			Summary: "Drop the queued commands."},
		{Name: "watch", Arity: -2, Flags: tx, Handler: watch, Group: "transactions",
			Summary: "Not supported: sluice has no keys to watch.", Args: []protocol.Arg{{Name: "key", Type: "key", Multiple: true}}},
		{Name: "unwatch", Arity: 1, Flags: tx, Handler: unwatch, Group: "transactions",
			Summary: "Nothing is ever watched: answers OK."},
	}
}

// MULTI
func multi(c *protocol.Client, args [][]byte) (any, error) {
	if err := c.Multi(); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// EXEC
func exec(c *protocol.Client, args [][]byte) (any, error) { return c.Exec() }

// DISCARD
func discard(c *protocol.Client, args [][]byte) (any, error) {
	if err := c.Discard(); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// WATCH key [key ...]
func watch(c *protocol.Client, args [][]byte) (any, error) { return nil, c.Watch() }

// UNWATCH
func unwatch(c *protocol.Client, args [][]byte) (any, error) { return protocol.OK, nil }
