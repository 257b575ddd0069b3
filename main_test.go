package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/config"
	"sluice/internal/check"
)

// These tests drive a built sluice binary with the real redis-cli and
// redis-benchmark. In CI (CI set) a missing tool is a failure: the test
// script installs redis-tools first.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building sluice: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (./test.sh installs redis-tools)", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

type proc struct {
	cmd     *exec.Cmd
	port    string
	metrics string // the metrics URL, when served
	logs    *bytes.Buffer
	done    chan error
}

// startBinary runs sluice on a free port and waits for its "ready" line.
func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	args = append([]string{"--port", "0", "--dir", t.TempDir(), "--logformat", "json"}, args...)
	cmd := exec.Command(binary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	type readyLine struct {
		Message string   `json:"message"`
		Addr    []string `json:"addr"`
		Metrics string   `json:"metrics"`
	}
	ready := make(chan readyLine, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			var ev readyLine
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "sluice ready" && len(ev.Addr) > 0 {
				ready <- ev
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case ev := <-ready:
		p.port = ev.Addr[0][strings.LastIndex(ev.Addr[0], ":")+1:]
		p.metrics = ev.Metrics
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sluice did not start:\n%s", p.logs)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(need(t, "redis-cli"), append([]string{"-p", p.port}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestRedisCLI(t *testing.T) {
	need(t, "redis-cli")
	p := startBinary(t)
	if out := p.cli(t, "", "PING"); out != "PONG\n" {
		t.Fatalf("PING: %q", out)
	}
	id := strings.TrimSpace(p.cli(t, "", "JOBPUSH", "emails", "send", `{"to":"a@b"}`))
	if !regexp.MustCompile(`^[0-9A-Z]{16}$`).MatchString(id) {
		t.Fatalf("JOBPUSH printed %q", id)
	}
	if out := p.cli(t, "", "jobpush", "emails"); !strings.Contains(out, "ERR wrong number of arguments for 'jobpush' command") {
		t.Fatalf("arity error: %q", out)
	}

	// A multi-command session on one connection, read from standard input.
	session := "POLICYSET CONCURRENCY smtp 1\n" +
		"JOBPUSH mail send hello ID m1 CONCURRENCY smtp\n" +
		"JOBPUSH mail send world ID m2 CONCURRENCY smtp\n" +
		"JOBRESERVE worker-1 30000 COUNT 2 QUEUES mail\n" +
		"QUEUELEN mail\n"
	out := p.cli(t, session)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	check.Field(t, "POLICYSET's line", lines[0], "OK")
	check.Field(t, "the first JOBPUSH's line", lines[1], "m1")
	check.Field(t, "the second JOBPUSH's line", lines[2], "m2")
	check.Field(t, "QUEUELEN's line", lines[len(lines)-1], "1")
	if t.Failed() {
		t.Fatalf("session output:\n%s", out)
	}
	tok := ""
	for i, l := range lines {
		if l == "token" && i+1 < len(lines) {
			tok = lines[i+1]
		}
	}
	if !strings.HasPrefix(tok, "m1.") || strings.Count(out, "token") != 1 {
		t.Fatalf("one reservation (m1) expected under the cap:\n%s", out)
	}
	out = p.cli(t, "JOBSTART "+tok+"\nJOBACK "+tok+"\nJOBGET m1\nJOBRESERVE worker-1 30000 QUEUES mail\n")
	if !strings.HasPrefix(out, "1\nOK\nid\nm1\n") || !strings.Contains(out, "succeeded") || !strings.Contains(out, "m2.") {
		t.Fatalf("start/ack session:\n%s", out)
	}
	if out := p.cli(t, "", "INFO", "queues"); !strings.Contains(out, "queue_mail:") {
		t.Fatalf("INFO queues: %q", out)
	}
	if out := p.cli(t, "", "HELLO", "3"); !strings.Contains(out, "proto 3\n") {
		t.Fatalf("HELLO 3: %q", out)
	}
	// redis-cli -3 speaks RESP3: QUEUESTATS's paused is a boolean there.
	if out := p.cli(t, "", "-3", "QUEUESTATS", "mail"); !strings.Contains(out, "paused (false)\n") {
		t.Fatalf("redis-cli -3: %q", out)
	}
}

func TestRedisCLIWithPassword(t *testing.T) {
	need(t, "redis-cli")
	p := startBinary(t, "--requirepass", "hunter2")
	if out := p.cli(t, "", "PING"); !strings.Contains(out, "NOAUTH") {
		t.Fatalf("PING without AUTH: %q", out)
	}
	if out := p.cli(t, "", "-a", "hunter2", "--no-auth-warning", "PING"); out != "PONG\n" {
		t.Fatalf("PING with AUTH: %q", out)
	}
	if strings.Contains(p.logs.String(), "hunter2") {
		t.Fatal("the password was logged")
	}
}

func TestRedisBenchmarkCustomCommand(t *testing.T) {
	bench := need(t, "redis-benchmark")
	p := startBinary(t)
	for _, pipeline := range []string{"1", "16"} {
		cmd := exec.Command(bench, "-p", p.port, "-n", "2000", "-c", "10", "-P", pipeline, "-q",
			"JOBPUSH", "bench"+pipeline, "h", "payload-__rand_int__")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark -P %s: %v\n%s", pipeline, err, out)
		}
		if bytes.Contains(out, []byte("WARN")) || bytes.Contains(out, []byte("ERR")) || !bytes.Contains(out, []byte("requests per second")) {
			t.Fatalf("redis-benchmark -P %s output:\n%s", pipeline, out)
		}
		if n := strings.TrimSpace(p.cli(t, "", "QUEUELEN", "bench"+pipeline)); n != "2000" {
			t.Fatalf("after 2000 pushes with -P %s, QUEUELEN = %s", pipeline, n)
		}
	}
}

// blockedReserve starts a redis-cli blocked in JOBRESERVE on queue and
// returns once the server counts it as blocked; answer waits for it to exit
// and returns what it printed.
func (p *proc) blockedReserve(t *testing.T, queue string) (answer func() string) {
	t.Helper()
	cli := exec.Command(need(t, "redis-cli"), "--no-raw", "-p", p.port, "JOBRESERVE", "w", "1000", "BLOCK", "0", "QUEUES", queue)
	var out bytes.Buffer
	cli.Stdout = &out
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.cli(t, "", "INFO", "clients"), "blocked_clients:1") {
		if time.Now().After(deadline) {
			t.Fatal("redis-cli never blocked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() string {
		t.Helper()
		if err := cli.Wait(); err != nil {
			t.Fatalf("blocked redis-cli: %v", err)
		}
		return strings.TrimSpace(out.String())
	}
}

// waitExit waits for sluice to exit 0 with a clean last log line; why says
// what stopped it.
func (p *proc) waitExit(t *testing.T, why string) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("sluice exited with %v\n%s", err, p.logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("sluice did not exit on %s", why)
	}
	if !strings.Contains(p.logs.String(), `"bye"`) {
		t.Fatalf("no clean exit on %s in the log:\n%s", why, p.logs)
	}
}

// SIGTERM: blocked reserves are answered with null, the process exits 0.
func TestGracefulShutdownOnSignal(t *testing.T) {
	p := startBinary(t)
	answer := p.blockedReserve(t, "q")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := answer(); got != "(nil)" {
		t.Fatalf("blocked reserve answered %q at shutdown, want (nil)", got)
	}
	p.waitExit(t, "SIGTERM")
}

// run in-process: options from the file, the environment and flags.
func TestRunOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	conf := filepath.Join(t.TempDir(), "sluice.conf")
	os.WriteFile(conf, []byte("# test\nport 0\nmaxclients 7\ndir "+dir+"\n"), 0o644)
	stop := make(chan os.Signal, 1)
	ready := make(chan []string, 1)
	var logs bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{conf, "--loglevel", "debug"}, []string{"SLUICE_MAX_PAYLOAD=2mb", "SLUICE_NOPE=1"},
			io.Discard, &syncWriter{w: &logs}, stop, ready)
	}()
	var addrs []string
	select {
	case addrs = <-ready:
	case code := <-done:
		t.Fatalf("run exited %d", code)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("--dir not created: %v", err)
	}
	nc, err := netDial(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(nc, "CONFIG GET maxclients max-payload\r\n")
	r := bufio.NewReader(nc)
	var got []string
	for i := 0; i < 9; i++ {
		l, _ := r.ReadString('\n')
		got = append(got, strings.TrimSpace(l))
	}
	nc.Close()
	if strings.Join(got, " ") != "*4 $10 maxclients $1 7 $11 max-payload $7 2097152" {
		t.Fatalf("CONFIG GET: %v", got)
	}
	stop <- syscall.SIGTERM
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(logs.String(), "SLUICE_NOPE") {
		t.Fatal("unknown SLUICE_ variable not reported")
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, args := range [][]string{
		{"--port", "70000"}, {"--appendfsync", "sometimes"}, {"--max-payload", "lots"},
		{"--nope", "1"}, {"a.conf", "b.conf"}, {"--loglevel"}, {"--metrics-addr", "nohost"},
	} {
		var stderr bytes.Buffer
		if code := run(args, nil, io.Discard, &stderr, nil, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
	var stdout bytes.Buffer
	if code := run([]string{"--help"}, nil, &stdout, io.Discard, nil, nil); code != 0 {
		t.Fatalf("--help: %d %s", code, stdout.String())
	}
	def := config.DefaultConfig()
	for _, o := range config.Options {
		v, _ := def.Get(o.Name)
		if v == "" {
			v = "(none)"
		}
		if !regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(o.Name) + ` .*\(default: ` + regexp.QuoteMeta(v) + `\)$`).MatchString(stdout.String()) {
			t.Errorf("--help does not list --%s with its default %q:\n%s", o.Name, v, stdout.String())
		}
	}
	stdout.Reset()
	if code := run([]string{"--version"}, nil, &stdout, io.Discard, nil, nil); code != 0 || stdout.String() != "sluice "+version+"\n" {
		t.Fatalf("--version: %d %q", code, stdout.String())
	}
}

// The metrics endpoint of the built server after a scripted workload over
// RESP: job counters, command latency, clients, log size.
func TestMetricsEndpoint(t *testing.T) {
	p := startBinary(t, "--metrics-addr", "127.0.0.1:0", "--metrics-max-labels", "2")
	if !strings.HasPrefix(p.metrics, "http://127.0.0.1:") {
		t.Fatalf("no metrics URL in the ready line:\n%s", p.logs)
	}
	p.cli(t, "POLICYSET CONCURRENCY smtp 1\n"+
		"JOBPUSH mail send a ID m1 CONCURRENCY smtp\n"+
		"JOBPUSH mail send b ID m2 CONCURRENCY smtp\n"+
		"JOBPUSH q2 h x\nJOBPUSH q3 h x\nJOBPUSH q4 h x\n")
	out := p.cli(t, "", "JOBRESERVE", "w", "60000", "QUEUES", "mail")
	tok := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "m1.") {
			tok = l
		}
	}
	p.cli(t, "JOBSTART "+tok+"\nJOBACK "+tok+"\nJOBRESERVE w 60000 QUEUES mail\nJOBCANCEL m1\n")
	wants := []string{
		`sluice_jobs_pushed_total{queue="mail"} 2`,
		`sluice_jobs_reserved_total{queue="mail"} 2`,
		`sluice_jobs_acked_total{queue="mail"} 1`,
		`sluice_jobs_pushed_total{queue="other"} 2`, // q3 and q4: past --metrics-max-labels 2
		`sluice_jobs{queue="mail",state="reserved"} 1`,
		`sluice_job_run_seconds_count{queue="mail"} 1`,
		`sluice_job_wait_seconds_count{queue="mail"} 2`,
		`sluice_policy_active{key="smtp",kind="concurrency"} 1`,
		`sluice_command_duration_seconds_count{command="jobpush"} 5`,
		`sluice_command_errors_total{command="jobcancel"} 0`,
		`sluice_connected_clients 0`,
		`sluice_blocked_clients 0`,
		`sluice_jobs_held 5`,
		`sluice_aof_write_ok 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	}
	var text string
	var missing []string
	// redis-cli's last connection may still be closing: scrape until it has.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(p.metrics)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text, missing = string(body), nil
		for _, want := range wants {
			if !strings.Contains(text, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Fatalf("metrics lack %q:\n%s", missing, text)
	}
	if m := regexp.MustCompile(`(?m)^sluice_aof_size_bytes (\S+)$`).FindStringSubmatch(text); m == nil || m[1] == "0" {
		t.Errorf("log size not reported: %v", m)
	}
	if out := p.cli(t, "", "INFO", "server"); !strings.Contains(out, "metrics_url:"+p.metrics) {
		t.Errorf("INFO server does not name the metrics URL:\n%s", out)
	}
}

// An address given with redis.conf's "-" is skipped when it cannot be
// bound here (192.0.2.1 is on no interface); with nothing left to listen
// on, the start fails.
func TestBindSkipsAnOptionalAddress(t *testing.T) {
	if ln, err := net.Listen("tcp", "192.0.2.1:0"); err == nil {
		ln.Close()
		t.Skip("this machine has 192.0.2.1, which the test needs to be missing")
	}
	p := startBinary(t, "--bind", "127.0.0.1 -192.0.2.1")
	if !strings.Contains(p.logs.String(), "optional address not available, skipped") {
		t.Fatalf("no warning for the skipped address:\n%s", p.logs)
	}
	if got := p.cli(t, "", "PING"); strings.TrimSpace(got) != "PONG" {
		t.Fatalf("PING: %q", got)
	}
	var stderr bytes.Buffer
	code := run([]string{"--port", "0", "--dir", t.TempDir(), "--bind", "-192.0.2.1"}, nil, io.Discard, &syncWriter{w: &stderr}, nil, nil)
	if code != 1 || !strings.Contains(stderr.String(), "no address to listen on") {
		t.Fatalf("only an unavailable optional address: exit %d\n%s", code, stderr.String())
	}
}

// redis.conf's "bind * -::*" listens on every IPv4 interface and, where
// the machine has IPv6, every IPv6 one, as two sockets that do not clash.
func TestBindEveryInterface(t *testing.T) {
	p := startBinary(t, "--bind", "* -::*")
	if got := p.cli(t, "", "PING"); strings.TrimSpace(got) != "PONG" {
		t.Fatalf("PING over IPv4: %q", got)
	}
	if !strings.Contains(p.logs.String(), `"0.0.0.0:`+p.port+`"`) {
		t.Fatalf("not listening on 0.0.0.0:%s:\n%s", p.port, p.logs)
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 here (%v): only the IPv4 socket is checked", err)
		return
	}
	ln.Close()
	if !strings.Contains(p.logs.String(), `"[::]:`+p.port+`"`) {
		t.Fatalf("not listening on [::]:%s:\n%s", p.port, p.logs)
	}
	c, err := net.Dial("tcp6", "[::1]:"+p.port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "+PONG\r\n" {
		t.Fatalf("PING over IPv6: %q, %v", got, err)
	}
}

// SHUTDOWN stops the server as SIGTERM does: pushed jobs survive in the
// log, a blocked reserve gets null, the process exits 0. Bad modifiers
// change nothing.
func TestShutdownCommand(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, "--dir", dir)
	if got := p.cli(t, "", "SHUTDOWN", "ABORT"); !strings.Contains(got, "No shutdown in progress") {
		t.Fatalf("SHUTDOWN ABORT: %q", got)
	}
	if got := p.cli(t, "", "SHUTDOWN", "LATER"); !strings.Contains(got, "syntax error") {
		t.Fatalf("SHUTDOWN LATER: %q", got)
	}
	if got := p.cli(t, "", "JOBPUSH", "q", "h", "kept", "ID", "j1"); strings.TrimSpace(got) != "j1" {
		t.Fatalf("JOBPUSH: %q", got)
	}
	answer := p.blockedReserve(t, "other")
	if got := p.cli(t, "", "SHUTDOWN", "NOSAVE"); strings.TrimSpace(got) != "OK" {
		t.Fatalf("SHUTDOWN NOSAVE: %q", got)
	}
	if got := answer(); got != "(nil)" {
		t.Fatalf("blocked reserve answered %q at shutdown, want (nil)", got)
	}
	p.waitExit(t, "SHUTDOWN")
	if !strings.Contains(p.logs.String(), `"command":"SHUTDOWN"`) {
		t.Fatalf("the log does not say SHUTDOWN stopped it:\n%s", p.logs)
	}
	q := startBinary(t, "--dir", dir)
	if got := q.cli(t, "", "JOBGET", "j1"); !strings.Contains(got, "kept") {
		t.Fatalf("after restart, JOBGET j1: %q", got)
	}
}

// With --maxmemory (and --maxmemory-clients) the collector gets a soft
// limit of what they allow plus 64 MB; without either, or with GOMEMLIMIT,
// none is set.
func TestMemoryLimit(t *testing.T) {
	cfg := config.DefaultConfig()
	if _, ok := memoryLimit(cfg, ""); ok {
		t.Fatal("a limit without --maxmemory")
	}
	cfg.MaxMemory, cfg.MaxMemoryClients = 1<<30, 128<<20
	if lim, ok := memoryLimit(cfg, ""); !ok || lim != 1<<30+128<<20+64<<20 {
		t.Fatalf("limit %d, %v", lim, ok)
	}
	if _, ok := memoryLimit(cfg, "2GiB"); ok {
		t.Fatal("GOMEMLIMIT did not win")
	}
	cfg.MaxMemoryClients = 0
	if _, ok := memoryLimit(cfg, ""); ok {
		t.Fatal("a limit with client buffers unbounded")
	}
}
