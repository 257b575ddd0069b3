package server_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
	"sluice/server"
)

// Jobs waiting for others, met, cancelled by a failure or run ANYWAY, and
// batches open, closed and complete, come back the same after a restart
// from the log and after one from a rewrite (the same DEBUG DIGEST), and
// what still waits is released by its dependency's ack after either, as
// the last job of a batch still pushes its callback.
func TestRestartKeepsDependencies(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.AppendFsync = "always"
	var clock atomic.Int64
	const t0 = int64(4102444800000)
	clock.Store(t0)
	start := func() (*server.Server, *redis.Client) { return startClocked(t, cfg, clock.Load) }
	do := func(c *redis.Client, args ...any) any {
		t.Helper()
		v, err := c.Do(ctx, args...).Result()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return v
	}
	states := func(c *redis.Client, want map[string]string) {
		t.Helper()
		for id, st := range want {
			if got := check.MapField(do(c, "JOBGET", id), "state"); got != st {
				t.Fatalf("%s is %v, want %s", id, got, st)
			}
		}
	}
	node, c := start()
	do(c, "JOBPUSH", "a", "h", "x", "ID", "root")
	do(c, "JOBPUSH", "a", "h", "x", "ID", "ok")
	do(c, "JOBPUSH", "a", "h", "x", "ID", "bad")
	do(c, "JOBPUSH", "b", "h", "x", "ID", "child", "AFTER", 2, "root", "ok")
	do(c, "JOBPUSH", "c", "h", "x", "ID", "grandchild", "AFTER", 1, "child", "EXPIRES", 3_600_000)
	do(c, "JOBPUSH", "b", "h", "x", "ID", "doomed", "AFTER", 2, "bad", "root")
	do(c, "JOBPUSH", "c", "h", "x", "ID", "heir", "AFTER", 1, "doomed")
	do(c, "JOBPUSH", "c", "h", "x", "ID", "stubborn", "AFTER", 1, "bad", "ANYWAY", "DELAY", 60_000)
	do(c, "BATCHOPEN", "done", "CALLBACK", "cb", "h", "all done", "ON", "always")
	do(c, "BATCHOPEN", "closed", "CALLBACK", "cb", "h", "closed done")
	do(c, "BATCHOPEN", "open")
	do(c, "JOBPUSH", "e", "h", "x", "ID", "m1", "BATCH", "done")
	do(c, "JOBPUSH", "f", "h", "x", "ID", "m2", "BATCH", "closed")
	do(c, "JOBPUSH", "f", "h", "x", "ID", "m3", "BATCH", "closed")
	do(c, "JOBPUSH", "f", "h", "x", "ID", "m4", "BATCH", "open")
	do(c, "BATCHCLOSE", "done")
	do(c, "BATCHCLOSE", "closed")
	reserve := func(c *redis.Client, q string) string {
		t.Helper()
		return check.MapField(do(c, "JOBRESERVE", "w", 60_000, "QUEUES", q).([]any)[0], "token").(string)
	}
	for _, id := range []string{"root", "ok", "bad"} {
		tok := reserve(c, "a")
		switch id {
		case "ok":
			do(c, "JOBACK", tok)
		case "bad":
			do(c, "JOBFAIL", tok, "NORETRY")
		default: // root stays running
		}
	}
	do(c, "JOBACK", reserve(c, "e"))
	do(c, "JOBACK", reserve(c, "f"))
	states(c, map[string]string{"child": "waiting", "doomed": "cancelled", "heir": "cancelled", "stubborn": "scheduled"})
	if got := check.MapField(do(c, "BATCHGET", "done"), "callback_state"); got != "queued" {
		t.Fatalf("the done batch's callback is %v", got)
	}
	before := do(c, "DEBUG", "DIGEST").(string)
	shutdown(t, node)

	node, c = start()
	if after := do(c, "DEBUG", "DIGEST").(string); after != before {
		t.Fatalf("DEBUG DIGEST %q before the restart, %q after", before, after)
	}
	rewriteLog(t, c)
	shutdown(t, node)

	node, c = start()
	if after := do(c, "DEBUG", "DIGEST").(string); after != before {
		t.Fatalf("DEBUG DIGEST %q before the restart from the rewrite, %q after", before, after)
	}
	// The running root's token came back with it: its ack releases the
	// child, and the child's the grandchild.
	tok := check.MapField(do(c, "JOBGET", "root"), "state")
	if tok != "reserved" {
		t.Fatalf("root is %v", tok)
	}
	defer shutdown(t, node)
	clock.Store(t0 + 120_000) // the root's lease ran out: it is queued again
	do(c, "JOBACK", reserve(c, "a"))
	states(c, map[string]string{"child": "queued", "grandchild": "waiting"})
	do(c, "JOBACK", reserve(c, "b"))
	states(c, map[string]string{"grandchild": "queued"})
	do(c, "JOBACK", reserve(c, "f"))
	b := do(c, "BATCHGET", "closed")
	if check.MapField(b, "state") != "done" || check.MapField(b, "succeeded") != int64(2) || check.MapField(b, "callback_state") != "queued" {
		t.Fatalf("the closed batch after its last ack: %v", b)
	}
	if !strings.Contains(c.Info(ctx, "stats").Val(), "waiting_jobs:0") {
		t.Fatal("INFO stats still counts waiting jobs")
	}
}
