package commands_test

import (
	"strings"
	"testing"

	"sluice/internal/check"
)

// JOBPUSH ... UNIQUE key [SCOPE s] [TTL ms] [ON-DUPLICATE a]: keep answers
// the holder, reject names it, extend debounces a scheduled holder, the
// key goes when its job leaves the scope; bad options are refused and
// change nothing.
func TestJobPushUnique(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "mail", "send", "first", "UNIQUE", "user-1", "SCOPE", "queued", "DELAY", 60000).(string)
	if got := do(t, c, "JOBPUSH", "mail", "send", "again", "UNIQUE", "user-1"); got != id {
		t.Fatalf("keep answered %v, want %s", got, id)
	}
	if msg := doErr(t, c, "JOBPUSH", "mail", "send", "x", "UNIQUE", "user-1", "ON-DUPLICATE", "reject"); msg != "DUPKEY key user-1 is held by job "+id {
		t.Fatalf("reject: %q", msg)
	}
	if got := do(t, c, "JOBPUSH", "mail", "send", "latest", "UNIQUE", "user-1", "SCOPE", "queued", "ON-DUPLICATE", "extend", "DELAY", 120000); got != id {
		t.Fatalf("extend answered %v, want %s", got, id)
	}
	j := asMap(t, do(t, c, "JOBGET", id), jobFields...)
	check.Fields(t, "the debounced job", j, map[string]any{"payload": "latest", "state": "scheduled"})
	for _, bad := range [][]any{
		{"SCOPE", "queued"},                                   // without UNIQUE
		{"UNIQUE", "k", "SCOPE", "sometimes"},                 // unknown scope
		{"UNIQUE", "k", "ON-DUPLICATE", "merge"},              // unknown action
		{"UNIQUE", "k", "TTL", 0},                             // not positive
		{"UNIQUE", "k", "IDEMPOTENCY", "k2"},                  // both keys
		{"UNIQUE", "", "SCOPE", "queued"},                     // empty key
		{"UNIQUE", "k", "SCOPE", "queued", "SCOPE", "active"}, // twice
	} {
		args := append([]any{"JOBPUSH", "mail", "send", "p"}, bad...)
		if msg := doErr(t, c, args...); !strings.HasPrefix(msg, "ERR") {
			t.Fatalf("%v: %q", bad, msg)
		}
	}
	if got := do(t, c, "DBSIZE"); got != int64(1) {
		t.Fatalf("DBSIZE %v, want 1", got)
	}
	// Scope queued: the key goes when the job is reserved.
	do(t, c, "JOBPUSH", "now", "send", "p", "UNIQUE", "k", "SCOPE", "queued")
	do(t, c, "JOBRESERVE", "w", 10000, "QUEUES", "now")
	if got := do(t, c, "JOBPUSH", "now", "send", "p", "UNIQUE", "k", "ON-DUPLICATE", "reject"); got == id {
		t.Fatal("the key outlived its scope")
	}
	if got := do(t, c, "DBSIZE"); got != int64(3) {
		t.Fatalf("DBSIZE %v, want 3", got)
	}
}
