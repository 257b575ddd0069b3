package cluster

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"sluice/faultproxy"
)

// sumFSM adds up the uint64 entries applied to it.
type sumFSM struct {
	mu       sync.Mutex
	sum, len uint64
}

func (f *sumFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sum += binary.BigEndian.Uint64(l.Data)
	f.len++
	return f.sum
}

func (f *sumFSM) state() (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sum, f.len
}

func (f *sumFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, n := f.state()
	return sumSnap{s, n}, nil
}

func (f *sumFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	f.sum, f.len = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	f.mu.Unlock()
	return nil
}

type sumSnap struct{ sum, len uint64 }

func (s sumSnap) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.sum)
	binary.BigEndian.PutUint64(b[8:], s.len)
	if _, err := sink.Write(b[:]); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (sumSnap) Release() {}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type testGroup struct {
	nodes []*raftNode
	fsms  []*sumFSM
	// proxies[i][j] carries node i's connections to node j.
	proxies [][]*faultproxy.Proxy
}

// startGroup starts n nodes on loopback, each link through a fault proxy.
func startGroup(t *testing.T, n int) *testGroup {
	t.Helper()
	fsms := make([]raft.FSM, n)
	sums := make([]*sumFSM, n)
	for i := range fsms {
		sums[i] = &sumFSM{}
		fsms[i] = sums[i]
	}
	g := startGroupWith(t, fsms)
	g.fsms = sums
	return g
}

// startGroupWith starts a node for each FSM.
func startGroupWith(t *testing.T, fsms []raft.FSM, tune ...func(*RaftConfig)) *testGroup {
	t.Helper()
	n := len(fsms)
	addrs := make([]string, n)
	var boot []string
	for i := range addrs {
		addrs[i] = freeAddr(t)
		boot = append(boot, fmt.Sprintf("n%d=%s", i, addrs[i]))
	}
	g := &testGroup{proxies: make([][]*faultproxy.Proxy, n)}
	for i := range n {
		via := map[string]string{}
		g.proxies[i] = make([]*faultproxy.Proxy, n)
		for j := range n {
			if i == j {
				continue
			}
			p, err := faultproxy.New("127.0.0.1:0", addrs[j])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			g.proxies[i][j] = p
			via[addrs[j]] = p.Addr()
		}
		rc := RaftConfig{ID: fmt.Sprintf("n%d", i), Dir: t.TempDir(), Listen: addrs[i],
			Bootstrap: boot, Peering: Peering{Key: groupKey}, Via: via}
		for _, f := range tune {
			f(&rc)
		}
		node, err := openRaft(rc, fsms[i], zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.close() })
		g.nodes = append(g.nodes, node)
	}
	return g
}

// leader waits for one of the running nodes to lead.
func (g *testGroup) leader(t *testing.T, skip int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range g.nodes {
			if i != skip && n.raft.State() == raft.Leader {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return -1
}

func (g *testGroup) apply(t *testing.T, leader int, v uint64) {
	t.Helper()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	if err := g.nodes[leader].raft.Apply(b[:], 5*time.Second).Error(); err != nil {
		t.Fatalf("apply on n%d: %v", leader, err)
	}
}

// converged waits until the nodes other than skip hold want entries with
// the same sum.
func (g *testGroup) converged(t *testing.T, skip int, want uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		var sum0 uint64
		first := true
		for i, f := range g.fsms {
			if i == skip {
				continue
			}
			s, n := f.state()
			if n != want || (!first && s != sum0) {
				ok = false
			}
			sum0, first = s, false
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for i, f := range g.fsms {
				s, n := f.state()
				t.Logf("n%d: %d entries, sum %d", i, n, s)
			}
			t.Fatalf("nodes did not converge on %d entries", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A group of three over the authenticated transport elects a leader,
// replicates, survives the loss of its leader and catches a partitioned
// node up after the partition heals.
func TestGroupOfThree(t *testing.T) {
	g := startGroup(t, 3)
	l := g.leader(t, -1)
	for v := range uint64(50) {
		g.apply(t, l, v+1)
	}
	g.converged(t, -1, 50)

	// Cut the leader off both ways: the others elect a new one and go on.
	for j := range g.nodes {
		if j != l {
			g.proxies[l][j].SetBoth(faultproxy.Drop)
			g.proxies[j][l].SetBoth(faultproxy.Drop)
			g.proxies[l][j].Cut()
			g.proxies[j][l].Cut()
		}
	}
	l2 := g.leader(t, l)
	for v := range uint64(50) {
		g.apply(t, l2, v+1)
	}
	g.converged(t, l, 100)

	// Heal: the old leader steps down and catches up.
	for j := range g.nodes {
		if j != l {
			g.proxies[l][j].SetBoth(faultproxy.Pass)
			g.proxies[j][l].SetBoth(faultproxy.Pass)
		}
	}
	g.converged(t, -1, 100)
	if s, _ := g.fsms[l].state(); s != 2*(50*51/2) {
		t.Fatalf("sum %d", s)
	}
}
