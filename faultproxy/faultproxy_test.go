package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) (*Proxy, net.Conn, *bufio.Reader) {
	t.Helper()
	p, err := New("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c, bufio.NewReader(c)
}

// roundTrip sends a line and reports what came back within wait ("" when
// nothing did).
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string, wait time.Duration) string {
	t.Helper()
	if line != "" {
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(wait))
	got, err := r.ReadString('\n')
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return ""
		}
		t.Fatalf("read: %v", err)
	}
	return got[:len(got)-1]
}

func TestPassDropHold(t *testing.T) {
	p, c, r := start(t)
	if got := roundTrip(t, c, r, "a", 5*time.Second); got != "a" {
		t.Fatalf("pass: got %q", got)
	}

	p.Set(Up, Drop)
	if got := roundTrip(t, c, r, "lost", 200*time.Millisecond); got != "" {
		t.Fatalf("up dropped: got %q", got)
	}
	p.Set(Up, Pass)
	if got := roundTrip(t, c, r, "b", 5*time.Second); got != "b" {
		t.Fatalf("after the drop: got %q (the dropped line must not arrive)", got)
	}

	p.Set(Down, Drop)
	if got := roundTrip(t, c, r, "reply lost", 200*time.Millisecond); got != "" {
		t.Fatalf("down dropped: got %q", got)
	}
	p.Set(Down, Pass)

	p.SetBoth(Hold)
	if got := roundTrip(t, c, r, "held", 200*time.Millisecond); got != "" {
		t.Fatalf("held: got %q", got)
	}
	p.SetBoth(Pass)
	if got := roundTrip(t, c, r, "", 5*time.Second); got != "held" {
		t.Fatalf("held bytes must arrive after the hold: got %q", got)
	}
}

func TestCutClosesConnections(t *testing.T) {
	p, c, r := start(t)
	if got := roundTrip(t, c, r, "a", 5*time.Second); got != "a" {
		t.Fatalf("got %q", got)
	}
	p.Cut()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("the connection survived a cut")
	}
	// New connections work.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := roundTrip(t, c2, bufio.NewReader(c2), "b", 5*time.Second); got != "b" {
		t.Fatalf("after the cut: got %q", got)
	}
}
