package server_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"sluice/config"
	"sluice/internal/check"
	"sluice/server"
	"sluice/store"
)

// Expired, timed-out, dead-letter and cancelled-dead-letter jobs, and jobs
// still waiting with a deadline or a timeout, come back the same after a
// restart from the log and after one from a rewrite: the same DEBUG DIGEST.
func TestRestartKeepsExpiryAndDeadLetters(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.AppendFsync = "always"
	// A clock of the test's, ahead of the wall clock, and ids of a
	// sequence: the digest then depends on the jobs alone.
	var clock atomic.Int64
	const t0 = int64(4102444800000)
	clock.Store(t0)
	digestAfterRestart := func(prepare func(c *redis.Client)) (before, after string) {
		t.Helper()
		node, c := startClocked(t, cfg, clock.Load)
		prepare(c)
		before = c.Do(ctx, "DEBUG", "DIGEST").Val().(string)
		c.Close()
		shutdown(t, node)
		again, c := startClocked(t, cfg, clock.Load)
		after = c.Do(ctx, "DEBUG", "DIGEST").Val().(string)
		c.Close()
		shutdown(t, again)
		return before, after
	}
	do := func(c *redis.Client, args ...any) any {
		t.Helper()
		v, err := c.Do(ctx, args...).Result()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return v
	}
	before, after := digestAfterRestart(func(c *redis.Client) {
		do(c, "JOBPUSH", "q", "h", "soon", "ID", "lapsed", "EXPIRES", 1)
		do(c, "JOBPUSH", "q", "h", "later", "ID", "waiting", "EXPIRES", 3_600_000)
		do(c, "JOBPUSH", "q", "h", "x", "ID", "scheduled", "DELAY", 60_000, "DEADLINE", t0+2*3_600_000)
		do(c, "JOBPUSH", "t", "h", "x", "ID", "timed", "TIMEOUT", 1, "MAXATTEMPTS", 2)
		do(c, "JOBPUSH", "t", "h", "x", "ID", "running", "TIMEOUT", 3_600_000)
		do(c, "JOBPUSH", "d", "h", "x", "ID", "dead")
		do(c, "JOBPUSH", "d", "h", "x", "ID", "undead")
		do(c, "JOBRESERVE", "w", 60_000, "COUNT", 2, "QUEUES", "t")
		for range 2 {
			tok := check.MapField(do(c, "JOBRESERVE", "w", 60_000, "QUEUES", "d").([]any)[0], "token")
			do(c, "JOBFAIL", tok, "ERROR", "boom")
		}
		do(c, "JOBCANCEL", "undead")
		clock.Store(t0 + 20) // "lapsed" expires, "timed" times out
		for id, want := range map[string]string{"lapsed": "expired", "timed": "retry_pending", "dead": "failed", "undead": "cancelled", "waiting": "queued"} {
			if got := check.MapField(do(c, "JOBGET", id), "state"); got != want {
				t.Fatalf("%s is %v, want %s", id, got, want)
			}
		}
	})
	if before == "" || before != after {
		t.Fatalf("DEBUG DIGEST %q before the restart, %q after", before, after)
	}
	first := before
	before, after = digestAfterRestart(func(c *redis.Client) {
		rewriteLog(t, c)
	})
	if before != after {
		t.Fatalf("DEBUG DIGEST %q before the restart from the rewrite, %q after", before, after)
	}
	if before != first {
		t.Fatalf("DEBUG DIGEST %q after the first restart, %q at the second", first, before)
	}
}

// startClocked starts a node of cfg on the test's clock now, with ids of a
// sequence (so that DEBUG DIGEST depends on the jobs alone), and a client
// of it.
func startClocked(t *testing.T, cfg config.Config, now func() int64) (*server.Server, *redis.Client) {
	t.Helper()
	node, err := server.New(cfg, server.Options{Log: zerolog.New(zerolog.NewTestWriter(t)), Version: "test",
		Now: now, Generator: store.NewSeqGenerator()})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	return node, redis.NewClient(&redis.Options{Addr: node.Addrs()[0]})
}

// rewriteLog runs the node's first BGREWRITEAOF and waits until it is done.
func rewriteLog(t *testing.T, c *redis.Client) {
	t.Helper()
	if err := c.Do(context.Background(), "BGREWRITEAOF").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info := c.Info(context.Background(), "persistence").Val()
		if strings.Contains(info, "aof_rewrites:1") && strings.Contains(info, "aof_rewrite_in_progress:0") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rewrite did not finish:\n%s", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
