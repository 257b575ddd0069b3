package protocol

import (
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

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

// Inside a session a read that came back short makes the next Read report
// the socket empty without a system call, and the session then waits for
// input: what arrives afterwards wakes it and is read in its next turn.
func TestSessionWaitsAfterAShortRead(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) { sessionWaits(t, network) })
	}
}

func sessionWaits(t *testing.T, network string) {
	c1, c2, stop, err := rawPair(t, network)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rc := c1.(*rawConn)
	if _, err := c2.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	_ = c1.SetReadDeadline(time.Now().Add(5 * time.Second)) // a lost wake-up fails instead of hanging
	buf := make([]byte, 64)
	var got []string
	turn := 0
	waiting := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		<-waiting
		_, err := c2.Write([]byte("def"))
		wrote <- err
	}()
	err = rc.session(func() bool {
		turn++
		for {
			n, err := c1.Read(buf)
			if err != nil {
				t.Errorf("turn %d: %v", turn, err)
				return false
			}
			if n > 0 {
				got = append(got, string(buf[:n]))
				continue
			}
			empty, skipped := rc.empty()
			if !empty {
				t.Errorf("turn %d: 0 bytes but not empty", turn)
				return false
			}
			if turn == 1 {
				if !skipped {
					t.Error("after a short read the socket was read again")
				}
				close(waiting)
				return true
			}
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "abc" || got[1] != "def" || turn != 2 {
		t.Fatalf("read %q in %d turns, want [abc def] in 2", got, turn)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
