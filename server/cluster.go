package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"sluice/cluster"
	"sluice/commands"
	"sluice/config"
	"sluice/metrics"
	"sluice/persistence"
	"sluice/protocol"
	"sluice/store"
)

// A node of a replicated group (--cluster-id) differs from a standalone
// one in three places: its store draws ids and tokens from the entries
// (store.EntryGenerator) and has no append-only log (raft's log replaces
// it); its clients' write commands are proposed (cluster.Node.Wrap, and
// EXEC through the node); and its time is the log's (Env.Now), moved by
// the leader's ticks instead of a local timer.

// peering is how this node proves it belongs to the group: the shared key,
// or else the TLS files of the client port.
func peering(cfg config.Config) (cluster.Peering, error) {
	key := cfg.ClusterKey
	if cfg.ClusterKeyFile != "" {
		b, err := os.ReadFile(cfg.ClusterKeyFile)
		if err != nil {
			return cluster.Peering{}, fmt.Errorf("cluster-key-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key != "" {
		return cluster.Peering{Key: []byte(key)}, nil
	}
	return cluster.Peering{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, CAFile: cfg.TLSCACertFile}, nil
}

// clientAdvertise is the client address a node tells the others: the
// option's, else its first listening address, which must then name a host
// (not 0.0.0.0 or ::).
func clientAdvertise(option, first string) (string, error) {
	if option != "" {
		return option, nil
	}
	if host, _, err := net.SplitHostPort(first); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return "", fmt.Errorf("cluster: the node listens on %s, which is no address to send clients to: set --cluster-client-advertise host:port", first)
		}
	}
	return first, nil
}

// raftConfig turns the settings into the node's raft settings.
func (s *Server) raftConfig() (cluster.RaftConfig, error) {
	cfg := s.cfg
	p, err := peering(cfg)
	if err != nil {
		return cluster.RaftConfig{}, err
	}
	via := map[string]string{}
	for _, v := range cfg.ClusterDialVia {
		a, b, _ := strings.Cut(v, "=")
		via[a] = b
	}
	// Clients are sent to --cluster-client-advertise, else to a node's
	// first address (plaintext if it has one), which must then name a host.
	client, err := clientAdvertise(cfg.ClusterClientAdvertise, s.addrs[0])
	if err != nil {
		return cluster.RaftConfig{}, err
	}
	return cluster.RaftConfig{ID: cfg.ClusterID, Dir: cfg.Dir, Listen: cfg.ClusterAddr, Advertise: cfg.ClusterAdvertise,
		ClientAddr: client, Bootstrap: cfg.ClusterBootstrap, Peering: p, Via: via}, nil
}

// clusterTable builds the tables of a node of a group: the one its FSM
// applies entries with, and the one its clients run (writes proposed).
func (s *Server) clusterTable(cmds []protocol.Command) (fsmTable, clientTable *protocol.Table, err error) {
	if fsmTable, err = protocol.NewTable(cmds); err != nil {
		return nil, nil, err
	}
	clientTable, err = protocol.NewTable(append(s.node.Wrap(cmds, s.env), s.node.Commands()...))
	return fsmTable, clientTable, err
}

// newClusterStore opens the store of a node of a group.
func (s *Server) newClusterStore(scfg store.Config) error {
	s.gen = &store.EntryGenerator{}
	st, err := store.New(scfg, s.gen)
	if err != nil {
		s.log.Error().Err(err).Msg("cannot open the store")
		return err
	}
	s.store = st
	s.node = cluster.NewNode(st, s.gen, s.log)
	if s.cfg.AppendOnly {
		s.log.Info().Msg("in a replicated group the raft log replaces the append-only log: appendonly is ignored")
	}
	return nil
}

// clusterEnv adjusts the handlers' environment to the group's time.
func (s *Server) clusterEnv(env *commands.Env) {
	env.Now = s.node.Now
	env.Replication = groupReplication{node: s.node, name: s.cfg.ClusterName}
	env.Persistence, env.Rewrite = nil, nil
}

// openCluster starts the node's raft: from here on the node applies the
// group's log and, when it leads, proposes.
func (s *Server) openCluster() error {
	rc, err := s.raftConfig()
	if err == nil {
		err = s.node.Open(rc, s.fsmTable, s.srv)
	}
	if err != nil {
		s.log.Error().Err(err).Str("cluster-addr", s.cfg.ClusterAddr).Msg("cannot join the replicated group")
		return err
	}
	s.log.Info().Str("id", s.cfg.ClusterID).Str("cluster-addr", s.cfg.ClusterAddr).Msg("node of a replicated group")
	return nil
}

// Cluster is the node's part in its replicated group; nil when standalone.
func (s *Server) Cluster() *cluster.Node { return s.node }

// Config is the settings the node runs with.
func (s *Server) Config() config.Config { return s.cfg }

// raftStats is the metrics' view of the group.
func (s *Server) raftStats() metrics.RaftStats {
	st := s.node.Status()
	n, d := s.node.Proposed()
	out := metrics.RaftStats{Leader: st.Leading, Term: st.Term, Commit: st.Commit, Applied: st.Applied,
		Proposed: n, ProposedSecs: d.Seconds()}
	for _, p := range st.Peers {
		c := -1.0
		if !p.LastContact.IsZero() {
			c = time.Since(p.LastContact).Seconds()
		}
		out.Peers = append(out.Peers, metrics.RaftPeer{ID: p.ID, LastContactSeconds: c, Lag: p.Lag})
	}
	return out
}

// digest hashes the node's whole state for DEBUG DIGEST: the store's dump
// and, in a group, the generator's state, with the gate held alone so that
// it is one moment's.
func (s *Server) digest() (string, error) {
	h := sha256.New()
	s.store.BeginUnit()
	if s.gen != nil {
		h.Write(s.gen.State())
	}
	err := persistence.WriteDump(h, s.store, s.now())
	if s.srv != nil {
		h.Write([]byte(s.srv.UsersText()))
	}
	if uerr := s.store.EndUnit(); err == nil {
		err = uerr
	}
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// groupReplication is what clients see of roles on a node of a group
// (ROLE, INFO replication, SENTINEL, +switch-master).
type groupReplication struct {
	node *cluster.Node
	name string
}

func (g groupReplication) Status() commands.ReplStatus {
	st := g.node.Status()
	out := commands.ReplStatus{Name: g.name, Role: commands.RoleReplica, ID: st.Self.ID,
		Self: clientAddr(st.Self.ClientAddr), Leader: clientAddr(st.Leader.ClientAddr), LeaderID: st.Leader.ID,
		Term: st.Term, Commit: st.Commit, Applied: st.Applied}
	if out.Name == "" {
		out.Name = commands.DefaultClusterName
	}
	if st.Leading {
		out.Role = commands.RoleMaster
	}
	for _, p := range st.Peers {
		out.Peers = append(out.Peers, commands.Peer{ID: p.ID, Addr: clientAddr(p.ClientAddr), LastContact: p.LastContact, Lag: p.Lag})
	}
	return out
}

func (g groupReplication) OnLeaderChange(fn func(commands.LeaderChange)) func() {
	return g.node.OnLeaderChange(func(old, new cluster.Peer) {
		fn(commands.LeaderChange{Old: clientAddr(old.ClientAddr), New: clientAddr(new.ClientAddr)})
	})
}

// clientAddr reads a host:port; the zero Addr when it is not one.
func clientAddr(s string) commands.Addr {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return commands.Addr{}
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return commands.Addr{}
	}
	return commands.Addr{Host: host, Port: p}
}
