package commands_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

// JOBPUSH ... IDEMPOTENCY key: a repeat answers the first id and creates
// nothing, alone or in a pipeline; bad keys are refused and change nothing.
func TestJobPushIdempotency(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "emails", "send", "first", "IDEMPOTENCY", "order-7").(string)
	if got := do(t, c, "JOBPUSH", "other", "send", "second", "PRIORITY", 3, "IDEMPOTENCY", "order-7"); got != id {
		t.Fatalf("repeat answered %v, want %s", got, id)
	}
	if got := do(t, c, "JOBPUSH", "emails", "send", "p", "ID", "custom", "IDEMPOTENCY", "order-7"); got != id {
		t.Fatalf("repeat with ID answered %v, want %s (the key decides first)", got, id)
	}
	j := asMap(t, do(t, c, "JOBGET", id), jobFields...)
	check.Fields(t, "the first push's job", j, map[string]any{"payload": "first", "queue": "emails"})
	if got := do(t, c, "DBSIZE"); got != int64(1) {
		t.Fatalf("DBSIZE %v after repeats, want 1", got)
	}

	// A pipeline (the batch path) with a key twice and a known one.
	p := c.Pipeline()
	cmds := []*redis.Cmd{
		p.Do(ctx, "JOBPUSH", "emails", "send", "a", "IDEMPOTENCY", "order-8"),
		p.Do(ctx, "JOBPUSH", "emails", "send", "b"),
		p.Do(ctx, "JOBPUSH", "emails", "send", "c", "IDEMPOTENCY", "order-8"),
		p.Do(ctx, "JOBPUSH", "emails", "send", "d", "IDEMPOTENCY", "order-7"),
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(cmds))
	for i, cmd := range cmds {
		ids[i] = cmd.Val().(string)
	}
	if ids[2] != ids[0] || ids[3] != id || ids[1] == ids[0] {
		t.Fatalf("pipeline ids %v (first push %s)", ids, id)
	}
	if got := do(t, c, "DBSIZE"); got != int64(3) {
		t.Fatalf("DBSIZE %v after the pipeline, want 3", got)
	}

	for _, args := range [][]any{
		{"JOBPUSH", "q", "h", "p", "IDEMPOTENCY", "  "},
		{"JOBPUSH", "q", "h", "p", "IDEMPOTENCY", strings.Repeat("k", 1025)},
		{"JOBPUSH", "q", "h", "p", "IDEMPOTENCY"},
		{"JOBPUSH", "q", "", "p", "IDEMPOTENCY", "order-9"},
	} {
		if got := doErr(t, c, args...); !strings.HasPrefix(got, "ERR") {
			t.Fatalf("%v: %s", args[4:], got)
		}
	}
	if got := do(t, c, "DBSIZE"); got != int64(3) {
		t.Fatalf("a refused push changed something: DBSIZE %v", got)
	}
	// The refused push with order-9 left no key.
	id9 := do(t, c, "JOBPUSH", "q", "h", "p", "IDEMPOTENCY", "order-9").(string)
	if got := do(t, c, "DBSIZE"); got != int64(4) || id9 == id {
		t.Fatalf("DBSIZE %v, id %s", got, id9)
	}
	info := do(t, c, "INFO", "memory").(string)
	if !strings.Contains(info, "used_memory_idempotency:") || strings.Contains(info, "used_memory_idempotency:0\r") {
		t.Fatalf("INFO memory does not count the keys:\n%s", info)
	}
}
