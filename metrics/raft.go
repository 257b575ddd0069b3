package metrics

import "github.com/prometheus/client_golang/prometheus"

// RaftStats is a node's view of its replicated group (Sources.Raft).
type RaftStats struct {
	Leader  bool
	Term    uint64
	Commit  uint64 // commit index
	Applied uint64 // last index applied on this node
	// Entries this node proposed and saw applied, and the seconds from
	// proposal to applied, summed: commit and apply latency.
	Proposed     uint64
	ProposedSecs float64
	Peers        []RaftPeer
}

// RaftPeer is another member as the node sees it.
type RaftPeer struct {
	ID                 string
	LastContactSeconds float64 // since it last answered (leader) or the leader last spoke (follower); -1: never
	Lag                uint64  // entries behind
}

var (
	raftLeaderDesc  = desc("raft_leader", "1 while this node leads its group.")
	raftTermDesc    = desc("raft_term", "The raft term this node is in.")
	raftCommitDesc  = desc("raft_commit_index", "The raft commit index this node knows.")
	raftAppliedDesc = desc("raft_applied_index", "The last raft index applied on this node.")
	raftApplyDesc   = desc("raft_apply_seconds", "Time from proposing an entry to its being applied on this node (the leader): commit and apply.")
	raftContactDesc = desc("raft_peer_last_contact_seconds", "Seconds since the peer last answered this leader (or, on a follower, since the leader last spoke); -1: never.", "peer")
	raftLagDesc     = desc("raft_peer_lag_entries", "Entries the peer's log is behind the leader's (on a follower: this node's applied index behind the commit index, under the leader's id).", "peer")
)

func (c *collector) collectRaft(ch chan<- prometheus.Metric) {
	if c.src.Raft == nil {
		return
	}
	s := c.src.Raft()
	ch <- prometheus.MustNewConstMetric(raftLeaderDesc, prometheus.GaugeValue, b2f(s.Leader))
	ch <- prometheus.MustNewConstMetric(raftTermDesc, prometheus.GaugeValue, float64(s.Term))
	ch <- prometheus.MustNewConstMetric(raftCommitDesc, prometheus.GaugeValue, float64(s.Commit))
	ch <- prometheus.MustNewConstMetric(raftAppliedDesc, prometheus.GaugeValue, float64(s.Applied))
	ch <- prometheus.MustNewConstSummary(raftApplyDesc, s.Proposed, s.ProposedSecs, nil)
	for _, p := range s.Peers {
		ch <- prometheus.MustNewConstMetric(raftContactDesc, prometheus.GaugeValue, p.LastContactSeconds, p.ID)
		ch <- prometheus.MustNewConstMetric(raftLagDesc, prometheus.GaugeValue, float64(p.Lag), p.ID)
	}
}
