package cluster

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"sluice/internal/testcert"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func listenStream(t *testing.T, p Peering, log io.Writer) *stream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newStream(ln, nil, p, nil, Peer{ID: "t", ClientAddr: "127.0.0.1:1"}, zerolog.New(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// acceptor collects what a stream's Accept hands raft.
type acceptor struct {
	*stream
	conns chan net.Conn
}

func accepting(s *stream) *acceptor {
	a := &acceptor{s, make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := s.Accept()
			if err != nil {
				return
			}
			a.conns <- c
		}
	}()
	return a
}

// accepted waits for the next connection Accept hands raft, or nil after
// wait.
func accepted(a *acceptor, wait time.Duration) net.Conn {
	select {
	case c := <-a.conns:
		return c
	case <-time.After(wait):
		return nil
	}
}

// exchange checks that bytes written on a arrive on b.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	go a.Write([]byte("entry"))
	buf := make([]byte, 5)
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "entry" {
		t.Fatalf("exchange: %q %v", buf, err)
	}
}

var groupKey = []byte("a shared secret of the group")

func TestKeyPeersConnect(t *testing.T) {
	srv := accepting(listenStream(t, Peering{Key: groupKey}, io.Discard))
	cli := listenStream(t, Peering{Key: groupKey}, io.Discard)
	c, err := cli.Dial(raftAddr(srv), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := accepted(srv, 10*time.Second)
	if in == nil {
		t.Fatal("a peer with the key was not accepted")
	}
	defer in.Close()
	exchange(t, c, in)
	exchange(t, in, c)
	// Each side learned who the other is from its hello.
	if p, ok := srv.peers.get("t"); !ok || p.ClientAddr != "127.0.0.1:1" || p.RaftAddr != cli.Addr().String() {
		t.Fatalf("the server learned %+v %v", p, ok)
	}
	if p, ok := cli.peers.get("t"); !ok || p.RaftAddr != srv.Addr().String() {
		t.Fatalf("the dialer learned %+v %v", p, ok)
	}
}

// A peer that passes TLS but says no proper hello is refused.
func TestPeerWithoutHelloIsRefused(t *testing.T) {
	srv := accepting(listenStream(t, Peering{Key: groupKey}, io.Discard))
	_, client, err := Peering{Key: groupKey}.TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", srv.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("RAFT-RPC without a hello\n"))
	if in := accepted(srv, time.Second); in != nil {
		t.Fatal("a connection without a hello reached raft")
	}
}

// A peer with another key, a plaintext stranger and garbage are refused:
// raft never sees their connections, and the refusal is logged.
func TestStrangersAreRefused(t *testing.T) {
	var log syncBuf
	srv := accepting(listenStream(t, Peering{Key: groupKey}, &log))
	addr := raftAddr(srv)

	other := listenStream(t, Peering{Key: []byte("another group's secret key")}, io.Discard)
	if c, err := other.Dial(addr, 5*time.Second); err == nil {
		// TLS 1.3: the client may finish before the server checks it;
		// the server still refuses, so nothing it sends arrives.
		c.Write([]byte("entry"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the server answered a peer with the wrong key")
		}
		c.Close()
	}
	raw, err := net.Dial("tcp", string(addr))
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("\x00\x01garbage that is not a TLS hello\r\n"))
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, raw)
	raw.Close()

	if c := accepted(srv, time.Second); c != nil {
		t.Fatal("a stranger's connection reached raft")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "raft connection refused") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged: %s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The check goes on working for members.
	member := listenStream(t, Peering{Key: groupKey}, io.Discard)
	c, err := member.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if in := accepted(srv, 10*time.Second); in == nil {
		t.Fatal("a member was refused after strangers")
	} else {
		in.Close()
	}
}

// With certificate files, a peer whose certificate chains to the CA is a
// member; one signed by another CA is refused.
func TestCertificatePeers(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "group")
	a := ca.Write(t, dir, "a", "node-a", true, ca)
	b := ca.Write(t, dir, "b", "node-b", true, ca)
	rogue := testcert.NewCA(t, "rogue")
	r := rogue.Write(t, dir, "r", "node-r", true, ca) // trusts the group's CA, signed by another

	srv := accepting(listenStream(t, Peering{CertFile: a.Cert, KeyFile: a.Key, CAFile: a.CA}, io.Discard))
	cli := listenStream(t, Peering{CertFile: b.Cert, KeyFile: b.Key, CAFile: b.CA}, io.Discard)
	c, err := cli.Dial(raftAddr(srv), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := accepted(srv, 10*time.Second)
	if in == nil {
		t.Fatal("a member with a certificate of the CA was refused")
	}
	defer in.Close()
	exchange(t, c, in)

	bad := listenStream(t, Peering{CertFile: r.Cert, KeyFile: r.Key, CAFile: r.CA}, io.Discard)
	if c, err := bad.Dial(raftAddr(srv), 5*time.Second); err == nil {
		c.Write([]byte("entry"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the server answered a peer of another CA")
		}
		c.Close()
	}
	if c := accepted(srv, time.Second); c != nil {
		t.Fatal("a peer of another CA reached raft")
	}
}

func raftAddr(s *acceptor) raft.ServerAddress { return raft.ServerAddress(s.Addr().String()) }

func TestPeeringSettings(t *testing.T) {
	for _, tc := range []struct {
		p    Peering
		want string
	}{
		{Peering{}, "set a cluster key or TLS certificate files"},
		{Peering{Key: []byte("short")}, "need at least 16"},
		{Peering{Key: groupKey, CertFile: "x"}, "choose one"},
		{Peering{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key", CAFile: "/x"}, "no such file"},
	} {
		_, _, err := tc.p.TLSConfigs()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.p, err, tc.want)
		}
	}
}

// Connections that connect and say nothing cannot keep a peer out, even
// when they fill every handshake slot and would sit there for an hour: a
// newcomer ends the oldest.
func TestSilentConnectionsDoNotKeepPeersOut(t *testing.T) {
	defer func(d time.Duration) { handshakeTimeout = d }(handshakeTimeout)
	handshakeTimeout = time.Hour
	srv := accepting(listenStream(t, Peering{Key: groupKey}, io.Discard))
	for range maxHandshakes {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	cli := listenStream(t, Peering{Key: groupKey}, io.Discard)
	c, err := cli.Dial(raftAddr(srv), 30*time.Second)
	if err != nil {
		t.Fatalf("a peer could not connect past %d silent connections: %v", maxHandshakes, err)
	}
	defer c.Close()
	in := accepted(srv, 30*time.Second)
	if in == nil {
		t.Fatal("the peer's connection never reached raft")
	}
	defer in.Close()
	exchange(t, c, in)
}
