package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sluice/benchmarks/internal/wire"
)

// server is one process started for one measurement, on a free loopback
// port, with its own data directory, stopped right after.
type server struct {
	kind string // sluice, sluice-aof, sluice-1cpu, sluice-pprof, redis, beanstalkd
	cmd  *exec.Cmd
	addr string
	log  string
	args []string
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *runner) start(kind string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(r.tmp, kind+"-")
	if err != nil {
		return nil, err
	}
	p := strconv.Itoa(port)
	var argv []string
	var env []string
	switch kind {
	case "sluice", "sluice-aof", "sluice-pprof", "sluice-1cpu":
		bin := r.sluice
		if kind == "sluice-pprof" {
			bin = r.sluicePprof
		}
		argv = []string{bin, "--port", p, "--dir", dir, "--loglevel", "warn", "--logformat", "json"}
		if kind == "sluice-aof" {
			argv = append(argv, "--appendonly", "yes", "--appendfsync", "everysec")
		} else {
			argv = append(argv, "--appendonly", "no")
		}
		if kind == "sluice-1cpu" {
			// The Go runtime on one core, as redis-server runs its
			// commands on one thread: on a small machine shared with the
			// load generator this saves the cross-core wake-ups.
			env = append(env, "GOMAXPROCS=1")
		}
		if kind == "sluice-pprof" {
			pp, err := freePort()
			if err != nil {
				return nil, err
			}
			env = append(env, "SLUICE_BENCH_PPROF=127.0.0.1:"+strconv.Itoa(pp))
		}
	case "redis":
		argv = []string{r.tools["redis-server"], "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	case "beanstalkd":
		argv = []string{r.tools["beanstalkd"], "-l", "127.0.0.1", "-p", p}
	default:
		return nil, fmt.Errorf("unknown server %q", kind)
	}
	logPath := filepath.Join(dir, "server.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	lf.Close()
	s := &server{kind: kind, cmd: cmd, addr: "127.0.0.1:" + p, log: logPath, args: argv}
	if len(env) > 0 {
		s.args = append(append([]string(nil), env...), argv...)
	}
	if err := s.waitReady(10 * time.Second); err != nil {
		s.stop()
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%s did not come up: %w\n%s", kind, err, out)
	}
	return s, nil
}

func (s *server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		if s.cmd.ProcessState != nil {
			return errors.New("exited")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) ping() error {
	if s.kind == "beanstalkd" {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("stats\r\n")); err != nil {
			return err
		}
		l, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "OK ") {
			return fmt.Errorf("stats: %q", l)
		}
		return nil
	}
	c, err := wire.DialRESP(s.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	_, err = c.Do("PING")
	return err
}

// info returns one field of INFO memory (RESP servers only).
func (s *server) info(field string) (int64, error) {
	c, err := wire.DialRESP(s.addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r, err := c.Do("INFO", "memory")
	if err != nil {
		return 0, err
	}
	for _, l := range bytes.Split(r.Str, []byte("\r\n")) {
		if k, v, ok := bytes.Cut(l, []byte(":")); ok && string(k) == field {
			return strconv.ParseInt(string(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory has no %s", field)
}

// rss is the resident set size of the server process, from /proc.
func (s *server) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n * 1024, err
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

// pprofAddr is where a sluice-pprof server serves net/http/pprof.
func (s *server) pprofAddr() string {
	for _, e := range s.cmd.Env {
		if v, ok := strings.CutPrefix(e, "SLUICE_BENCH_PPROF="); ok {
			return v
		}
	}
	return ""
}

// stop sends SIGTERM, waits up to 10 seconds, then kills.
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// commandLine renders argv for a shell, quoting what needs it.
func commandLine(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " *'\"$\\") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// runTool runs argv with a time limit and returns its standard output.
func runTool(timeout time.Duration, argv []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s%s", commandLine(argv), err, out, stderr.Bytes())
	}
	return out, nil
}
