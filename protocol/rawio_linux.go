package protocol

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a socket with raw system calls, waiting for
// readiness through the runtime's poller as net.Conn does.
//
// The socket is non-blocking, so a read or a write never waits in the
// kernel: it copies what it can, or returns EAGAIN and the goroutine parks
// on the poller. net.Conn wraps the same calls in the scheduler's
// entersyscall/exitsyscall, which lets another thread take the processor
// of a goroutine that might block. Here none can, and on a machine where
// loopback system calls are slow the runtime's monitor thread keeps
// waking to take processors from them and to start threads for them: 9%
// of the server's CPU in the reserve+ack benchmark, and a context switch
// each time. Deadlines and Close still act through the poller.
//
// It also runs read sessions (see sessionConn and Client.serve). The
// poller records readiness per socket, and every Read of net.Conn (and
// every RawConn.Read) begins by forgetting what it recorded, so a goroutine
// can only learn that the socket is empty from one more read that fails
// with EAGAIN: after every batch of commands, two reads where one would
// do. A session is one RawConn.Read whose callback runs serve's loop, so
// readiness is forgotten once, when it starts, and any input that arrives
// after that is recorded. Once a read in the session comes back short, the
// socket was empty at that moment and what arrives later is recorded, so
// the session may wait for input at once; if some came meanwhile, the
// wait returns at once and the callback runs again. Inside a session Read
// is that one read, on the fd the callback was given, and returns 0 bytes
// when it knows or finds the socket empty.
//
// A short read does not show an end of stream queued behind its data (a
// client that sends its last command and shuts down its side at once), so
// after waiting without having read EAGAIN the client arms a probe: a read
// deadline that, if nothing else wakes it, makes it read again. To keep
// that delay from most clients that send and go, a connection skips reads
// only from the time input wakes a wait that followed a reply (as the next
// request of a client waiting for its replies does), until input wakes a
// wait that followed none, or a wait after a skipped read ends in an error
// (the probe's deadline, or another). A fresh connection does not skip, so
// a client that sends everything at once and shuts down is closed at once;
// one whose commands came in separate pieces may meet the probe.
//
// While a session runs it holds the socket: Close waits for it to end (see
// Client.kill), and a Read by another goroutine waits too.
//
// The callbacks given to RawConn are bound once and keep their state in
// the connection, so a read or a write allocates nothing; a mutex per
// direction keeps that state to one caller at a time (concurrent Reads
// are serialized by the poller anyway).
type rawConn struct {
	net.Conn
	rc syscall.RawConn

	rmu    sync.Mutex // protects rd
	rd     rawOp
	readFn func(fd uintptr) bool

	wmu     sync.Mutex // protects wr
	wr      rawOp
	writeFn func(fd uintptr) bool

	// Owned by the goroutine in the session.
	fd       uintptr
	in       bool // a session is running
	drained  bool // a read in this turn of the session came back short
	wasEmpty bool // a Read found the socket empty (EAGAIN) or knew it was
	lastSkip bool // the last Read in a session knew the socket empty, without a system call
	canSkip  bool // reads may be skipped (see session)
	skipWait bool // the last turn waited after a skipped read
	wrote    bool // written to since the last turn ended (a reply)
	replied  bool // the last turn's wait followed a reply
	// underTLS: a tls.Conn reads through this one (see tlsConn), so a
	// Read in a session that finds the socket empty returns errEmpty, not
	// 0 bytes, which crypto/tls would read again at once.
	underTLS bool
}

// rawOp is one Read or Write in progress: its buffer, the bytes done, and
// the error the system call returned.
type rawOp struct {
	p     []byte
	n     int
	errno syscall.Errno
}

// fastConn returns nc with raw reads and writes when it is a TCP or Unix
// socket, a TLS connection over one RawListener accepted (see tlsConn),
// and nc itself otherwise (a pipe in a test, TLS over a plain socket).
func fastConn(nc net.Conn) net.Conn {
	switch nc := nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	case *tls.Conn:
		// After the handshake only: its reads must wait for input, never
		// find the socket empty (a listener such as tlsserver's completes
		// it before Accept returns).
		if raw, ok := nc.NetConn().(*rawConn); ok && nc.ConnectionState().HandshakeComplete {
			raw.underTLS = true
			return &tlsConn{Conn: nc, raw: raw}
		}
		return nc
	default:
		return nc
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nc
	}
	c := &rawConn{Conn: nc, rc: rc}
	c.readFn, c.writeFn = c.readOnce, c.writeAll
	return c
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.in {
		return c.sessionRead(p)
	}
	c.rmu.Lock()
	c.rd = rawOp{p: p}
	err := c.rc.Read(c.readFn)
	n, errno := c.rd.n, c.rd.errno
	c.rd.p = nil
	c.rmu.Unlock()
	if err == nil && errno != 0 {
		err = os.NewSyscallError("read", errno)
	}
	if err != nil {
		return 0, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readOnce reads once; false asks the poller to wait for input first.
func (c *rawConn) readOnce(fd uintptr) bool {
	n, e := sysRead(fd, c.rd.p)
	switch e {
	case syscall.EAGAIN:
		return false
	case 0:
		c.rd.n = n
	default:
		c.rd.errno = e
	}
	return true
}

// sysRead reads fd into p (not empty) once, again if a signal cut it short.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// sysWrite writes p (not empty) to fd once, again if a signal cut it short.
func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

func (c *rawConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	c.wrote = true // the owner's replies; a write between sessions counts for the next
	c.wr = rawOp{p: p}
	err := c.rc.Write(c.writeFn)
	n, errno := c.wr.n, c.wr.errno
	c.wr.p = nil
	c.wmu.Unlock()
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// writeAll writes until all is written; false asks the poller to wait for
// room first.
func (c *rawConn) writeAll(fd uintptr) bool {
	for c.wr.n < len(c.wr.p) {
		n, e := sysWrite(fd, c.wr.p[c.wr.n:])
		switch e {
		case 0:
			c.wr.n += n
		case syscall.EAGAIN:
			return false
		default:
			c.wr.errno = e
			return true
		}
	}
	return true
}

// session implements sessionConn.
func (c *rawConn) session(run func() (wait bool)) error {
	woken := false
	err := c.rc.Read(func(fd uintptr) bool {
		switch {
		case woken: // input (or an end of stream) ended the last turn's wait
			c.canSkip = c.replied
		case c.skipWait: // the last session's wait after a skip ended in an error
			c.canSkip = false
		}
		woken, c.skipWait = true, false
		// A new turn: the socket may hold input again.
		c.fd, c.in, c.drained, c.wasEmpty = fd, true, false, false
		wait := run()
		c.in = false
		c.skipWait, c.replied = wait && c.lastSkip, wait && c.wrote
		if wait {
			c.wrote = false
		}
		return !wait
	})
	c.in = false
	if err != nil {
		return c.opError("read", err)
	}
	return nil
}

// empty implements sessionConn.
func (c *rawConn) empty() (empty, skipped bool) {
	empty = c.wasEmpty
	c.wasEmpty = false
	return empty, empty && c.lastSkip
}

// sessionRead is Read inside a session.
func (c *rawConn) sessionRead(p []byte) (int, error) {
	c.lastSkip = c.drained && c.canSkip
	if c.lastSkip {
		c.wasEmpty = true
		return 0, c.emptyErr()
	}
	n, e := sysRead(c.fd, p)
	switch e {
	case 0:
	case syscall.EAGAIN:
		c.drained, c.wasEmpty = true, true
		return 0, c.emptyErr()
	default:
		return 0, c.opError("read", os.NewSyscallError("read", e))
	}
	if n == 0 {
		return 0, io.EOF
	}
	c.drained = n < len(p)
	return n, nil
}

// opError reports err as net.Conn's Read and Write do. The poller's own
// errors (closed, deadline) come from RawConn already wrapped, as
// "raw-read" or "raw-write": only their cause is kept.
func (c *rawConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// emptyErr is what a Read in a session returns with 0 bytes when the
// socket is empty: nothing, or, under TLS, errEmpty.
func (c *rawConn) emptyErr() error {
	if c.underTLS {
		return errEmpty
	}
	return nil
}

// errEmpty tells crypto/tls, under which a rawConn runs a session, that
// the socket is empty for now. It is a temporary net.Error, which a
// tls.Conn returns from its Read without keeping it (as it does a
// deadline's), the bytes of a partial record kept for the next Read.
var errEmpty error = emptyError{}

type emptyError struct{}

func (emptyError) Error() string   { return "socket empty" }
func (emptyError) Timeout() bool   { return false }
func (emptyError) Temporary() bool { return true }

// RawListener accepts from ln connections with raw reads and writes (see
// rawConn), for a TLS listener to wrap: a TLS connection served over one
// runs read sessions and raw system calls as a plaintext one does, where
// over a net.TCPConn every batch of commands cost a read more, in the
// scheduler's system call path.
func RawListener(ln net.Listener) net.Listener { return rawListener{ln} }

type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return fastConn(nc), nil
}

// tlsConn is a TLS connection over a rawConn, with the rawConn's read
// sessions: in a session, a Read that finds the socket empty (errEmpty
// from below) returns 0 bytes, as rawConn's own does.
type tlsConn struct {
	*tls.Conn
	raw *rawConn
}

func (c *tlsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == errEmpty {
		if n > 0 {
			// Data came first (a record, then a partial one behind
			// it): this Read did not end empty. The next finds out.
			c.raw.wasEmpty = false
		}
		return n, nil
	}
	return n, err
}

// session implements sessionConn.
func (c *tlsConn) session(run func() (wait bool)) error { return c.raw.session(run) }

// empty implements sessionConn.
func (c *tlsConn) empty() (empty, skipped bool) { return c.raw.empty() }
