package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sluice/client"
)

// A handler's result and progress reach the server; a producer's Wait
// returns the result when the job ends, nil on timeout, ErrNoJob for an
// unknown job.
func TestWorkerResultAndWait(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	id := must[string](t)(producer.Push(bg, "q", "sum", []byte("1+2"), nil))
	if o, err := producer.Wait(bg, id, 20*time.Millisecond); o != nil || err != nil {
		t.Fatalf("Wait before the job ran: %+v %v", o, err)
	}
	if _, err := producer.Wait(bg, "nope", 0); !errors.Is(err, client.ErrNoJob) {
		t.Fatalf("Wait of an unknown job: %v", err)
	}
	waited := make(chan *client.Outcome, 1)
	go func() {
		o, err := ts.client(t).Wait(bg, id, 0)
		if err != nil {
			t.Error(err)
		}
		waited <- o
	}()
	release := make(chan struct{})
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"q"}, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("sum", func(ctx context.Context, task *client.Task) error {
		if err := task.Progress(ctx, []byte("halfway")); err != nil {
			return err
		}
		<-release
		task.SetResult([]byte("3"))
		return nil
	})
	startWorker(t, w)
	eventually(t, "progress is reported", func() bool {
		return string(must[*client.Job](t)(producer.Get(bg, id)).Progress) == "halfway"
	})
	close(release)
	select {
	case o := <-waited:
		if o == nil || o.ID != id || o.State != client.StateSucceeded || string(o.Result) != "3" || o.HasLastError {
			t.Fatalf("Wait returned %+v", o)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return when the job ended")
	}
	j := must[*client.Job](t)(producer.Get(bg, id))
	if string(j.Result) != "3" || string(j.Progress) != "halfway" {
		t.Fatalf("JOBGET: result %q, progress %q", j.Result, j.Progress)
	}
}

// AckResult and Progress speak the commands directly; a job acked without
// a result shows none.
func TestAckResultAndProgress(t *testing.T) {
	ts := startServer(t)
	c := ts.client(t)
	a := must[string](t)(c.Push(bg, "q", "h", nil, nil))
	b := must[string](t)(c.Push(bg, "q", "h", nil, nil))
	rs := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Count: 2, Queues: []string{"q"}}))
	if err := c.Progress(bg, rs[0].Token, []byte("1/3")); err != nil {
		t.Fatal(err)
	}
	if err := c.AckResult(bg, rs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(bg, rs[1].Token); err != nil {
		t.Fatal(err)
	}
	if j := must[*client.Job](t)(c.Get(bg, a)); j.Result == nil || len(j.Result) != 0 || string(j.Progress) != "1/3" {
		t.Fatalf("job a: result %#v progress %q", j.Result, j.Progress)
	}
	if j := must[*client.Job](t)(c.Get(bg, b)); j.Result != nil || j.Progress != nil {
		t.Fatalf("job b: result %#v progress %#v", j.Result, j.Progress)
	}
	o := must[*client.Outcome](t)(c.Wait(bg, a, time.Second))
	if o == nil || o.Result == nil || len(o.Result) != 0 {
		t.Fatalf("Wait: %+v", o)
	}
}
