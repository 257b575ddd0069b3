package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"sluice/protocol"
)

// Users and their rights are part of a group's replicated state: ACL
// SETUSER and DELUSER are proposed like writes and every node applies
// them; the other ACL subcommands run on the node asked (ACL LOG is each
// node's own, ACL SAVE writes the node's --aclfile). ACL LOAD is refused:
// loading each node's file would let the nodes differ.

// ErrACLLoad answers ACL LOAD on a node of a group.
const ErrACLLoad = protocol.Error("ERR ACL LOAD is not available in a replicated group: nodes could load different files; change users with ACL SETUSER and ACL DELUSER, which every node applies")

func (n *Node) acl(local protocol.Handler) protocol.Handler {
	return func(c *protocol.Client, args [][]byte) (any, error) {
		switch strings.ToLower(string(args[1])) {
		case "setuser":
			return n.propose(c, hashPasswords(args))
		case "deluser":
			return n.propose(c, args)
		case "load":
			return nil, ErrACLLoad
		default:
			return local(c, args)
		}
	}
}

// hashPasswords turns the clear passwords of ACL SETUSER's rules (>pw,
// <pw) into their SHA-256 forms (#hash, !hash), which mean the same: the
// replicated log never holds a clear password.
func hashPasswords(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	copy(out, args)
	for i := 3; i < len(out); i++ {
		r := out[i]
		if len(r) == 0 || (r[0] != '>' && r[0] != '<') {
			continue
		}
		sum := sha256.Sum256(r[1:])
		mark := byte('#')
		if r[0] == '<' {
			mark = '!'
		}
		out[i] = append([]byte{mark}, hex.EncodeToString(sum[:])...)
	}
	return out
}
