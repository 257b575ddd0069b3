package commands_test

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkPushPipelined pushes 100-byte jobs over one TCP connection in
// pipelines of 16, through the whole stack.
func BenchmarkPushPipelined(b *testing.B) { benchPushPipelined(b, false) }

// BenchmarkPushPipelinedACL is BenchmarkPushPipelined as a user whose
// rights are checked on every command (see aclBenchConn): beside it, the cost
// of the ACL check.
func BenchmarkPushPipelinedACL(b *testing.B) { benchPushPipelined(b, true) }

// aclBenchConn connects to a new server, as the default user or as a user
// with only the rights the benchmarks need: commands by category, queues
// by pattern, so that every command is checked.
func aclBenchConn(b *testing.B, named bool) (net.Conn, *bufio.Reader) {
	ts := start(b)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	r := bufio.NewReader(nc)
	if named {
		for _, cmd := range []string{
			"ACL SETUSER bench on >pw resetkeys ~emails* ~send -@all +@producer +@worker\r\n",
			"AUTH bench pw\r\n",
		} {
			if _, err := nc.Write([]byte(cmd)); err != nil {
				b.Fatal(err)
			}
			if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
				b.Fatalf("%q: %q %v", cmd, line, err)
			}
		}
	}
	return nc, r
}

func benchPushPipelined(b *testing.B, named bool) {
	nc, r := aclBenchConn(b, named)
	cmd := "*4\r\n$7\r\nJOBPUSH\r\n$6\r\nemails\r\n$4\r\nsend\r\n$100\r\n" + strings.Repeat("x", 100) + "\r\n"
	batch := []byte(strings.Repeat(cmd, 16))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 16 {
		if _, err := nc.Write(batch); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 16; j++ {
			line, err := r.ReadString('\n')
			if err != nil || line[0] != '$' {
				b.Fatalf("%q %v", line, err)
			}
			if _, err := r.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReserveAck runs the worker's cycle over one TCP connection:
// push a 100-byte job and reserve it (pipelined), then ack it, through
// the whole stack.
func BenchmarkReserveAck(b *testing.B) { benchReserveAck(b, false) }

// BenchmarkReserveAckACL is BenchmarkReserveAck as a user whose rights are
// checked (see aclBenchConn).
func BenchmarkReserveAckACL(b *testing.B) { benchReserveAck(b, true) }

func benchReserveAck(b *testing.B, named bool) {
	nc, r := aclBenchConn(b, named)
	push := "*4\r\n$7\r\nJOBPUSH\r\n$6\r\nemails\r\n$4\r\nsend\r\n$100\r\n" + strings.Repeat("x", 100) + "\r\n"
	res := "*6\r\n$10\r\nJOBRESERVE\r\n$2\r\nw1\r\n$5\r\n30000\r\n$6\r\nQUEUES\r\n$6\r\nemails\r\n$4\r\nsend\r\n"
	// QUEUES takes the rest: "send" is a second queue name, always empty.
	cycle := []byte(push + res)
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := nc.Write(cycle); err != nil {
			b.Fatal(err)
		}
		line() // the id's header
		line()
		if s := line(); s != "*1\r\n" {
			b.Fatalf("reserve: %q", s)
		}
		line() // the reservation's header
		line() // "token"'s header
		line()
		line() // the token's header
		token := strings.TrimSuffix(line(), "\r\n")
		for k := 0; k < 14; k++ { // the other seven fields
			if s := line(); s[0] == '$' {
				line()
			}
		}
		ack := "*2\r\n$6\r\nJOBACK\r\n$" + strconv.Itoa(len(token)) + "\r\n" + token + "\r\n"
		if _, err := nc.Write([]byte(ack)); err != nil {
			b.Fatal(err)
		}
		if s := line(); s != ":1\r\n" && s != "+OK\r\n" {
			b.Fatalf("ack: %q", s)
		}
	}
}
