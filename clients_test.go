package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
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
