package commands_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/commands"
	"sluice/internal/check"
)

var queueStatsFields = []string{"queue", "status", "queued", "scheduled", "reserved", "running",
	"retry_pending", "failed", "blocked_concurrency", "blocked_ratelimit", "paused",
	"pushed_total", "succeeded_total", "failed_total", "expired"}

func TestQueues(t *testing.T) { protocols(t, testQueues) }

func testQueues(t *testing.T, proto func(*redis.Options)) {
	ts := start(t)
	c := ts.client(t, proto)
	if got := do(t, c, "QUEUES"); len(got.([]any)) != 0 {
		t.Fatalf("QUEUES on empty server %v", got)
	}
	s := asMap(t, do(t, c, "QUEUESTATS", "none"), queueStatsFields...)
	check.Fields(t, "stats of unknown queue", s, map[string]any{"status": "idle", "queued": int64(0)})
	do(t, c, "JOBPUSH", "b", "h", "1")
	do(t, c, "JOBPUSH", "a", "h", "1", "PRIORITY", 1)
	do(t, c, "JOBPUSH", "a", "h", "2", "PRIORITY", 3)
	do(t, c, "JOBPUSH", "a", "h", "3", "DELAY", 60000)
	check.Equal(t, "QUEUES", do(t, c, "QUEUES"), any([]any{"a", "b"}))
	if got := do(t, c, "QUEUELEN", "a"); got != int64(2) {
		t.Fatalf("QUEUELEN %v", got)
	}
	peek := do(t, c, "QUEUEPEEK", "a").([]any)
	if len(peek) != 2 || asMap(t, peek[0], jobFields...)["payload"] != "2" {
		t.Fatalf("QUEUEPEEK %v", peek)
	}
	if peek := do(t, c, "QUEUEPEEK", "a", "COUNT", 1).([]any); len(peek) != 1 {
		t.Fatalf("QUEUEPEEK COUNT 1: %d jobs", len(peek))
	}
	if got := do(t, c, "QUEUEPAUSE", "a"); got != "OK" {
		t.Fatal(got)
	}
	isNil(t, c, "JOBRESERVE", "w", 1000, "QUEUES", "a")
	s = asMap(t, do(t, c, "QUEUESTATS", "a"), queueStatsFields...)
	if !isTrue(s["paused"]) {
		t.Errorf("paused stats: paused = %v", s["paused"])
	}
	check.Fields(t, "paused stats", s, map[string]any{"status": "paused", "queued": int64(2), "scheduled": int64(1), "pushed_total": int64(3)})
	do(t, c, "QUEUERESUME", "a")
	if rs := reserve(t, c, "w", 1000, "QUEUES", "a"); len(rs) != 1 {
		t.Fatal("resume did not allow reservations")
	}
	if got := do(t, c, "QUEUEPURGE", "a"); got != int64(2) {
		t.Fatalf("QUEUEPURGE %v (one queued, one scheduled)", got)
	}
	if got := doErr(t, c, "QUEUEPEEK", "a", "COUNT", 0); got != "ERR value is out of range, must be positive" {
		t.Fatal(got)
	}
	if got := doErr(t, c, "QUEUELEN", ""); got != "ERR queue must not be empty" {
		t.Fatal(got)
	}
}

// QUEUEPEEK's COUNT is at most 1000: more is an error naming the limit,
// not a silent clamp; and a page stops before its payloads pass 4 MiB.
func TestQueuePeekBounds(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	got := doErr(t, c, "QUEUEPEEK", "a", "COUNT", commands.MaxPeekCount+1)
	if !strings.HasPrefix(got, "ERR") || !strings.Contains(got, strconv.Itoa(commands.MaxPeekCount)) {
		t.Fatalf("COUNT over the limit: %q", got)
	}
	big := strings.Repeat("x", 512<<10)
	for range 20 {
		do(t, c, "JOBPUSH", "big", "h", big)
	}
	peek := do(t, c, "QUEUEPEEK", "big", "COUNT", 20).([]any)
	if want := commands.PeekReplyBytes / len(big); len(peek) >= want+1 || len(peek) < 1 {
		t.Fatalf("QUEUEPEEK of 20 jobs of 512 KiB listed %d, want fewer than %d", len(peek), want+1)
	}
}

// QUEUEPEEK ... CURSOR pages through a queue as SCAN does: each reply is
// the next cursor and a page; "0" ends. The pages add up to the whole
// queue in reservation order, each job once.
func TestQueuePeekCursor(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	for i := range 25 {
		do(t, c, "JOBPUSH", "a", "h", "p"+strconv.Itoa(i), "PRIORITY", i%4)
	}
	var whole []string
	for _, j := range do(t, c, "QUEUEPEEK", "a", "COUNT", 25).([]any) {
		whole = append(whole, asMap(t, j, jobFields...)["id"].(string))
	}
	var paged []string
	cursor := "0"
	for range 10 {
		r := do(t, c, "QUEUEPEEK", "a", "COUNT", 7, "CURSOR", cursor).([]any)
		cursor = r[0].(string)
		for _, j := range r[1].([]any) {
			paged = append(paged, asMap(t, j, jobFields...)["id"].(string))
		}
		if cursor == "0" {
			break
		}
	}
	if cursor != "0" || strings.Join(paged, " ") != strings.Join(whole, " ") {
		t.Fatalf("pages %v (cursor %s), want %v", paged, cursor, whole)
	}
	if got := doErr(t, c, "QUEUEPEEK", "a", "CURSOR", "nope"); got != "ERR invalid cursor" {
		t.Fatalf("bad cursor: %q", got)
	}
	r := do(t, c, "QUEUEPEEK", "nosuch", "CURSOR", "0").([]any)
	if r[0] != "0" || len(r[1].([]any)) != 0 {
		t.Fatalf("cursor over an unknown queue: %v", r)
	}
}
