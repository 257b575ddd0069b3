package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDrainOnSIGTERM pushes and acks at full speed from many clients while
// others wait in a blocking reserve, sends SIGTERM, and checks the drain:
// the blocked reserves are answered with null, the process exits 0 after
// closing the log, and after a restart every acknowledged push and ack is
// there — with appendfsync everysec and no, where only the drain's final
// flush and fsync make the last second durable.
func TestDrainOnSIGTERM(t *testing.T) {
	for _, fsync := range []string{"everysec", "no"} {
		t.Run(fsync, func(t *testing.T) { drainRound(t, fsync) })
	}
}

func drainRound(t *testing.T, fsync string) {
	dir := t.TempDir()
	port := freePort(t)
	srv := start(t, dir, port, "--appendfsync", fsync, "--shutdown-timeout", "20")
	a := &acked{state: map[string]string{}, at: map[string]time.Time{}}
	ctx := context.Background()

	// Clients waiting for work that never comes: the drain answers them.
	const blocked = 3
	blockedReplies := make(chan error, blocked)
	for i := 0; i < blocked; i++ {
		go func() {
			cl := srv.client()
			defer cl.Close()
			blockedReplies <- cl.Do(ctx, "JOBRESERVE", "idle", 1000, "BLOCK", 0, "QUEUES", "nothing-here").Err()
		}()
	}
	waitBlocked(t, srv, blocked)

	var wg sync.WaitGroup
	var stopped sync.Once
	stop := make(chan struct{})
	const clients = 16
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cl := srv.client()
			defer cl.Close()
			q := fmt.Sprintf("q%d", c%4)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("d-c%d-%d", c, i)
				if err := cl.Do(ctx, "JOBPUSH", q, "h", "payload-"+id, "ID", id).Err(); err != nil {
					return // the server is draining
				}
				a.set(id, "queued")
				if i%2 == 1 {
					continue
				}
				res, err := cl.Do(ctx, "JOBRESERVE", fmt.Sprintf("w%d", c), 60000, "QUEUES", q).Slice()
				if err != nil {
					return
				}
				if len(res) == 0 {
					continue
				}
				m := res[0].([]any)
				if cl.Do(ctx, "JOBACK", m[1].(string)).Err() == nil {
					a.set(m[3].(string), "succeeded")
				}
			}
		}(c)
	}
	time.Sleep(700 * time.Millisecond)
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sluice exited with %v\n%s", err, srv.logText())
		}
	case <-time.After(30 * time.Second):
		srv.cmd.Process.Kill()
		t.Fatalf("sluice did not exit after SIGTERM\n%s", srv.logText())
	}
	srv.log.Close()
	stopped.Do(func() { close(stop) })
	wg.Wait()
	for i := 0; i < blocked; i++ {
		select {
		case err := <-blockedReplies:
			if !errors.Is(err, redis.Nil) {
				t.Errorf("a blocked reserve got %v at shutdown, want a null reply", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a blocked reserve was never answered")
		}
	}
	logText := srv.logText()
	for _, want := range []string{"connections drained", "append-only log flushed, synced and closed", `"bye"`} {
		if !strings.Contains(logText, want) {
			t.Errorf("the log lacks %q:\n%s", want, logText)
		}
	}
	if len(a.state) == 0 {
		t.Fatal("no push was acknowledged before the drain")
	}

	srv2 := start(t, dir, port, "--appendfsync", fsync)
	defer srv2.stop()
	cl := srv2.client()
	defer cl.Close()
	missing, regressed := 0, 0
	for id, want := range a.state {
		m, err := cl.Do(ctx, "JOBGET", id).Slice()
		if err != nil || len(m) == 0 {
			missing++
			continue
		}
		if want == "succeeded" && m[9].(string) != "succeeded" {
			regressed++
		}
	}
	if missing > 0 || regressed > 0 {
		t.Fatalf("%s: %d acknowledged pushes missing, %d acknowledged acks lost, of %d acknowledged", fsync, missing, regressed, len(a.state))
	}
	t.Logf("%s: %d acknowledged pushes and acks all survived the drain", fsync, len(a.state))
}

// waitBlocked waits until n clients are blocked.
func waitBlocked(t *testing.T, srv *server, n int) {
	t.Helper()
	cl := srv.client()
	defer cl.Close()
	want := fmt.Sprintf("blocked_clients:%d", n)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if infoField(t, cl, "clients", "blocked_clients") == want[len("blocked_clients:"):] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients never blocked", n)
		}
	}
}
