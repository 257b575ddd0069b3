package check

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what a failure says.
type recorder struct {
	testing.TB
	msgs   []string
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func TestFieldsNameTheFieldThatDiffers(t *testing.T) {
	r := &recorder{TB: t}
	Fields(r, "JOBGET", map[string]any{"state": "queued", "worker": nil, "attempt": int64(1)},
		map[string]any{"state": "reserved", "worker": nil, "attempt": int64(1)})
	if !r.failed || len(r.msgs) != 1 {
		t.Fatalf("want one failure, got %q", r.msgs)
	}
	var changed []string // the diff's - and + lines
	for _, l := range strings.Split(r.msgs[0], "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "-") || strings.HasPrefix(l, "+") {
			changed = append(changed, l)
		}
	}
	if len(changed) != 2 || !strings.Contains(changed[0], `"state"`) || !strings.Contains(changed[1], `"state"`) {
		t.Errorf("the diff should mark state alone:\n%s", r.msgs[0])
	}
	r = &recorder{TB: t}
	Fields(r, "JOBGET", map[string]any{"state": "queued", "extra": 1}, map[string]any{"state": "queued"})
	if r.failed {
		t.Errorf("fields not asked for were compared: %q", r.msgs)
	}
}

func TestField(t *testing.T) {
	r := &recorder{TB: t}
	if Field(r, "Attempt", 2, 1) || !strings.HasPrefix(r.msgs[0], "Attempt = 2, want 1") {
		t.Errorf("Field: %q", r.msgs)
	}
	if r := (&recorder{TB: t}); !Field(r, "Attempt", 1, 1) || r.failed {
		t.Errorf("Field of equal values failed: %q", r.msgs)
	}
}

func TestMapField(t *testing.T) {
	flat := []any{"id", "a", "state", "queued"}
	resp3 := map[any]any{"id": "a", "state": "queued"}
	for _, v := range []any{flat, resp3} {
		if got := MapField(v, "state"); got != "queued" {
			t.Fatalf("MapField(%v, state) = %v", v, got)
		}
		if got := MapField(v, "nope"); got != nil {
			t.Fatalf("MapField(%v, nope) = %v", v, got)
		}
	}
	if got := MapField("text", "state"); got != nil {
		t.Fatalf("MapField of no map = %v", got)
	}
}
