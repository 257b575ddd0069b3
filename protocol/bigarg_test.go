package protocol

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An argument far past --max-payload (400 MB, within Redis's 512 MB
// proto-max-bulk-len) is streamed to a live server: it answers an error
// naming the limit and goes on with the pipelined commands behind it, on
// the same connection, having buffered none of it.
func TestOversizedArgumentAnsweredNotReset(t *testing.T) {
	const size = 400_000_000
	_, addr := startServer(t, DefaultConfig(), testTable(t))
	c := dial(t, addr)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	sent := make(chan error, 1)
	go func() {
		// A goroutine, since the server may answer (or close) before
		// the argument is all sent.
		chunk := []byte(strings.Repeat("x", 1<<20))
		_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		_, err := c.nc.Write([]byte("*2\r\n$4\r\nECHO\r\n$" + strconv.Itoa(size) + "\r\n"))
		for left := size; left > 0 && err == nil; left -= len(chunk) {
			_, err = c.nc.Write(chunk[:min(left, len(chunk))])
		}
		if err == nil {
			_, err = c.nc.Write([]byte("\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n"))
		}
		sent <- err
	}()
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Minute))
	got, err := readReply(c.r)
	if err != nil {
		t.Fatalf("no answer to the oversized argument: %v (write: %v)", err, <-sent)
	}
	if want := "-ERR argument of 400000000 bytes is larger than max-payload (1048576 bytes)"; got != want {
		t.Fatalf("oversized argument answered %q, want %q", got, want)
	}
	if err := <-sent; err != nil {
		t.Fatalf("sending: %v", err)
	}
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("PING after it answered %q", got)
	}
	if got := c.reply(); got != "$hello" {
		t.Fatalf("ECHO after it answered %q", got)
	}

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Everything allocated meanwhile, by the server and by this test: a
	// buffered argument alone would be 400 MB.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("%d MB allocated while a 400 MB argument went by", grew>>20)
	}
	c.ping("after the oversized argument")
}

// A command with more arguments than the limit, or larger in all than
// max-payload allows, is refused the same way; an argument past
// proto-max-bulk-len closes the connection, as in Redis.
func TestOversizedCommandsRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits = LimitsFor(1000)
	cfg.Limits.ProtoMaxBulk = 1 << 20
	_, addr := startServer(t, cfg, testTable(t))
	c := dial(t, addr)
	arg := "$900\r\n" + strings.Repeat("y", 900) + "\r\n"
	c.send("*1200\r\n$4\r\nECHO\r\n" + strings.Repeat(arg, 1199))
	if got, want := c.reply(), "-ERR command is larger than 1049576 bytes, the most max-payload (1000 bytes) allows"; got != want {
		t.Fatalf("command too large: %q, want %q", got, want)
	}
	c.ping("after a command too large")
	c.send("*70000\r\n" + strings.Repeat("$1\r\na\r\n", 70000))
	if got, want := c.reply(), "-ERR command has 70000 arguments, more than the limit (65536)"; got != want {
		t.Fatalf("too many arguments: %q, want %q", got, want)
	}
	c.ping("after too many arguments")
	c.send("*2\r\n$4\r\nECHO\r\n$1048577\r\n")
	if got := c.reply(); got != "-ERR Protocol error: invalid bulk length" {
		t.Fatalf("past proto-max-bulk-len: %q", got)
	}
	if !c.closed() {
		t.Fatal("connection left open past proto-max-bulk-len")
	}
}
