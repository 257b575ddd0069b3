package tlsserver

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A client that connects and never sends a hello is closed when the
// handshake deadline passes, and its failure is counted.
func TestHandshakeDeadline(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuf
	l := NewListener(inner, (&Certs{}).Config(), 50*time.Millisecond, 10, zerolog.New(&logs))
	defer l.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("read: %v, want the server to close the connection", err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a silent client past the handshake deadline")
	}
	for l.Failed() != 1 {
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(logs.String(), "TLS handshake failed") {
		t.Fatalf("not logged: %s", logs.String())
	}
}

// One line per source address per minute; the next says how many were not
// logged; another address has its own line.
func TestFailureLogRateLimited(t *testing.T) {
	var logs lockedBuf
	now := time.Unix(1000, 0)
	l := &Listener{log: zerolog.New(&logs), now: func() time.Time { return now }, logged: map[string]*source{}}
	a := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}
	b := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}
	for i := range 5 {
		a.Port = 1000 + i // a new connection each time: the port does not matter
		l.logFailure(a, errors.New("bad hello"))
	}
	l.logFailure(b, errors.New("bad hello"))
	if n := strings.Count(logs.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want one per address:\n%s", n, logs.String())
	}
	now = now.Add(59 * time.Second)
	l.logFailure(a, errors.New("bad hello"))
	now = now.Add(2 * time.Second)
	l.logFailure(a, errors.New("bad hello"))
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"failed_since_last_logged":5`) {
		t.Fatalf("after a minute:\n%s", logs.String())
	}
}

// Past maxPending handshakes in progress, a new connection is closed at
// once instead of waiting for the deadline.
func TestPendingHandshakesBounded(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuf
	l := NewListener(inner, (&Certs{}).Config(), time.Minute, 1, zerolog.New(&logs))
	defer l.Close()
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for len(l.pending) != 1 {
		time.Sleep(time.Millisecond)
	}
	extra, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a connection past the handshake limit")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a connection past the handshake limit was kept")
	}
	if l.Failed() != 1 || !strings.Contains(logs.String(), "too many TLS handshakes") {
		t.Fatalf("failed %d, logs %s", l.Failed(), logs.String())
	}
}
