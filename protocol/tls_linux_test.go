package protocol

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"sluice/internal/testcert"
	"sluice/tlsserver"
)

// tlsCert is a server certificate for 127.0.0.1 and the pool that
// trusts it.
func tlsCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testcert.NewCA(t, "sluice test")
	return ca.Pair(t, "sluice", true), ca.Pool()
}

// startTLSServer serves tb over TLS as sluice does: tlsserver's listener,
// which completes each handshake, over RawListener.
func startTLSServer(t *testing.T, cfg Config, tb *Table) (*Server, func() *rawClient) {
	t.Helper()
	cert, pool := tlsCert(t)
	srv, err := NewServer(cfg, tb, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tlsserver.NewListener(RawListener(inner), &tls.Config{Certificates: []tls.Certificate{cert}}, 0, 100, zerolog.Nop())
	served := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
	dialTLS := func() *rawClient {
		nc, err := tls.Dial("tcp", inner.Addr().String(), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
	}
	return srv, dialTLS
}

// serverConn is the server's side of its only client.
func serverConn(t *testing.T, srv *Server) net.Conn {
	t.Helper()
	waitFor(t, func() bool { return srv.Stats().Connected == 1 })
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, c := range srv.clients {
		return c.nc
	}
	return nil
}

// A TLS connection accepted through RawListener is served as a plaintext
// one is: raw system calls, in read sessions. Commands cut into records of
// one byte each (a record, then a partial one, then none at all), an
// argument spread over many records, and a pipeline all get their replies.
func TestTLSConnectionRunsReadSessions(t *testing.T) {
	srv, dialTLS := startTLSServer(t, DefaultConfig(), testTable(t))
	c := dialTLS()
	c.ping("first")
	if _, ok := serverConn(t, srv).(sessionConn); !ok {
		t.Fatalf("the server reads its TLS connection as %T, without read sessions", serverConn(t, srv))
	}

	// One byte per record: every read of the server finds a partial
	// command, and most find the socket empty after it.
	for _, b := range []byte("*2\r\n$4\r\necho\r\n$5\r\nbytes\r\nPING\r\n") {
		c.send(string(b))
	}
	if got := c.reply(); got != "$bytes" {
		t.Fatalf("a command sent a byte per record: got %q", got)
	}
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("an inline command sent a byte per record: got %q", got)
	}

	big := strings.Repeat("x", 200<<10) // many records of 16 KiB
	c.send("*2\r\n$4\r\necho\r\n$" + itoa(len(big)) + "\r\n" + big + "\r\n")
	if got := c.reply(); got != "$"+big {
		t.Fatalf("an argument of %d bytes came back as %d", len(big), len(got)-1)
	}

	c.send(strings.Repeat("echo p\r\n", 1000))
	for i := range 1000 {
		if got := c.reply(); got != "$p" {
			t.Fatalf("pipelined reply %d: %q", i, got)
		}
	}
}

// A blocking command over TLS waits outside the session: a wake ends it,
// and the bytes the client sent meanwhile are the next commands.
func TestTLSBlockingCommandKeepsInputSentMeanwhile(t *testing.T) {
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
	srv, dialTLS := startTLSServer(t, DefaultConfig(), testTable(t, holdCmd))
	c := dialTLS()
	c.send("hold\r\n")
	waitFor(t, func() bool { return srv.Stats().Blocked == 1 })
	c.send("echo later\r\n")
	time.Sleep(50 * time.Millisecond)
	close(released)
	if got := c.reply(); got != "+here" {
		t.Fatalf("got %q", got)
	}
	if got := c.reply(); got != "$later" {
		t.Fatalf("got %q", got)
	}
}

// A TLS client waiting for input in a session is closed by a kill, and one
// that sends its last command and closes gets its reply first.
func TestTLSClientKilledOrLeaving(t *testing.T) {
	srv, dialTLS := startTLSServer(t, DefaultConfig(), testTable(t))
	c := dialTLS()
	c.ping("")
	if n := srv.Kill(func(ClientInfo) bool { return true }, 0); n != 1 {
		t.Fatalf("killed %d clients", n)
	}
	if !c.closed() {
		t.Fatal("a killed TLS client stayed open")
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })

	d := dialTLS()
	d.ping("")
	d.send("echo last\r\n")
	if err := d.nc.(*tls.Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := d.reply(); got != "$last" {
		t.Fatalf("got %q", got)
	}
	if !d.closed() {
		t.Fatal("after its close_notify the connection stayed open")
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

// The idle timeout closes a TLS client in a session as a plaintext one.
func TestTLSIdleTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IdleTimeout = 300 * time.Millisecond
	srv, dialTLS := startTLSServer(t, cfg, testTable(t))
	c := dialTLS()
	c.ping("")
	if !c.closed() {
		t.Fatal("an idle TLS client stayed open")
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
