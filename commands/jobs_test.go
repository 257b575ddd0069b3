package commands_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/commands"
	"sluice/internal/check"
)

func TestJobLifecycle(t *testing.T) { protocols(t, testJobLifecycle) }

func testJobLifecycle(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	before := time.Now().UnixMilli()
	id := do(t, c, "JOBPUSH", "emails", "send", `{"to":"a@b"}`, "PRIORITY", 5, "MAXATTEMPTS", 3).(string)
	if id == "" {
		t.Fatal("empty id")
	}
	j := asMap(t, do(t, c, "JOBGET", id), jobFields...)
	if j["state"] != "queued" || j["payload"] != `{"to":"a@b"}` || j["priority"] != int64(5) ||
		j["max_attempts"] != int64(3) || j["attempt"] != int64(0) || j["queue"] != "emails" || j["handler"] != "send" {
		t.Fatalf("JOBGET %v", j)
	}
	for _, f := range []string{"concurrency_key", "rate_limit_key", "worker", "expires_at", "last_error", "blocked_by"} {
		if j[f] != nil {
			t.Fatalf("%s = %v, want null", f, j[f])
		}
	}
	if ca := j["created_at"].(int64); ca < before || ca > time.Now().UnixMilli() {
		t.Fatalf("created_at %d", ca)
	}

	rs := reserve(t, c, "w1", 30000, "QUEUES", "emails")
	check.Len(t, "reserve", rs, 1)
	check.Fields(t, "reserve", rs[0], map[string]any{"id": id, "attempt": int64(0), "payload": `{"to":"a@b"}`})
	tok := rs[0]["token"].(string)
	if exp := rs[0]["expires_at"].(int64); exp < before+30000 {
		t.Fatalf("expires_at %d", exp)
	}
	j = asMap(t, do(t, c, "JOBGET", id), jobFields...)
	check.Fields(t, "after reserve", j, map[string]any{"state": "reserved", "worker": "w1"})
	if got := do(t, c, "JOBSTART", tok); got != int64(1) {
		t.Fatalf("JOBSTART = %v", got)
	}
	if got := doErr(t, c, "JOBSTART", tok); !strings.HasPrefix(got, "WRONGSTATE") {
		t.Fatalf("second JOBSTART: %s", got)
	}
	if exp := do(t, c, "JOBTOUCH", tok, 60000).(int64); exp < before+60000 {
		t.Fatalf("JOBTOUCH = %d", exp)
	}
	if got := do(t, c, "JOBFAIL", tok, "ERROR", "smtp down", "RETRYIN", 0); got != "retry_pending" {
		t.Fatalf("JOBFAIL = %v", got)
	}
	if got := doErr(t, c, "JOBACK", tok); !strings.HasPrefix(got, "NORESERVATION") {
		t.Fatalf("ack of a finished token: %s", got)
	}
	// RETRYIN 0 makes it due at once.
	rs = reserve(t, c, "w2", 30000, "QUEUES", "emails")
	check.Len(t, "retry reserve", rs, 1)
	check.Fields(t, "retry reserve", rs[0], map[string]any{"attempt": int64(1)})
	tok = rs[0]["token"].(string)
	if got := do(t, c, "JOBACK", tok); got != "OK" {
		t.Fatalf("JOBACK = %v", got)
	}
	j = asMap(t, do(t, c, "JOBGET", id), jobFields...)
	check.Fields(t, "after ack", j, map[string]any{"state": "succeeded", "attempt": int64(2), "last_error": "smtp down", "worker": nil})
	if got := do(t, c, "JOBCANCEL", id); got != int64(0) {
		t.Fatalf("cancel of a terminal job = %v", got)
	}
}

func TestJobFailRetryCancelRelease(t *testing.T) { protocols(t, testJobFailRetryCancelRelease) }

func testJobFailRetryCancelRelease(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	id := do(t, c, "JOBPUSH", "q", "h", "p", "ID", "  job-1  ").(string)
	if id != "job-1" {
		t.Fatalf("ID not trimmed: %q", id)
	}
	if got := doErr(t, c, "JOBPUSH", "q", "h", "p", "ID", "job-1"); !strings.HasPrefix(got, "DUPJOB") {
		t.Fatalf("dup: %s", got)
	}
	tok := reserve(t, c, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	if got := do(t, c, "JOBFAIL", tok, "NORETRY"); got != "failed" {
		t.Fatalf("JOBFAIL NORETRY = %v", got)
	}
	if got := do(t, c, "JOBRETRY", id); got != "OK" {
		t.Fatalf("JOBRETRY = %v", got)
	}
	if got := do(t, c, "QUEUELEN", "q"); got != int64(1) {
		t.Fatalf("QUEUELEN after retry = %v", got)
	}
	tok = reserve(t, c, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	if got := do(t, c, "JOBRELEASE", tok); got != "OK" {
		t.Fatalf("JOBRELEASE = %v", got)
	}
	tok = reserve(t, c, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	if got := do(t, c, "JOBRELEASE", tok, "DELAY", 60000); got != "OK" {
		t.Fatalf("JOBRELEASE DELAY = %v", got)
	}
	j := asMap(t, do(t, c, "JOBGET", id), jobFields...)
	if j["state"] != "scheduled" {
		t.Fatalf("after delayed release %v", j)
	}
	if got := do(t, c, "JOBCANCEL", id); got != int64(1) {
		t.Fatalf("JOBCANCEL = %v", got)
	}
	if got := doErr(t, c, "JOBRETRY", id); !strings.HasPrefix(got, "WRONGSTATE") {
		t.Fatalf("retry of cancelled: %s", got)
	}
	if got := doErr(t, c, "JOBCANCEL", "nope"); !strings.HasPrefix(got, "NOJOB") {
		t.Fatalf("cancel unknown: %s", got)
	}
	isNil(t, c, "JOBGET", "nope")
	if got := doErr(t, c, "JOBACK", "no-such-token"); !strings.HasPrefix(got, "NORESERVATION") {
		t.Fatalf("ack unknown: %s", got)
	}
}

func TestJobScheduling(t *testing.T) { protocols(t, testJobScheduling) }

func testJobScheduling(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	id := do(t, c, "JOBPUSH", "q", "h", "p", "DELAY", 150).(string)
	at := time.Now().Add(time.Hour).UnixMilli()
	id2 := do(t, c, "JOBPUSH", "q", "h", "p", "AT", at).(string)
	if s := asMap(t, do(t, c, "JOBGET", id), jobFields...)["state"]; s != "scheduled" {
		t.Fatalf("DELAY job %v", s)
	}
	if r := asMap(t, do(t, c, "JOBGET", id2), jobFields...)["run_at"]; r != at {
		t.Fatalf("AT run_at %v want %d", r, at)
	}
	isNil(t, c, "JOBRESERVE", "w", 1000, "QUEUES", "q")
	rs := reserve(t, c, "w", 1000, "BLOCK", 5000, "QUEUES", "q")
	check.Len(t, "the scheduled job, when due", rs, 1)
	check.Fields(t, "the scheduled job, when due", rs[0], map[string]any{"id": id})
}

func TestJobReserveOptions(t *testing.T) { protocols(t, testJobReserveOptions) }

func testJobReserveOptions(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	do(t, c, "JOBPUSH", "low", "a", "1")
	do(t, c, "JOBPUSH", "high", "b", "2", "PRIORITY", 1)
	do(t, c, "JOBPUSH", "high", "a", "3", "PRIORITY", 9)
	do(t, c, "JOBPUSH", "high", "c", "4", "PRIORITY", 20)
	// Handler filter, priority order, queue preference, COUNT.
	rs := reserve(t, c, "w", 30000, "COUNT", 3, "HANDLERS", 2, "a", "b", "QUEUES", "high", "low")
	var got []string
	for _, r := range rs {
		got = append(got, r["payload"].(string))
	}
	if strings.Join(got, ",") != "3,2,1" {
		t.Fatalf("reserved %v, want 3,2,1", got)
	}
	rs = reserve(t, c, "w", 30000, "QUEUES", "high")
	check.Len(t, "the rest", rs, 1)
	check.Fields(t, "the rest", rs[0], map[string]any{"payload": "4"})
}

func TestJobArgumentErrors(t *testing.T) {
	ts := start(t, func(s *setup) { s.maxPayload = 100 })
	c := ts.client(t)
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"JOBPUSH", "q", "h"}, "ERR wrong number of arguments for 'jobpush' command"},
		{[]any{"JOBPUSH", "q", "h", "p", "PRIORITY"}, "ERR syntax error"},
		{[]any{"JOBPUSH", "q", "h", "p", "PRIORITY", 1, "PRIORITY", 2}, "ERR syntax error"},
		{[]any{"JOBPUSH", "q", "h", "p", "COLOR", "red"}, "ERR syntax error"},
		{[]any{"JOBPUSH", "q", "h", "p", "DELAY", 1, "AT", 5}, "ERR syntax error"},
		{[]any{"JOBPUSH", "q", "h", "p", "PRIORITY", "high"}, "ERR value is not an integer or out of range"},
		{[]any{"JOBPUSH", "q", "h", "p", "PRIORITY", "99999999999999999999"}, "ERR value is not an integer or out of range"},
		{[]any{"JOBPUSH", "q", "h", "p", "MAXATTEMPTS", 0}, "ERR value is out of range, must be positive"},
		{[]any{"JOBPUSH", "q", "h", "p", "BACKOFF", 0}, "ERR value is out of range, must be positive"},
		{[]any{"JOBPUSH", "q", "h", "p", "DELAY", -1}, "ERR value is out of range, must not be negative"},
		{[]any{"JOBPUSH", "  ", "h", "p"}, "ERR queue must not be empty"},
		{[]any{"JOBPUSH", strings.Repeat("q", 1025), "h", "p"}, "ERR queue is longer than 1024 bytes"},
		{[]any{"JOBPUSH", "q", "h", "p", "CONCURRENCY", ""}, "ERR concurrency key must not be empty"},
		{[]any{"JOBPUSH", "q", "h", strings.Repeat("x", 101)}, "ERR payload is larger than max-payload (100 bytes)"},
		{[]any{"JOBRESERVE", "w", 1000, "q", "QUEUES"}, "ERR syntax error"},
		{[]any{"JOBRESERVE", "w", 1000, "COUNT", 2, "x"}, "ERR syntax error"},
		{[]any{"JOBRESERVE", "w", 0, "QUEUES", "q"}, "ERR value is out of range, must be positive"},
		{[]any{"JOBRESERVE", "w", 1000, "BLOCK", -1, "QUEUES", "q"}, "ERR timeout is negative"},
		{[]any{"JOBRESERVE", "w", 1000, "COUNT", 0, "QUEUES", "q"}, "ERR value is out of range, must be positive"},
		{[]any{"JOBRESERVE", "w", 1000, "HANDLERS", 3, "a", "QUEUES", "q"}, "ERR syntax error"},
		{[]any{"JOBRESERVE", "w", 1000, "BLOCK", 1, "BLOCK", 1, "QUEUES", "q"}, "ERR syntax error"},
		{[]any{"JOBFAIL", "t", "RETRYIN", 5, "NORETRY"}, "ERR syntax error"},
		{[]any{"JOBFAIL", "t", "ERROR"}, "ERR syntax error"},
		{[]any{"JOBRELEASE", "t", "LATER", 5}, "ERR syntax error"},
		{[]any{"JOBTOUCH", "t", "x"}, "ERR value is not an integer or out of range"},
	} {
		if got := doErr(t, c, tc.args...); got != tc.want {
			t.Errorf("%.60v: got %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := do(t, c, "DBSIZE"); got != int64(0) {
		t.Fatalf("a refused command changed something: DBSIZE %v", got)
	}
}

// TestPipelinedPushesRunAsOne: a pipeline of JOBPUSH runs as one batch
// (Store.PushMany); each push still gets its own reply or error, in order,
// and a worker blocked on one of its queues is woken.
func TestPipelinedPushesRunAsOne(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	w := ts.client(t)
	woke := make(chan []map[string]any, 1)
	go func() { woke <- reserve(t, w, "w1", 30000, "BLOCK", 5000, "QUEUES", "b") }()
	waitFor(t, "the worker to block", func() bool { return ts.srv.Stats().Blocked == 1 })

	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "JOBPUSH", "a", "h", "p0", "ID", "x1")
		p.Do(ctx, "JOBPUSH", "a", "h", "p1", "PRIORITY", "high") // not an integer
		p.Do(ctx, "JOBPUSH", "a", "h", "p2", "ID", "x1")         // duplicate within the batch
		p.Do(ctx, "JOBPUSH", "b", "h", "p3")
		p.Do(ctx, "JOBPUSH", "a", "h", "p4", "DELAY", 60000)
		p.Do(ctx, "JOBPUSH", "a", "h", "p5", "COLOUR", "red")
		p.Do(ctx, "JOBPUSH", "a", "h", "p6")
		return nil
	})
	want := []string{"x1", "ERR value is not an integer or out of range", "DUPJOB", "", "", "ERR syntax error", ""}
	ids := make([]string, len(cmds))
	for i, cmd := range cmds {
		v, err := cmd.(*redis.Cmd).Text()
		switch {
		case want[i] == "" && (err != nil || v == ""):
			t.Fatalf("push %d: %q, %v", i, v, err)
		case want[i] != "" && want[i] != v && (err == nil || !strings.HasPrefix(err.Error(), want[i])):
			t.Fatalf("push %d: %q, %v; want %q", i, v, err, want[i])
		}
		ids[i] = v
	}
	for i, payload := range map[int]string{0: "p0", 3: "p3", 4: "p4", 6: "p6"} {
		j := asMap(t, do(t, c, "JOBGET", ids[i]), jobFields...)
		if j["payload"] != payload {
			t.Fatalf("push %d: JOBGET %v", i, j)
		}
	}
	if n := do(t, c, "QUEUELEN", "a"); n != int64(2) {
		t.Fatalf("QUEUELEN a = %v, want 2 (x1 and p6; p4 is scheduled)", n)
	}
	rs := <-woke
	check.Len(t, "the blocked worker's reservation", rs, 1)
	check.Fields(t, "the blocked worker's reservation", rs[0], map[string]any{"payload": "p3"})
}

// One JOBRESERVE names at most max-reserve-queues queues and as many
// handlers; more is refused before anything is registered, with the limit
// in the error. Repeats count: the limit bounds the command's size.
func TestReserveNamesAtMostTheLimit(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	args := func(kw string, n int) []any {
		a := []any{"JOBRESERVE", "w", 1000, "BLOCK", 1}
		if kw == "HANDLERS" {
			a = append(a, "HANDLERS", n)
			for i := range n {
				a = append(a, "h"+strconv.Itoa(i))
			}
			return append(a, "QUEUES", "q")
		}
		a = append(a, "QUEUES")
		for i := range n {
			a = append(a, "q"+strconv.Itoa(i%7)) // repeats still count
		}
		return a
	}
	for _, kw := range []string{"QUEUES", "HANDLERS"} {
		got := doErr(t, c, args(kw, commands.DefaultMaxReserveQueues+1)...)
		if !strings.HasPrefix(got, "ERR") || !strings.Contains(got, "1000") || !strings.Contains(got, "max-reserve-queues") {
			t.Fatalf("%s over the limit: %q", kw, got)
		}
		if n := ts.waiters.Waiting(); n != 0 {
			t.Fatalf("%d waiters registered after a refused reserve", n)
		}
	}
	do(t, c, "JOBPUSH", "q3", "h0", "x")
	a := args("QUEUES", commands.DefaultMaxReserveQueues)
	if rs := reserve(t, c, a[1:]...); len(rs) != 1 {
		t.Fatalf("reserve at the limit: %v", rs)
	}
}
