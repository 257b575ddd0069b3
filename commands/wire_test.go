package commands_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// wireConn sends commands over a raw socket and reads each reply as the
// bytes the server wrote, RESP2 or RESP3, so tests can compare encodings
// exactly rather than what a client library makes of them.
type wireConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialWire(t testing.TB, addr string) *wireConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &wireConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// encodeCommand is args as a RESP array of bulk strings.
func encodeCommand(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

// send writes the commands in one write (a pipeline when more than one).
func (w *wireConn) send(cmds ...[]string) {
	w.t.Helper()
	var b []byte
	for _, c := range cmds {
		b = append(b, encodeCommand(c...)...)
	}
	if _, err := w.nc.Write(b); err != nil {
		w.t.Fatal(err)
	}
}

// reply reads one whole reply and returns its bytes.
func (w *wireConn) reply() []byte {
	w.t.Helper()
	_ = w.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf bytes.Buffer
	if err := readRaw(w.r, &buf); err != nil {
		w.t.Fatalf("reading a reply: %v (read so far %q)", err, buf.Bytes())
	}
	return buf.Bytes()
}

// do sends one command and returns its reply's bytes.
func (w *wireConn) do(args ...string) string {
	w.t.Helper()
	w.send(args)
	return string(w.reply())
}

// readRaw copies one RESP2 or RESP3 value from r to out.
func readRaw(r *bufio.Reader, out *bytes.Buffer) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	out.Write(line)
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return fmt.Errorf("bad line %q", line)
	}
	body := string(line[1 : len(line)-2])
	switch line[0] {
	case '+', '-', ':', '_', ',', '#', '(':
		return nil
	case '$', '=', '!':
		n, err := strconv.Atoi(body)
		if err != nil {
			return err
		}
		if n < 0 {
			return nil
		}
		_, err = io.CopyN(out, r, int64(n)+2)
		return err
	case '*', '~', '>', '%', '|':
		n, err := strconv.Atoi(body)
		if err != nil {
			return err
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := readRaw(r, out); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown type %q", line)
}
