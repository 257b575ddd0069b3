package commands_test

import (
	"strings"
	"testing"

	"sluice/internal/check"
)

var batchFields = []string{"id", "state", "total", "succeeded", "failed", "cancelled", "expired", "pending",
	"callback", "callback_state", "on", "done_at"}

// BATCHOPEN, JOBPUSH ... BATCH, BATCHCLOSE and BATCHGET: the callback is
// pushed once the closed batch's jobs all ended; bad input is refused.
func TestBatches(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	if got := do(t, c, "BATCHOPEN", "import", "CALLBACK", "reports", "summarize", "import done", "ON", "always"); got != "OK" {
		t.Fatalf("BATCHOPEN: %v", got)
	}
	for _, q := range []string{"rows", "rows", "images"} {
		do(t, c, "JOBPUSH", q, "load", "x", "BATCH", "import")
	}
	b := asMap(t, do(t, c, "BATCHGET", "import"), batchFields...)
	check.Fields(t, "the open batch", b, map[string]any{"state": "open", "total": int64(3), "pending": int64(3),
		"callback": nil, "on": "always"})
	for _, bad := range [][]any{
		{"BATCHOPEN", "import"},                           // exists
		{"BATCHOPEN", "x", "ON", "always"},                // ON without CALLBACK
		{"BATCHOPEN", "x", "CALLBACK", "q", "h"},          // short
		{"BATCHOPEN", "x", "ON", "sometimes"},             // unknown
		{"JOBPUSH", "rows", "load", "x", "BATCH", "nope"}, // no such batch
		{"BATCHCLOSE", "nope"},
	} {
		if msg := doErr(t, c, bad...); !strings.HasPrefix(msg, "ERR") && !strings.HasPrefix(msg, "NOBATCH") {
			t.Fatalf("%v: %q", bad, msg)
		}
	}
	do(t, c, "BATCHCLOSE", "import")
	for i := 0; i < 3; i++ {
		r := reserve(t, c, "w", 10000, "QUEUES", "rows", "images")
		if i == 2 {
			do(t, c, "JOBFAIL", r[0]["token"], "NORETRY")
		} else {
			do(t, c, "JOBACK", r[0]["token"])
		}
	}
	b = asMap(t, do(t, c, "BATCHGET", "import"), batchFields...)
	check.Fields(t, "the done batch", b, map[string]any{"state": "done", "succeeded": int64(2), "failed": int64(1),
		"pending": int64(0), "callback_state": "queued"})
	r := reserve(t, c, "w", 10000, "QUEUES", "reports")
	if r[0]["id"] != b["callback"] || r[0]["payload"] != "import done" {
		t.Fatalf("callback %v, reserved %v", b["callback"], r[0])
	}
	if msg := doErr(t, c, "JOBPUSH", "rows", "load", "x", "BATCH", "import"); !strings.HasPrefix(msg, "NOBATCH") {
		t.Fatalf("push to a done batch: %q", msg)
	}
	if !strings.Contains(do(t, c, "INFO", "stats").(string), "open_batches:0") {
		t.Fatal("INFO stats does not show open_batches:0")
	}
}
