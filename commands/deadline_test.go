package commands_test

import (
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

func TestExpiryAndTimeout(t *testing.T) { protocols(t, testExpiryAndTimeout) }

func testExpiryAndTimeout(t *testing.T, proto func(*redis.Options)) {
	// Ahead of the timer goroutine's real clock: only the commands'
	// maintenance fires.
	var clock atomic.Int64
	const t0 = int64(4102444800000)
	clock.Store(t0)
	ts := start(t, func(s *setup) { s.now = clock.Load })
	c := ts.client(t, proto)

	// Bad input: a clear error, nothing pushed.
	for _, args := range [][]any{
		{"EXPIRES", 0}, {"EXPIRES", -5}, {"EXPIRES", "soon"}, {"DEADLINE", 0},
		{"DEADLINE", t0 - 1},                  // in the past
		{"DEADLINE", t0 + 500, "DELAY", 1000}, // before its run time
		{"EXPIRES", 10, "DEADLINE", t0 + 500}, // both
		{"TIMEOUT", 0}, {"TIMEOUT", -1},
		{"TIMEOUT", int64(math.MaxInt64)}, {"EXPIRES", int64(math.MaxInt64)}, // over 10 years: now + it would overflow
	} {
		got := doErr(t, c, append([]any{"JOBPUSH", "q", "h", "p"}, args...)...)
		if !strings.HasPrefix(got, "ERR") {
			t.Errorf("JOBPUSH %v: %q, want ERR", args, got)
		}
	}
	if n := do(t, c, "DBSIZE"); n != int64(0) {
		t.Fatalf("DBSIZE after refused pushes = %v", n)
	}

	exp := do(t, c, "JOBPUSH", "q", "h", "p", "EXPIRES", 100).(string)
	dl := do(t, c, "JOBPUSH", "q", "h", "p", "DEADLINE", t0+200, "DELAY", 150).(string)
	tm := do(t, c, "JOBPUSH", "t", "h", "p", "TIMEOUT", 50, "MAXATTEMPTS", 1).(string)
	check.Fields(t, "JOBGET", asMap(t, do(t, c, "JOBGET", exp), jobFields...),
		map[string]any{"state": "queued", "deadline": int64(t0 + 100), "timeout": nil})
	check.Fields(t, "JOBGET", asMap(t, do(t, c, "JOBGET", tm), jobFields...),
		map[string]any{"deadline": nil, "timeout": int64(50)})

	rs := reserve(t, c, "w", 10_000, "QUEUES", "t")
	check.Len(t, "reserve", rs, 1)
	tok := rs[0]["token"].(string)
	check.Fields(t, "reservation", rs[0], map[string]any{"id": tm, "expires_at": int64(t0 + 50)})
	if got := do(t, c, "JOBTOUCH", tok, 60_000); got != int64(t0+50) {
		t.Fatalf("JOBTOUCH past the timeout = %v, want t0+50", got)
	}

	clock.Store(t0 + 100)
	check.Fields(t, "expired", asMap(t, do(t, c, "JOBGET", exp), jobFields...),
		map[string]any{"state": "expired", "updated_at": int64(t0 + 100)})
	check.Fields(t, "timed out", asMap(t, do(t, c, "JOBGET", tm), jobFields...),
		map[string]any{"state": "failed", "last_error": "timeout", "attempt": int64(1)})
	if got := doErr(t, c, "JOBACK", tok); !strings.HasPrefix(got, "EXPIRED") {
		t.Fatalf("JOBACK after the timeout: %q", got)
	}
	clock.Store(t0 + 150)
	if rs := reserve(t, c, "w", 10_000, "QUEUES", "q"); len(rs) != 1 || rs[0]["id"] != dl {
		t.Fatalf("reserve at 150 ms: %v, want %s (due before its deadline)", rs, dl)
	}
	if st := asMap(t, do(t, c, "QUEUESTATS", "q"), queueStatsFields...); st["expired"] != int64(1) {
		t.Fatalf("QUEUESTATS expired = %v", st["expired"])
	}

	// JOBCANCEL of a failed job: it leaves the dead letters.
	if got := do(t, c, "JOBCANCEL", tm); got != int64(1) {
		t.Fatalf("JOBCANCEL of a failed job = %v, want 1", got)
	}
	check.Fields(t, "cancelled", asMap(t, do(t, c, "JOBGET", tm), jobFields...), map[string]any{"state": "cancelled"})
	if got := do(t, c, "JOBCANCEL", exp); got != int64(0) {
		t.Fatalf("JOBCANCEL of an expired job = %v, want 0", got)
	}

	// A periodic entry's jobs take the same options, EXPIRES from each tick.
	do(t, c, "CRONSET", "beat", "@every 1s", "cq", "h", "hi", "EXPIRES", 500, "TIMEOUT", 20)
	check.Fields(t, "CRONGET", asMap(t, do(t, c, "CRONGET", "beat"), cronFields...),
		map[string]any{"expires": int64(500), "timeout": int64(20)})
	clock.Store(t0 + 1000) // the tick
	rs = reserve(t, c, "w", 10_000, "QUEUES", "cq")
	check.Len(t, "cron job", rs, 1)
	check.Fields(t, "cron job", asMap(t, do(t, c, "JOBGET", rs[0]["id"]), jobFields...),
		map[string]any{"deadline": int64(t0 + 1500), "timeout": int64(20), "expires_at": int64(t0 + 1020)})
	if got := doErr(t, c, "CRONSET", "bad", "@every 1s", "cq", "h", "hi", "EXPIRES", 0); !strings.HasPrefix(got, "ERR") {
		t.Fatalf("CRONSET EXPIRES 0: %q", got)
	}
}
