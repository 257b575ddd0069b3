package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/rs/zerolog"
)

// RaftConfig is what a node needs to take part in a group's raft.
type RaftConfig struct {
	ID        string // the node's id in the group, stable across restarts
	Dir       string // raft's log, stable store and snapshots live in Dir/raft
	Listen    string // raft address to listen on, e.g. 127.0.0.1:7390
	Advertise string // address peers dial; Listen's when empty
	// ClientAddr is where this node's clients connect (host:port), told
	// to the other members so that they can send clients here.
	ClientAddr string
	// Bootstrap lists the first voters ("id=addr"), this node among them;
	// used only when Dir holds no raft state yet. Empty: join later, when
	// an existing member adds this node.
	Bootstrap []string
	Peering   Peering
	// Via rewrites the addresses this node dials (tests put a fault proxy
	// on each link); nil in production.
	Via map[string]string

	// Timeouts; zero takes the defaults below.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// Snapshots: taken after SnapshotThreshold entries, keeping
	// TrailingLogs entries behind them; zero takes raft's defaults (8192
	// and 10240).
	SnapshotThreshold uint64
	TrailingLogs      uint64
}

// The defaults are tighter than raft's (1 s): a follower notices a lost
// leader in 0.5-1 s and the group elects another well inside the 2 s a
// failover may take. Loopback and LAN round trips are far below them.
const (
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	DefaultElectionTimeout  = 500 * time.Millisecond
)

// raftNode is a running raft instance and what it owns.
type raftNode struct {
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	book   progressBook // followers' answers to this node's appends
	stream *stream
	bolt   *raftboltdb.BoltStore
}

// parseServers reads "id=addr" entries.
func parseServers(list []string) ([]raft.Server, error) {
	var out []raft.Server
	seen := map[string]bool{}
	for _, s := range list {
		id, addr, ok := strings.Cut(s, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("bootstrap entry %q: want id=host:port", s)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("bootstrap entry %q: %v", s, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("bootstrap lists node id %q twice", id)
		}
		seen[id] = true
		out = append(out, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	return out, nil
}

// hclogFor sends raft's log lines to log, tagged as raft's.
func hclogFor(log zerolog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Output:          log.With().Str("component", name).Logger(),
		Level:           hclog.Info,
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// openRaft starts raft for fsm under cfg.
func openRaft(cfg RaftConfig, fsm raft.FSM, log zerolog.Logger) (*raftNode, error) {
	if cfg.ID == "" {
		return nil, errors.New("cluster: a node id is needed")
	}
	dir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var advertise net.Addr
	if cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("cluster advertise address: %w", err)
		}
		advertise = a
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft address: %w", err)
	}
	st, err := newStream(ln, advertise, cfg.Peering, cfg.Via, Peer{ID: cfg.ID, ClientAddr: cfg.ClientAddr}, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	n := &raftNode{stream: st}
	ok := false
	defer func() {
		if !ok {
			n.close()
		}
	}()
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: st, MaxPool: 3, Timeout: 10 * time.Second, Logger: hclogFor(log, "raft-net"),
	})
	n.bolt, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("cluster: raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclogFor(log, "raft-snap"))
	if err != nil {
		return nil, fmt.Errorf("cluster: raft snapshots: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hclogFor(log, "raft")
	rc.HeartbeatTimeout = orDefault(cfg.HeartbeatTimeout, DefaultHeartbeatTimeout)
	rc.ElectionTimeout = orDefault(cfg.ElectionTimeout, DefaultElectionTimeout)
	rc.LeaderLeaseTimeout = rc.HeartbeatTimeout / 2
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if len(cfg.Bootstrap) > 0 {
		servers, err := parseServers(cfg.Bootstrap)
		if err != nil {
			return nil, err
		}
		found := false
		for _, s := range servers {
			found = found || s.ID == rc.LocalID
		}
		if !found {
			return nil, fmt.Errorf("cluster: the bootstrap list does not name this node (%s)", cfg.ID)
		}
		has, err := raft.HasExistingState(n.bolt, n.bolt, snaps)
		if err != nil {
			return nil, err
		}
		if !has {
			if err := raft.BootstrapCluster(rc, n.bolt, n.bolt, snaps, &progressTransport{n.trans, &n.book}, raft.Configuration{Servers: servers}); err != nil {
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
		}
	}
	n.raft, err = raft.NewRaft(rc, fsm, n.bolt, n.bolt, snaps, &progressTransport{n.trans, &n.book})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	ok = true
	return n, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// close stops raft and releases what it owns.
func (n *raftNode) close() error {
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	} else if n.stream != nil {
		errs = append(errs, n.stream.Close())
	}
	if n.bolt != nil {
		errs = append(errs, n.bolt.Close())
	}
	return errors.Join(errs...)
}
