package protocol

import (
	"io"
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/net/nettest"
)

// The raw reads and writes must behave as net.Conn's own: nettest checks
// reads and writes of every size (a megabyte each way, so writes meet a
// full socket buffer), deadlines, concurrent use, and Close from another
// goroutine.
func TestRawConnIsANetConn(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				return rawPair(t, network)
			})
		})
	}
}

func rawPair(t *testing.T, network string) (c1, c2 net.Conn, stop func(), err error) {
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	d, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		return nil, nil, nil, err
	}
	a := <-accepted
	if a == nil {
		d.Close()
		t.Fatal("accept failed")
	}
	c1, c2 = fastConn(a), fastConn(d)
	for _, c := range []net.Conn{c1, c2} {
		if _, ok := c.(*rawConn); !ok {
			t.Fatalf("fastConn(%T) = %T, want the raw connection", a, c)
		}
	}
	return c1, c2, func() { c1.Close(); c2.Close() }, nil
}

// A connection that is not a socket is left as it is.
func TestFastConnLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := fastConn(a); c != a {
		t.Fatalf("fastConn(pipe) = %T, want the pipe itself", c)
	}
}

// A read or a write on the raw connection allocates nothing.
func TestRawConnCostsNoAllocation(t *testing.T) {
	c1, c2, stop, err := rawPair(t, "tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	msg, buf := []byte("PING\r\n"), make([]byte, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c1.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c2, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write and read, want 0", allocs)
	}
}
