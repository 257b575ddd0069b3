package commands_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

func TestFairGroups(t *testing.T) { protocols(t, testFairGroups) }

// testFairGroups: GROUP rotates reservations between groups, WEIGHT
// policies weigh them and show with the others, JOBGET shows the group,
// bad input is refused with a clear error.
func testFairGroups(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	for i := 0; i < 30; i++ {
		do(t, c, "JOBPUSH", "q", "h", "a", "GROUP", "A")
	}
	for i := 0; i < 30; i++ {
		do(t, c, "JOBPUSH", "q", "h", "b", "group", "B")
	}
	if got := do(t, c, "POLICYSET", "WEIGHT", "B", 2); got != "OK" {
		t.Fatal(got)
	}
	rs := reserve(t, c, "w", 30000, "COUNT", 9, "QUEUES", "q")
	n := map[string]int{}
	for _, r := range rs {
		n[r["payload"].(string)]++
	}
	if n["a"] != 3 || n["b"] != 6 {
		t.Fatalf("A (weight 1) had %d and B (weight 2) %d of 9 reservations", n["a"], n["b"])
	}
	j := asMap(t, do(t, c, "JOBGET", rs[0]["id"]), jobFields...)
	if j["group"] != "A" && j["group"] != "B" {
		t.Fatalf("JOBGET group %v", j["group"])
	}
	p := asMap(t, do(t, c, "POLICYGET", "WEIGHT", "B"), policyFields...)
	check.Fields(t, "POLICYGET WEIGHT", p, map[string]any{"kind": "weight", "key": "B", "limit": int64(2)})
	list := do(t, c, "POLICYLIST").([]any)
	if len(list) != 1 || check.MapField(list[0], "kind") != "weight" {
		t.Fatalf("POLICYLIST %v", list)
	}
	for _, bad := range [][]any{
		{"POLICYSET", "WEIGHT", "B", 0},
		{"POLICYSET", "WEIGHT", "B", 1001},
		{"POLICYSET", "WEIGHT", "B", "x"},
		{"POLICYSET", "WEIGHT", "B"},
		{"JOBPUSH", "q", "h", "p", "GROUP"},
		{"JOBPUSH", "q", "h", "p", "GROUP", strings.Repeat("g", 1025)},
		{"JOBPUSH", "q", "h", "p", "GROUP", "A", "GROUP", "B"},
		{"JOBRESERVE", "w", 1000, "ROUNDROBIN", "ROUNDROBIN", "QUEUES", "q"},
	} {
		if e := doErr(t, c, bad...); !strings.HasPrefix(e, "ERR") {
			t.Fatalf("%v: %q", bad, e)
		}
	}
	if got := do(t, c, "POLICYGET", "WEIGHT", "B"); check.MapField(got, "limit") != int64(2) {
		t.Fatalf("a refused POLICYSET changed the weight: %v", got)
	}
	if got := do(t, c, "POLICYDEL", "WEIGHT", "B"); got != int64(1) {
		t.Fatal(got)
	}
	if got := do(t, c, "POLICYDEL", "WEIGHT", "B"); got != int64(0) {
		t.Fatal(got)
	}
	isNil(t, c, "POLICYGET", "WEIGHT", "B")
}

// TestRoundRobinReserve: ROUNDROBIN starts after the queue that last gave
// the worker a job.
func TestRoundRobinReserve(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	for _, q := range []string{"a", "b", "c"} {
		for i := 0; i < 3; i++ {
			do(t, c, "JOBPUSH", q, "h", "p")
		}
	}
	got := ""
	for i := 0; i < 4; i++ {
		rs := reserve(t, c, "w", 30000, "ROUNDROBIN", "QUEUES", "a", "b", "c")
		got += rs[0]["queue"].(string)
	}
	rs := reserve(t, c, "w", 30000, "COUNT", 3, "roundrobin", "QUEUES", "a", "b", "c")
	for _, r := range rs {
		got += r["queue"].(string)
	}
	if got != "abcabca" {
		t.Fatalf("round-robin reserves took from %q, want abcabca", got)
	}
}
