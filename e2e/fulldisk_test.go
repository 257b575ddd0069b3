package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

// fillDisk makes every write the server makes to a file past its first byte
// fail, as a full disk does (EFBIG instead of ENOSPC; the server treats
// both as a failed write). The log files are already longer than that, so
// the next append fails.
func (s *server) fillDisk(t *testing.T) {
	t.Helper()
	lim := unix.Rlimit{Cur: 1, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(s.cmd.Process.Pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatal(err)
	}
}

// freeDisk lifts fillDisk's limit.
func (s *server) freeDisk(t *testing.T) {
	t.Helper()
	lim := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(s.cmd.Process.Pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatal(err)
	}
}

// logSize is the size of the server's log files.
func logSize(t *testing.T, dir string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "data", "sluice.*"))
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestFullDiskAlwaysNeverRefusesAnAppliedChange: with appendfsync always, a
// push whose log write hits a full disk is not answered with an error (it
// is in memory and would come back after a restart, so a client's retry
// would duplicate it): it waits until the disk has room, then succeeds.
// Pushes that arrive while the log is failing are refused before they
// change anything, and do not come back.
func TestFullDiskAlwaysNeverRefusesAnAppliedChange(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	srv := start(t, dir, port, "--appendfsync", "always")
	ctx := context.Background()
	cl := srv.client()
	defer cl.Close()
	if err := cl.Do(ctx, "JOBPUSH", "q", "h", "before", "ID", "before").Err(); err != nil {
		t.Fatal(err)
	}
	srv.fillDisk(t)

	first := make(chan error, 1)
	go func() {
		c := srv.client()
		defer c.Close()
		first <- c.Do(ctx, "JOBPUSH", "q", "h", "during", "ID", "during").Err()
	}()
	// Wait until the server has noticed the failure.
	for deadline := time.Now().Add(10 * time.Second); infoField(t, cl, "persistence", "aof_last_write_status") != "err"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the failed write was not noticed\n%s", srv.logText())
		}
	}
	select {
	case err := <-first:
		t.Fatalf("the push whose write failed was answered (%v) while the disk is full", err)
	default:
	}
	err := cl.Do(ctx, "JOBPUSH", "q", "h", "refused", "ID", "refused").Err()
	if err == nil || !strings.HasPrefix(err.Error(), "MISCONF") {
		t.Fatalf("a push while the log fails: %v, want MISCONF", err)
	}
	if err := cl.Do(ctx, "JOBGET", "refused").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("the refused push is in memory: JOBGET says %v", err)
	}

	srv.freeDisk(t)
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("the push whose write was retried: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the push was never answered after the disk had room again\n%s", srv.logText())
	}
	srv.stop()

	srv2 := start(t, dir, port, "--appendfsync", "always")
	defer srv2.stop()
	cl2 := srv2.client()
	defer cl2.Close()
	for _, id := range []string{"before", "during"} {
		if err := cl2.Do(ctx, "JOBGET", id).Err(); err != nil {
			t.Errorf("after a restart, JOBGET %s: %v", id, err)
		}
	}
	if err := cl2.Do(ctx, "JOBGET", "refused").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("after a restart, the refused push exists: %v", err)
	}
}

// TestDrainWaitsForAFullDisk: with appendfsync everysec, pushes are
// acknowledged before their record is written. SIGTERM while the disk is
// full must not exit and lose them: the server waits, and once the disk has
// room it writes them and exits 0; after a restart every acknowledged push
// is there. A third signal gives up, with status 1.
func TestDrainWaitsForAFullDisk(t *testing.T) {
	t.Run("disk frees", func(t *testing.T) { fullDiskDrain(t, false) })
	t.Run("third signal", func(t *testing.T) { fullDiskDrain(t, true) })
}

func fullDiskDrain(t *testing.T, giveUp bool) {
	dir := t.TempDir()
	port := freePort(t)
	srv := start(t, dir, port, "--appendfsync", "everysec", "--shutdown-timeout", "5")
	ctx := context.Background()
	cl := srv.client()
	if err := cl.Do(ctx, "JOBPUSH", "q", "h", "p", "ID", "before").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); logSize(t, dir) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first push never reached the log")
		}
	}
	srv.fillDisk(t)
	var acked []string
	for i := 0; i < 200; i++ {
		id := fmt.Sprintf("full-%d", i)
		err := cl.Do(ctx, "JOBPUSH", "q", "h", "p", "ID", id).Err()
		if err == nil {
			acked = append(acked, id)
			continue
		}
		if !strings.HasPrefix(err.Error(), "MISCONF") {
			t.Fatalf("push %s: %v", id, err)
		}
		if err := cl.Do(ctx, "JOBGET", id).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("push %s was refused yet JOBGET says %v", id, err)
		}
		time.Sleep(time.Millisecond)
	}
	cl.Close()
	if len(acked) == 0 {
		t.Fatal("no push was acknowledged after the disk filled (the writer noticed first?)")
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.cmd.Wait() }()
	// The drain of connections is immediate; the log cannot be written.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv.logText(), "shutdown waits for the append-only log"); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("sluice exited (%v) with %d acknowledged pushes unwritten\n%s", err, len(acked), srv.logText())
		default:
		}
		if time.Now().After(deadline) {
			srv.cmd.Process.Kill()
			t.Fatalf("no word of the wait for the log\n%s", srv.logText())
		}
	}
	if giveUp {
		srv.cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(100 * time.Millisecond)
		srv.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err == nil {
				t.Fatalf("a forced exit with unwritten changes exited 0\n%s", srv.logText())
			}
			if !strings.Contains(srv.logText(), "changes not written to the append-only log") {
				t.Errorf("the forced exit does not say what it lost\n%s", srv.logText())
			}
		case <-time.After(20 * time.Second):
			srv.cmd.Process.Kill()
			t.Fatalf("a third signal did not end the wait\n%s", srv.logText())
		}
		srv.log.Close()
		return
	}
	srv.freeDisk(t)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sluice exited with %v once the disk had room\n%s", err, srv.logText())
		}
	case <-time.After(20 * time.Second):
		srv.cmd.Process.Kill()
		t.Fatalf("sluice did not exit once the disk had room\n%s", srv.logText())
	}
	srv.log.Close()

	srv2 := start(t, dir, port, "--appendfsync", "everysec")
	defer srv2.stop()
	cl2 := srv2.client()
	defer cl2.Close()
	missing := 0
	for _, id := range append(acked, "before") {
		if err := cl2.Do(ctx, "JOBGET", id).Err(); err != nil {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged pushes lost by the drain", missing, len(acked)+1)
	}
	t.Logf("%d pushes acknowledged while the disk was full, all written after it had room", len(acked))
}
