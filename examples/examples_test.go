package examples_test

// These tests build the server and the examples and run them as a user
// would: the Go producer and worker, and the Node.js worker (ioredis),
// against a real sluice process. In CI (CI=true) a missing node or npm is a
// failure, not a skip.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/client"
)

var (
	root string // the repository root
	bin  string // built binaries

	buildMu sync.Mutex          // protects built
	built   = map[string]bool{} // package path → built into bin
)

func TestMain(m *testing.M) {
	var err error
	if root, err = filepath.Abs(".."); err == nil {
		_, err = os.Stat(filepath.Join(root, "go.mod"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples: cannot find the repository root:", err)
		os.Exit(1)
	}
	if bin, err = os.MkdirTemp("", "sluice-examples-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(bin)
	os.Exit(code)
}

// build runs `go build -o <bin>/<name> <pkg>` from the repository root once
// per test binary and returns the executable's path.
func build(t *testing.T, name, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	out := filepath.Join(bin, name)
	if built[pkg] {
		return out
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = true
	return out
}

// startSluice runs the built server on a free port and returns its address.
func startSluice(t *testing.T) string {
	t.Helper()
	exe := build(t, "sluice", ".")
	cmd := exec.Command(exe, "--port", "0", "--appendonly", "no", "--dir", t.TempDir(), "--logformat", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The log is read to its end before Wait, which closes the pipe (and
	// before the test ends, so that no line is logged after it).
	logged := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-logged
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		defer close(logged)
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			var rec struct {
				Message string   `json:"message"`
				Addr    []string `json:"addr"`
			}
			if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Message == "sluice ready" && len(rec.Addr) > 0 {
				addr <- rec.Addr[0]
			}
			t.Logf("sluice: %s", lines.Text())
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("sluice did not start")
		return ""
	}
}

// process is a running example whose stdout is collected.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex // protects out
	out  []string
	done chan struct{} // closed when stdout is drained
}

func startProcess(t *testing.T, dir string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logWriter{t, filepath.Base(name)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			p.mu.Lock()
			p.out = append(p.out, lines.Text())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		_ = cmd.Wait()
	})
	return p
}

// stop sends SIGTERM and requires a clean exit; it returns stdout.
func (p *process) stop(t *testing.T) []string {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { <-p.done; exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("%s after SIGTERM: %v", p.cmd.Path, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit after SIGTERM", p.cmd.Path)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out
}

type logWriter struct {
	t    *testing.T
	name string
}

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// produce runs the Go producer and returns the ids it pushed.
func produce(t *testing.T, addr string, n int) []string {
	t.Helper()
	exe := build(t, "producer", "./examples/producer")
	out, err := exec.Command(exe, "-addr", addr, "-n", fmt.Sprint(n)).Output()
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n") {
		if id, ok := strings.CutPrefix(line, "pushed "); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) != n {
		t.Fatalf("producer pushed %d jobs, want %d:\n%s", len(ids), n, out)
	}
	return ids
}

// waitSettled waits until every job is terminal and returns them.
func waitSettled(t *testing.T, c *client.Client, ids ...string) map[string]*client.Job {
	t.Helper()
	jobs := map[string]*client.Job{}
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			j, err := c.Get(context.Background(), id)
			if err != nil {
				t.Fatalf("JOBGET %s: %v", id, err)
			}
			if j.State.Terminal() {
				jobs[id] = j
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s is still %s", id, j.State)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return jobs
}

// checkRun asserts that the worker processed the producer's jobs once each
// and failed the bad one for good.
func checkRun(t *testing.T, c *client.Client, ids []string, bad string, stdout []string) {
	t.Helper()
	jobs := waitSettled(t, c, append([]string{bad}, ids...)...)
	sent := map[string]int{}
	for _, line := range stdout {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "sent" {
			sent[f[1]]++
		}
	}
	for i, id := range ids {
		j := jobs[id]
		if j.State != client.StateSucceeded || j.Attempt != 1 || sent[id] != 1 {
			t.Errorf("job %s: %s, attempt %d, reported sent %d times", id, j.State, j.Attempt, sent[id])
		}
		want := fmt.Sprintf("sent %s to user%d@example.com (attempt 1)", id, i)
		if !contains(stdout, want) {
			t.Errorf("no line %q", want)
		}
	}
	if j := jobs[bad]; j.State != client.StateFailed || j.Attempt != 1 || !strings.Contains(j.LastError, "bad payload") {
		t.Errorf("bad job: %s, attempt %d, last_error %q", j.State, j.Attempt, j.LastError)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// pushBad pushes a job the example handlers must refuse without retrying.
func pushBad(t *testing.T, c *client.Client) string {
	t.Helper()
	id, err := c.Push(context.Background(), "emails", "send_email", []byte("not json"), &client.PushOptions{MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestGoProducerAndWorker(t *testing.T) {
	addr := startSluice(t)
	c := client.New(client.Options{Addr: addr})
	defer c.Close()
	ids := produce(t, addr, 20)
	bad := pushBad(t, c)

	w := startProcess(t, root, build(t, "worker", "./examples/worker"), "-addr", addr, "-concurrency", "3")
	waitSettled(t, c, append([]string{bad}, ids...)...)
	checkRun(t, c, ids, bad, w.stop(t))
}

func TestNodeWorker(t *testing.T) {
	node, npm := tool(t, "node"), tool(t, "npm")
	dir := filepath.Join(root, "examples", "node-worker")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ioredis")); errors.Is(err, os.ErrNotExist) {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, b)
		}
	}
	addr := startSluice(t)
	c := client.New(client.Options{Addr: addr})
	defer c.Close()
	ids := produce(t, addr, 20)
	bad := pushBad(t, c)

	// A job for a handler the worker does not define stays queued.
	other, err := c.Push(context.Background(), "emails", "other_handler", nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	w := startProcess(t, dir, node, "worker.js", "--addr", addr, "--concurrency", "3")
	waitSettled(t, c, append([]string{bad}, ids...)...)
	if j, err := c.Get(context.Background(), other); err != nil || j.State != client.StateQueued {
		t.Fatalf("other handler's job: %+v, %v", j, err)
	}
	checkRun(t, c, ids, bad, w.stop(t))
}

// tool finds an executable; without it the test fails in CI and skips
// elsewhere.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI: %v", name, err)
	}
	t.Skipf("%s not found: %v", name, err)
	return ""
}
