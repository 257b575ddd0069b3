package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Beanstalk is one connection speaking beanstalkd's text protocol
// (protocol.txt in the beanstalkd sources). Not safe for concurrent use.
type Beanstalk struct {
	conn net.Conn
	w    *bufio.Writer
	r    *bufio.Reader
	num  []byte
	data []byte
}

// DialBeanstalk connects, then uses and watches tube (and ignores the
// default tube) so puts and reserves stay on it.
func DialBeanstalk(addr, tube string) (*Beanstalk, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	b := &Beanstalk{conn: c, w: bufio.NewWriterSize(c, 64<<10), r: bufio.NewReaderSize(c, 64<<10)}
	for _, cmd := range []string{"use " + tube, "watch " + tube, "ignore default"} {
		if _, err := b.Cmd(cmd); err != nil {
			c.Close()
			return nil, fmt.Errorf("beanstalkd %q: %w", cmd, err)
		}
	}
	return b, nil
}

// Close closes the connection.
func (b *Beanstalk) Close() error { return b.conn.Close() }

// Flush writes everything buffered.
func (b *Beanstalk) Flush() error { return b.w.Flush() }

func (b *Beanstalk) line() ([]byte, error) {
	l, err := b.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("%w: bad line %q", ErrProtocol, l)
	}
	return l[:len(l)-2], nil
}

// Cmd sends one command line and returns the response line.
func (b *Beanstalk) Cmd(line string) (string, error) {
	b.w.WriteString(line)
	b.w.WriteString("\r\n")
	if err := b.w.Flush(); err != nil {
		return "", err
	}
	l, err := b.line()
	if err != nil {
		return "", err
	}
	s := string(l)
	switch s {
	case "OUT_OF_MEMORY", "INTERNAL_ERROR", "BAD_FORMAT", "UNKNOWN_COMMAND", "NOT_FOUND", "NOT_IGNORED":
		return s, ServerError(s)
	}
	return s, nil
}

// SendPut buffers "put pri delay ttr bytes" and the job body.
func (b *Beanstalk) SendPut(pri, delay, ttr int, data []byte) {
	b.num = append(b.num[:0], "put "...)
	b.num = strconv.AppendInt(b.num, int64(pri), 10)
	b.num = append(b.num, ' ')
	b.num = strconv.AppendInt(b.num, int64(delay), 10)
	b.num = append(b.num, ' ')
	b.num = strconv.AppendInt(b.num, int64(ttr), 10)
	b.num = append(b.num, ' ')
	b.num = strconv.AppendInt(b.num, int64(len(data)), 10)
	b.num = append(b.num, '\r', '\n')
	b.w.Write(b.num)
	b.w.Write(data)
	b.w.WriteString("\r\n")
}

var inserted = []byte("INSERTED ")

// RecvPut reads the answer to one put and returns the job id.
func (b *Beanstalk) RecvPut() (uint64, error) {
	l, err := b.line()
	if err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(l, inserted) {
		return 0, ServerError(l)
	}
	return strconv.ParseUint(string(l[len(inserted):]), 10, 64)
}

var reserved = []byte("RESERVED ")

// Reserve sends reserve-with-timeout and waits for the answer. ok is false
// on TIMED_OUT. data is valid until the next call on this connection.
func (b *Beanstalk) Reserve(timeoutSec int) (id uint64, data []byte, ok bool, err error) {
	b.num = append(b.num[:0], "reserve-with-timeout "...)
	b.num = strconv.AppendInt(b.num, int64(timeoutSec), 10)
	b.num = append(b.num, '\r', '\n')
	b.w.Write(b.num)
	if err := b.w.Flush(); err != nil {
		return 0, nil, false, err
	}
	l, err := b.line()
	if err != nil {
		return 0, nil, false, err
	}
	if string(l) == "TIMED_OUT" || string(l) == "DEADLINE_SOON" {
		return 0, nil, false, nil
	}
	if !bytes.HasPrefix(l, reserved) {
		return 0, nil, false, ServerError(l)
	}
	f := bytes.Fields(l[len(reserved):])
	if len(f) != 2 {
		return 0, nil, false, fmt.Errorf("%w: %q", ErrProtocol, l)
	}
	id, err = strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %q", ErrProtocol, l)
	}
	n, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %q", ErrProtocol, l)
	}
	if cap(b.data) < n+2 {
		b.data = make([]byte, n+2)
	}
	b.data = b.data[:n+2]
	if _, err := io.ReadFull(b.r, b.data); err != nil {
		return 0, nil, false, err
	}
	return id, b.data[:n], true, nil
}

// SendDelete buffers "delete id".
func (b *Beanstalk) SendDelete(id uint64) {
	b.num = append(b.num[:0], "delete "...)
	b.num = strconv.AppendUint(b.num, id, 10)
	b.num = append(b.num, '\r', '\n')
	b.w.Write(b.num)
}

// RecvDelete reads the answer to one delete.
func (b *Beanstalk) RecvDelete() error {
	l, err := b.line()
	if err != nil {
		return err
	}
	if string(l) != "DELETED" {
		return ServerError(l)
	}
	return nil
}
