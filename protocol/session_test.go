package protocol

import (
	"context"
	"io"
	"net"
	"sync"
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
	if !c.closed() {
		t.Fatal("after the replies the connection stayed open")
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

// A client that waited for a reply, then sends its last command and shuts
// down at once, is closed too. Its connection skips the read after that
// command, and the end of stream, queued behind the command, may not wake
// the wait: the probe reads again. Ten clients make it likely that some
// take that path.
func TestClientThatWaitedThenSendsAndShutsDownIsClosed(t *testing.T) {
	srv, addr := startServer(t, DefaultConfig(), testTable(t))
	var wg sync.WaitGroup
	for range 10 {
		c := dial(t, addr)
		c.ping("")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.nc.Write([]byte("echo a\r\n")); err != nil {
				t.Error(err)
				return
			}
			_ = c.nc.(*net.TCPConn).CloseWrite()
			_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := readReply(c.r); err != nil || got != "$a" {
				t.Errorf("the last reply: %q, %v", got, err)
				return
			}
			if !c.closed() {
				t.Error("the connection stayed open")
			}
		}()
	}
	wg.Wait()
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
	c.ping("")
	c.send("killme\r\nPING\r\n")
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(c.r); err != nil || len(rest) != 0 {
		t.Fatalf("a killed connection answered %q (%v); want it closed without replies", rest, err)
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
	d := dial(t, addr)
	d.ping("")
}

// A client killed while it waits for input is closed at once.
func TestKillWakesAnIdleConnection(t *testing.T) {
	srv, addr := startServer(t, DefaultConfig(), testTable(t))
	c := dial(t, addr)
	c.ping("")
	if n := srv.Kill(func(ClientInfo) bool { return true }, 0); n != 1 {
		t.Fatalf("killed %d clients, want 1", n)
	}
	if !c.closed() {
		t.Fatal("after the kill the connection stayed open")
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

// With an idle timeout longer than the probe, a client that pauses for
// less than the timeout stays connected, whether a probe was armed for
// the pause or cut short by more input; one that stays idle is closed.
func TestIdleTimeoutOutlastsTheProbe(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IdleTimeout = 2 * time.Second
	srv, addr := startServer(t, cfg, testTable(t))
	c := dial(t, addr)
	for range 2 {
		c.ping("")
	}
	time.Sleep(2 * probeAfter)
	c.ping("after a pause shorter than the idle timeout")
	if !c.closed() {
		t.Fatal("an idle client was not closed")
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

// A drain lets a connection finish what it sent: a command that may wait
// (run outside the read session) and the one pipelined behind it are both
// answered, even when the drain's deadline is still set as the next
// session begins (the command did not wait, so nothing cleared it).
func TestDrainAnswersAWaitingCommandAndWhatFollows(t *testing.T) {
	var srv *Server
	shut := make(chan error, 1)
	drain := Command{Name: "drain", Arity: 1, Flags: Blocking, Handler: func(c *Client, args [][]byte) (any, error) {
		go func() { shut <- srv.Shutdown(context.Background()) }()
		for !srv.isDraining() {
			time.Sleep(time.Millisecond)
		}
		c.interrupt() // as Shutdown does, perhaps not yet for this client
		return SimpleString("draining"), nil
	}}
	srv, addr, served := serveTest(t, DefaultConfig(), testTable(t, drain))
	c := dial(t, addr)
	c.send("drain\r\nPING\r\n")
	if got := c.reply(); got != "+draining" {
		t.Fatalf("the waiting command: %q", got)
	}
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("the command behind it: %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	<-served
}
