package protocol

import (
	"io"
	"net"
	"os"
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
type rawConn struct {
	net.Conn
	rc syscall.RawConn
}

// fastConn returns nc with raw reads and writes when it is a socket, and
// nc itself otherwise (a pipe in a test, a TLS connection).
func fastConn(nc net.Conn) net.Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &rawConn{Conn: nc, rc: rc}
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			n, errno = int(r), e
			return true
		}
	})
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

func (c *rawConn) Write(p []byte) (int, error) {
	var (
		done  int
		errno syscall.Errno
	)
	if len(p) == 0 {
		return 0, nil
	}
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			b := p[done:]
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case 0:
				done += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	if err != nil {
		return done, c.opError("write", err)
	}
	return done, nil
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
