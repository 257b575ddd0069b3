//go:build compat

package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	root   string // the repository root
	binary string // sluice, built once for the package's tests

	npmOnce sync.Once // runs npm ci in compat/node at most once
	npmErr  error     // what that npm ci answered
)

func TestMain(m *testing.M) {
	var err error
	if root, err = filepath.Abs(".."); err == nil {
		_, err = os.Stat(filepath.Join(root, "go.mod"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat: cannot find the repository root:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "sluice-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer is the server's log, written by the goroutine that reads
// its stderr and read by the test when it fails.
type lockedBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a sluice process started for one test.
type server struct {
	port string
	logs *lockedBuffer
}

// startServer runs sluice with its defaults (the append-only log on, in a
// temporary directory) and args on a port the kernel picks, and stops it
// when the test ends.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--port", "0", "--dir", t.TempDir(), "--logformat", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{logs: &lockedBuffer{}}
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			var ev struct {
				Message string   `json:"message"`
				Addr    []string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "sluice ready" && len(ev.Addr) > 0 {
				ready <- ev.Addr[0]
			}
		}
		cmd.Wait()
	}()
	select {
	case addr := <-ready:
		s.port = addr[strings.LastIndex(addr, ":")+1:]
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("sluice did not start:\n%s", s.logs)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return s
}

// need finds a tool the test cannot do without. These tests run only when
// asked for, so a missing tool is a failure, not a skip.
func need(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required (./test.sh installs it): %v", name, err)
	}
	return path
}

// nodeModules makes sure compat/node/node_modules holds the pinned
// packages, running `npm ci` once if it does not (as test.sh does).
func nodeModules(t *testing.T) string {
	t.Helper()
	need(t, "node")
	dir := filepath.Join(root, "compat", "node")
	npmOnce.Do(func() {
		// npm ci leaves node_modules/.package-lock.json newer than the
		// lock file it installed from.
		lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			npmErr = err
			return
		}
		if got, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !got.ModTime().Before(lock.ModTime()) {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = fmt.Errorf("npm ci in compat/node: %v\n%s", err, out)
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
	return dir
}

// runScript runs a client's script against s; the script prints a line per
// step and exits non-zero if any step failed.
func runScript(t *testing.T, s *server, dir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SLUICE_PORT="+s.port)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\nserver log (tail):\n%s", name, strings.Join(args, " "), err, out, tail(s.logs.String(), 20))
	}
	t.Logf("%s", out)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// node-redis with createClient({url}): RESP3, maps as objects.
func TestNodeRedis(t *testing.T) {
	dir := nodeModules(t)
	s := startServer(t)
	runScript(t, s, dir, "node", "node-redis.js", s.port)
}

// ioredis with new Redis(port): asks for RESP3, gives RESP2 shapes.
func TestIORedis(t *testing.T) {
	dir := nodeModules(t)
	s := startServer(t)
	runScript(t, s, dir, "node", "ioredis.js", s.port)
}

// Debian's python3-redis with redis.Redis(port=...): its default protocol.
func TestRedisPy(t *testing.T) {
	const py = "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("%s with Debian's python3-redis is required (./test.sh installs it): %v\n%s", py, err, out)
	}
	s := startServer(t)
	runScript(t, s, filepath.Join(root, "compat", "python"), py, "lifecycle.py", s.port)
}

// redis-cli -3: RESP3, maps read in redis-cli's own rendering.
func TestRedisCLI(t *testing.T) {
	need(t, "redis-cli")
	s := startServer(t)
	runScript(t, s, filepath.Join(root, "compat", "cli"), "bash", "lifecycle.sh", s.port)
}

// Debian's ruby-redis (redis-rb 4.x) with Redis.new(port: ...): RESP2.
func TestRubyRedis(t *testing.T) {
	ruby := need(t, "ruby")
	if out, err := exec.Command(ruby, "-e", `require "redis"`).CombinedOutput(); err != nil {
		t.Fatalf("ruby with Debian's ruby-redis is required (./test.sh installs it): %v\n%s", err, out)
	}
	s := startServer(t)
	runScript(t, s, filepath.Join(root, "compat", "ruby"), ruby, "lifecycle.rb", s.port)
}
