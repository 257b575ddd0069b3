package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"sluice/client"
)

// TestFairGroupsAndWeights: Push's Group, Get's Group, PolicySetWeight and
// its listing, Reserve's RoundRobin.
func TestFairGroupsAndWeights(t *testing.T) {
	c := startServer(t).client(t)
	for i := 0; i < 20; i++ {
		must[string](t)(c.Push(bg, "q", "h", []byte("a"), &client.PushOptions{Group: "tenant-a"}))
	}
	id := must[string](t)(c.Push(bg, "q", "h", []byte("b"), &client.PushOptions{Group: "tenant-b"}))
	if j := must[*client.Job](t)(c.Get(bg, id)); j.Group != "tenant-b" {
		t.Fatalf("Get's Group = %q", j.Group)
	}
	if err := c.PolicySetWeight(bg, "tenant-a", 3); err != nil {
		t.Fatal(err)
	}
	p := must[*client.Policy](t)(c.PolicyGet(bg, client.Weight, "tenant-a"))
	if p.Kind != client.Weight || p.Limit != 3 {
		t.Fatalf("PolicyGet WEIGHT = %+v", p)
	}
	if ps := must[[]client.Policy](t)(c.PolicyList(bg)); len(ps) != 1 || ps[0].Key != "tenant-a" {
		t.Fatalf("PolicyList = %+v", ps)
	}
	rs := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Count: 2, Queues: []string{"q"}}))
	if len(rs) != 2 || string(rs[0].Payload)+string(rs[1].Payload) != "ab" {
		t.Fatalf("the late group's job was not among the first two reserved: %+v", rs)
	}
	for _, q := range []string{"x", "y"} {
		must[string](t)(c.Push(bg, q, "h", nil, nil))
		must[string](t)(c.Push(bg, q, "h", nil, nil))
	}
	got := ""
	for i := 0; i < 3; i++ {
		rs := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "rr", Lease: time.Minute,
			Queues: []string{"x", "y"}, RoundRobin: true}))
		got += rs[0].Queue
	}
	if got != "xyx" {
		t.Fatalf("RoundRobin reserves took from %q, want xyx", got)
	}
}

// TestWorkerRoundRobin: a worker with RoundRobin takes from its queues in
// turn, not the first one's backlog first.
func TestWorkerRoundRobin(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	for i := 0; i < 5; i++ {
		for _, q := range []string{"first", "second"} {
			must[string](t)(producer.Push(bg, q, "h", []byte(fmt.Sprint(q)), nil))
		}
	}
	ran := make(chan string, 10)
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"first", "second"}, RoundRobin: true,
		Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("h", func(ctx context.Context, task *client.Task) error { ran <- string(task.Payload); return nil })
	startWorker(t, w)
	var order []string
	for i := 0; i < 4; i++ {
		order = append(order, <-ran)
	}
	if fmt.Sprint(order) != "[first second first second]" {
		t.Fatalf("the worker ran %v", order)
	}
}
