package commands_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
	"sluice/store"
)

func TestResultsAndProgress(t *testing.T) { protocols(t, testResultsAndProgress) }

// testResultsAndProgress: JOBPROGRESS and JOBACK ... RESULT are kept and
// shown by JOBGET's last two fields; bad input answers an error and
// changes nothing.
func testResultsAndProgress(t *testing.T, proto func(*redis.Options)) {
	ts := start(t, func(s *setup) { s.maxPayload = 16 })
	c := ts.client(t, proto)
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	j := asMap(t, do(t, c, "JOBGET", id), jobFields...)
	if j["result"] != nil || j["progress"] != nil {
		t.Fatalf("a new job shows result %v, progress %v", j["result"], j["progress"])
	}
	tok := reserve(t, c, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	exp := asMap(t, do(t, c, "JOBGET", id), jobFields...)["expires_at"]
	check.Equal(t, "JOBPROGRESS", do(t, c, "JOBPROGRESS", tok, "40%"), any("OK"))
	for _, bad := range []struct {
		args []any
		want string
	}{
		{[]any{"JOBPROGRESS", "q.nope", "1"}, "NORESERVATION"},
		{[]any{"JOBPROGRESS", tok, strings.Repeat("x", 1025)}, "ERR progress is larger than 1024 bytes"},
		{[]any{"JOBPROGRESS", tok}, "ERR wrong number of arguments"},
		{[]any{"JOBACK", tok, "RESULT", strings.Repeat("x", 17)}, "ERR result is larger than max-payload (16 bytes)"},
		{[]any{"JOBACK", tok, "RESULT"}, "ERR syntax error"},
		{[]any{"JOBACK", tok, "RESULT", "a", "RESULT", "b"}, "ERR syntax error"},
		{[]any{"JOBACK", tok, "OUTPUT", "a"}, "ERR syntax error"},
	} {
		if got := doErr(t, c, bad.args...); !strings.HasPrefix(got, bad.want) {
			t.Fatalf("%v: %s, want %s", bad.args, got, bad.want)
		}
	}
	j = asMap(t, do(t, c, "JOBGET", id), jobFields...)
	check.Fields(t, "after progress and refusals", j, map[string]any{
		"state": "reserved", "progress": "40%", "result": nil, "expires_at": exp})
	check.Equal(t, "JOBACK RESULT", do(t, c, "JOBACK", tok, "result", "sixteen bytes ok"), any("OK"))
	j = asMap(t, do(t, c, "JOBGET", id), jobFields...)
	check.Fields(t, "after ack", j, map[string]any{"state": "succeeded", "progress": "40%", "result": "sixteen bytes ok"})
	if got := doErr(t, c, "JOBPROGRESS", tok, "1"); !strings.HasPrefix(got, "NORESERVATION") {
		t.Fatalf("progress after the ack: %s", got)
	}
	// An empty result is a result.
	id2 := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	tok2 := reserve(t, c, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	do(t, c, "JOBACK", tok2, "RESULT", "")
	check.Equal(t, "empty result", asMap(t, do(t, c, "JOBGET", id2), jobFields...)["result"], any(""))
}

func TestJobWait(t *testing.T) { protocols(t, testJobWait) }

var waitFields = []string{"id", "state", "result", "last_error"}

// testJobWait: JOBWAIT answers at once for a terminal job, NOJOB for an
// unknown one, null on timeout or inside MULTI, and wakes blocked clients
// on other connections when the job ends.
func testJobWait(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	if got := doErr(t, c, "JOBWAIT", "nope"); !strings.HasPrefix(got, "NOJOB") {
		t.Fatalf("unknown id: %s", got)
	}
	for _, bad := range [][]any{{"JOBWAIT", "x", -1}, {"JOBWAIT", "x", "soon"}, {"JOBWAIT", "x", 1, 2}, {"JOBWAIT", ""}} {
		if got := doErr(t, c, bad...); !strings.HasPrefix(got, "ERR") {
			t.Fatalf("%v: %s", bad, got)
		}
	}
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	start := time.Now()
	isNil(t, c, "JOBWAIT", id, 50)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("JOBWAIT 50 answered after %v", d)
	}
	tx := c.TxPipeline()
	tx.Do(ctx, "JOBWAIT", id, 0)
	if cmds, err := tx.Exec(ctx); err == nil || len(cmds) != 1 || cmds[0].Err() != redis.Nil {
		t.Fatalf("JOBWAIT inside MULTI: %v %v", cmds, err)
	}

	// Three clients wait; the job ends on a fourth connection.
	type answer struct {
		v   any
		err error
	}
	answers := make(chan answer, 3)
	for i := 0; i < 3; i++ {
		w := ts.client(t, proto)
		go func() {
			v, err := w.Do(ctx, "JOBWAIT", id).Result()
			answers <- answer{v, err}
		}()
	}
	jw := ts.node.JobWaits()
	waitFor(t, "3 waiters", func() bool { return jw.Waiting() == 3 })
	wakes := jw.Wakeups()
	time.Sleep(100 * time.Millisecond) // nothing ends: the parked clients must not wake
	if n := jw.Wakeups() - wakes; n != 0 {
		t.Fatalf("%d wake-ups while nothing ended", n)
	}
	info := do(t, c, "INFO", "clients").(string)
	if !strings.Contains(info, "jobwait_clients:3") || !strings.Contains(info, "blocked_clients:3") {
		t.Fatalf("INFO clients:\n%s", info)
	}
	tok := reserve(t, c, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	do(t, c, "JOBFAIL", tok, "ERROR", "boom")
	for i := 0; i < 3; i++ {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		check.Fields(t, "JOBWAIT", asMap(t, a.v, waitFields...),
			map[string]any{"id": id, "state": "failed", "result": nil, "last_error": "boom"})
	}
	if n := jw.Waiting(); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
	// Terminal already: at once, with the result.
	id2 := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	tok2 := reserve(t, c, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	do(t, c, "JOBACK", tok2, "RESULT", "42")
	check.Fields(t, "JOBWAIT done", asMap(t, do(t, c, "JOBWAIT", id2, 1), waitFields...),
		map[string]any{"id": id2, "state": "succeeded", "result": "42", "last_error": nil})
}

// TestJobWaitForgetsAClientThatLeaves: a waiting client that hangs up is
// unlisted at once.
func TestJobWaitForgetsAClientThatLeaves(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	w := ts.client(t)
	go w.Do(ctx, "JOBWAIT", id)
	jw := ts.node.JobWaits()
	waitFor(t, "1 waiter", func() bool { return jw.Waiting() == 1 })
	w.Close()
	waitFor(t, "no waiter", func() bool { return jw.Waiting() == 0 })
}

// TestResultsCommandsRights: a producer may wait for its job's result, a
// worker may report progress and ack with a result.
func TestResultsCommandsRights(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "p", "on", ">pw", "~*", "+@producer")
	do(t, admin, "ACL", "SETUSER", "w", "on", ">pw", "~*", "+@worker")
	p := ts.client(t, func(o *redis.Options) { o.Username, o.Password = "p", "pw" })
	w := ts.client(t, func(o *redis.Options) { o.Username, o.Password = "w", "pw" })
	id := do(t, p, "JOBPUSH", "q", "h", "x").(string)
	tok := reserve(t, w, "w", 30000, "QUEUES", "q")[0]["token"].(string)
	do(t, w, "JOBPROGRESS", tok, "1/2")
	do(t, w, "JOBACK", tok, "RESULT", "ok")
	check.Equal(t, "producer's JOBWAIT", asMap(t, do(t, p, "JOBWAIT", id), waitFields...)["result"], any("ok"))
}

// gateJournal numbers records and, while held, keeps every Wait from
// returning: a log whose fsync has not come back.
type gateJournal struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    uint64
	held bool
}

func (j *gateJournal) Append(store.Record) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.n++
	return j.n
}

func (j *gateJournal) Appended() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n
}

func (j *gateJournal) Wait(uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.held {
		j.cond.Wait()
	}
	return nil
}

func (j *gateJournal) Err() error { return nil }

func (j *gateJournal) hold(on bool) {
	j.mu.Lock()
	j.held = on
	j.mu.Unlock()
	j.cond.Broadcast()
}

// A JOBWAIT client is told of an end only once the end's record is synced
// (appendfsync always): while the log's fsync has not come back, neither
// the JOBACK nor the JOBWAIT is answered.
func TestJobWaitAnswersAfterTheEndIsSynced(t *testing.T) {
	j := &gateJournal{}
	j.cond = sync.NewCond(&j.mu)
	ts := start(t, func(s *setup) { s.journal = j })
	t.Cleanup(func() { j.hold(false) }) // before the server's shutdown, which waits for the ack
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	token := reserve(t, c, "w", 60000, "QUEUES", "q")[0]["token"].(string)
	waited := make(chan any, 1)
	w := ts.client(t)
	go func() {
		v, _ := w.Do(ctx, "JOBWAIT", id, 10000).Result()
		waited <- v
	}()
	jw := ts.node.JobWaits()
	waitFor(t, "a waiter", func() bool { return jw.Waiting() == 1 })
	j.hold(true)
	acked := make(chan error, 1)
	a := ts.client(t)
	go func() { acked <- a.Do(ctx, "JOBACK", token).Err() }()
	select {
	case v := <-waited:
		t.Fatalf("JOBWAIT answered %v before the ack was synced", v)
	case <-time.After(200 * time.Millisecond):
	}
	j.hold(false)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if v := <-waited; v == nil {
		t.Fatal("JOBWAIT answered null after the ack was synced")
	}
}

// Inside EXEC, JOBWAIT does not wait for the log: EXEC holds every other
// client off while it runs, so a slow or failing fsync would stall them all.
func TestJobWaitInExecDoesNotWaitForTheLog(t *testing.T) {
	j := &gateJournal{}
	j.cond = sync.NewCond(&j.mu)
	ts := start(t, func(s *setup) { s.journal = j })
	t.Cleanup(func() { j.hold(false) })
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	token := reserve(t, c, "w", 60000, "QUEUES", "q")[0]["token"].(string)
	do(t, c, "JOBACK", token)
	other := do(t, c, "JOBPUSH", "q2", "h", "p").(string)
	j.hold(true) // an fsync that does not come back
	m := ts.client(t)
	pipe := m.TxPipeline()
	pipe.Do(ctx, "JOBWAIT", id)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("EXEC of JOBWAIT while the fsync is held: %v", err)
	}
	if got := check.MapField(do(t, ts.client(t), "JOBGET", other), "state"); got != "queued" {
		t.Fatalf("JOBGET after the EXEC: %v", got)
	}
}
