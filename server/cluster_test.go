package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/config"
	"sluice/server"
)

// freeAddr returns a loopback address whose port is free.
//
// The port is taken below the kernel's ephemeral range (32768 and up on
// Linux): the address is free now but bound only later, and meanwhile the
// test's own listeners on port 0 (a node's RESP and HTTP ports) would
// otherwise be handed the same port now and then.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue // taken: another
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startGroup starts three nodes of a group in this process.
func startGroup(t *testing.T, tune ...func(*config.Config)) []*server.Server {
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
		for _, f := range tune {
			f(&cfg)
		}
		node := newNode(t, cfg)
		if err := node.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shutdown(t, node) })
		nodes = append(nodes, node)
	}
	return nodes
}

// everyNode waits until every node has applied what node l (the leader)
// has, then sends cmd to each and returns their replies, formatted.
func everyNode(t *testing.T, nodes []*server.Server, l int, cmd ...any) []string {
	t.Helper()
	want := nodes[l].Cluster().Status().Applied
	var out []string
	for i, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for n.Cluster().Status().Applied < want {
			if time.Now().After(deadline) {
				t.Fatalf("node %d behind", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
		v, err := c.Do(context.Background(), cmd...).Result()
		c.Close()
		if err != nil {
			t.Fatalf("node %d: %v: %v", i, cmd, err)
		}
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// leaderClient waits for the group's leader and returns it and a client of
// it, closed when the test ends.
func leaderClient(t *testing.T, nodes []*server.Server) (int, *redis.Client) {
	t.Helper()
	l := leaderOf(t, nodes)
	lc := redis.NewClient(&redis.Options{Addr: nodes[l].Addrs()[0], Protocol: 2})
	t.Cleanup(func() { lc.Close() })
	return l, lc
}

// doer returns a function that sends a command on c and fails the test on
// an error.
func doer(t *testing.T, c *redis.Client) func(cmd ...any) any {
	return func(cmd ...any) any {
		t.Helper()
		v, err := c.Do(context.Background(), cmd...).Result()
		if err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
		return v
	}
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
	l, lc := leaderClient(t, nodes)
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
	// And end with the same state: DEBUG DIGEST agrees once each node has
	// applied what the leader has.
	digests := everyNode(t, nodes, l, "DEBUG", "DIGEST")
	for i, d := range digests {
		if len(d) != 64 {
			t.Fatalf("node %d: DEBUG DIGEST %q", i, d)
		}
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Fatalf("digests differ: %v", digests)
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

// RAFT MEMBERS lists the group with each member's client address; a node
// started with no bootstrap joins through RAFT ADD, gets the log, and
// leaves through RAFT REMOVE. On a follower a change answers READONLY; a
// standalone node says it is in no group.
func TestRaftMembership(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l, lc := leaderClient(t, nodes)
	if err := lc.Do(ctx, "JOBPUSH", "q", "h", "before the join").Err(); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t.TempDir())
	cfg.ClusterID, cfg.ClusterAddr, cfg.ClusterKey = "n3", freeAddr(t), "a secret the three nodes share"
	joiner := newNode(t, cfg)
	if err := joiner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, joiner) })
	fc := redis.NewClient(&redis.Options{Addr: nodes[(l+1)%3].Addrs()[0], Protocol: 2})
	defer fc.Close()
	if err := fc.Do(ctx, "RAFT", "ADD", "n3", cfg.ClusterAddr).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("RAFT ADD on a follower: %v", err)
	}
	if err := lc.Do(ctx, "RAFT", "ADD", "n3", "not-an-address").Err(); err == nil {
		t.Fatal("RAFT ADD with a bad address accepted")
	}
	if err := lc.Do(ctx, "RAFT", "ADD", "n3", cfg.ClusterAddr).Err(); err != nil {
		t.Fatal(err)
	}
	jc := redis.NewClient(&redis.Options{Addr: joiner.Addrs()[0], Protocol: 2})
	defer jc.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if n, _ := jc.Do(ctx, "QUEUELEN", "q").Int(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new member did not get the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	members, err := lc.Do(ctx, "RAFT", "MEMBERS").Slice()
	if err != nil || len(members) != 4 {
		t.Fatalf("RAFT MEMBERS: %v %v", members, err)
	}
	found := false
	for _, m := range members {
		f := m.([]any)
		if f[1] == "n3" {
			found = true
			if f[5] != joiner.Addrs()[0] {
				t.Fatalf("n3's client address %v, want %s", f[5], joiner.Addrs()[0])
			}
		}
	}
	if !found {
		t.Fatalf("n3 not listed: %v", members)
	}
	if err := lc.Do(ctx, "RAFT", "REMOVE", "n3").Err(); err != nil {
		t.Fatal(err)
	}
	if members, _ := lc.Do(ctx, "RAFT", "MEMBERS").Slice(); len(members) != 3 {
		t.Fatalf("after REMOVE: %v", members)
	}

	solo := newNode(t, testConfig(t.TempDir()))
	if err := solo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, solo) })
	sc := redis.NewClient(&redis.Options{Addr: solo.Addrs()[0], Protocol: 2})
	defer sc.Close()
	if err := sc.Do(ctx, "RAFT", "MEMBERS").Err(); err == nil || !strings.Contains(err.Error(), "not in a replicated group") {
		t.Fatalf("standalone RAFT: %v", err)
	}
}

// Users are replicated: a user made on the leader can log in on every
// node with the rights given; the replicated log holds its password's
// hash only; ACL LOAD is refused in a group.
func TestUsersAreReplicated(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l, lc := leaderClient(t, nodes)
	const pw = "clear-password-7f3a"
	if err := lc.Do(ctx, "ACL", "SETUSER", "producer", "on", ">"+pw, "~team-a:*", "+@producer").Err(); err != nil {
		t.Fatal(err)
	}
	if err := lc.Do(ctx, "ACL", "LOAD").Err(); err == nil || !strings.Contains(err.Error(), "not available in a replicated group") {
		t.Fatalf("ACL LOAD: %v", err)
	}
	for i, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2, Username: "producer", Password: pw})
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := c.Ping(ctx).Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: the user cannot log in: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if i == l {
			if err := c.Do(ctx, "JOBPUSH", "team-a:mail", "send", "x").Err(); err != nil {
				t.Fatalf("push as the user: %v", err)
			}
			if err := c.Do(ctx, "JOBPUSH", "team-b:mail", "send", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
				t.Fatalf("push outside the user's queues: %v", err)
			}
		}
		c.Close()
	}
	for i, n := range nodes { // bolt writes each entry through before commit
		b, err := os.ReadFile(filepath.Join(n.Config().Dir, "raft", "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(pw)) {
			t.Fatalf("node %d's raft log holds the clear password", i)
		}
	}
}

// The leader's status lists each follower with its client address, a
// recent contact and how far behind it is; a follower's names the leader.
func TestGroupStatus(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t, func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" })
	l, lc := leaderClient(t, nodes)
	for range 10 {
		if err := lc.Do(ctx, "JOBPUSH", "q", "h", "x").Err(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := nodes[l].Cluster().Status()
		ok := st.Leading && len(st.Peers) == 2
		for _, p := range st.Peers {
			ok = ok && p.ClientAddr != "" && p.Lag == 0 && time.Since(p.LastContact) < 5*time.Second
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader's status: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f := nodes[(l+1)%3].Cluster().Status()
	if f.Leading || f.Leader.ClientAddr != nodes[l].Addrs()[0] || f.Term == 0 {
		t.Fatalf("follower's status: %+v", f)
	}
	// The metrics say the same.
	for i, n := range nodes {
		resp, err := http.Get(n.MetricsURL())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "sluice_raft_leader 0"
		if i == l {
			want = "sluice_raft_leader 1"
		}
		for _, w := range []string{want, "sluice_raft_term ", "sluice_raft_applied_index ", "sluice_raft_peer_lag_entries{peer=", "sluice_raft_apply_seconds_count "} {
			if !strings.Contains(string(body), w) {
				t.Fatalf("node %d's metrics lack %q", i, w)
			}
		}
	}
}

// A node started with --cluster-client-advertise is named by that address
// on the other nodes, in their status and to Sentinel clients.
func TestClientAdvertiseIsWhatOthersName(t *testing.T) {
	ctx := context.Background()
	n := 0
	nodes := startGroup(t, func(c *config.Config) {
		n++
		c.ClusterClientAdvertise = fmt.Sprintf("127.0.0.1:%d", 16400+n)
	})
	l := leaderOf(t, nodes)
	want := nodes[l].Config().ClusterClientAdvertise
	f := (l + 1) % 3
	deadline := time.Now().Add(10 * time.Second)
	for nodes[f].Cluster().Status().Leader.ClientAddr != want {
		if time.Now().After(deadline) {
			t.Fatalf("follower names the leader %q, want %q", nodes[f].Cluster().Status().Leader.ClientAddr, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := redis.NewClient(&redis.Options{Addr: nodes[f].Addrs()[0], Protocol: 2})
	defer c.Close()
	got, err := c.Do(ctx, "SENTINEL", "get-master-addr-by-name", "sluice").StringSlice()
	if err != nil || len(got) != 2 || got[0]+":"+got[1] != want {
		t.Fatalf("SENTINEL get-master-addr-by-name = %v, %v; want %s", got, err, want)
	}
}

// Sentinel-aware clients find the leader through any node: ROLE and
// SENTINEL name it everywhere, and a leadership change is published on
// +switch-master.
func TestGroupRolesForSentinelClients(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l := leaderOf(t, nodes)
	host, port, _ := net.SplitHostPort(nodes[l].Addrs()[0])
	for i, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
		deadline := time.Now().Add(10 * time.Second)
		for {
			addr, err := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sluice").StringSlice()
			if err == nil && len(addr) == 2 && addr[0] == host && addr[1] == port {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d names the master %v (%v), want %s:%s", i, addr, err, host, port)
			}
			time.Sleep(10 * time.Millisecond)
		}
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			t.Fatal(err)
		}
		want := "slave"
		if i == l {
			want = "master"
		}
		if role[0] != want {
			t.Fatalf("node %d: ROLE %v, want %s", i, role, want)
		}
		c.Close()
	}
	f := (l + 1) % 3
	sub := redis.NewClient(&redis.Options{Addr: nodes[f].Addrs()[0], Protocol: 2})
	defer sub.Close()
	ps := sub.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nodes[l].Cluster().Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ps.Channel():
		if !strings.HasPrefix(m.Payload, "sluice "+host+" "+port+" ") {
			t.Fatalf("+switch-master %q", m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no +switch-master after the leader changed")
	}
}

// A membership change while transactions run does not hang the leader:
// the change waits for the FSM, which may need the store's gate alone for
// a transaction before it.
func TestMembershipChangeDuringTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := startGroup(t)
	l := leaderOf(t, nodes)
	addr := nodes[l].Addrs()[0]
	stop := make(chan struct{})
	done := make(chan struct{}, 4)
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
			defer c.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Do(ctx, "JOBPUSH", "tx", "h", "a")
					p.Do(ctx, "JOBPUSH", "tx", "h", "b")
					return nil
				})
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, ReadTimeout: 20 * time.Second})
	defer c.Close()
	var gone string
	for i, n := range nodes {
		if i != l {
			gone = n.Config().ClusterID
			break
		}
	}
	err := c.Do(ctx, "RAFT", "REMOVE", gone).Err()
	close(stop)
	for range 4 {
		<-done
	}
	if err != nil {
		t.Fatalf("RAFT REMOVE during transactions: %v", err)
	}
	if err := c.Do(ctx, "QUEUELEN", "tx").Err(); err != nil {
		t.Fatalf("the leader stopped answering: %v", err)
	}
}

// Templates and throttles are applied alike on every node: the same
// policies are listed and the digests agree.
func TestGroupAppliesTemplatesAndThrottles(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l, lc := leaderClient(t, nodes)
	for _, cmd := range [][]any{
		{"POLICYSET", "CONCURRENCY", "tenant:*", 1},
		{"POLICYSET", "RATELIMIT", "api:*", 1, 600000},
		{"JOBPUSH", "q", "h", "1", "CONCURRENCY", "tenant:a", "RATELIMIT", "api:x"},
		{"JOBPUSH", "q", "h", "2", "CONCURRENCY", "tenant:a"},
		{"JOBPUSH", "q", "h", "3", "CONCURRENCY", "tenant:b", "RATELIMIT", "api:x"},
		{"JOBPUSH", "q", "h", "4", "CONCURRENCY", "tenant:c"},
		{"POLICYTHROTTLE", "tenant:c", 600000},
	} {
		if err := lc.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	res, err := lc.Do(ctx, "JOBRESERVE", "w", "60000", "COUNT", "10", "QUEUES", "q").Slice()
	if err != nil || len(res) != 1 { // tenant:a's first; its second is capped, b's rate-limited, c throttled
		t.Fatalf("reserve: %v %v", res, err)
	}
	token := fmt.Sprint(res[0].([]any)[1])
	if err := lc.Do(ctx, "JOBRELEASE", token, "THROTTLE", "tenant:a", 600000).Err(); err != nil {
		t.Fatal(err)
	}
	digests, lists := everyNode(t, nodes, l, "DEBUG", "DIGEST"), everyNode(t, nodes, l, "POLICYLIST")
	if !strings.Contains(lists[l], "kind throttle key tenant:a") || !strings.Contains(lists[l], "template tenant:*]") {
		t.Fatalf("the leader lists %s", lists[l])
	}
	if digests[0] != digests[1] || digests[1] != digests[2] || lists[0] != lists[1] || lists[1] != lists[2] {
		t.Fatalf("nodes differ:\n%v\n%v", digests, strings.Join(lists, "\n"))
	}
}

// A circuit breaker goes through the same states on every node: failures
// open it on each, the same jobs are probes, and the digests agree.
func TestGroupAppliesBreakers(t *testing.T) {
	nodes := startGroup(t)
	l, lc := leaderClient(t, nodes)
	do := doer(t, lc)
	do("POLICYSET", "BREAKER", "handler:h", 2, 600000, 600000)
	do("POLICYSET", "BREAKER", "key:api", 1, 600000, 1, 2)
	for i := range 4 {
		do("JOBPUSH", "q", "h", fmt.Sprint(i))
		do("JOBPUSH", "q2", "g", fmt.Sprint(i), "CONCURRENCY", "api")
	}
	tokens := func(res any) []string {
		var out []string
		for _, r := range res.([]any) {
			out = append(out, fmt.Sprint(r.([]any)[1]))
		}
		return out
	}
	for _, tok := range tokens(do("JOBRESERVE", "w", "60000", "COUNT", "2", "QUEUES", "q")) {
		do("JOBFAIL", tok, "ERROR", "down")
	}
	for _, tok := range tokens(do("JOBRESERVE", "w", "60000", "COUNT", "1", "QUEUES", "q2")) {
		do("JOBFAIL", tok)
	}
	time.Sleep(5 * time.Millisecond) // key:api's cooldown (1 ms) ends: half-open, two probes
	if res := tokens(do("JOBRESERVE", "w", "60000", "COUNT", "10", "QUEUES", "q", "q2")); len(res) != 2 {
		t.Fatalf("reserved %v, want key:api's two probes", res)
	}
	digests, lists := everyNode(t, nodes, l, "DEBUG", "DIGEST"), everyNode(t, nodes, l, "POLICYLIST")
	if !strings.Contains(lists[l], "key handler:h") || !strings.Contains(lists[l], "state open") ||
		!strings.Contains(lists[l], "state half-open") || !strings.Contains(lists[l], "probes_out 2") {
		t.Fatalf("the leader lists %s", lists[l])
	}
	if digests[0] != digests[1] || digests[1] != digests[2] || lists[0] != lists[1] || lists[1] != lists[2] {
		t.Fatalf("nodes differ:\n%v\n%v", digests, strings.Join(lists, "\n"))
	}
}

// Unique keys are applied alike on every node: the pushes, the duplicates'
// replacements and the keys' releases as jobs leave their scope.
func TestGroupAppliesUniqueKeys(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l, lc := leaderClient(t, nodes)
	do := doer(t, lc)
	for i := range 6 {
		do("JOBPUSH", "q", "h", fmt.Sprint(i), "UNIQUE", fmt.Sprint("k", i%3), "SCOPE", []string{"queued", "active", "until-terminal"}[i%3])
	}
	held := do("JOBPUSH", "later", "h", "first", "DELAY", 60000, "UNIQUE", "debounce", "ON-DUPLICATE", "extend")
	do("JOBPUSH", "later", "h", "last", "DELAY", 120000, "UNIQUE", "debounce", "ON-DUPLICATE", "extend")
	res := do("JOBRESERVE", "w", "60000", "COUNT", "3", "QUEUES", "q").([]any)
	if len(res) != 3 {
		t.Fatalf("reserved %v", res)
	}
	do("JOBACK", fmt.Sprint(res[2].([]any)[1]))
	if err := lc.Do(ctx, "JOBPUSH", "q", "h", "x", "UNIQUE", "k1", "ON-DUPLICATE", "reject").Err(); err == nil || !strings.HasPrefix(err.Error(), "DUPKEY") {
		t.Fatalf("k1, held while its job runs: %v", err)
	}
	do("JOBPUSH", "q", "h", "again", "UNIQUE", "k0", "ON-DUPLICATE", "reject") // released at the reserve
	digests, stats, jobs := everyNode(t, nodes, l, "DEBUG", "DIGEST"), everyNode(t, nodes, l, "INFO", "stats"), everyNode(t, nodes, l, "JOBGET", held)
	if !strings.Contains(stats[l], "unique_keys:3\r\n") || !strings.Contains(jobs[l], "last") {
		t.Fatalf("the leader: %s\n%s", stats[l], jobs[l])
	}
	for i := range nodes {
		if digests[i] != digests[l] || jobs[i] != jobs[l] || !strings.Contains(stats[i], "unique_keys:3\r\n") {
			t.Fatalf("node %d differs from the leader %d:\n%v\n%v\n%s", i, l, digests, jobs, stats[i])
		}
	}
}
