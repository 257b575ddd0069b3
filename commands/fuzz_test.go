package commands_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"*1\r\n$9223372036854775807\r\n",
	"*9223372036854775807\r\n",
	"*2147483648\r\n$1\r\na\r\n",
	"*1\r\n$-5\r\n",
	"*3\r\n$7\r\nJOBPUSH\r\n$1\r\nq\r\n$1\r\nh\r\n",
	"*4\r\n$7\r\nJOBPUSH\r\n$1\r\nq\r\n$1\r\nh\r\n$1\r\np\r\n",
	"JOBRESERVE w 1000 BLOCK 0 QUEUES q\r\n",
	"JOBRESERVE w 1000 BLOCK 50 HANDLERS 1 h QUEUES q r\r\nPING\r\n",
	"JOBPUSH q h p ID j\r\nJOBWAIT j 5\r\nJOBWAIT j\r\nPING\r\n",
	"JOBPUSH q h p ID j\r\nJOBRESERVE w 1000 QUEUES q\r\nJOBPROGRESS j.1 x\r\nJOBACK j.1 RESULT r\r\nJOBWAIT j\r\n",
	"PING\r\nECHO \"a b\r\n",
	"HELLO 3\r\nHELLO 2 AUTH default x SETNAME n\r\n",
	"CLIENT LIST\r\nCLIENT KILL ID 1\r\nCOMMAND DOCS\r\nINFO\r\n",
	"POLICYSET RATELIMIT k 1 1\r\nJOBPUSH q h p RATELIMIT k\r\nJOBRESERVE w 1 COUNT 5 QUEUES q\r\n",
	"\x00\x01\x02\r\n",
	strings.Repeat("*", 100),
	"*1\r\n$4\r\nQUIT\r\nPING\r\n",
}

// FuzzServer feeds arbitrary bytes to a live in-process server over TCP.
// Every connection must be answered with well-formed RESP and then closed
// (the fuzzer half-closes its side), the server must stay up, and
// connections, goroutines and memory must not pile up.
func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	ts := start(f)
	base := runtime.NumGoroutine()
	f.Cleanup(func() {
		// Goroutines of past connections are gone (a little slack for the
		// runtime's own and go-redis-free idle ones).
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base+2 {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				f.Errorf("goroutines grew from %d to %d:\n%s", base, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		writeErr := make(chan error, 1)
		go func() {
			_, err := nc.Write(data)
			_ = nc.(*net.TCPConn).CloseWrite()
			writeErr <- err
		}()
		r := bufio.NewReader(nc)
		for {
			if err := skipReply(r); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("connection neither answered nor closed within 10s for %q", data)
				}
				if !isReset(err) {
					t.Fatalf("malformed reply stream for %q: %v", data, err)
				}
				break
			}
		}
		<-writeErr
		// Still serving.
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("PING\r\n"))
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "+PONG\r\n" {
			t.Fatalf("server not answering after %q: %q %v", data, l, err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > 1<<30 {
			t.Fatalf("heap at %d bytes after %q", ms.HeapAlloc, data)
		}
	})
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// skipReply reads one RESP2 or RESP3 reply (after HELLO 3) and checks its
// framing.
func skipReply(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		if line != "" && errors.Is(err, io.EOF) {
			return errors.New("truncated reply")
		}
		return err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return errors.New("bad line " + line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-':
		if strings.ContainsAny(body, "\r\n") {
			return errors.New("newline inside a simple reply")
		}
		return nil
	case ':':
		return checkInt(body)
	case '_':
		if body != "" {
			return errors.New("bad null " + line)
		}
		return nil
	case '#':
		if body != "t" && body != "f" {
			return errors.New("bad boolean " + line)
		}
		return nil
	case ',':
		if _, err := strconv.ParseFloat(body, 64); err != nil {
			return errors.New("bad double " + line)
		}
		return nil
	case '$', '=':
		if err := checkInt(body); err != nil {
			return err
		}
		n := atoi(body)
		if n < 0 {
			return nil
		}
		_, err := io.ReadFull(r, make([]byte, n+2))
		return err
	case '*', '%', '~', '>':
		if err := checkInt(body); err != nil {
			return err
		}
		n := atoi(body)
		if line[0] == '%' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := skipReply(r); err != nil {
				if errors.Is(err, io.EOF) {
					return errors.New("truncated array")
				}
				return err
			}
		}
		return nil
	}
	return errors.New("unknown reply type " + line)
}

func checkInt(s string) error {
	if s == "" {
		return errors.New("empty number")
	}
	for i, c := range s {
		if !(c >= '0' && c <= '9') && !(i == 0 && c == '-') {
			return errors.New("bad number " + s)
		}
	}
	return nil
}

func atoi(s string) int {
	n, neg := 0, false
	for i, c := range s {
		if i == 0 && c == '-' {
			neg = true
			continue
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		return -n
	}
	return n
}
