package server_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"sluice/config"
	"sluice/server"
)

// testConfig is a node on 127.0.0.1 with a port the kernel picks and its
// log in dir.
func testConfig(dir string) config.Config {
	cfg := config.DefaultConfig()
	cfg.Port, cfg.Dir = 0, dir
	return cfg
}

func newNode(t *testing.T, cfg config.Config) *server.Server {
	t.Helper()
	node, err := server.New(cfg, server.Options{Log: zerolog.New(zerolog.NewTestWriter(t)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return node
}

func shutdown(t *testing.T, node *server.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A node keeps what it acknowledged across a Shutdown and a New on the
// same directory, and a second Shutdown says it has nothing to do.
func TestRestartKeepsJobs(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	node := newNode(t, cfg)
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	if n := len(node.Addrs()); n != 1 {
		t.Fatalf("Addrs() = %v, want one address", node.Addrs())
	}
	c := redis.NewClient(&redis.Options{Addr: node.Addrs()[0]})
	id, err := c.Do(ctx, "JOBPUSH", "emails", "send", "hello").Text()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, node)
	if err := node.Shutdown(ctx); !errors.Is(err, server.ErrShutDown) {
		t.Fatalf("second Shutdown: %v, want ErrShutDown", err)
	}

	again := newNode(t, cfg)
	defer shutdown(t, again)
	if got := again.Store().Len(); got != 1 {
		t.Fatalf("after restart the store holds %d jobs, want 1 (%s)", got, id)
	}
}

// A Start that cannot listen leaves nothing open: the port it was given
// stays taken only by its owner, and the log can be opened again.
func TestStartFailureReleasesEverything(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t.TempDir())
	cfg.MetricsAddr = taken.Addr().String()
	var logs strings.Builder
	node, err := server.New(cfg, server.Options{Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err == nil {
		t.Fatal("Start with the metrics address taken: no error")
	}
	if !strings.Contains(logs.String(), "cannot listen for metrics") {
		t.Fatalf("the log does not say why:\n%s", logs.String())
	}
	// The client listener Start opened before failing is closed again.
	plain := node.Addrs()
	if len(plain) != 1 {
		t.Fatalf("Addrs() = %v, want the one plaintext address opened", plain)
	}
	if c, err := net.DialTimeout("tcp", plain[0], time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after a failed Start", plain[0])
	}
	cfg.MetricsAddr = ""
	shutdown(t, newNode(t, cfg))
}

// DEBUG DIGEST covers the users as well as the jobs: nodes that agree on
// every job but not on a user do not answer the same digest.
func TestDigestCoversUsers(t *testing.T) {
	ctx := context.Background()
	// A clock that stands still: the digest covers times too.
	node, err := server.New(testConfig(t.TempDir()), server.Options{Log: zerolog.New(zerolog.NewTestWriter(t)),
		Version: "test", Now: func() int64 { return 1_700_000_000_000 }})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, node)
	c := redis.NewClient(&redis.Options{Addr: node.Addrs()[0]})
	defer c.Close()
	if err := c.Do(ctx, "JOBPUSH", "emails", "send", "hello").Err(); err != nil {
		t.Fatal(err)
	}
	same, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "ACL", "SETUSER", "worker", "on", ">secret-pass", "+@all", "~*").Err(); err != nil {
		t.Fatal(err)
	}
	after, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	if same != before {
		t.Fatalf("the digest changed with nothing done between (%s, then %s)", same, before)
	}
	if before == after {
		t.Fatalf("a new user left the digest unchanged (%s)", after)
	}
}
