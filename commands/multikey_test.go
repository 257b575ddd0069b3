package commands_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

func TestMultiKeyCommands(t *testing.T) { protocols(t, testMultiKeyCommands) }

// testMultiKeyCommands: JOBPUSH takes CONCURRENCY and RATELIMIT again for
// further keys; JOBGET keeps concurrency_key and rate_limit_key the first
// and lists every key in concurrency_keys and rate_limit_keys, only for a
// job of several; blocked_by names every refusing key; bad input is
// refused and pushes nothing.
func testMultiKeyCommands(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	do(t, c, "POLICYSET", "CONCURRENCY", "global", 1)
	do(t, c, "POLICYSET", "CONCURRENCY", "cust:*", 1)
	first := do(t, c, "JOBPUSH", "q", "h", "1", "CONCURRENCY", "global", "CONCURRENCY", "cust:a", "RATELIMIT", "r").(string)
	id := do(t, c, "JOBPUSH", "q", "h", "2", "CONCURRENCY", "global", "CONCURRENCY", "cust:a", "RATELIMIT", "r").(string)
	one := do(t, c, "JOBPUSH", "q", "h", "3", "CONCURRENCY", "cust:b").(string)
	fields := append(append([]string(nil), jobFields...), "concurrency_keys")
	j := asMap(t, do(t, c, "JOBGET", id), fields...)
	check.Fields(t, "JOBGET", j, map[string]any{"concurrency_key": "global", "rate_limit_key": "r",
		"concurrency_keys": []any{"global", "cust:a"}, "blocked_by": nil})
	asMap(t, do(t, c, "JOBGET", one), jobFields...) // a job of one key replies as before
	rs := reserve(t, c, "w", 30000, "COUNT", 3, "QUEUES", "q")
	check.Len(t, "reserved", rs, 2)
	if rs[0]["id"] != first || rs[1]["id"] != one {
		t.Fatalf("reserved %v", rs)
	}
	j = asMap(t, do(t, c, "JOBGET", id), fields...)
	check.Fields(t, "JOBGET while blocked", j, map[string]any{"blocked_by": "concurrency:global 1/1, concurrency:cust:a 1/1"})
	for _, tc := range []struct {
		args []any
		err  string
	}{
		{[]any{"CONCURRENCY", "a", "CONCURRENCY", "b", "CONCURRENCY", "c", "CONCURRENCY", "d", "CONCURRENCY", "e"}, "ERR a job takes at most 4 concurrency keys, 5 are given"},
		{[]any{"RATELIMIT", "a", "RATELIMIT", "b", "RATELIMIT", "c", "RATELIMIT", "d", "RATELIMIT", "e"}, "ERR a job takes at most 4 rate-limit keys, 5 are given"},
		{[]any{"CONCURRENCY", "a", "CONCURRENCY", "a"}, `ERR concurrency key "a" is given twice`},
		{[]any{"RATELIMIT", "a", "RATELIMIT", "b", "RATELIMIT", "a"}, `ERR rate-limit key "a" is given twice`},
	} {
		if got := doErr(t, c, append([]any{"JOBPUSH", "bad", "h", "x"}, tc.args...)...); got != tc.err {
			t.Errorf("%v: %s, want %s", tc.args, got, tc.err)
		}
	}
	if got := check.MapField(do(t, c, "QUEUESTATS", "bad"), "queued"); got != int64(0) {
		t.Fatalf("refused pushes queued %v", got)
	}
	if got := doErr(t, c, "CRONSET", "e", "@every 1m", "q", "h", "x", "CONCURRENCY", "a", "CONCURRENCY", "b"); !strings.Contains(got, "at most one CONCURRENCY") {
		t.Fatalf("CRONSET of two keys: %s", got)
	}
}
