package protocol

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// parkCmd is a blocking command that parks with no deadline and answers
// "+woken", or records that its client left.
func parkCmd(name string, left *atomic.Bool, before func(w *Wait)) Command {
	return Command{Name: name, Arity: 1, Flags: Blocking, Handler: func(c *Client, args [][]byte) (any, error) {
		w, done := c.Block()
		defer done()
		if before != nil {
			before(w)
		}
		if w.Park(time.Time{}) {
			left.Store(true)
			return nil, nil
		}
		return SimpleString("woken"), nil
	}}
}

// A Wake that comes before Park is not lost: Park returns at once.
func TestWaitWakeBeforeParkIsKept(t *testing.T) {
	var left atomic.Bool
	_, addr := startServer(t, DefaultConfig(), testTable(t, parkCmd("early", &left, func(w *Wait) { w.Wake() })))
	c := dial(t, addr)
	c.send("early\r\n")
	if got := c.reply(); got != "+woken" {
		t.Fatalf("got %q", got)
	}
}

// A client killed while parked has left, as soon as the kill returns, and
// its Park ends.
func TestWaitSeesAKill(t *testing.T) {
	var left atomic.Bool
	var parked atomic.Pointer[Wait]
	srv, addr := startServer(t, DefaultConfig(), testTable(t, parkCmd("park", &left, func(w *Wait) { parked.Store(w) })))
	c := dial(t, addr)
	c.send("park\r\n")
	waitFor(t, func() bool { return srv.Stats().Blocked == 1 })
	if n := srv.Kill(func(ClientInfo) bool { return true }, 0); n != 1 {
		t.Fatalf("killed %d clients, want 1", n)
	}
	if !parked.Load().Left() {
		t.Fatal("a killed client has not left when the kill returns")
	}
	waitFor(t, left.Load)
	if !c.closed() {
		t.Fatal("the killed client's connection stayed open")
	}
}

// A client that sends more than a command's worth while parked is treated
// as gone.
func TestWaitTreatsAFloodAsGone(t *testing.T) {
	var left atomic.Bool
	cfg := DefaultConfig()
	cfg.Limits.MaxCommand = cfg.Limits.MaxBulk
	srv, addr := startServer(t, cfg, testTable(t, parkCmd("park", &left, nil)))
	c := dial(t, addr)
	c.send("park\r\n")
	waitFor(t, func() bool { return srv.Stats().Blocked == 1 })
	flood := strings.Repeat("PING\r\n", int(cfg.Limits.MaxCommand)/6+cfg.ReadBuffer)
	go func() { _, _ = c.nc.Write([]byte(flood)) }()
	waitFor(t, left.Load)
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

// A Wake after the wait is over does nothing: it cannot end a later read of
// the connection, whose next commands are answered as usual.
func TestWaitLateWakeIsHarmless(t *testing.T) {
	var late atomic.Pointer[Wait]
	lateCmd := Command{Name: "late", Arity: 1, Flags: Blocking, Handler: func(c *Client, args [][]byte) (any, error) {
		w, done := c.Block()
		done()
		late.Store(w)
		return SimpleString("done"), nil
	}}
	cfg := DefaultConfig()
	cfg.IdleTimeout = time.Hour
	srv, addr := startServer(t, cfg, testTable(t, lateCmd))
	c := dial(t, addr)
	c.send("late\r\n")
	if got := c.reply(); got != "+done" {
		t.Fatalf("got %q", got)
	}
	c.ping("")
	late.Load().Wake() // the connection now waits in a read
	time.Sleep(50 * time.Millisecond)
	c.ping("after a late wake")
	if srv.Stats().Connected != 1 {
		t.Fatal("a late wake closed the connection")
	}
}

// A drain ends a parked wait even with no OnDrain hook to hand the command
// anything: the server shutting down counts as the client leaving, so the
// drain does not wait for its deadline.
func TestWaitEndsAtADrain(t *testing.T) {
	var left atomic.Bool
	srv, addr, served := serveTest(t, DefaultConfig(), testTable(t, parkCmd("park", &left, nil)))
	c := dial(t, addr)
	c.send("park\r\n")
	waitFor(t, func() bool { return srv.Stats().Blocked == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	<-served
	if !left.Load() {
		t.Fatal("the parked command did not see the drain")
	}
}
