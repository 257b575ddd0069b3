// Package wire holds the two small clients the load generator needs: a
// pipelining RESP2 client (sluice and redis-server) and a beanstalkd text
// protocol client. Both buffer writes until Flush so a caller can put many
// commands on the wire in one system call, and both keep per-connection
// scratch space so a steady loop allocates little: on a two-core machine
// the client shares the CPU with the server it measures.
package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// ServerError is an error reply from the server ("-ERR ...", "NOT_FOUND").
type ServerError string

func (e ServerError) Error() string { return string(e) }

// ErrProtocol means the server sent something the client cannot parse.
var ErrProtocol = errors.New("wire: protocol error")

// Reply is one RESP2 reply. Str is only valid until the next Read on the
// same connection (it points into the connection's scratch space); Arr's
// elements likewise.
type Reply struct {
	Kind byte // '+', '-', ':', '$' or '*'
	Null bool // null bulk string or null array
	Str  []byte
	Int  int64
	Arr  []Reply

	off, n int // position in the scratch space while parsing
}

// Field returns the value following key in a flat field/value array (the
// "map" replies of PROTOCOL.md), or nil.
func (r *Reply) Field(key string) *Reply {
	for i := 0; i+1 < len(r.Arr); i += 2 {
		if string(r.Arr[i].Str) == key {
			return &r.Arr[i+1]
		}
	}
	return nil
}

// RESP is one connection speaking RESP2. Not safe for concurrent use.
type RESP struct {
	conn net.Conn
	w    *bufio.Writer
	r    *bufio.Reader
	num  []byte  // scratch for length prefixes
	buf  []byte  // scratch for reply strings
	arr  []Reply // scratch for reply arrays
}

// DialRESP connects to a RESP server.
func DialRESP(addr string) (*RESP, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &RESP{conn: c, w: bufio.NewWriterSize(c, 64<<10), r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// Close closes the connection.
func (c *RESP) Close() error { return c.conn.Close() }

// SetDeadline bounds every read and write from now on.
func (c *RESP) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

func (c *RESP) prefix(b byte, n int) {
	c.num = append(c.num[:0], b)
	c.num = strconv.AppendInt(c.num, int64(n), 10)
	c.num = append(c.num, '\r', '\n')
	c.w.Write(c.num)
}

// Send buffers one command; nothing is written until Flush (or the buffer
// fills).
func (c *RESP) Send(args ...[]byte) {
	c.prefix('*', len(args))
	for _, a := range args {
		c.prefix('$', len(a))
		c.w.Write(a)
		c.w.WriteString("\r\n")
	}
}

// SendStrings is Send for string arguments (setup commands, not hot paths).
func (c *RESP) SendStrings(args ...string) {
	c.prefix('*', len(args))
	for _, a := range args {
		c.prefix('$', len(a))
		c.w.WriteString(a)
		c.w.WriteString("\r\n")
	}
}

// Flush writes everything buffered.
func (c *RESP) Flush() error { return c.w.Flush() }

// Do sends one command, flushes, and reads its reply; an error reply is
// returned as a ServerError.
func (c *RESP) Do(args ...string) (Reply, error) {
	c.SendStrings(args...)
	if err := c.Flush(); err != nil {
		return Reply{}, err
	}
	r, err := c.Read()
	if err == nil && r.Kind == '-' {
		err = ServerError(r.Str)
	}
	return r, err
}

func (c *RESP) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("%w: bad line %q", ErrProtocol, l)
	}
	return l[:len(l)-2], nil
}

func atoi(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad integer %q", ErrProtocol, b)
	}
	return n, nil
}

// Read reads one reply. Error replies come back as Kind '-' with a nil
// error, so a pipeline can read every reply before deciding; use Skip when
// only success matters.
func (c *RESP) Read() (Reply, error) {
	c.buf = c.buf[:0]
	c.arr = c.arr[:0]
	var r Reply
	if err := c.read(&r); err != nil {
		return Reply{}, err
	}
	// Strings and array elements went into growing scratch slices as
	// offsets; now that nothing moves any more, make them real slices.
	c.fix(&r)
	return r, nil
}

// Skip reads one reply and returns a ServerError if it is an error reply.
func (c *RESP) Skip() error {
	r, err := c.Read()
	if err == nil && r.Kind == '-' {
		err = ServerError(r.Str)
	}
	return err
}

func (c *RESP) fix(r *Reply) {
	switch {
	case r.Null:
	case r.Kind == '*':
		r.Arr = c.arr[r.off : r.off+r.n : r.off+r.n]
		for i := range r.Arr {
			c.fix(&r.Arr[i])
		}
	case r.Kind != ':':
		r.Str = c.buf[r.off : r.off+r.n : r.off+r.n]
	}
}

func (c *RESP) read(r *Reply) error {
	l, err := c.line()
	if err != nil {
		return err
	}
	r.Kind = l[0]
	switch l[0] {
	case '+', '-':
		r.off, r.n = len(c.buf), len(l)-1
		c.buf = append(c.buf, l[1:]...)
	case ':':
		r.Int, err = atoi(l[1:])
		return err
	case '$':
		n, err := atoi(l[1:])
		if err != nil {
			return err
		}
		if n < 0 {
			r.Null = true
			return nil
		}
		off := len(c.buf)
		need := off + int(n) + 2
		if cap(c.buf) < need {
			nb := make([]byte, off, 2*need)
			copy(nb, c.buf)
			c.buf = nb
		}
		c.buf = c.buf[:need]
		if _, err := io.ReadFull(c.r, c.buf[off:need]); err != nil {
			return err
		}
		c.buf = c.buf[:need-2]
		r.off, r.n = off, int(n)
	case '*':
		n, err := atoi(l[1:])
		if err != nil {
			return err
		}
		if n < 0 {
			r.Null = true
			return nil
		}
		off := len(c.arr)
		for i := int64(0); i < n; i++ {
			c.arr = append(c.arr, Reply{})
		}
		for i := 0; i < int(n); i++ {
			var e Reply
			if err := c.read(&e); err != nil {
				return err
			}
			c.arr[off+i] = e
		}
		r.off, r.n = off, int(n)
	default:
		return fmt.Errorf("%w: unexpected %q", ErrProtocol, l)
	}
	return nil
}
