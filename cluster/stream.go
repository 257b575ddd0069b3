package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// handshakeTimeout bounds a peer's TLS handshake and hello: a stranger
// that connects and says nothing holds a slot no longer than this (a
// variable for tests).
var handshakeTimeout = 5 * time.Second

// maxHandshakes bounds the handshakes in progress at once. A connection
// that arrives when all are taken ends the oldest: a peer's handshake
// takes milliseconds, so connections that sit silent cannot keep the
// group's own out.
const maxHandshakes = 64

// stream is raft's StreamLayer over authenticated TLS: Accept hands raft
// only connections whose peer passed the check, and Dial only returns
// connections to a peer that did.
//
// Its goroutines: one accept loop and at most maxHandshakes handshakes,
// all ended by Close.
type stream struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	via       map[string]string // dial address rewrites (tests: a fault proxy per link)
	log       zerolog.Logger
	self      Peer     // what this node says in its hello
	peers     peerBook // what the others said in theirs

	ready  chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	slots  chan struct{}
	shake  time.Duration // handshakeTimeout when the stream was made
	hmu    sync.Mutex
	shakes []net.Conn   // connections in their handshake, oldest first; under hmu
	failed atomic.Int64 // handshakes refused since the last log line
	logged atomic.Int64 // unix nanoseconds of that line
}

var _ raft.StreamLayer = (*stream)(nil)

// newStream serves raft on ln. advertise is the address peers dial (ln's
// own when nil).
func newStream(ln net.Listener, advertise net.Addr, p Peering, via map[string]string, self Peer, log zerolog.Logger) (*stream, error) {
	server, client, err := p.TLSConfigs()
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	self.RaftAddr = advertise.String()
	if self.ID == "" {
		self.ID = "-"
	}
	if self.ClientAddr == "" {
		self.ClientAddr = "-"
	}
	s := &stream{ln: ln, advertise: advertise, server: server, client: client, via: via, log: log, self: self,
		ready: make(chan net.Conn), done: make(chan struct{}), slots: make(chan struct{}, maxHandshakes),
		shake: handshakeTimeout}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *stream) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.endOldest()
			select {
			case s.slots <- struct{}{}:
			case <-s.done:
				c.Close()
				return
			}
		}
		s.hmu.Lock()
		s.shakes = append(s.shakes, c)
		s.hmu.Unlock()
		s.wg.Add(1)
		go s.handshake(c)
	}
}

// handshake checks a new connection's peer and hands it to Accept.
func (s *stream) handshake(c net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(c, s.server)
	ctx, cancel := context.WithTimeout(context.Background(), s.shake)
	err := tc.HandshakeContext(ctx)
	cancel()
	var conn net.Conn
	if err == nil {
		conn, err = s.greet(tc, false)
	}
	if !s.handshaken(c) && err == nil {
		err = errors.New("ended to make room for a newer connection")
	}
	<-s.slots
	if err != nil {
		s.refused(c.RemoteAddr(), err)
		c.Close()
		return
	}
	select {
	case s.ready <- conn:
	case <-s.done:
		tc.Close()
	}
}

// handshaken takes c off the connections in their handshake, and reports
// whether it was still there (endOldest did not end it).
func (s *stream) handshaken(c net.Conn) bool {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	for i, x := range s.shakes {
		if x == c {
			s.shakes = append(s.shakes[:i], s.shakes[i+1:]...)
			return true
		}
	}
	return false
}

// endOldest closes the connection that has been in its handshake longest;
// its handshake fails at once and gives its slot back.
func (s *stream) endOldest() {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if len(s.shakes) > 0 {
		s.shakes[0].Close()
		s.shakes = s.shakes[1:]
	}
}

// refused logs a refused peer, at most one line a second with a count of
// those not logged.
func (s *stream) refused(from net.Addr, err error) {
	n := s.failed.Add(1)
	now := time.Now().UnixNano()
	last := s.logged.Load()
	if now-last < int64(time.Second) || !s.logged.CompareAndSwap(last, now) {
		return
	}
	s.failed.Add(-n)
	s.log.Warn().Str("from", from.String()).Err(err).Int64("refused", n).
		Msg("raft connection refused: it failed the TLS handshake or the hello (a stranger, a wrong key, or a peer whose connection dropped midway; refused: since the last such line)")
}

// Accept returns the next connection whose peer passed the check.
func (s *stream) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and waits for the handshakes in progress.
func (s *stream) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Addr is the address peers dial.
func (s *stream) Addr() net.Addr { return s.advertise }

// Dial connects to a peer and checks it.
func (s *stream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	target := string(addr)
	if v, ok := s.via[target]; ok {
		target = v
	}
	d := &net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := (&tls.Dialer{NetDialer: d, Config: s.client}).DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	conn, err := s.greet(c, true)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}
