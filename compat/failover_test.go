//go:build compat

package compat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stock clients configured with Sentinel, given the three nodes of a group
// as their sentinels and "sluice" as the master name, keep working when
// the leader is killed with SIGKILL: each pushes and runs a lifecycle on
// the leader, the test kills it, and the client pushes again, retrying on
// errors as an application would for up to failoverDeadline while its own
// reconnect and failover find the new leader, then reserves and acks
// there; the job pushed before the kill is still there. No sluice code in
// any client.

// failoverDeadline is how long a client may take to write again after the
// leader is killed: an election takes about a second, the clients' own
// retry and rediscovery the rest. The bound is generous: this test is
// about stock clients finding the new leader by themselves on a loaded
// machine, not about speed (the failover bar is measured by
// chaos.TestFailover).
const failoverDeadline = 30 * time.Second

// groupNode is one sluice process of a group started for a test.
type groupNode struct {
	id   string
	port string // the client port
	logs *lockedBuffer
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

func (n *groupNode) addr() string { return "127.0.0.1:" + n.port }

// group is a three-node sluice group on 127.0.0.1, stopped when the test
// ends.
type group struct {
	nodes []*groupNode
}

// startGroup starts three nodes of the compat tests' binary with their own
// client and raft ports and directories, the same bootstrap list and key,
// and waits until one of them is the leader.
func startGroup(t *testing.T) *group {
	t.Helper()
	g := &group{}
	var boot []string
	raftAddrs := make([]string, 3)
	for i := range raftAddrs {
		raftAddrs[i] = "127.0.0.1:" + freePort(t)
		boot = append(boot, fmt.Sprintf("n%d=%s", i+1, raftAddrs[i]))
	}
	for i, ra := range raftAddrs {
		n := &groupNode{id: fmt.Sprintf("n%d", i+1), port: freePort(t), logs: &lockedBuffer{}, done: make(chan struct{})}
		n.cmd = exec.Command(binary, "--port", n.port, "--dir", t.TempDir(), "--logformat", "json",
			"--cluster-id", n.id, "--cluster-addr", ra, "--cluster-bootstrap", strings.Join(boot, " "),
			"--cluster-key", "a long secret the three test nodes share")
		stderr, err := n.cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(n.done)
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				n.logs.WriteString(sc.Text() + "\n")
			}
			n.cmd.Wait()
		}()
		t.Cleanup(func() {
			n.cmd.Process.Kill()
			<-n.done
		})
		g.nodes = append(g.nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := g.leader(ctx); err != nil {
		t.Fatalf("no leader: %v\n%s", err, g.logs())
	}
	return g
}

// alive reports whether n's process is still running.
func (n *groupNode) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// leader asks the living nodes, in turn and again until ctx ends, for
// SENTINEL GET-MASTER-ADDR-BY-NAME sluice, and answers the node named.
func (g *group) leader(ctx context.Context) (*groupNode, error) {
	var last error = errors.New("no living node")
	for {
		for _, n := range g.nodes {
			if !n.alive() {
				continue
			}
			c := redis.NewSentinelClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
			addr, err := c.GetMasterAddrByName(ctx, "sluice").Result()
			c.Close()
			if err != nil {
				last = fmt.Errorf("%s: %v", n.id, err)
				continue
			}
			for _, m := range g.nodes {
				if len(addr) == 2 && addr[1] == m.port && m.alive() {
					return m, nil
				}
			}
			last = fmt.Errorf("%s names %v", n.id, addr)
		}
		select {
		case <-ctx.Done():
			return nil, last
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// killLeader kills the current leader with SIGKILL and waits for the
// process to be gone.
func (g *group) killLeader(t *testing.T) *groupNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := g.leader(ctx)
	if err != nil {
		t.Fatalf("no leader to kill: %v\n%s", err, g.logs())
	}
	if err := l.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-l.done
	return l
}

// sentinels are the nodes' client addresses, host:port.
func (g *group) sentinels() []string {
	var out []string
	for _, n := range g.nodes {
		out = append(out, n.addr())
	}
	return out
}

// ports are the nodes' client ports, comma-separated, for the scripts.
func (g *group) ports() string {
	var out []string
	for _, n := range g.nodes {
		out = append(out, n.port)
	}
	return strings.Join(out, ",")
}

// logs is what every living node answers ROLE and SENTINEL
// GET-MASTER-ADDR-BY-NAME now, and the tail of every node's log.
func (g *group) logs() string {
	var b strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range g.nodes {
		if !n.alive() {
			fmt.Fprintf(&b, "%s (port %s): killed\n", n.id, n.port)
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
		role, err := c.Do(ctx, "ROLE").Result()
		addr, err2 := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sluice").Result()
		c.Close()
		fmt.Fprintf(&b, "%s (port %s): ROLE %v %v; master %v %v\n", n.id, n.port, role, err, addr, err2)
	}
	for _, n := range g.nodes {
		fmt.Fprintf(&b, "--- %s (port %s) ---\n%s\n", n.id, n.port, tail(n.logs.String(), 15))
	}
	return b.String()
}

// checkNewLeader checks that the group has a leader other than dead.
func (g *group) checkNewLeader(t *testing.T, dead *groupNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := g.leader(ctx)
	if err != nil || l == dead {
		t.Errorf("after the kill the leader is %v (%v), killed %s", l, err, dead.id)
	}
}

func TestFailoverGoRedisRESP3(t *testing.T) { goRedisFailover(t, 3) }

func TestFailoverGoRedisRESP2(t *testing.T) { goRedisFailover(t, 2) }

func goRedisFailover(t *testing.T, proto int) {
	g := startGroup(t)
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: "sluice", SentinelAddrs: g.sentinels(), Protocol: proto,
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n%s", append(args, g.logs())...)
	}
	lifecycle := func(queue, key string) string {
		t.Helper()
		id, err := c.Do(ctx, "JOBPUSH", queue, "send", "hello", "IDEMPOTENCY", key).Text()
		if err != nil {
			fail("JOBPUSH: %v", err)
		}
		res, err := c.Do(ctx, "JOBRESERVE", "w1", 30000, "QUEUES", queue).Slice()
		if err != nil || len(res) != 1 || mapField(res[0], "id") != id {
			fail("JOBRESERVE: %v %v, pushed %s", res, err, id)
		}
		if ok, err := c.Do(ctx, "JOBACK", mapField(res[0], "token")).Text(); err != nil || ok != "OK" {
			fail("JOBACK: %q %v", ok, err)
		}
		return id
	}
	before := lifecycle("failover:before", "failover-before")
	kept, err := c.Do(ctx, "JOBPUSH", "failover:kept", "send", "kept", "IDEMPOTENCY", "failover-kept").Text()
	if err != nil {
		fail("JOBPUSH: %v", err)
	}

	dead := g.killLeader(t)
	killed := time.Now()
	var after string
	var tries int
	var lastErr error
	seen := map[string]bool{}
	for time.Since(killed) < failoverDeadline {
		tries++
		after, lastErr = c.Do(ctx, "JOBPUSH", "failover:after", "send", "hello", "IDEMPOTENCY", "failover-after").Text()
		if lastErr == nil {
			break
		}
		if !seen[lastErr.Error()] {
			seen[lastErr.Error()] = true
			t.Logf("retried on %v", lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		fail("no write within %v of killing the leader %s (%d tries): %v", failoverDeadline, dead.id, tries, lastErr)
	}
	t.Logf("go-redis RESP%d: first write %v after killing the leader %s (%d tries)", proto, time.Since(killed).Round(time.Millisecond), dead.id, tries)
	g.checkNewLeader(t, dead)

	res, err := c.Do(ctx, "JOBRESERVE", "w1", 30000, "QUEUES", "failover:after").Slice()
	if err != nil || len(res) != 1 || mapField(res[0], "id") != after {
		fail("JOBRESERVE on the new leader: %v %v, pushed %s", res, err, after)
	}
	if ok, err := c.Do(ctx, "JOBACK", mapField(res[0], "token")).Text(); err != nil || ok != "OK" {
		fail("JOBACK on the new leader: %q %v", ok, err)
	}
	for id, state := range map[string]string{before: "succeeded", kept: "queued", after: "succeeded"} {
		job, err := c.Do(ctx, "JOBGET", id).Result()
		if err != nil || mapField(job, "state") != state {
			t.Errorf("JOBGET %s on the new leader: %v %v, want state %s", id, job, err, state)
		}
	}
	// The idempotency key of the push before the kill is replicated too.
	if id, err := c.Do(ctx, "JOBPUSH", "failover:kept", "send", "kept", "IDEMPOTENCY", "failover-kept").Text(); err != nil || id != kept {
		t.Errorf("JOBPUSH again with the key pushed before the kill: %q %v, want %s", id, err, kept)
	}
}

func TestFailoverIORedis(t *testing.T) {
	dir := nodeModules(t)
	failoverScript(t, dir, "ioredis", "node", "failover.js", "ioredis")
}

func TestFailoverNodeRedis(t *testing.T) {
	dir := nodeModules(t)
	failoverScript(t, dir, "node-redis", "node", "failover.js", "node-redis")
}

func TestFailoverPython(t *testing.T) {
	failoverScript(t, filepath.Join(root, "compat", "python"), "redis-py", "/usr/bin/python3", "failover.py")
}

// failoverScript runs a client's script against a new group, the nodes'
// client ports its last argument, and talks to it over lines: the script
// prints "READY" once it has run a lifecycle on the leader; the test kills
// the leader and writes "GO"; the script prints "WROTE id" once its first
// push after the kill is answered, then "ok ..." and exits 0, or "FAIL ..."
// and exits non-zero.
func failoverScript(t *testing.T, dir, name, prog string, args ...string) {
	g := startGroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, append(args, g.ports())...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var dead *groupNode
	var killed time.Time
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		switch {
		case line == "READY" && dead == nil:
			dead = g.killLeader(t)
			killed = time.Now()
			if _, err := io.WriteString(stdin, "GO\n"); err != nil {
				t.Errorf("writing GO: %v", err)
			}
		case strings.HasPrefix(line, "WROTE ") && dead != nil:
			t.Logf("%s: first write %v after killing the leader %s", name, time.Since(killed).Round(time.Millisecond), dead.id)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", prog, strings.Join(args, " "), err, out.String(), g.logs())
	}
	if dead == nil {
		t.Fatalf("%s never said READY:\n%s", name, out.String())
	}
	g.checkNewLeader(t, dead)
	t.Logf("%s", out.String())
}
