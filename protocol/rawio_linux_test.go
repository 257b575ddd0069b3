package protocol

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
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
// A connection skips only while input wakes waits that followed a reply;
// it stops when input wakes a wait that did not, or when a wait after a
// skipped read ends without input (here, a deadline standing in for the
// probe).
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
	send := make(chan string, 1)
	wrote := make(chan error, 1)
	go func() {
		for m := range send {
			_, err := c2.Write([]byte(m))
			wrote <- err
		}
	}()
	defer close(send)
	write := func(m string) {
		send <- m
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	// turn reads what is there, then the Read that finds nothing, and
	// reports what it read and whether that last Read was skipped; it
	// answers when told to.
	turn := func(reply bool) (string, bool) {
		if reply {
			defer func() {
				if _, err := c1.Write([]byte("+")); err != nil {
					t.Error(err)
				}
			}()
		}
		var got []byte
		for {
			n, err := c1.Read(buf)
			if err != nil {
				t.Errorf("read: %v", err)
				return string(got), false
			}
			if n == 0 {
				empty, skipped := rc.empty()
				if !empty {
					t.Error("0 bytes but not empty")
				}
				return string(got), skipped
			}
			got = append(got, buf[:n]...)
		}
	}
	type seen struct {
		got     string
		skipped bool
	}
	var turns []seen
	write("abc")
	_ = c1.SetReadDeadline(time.Now().Add(5 * time.Second)) // a lost wake-up fails instead of hanging
	err = rc.session(func() bool {
		n := len(turns) + 1
		got, skipped := turn(n != 3)
		turns = append(turns, seen{got, skipped})
		switch n {
		case 1:
			write("def")
		case 2:
			write("ghi")
		case 3:
			write("jkl") // after a wait with no reply before it
		case 4:
			write("mno")
		case 5:
			_ = c1.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) // as a probe
		}
		return true
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the session ended with %v, want the deadline", err)
	}
	want := []seen{{"abc", false}, {"def", true}, {"ghi", true}, {"jkl", false}, {"mno", true}}
	if !slices.Equal(turns, want) {
		t.Fatalf("turns %v, want %v (read, skipped)", turns, want)
	}
	_ = c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	write("pqr")
	turns = nil
	err = rc.session(func() bool {
		got, skipped := turn(true)
		turns = append(turns, seen{got, skipped})
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []seen{{"pqr", false}}; !slices.Equal(turns, want) {
		t.Fatalf("after a wait that input did not end: turns %v, want %v", turns, want)
	}
	// A reply written between sessions (to a command run outside them)
	// counts for the next session's first wait.
	if _, err := c1.Write([]byte("+")); err != nil {
		t.Fatal(err)
	}
	turns = nil
	err = rc.session(func() bool {
		got, skipped := turn(false)
		turns = append(turns, seen{got, skipped})
		if len(turns) == 1 {
			write("stu")
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []seen{{"", false}, {"stu", true}}; !slices.Equal(turns, want) {
		t.Fatalf("after a reply between sessions: turns %v, want %v", turns, want)
	}
}
