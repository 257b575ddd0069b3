package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Tests of what Redis clients and tools other than redis-cli's plain
// commands read: redis-py's INFO parser, redis-cli --stat and --scan.

// debianPython is Debian's python3 with Debian's python3-redis (test.sh
// installs it); a python3 earlier in PATH (pyenv, a venv) may lack redis.
func debianPython(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import redis").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s with redis-py is required in CI (./test.sh installs python3-redis): %v", py, err)
		}
		t.Skipf("%s cannot import redis: %v", py, err)
	}
	return py
}

// infoScript pushes a job to and sets both policies on every name, then
// checks that redis-py's info() has every queue and policy as a field of
// its own, with the name decoded from the field name.
const infoScript = `
import sys, urllib.parse, redis
port = int(sys.argv[1])
try:
    r = redis.Redis(port=port, protocol=2)
except TypeError:  # redis-py before 5 has no protocol argument: RESP2 anyway
    r = redis.Redis(port=port)
names = ["mail", "a:b", "a,b", "a=b", "a b", "a\nb", "a%3Ab", "x=1,y=2:z", "émails", "x\u2028y", "#h"]
for n in names:
    r.execute_command("JOBPUSH", n, "h", "p")
    r.execute_command("POLICYSET", "CONCURRENCY", n, 2)
    r.execute_command("POLICYSET", "RATELIMIT", n, 5, 1000)
def decode(field, prefix):
    assert field.startswith(prefix), field
    return urllib.parse.unquote_to_bytes(field[len(prefix):]).decode()
q = r.info("queues")
assert q["queues"] == len(names), q
got = {decode(k, "queue_"): v for k, v in q.items() if k != "queues"}
assert sorted(got) == sorted(names), (sorted(got), q)
for n, v in got.items():
    assert v["status"] == "active" and v["queued"] == 1 and v["failed_total"] == 0, (n, v)
p = r.info("policies")
assert p["policies"] == 2 * len(names), p
for kind, want in (("concurrency", {"limit": 2, "active": 0, "waiting": 0}),
                   ("ratelimit", {"limit": 5, "active": 0, "waiting": 0, "period": 1000, "next_free_at": 0})):
    got = {decode(k, "policy_" + kind + "_"): v for k, v in p.items() if k.startswith("policy_" + kind + "_")}
    assert sorted(got) == sorted(names), (kind, sorted(got), p)
    for n, v in got.items():
        assert v == want, (kind, n, v)
ks = r.info("keyspace")
assert ks == {"db0": {"keys": len(names), "expires": 0, "avg_ttl": 0}}, ks
everything = r.info("everything")
assert everything["queue_a%3Ab"]["queued"] == 1 and everything["db0"]["keys"] == len(names), everything
print("ok")
`

func TestRedisPyInfo(t *testing.T) {
	py := debianPython(t)
	p := startBinary(t)
	out, err := exec.Command(py, "-c", infoScript, p.port).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("redis-py: %v\n%s", err, out)
	}
}

// redis-cli --stat prints a line a second, with the key count that it sums
// from INFO keyspace's db lines.
func TestRedisCLIStat(t *testing.T) {
	cli := need(t, "redis-cli")
	p := startBinary(t)
	p.cli(t, strings.Repeat("JOBPUSH q h p\n", 7)+"JOBPUSH other h p\n")
	// Line-buffered, or the lines are lost when timeout ends it (exit 124).
	out, _ := exec.Command("timeout", "3", "stdbuf", "-oL", cli, "-p", p.port, "--stat").CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[1], "keys") {
		t.Fatalf("redis-cli --stat:\n%s", out)
	}
	for _, l := range lines[2:] {
		if f := strings.Fields(l); len(f) == 0 || f[0] != "8" {
			t.Fatalf("redis-cli --stat shows %q keys, want 8:\n%s", l, out)
		}
	}
}

// redis-cli --scan lists every job, in every state, held while it runs,
// while another client pushes, reserves and acknowledges jobs.
func TestRedisCLIScan(t *testing.T) {
	cli := need(t, "redis-cli")
	p := startBinary(t)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + p.port, Protocol: 2})
	defer c.Close()
	ctx := context.Background()
	held := map[string]bool{}
	push := func(args ...any) string {
		id, err := c.Do(ctx, append([]any{"JOBPUSH"}, args...)...).Text()
		if err != nil {
			t.Fatal(err)
		}
		held[id] = true
		return id
	}
	for i := range 3000 {
		push("q"+strconv.Itoa(i%5), "h", "p")
	}
	for i := range 100 {
		push("later", "h", "p", "DELAY", 600000, "ID", "x:"+strconv.Itoa(i))
	}
	res, err := c.Do(ctx, "JOBRESERVE", "w", 600000, "COUNT", 400, "QUEUES", "q0", "q1").Slice()
	if err != nil || len(res) != 400 {
		t.Fatalf("reserve: %d, %v", len(res), err)
	}
	for i, r := range res {
		tok := r.([]any)[1]
		var err error
		switch i % 4 {
		case 1:
			err = c.Do(ctx, "JOBSTART", tok).Err()
		case 2:
			err = c.Do(ctx, "JOBACK", tok).Err()
		case 3:
			err = c.Do(ctx, "JOBFAIL", tok, "ERROR", "boom", "NORETRY").Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Do(ctx, "QUEUEPURGE", "q4").Result(); err != nil {
		t.Fatal(err)
	}

	// Churn on another connection for as long as the scan runs: redis-cli
	// waits 5 ms between SCAN calls.
	var mu sync.Mutex
	churned := map[string]bool{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		cw := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + p.port, Protocol: 2})
		defer cw.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			id, err := cw.Do(ctx, "JOBPUSH", "churn", "h", "p").Text()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			churned[id] = true
			mu.Unlock()
			if v, err := cw.Do(ctx, "JOBRESERVE", "w", 600000, "QUEUES", "churn").Slice(); err == nil {
				for _, r := range v {
					cw.Do(ctx, "JOBACK", r.([]any)[1])
				}
			}
		}
	}()
	out, err := exec.Command(cli, "-p", p.port, "--scan", "-i", "0.005").Output()
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("redis-cli --scan: %v", err)
	}
	seen := map[string]bool{}
	for _, id := range strings.Fields(string(out)) {
		seen[id] = true
		if !held[id] && !churned[id] {
			t.Fatalf("redis-cli --scan listed %q, never pushed", id)
		}
	}
	for id := range held {
		if !seen[id] {
			t.Fatalf("redis-cli --scan missed %s (listed %d of %d held)", id, len(seen), len(held))
		}
	}
	if len(churned) < 10 {
		t.Fatalf("only %d jobs pushed during the scan: nothing changed under it", len(churned))
	}

	out, err = exec.Command(cli, "-p", p.port, "--scan", "--pattern", "x:?").Output()
	if got := strings.Fields(string(out)); err != nil || len(got) != 10 {
		t.Fatalf("redis-cli --scan --pattern x:?: %v %q", err, got)
	}
}
