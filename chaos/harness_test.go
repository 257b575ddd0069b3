package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/faultproxy"
)

// binary is the sluice binary built once for the package's tests, without
// the race detector: the nodes run at full speed, the checker with it.
var binary string

func TestMain(m *testing.M) {
	// Dials to a killed node fail by design; go-redis would log each.
	redis.SetLogger(quiet{})
	dir, err := os.MkdirTemp("", "sluice-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// groupKey is the secret the test group's nodes share.
const groupKey = "the chaos group's shared secret"

// node is one sluice process of the group, restartable on its --dir.
type node struct {
	id       int
	addr     string // client address
	raftAddr string
	dir      string
	args     []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool // SIGSTOPped
	cl      *redis.Client
}

// group is three nodes whose raft links each go through a fault proxy:
// proxies[i][j] carries the connections node i dials to node j.
type group struct {
	t       testing.TB
	dir     string
	nodes   []*node
	proxies [][]*faultproxy.Proxy
}

// freeAddr picks a free port for a node below the kernel's ephemeral
// range: a node's ports stay free while it is down (killed, before its
// restart), and no connection's source port nor listener on port 0 (the
// proxies) can take one of them meanwhile.
func freeAddr(t testing.TB) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low > 12000 {
		for range 1000 {
			addr := fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(low-10000))
			if ln, err := net.Listen("tcp", addr); err == nil {
				ln.Close()
				return addr
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newGroup starts a group of three and waits until it has a leader.
func newGroup(t testing.TB) *group {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-chaos-group-")
	if err != nil {
		t.Fatal(err)
	}
	g := &group{t: t, dir: dir}
	t.Cleanup(func() {
		g.close()
		if t.Failed() || os.Getenv("SLUICE_CHAOS_KEEP") != "" {
			t.Logf("the nodes' folders and logs (server.log) are kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	const n = 3
	raftAddrs := make([]string, n)
	var boot []string
	for i := range raftAddrs {
		raftAddrs[i] = freeAddr(t)
		boot = append(boot, fmt.Sprintf("n%d=%s", i, raftAddrs[i]))
	}
	g.proxies = make([][]*faultproxy.Proxy, n)
	for i := range n {
		g.proxies[i] = make([]*faultproxy.Proxy, n)
		var via []string
		for j := range n {
			if i == j {
				continue
			}
			p, err := faultproxy.New("127.0.0.1:0", raftAddrs[j])
			if err != nil {
				t.Fatal(err)
			}
			g.proxies[i][j] = p
			via = append(via, raftAddrs[j]+"="+p.Addr())
		}
		nd := &node{id: i, addr: freeAddr(t), raftAddr: raftAddrs[i], dir: filepath.Join(dir, fmt.Sprintf("n%d", i))}
		nd.args = []string{"--port", portOf(nd.addr), "--dir", filepath.Join(nd.dir, "data"), "--logformat", "json",
			"--cluster-id", fmt.Sprintf("n%d", i), "--cluster-addr", raftAddrs[i],
			"--cluster-bootstrap", strings.Join(boot, " "), "--cluster-key", groupKey,
			"--cluster-dial-via", strings.Join(via, " ")}
		nd.cl = redis.NewClient(&redis.Options{Addr: nd.addr, Protocol: 2, MaxRetries: -1, PoolSize: 64,
			DialTimeout: 300 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second})
		if err := os.MkdirAll(nd.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		g.nodes = append(g.nodes, nd)
	}
	for _, nd := range g.nodes {
		g.start(nd)
	}
	if g.leader(30*time.Second) < 0 {
		t.Fatal("the group elected no leader in 30 s")
	}
	return g
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// start runs a node's process (again, on the same --dir) and waits until
// it answers PING.
func (g *group) start(nd *node) {
	g.t.Helper()
	logf, err := os.OpenFile(filepath.Join(nd.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		g.t.Fatal(err)
	}
	cmd := exec.Command(binary, nd.args...)
	cmd.Env = childEnv()
	out := struct{ io.Writer }{logf}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	nd.mu.Lock()
	nd.cmd, nd.exited, nd.stopped = cmd, exited, false
	nd.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := nd.cl.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			g.t.Fatalf("n%d exited at start:\n%s", nd.id, nd.logTail())
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("n%d did not answer PING in 30 s: %v\n%s", nd.id, err, nd.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childEnv is the test's environment less the SLUICE_ variables, which
// are the test's settings, not the nodes'.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return env
}

// running reports whether the node's process is alive (stopped or not).
func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return false
	}
	select {
	case <-nd.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to end.
func (nd *node) kill() {
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// pause sends SIGSTOP; resume SIGCONT.
func (nd *node) pause() { nd.signal(syscall.SIGSTOP, true) }

func (nd *node) resume() { nd.signal(syscall.SIGCONT, false) }

func (nd *node) signal(s syscall.Signal, stopped bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		nd.cmd.Process.Signal(s)
		nd.stopped = stopped
	}
}

func (nd *node) logTail() string {
	data, _ := os.ReadFile(filepath.Join(nd.dir, "server.log"))
	lines := strings.Split(string(data), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// close ends every process and proxy.
func (g *group) close() {
	for _, nd := range g.nodes {
		nd.resume()
		nd.kill()
		nd.cl.Close()
	}
	for _, ps := range g.proxies {
		for _, p := range ps {
			if p != nil {
				p.Close()
			}
		}
	}
}

// probe is a write that changes nothing: only a leader that can commit
// answers it.
var probe = []any{"POLICYDEL", "CONCURRENCY", "chaos-probe"}

// leads reports whether nd commits a write now.
func (nd *node) leads(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return nd.cl.Do(ctx, probe...).Err() == nil
}

// leader waits up to wait for a node that commits a write, and returns it
// (-1 if none did).
func (g *group) leader(wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		for i, nd := range g.nodes {
			if nd.running() && nd.leads(500*time.Millisecond) {
				return i
			}
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partition cuts node i off from the others, both ways.
func (g *group) partition(i int) {
	for j := range g.nodes {
		if j != i {
			g.setLink(i, j, faultproxy.Drop, faultproxy.Drop)
			g.setLink(j, i, faultproxy.Drop, faultproxy.Drop)
		}
	}
}

// oneWay drops what node from sends to node to, while to's messages still
// reach from: the requests on from's connections to to, and the replies on
// to's connections to from.
func (g *group) oneWay(from, to int) {
	g.proxies[from][to].Set(faultproxy.Up, faultproxy.Drop)
	g.proxies[to][from].Set(faultproxy.Down, faultproxy.Drop)
	g.proxies[from][to].Cut()
	g.proxies[to][from].Cut()
}

func (g *group) setLink(i, j int, up, down faultproxy.Mode) {
	p := g.proxies[i][j]
	p.Set(faultproxy.Up, up)
	p.Set(faultproxy.Down, down)
	p.Cut()
}

// heal passes every link again, cutting the connections that lost bytes so
// that raft redials at once.
func (g *group) heal() {
	for i, ps := range g.proxies {
		for j, p := range ps {
			if p != nil && (p.Mode(faultproxy.Up) != faultproxy.Pass || p.Mode(faultproxy.Down) != faultproxy.Pass) {
				g.setLink(i, j, faultproxy.Pass, faultproxy.Pass)
			}
		}
	}
}

// restore ends every fault: links healed, paused nodes resumed, dead ones
// restarted.
func (g *group) restore() {
	g.heal()
	for _, nd := range g.nodes {
		nd.resume()
		if !nd.running() {
			g.start(nd)
		}
	}
}

// isReadOnly and isRetry classify a node's refusals.
func isReadOnly(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "READONLY") }

func isTryAgain(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN") }

// definite reports whether err is the server's answer (an error reply
// other than READONLY or TRYAGAIN), not a lost connection, a time-out or a
// refusal to run the command here.
func definite(err error) bool {
	if err == nil {
		return true
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	return !isReadOnly(err) && !isTryAgain(err)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
