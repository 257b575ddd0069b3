package commands_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

func TestThrottleCommands(t *testing.T) { protocols(t, testThrottleCommands) }

func testThrottleCommands(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	id := do(t, c, "JOBPUSH", "q", "h", "1", "CONCURRENCY", "api").(string)
	before := time.Now().UnixMilli()
	until, ok := do(t, c, "POLICYTHROTTLE", "api", 60000).(int64)
	if !ok || until < before+60000 || until > time.Now().UnixMilli()+60000 {
		t.Fatalf("POLICYTHROTTLE = %v", until)
	}
	if rs := reserve(t, c, "w", 30000, "QUEUES", "q"); len(rs) != 0 {
		t.Fatalf("reserved while throttled: %v", rs)
	}
	j := asMap(t, do(t, c, "JOBGET", id), jobFields...)
	if want := fmt.Sprintf("throttled:api until %d", until); j["blocked_by"] != want {
		t.Fatalf("blocked_by %v, want %s", j["blocked_by"], want)
	}
	p := asMap(t, do(t, c, "POLICYGET", "THROTTLE", "api"), policyFields...)
	check.Fields(t, "POLICYGET THROTTLE", p, map[string]any{"kind": "throttle", "key": "api", "limit": nil,
		"period": nil, "active": int64(0), "waiting": int64(1), "next_free_at": until})
	list := do(t, c, "POLICYLIST").([]any)
	check.Len(t, "POLICYLIST", list, 1)
	info := do(t, c, "INFO", "policies").(string)
	if want := fmt.Sprintf("policy_throttle_api:until=%d,waiting=1", until); !strings.Contains(info, want) {
		t.Fatalf("INFO policies lacks %q:\n%s", want, info)
	}
	// POLICYDEL THROTTLE lifts it.
	if got := do(t, c, "POLICYDEL", "THROTTLE", "api"); got != int64(1) {
		t.Fatalf("POLICYDEL THROTTLE = %v", got)
	}
	isNil(t, c, "POLICYGET", "THROTTLE", "api")
	rs := reserve(t, c, "w", 30000, "QUEUES", "q")
	check.Len(t, "reserved once lifted", rs, 1)
	// A worker gives the job back and throttles its key in one command.
	if got := do(t, c, "JOBRELEASE", rs[0]["token"], "DELAY", 0, "THROTTLE", "api", 60000); got != "OK" {
		t.Fatalf("JOBRELEASE THROTTLE = %v", got)
	}
	if rs := reserve(t, c, "w", 30000, "QUEUES", "q"); len(rs) != 0 {
		t.Fatalf("reserved after JOBRELEASE THROTTLE: %v", rs)
	}
	if got := do(t, c, "POLICYTHROTTLE", "api", 0); got != int64(0) {
		t.Fatalf("POLICYTHROTTLE 0 = %v", got)
	}
	// Bad input changes nothing.
	for _, tc := range []struct {
		args []any
		err  string
	}{
		{[]any{"POLICYTHROTTLE", "api", -1}, "ERR"},
		{[]any{"POLICYTHROTTLE", "api", "x"}, "ERR value is not an integer"},
		{[]any{"POLICYTHROTTLE", "api", int64(1) << 40}, "ERR value is out of range"},
		{[]any{"POLICYTHROTTLE", "t:*", 10}, "ERR"},
		{[]any{"POLICYSET", "THROTTLE", "api", 10}, "ERR syntax error"},
		{[]any{"JOBRELEASE", "nope.1", "THROTTLE", "api"}, "ERR syntax error"},
		{[]any{"JOBRELEASE", "nope.1", "THROTTLE", "api", 1000}, "NORESERVATION"},
	} {
		if got := doErr(t, c, tc.args...); !strings.HasPrefix(got, tc.err) {
			t.Errorf("%v: %s, want %s...", tc.args, got, tc.err)
		}
	}
	isNil(t, c, "POLICYGET", "THROTTLE", "api")
}

func TestTemplateCommands(t *testing.T) { protocols(t, testTemplateCommands) }

func testTemplateCommands(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	if got := do(t, c, "POLICYSET", "CONCURRENCY", "tenant:*", 1); got != "OK" {
		t.Fatal(got)
	}
	for _, ck := range []string{"tenant:a", "tenant:a", "tenant:b"} {
		do(t, c, "JOBPUSH", "q", "h", "x", "CONCURRENCY", ck)
	}
	rs := reserve(t, c, "w", 30000, "COUNT", 5, "QUEUES", "q")
	check.Len(t, "one per tenant", rs, 2)
	tmpl := asMap(t, do(t, c, "POLICYGET", "CONCURRENCY", "tenant:*"), policyFields...)
	check.Fields(t, "the template", tmpl, map[string]any{"kind": "concurrency", "key": "tenant:*", "limit": int64(1)})
	fields := append(append([]string(nil), policyFields...), "template")
	inst := asMap(t, do(t, c, "POLICYGET", "CONCURRENCY", "tenant:a"), fields...)
	check.Fields(t, "an instance", inst, map[string]any{"key": "tenant:a", "limit": int64(1), "active": int64(1),
		"waiting": int64(1), "template": "tenant:*"})
	list := do(t, c, "POLICYLIST").([]any)
	check.Len(t, "POLICYLIST: the template and two instances", list, 3)
	if got := do(t, c, "POLICYDEL", "CONCURRENCY", "tenant:a"); got != int64(0) {
		t.Fatalf("POLICYDEL of an instance = %v", got)
	}
	if got := do(t, c, "POLICYDEL", "CONCURRENCY", "tenant:*"); got != int64(1) {
		t.Fatalf("POLICYDEL of the template = %v", got)
	}
	check.Len(t, "after the template went", reserve(t, c, "w", 30000, "COUNT", 5, "QUEUES", "q"), 1)
}

// TestBlockWokenByThrottleEnding: a blocked JOBRESERVE is answered when the
// throttle ends, by the store's timer, not before.
func TestBlockWokenByThrottleEnding(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "1", "RATELIMIT", "api").(string)
	until := do(t, c, "POLICYTHROTTLE", "api", 300).(int64)
	got := ts.blockedReserve(t, "w", 30000, "BLOCK", 0, "QUEUES", "q")
	rs := receive(t, got)
	check.Len(t, "the woken reserve", rs, 1)
	check.Fields(t, "the woken reserve", rs[0], map[string]any{"id": id})
	if admitted := rs[0]["expires_at"].(int64) - 30000; admitted < until {
		t.Fatalf("admitted at %d, the throttle ends at %d", admitted, until)
	}
}

// TestBlockWokenByThrottleLifted: lifting a throttle wakes a blocked
// reserve at once.
func TestBlockWokenByThrottleLifted(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "1", "CONCURRENCY", "api").(string)
	do(t, c, "POLICYTHROTTLE", "api", 600000)
	got := ts.blockedReserve(t, "w", 30000, "BLOCK", 0, "QUEUES", "q")
	time.Sleep(50 * time.Millisecond)
	select {
	case rs := <-got:
		t.Fatalf("served while throttled: %v", rs)
	default:
	}
	do(t, c, "POLICYTHROTTLE", "api", 0)
	rs := receive(t, got)
	check.Len(t, "the woken reserve", rs, 1)
	check.Fields(t, "the woken reserve", rs[0], map[string]any{"id": id})
}
