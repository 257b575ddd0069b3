package client_test

import (
	"fmt"
	"testing"
	"time"

	"sluice/client"
)

// TestSeveralKeys: Push sends further keys, Get lists every key of a job
// of several, and a blocked_by naming several keys is read into
// BlockedByAll, with BlockedBy its first.
func TestSeveralKeys(t *testing.T) {
	c := startServer(t).client(t)
	if err := c.PolicySetConcurrency(bg, "global", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.PolicySetRateLimit(bg, "cust, a", 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	opts := &client.PushOptions{Concurrency: "global", MoreConcurrency: []string{"cust:a"},
		RateLimit: "api", MoreRateLimit: []string{"cust, a"}}
	if _, err := c.Push(bg, "q", "h", nil, opts); err != nil {
		t.Fatal(err)
	}
	id, err := c.Push(bg, "q", "h", nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Count: 5, Queues: []string{"q"}}); err != nil || len(rs) != 1 {
		t.Fatalf("reserve = %v %v", rs, err)
	}
	j, err := c.Get(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s %v %s %v", j.ConcurrencyKey, j.ConcurrencyKeys, j.RateLimitKey, j.RateLimitKeys); got != "global [global cust:a] api [api cust, a]" {
		t.Fatalf("keys = %s", got)
	}
	if j.BlockedBy == nil || j.BlockedBy.Reason != client.BlockedConcurrency || j.BlockedBy.Key != "global" || len(j.BlockedByAll) != 2 {
		t.Fatalf("blocked_by = %+v, all %+v", j.BlockedBy, j.BlockedByAll)
	}
	if b := j.BlockedByAll[1]; b.Reason != client.BlockedRateLimit || b.Key != "cust, a" || b.Until.IsZero() {
		t.Fatalf("second reason = %+v", b)
	}
	if _, err := c.Push(bg, "q", "h", nil, &client.PushOptions{Concurrency: "a", MoreConcurrency: []string{"a"}}); err == nil {
		t.Fatal("a key given twice was pushed")
	}
}
