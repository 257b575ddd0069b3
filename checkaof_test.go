package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// runServer runs sluice in-process on dir until stop is called; it returns
// nil and the exit code if the server did not start.
func runServer(t *testing.T, dir string, logs io.Writer) (cl *redis.Client, stop func(), code int) {
	t.Helper()
	sig := make(chan os.Signal, 1)
	ready := make(chan []string, 1)
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--port", "0", "--dir", dir, "--appendonly", "yes", "--logformat", "json"},
			nil, io.Discard, logs, sig, ready)
	}()
	select {
	case addrs := <-ready:
		cl = redis.NewClient(&redis.Options{Addr: addrs[0]})
		return cl, func() {
			t.Helper()
			cl.Close()
			sig <- syscall.SIGTERM
			if code := <-done; code != 0 {
				t.Fatalf("the server exited %d", code)
			}
		}, 0
	case code := <-done:
		return nil, nil, code
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start")
	}
	return nil, nil, 0
}

// The manifest deleted after a rewrite: the server refuses to start and
// says how to recover; check-aof --rebuild-manifest writes the manifest
// back, and the server then starts with exactly the jobs it had.
func TestCheckAOFRebuildManifest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cl, stop, code := runServer(t, dir, io.Discard)
	if cl == nil {
		t.Fatalf("first start: exit %d", code)
	}
	push := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := cl.Do(ctx, "JOBPUSH", "q", "h", "payload", "ID", fmt.Sprintf("job%d", i)).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	push(0, 30)
	if err := cl.Do(ctx, "BGREWRITEAOF").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info := cl.Info(ctx, "persistence").Val()
		if strings.Contains(info, "aof_rewrites:1") && strings.Contains(info, "aof_rewrite_in_progress:0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rewrite did not finish:\n%s", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
	push(30, 50)
	if err := cl.Do(ctx, "JOBCANCEL", "job7").Err(); err != nil {
		t.Fatal(err)
	}
	stop()

	manifest := filepath.Join(dir, "sluice.manifest")
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if cl, stop, code := runServer(t, dir, &syncWriter{w: &logs}); cl != nil {
		n := cl.DBSize(ctx).Val()
		stop()
		t.Fatalf("started without its manifest, holding %d jobs", n)
	} else if code != 1 || !strings.Contains(logs.String(), "sluice check-aof --rebuild-manifest "+dir) {
		t.Fatalf("refused start: exit %d, want 1 and the way to recover in the log:\n%s", code, logs.String())
	}
	if _, err := os.Stat(manifest); err == nil {
		t.Fatal("the refused start wrote a manifest")
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"check-aof", "--rebuild-manifest", dir}, nil, &stdout, &stderr, nil, nil); code != 0 {
		t.Fatalf("check-aof --rebuild-manifest: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	want := "wrote " + manifest + ", the log in replay order:\n  sluice.3.base ("
	if !strings.HasPrefix(stdout.String(), want) || !strings.Contains(stdout.String(), "\n  sluice.2.incr (") {
		t.Fatalf("check-aof --rebuild-manifest printed:\n%s", stdout.String())
	}
	// A second run finds a sound manifest and leaves it.
	if code := run([]string{"check-aof", "--rebuild-manifest", dir}, nil, io.Discard, io.Discard, nil, nil); code != 1 {
		t.Fatalf("rebuilding a sound manifest: exit %d, want 1", code)
	}

	cl, stop, code = runServer(t, dir, io.Discard)
	if cl == nil {
		t.Fatalf("start after the rebuild: exit %d", code)
	}
	defer stop()
	if n := cl.DBSize(ctx).Val(); n != 50 {
		t.Fatalf("%d jobs after the rebuild, want 50", n)
	}
	for _, id := range []string{"job0", "job7", "job49"} {
		if err := cl.Do(ctx, "JOBGET", id).Err(); err != nil {
			t.Fatalf("JOBGET %s: %v", id, err)
		}
	}
	if err := cl.Do(ctx, "JOBPUSH", "q", "h", "payload", "ID", "job7").Err(); err == nil || !strings.HasPrefix(err.Error(), "DUPJOB") {
		t.Fatalf("job7 pushed again: %v, want DUPJOB (it is held, cancelled)", err)
	}
}

func TestCheckAOFUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--fix", "--rebuild-manifest", "d"}, {"--rebuild-manifest"}, {"--nope", "f"}, {"a", "b"}} {
		var stderr bytes.Buffer
		if code := run(append([]string{"check-aof"}, args...), nil, io.Discard, &stderr, nil, nil); code != 2 || !strings.Contains(stderr.String(), "--rebuild-manifest DIR") {
			t.Errorf("check-aof %v: exit %d, %q; want 2 and the usage", args, code, stderr.String())
		}
	}
}
