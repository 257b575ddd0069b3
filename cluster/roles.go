package cluster

import (
	"time"

	"github.com/hashicorp/raft"

	"sluice/protocol"
)

// ErrUnblocked answers the clients blocked on a node that stops leading,
// in Redis 7's words: they ask again where the group now leads.
const ErrUnblocked = protocol.Error("UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)")

// Self is what this node tells the others about itself.
func (n *Node) Self() Peer { return n.raft.stream.self }

// Peers lists the other members this node has heard from (their hellos),
// by id.
func (n *Node) Peers() []Peer {
	var out []Peer
	for _, p := range n.raft.stream.peers.all() {
		if p.ID != n.Self().ID {
			out = append(out, p)
		}
	}
	return out
}

// Leader is the member leading the group as this node knows it, and
// whether one is known (and has said hello, for its client address).
func (n *Node) Leader() (Peer, bool) {
	if n.raft == nil {
		return Peer{}, false
	}
	_, id := n.raft.raft.LeaderWithID()
	if id == "" {
		return Peer{}, false
	}
	if string(id) == n.Self().ID {
		return n.Self(), true
	}
	return n.raft.stream.peers.get(string(id))
}

// OnLeaderChange registers fn, called on its own goroutine with the old
// and the new leader (zero Peer: none known) each time the leader this
// node knows changes. Register before Open.
func (n *Node) OnLeaderChange(fn func(old, new Peer)) {
	n.leaderFns = append(n.leaderFns, fn)
}

// watchLeader follows raft's leader observations: a node that stops
// leading unblocks its blocked clients, and the callbacks hear of every
// change. It ends with n.stop.
func (n *Node) watchLeader() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.raft.RegisterObserver(obs)
	defer n.raft.raft.DeregisterObserver(obs)
	var last Peer
	leading := false
	// The hello of a new leader may come just after the observation: look
	// again a little later until its client address is known.
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ch:
		case <-retry.C:
		case <-n.stop:
			return
		}
		now, ok := n.Leader()
		if _, id := n.raft.raft.LeaderWithID(); id != "" && !ok {
			retry.Reset(50 * time.Millisecond)
		}
		if leading && now.ID != n.Self().ID {
			n.waiters.Interrupt(ErrUnblocked)
		}
		leading = ok && now.ID == n.Self().ID
		if now.ID == last.ID && now.ClientAddr == last.ClientAddr {
			continue
		}
		old := last
		last = now
		for _, fn := range n.leaderFns {
			fn(old, now)
		}
	}
}
