package commands_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
	"sluice/store"
)

// jobScanAll runs a whole JOBSCAN and returns the ids, in order of return.
func jobScanAll(t *testing.T, c *redis.Client, args ...any) []string {
	t.Helper()
	var out []string
	cursor := "0"
	for calls := 0; ; calls++ {
		v := do(t, c, append([]any{"JOBSCAN", cursor}, args...)...).([]any)
		for _, id := range v[1].([]any) {
			out = append(out, id.(string))
		}
		if cursor = v[0].(string); cursor == "0" {
			return out
		}
		if calls > 1_000_000 {
			t.Fatal("JOBSCAN never ends")
		}
	}
}

// failSome pushes n jobs to queue and fails each with error text.
func failSome(t *testing.T, c *redis.Client, queue, handler, text string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		do(t, c, "JOBPUSH", queue, handler, "p")
		r := reserve(t, c, "w", 60000, "QUEUES", queue)
		do(t, c, "JOBFAIL", r[0]["token"], "ERROR", text, "NORETRY")
		ids = append(ids, r[0]["id"].(string))
	}
	return ids
}

func sortedIDs(ids []string) []string { return slices.Sorted(slices.Values(ids)) }

func TestJobScan(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	failedA := failSome(t, c, "a", "h1", "timeout talking to db", 25)
	failedB := failSome(t, c, "b", "h2", "bad input", 15)
	var queuedA []string
	for range 30 {
		queuedA = append(queuedA, do(t, c, "JOBPUSH", "a", "h1", "p").(string))
	}
	for _, tc := range []struct {
		args []any
		want []string
	}{
		{[]any{"QUEUE", "a", "STATE", "failed", "COUNT", 100}, failedA},
		{[]any{"STATE", "FAILED", "COUNT", 3}, slices.Concat(failedA, failedB)},
		{[]any{"STATE", "failed", "ERROR", "timeout*"}, failedA},
		{[]any{"HANDLER", "h2"}, failedB},
		{[]any{"QUEUE", "a", "STATE", "queued"}, queuedA},
		{[]any{"QUEUE", "a"}, slices.Concat(failedA, queuedA)},
		{[]any{"MATCH", failedB[0]}, failedB[:1]},
		{[]any{"STATE", "succeeded"}, nil},
	} {
		got := sortedIDs(jobScanAll(t, c, tc.args...))
		if want := sortedIDs(tc.want); !slices.Equal(got, want) {
			t.Errorf("JOBSCAN %v: %d ids %v, want %d", tc.args, len(got), got, len(want))
		}
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"JOBSCAN", "0", "STATE", "done"}, "ERR unknown state 'done': one of scheduled, queued,"},
		{[]any{"JOBSCAN", "0", "COUNT", 0}, "ERR COUNT must be at least 1"},
		{[]any{"JOBSCAN", "0", "COUNT", -5}, "ERR COUNT must be at least 1"},
		{[]any{"JOBSCAN", "0", "COUNT", "x"}, "ERR value is not an integer"},
		{[]any{"JOBSCAN", "bogus"}, "ERR invalid cursor"},
		{[]any{"JOBSCAN", "0", "QUEUE"}, "ERR syntax error"},
		{[]any{"JOBSCAN", "0", "COLOUR", "red"}, "ERR syntax error"},
		{[]any{"JOBSCAN", "0", "QUEUE", "  "}, "ERR queue must not be empty"},
	} {
		if got := doErr(t, c, tc.args...); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestJobDelete(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	failed := failSome(t, c, "q", "h", "x", 1)[0]
	queued := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	if got := do(t, c, "JOBDELETE", failed); got != "OK" {
		t.Fatalf("JOBDELETE of a failed job: %v", got)
	}
	isNil(t, c, "JOBGET", failed)
	if got := doErr(t, c, "JOBDELETE", failed); !strings.HasPrefix(got, "NOJOB") {
		t.Fatalf("JOBDELETE twice: %q", got)
	}
	if got := doErr(t, c, "JOBDELETE", queued); !strings.HasPrefix(got, "WRONGSTATE job "+queued+" is queued") {
		t.Fatalf("JOBDELETE of a queued job: %q", got)
	}
	if got := check.MapField(do(t, c, "JOBGET", queued), "state"); got != "queued" {
		t.Fatalf("the refused delete changed the job: %v", got)
	}
	if got := do(t, c, "DBSIZE"); got != int64(1) {
		t.Fatalf("DBSIZE %v after the delete", got)
	}
}

func TestJobBulk(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	failedA := failSome(t, c, "a", "h", "boom", 600) // more than one slice
	failedB := failSome(t, c, "b", "h", "boom", 5)
	for range 10 {
		do(t, c, "JOBPUSH", "a", "h", "p")
	}
	counts := func(v any) string {
		m := asMap(t, v, "changed", "skipped")
		sk := asMap(t, m["skipped"], "wrongstate", "nojob")
		return fmt.Sprintf("changed %v wrongstate %v nojob %v", m["changed"], sk["wrongstate"], sk["nojob"])
	}
	if got := counts(do(t, c, "JOBBULK", "RETRY", "QUEUE", "a")); got != "changed 600 wrongstate 0 nojob 0" {
		t.Fatalf("JOBBULK RETRY QUEUE a: %s", got)
	}
	if n := len(jobScanAll(t, c, "QUEUE", "a", "STATE", "queued")); n != 610 {
		t.Fatalf("%d jobs queued in a after the retry, want 610", n)
	}
	if n := len(jobScanAll(t, c, "STATE", "failed")); n != len(failedB) {
		t.Fatalf("%d failed jobs left, want b's %d", n, len(failedB))
	}
	// Cancel every job of a: the queued ones change; none is skipped.
	if got := counts(do(t, c, "JOBBULK", "CANCEL", "QUEUE", "a")); got != "changed 610 wrongstate 0 nojob 0" {
		t.Fatalf("JOBBULK CANCEL QUEUE a: %s", got)
	}
	// Cancel again: only unfinished jobs are read, and there are none.
	if got := counts(do(t, c, "JOBBULK", "CANCEL", "QUEUE", "a")); got != "changed 0 wrongstate 0 nojob 0" {
		t.Fatalf("JOBBULK CANCEL QUEUE a again: %s", got)
	}
	if got := counts(do(t, c, "JOBBULK", "DELETE", "STATE", "cancelled")); got != "changed 610 wrongstate 0 nojob 0" {
		t.Fatalf("JOBBULK DELETE STATE cancelled: %s", got)
	}
	if got := do(t, c, "DBSIZE"); got != int64(len(failedB)) {
		t.Fatalf("DBSIZE %v, want %d", got, len(failedB))
	}
	isNil(t, c, "JOBGET", failedA[0])
	// JOBBULKIDS on its own: one changed, one gone, one in the wrong state.
	q := do(t, c, "JOBPUSH", "b", "h", "p").(string)
	if got := counts(do(t, c, "JOBBULKIDS", "RETRY", failedB[0], "nope", q)); got != "changed 1 wrongstate 1 nojob 1" {
		t.Fatalf("JOBBULKIDS: %s", got)
	}
	// A bulk cancel takes dead letters out too, as JOBCANCEL does.
	if got := counts(do(t, c, "JOBBULK", "CANCEL", "QUEUE", "b", "ERROR", "boom")); got != "changed 5 wrongstate 0 nojob 0" {
		t.Fatalf("JOBBULK CANCEL QUEUE b ERROR boom: %s", got)
	}
	if n := len(jobScanAll(t, c, "QUEUE", "b", "STATE", "cancelled")); n != len(failedB) {
		t.Fatalf("%d of b's jobs cancelled, want %d", n, len(failedB))
	}
	if got := counts(do(t, c, "JOBBULK", "DELETE", "QUEUE", "b")); got != "changed 5 wrongstate 0 nojob 0" {
		t.Fatalf("JOBBULK DELETE QUEUE b: %s", got)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"JOBBULK", "REVIVE"}, "ERR the action must be RETRY, CANCEL or DELETE"},
		{[]any{"JOBBULK", "RETRY", "STATE", "succeeded"}, "ERR JOBBULK RETRY applies to failed jobs only"},
		{[]any{"JOBBULK", "CANCEL", "STATE", "nosuch"}, "ERR unknown state 'nosuch'"},
		{[]any{"JOBBULK", "CANCEL", "COUNT", "5"}, "ERR syntax error"},
		{[]any{"JOBBULKIDS", "RETRY", " "}, "ERR id must not be empty"},
	} {
		if got := doErr(t, c, tc.args...); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
	// A bulk action cannot run inside a transaction.
	tx := c.TxPipeline()
	tx.Do(ctx, "JOBBULK", "CANCEL")
	if _, err := tx.Exec(ctx); err == nil {
		t.Fatal("JOBBULK inside MULTI ran")
	}
}

// A user limited to some queues cannot reach another's jobs by naming
// QUEUE twice: every QUEUE given is checked, and a filter given twice is
// refused.
func TestJobScanQueueTwice(t *testing.T) {
	ts := start(t)
	admin := ts.client(t, resp2)
	secret := failSome(t, admin, "secret", "h", "boom", 1)
	do(t, admin, "ACL", "SETUSER", "a", "on", ">pw", "~mine", "+@admin", "+jobbulk")
	a := ts.client(t, resp2, named("a", "pw"))
	for _, args := range [][]any{
		{"JOBSCAN", 0, "QUEUE", "mine", "QUEUE", "secret", "STATE", "failed"},
		{"JOBBULK", "DELETE", "QUEUE", "mine", "QUEUE", "secret"},
	} {
		if got := doErr(t, a, args...); !strings.HasPrefix(got, "NOPERM") {
			t.Errorf("%v: %q, want NOPERM", args, got)
		}
	}
	if got := doErr(t, admin, "JOBSCAN", 0, "QUEUE", "mine", "QUEUE", "secret"); got != "ERR QUEUE is given twice" {
		t.Errorf("JOBSCAN with QUEUE twice: %q", got)
	}
	if got := check.MapField(do(t, admin, "JOBGET", secret[0]), "state"); got != "failed" {
		t.Fatalf("the secret job is %v after the refusals", got)
	}
}

// A JOBBULK whose client hangs up stops after the slice in progress
// instead of going on changing jobs for nobody.
func TestJobBulkStopsWhenTheClientLeaves(t *testing.T) {
	ts := start(t)
	const n = 40 * 256 // forty slices
	now := time.Now().UnixMilli()
	for range n {
		if _, err := ts.store.Push(now, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := ts.store.Reserve(now, store.ReserveOptions{Worker: "w", Lease: 600_000, Count: n, Queues: []string{"q"}})
	if err != nil || len(rs) != n {
		t.Fatalf("reserve: %d %v", len(rs), err)
	}
	for _, r := range rs {
		if _, err := ts.store.Fail(now, r.Token, store.FailOptions{NoRetry: true}); err != nil {
			t.Fatal(err)
		}
	}
	failed := func() int64 {
		st, err := ts.store.QueueStats(time.Now().UnixMilli(), "q")
		if err != nil {
			t.Fatal(err)
		}
		return st.Failed
	}
	w := dialWire(t, ts.addr)
	w.send([]string{"JOBBULK", "RETRY", "QUEUE", "q"})
	waitFor(t, "the first slice", func() bool { return failed() < n })
	w.nc.Close()
	// The bulk notices at its next rest; once it has, the count holds.
	var last int64 = -1
	waitFor(t, "the bulk to stop", func() bool {
		now := failed()
		stopped := now == last
		last = now
		time.Sleep(50 * time.Millisecond)
		return stopped
	})
	if last == 0 || last > n-256 {
		t.Fatalf("after the client left, %d of %d jobs are still failed: want the bulk stopped after a slice or a few", last, n)
	}
}

// A JOBBULK's slices count as its own time in its statistics; only its
// rests between them count as time blocked.
func TestJobBulkStatsCountItsWork(t *testing.T) {
	ts := start(t)
	const n = 4 * 256
	now := time.Now().UnixMilli()
	for range n {
		if _, err := ts.store.Push(now, store.PushOptions{Queue: "q", Handler: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	c := ts.client(t, resp2)
	began := time.Now()
	do(t, c, "JOBBULK", "CANCEL", "QUEUE", "q")
	took := time.Since(began)
	found := false
	for _, cs := range ts.srv.CommandStats() {
		if cs.Name == "jobbulk" {
			found = true
			// A quarter of the run is work, the rest rests: count at least a tenth.
			if time.Duration(cs.Usec)*time.Microsecond < took/10 {
				t.Fatalf("JOBBULK's statistics count %d µs of a %v run", cs.Usec, took)
			}
		}
	}
	if !found {
		t.Fatal("no statistics for jobbulk")
	}
}
