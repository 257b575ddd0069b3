package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Dependencies and batches resolve alike on every node of a group: the
// waiters a failure cancels, those an ack queues and a batch's callback,
// with the same digests.
func TestGroupAppliesDependenciesAndBatches(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l, lc := leaderClient(t, nodes)
	for _, cmd := range [][]any{
		{"JOBPUSH", "a", "h", "1", "ID", "ok"},
		{"JOBPUSH", "a", "h", "2", "ID", "bad"},
		{"JOBPUSH", "b", "h", "3", "ID", "next", "AFTER", 1, "ok"},
		{"JOBPUSH", "b", "h", "4", "ID", "doomed", "AFTER", 2, "ok", "bad"},
		{"JOBPUSH", "c", "h", "5", "ID", "heir", "AFTER", 1, "doomed"},
		{"BATCHOPEN", "all", "CALLBACK", "cb", "h", "done", "ON", "always"},
		{"JOBPUSH", "d", "h", "6", "ID", "m1", "BATCH", "all"},
		{"JOBPUSH", "d", "h", "7", "ID", "m2", "BATCH", "all"},
		{"BATCHCLOSE", "all"},
	} {
		if err := lc.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	for _, q := range []string{"a", "a", "d", "d"} {
		res, err := lc.Do(ctx, "JOBRESERVE", "w", "60000", "QUEUES", q).Slice()
		if err != nil || len(res) != 1 {
			t.Fatalf("reserve: %v %v", res, err)
		}
		token, id := fmt.Sprint(res[0].([]any)[1]), fmt.Sprint(res[0].([]any)[3])
		if id == "bad" {
			err = lc.Do(ctx, "JOBFAIL", token, "NORETRY").Err()
		} else {
			err = lc.Do(ctx, "JOBACK", token).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	digests := everyNode(t, nodes, l, "DEBUG", "DIGEST")
	heirs, batches := everyNode(t, nodes, l, "JOBGET", "heir"), everyNode(t, nodes, l, "BATCHGET", "all")
	if !strings.Contains(heirs[l], "cancelled") || !strings.Contains(batches[l], "done") {
		t.Fatalf("the leader shows %s and %s", heirs[l], batches[l])
	}
	for i := range nodes {
		if digests[i] != digests[l] || heirs[i] != heirs[l] || batches[i] != batches[l] {
			t.Fatalf("nodes differ:\n%v\n%v\n%v", digests, strings.Join(heirs, "\n"), strings.Join(batches, "\n"))
		}
	}
}
