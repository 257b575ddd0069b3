package protocol

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A client that sends its last commands and shuts down its side at once
// gets every reply, then the server closes the connection. The end of
// stream queues behind the commands, so a read that came back short does
// not show it; the session's probe reads again.
func TestHalfClosedClientGetsRepliesThenClose(t *testing.T) {
	srv, addr := startServer(t, DefaultConfig(), testTable(t))
	c := dial(t, addr)
	c.send("PING\r\necho a\r\n")
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("got %q", got)
	}
	if got := c.reply(); got != "$a" {
		t.Fatalf("got %q", got)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the replies: %v, want the server to close (EOF)", err)
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

// A command may kill its own connection: the kill must not wait for the
// connection's goroutine, which is the one running the command.
func TestCommandKillsItsOwnConnection(t *testing.T) {
	killme := Command{Name: "killme", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		id := c.ID()
		return int64(c.Server().Kill(func(ci ClientInfo) bool { return ci.ID == id }, 0)), nil
	}}
	srv, addr := startServer(t, DefaultConfig(), testTable(t, killme))
	c := dial(t, addr)
	c.send("PING\r\n")
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("got %q", got)
	}
	c.send("killme\r\nPING\r\n")
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(c.r); err != nil || len(rest) != 0 {
		t.Fatalf("a killed connection answered %q (%v); want it closed without replies", rest, err)
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
	d := dial(t, addr)
	d.send("PING\r\n")
	if got := d.reply(); got != "+PONG" {
		t.Fatalf("got %q", got)
	}
}

// A client killed while it waits for input is closed at once.
func TestKillWakesAnIdleConnection(t *testing.T) {
	srv, addr := startServer(t, DefaultConfig(), testTable(t))
	c := dial(t, addr)
	c.send("PING\r\n")
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("got %q", got)
	}
	if n := srv.Kill(func(ClientInfo) bool { return true }, 0); n != 1 {
		t.Fatalf("killed %d clients, want 1", n)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the kill: %v, want EOF", err)
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}
