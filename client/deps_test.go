package client_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"sluice/client"
)

// TestAfter: Push sends AFTER and ANYWAY, Get shows a waiting job's
// dependencies and reads its blocked_by, and a push after a failed job is
// ErrDepFailed.
func TestAfter(t *testing.T) {
	c := startServer(t).client(t)
	a, err := c.Push(bg, "build", "compile", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Push(bg, "build", "compile", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Push(bg, "deploy", "ship", nil, &client.PushOptions{After: []string{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.Get(bg, d)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s %v %s %s", j.State, j.After, j.BlockedBy.Reason, j.BlockedBy.Key); got != fmt.Sprintf("waiting [%s %s] after %s", a, b, a) {
		t.Fatalf("waiting job: %s", got)
	}
	rs, err := c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Count: 2, Queues: []string{"build"}})
	if err != nil || len(rs) != 2 {
		t.Fatalf("reserve = %v %v", rs, err)
	}
	if err := c.Ack(bg, rs[0].Token); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fail(bg, rs[1].Token, client.FailOptions{Retry: client.NoRetry}); err != nil {
		t.Fatal(err)
	}
	if j, err = c.Get(bg, d); err != nil || j.State != client.StateCancelled {
		t.Fatalf("after a failed dependency: %+v %v", j, err)
	}
	if _, err := c.Push(bg, "deploy", "ship", nil, &client.PushOptions{After: []string{b}}); !errors.Is(err, client.ErrDepFailed) {
		t.Fatalf("push after a failed job: %v", err)
	}
	e, err := c.Push(bg, "deploy", "ship", nil, &client.PushOptions{After: []string{b}, AfterAnyway: true})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = c.Get(bg, e); err != nil || j.State != client.StateQueued || j.After != nil {
		t.Fatalf("ANYWAY after a failed job: %+v %v", j, err)
	}
}

// TestBatch: BatchOpen, Push with Batch, BatchClose and BatchGet; the
// callback is pushed once the batch's jobs all succeeded.
func TestBatch(t *testing.T) {
	c := startServer(t).client(t)
	if err := c.BatchOpen(bg, "b", &client.BatchOptions{CallbackQueue: "cb", CallbackHandler: "h", CallbackPayload: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Push(bg, "q", "h", nil, &client.PushOptions{Batch: "b"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.BatchClose(bg, "b"); err != nil {
		t.Fatal(err)
	}
	rs, err := c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Count: 2, Queues: []string{"q"}})
	if err != nil || len(rs) != 2 {
		t.Fatalf("reserve = %v %v", rs, err)
	}
	for _, r := range rs {
		if err := c.Ack(bg, r.Token); err != nil {
			t.Fatal(err)
		}
	}
	b, err := c.BatchGet(bg, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s %d %d %s", b.State, b.Total, b.Succeeded, b.CallbackState); got != "done 2 2 queued" || b.Callback == "" {
		t.Fatalf("batch: %+v", b)
	}
	if _, err := c.BatchGet(bg, "nope"); !errors.Is(err, client.ErrNoBatch) {
		t.Fatalf("unknown batch: %v", err)
	}
	if _, err := c.Push(bg, "q", "h", nil, &client.PushOptions{Batch: "b"}); !errors.Is(err, client.ErrNoBatch) {
		t.Fatalf("push to a done batch: %v", err)
	}
}
