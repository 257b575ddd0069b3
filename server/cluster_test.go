package server_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/server"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startGroup starts three nodes of a group in this process.
func startGroup(t *testing.T) []*server.Server {
	t.Helper()
	raftAddrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var boot []string
	for i, a := range raftAddrs {
		boot = append(boot, fmt.Sprintf("n%d=%s", i, a))
	}
	var nodes []*server.Server
	for i := range 3 {
		cfg := testConfig(t.TempDir())
		cfg.ClusterID, cfg.ClusterAddr, cfg.ClusterBootstrap = fmt.Sprintf("n%d", i), raftAddrs[i], boot
		cfg.ClusterKey = "a secret the three nodes share"
		node := newNode(t, cfg)
		if err := node.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shutdown(t, node) })
		nodes = append(nodes, node)
	}
	return nodes
}

func leaderOf(t *testing.T, nodes []*server.Server) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if n.Cluster().IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return -1
}

// A group of three serves the job lifecycle through its leader; followers
// refuse writes with READONLY and serve reads of what was applied.
func TestGroupServesTheLifecycle(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l := leaderOf(t, nodes)
	lc := redis.NewClient(&redis.Options{Addr: nodes[l].Addrs()[0], Protocol: 2})
	defer lc.Close()
	fc := redis.NewClient(&redis.Options{Addr: nodes[(l+1)%3].Addrs()[0], Protocol: 2})
	defer fc.Close()

	id, err := lc.Do(ctx, "JOBPUSH", "mail", "send", "hello").Text()
	if err != nil {
		t.Fatal(err)
	}
	if err := fc.Do(ctx, "JOBPUSH", "mail", "send", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("push on a follower: %v", err)
	}
	res, err := lc.Do(ctx, "JOBRESERVE", "w1", "30000", "QUEUES", "mail").Slice()
	if err != nil || len(res) != 1 {
		t.Fatalf("reserve: %v %v", res, err)
	}
	token := fmt.Sprint(res[0].([]any)[1]) // field, value, ...: token first
	if err := lc.Do(ctx, "JOBACK", token).Err(); err != nil {
		t.Fatal(err)
	}
	// A blocked reserve on the leader is woken by a push.
	got := make(chan []any, 1)
	go func() {
		r, _ := lc.Do(ctx, "JOBRESERVE", "w2", "30000", "BLOCK", "10000", "QUEUES", "later").Slice()
		got <- r
	}()
	time.Sleep(100 * time.Millisecond)
	pc := redis.NewClient(&redis.Options{Addr: nodes[l].Addrs()[0], Protocol: 2})
	defer pc.Close()
	if err := pc.Do(ctx, "JOBPUSH", "later", "send", "woken").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if len(r) != 1 {
			t.Fatalf("blocked reserve got %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked reserve was not woken")
	}
	// A transaction is applied as one.
	cmds, err := pc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "JOBPUSH", "tx", "h", "a")
		p.Do(ctx, "JOBPUSH", "tx", "h", "b")
		return nil
	})
	if err != nil || len(cmds) != 2 {
		t.Fatalf("transaction: %v %v", cmds, err)
	}
	// The followers apply the same: the acked job is succeeded there.
	for i, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err := c.Do(ctx, "JOBGET", id).Slice()
			state := ""
			for j := 0; err == nil && j+1 < len(m); j += 2 {
				if m[j] == "state" {
					state = fmt.Sprint(m[j+1])
				}
			}
			n, _ := c.Do(ctx, "QUEUELEN", "tx").Int()
			if state == "succeeded" && n == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: job %s is %q (%v), tx queue %d", i, id, state, err, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		c.Close()
	}
}

// Every node knows the leader's client address; when the leader hands
// leadership over, its blocked clients are answered UNBLOCKED and the
// others learn the new leader.
func TestLeaderChangeUnblocksAndIsKnown(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l := leaderOf(t, nodes)
	want := nodes[l].Addrs()[0]
	for i, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			p, ok := n.Cluster().Leader()
			if ok && p.ClientAddr == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d knows the leader as %+v %v, want client address %s", i, p, ok, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: want, Protocol: 2})
	defer c.Close()
	got := make(chan error, 1)
	go func() {
		got <- c.Do(ctx, "JOBRESERVE", "w", "30000", "BLOCK", "20000", "QUEUES", "empty").Err()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for nodes[l].Cluster().Waiters().Waiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reserve never blocked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := nodes[l].Cluster().Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err == nil || !strings.HasPrefix(err.Error(), "UNBLOCKED") {
			t.Fatalf("blocked client got %v, want UNBLOCKED", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked client was not unblocked")
	}
	l2 := leaderOf(t, nodes)
	if l2 == l {
		t.Fatal("leadership did not move")
	}
}
