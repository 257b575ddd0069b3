package commands_test

import (
	"bufio"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redis-cli's MONITOR sees each command another client runs, as Redis
// prints it: here a job's push with its arguments. (go-redis 9.23's
// Monitor is not used: on a pooled connection it may close the monitor
// when it finds +OK already buffered, and Stop and Close wait on a lock
// its reader holds while it waits for a line.)
func TestMonitorWithRedisCli(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed")
	}
	ts := start(t)
	host, port, _ := net.SplitHostPort(ts.addr)
	cmd := exec.Command(cli, "-h", host, "-p", port, "monitor")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no monitor line within 5 s")
			return ""
		}
	}
	if l := next(); l != "OK" {
		t.Fatalf("MONITOR answered %q", l)
	}
	c := ts.client(t)
	do(t, c, "JOBPUSH", "emails", "send", `{"to":"a b"}`, "PRIORITY", 5)
	for {
		l := next()
		if strings.Contains(l, `"hello"`) || strings.Contains(l, `"client"`) {
			continue // go-redis's own handshake
		}
		if !strings.HasSuffix(l, ` "JOBPUSH" "emails" "send" "{\"to\":\"a b\"}" "PRIORITY" "5"`) || !strings.Contains(l, " [0 127.0.0.1:") {
			t.Fatalf("push shown as %q", l)
		}
		break
	}
}

// TestMonitorOnceConfirmed: once a client has read MONITOR's +OK, it is
// shown the next command any client runs, every time.
func TestMonitorOnceConfirmed(t *testing.T) {
	ts := start(t)
	other := dialWire(t, ts.addr)
	for i := 0; i < 300; i++ {
		mon := dialWire(t, ts.addr)
		if got := mon.do("MONITOR"); got != "+OK\r\n" {
			t.Fatalf("MONITOR: %q", got)
		}
		arg := "n" + strconv.Itoa(i)
		other.do("ECHO", arg)
		if got := string(mon.reply()); !strings.HasSuffix(got, `"ECHO" "`+arg+"\"\r\n") {
			t.Fatalf("monitor %d: %q, want the ECHO run after its +OK", i, got)
		}
		mon.nc.Close()
	}
}
