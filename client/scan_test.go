package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"sluice/client"
)

func TestScanAndBulk(t *testing.T) {
	ctx := context.Background()
	c := startServer(t).client(t)
	var failed []string
	for range 30 {
		must[string](t)(c.Push(ctx, "q", "h", []byte("p"), nil))
		rs := must[[]client.Reservation](t)(c.Reserve(ctx, client.ReserveOptions{Worker: "w", Lease: time.Minute, Queues: []string{"q"}}))
		must[client.State](t)(c.Fail(ctx, rs[0].Token, client.FailOptions{Error: "boom", Retry: client.NoRetry}))
		failed = append(failed, rs[0].ID)
	}
	must[string](t)(c.Push(ctx, "q", "h", []byte("p"), nil))
	var got []string
	for id, err := range c.Scan(ctx, client.ScanFilter{Queue: "q", State: client.StateFailed, Error: "bo*"}, 7) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	slices.Sort(got)
	slices.Sort(failed)
	if !slices.Equal(got, failed) {
		t.Fatalf("Scan: %v, want %v", got, failed)
	}
	for _, err := range c.Scan(ctx, client.ScanFilter{State: "nosuch"}, 0) {
		if err == nil {
			t.Fatal("Scan of an unknown state gave no error")
		}
	}
	res, err := c.Bulk(ctx, client.BulkRetry, client.ScanFilter{Queue: "q"})
	if err != nil || res != (client.BulkResult{Changed: 30}) {
		t.Fatalf("Bulk retry: %+v, %v", res, err)
	}
	res, err = c.Bulk(ctx, client.BulkCancel, client.ScanFilter{Queue: "q"})
	if err != nil || res.Changed != 31 {
		t.Fatalf("Bulk cancel: %+v, %v", res, err)
	}
	if err := c.Delete(ctx, failed[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, failed[0]); err == nil {
		t.Fatal("a second delete of one job succeeded")
	}
}
