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
func (n *Node) Self() Peer {
	if n.raft == nil {
		return Peer{}
	}
	return n.raft.stream.self
}

// Peers lists the other members this node has heard from (their hellos),
// by id.
func (n *Node) Peers() []Peer {
	if n.raft == nil {
		return nil
	}
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

// OnLeaderChange registers fn, called on the node's watching goroutine
// with the old and the new leader (zero Peer: none known) each time the
// leader this node knows changes, until cancel is called. fn must not
// block.
func (n *Node) OnLeaderChange(fn func(old, new Peer)) (cancel func()) {
	n.fnMu.Lock()
	defer n.fnMu.Unlock()
	if n.leaderFns == nil {
		n.leaderFns = map[int]func(old, new Peer){}
	}
	id := n.nextFn
	n.nextFn++
	n.leaderFns[id] = fn
	return func() {
		n.fnMu.Lock()
		delete(n.leaderFns, id)
		n.fnMu.Unlock()
	}
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
		n.fnMu.Lock()
		fns := make([]func(old, new Peer), 0, len(n.leaderFns))
		for _, fn := range n.leaderFns {
			fns = append(fns, fn)
		}
		n.fnMu.Unlock()
		for _, fn := range fns {
			fn(old, now)
		}
	}
}

// Status is a node's view of its group, for ROLE, INFO replication,
// Sentinel's commands and the metrics.
type Status struct {
	Leading bool
	Self    Peer
	Leader  Peer // zero when unknown
	Term    uint64
	Commit  uint64 // commit index
	Applied uint64 // the last index applied here
	Last    uint64 // the last index in this node's log
	Peers   []PeerStatus
}

// PeerStatus is another member as this node sees it.
type PeerStatus struct {
	Peer
	Voter bool
	// On the leader: when the member last answered an append, and how
	// many entries its log is behind the leader's. On a follower: the
	// leader's last contact; Lag is this node's own distance from the
	// commit index. Zero time: never heard from.
	LastContact time.Time
	Lag         uint64
}

// Status reports the node's view of the group now.
func (n *Node) Status() Status {
	if n.raft == nil { // not open yet
		return Status{}
	}
	r := n.raft.raft
	st := Status{Self: n.Self(), Term: r.CurrentTerm(), Commit: r.CommitIndex(), Applied: r.AppliedIndex(), Last: r.LastIndex()}
	st.Leading = r.State() == raft.Leader
	if l, ok := n.Leader(); ok {
		st.Leader = l
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return st
	}
	_, leaderID := r.LeaderWithID()
	for _, s := range f.Configuration().Servers {
		id := string(s.ID)
		if id == st.Self.ID {
			continue
		}
		ps := PeerStatus{Peer: Peer{ID: id, RaftAddr: string(s.Address)}, Voter: s.Suffrage == raft.Voter}
		if p, ok := n.raft.stream.peers.get(id); ok {
			ps.ClientAddr = p.ClientAddr
		}
		switch {
		case st.Leading:
			if pr, ok := n.raft.book.get(id); ok {
				ps.LastContact = pr.Contact
				if st.Last > pr.LastLog {
					ps.Lag = st.Last - pr.LastLog
				}
			}
		case s.ID == leaderID:
			ps.LastContact = r.LastContact()
			if st.Commit > st.Applied {
				ps.Lag = st.Commit - st.Applied
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

// Proposed is how many entries this node proposed and saw applied, and
// their time from proposal to applied, summed.
func (n *Node) Proposed() (uint64, time.Duration) {
	if n.prop == nil { // not open yet
		return 0, 0
	}
	return n.prop.Applied()
}
