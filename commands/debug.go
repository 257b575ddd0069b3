package commands

import (
	"strings"

	"sluice/protocol"
)

// DEBUG DIGEST: a hash (hex SHA-256) of the whole state this node holds:
// jobs, queues, policies, idempotency keys, as a log rewrite would write
// them, the users as ACL LIST shows them, and in a replicated group the id
// generator's state. Nodes of a
// group that applied the same entries answer the same digest.
func debugCommand(e *Env) protocol.Command {
	return protocol.Command{Name: "debug", Arity: -2, Flags: protocol.Admin, Handler: e.debug,
		Group: "server", Summary: "Show a digest of the node's state.",
		Subs: []protocol.Command{{Name: "debug|digest", Arity: 2, Summary: "Hash the node's whole state."}}}
}

func (e *Env) debug(c *protocol.Client, args [][]byte) (any, error) {
	if !strings.EqualFold(string(args[1]), "digest") {
		return nil, protocol.Error("ERR DEBUG supports only DIGEST")
	}
	if e.Digest == nil {
		return nil, protocol.Error("ERR DEBUG DIGEST is not available on this server")
	}
	// The digest holds the gate alone: this command lets go of its share
	// meanwhile, as a transaction's EXEC does.
	var d string
	var err error
	c.Ungated(func() { d, err = e.Digest() })
	return d, err
}
