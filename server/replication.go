package server

import "sluice/commands"

// standaloneReplication is what a node without a group tells clients of
// roles: itself, master of a group of one named --cluster-name (ROLE,
// INFO replication, SENTINEL). A replicated node sets env.Replication to
// its own before the table is built, and calls announceLeaderChanges
// once its protocol server exists.
func (s *Server) standaloneReplication(env *commands.Env) {
	env.Replication = commands.Standalone{Name: s.cfg.ClusterName}
}

// announceLeaderChanges publishes each leader change on +switch-master
// until Shutdown.
func (s *Server) announceLeaderChanges() {
	s.stopAnnounce = commands.AnnounceLeaderChanges(s.env, s.srv)
}
