package commands_test

import (
	"strings"
	"testing"

	"sluice/internal/check"
)

// JOBPUSH ... AFTER n id ... [ANYWAY]: the job waits, JOBGET names what
// for, the dependencies' acks queue it; a failed dependency cancels its
// waiters unless ANYWAY; bad lists are refused and change nothing.
func TestJobPushAfter(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	a := do(t, c, "JOBPUSH", "build", "compile", "a").(string)
	b := do(t, c, "JOBPUSH", "build", "compile", "b").(string)
	d := do(t, c, "JOBPUSH", "deploy", "ship", "d", "AFTER", 2, a, b).(string)
	e := do(t, c, "JOBPUSH", "deploy", "notify", "e", "AFTER", 1, d).(string)
	f := do(t, c, "JOBPUSH", "deploy", "cleanup", "f", "AFTER", 1, d, "ANYWAY").(string)
	j := asMap(t, do(t, c, "JOBGET", d), append(jobFields, "after")...)
	check.Fields(t, "the waiting job", j, map[string]any{"state": "waiting", "blocked_by": "after:" + a,
		"after": []any{a, b}})
	for _, bad := range [][]any{
		{"AFTER", 1, "nope"},           // no such job
		{"AFTER", 0},                   // no ids
		{"AFTER", 65, a},               // too many
		{"AFTER", 2, a},                // fewer ids than the count
		{"AFTER", 2, a, a},             // twice
		{"ANYWAY"},                     // without AFTER
		{"ID", "me", "AFTER", 1, "me"}, // itself
	} {
		args := append([]any{"JOBPUSH", "deploy", "ship", "p"}, bad...)
		if msg := doErr(t, c, args...); !strings.HasPrefix(msg, "ERR") {
			t.Fatalf("%v: %q", bad, msg)
		}
	}
	if got := do(t, c, "DBSIZE"); got != int64(5) {
		t.Fatalf("DBSIZE %v, want 5", got)
	}
	if !strings.Contains(do(t, c, "INFO", "stats").(string), "waiting_jobs:3") {
		t.Fatal("INFO stats does not count 3 waiting jobs")
	}
	for i := 0; i < 2; i++ {
		r := reserve(t, c, "w", 10000, "QUEUES", "build", "deploy")
		do(t, c, "JOBACK", r[0]["token"])
	}
	j = asMap(t, do(t, c, "JOBGET", d), jobFields...)
	check.Fields(t, "the job after its dependencies", j, map[string]any{"state": "queued", "blocked_by": nil})
	r := reserve(t, c, "w", 10000, "QUEUES", "deploy")
	if r[0]["id"] != d {
		t.Fatalf("reserved %v, want %s", r[0]["id"], d)
	}
	do(t, c, "JOBFAIL", r[0]["token"], "NORETRY")
	j = asMap(t, do(t, c, "JOBGET", e), jobFields...)
	check.Fields(t, "the waiter of a failed job", j, map[string]any{"state": "cancelled",
		"last_error": "dependency " + d + " failed"})
	j = asMap(t, do(t, c, "JOBGET", f), jobFields...)
	check.Fields(t, "the ANYWAY waiter", j, map[string]any{"state": "queued"})
	if msg := doErr(t, c, "JOBPUSH", "deploy", "ship", "p", "AFTER", 1, d); msg != "DEPFAILED dependency "+d+" is failed (push with ANYWAY to run anyway)" {
		t.Fatalf("push after a failed job: %q", msg)
	}
}
