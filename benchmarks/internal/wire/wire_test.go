package wire

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
)

// fake accepts one connection, records what the client sent and answers
// with canned bytes.
func fake(t *testing.T, answer string) (addr string, got <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// Answer at once; the client reads the answers after its writes.
		io.WriteString(c, answer)
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		ch <- string(b)
	}()
	return l.Addr().String(), ch
}

func TestRESPReplies(t *testing.T) {
	reserve := "*1\r\n*6\r\n$5\r\ntoken\r\n$3\r\nT.1\r\n$7\r\npayload\r\n$5\r\nab\r\nc\r\n$10\r\nexpires_at\r\n:1700000000123\r\n"
	addr, got := fake(t, "+OK\r\n-ERR bad thing\r\n:42\r\n$-1\r\n*-1\r\n"+reserve+"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n")
	c, err := DialRESP(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Send([]byte("JOBPUSH"), []byte("q"), []byte("h"), []byte("p\r\n"))
	c.SendStrings("PING")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Read(); err != nil || r.Kind != '+' || string(r.Str) != "OK" {
		t.Fatalf("simple string: %+v %v", r, err)
	}
	if err := c.Skip(); err == nil || err.Error() != "ERR bad thing" {
		t.Fatalf("error reply: %v", err)
	}
	if r, err := c.Read(); err != nil || r.Kind != ':' || r.Int != 42 {
		t.Fatalf("integer: %+v %v", r, err)
	}
	if r, err := c.Read(); err != nil || !r.Null || r.Kind != '$' {
		t.Fatalf("null bulk: %+v %v", r, err)
	}
	if r, err := c.Read(); err != nil || !r.Null || r.Kind != '*' {
		t.Fatalf("null array: %+v %v", r, err)
	}
	r, err := c.Read()
	if err != nil || len(r.Arr) != 1 {
		t.Fatalf("reservation: %+v %v", r, err)
	}
	m := &r.Arr[0]
	if tok := m.Field("token"); tok == nil || string(tok.Str) != "T.1" {
		t.Fatalf("token: %+v", tok)
	}
	if p := m.Field("payload"); p == nil || string(p.Str) != "ab\r\nc" {
		t.Fatalf("binary payload: %+v", p)
	}
	if e := m.Field("expires_at"); e == nil || e.Int != 1700000000123 {
		t.Fatalf("expires_at: %+v", e)
	}
	if m.Field("nope") != nil {
		t.Fatal("missing field found")
	}
	r, err = c.Read()
	if err != nil || len(r.Arr) != 2 || string(r.Arr[0].Str) != "a" || string(r.Arr[1].Arr[0].Str) != "b" {
		t.Fatalf("nested: %+v %v", r, err)
	}
	if _, err := c.Read(); err == nil {
		t.Fatal("read past the end: no error")
	}
	c.Close()
	want := "*4\r\n$7\r\nJOBPUSH\r\n$1\r\nq\r\n$1\r\nh\r\n$3\r\np\r\n\r\n*1\r\n$4\r\nPING\r\n"
	if s := <-got; s != want {
		t.Fatalf("sent %q, want %q", s, want)
	}
}

func TestBeanstalk(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sent := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		var lines []string
		answers := map[string]string{
			"use t": "USING t", "watch t": "WATCHING 2", "ignore default": "WATCHING 1",
			"put 1024 0 60 3": "INSERTED 7", "reserve-with-timeout 0": "RESERVED 7 3\r\nx\ry",
			"reserve-with-timeout 1": "TIMED_OUT", "delete 7": "DELETED", "delete 8": "NOT_FOUND",
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				break
			}
			l = strings.TrimSuffix(l, "\r\n")
			lines = append(lines, l)
			if strings.HasPrefix(l, "put ") {
				body, _ := r.ReadString('\n')
				lines = append(lines, strings.TrimSuffix(body, "\r\n"))
			}
			io.WriteString(c, answers[l]+"\r\n")
		}
		sent <- strings.Join(lines, "|")
	}()
	b, err := DialBeanstalk(l.Addr().String(), "t")
	if err != nil {
		t.Fatal(err)
	}
	b.SendPut(1024, 0, 60, []byte("abc"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if id, err := b.RecvPut(); err != nil || id != 7 {
		t.Fatalf("put: %d %v", id, err)
	}
	id, data, ok, err := b.Reserve(0)
	if err != nil || !ok || id != 7 || string(data) != "x\ry" {
		t.Fatalf("reserve: %d %q %v %v", id, data, ok, err)
	}
	if _, _, ok, err := b.Reserve(1); err != nil || ok {
		t.Fatalf("timed out reserve: %v %v", ok, err)
	}
	b.SendDelete(7)
	b.SendDelete(8)
	b.Flush()
	if err := b.RecvDelete(); err != nil {
		t.Fatal(err)
	}
	if err := b.RecvDelete(); err == nil || err.Error() != "NOT_FOUND" {
		t.Fatalf("delete of a missing job: %v", err)
	}
	b.Close()
	want := "use t|watch t|ignore default|put 1024 0 60 3|abc|reserve-with-timeout 0|reserve-with-timeout 1|delete 7|delete 8"
	if s := <-sent; s != want {
		t.Fatalf("sent %q\nwant %q", s, want)
	}
}
