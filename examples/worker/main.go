// Command worker runs the example "send_email" handler for jobs on the
// "emails" queue until it gets SIGINT or SIGTERM, then shuts down
// gracefully: it stops reserving, gives back jobs it has not started, and
// lets running ones finish.
//
//	go run ./examples/worker -addr 127.0.0.1:6390 -concurrency 4
//
// It prints one line per job it completes: "sent <id> to <address>
// (attempt n)".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"sluice/client"
)

func main() {
	addr := flag.String("addr", client.DefaultAddr, "sluice address (host:port)")
	queues := flag.String("queues", "emails", "comma-separated queues, in order of preference")
	concurrency := flag.Int("concurrency", 4, "jobs run at once")
	lease := flag.Duration("lease", 30*time.Second, "lease per job (extended while it runs)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c := client.New(client.Options{Addr: *addr})
	defer c.Close()
	w := client.NewWorker(c, client.WorkerOptions{
		Queues:          strings.Split(*queues, ","),
		Concurrency:     *concurrency,
		Lease:           *lease,
		ShutdownTimeout: 10 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	w.Handle("send_email", sendEmail)
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// Email is the producer's payload.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func sendEmail(ctx context.Context, t *client.Task) error {
	var e Email
	if err := json.Unmarshal(t.Payload, &e); err != nil {
		// A payload that cannot be read will not get better: no retry.
		return client.WithRetry(fmt.Errorf("bad payload: %w", err), client.NoRetry)
	}
	if e.To == "" {
		return client.WithRetry(errors.New("no recipient"), client.NoRetry)
	}
	select {
	case <-time.After(20 * time.Millisecond): // talking to the mail server
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	fmt.Printf("sent %s to %s (attempt %d)\n", t.ID, e.To, t.Attempt)
	return nil
}
