package commands_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/store"
)

// A memory share refuses, with FULL, pushes past it however they come:
// alone, pipelined, inside MULTI/EXEC, with an idempotency key; each
// refusal changes nothing.
func TestShareRefusesEveryPush(t *testing.T) {
	ts := start(t)
	one := store.JobBytes(3, 16, 0) // a 3-byte payload, a generated 16-byte id
	if err := ts.store.SetShares([]store.Share{{Pattern: "team-a:*", Bytes: 2 * one}}); err != nil {
		t.Fatal(err)
	}
	c := ts.client(t)
	do(t, c, "JOBPUSH", "team-a:mail", "h", "abc")
	do(t, c, "JOBPUSH", "team-a:mail", "h", "abc", "IDEMPOTENCY", "k1")
	isFull := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), "FULL ") || !strings.Contains(err.Error(), "team-a:*") {
			t.Errorf("%s: %v, want FULL naming the share", what, err)
		}
	}
	isFull("JOBPUSH", c.Do(ctx, "JOBPUSH", "team-a:sms", "h", "abc").Err())
	isFull("JOBPUSH IDEMPOTENCY", c.Do(ctx, "JOBPUSH", "team-a:sms", "h", "abc", "IDEMPOTENCY", "k2").Err())
	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "JOBPUSH", "team-a:sms", "h", "abc")
		p.Do(ctx, "JOBPUSH", "team-b:sms", "h", "abc")
		return nil
	})
	isFull("pipelined JOBPUSH", cmds[0].Err())
	if err := cmds[1].Err(); err != nil {
		t.Errorf("team-b in the pipeline: %v", err)
	}
	cmds, _ = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "JOBPUSH", "team-a:sms", "h", "abc")
		p.Do(ctx, "JOBPUSH", "team-b:sms", "h", "abc")
		return nil
	})
	isFull("JOBPUSH in MULTI/EXEC", cmds[0].Err())
	if err := cmds[1].Err(); err != nil {
		t.Errorf("team-b in MULTI/EXEC: %v", err)
	}
	if n := do(t, c, "QUEUELEN", "team-a:sms"); n != int64(0) {
		t.Errorf("refused pushes left %v jobs", n)
	}
	if n := do(t, c, "QUEUELEN", "team-a:mail"); n != int64(2) {
		t.Errorf("team-a:mail holds %v jobs, want 2", n)
	}
	info := c.Info(ctx, "memory").Val()
	if want := "maxmemory_share_team-a%3A*:used=" + strconv.FormatInt(2*one, 10) + ",limit=" + strconv.FormatInt(2*one, 10) + "\r\n"; !strings.Contains(info, want) {
		t.Errorf("INFO memory lacks %q:\n%s", want, info)
	}
	// The refused key was not remembered: once the share has room, it pushes.
	if err := ts.store.SetShares([]store.Share{{Pattern: "team-a:*", Bytes: 3 * one}}); err != nil {
		t.Fatal(err)
	}
	do(t, c, "JOBPUSH", "team-a:sms", "h", "abc", "IDEMPOTENCY", "k2")
	if n := do(t, c, "QUEUELEN", "team-a:sms"); n != int64(1) {
		t.Errorf("after raising the share team-a:sms holds %v jobs", n)
	}
	if err := ts.store.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
