package commands_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

var policyFields = []string{"kind", "key", "limit", "period", "active", "waiting", "next_free_at"}

func TestPolicies(t *testing.T) { protocols(t, testPolicies) }

func testPolicies(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	if got := do(t, c, "POLICYSET", "CONCURRENCY", "smtp", 1); got != "OK" {
		t.Fatal(got)
	}
	if got := do(t, c, "policyset", "ratelimit", "api", 2, 60000); got != "OK" {
		t.Fatal(got)
	}
	do(t, c, "JOBPUSH", "q", "h", "1", "CONCURRENCY", "smtp")
	id2 := do(t, c, "JOBPUSH", "q", "h", "2", "CONCURRENCY", "smtp").(string)
	rs := reserve(t, c, "w", 30000, "COUNT", 5, "QUEUES", "q")
	if len(rs) != 1 {
		t.Fatalf("concurrency 1 let %d through", len(rs))
	}
	p := asMap(t, do(t, c, "POLICYGET", "CONCURRENCY", "smtp"), policyFields...)
	check.Fields(t, "POLICYGET", p, map[string]any{"kind": "concurrency", "limit": int64(1), "active": int64(1),
		"waiting": int64(1), "period": nil, "next_free_at": nil})
	j := asMap(t, do(t, c, "JOBGET", id2), jobFields...)
	if j["blocked_by"] != "concurrency:smtp 1/1" {
		t.Fatalf("blocked_by %v", j["blocked_by"])
	}
	s := asMap(t, do(t, c, "QUEUESTATS", "q"), queueStatsFields...)
	check.Fields(t, "stats", s, map[string]any{"status": "throttled", "blocked_concurrency": int64(1)})

	for i := 0; i < 3; i++ {
		do(t, c, "JOBPUSH", "r", "h", "x", "RATELIMIT", "api")
	}
	before := time.Now().UnixMilli()
	if rs := reserve(t, c, "w", 30000, "COUNT", 5, "QUEUES", "r"); len(rs) != 2 {
		t.Fatalf("rate 2/min let %d through", len(rs))
	}
	p = asMap(t, do(t, c, "POLICYGET", "RATELIMIT", "api"), policyFields...)
	check.Fields(t, "POLICYGET ratelimit", p, map[string]any{"period": int64(60000), "active": int64(2), "waiting": int64(1)})
	if nf, ok := p["next_free_at"].(int64); !ok || nf < before+60000 {
		t.Fatalf("next_free_at %v", p["next_free_at"])
	}
	list := do(t, c, "POLICYLIST").([]any)
	if len(list) != 2 || asMap(t, list[0], policyFields...)["kind"] != "concurrency" {
		t.Fatalf("POLICYLIST %v", list)
	}
	if got := do(t, c, "POLICYDEL", "RATELIMIT", "api"); got != int64(1) {
		t.Fatal(got)
	}
	if got := do(t, c, "POLICYDEL", "RATELIMIT", "api"); got != int64(0) {
		t.Fatal(got)
	}
	isNil(t, c, "POLICYGET", "RATELIMIT", "api")
	if rs := reserve(t, c, "w", 30000, "QUEUES", "r"); len(rs) != 1 {
		t.Fatal("deleting the rate limit did not free the job")
	}

	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"POLICYSET", "CONCURRENCY", "k", 0}, "ERR limit must be a positive integer"},
		{[]any{"POLICYSET", "RATELIMIT", "k", 1, 0}, "ERR period must be a positive number of milliseconds"},
		{[]any{"POLICYSET", "RATELIMIT", "k", 1}, "ERR syntax error"},
		{[]any{"POLICYSET", "CONCURRENCY", "k", 1, 2}, "ERR syntax error"},
		{[]any{"POLICYSET", "SPEED", "k", 1}, "ERR syntax error"},
		{[]any{"POLICYSET", "CONCURRENCY", "k", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"POLICYGET", "CONCURRENCY"}, "ERR wrong number of arguments for 'policyget' command"},
	} {
		if got := doErr(t, c, tc.args...); !strings.EqualFold(got, tc.want) {
			t.Errorf("%v: got %q, want %q", tc.args, got, tc.want)
		}
	}
}
