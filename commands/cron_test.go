package commands_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

var cronFields = []string{"name", "schedule", "tz", "queue", "handler", "payload", "priority",
	"concurrency_key", "rate_limit_key", "max_attempts", "backoff", "next_run_at", "last_run_at", "fired", "missed",
	"expires", "timeout"}

func TestCron(t *testing.T) { protocols(t, testCron) }

func testCron(t *testing.T, proto func(*redis.Options)) {
	// A clock ahead of the timer goroutine's, which reads the real one:
	// only the commands' maintenance fires.
	var clock atomic.Int64
	const t0 = int64(4102444800000)
	clock.Store(t0 + 500)
	ts := start(t, func(s *setup) { s.now = clock.Load; s.maxPayload = 64 })
	c := ts.client(t, proto)

	if got := do(t, c, "CRONSET", "beat", "@every 1s", "q", "h", "hi", "PRIORITY", 5, "MAXATTEMPTS", 3,
		"CONCURRENCY", "ck", "BACKOFF", 20, "tz", "Europe/Paris"); got != int64(1) {
		t.Fatalf("CRONSET of a new entry: %v", got)
	}
	e := asMap(t, do(t, c, "CRONGET", "beat"), cronFields...)
	check.Fields(t, "CRONGET", e, map[string]any{"name": "beat", "schedule": "@every 1s", "tz": "Europe/Paris",
		"queue": "q", "handler": "h", "payload": "hi", "priority": int64(5), "concurrency_key": "ck",
		"rate_limit_key": nil, "max_attempts": int64(3), "backoff": int64(20),
		"next_run_at": t0 + 1000, "last_run_at": nil, "fired": int64(0), "missed": int64(0)})

	clock.Store(t0 + 1200) // the tick at t0+1000 is due
	if n := do(t, c, "QUEUELEN", "q"); n != int64(1) {
		t.Fatalf("QUEUELEN after one tick: %v", n)
	}
	rs := reserve(t, c, "w", 1000, "QUEUES", "q")
	if len(rs) != 1 || rs[0]["payload"] != "hi" || rs[0]["priority"] != int64(5) {
		t.Fatalf("the tick's job: %v", rs)
	}
	j := asMap(t, do(t, c, "JOBGET", rs[0]["id"]), jobFields...)
	check.Fields(t, "the tick's job", j, map[string]any{"created_at": t0 + 1000, "max_attempts": int64(3), "concurrency_key": "ck"})

	if got := do(t, c, "cronset", "beat", "0 9 * * *", "q", "h", "x"); got != int64(0) {
		t.Fatalf("CRONSET replacing: %v", got)
	}
	list := do(t, c, "CRONLIST").([]any)
	if len(list) != 1 {
		t.Fatalf("CRONLIST %v", list)
	}
	e = asMap(t, list[0], cronFields...)
	check.Fields(t, "CRONLIST", e, map[string]any{"schedule": "0 9 * * *", "tz": "UTC", "fired": int64(1),
		"last_run_at": t0 + 1000, "next_run_at": t0 + 9*3600*1000, "priority": int64(0)})
	info := infoText(t, c, "cron")
	if !strings.Contains(info, "cron_entries:1") || !strings.Contains(info, "cron_fired:1") {
		t.Fatalf("INFO cron:\n%s", info)
	}

	// Bad input: a clear error, nothing changes.
	for _, bad := range []struct {
		args []any
		want string
	}{
		{[]any{"CRONSET", "n", "61 * * * *", "q", "h", "p"}, `ERR schedule "61 * * * *"`},
		{[]any{"CRONSET", "n", "@every 100ms", "q", "h", "p"}, "ERR schedule \"@every 100ms\": @every takes a whole number of seconds"},
		{[]any{"CRONSET", "n", "* * * * *", "q", "h", "p", "TZ", "Nowhere/City"}, `ERR unknown time zone "Nowhere/City"`},
		{[]any{"CRONSET", "n", "* * * * *", "q", "h", "p", "DELAY", 5}, "ERR syntax error"},
		{[]any{"CRONSET", "n", "* * * * *", "q", "h", "p", "PRIORITY"}, "ERR syntax error"},
		{[]any{"CRONSET", "n", "* * * * *", "q", "h", "p", "MAXATTEMPTS", 0}, "ERR value is out of range, must be positive"},
		{[]any{"CRONSET", "n", "* * * * *", "q", "h", strings.Repeat("p", 65)}, "ERR payload is larger than max-payload"},
		{[]any{"CRONSET", "", "* * * * *", "q", "h", "p"}, "ERR cron name must not be empty"},
		{[]any{"CRONSET", "n", "* * * * *", "q", "h"}, "ERR wrong number of arguments"},
		{[]any{"CRONDEL", " "}, "ERR cron name must not be empty"},
	} {
		if got := doErr(t, c, bad.args...); !strings.HasPrefix(got, bad.want) {
			t.Errorf("%v: %q, want %q", bad.args, got, bad.want)
		}
	}
	if n := len(do(t, c, "CRONLIST").([]any)); n != 1 {
		t.Fatalf("refused commands changed the entries: %d", n)
	}

	if got := do(t, c, "CRONDEL", "beat"); got != int64(1) {
		t.Fatalf("CRONDEL: %v", got)
	}
	if got := do(t, c, "CRONDEL", "beat"); got != int64(0) {
		t.Fatalf("CRONDEL again: %v", got)
	}
	isNil(t, c, "CRONGET", "beat")
	if n := len(do(t, c, "CRONLIST").([]any)); n != 0 {
		t.Fatalf("CRONLIST after CRONDEL: %d entries", n)
	}
}
