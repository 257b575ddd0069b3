package commands_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

func TestBreakerCommands(t *testing.T) { protocols(t, testBreakerCommands) }

func testBreakerCommands(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	if got := do(t, c, "POLICYSET", "BREAKER", "handler:mail", 2, 60000, 60000); got != "OK" {
		t.Fatalf("POLICYSET BREAKER = %v", got)
	}
	var ids []string
	for range 3 {
		ids = append(ids, do(t, c, "JOBPUSH", "q", "mail", "x").(string))
	}
	other := do(t, c, "JOBPUSH", "q", "sms", "x").(string)
	rs := reserve(t, c, "w", 30000, "COUNT", 2, "HANDLERS", 1, "mail", "QUEUES", "q")
	check.Len(t, "reserved", rs, 2)
	for _, r := range rs {
		do(t, c, "JOBFAIL", r["token"], "ERROR", "boom")
	}
	fields := append(append([]string(nil), policyFields...), "state", "cooldown", "probes", "probes_out", "probes_ok")
	p := asMap(t, do(t, c, "POLICYGET", "BREAKER", "handler:mail"), fields...)
	until, _ := p["next_free_at"].(int64)
	check.Fields(t, "POLICYGET BREAKER", p, map[string]any{"kind": "breaker", "key": "handler:mail", "limit": int64(2),
		"period": int64(60000), "active": int64(0), "waiting": int64(1), "state": "open", "cooldown": int64(60000),
		"probes": int64(1), "probes_out": int64(0), "probes_ok": int64(0)})
	if until == 0 {
		t.Fatalf("an open breaker without its end: %v", p)
	}
	rs = reserve(t, c, "w", 30000, "COUNT", 5, "QUEUES", "q")
	check.Len(t, "only the other handler's job", rs, 1)
	if rs[0]["id"] != other {
		t.Fatalf("reserved %v, want %s", rs[0]["id"], other)
	}
	j := asMap(t, do(t, c, "JOBGET", ids[2]), jobFields...)
	if want := fmt.Sprintf("breaker:handler:mail open until %d", until); j["blocked_by"] != want {
		t.Fatalf("blocked_by %v, want %s", j["blocked_by"], want)
	}
	list := do(t, c, "POLICYLIST").([]any)
	check.Len(t, "POLICYLIST", list, 1)
	info := do(t, c, "INFO", "policies").(string)
	want := fmt.Sprintf("policy_breaker_handler%%3Amail:state=open,failures=0,threshold=2,window=60000,cooldown=60000,open_until=%d,probes=1,probes_out=0,probes_ok=0,waiting=1", until)
	if !strings.Contains(info, want) {
		t.Fatalf("INFO policies lacks %q:\n%s", want, info)
	}
	// POLICYDEL BREAKER lets the jobs go at once.
	if got := do(t, c, "POLICYDEL", "BREAKER", "handler:mail"); got != int64(1) {
		t.Fatalf("POLICYDEL BREAKER = %v", got)
	}
	isNil(t, c, "POLICYGET", "BREAKER", "handler:mail")
	rs = reserve(t, c, "w", 30000, "QUEUES", "q")
	check.Len(t, "reserved once deleted", rs, 1)
	// Bad input changes nothing.
	for _, tc := range []struct {
		args []any
		err  string
	}{
		{[]any{"POLICYSET", "BREAKER", "handler:mail", 2, 100}, "ERR syntax error"},
		{[]any{"POLICYSET", "BREAKER", "handler:mail", 2, 100, 100, 1, 1}, "ERR syntax error"},
		{[]any{"POLICYSET", "BREAKER", "mail", 2, 100, 100}, "ERR"},
		{[]any{"POLICYSET", "BREAKER", "tenant:mail", 2, 100, 100}, "ERR"},
		{[]any{"POLICYSET", "BREAKER", "handler:mail", 0, 100, 100}, "ERR"},
		{[]any{"POLICYSET", "BREAKER", "handler:mail", 2, 0, 100}, "ERR"},
		{[]any{"POLICYSET", "BREAKER", "handler:mail", 2, 100, -1}, "ERR"},
		{[]any{"POLICYSET", "BREAKER", "handler:mail", 2, 100, int64(1) << 40}, "ERR value is out of range"},
		{[]any{"POLICYSET", "BREAKER", "handler:mail", 2, 100, 100, 0}, "ERR"},
		{[]any{"POLICYSET", "BREAKER", "handler:mail", "x", 100, 100}, "ERR value is not an integer"},
		{[]any{"POLICYGET", "BREAKER", "mail"}, "ERR"},
		{[]any{"POLICYDEL", "BREAKER", "nope:mail"}, "ERR"},
	} {
		if got := doErr(t, c, tc.args...); !strings.HasPrefix(got, tc.err) {
			t.Errorf("%v: %s, want %s...", tc.args, got, tc.err)
		}
	}
	check.Len(t, "POLICYLIST after refusals", do(t, c, "POLICYLIST").([]any), 0)
}
