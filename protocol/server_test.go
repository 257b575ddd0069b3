package protocol

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// testTable is a small command table exercising the dispatcher.
func testTable(t *testing.T, extra ...Command) *Table {
	cmds := append([]Command{
		{Name: "ping", Arity: -1, Handler: func(c *Client, args [][]byte) (any, error) { return SimpleString("PONG"), nil }},
		{Name: "echo", Arity: 2, Handler: func(c *Client, args [][]byte) (any, error) { return args[1], nil }},
		{Name: "auth", Arity: -2, Flags: NoAuth, Handler: func(c *Client, args [][]byte) (any, error) {
			if err := c.Authenticate("", string(args[len(args)-1])); err != nil {
				return nil, err
			}
			return OK, nil
		}},
		{Name: "quit", Arity: 1, Flags: NoAuth, Handler: func(c *Client, args [][]byte) (any, error) {
			c.CloseAfterReply()
			return OK, nil
		}},
		{Name: "boom", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) { panic("boom") }},
		{Name: "weird", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) { return struct{}{}, nil }},
		{Name: "big", Arity: 2, Handler: func(c *Client, args [][]byte) (any, error) {
			n, _ := strconv.Atoi(string(args[1]))
			return strings.Repeat("x", n), nil
		}},
		{Name: "shapes", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
			return []any{nil, NullArray, int64(-5), 7, "bulk", []byte("bytes"), SimpleString("simple"), []string{"a"}, Error("ERR inner")}, nil
		}},
	}, extra...)
	tb, err := NewTable(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// startServer serves tb on a loopback port and shuts the server down when
// the test ends, failing it if the drain is cut short.
func startServer(t *testing.T, cfg Config, tb *Table) (*Server, string) {
	t.Helper()
	srv, addr, served := serveTest(t, cfg, tb)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
	return srv, addr
}

// serveTest serves tb on a loopback port for a test that shuts the server
// down itself; served is closed when Serve returns.
func serveTest(t *testing.T, cfg Config, tb *Table) (srv *Server, addr string, served <-chan struct{}) {
	t.Helper()
	srv, err := NewServer(cfg, tb, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	return srv, ln.Addr().String(), done
}

type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// ping sends PING and fails the test unless it gets +PONG; when is what
// the failure says about the moment, if anything.
func (c *rawClient) ping(when string) {
	c.t.Helper()
	c.send("PING\r\n")
	if got := c.reply(); got != "+PONG" {
		if when != "" {
			c.t.Fatalf("%s: PING answered %q", when, got)
		}
		c.t.Fatalf("PING answered %q", got)
	}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one reply and renders it compactly: +OK, -ERR x, :1, $bulk,
// nil, *[a b], *nil.
func (c *rawClient) reply() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := readReply(c.r)
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return s
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch line[0] {
	case '+', '-', ':':
		return line, nil
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "nil", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return "$" + string(b[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "*nil", nil
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return "*[" + strings.Join(parts, " ") + "]", nil
	}
	return "", fmt.Errorf("bad reply line %q", line)
}

// closed reports whether the server closed the connection.
// closed reports whether the server closes the connection (end of stream
// or reset) within 5 seconds; a byte or a timeout is not closed.
func (c *rawClient) closed() bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := c.r.ReadByte()
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestDispatcher(t *testing.T) {
	_, addr := startServer(t, DefaultConfig(), testTable(t))
	c := dial(t, addr)
	for _, tc := range []struct{ send, want string }{
		{"PING\r\n", "+PONG"},
		{"*2\r\n$4\r\nEcHo\r\n$2\r\nhi\r\n", "$hi"},
		{"*3\r\n$4\r\necho\r\n$1\r\na\r\n$1\r\nb\r\n", "-ERR wrong number of arguments for 'echo' command"},
		{"*3\r\n$4\r\nNOPE\r\n$1\r\na\r\n$2\r\nb\n\r\n", "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b ' "},
		{"boom\r\n", "-ERR internal error"},
		{"weird\r\n", "-ERR internal error"},
		{"shapes\r\n", "*[nil *nil :-5 :7 $bulk $bytes +simple *[$a] -ERR inner]"},
		{"AUTH x\r\n", "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
	} {
		c.send(tc.send)
		if got := c.reply(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
	c.ping("server unusable after a panic")
}

func TestPipelineRepliesInOrder(t *testing.T) {
	_, addr := startServer(t, DefaultConfig(), testTable(t))
	c := dial(t, addr)
	var b strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "*2\r\n$4\r\necho\r\n$%d\r\n%d\r\n", len(strconv.Itoa(i)), i)
	}
	c.send(b.String())
	for i := 0; i < 1000; i++ {
		if got := c.reply(); got != "$"+strconv.Itoa(i) {
			t.Fatalf("reply %d = %q", i, got)
		}
	}
}

func TestHostileInputClosesWithProtocolError(t *testing.T) {
	_, addr := startServer(t, DefaultConfig(), testTable(t))
	for _, tc := range []struct{ send, want string }{
		{"*1\r\n$9223372036854775807\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*9223372036854775807\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*2\r\n$4\r\nECHO\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'"},
		{strings.Repeat("A", 70<<10), "-ERR Protocol error: too big inline request"},
		{"*1\r\n$" + strconv.Itoa(512<<20+1) + "\r\n", "-ERR Protocol error: invalid bulk length"},
	} {
		c := dial(t, addr)
		c.send(tc.send)
		if got := c.reply(); got != tc.want {
			t.Errorf("%.30q: got %q, want %q", tc.send, got, tc.want)
		}
		if !c.closed() {
			t.Errorf("%.30q: connection left open", tc.send)
		}
	}
	// The server survived all of it.
	c := dial(t, addr)
	c.ping("")
}

func TestAuth(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RequirePass = "s3cret"
	_, addr := startServer(t, cfg, testTable(t))
	c := dial(t, addr)
	c.send("PING\r\n")
	if got := c.reply(); got != "-NOAUTH Authentication required." {
		t.Fatalf("got %q", got)
	}
	c.send("NOPE\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "-ERR unknown command") {
		t.Fatalf("got %q", got)
	}
	c.send("AUTH wrong\r\n")
	if got := c.reply(); got != "-WRONGPASS invalid username-password pair or user is disabled." {
		t.Fatalf("got %q", got)
	}
	// AUTH and a command too big for an unauthenticated client, pipelined.
	big := strings.Repeat("x", 20000)
	c.send("*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n*2\r\n$4\r\necho\r\n$20000\r\n" + big + "\r\n")
	if got := c.reply(); got != "+OK" {
		t.Fatalf("got %q", got)
	}
	if got := c.reply(); got != "$"+big {
		t.Fatalf("echo after AUTH: got %.40q", got)
	}

	// Before AUTH, Redis's small limits apply.
	d := dial(t, addr)
	d.send("*11\r\n")
	if got := d.reply(); got != "-ERR Protocol error: unauthenticated multibulk length" {
		t.Fatalf("got %q", got)
	}
	e := dial(t, addr)
	e.send("*2\r\n$4\r\necho\r\n$20000\r\n")
	if got := e.reply(); got != "-ERR Protocol error: unauthenticated bulk length" {
		t.Fatalf("got %q", got)
	}
}

func TestMaxClients(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxClients = 2
	_, addr := startServer(t, cfg, testTable(t))
	a, b := dial(t, addr), dial(t, addr)
	a.send("PING\r\n")
	b.send("PING\r\n")
	a.reply()
	b.reply()
	c := dial(t, addr)
	if got := c.reply(); got != "-ERR max number of clients reached" {
		t.Fatalf("got %q", got)
	}
	if !c.closed() {
		t.Fatal("refused client left open")
	}
	a.nc.Close()
	waitFor(t, func() bool {
		d := dial(t, addr)
		d.send("PING\r\n")
		return d.reply() == "+PONG"
	})
}

func TestIdleTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IdleTimeout = 200 * time.Millisecond
	_, addr := startServer(t, cfg, testTable(t))
	c := dial(t, addr)
	c.send("PING\r\n")
	c.reply()
	if !c.closed() {
		t.Fatal("idle client not closed")
	}
}

func TestClientThatStopsReadingIsClosed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout = 200 * time.Millisecond
	srv, addr := startServer(t, cfg, testTable(t))
	c := dial(t, addr)
	// Ask for far more than the socket buffers hold, and never read.
	var b strings.Builder
	for i := 0; i < 64; i++ {
		b.WriteString("big 1000000\r\n")
	}
	c.send(b.String())
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

func TestProtectedModeRefusesNonLoopback(t *testing.T) {
	if isLoopback(&net.TCPAddr{IP: net.ParseIP("10.1.2.3")}) {
		t.Fatal("10.1.2.3 taken for loopback")
	}
	if !isLoopback(&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}) || !isLoopback(&net.TCPAddr{IP: net.ParseIP("::1")}) {
		t.Fatal("loopback not recognised")
	}
	srv, err := NewServer(DefaultConfig(), testTable(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	defer client.Close()
	srv.accept(&fakeRemote{Conn: server, remote: &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}})
	r := bufio.NewReader(client)
	got, err := readReply(r)
	if err != nil || !strings.HasPrefix(got, "-DENIED sluice is running in protected mode") {
		t.Fatalf("got %q, %v", got, err)
	}
}

type fakeRemote struct {
	net.Conn
	remote net.Addr
}

func (f *fakeRemote) RemoteAddr() net.Addr { return f.remote }

// A blocking handler: earlier pipelined replies are written before it
// waits, a disconnect ends the wait, a wake from another goroutine ends it
// too, and bytes sent meanwhile are kept for the next commands.
func TestBlockFlushesEarlierRepliesAndSeesDisconnect(t *testing.T) {
	var sawGone atomic.Bool
	waitCmd := Command{Name: "wait", Arity: 1, Flags: Blocking, Handler: func(c *Client, args [][]byte) (any, error) {
		w, done := c.Block()
		defer done()
		if w.Park(time.Now().Add(10 * time.Second)) {
			sawGone.Store(true)
			return nil, nil
		}
		return SimpleString("timeout"), nil
	}}
	released := make(chan struct{})
	holdCmd := Command{Name: "hold", Arity: 1, Flags: Blocking, Handler: func(c *Client, args [][]byte) (any, error) {
		w, done := c.Block()
		defer done()
		go func() { <-released; w.Wake() }()
		if w.Park(time.Time{}) {
			return SimpleString("gone"), nil
		}
		return SimpleString("here"), nil
	}}
	srv, addr := startServer(t, DefaultConfig(), testTable(t, waitCmd, holdCmd))
	c := dial(t, addr)
	c.send("PING\r\necho a\r\nwait\r\n")
	if c.reply() != "+PONG" || c.reply() != "$a" {
		t.Fatal("replies before the blocking command were not flushed")
	}
	c.nc.Close()
	waitFor(t, func() bool { return sawGone.Load() && srv.Stats().Connected == 0 })

	// Bytes sent while blocked are kept for the next commands.
	d := dial(t, addr)
	d.send("hold\r\n")
	waitFor(t, func() bool { return srv.Stats().Blocked == 1 })
	d.send("echo later\r\n")
	time.Sleep(50 * time.Millisecond)
	close(released)
	if got := d.reply(); got != "+here" {
		t.Fatalf("got %q", got)
	}
	if got := d.reply(); got != "$later" {
		t.Fatalf("got %q", got)
	}
}

func TestShutdownDrains(t *testing.T) {
	srv, addr, done := serveTest(t, DefaultConfig(), testTable(t))
	before := runtime.NumGoroutine()
	c := dial(t, addr)
	c.send("PING\r\n")
	c.reply()
	drained := false
	srv.OnDrain(func() { drained = true })
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	if !drained || !c.closed() {
		t.Fatal("shutdown did not drain and close")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after shutdown")
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A reply that cannot be written runs the callbacks registered with it
// (a reservation is released at once instead of waiting for its lease).
func TestOnWriteFailureRunsWhenTheReplyCannotBeWritten(t *testing.T) {
	failed := make(chan struct{})
	var once atomic.Bool
	cmd := Command{Name: "reserve", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		c.OnWriteFailure(func() {
			if once.CompareAndSwap(false, true) {
				close(failed)
			}
		})
		return strings.Repeat("x", 4<<20), nil
	}}
	cfg := DefaultConfig()
	cfg.WriteTimeout = 100 * time.Millisecond
	_, addr := startServer(t, cfg, testTable(t, cmd))
	c := dial(t, addr)
	c.send("reserve\r\n") // and never read
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Fatal("write failure callback never ran")
	}
}

// Replies that were written do not run the callbacks.
func TestOnWriteFailureNotRunAfterASuccessfulWrite(t *testing.T) {
	var ran atomic.Bool
	cmd := Command{Name: "reserve", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		c.OnWriteFailure(func() { ran.Store(true) })
		return OK, nil
	}}
	srv, addr := startServer(t, DefaultConfig(), testTable(t, cmd))
	c := dial(t, addr)
	c.send("reserve\r\n")
	if c.reply() != "+OK" {
		t.Fatal("no reply")
	}
	c.nc.Close()
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
	if ran.Load() {
		t.Fatal("callback ran although the reply was written")
	}
}

// failingListener fails every Accept until closed.
type failingListener struct {
	calls  atomic.Int64
	closed chan struct{}
}

func (l *failingListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	l.calls.Add(1)
	return nil, fmt.Errorf("accept: too many open files")
}
func (l *failingListener) Close() error   { close(l.closed); return nil }
func (l *failingListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestAcceptErrorsBackOff(t *testing.T) {
	srv, err := NewServer(DefaultConfig(), testTable(t), zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	ln := &failingListener{closed: make(chan struct{})}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	time.Sleep(300 * time.Millisecond)
	// 5, 10, 20, 40, 80, 160 ms: a handful of attempts, not a spin.
	if n := ln.calls.Load(); n > 10 {
		t.Fatalf("%d accept attempts in 300ms", n)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
}

// Every byte written counts in the output total, also those of a large
// reply that went out in several writes while it was being encoded.
func TestNetOutputCountsEveryWrite(t *testing.T) {
	many := Command{Name: "many", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		out := make([]string, 100)
		for i := range out {
			out[i] = strings.Repeat("x", 1000)
		}
		return out, nil
	}}
	cfg := DefaultConfig()
	cfg.FlushAt = 4096
	srv, addr := startServer(t, cfg, testTable(t, many))
	c := dial(t, addr)
	c.send("many\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "*[") {
		t.Fatalf("reply %.40q", got)
	}
	want := int64(len("*100\r\n") + 100*len("$1000\r\n"+strings.Repeat("x", 1000)+"\r\n"))
	waitFor(t, func() bool { return srv.Stats().NetOutputBytes == want })
}

// boxTable has a command with subcommands, whose arity the dispatcher
// checks from the Subs entries before the handler runs.
func boxTable(t *testing.T) *Table {
	box := Command{Name: "box", Arity: -2, Handler: func(c *Client, args [][]byte) (any, error) {
		return SimpleString("ran " + strings.ToLower(string(args[1]))), nil
	}, Subs: []Command{
		{Name: "box|help", Arity: 2},
		{Name: "box|get", Arity: 3},
		{Name: "box|list", Arity: -2},
		{Name: "box|put", Arity: -4},
	}}
	return testTable(t, box)
}

func TestSubcommandArity(t *testing.T) {
	_, addr := startServer(t, DefaultConfig(), boxTable(t))
	c := dial(t, addr)
	for _, tc := range []struct{ send, want string }{
		{"BOX HELP\r\n", "+ran help"},
		{"BOX HELP x\r\n", "-ERR wrong number of arguments for 'box|help' command"},
		{"box hElP x y\r\n", "-ERR wrong number of arguments for 'box|help' command"},
		{"BOX GET\r\n", "-ERR wrong number of arguments for 'box|get' command"},
		{"BOX GET a\r\n", "+ran get"},
		{"BOX GET a b\r\n", "-ERR wrong number of arguments for 'box|get' command"},
		{"BOX LIST\r\n", "+ran list"},
		{"BOX LIST a b c\r\n", "+ran list"},
		{"BOX PUT a\r\n", "-ERR wrong number of arguments for 'box|put' command"},
		{"BOX PUT a b c\r\n", "+ran put"},
		// A subcommand not listed is the handler's to answer.
		{"BOX OTHER a b c\r\n", "+ran other"},
		{"BOX\r\n", "-ERR wrong number of arguments for 'box' command"},
	} {
		c.send(tc.send)
		if got := c.reply(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
}

func TestNewTableChecksSubcommands(t *testing.T) {
	h := func(c *Client, args [][]byte) (any, error) { return OK, nil }
	for _, sub := range []Command{
		{Name: "box|", Arity: 2},
		{Name: "other|get", Arity: 2},
		{Name: "box|Get", Arity: 2},
		{Name: "get", Arity: 2},
		{Name: "box|get", Arity: 0},
		{Name: "box|get", Arity: 1},
		{Name: "box|get", Arity: -1},
	} {
		if _, err := NewTable([]Command{{Name: "box", Arity: -2, Handler: h, Subs: []Command{sub}}}); err == nil {
			t.Errorf("%+v: accepted", sub)
		}
	}
	dup := []Command{{Name: "box|get", Arity: 2}, {Name: "box|get", Arity: 3}}
	if _, err := NewTable([]Command{{Name: "box", Arity: -2, Handler: h, Subs: dup}}); err == nil {
		t.Error("a subcommand defined twice was accepted")
	}
}

// failingWrites is a loopback connection whose reads come from a fixed
// input and whose writes all fail.
type failingWrites struct {
	net.Conn
	in     *strings.Reader
	closed chan struct{}
	once   sync.Once
}

func (f *failingWrites) Read(p []byte) (int, error) {
	if f.in.Len() == 0 {
		<-f.closed
		return 0, net.ErrClosed
	}
	return f.in.Read(p)
}
func (f *failingWrites) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }
func (f *failingWrites) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}
func (f *failingWrites) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
}
func (f *failingWrites) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6379}
}
func (f *failingWrites) SetReadDeadline(time.Time) error  { return nil }
func (f *failingWrites) SetWriteDeadline(time.Time) error { return nil }

// When an early write inside a pipeline fails, the commands after it do
// not run: the connection is known to be gone.
func TestFailedEarlyWriteStopsThePipeline(t *testing.T) {
	var ran atomic.Int64
	count := Command{Name: "count", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		ran.Add(1)
		return OK, nil
	}}
	cfg := DefaultConfig()
	cfg.FlushAt = 512
	srv, err := NewServer(cfg, testTable(t, count), zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	conn := &failingWrites{in: strings.NewReader("big 1000\r\ncount\r\ncount\r\n"), closed: make(chan struct{})}
	srv.accept(conn)
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
	if n := ran.Load(); n != 0 {
		t.Fatalf("%d commands ran after the write failed", n)
	}
}

// A command's Started time is its clock: commands pipelined together
// share the reads, in order, and a command that arrives after a pause
// starts after the pause, not when the one before it ended.
func TestStartedIsTheCommandsClock(t *testing.T) {
	stamp := Command{Name: "stamp", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		return c.Started().UnixNano(), nil
	}}
	_, addr := startServer(t, DefaultConfig(), testTable(t, stamp))
	c := dial(t, addr)
	stamps := func(n int) []int64 {
		c.send(strings.Repeat("stamp\r\n", n))
		out := make([]int64, n)
		for i := range out {
			r := c.reply()
			v, err := strconv.ParseInt(strings.TrimPrefix(r, ":"), 10, 64)
			if err != nil {
				t.Fatalf("stamp reply %q", r)
			}
			out[i] = v
		}
		return out
	}
	before := time.Now().UnixNano()
	first := stamps(16)
	for i, v := range first {
		if v < before || (i > 0 && v < first[i-1]) {
			t.Fatalf("stamps of one pipeline out of order: %v (sent at %d)", first, before)
		}
	}
	time.Sleep(20 * time.Millisecond)
	resent := time.Now().UnixNano()
	if v := stamps(1)[0]; v < resent {
		t.Fatalf("a command sent at %d started at %d, before it was sent", resent, v)
	}
}
