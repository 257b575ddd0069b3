package cluster

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"sluice/protocol"
)

// RAFT: the group's membership, on any node (changes on the leader).
//
//	RAFT MEMBERS              every member: id, raft address, client address, voter, leader
//	RAFT ADD id raft-address  add a voter (a node started with that id and --cluster-addr, no bootstrap)
//	RAFT REMOVE id            remove a member
//	RAFT TRANSFER             hand leadership to another voter
//
// Membership changes go through raft's own log (not sluice's entries):
// raft applies one at a time, and each answers once committed.

// membershipTimeout bounds how long a change may wait for the group.
const membershipTimeout = 10 * time.Second

var raftSubs = []protocol.Command{
	{Name: "raft|members", Arity: 2, Summary: "List the group's members."},
	{Name: "raft|add", Arity: 4, Summary: "Add a voter: its id and raft address."},
	{Name: "raft|remove", Arity: 3, Summary: "Remove a member by id."},
	{Name: "raft|transfer", Arity: 2, Summary: "Hand leadership to another voter."},
}

// Commands are the commands a node of a group adds to its table.
func (n *Node) Commands() []protocol.Command {
	return []protocol.Command{{Name: "raft", Arity: -2, Flags: protocol.Admin, Handler: n.raftCommand,
		Group: "cluster", Summary: "Show or change the replicated group's members.", Subs: raftSubs}}
}

// StandaloneCommands answer RAFT on a node that is in no group.
func StandaloneCommands() []protocol.Command {
	return []protocol.Command{{Name: "raft", Arity: -2, Flags: protocol.Admin,
		Handler: func(*protocol.Client, [][]byte) (any, error) {
			return nil, protocol.Error("ERR this node is not in a replicated group (start it with --cluster-id)")
		},
		Group: "cluster", Summary: "Show or change the replicated group's members.", Subs: raftSubs}}
}

func (n *Node) raftCommand(c *protocol.Client, args [][]byte) (any, error) {
	r := n.raft.raft
	switch sub := strings.ToLower(string(args[1])); sub {
	case "members":
		return n.members()
	case "add":
		id, addr := string(args[2]), string(args[3])
		if id == "" || strings.ContainsAny(id, " \r\n") {
			return nil, protocol.Error("ERR a member id is a non-empty word")
		}
		if _, err := parseServers([]string{id + "=" + addr}); err != nil {
			return nil, protocol.Error("ERR " + err.Error())
		}
		return n.change(c, func() raft.Future {
			return r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
		})
	case "remove":
		id := raft.ServerID(args[2])
		return n.change(c, func() raft.Future { return r.RemoveServer(id, 0, membershipTimeout) })
	case "transfer":
		return n.change(c, func() raft.Future { return r.LeadershipTransfer() })
	default:
		return nil, protocol.Error(fmt.Sprintf("ERR unknown subcommand '%s'. Try RAFT MEMBERS, ADD, REMOVE or TRANSFER.", args[1]))
	}
}

// change starts a membership change and waits for it, and answers OK or
// why not. It waits without the gate: the change is answered by the FSM
// goroutine in log order, and an entry before it may need the gate alone
// (a transaction, a snapshot).
func (n *Node) change(c *protocol.Client, start func() raft.Future) (any, error) {
	var err error
	c.Ungated(func() { err = start().Error() })
	if err != nil {
		if err == raft.ErrNotLeader {
			return nil, ErrReadOnly
		}
		return nil, protocol.Error("ERR " + err.Error())
	}
	return protocol.OK, nil
}

// members lists the configuration: one array per member.
func (n *Node) members() (any, error) {
	f := n.raft.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, protocol.Error("ERR " + err.Error())
	}
	_, leader := n.raft.raft.LeaderWithID()
	var out []any
	for _, s := range f.Configuration().Servers {
		client := ""
		if string(s.ID) == n.Self().ID {
			client = n.Self().ClientAddr
		} else if p, ok := n.raft.stream.peers.get(string(s.ID)); ok {
			client = p.ClientAddr
		}
		out = append(out, []any{
			"id", string(s.ID), "raft-addr", string(s.Address), "client-addr", client,
			"voter", boolInt(s.Suffrage == raft.Voter), "leader", boolInt(s.ID == leader),
		})
	}
	return out, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
