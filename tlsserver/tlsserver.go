// Package tlsserver serves sluice over TLS with crypto/tls: a listener that
// completes each handshake, under a deadline, before the protocol server
// sees the connection, and certificates that are read again on Reload (the
// server calls it on SIGHUP) without touching the connections already open.
//
// The server gives it protocol.RawListener's connections, so a *tls.Conn
// reads and writes its socket with the raw system calls and read sessions
// of a plaintext connection.
package tlsserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Settings are the tls-* options.
type Settings struct {
	CertFile, KeyFile string
	CAFile            string // CA of client certificates; may be "" with AuthClients "no"
	AuthClients       string // yes, no or optional
	MinVersion        uint16 // tls.VersionTLS12 or tls.VersionTLS13
	MaxVersion        uint16
}

// Certs holds the current configuration; each handshake reads it once, so
// a Reload applies to the connections that come after it.
type Certs struct {
	mu  sync.Mutex // protects s; held across a reload, so reloads do not interleave
	s   Settings
	cur atomic.Pointer[tls.Config]
}

// Load reads the certificate, key and CA files named by s.
func Load(s Settings) (*Certs, error) {
	c := &Certs{s: s}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On error the configuration in use stays.
func (c *Certs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg, err := build(c.s)
	if err != nil {
		return err
	}
	c.cur.Store(cfg)
	return nil
}

// Files are the certificate files Certs reads.
type Files struct{ CertFile, KeyFile, CAFile string }

// Files returns the files in use.
func (c *Certs) Files() Files {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Files{c.s.CertFile, c.s.KeyFile, c.s.CAFile}
}

// SetFiles reads f and, if they load, serves them from the next handshake
// on and reads them on later Reloads; on error nothing changes (CONFIG SET
// tls-cert-file and the like). Open connections keep what they have.
func (c *Certs) SetFiles(f Files) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.CertFile, s.KeyFile, s.CAFile = f.CertFile, f.KeyFile, f.CAFile
	if s.CAFile == "" && s.AuthClients != "no" {
		return fmt.Errorf("tls-ca-cert-file: needed to check client certificates with tls-auth-clients %s", s.AuthClients)
	}
	cfg, err := build(s)
	if err != nil {
		return err
	}
	c.s = s
	c.cur.Store(cfg)
	return nil
}

// Config is the tls.Config to serve with: it hands every client the
// configuration current when its hello arrives.
func (c *Certs) Config() *tls.Config {
	return &tls.Config{
		MinVersion: c.s.MinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.cur.Load(), nil
		},
	}
}

func build(s Settings) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls-cert-file/tls-key-file: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   s.MinVersion,
		MaxVersion:   s.MaxVersion,
	}
	switch s.AuthClients {
	case "no":
		cfg.ClientAuth = tls.NoClientCert
	case "optional":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	default:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls-ca-cert-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-ca-cert-file: %s holds no PEM certificate", s.CAFile)
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

// DefaultHandshakeTimeout bounds a handshake: a client that opens a
// connection and never completes one holds a goroutine and a socket this
// long, then is closed.
const DefaultHandshakeTimeout = 10 * time.Second

// logEvery is how often a failed handshake from one source address is
// logged at most; the failures in between are counted in the next line.
const logEvery = time.Minute

// Listener accepts TCP connections from an inner listener and returns them
// as *tls.Conn once their handshake has succeeded. Handshakes run in their
// own goroutines, so a slow client does not hold up the others.
type Listener struct {
	inner   net.Listener
	cfg     *tls.Config
	timeout time.Duration
	pending chan struct{} // a slot per handshake in progress
	log     zerolog.Logger
	now     func() time.Time

	ready  chan net.Conn
	done   chan struct{}
	once   sync.Once
	failed atomic.Int64 // handshakes failed, in all

	mu     sync.Mutex
	logged map[string]*source // by remote IP
}

type source struct {
	at         time.Time // of the last line logged
	suppressed int       // failures since, not logged
}

// NewListener serves cfg on inner; timeout 0 means DefaultHandshakeTimeout.
// At most maxPending handshakes run at once (the server passes maxclients);
// a connection past them is closed at once, as a plaintext one past
// maxclients is refused.
func NewListener(inner net.Listener, cfg *tls.Config, timeout time.Duration, maxPending int, log zerolog.Logger) *Listener {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if maxPending < 1 {
		maxPending = 1
	}
	l := &Listener{inner: inner, cfg: cfg, timeout: timeout, pending: make(chan struct{}, maxPending), log: log, now: time.Now,
		ready: make(chan net.Conn), done: make(chan struct{}), logged: map[string]*source{}}
	go l.acceptLoop()
	return l
}

// Failed is the number of handshakes that failed or timed out.
func (l *Listener) Failed() int64 { return l.failed.Load() }

func (l *Listener) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.Close()
				return
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			l.log.Warn().Err(err).Dur("retry_in", backoff).Msg("TLS accept failed")
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			continue
		}
		backoff = 0
		select {
		case l.pending <- struct{}{}:
			go l.handshake(nc)
		default:
			l.failed.Add(1)
			l.logFailure(nc.RemoteAddr(), errTooMany)
			nc.Close()
		}
	}
}

var errTooMany = errors.New("too many TLS handshakes in progress")

func (l *Listener) handshake(nc net.Conn) {
	defer func() { <-l.pending }()
	tc := tls.Server(nc, l.cfg)
	_ = nc.SetDeadline(l.now().Add(l.timeout))
	if err := tc.Handshake(); err != nil {
		l.failed.Add(1)
		l.logFailure(nc.RemoteAddr(), err)
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	select {
	case l.ready <- tc:
	case <-l.done:
		tc.Close()
	}
}

// logFailure logs a failed handshake at most once per logEvery per source
// IP, so that a client retrying in a loop, or a scan, cannot flood the log.
func (l *Listener) logFailure(addr net.Addr, err error) {
	host := addr.String()
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	now := l.now()
	l.mu.Lock()
	s := l.logged[host]
	if s != nil && now.Sub(s.at) < logEvery {
		s.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if s != nil {
		suppressed = s.suppressed
	}
	if len(l.logged) >= 10000 { // forget the sources that have been quiet
		for k, v := range l.logged {
			if now.Sub(v.at) >= logEvery {
				delete(l.logged, k)
			}
		}
	}
	l.logged[host] = &source{at: now}
	l.mu.Unlock()
	l.log.Warn().Err(err).Str("addr", addr.String()).Int("failed_since_last_logged", suppressed).Msg("TLS handshake failed")
}

// Accept returns the next connection whose handshake succeeded.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; handshakes in progress are abandoned.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }
