package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Peer is what a node knows of another member: its id, the raft address it
// is dialled at, and the address its clients use (what Sentinel-aware
// clients are sent to).
type Peer struct {
	ID         string
	RaftAddr   string
	ClientAddr string
	Seen       time.Time // last hello from it
}

// After the TLS handshake both sides of a raft connection say who they are
// in one line, "SLUICE-PEER 1 <id> <raft-addr> <client-addr>\n", the dialer
// first. Only then is the connection raft's. The line is bounded; anything
// else closes the connection.
const (
	helloPrefix = "SLUICE-PEER 1 "
	maxHello    = 512
)

func appendHello(dst []byte, p Peer) []byte {
	return fmt.Appendf(dst, "%s%s %s %s\n", helloPrefix, p.ID, p.RaftAddr, p.ClientAddr)
}

// readHello reads a peer's hello line from r.
func readHello(r *bufio.Reader) (Peer, error) {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return Peer{}, err
		}
		if b == '\n' {
			break
		}
		if len(line) >= maxHello {
			return Peer{}, errors.New("peer hello too long")
		}
		line = append(line, b)
	}
	s, ok := strings.CutPrefix(string(line), helloPrefix)
	if !ok {
		return Peer{}, errors.New("not a sluice peer hello")
	}
	f := strings.Fields(s)
	if len(f) != 3 {
		return Peer{}, errors.New("malformed peer hello")
	}
	return Peer{ID: f[0], RaftAddr: f[1], ClientAddr: f[2], Seen: time.Now()}, nil
}

// helloConn is a connection whose hello was read through a buffer: what
// the buffer holds past the hello is read first.
type helloConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *helloConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// greet exchanges hellos on c (dialer: we speak first) within the
// deadline, records the peer and returns the connection to hand raft.
func (s *stream) greet(c net.Conn, dialer bool) (net.Conn, error) {
	c.SetDeadline(time.Now().Add(s.shake))
	defer c.SetDeadline(time.Time{})
	r := bufio.NewReaderSize(c, 1024)
	var peer Peer
	var err error
	if dialer {
		if _, err = c.Write(appendHello(nil, s.self)); err == nil {
			peer, err = readHello(r)
		}
	} else {
		if peer, err = readHello(r); err == nil {
			_, err = c.Write(appendHello(nil, s.self))
		}
	}
	if err != nil {
		return nil, err
	}
	s.peers.seen(peer)
	return &helloConn{Conn: c, r: r}, nil
}

// peerBook is what hellos told this node, by id.
type peerBook struct {
	mu sync.Mutex
	by map[string]Peer
}

func (b *peerBook) seen(p Peer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.by == nil {
		b.by = map[string]Peer{}
	}
	b.by[p.ID] = p
}

// get is the peer of id, if it said hello.
func (b *peerBook) get(id string) (Peer, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.by[id]
	return p, ok
}

// all lists the peers known, by id.
func (b *peerBook) all() []Peer {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Peer, 0, len(b.by))
	for _, p := range b.by {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return out
}
