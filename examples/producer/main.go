// Command producer pushes example jobs to sluice: n "send_email" jobs on the
// "emails" queue, at most -parallel of them sent at once (a concurrency
// policy on the "smtp" key), each allowed three attempts.
//
//	go run ./examples/producer -addr 127.0.0.1:6390 -n 10
//
// It prints one line per job: "pushed <id>".
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"sluice/client"
)

func main() {
	addr := flag.String("addr", client.DefaultAddr, "sluice address (host:port)")
	queue := flag.String("queue", "emails", "queue to push to")
	handler := flag.String("handler", "send_email", "handler name of the jobs")
	n := flag.Int("n", 10, "how many jobs to push")
	parallel := flag.Int64("parallel", 2, "at most this many jobs run at once (policy on key smtp)")
	flag.Parse()

	if err := run(*addr, *queue, *handler, *n, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

// Email is the payload the example workers (Go and Node.js) understand.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func run(addr, queue, handler string, n int, parallel int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New(client.Options{Addr: addr})
	defer c.Close()

	if err := c.PolicySetConcurrency(ctx, "smtp", parallel); err != nil {
		return err
	}
	for i := range n {
		payload, err := json.Marshal(Email{To: fmt.Sprintf("user%d@example.com", i), Subject: "hello"})
		if err != nil {
			return err
		}
		id, err := c.Push(ctx, queue, handler, payload, &client.PushOptions{
			Concurrency: "smtp",
			MaxAttempts: 3,
			Backoff:     500 * time.Millisecond,
		})
		if err != nil {
			return err
		}
		fmt.Println("pushed", id)
	}
	st, err := c.QueueStats(ctx, queue)
	if err != nil {
		return err
	}
	fmt.Printf("queue %s: %d queued, %d pushed in all\n", queue, st.Queued, st.PushedTotal)
	return nil
}
