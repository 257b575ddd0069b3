package commands_test

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The RESP3 benchmarks are paired: one server, one RESP2 connection (no
// HELLO, as most clients) and one RESP3 connection (HELLO 3), taking turns
// a block of work at a time, so both see the same machine and the same
// store. Each reports the time per operation of each protocol and their
// ratio (resp3/resp2: 1.00 is no difference):
//
//	go test ./commands -run '^$' -bench 'Paired' -count 5

// BenchmarkPushPaired pushes 100-byte jobs in pipelines of 16, as
// BenchmarkPushPipelined, on each connection in turn.
func BenchmarkPushPaired(b *testing.B) {
	ts := start(b)
	conns := pairedConns(b, ts.addr)
	batch := bytes.Repeat(encodeCommand("JOBPUSH", "emails", "send", strings.Repeat("x", 100)), 16)
	var buf bytes.Buffer
	var spent [2]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 16 {
		for k, c := range conns {
			t0 := time.Now()
			if _, err := c.nc.Write(batch); err != nil {
				b.Fatal(err)
			}
			for j := 0; j < 16; j++ {
				buf.Reset()
				if err := readRaw(c.r, &buf); err != nil || buf.Bytes()[0] != '$' {
					b.Fatalf("%q %v", buf.Bytes(), err)
				}
			}
			spent[k] += time.Since(t0)
		}
	}
	reportPaired(b, spent, b.N)
}

// BenchmarkReserveAckPaired reserves one job and acks it, one round trip
// each, from a pre-filled queue, on each connection in turn: the
// reservation is the reply whose shape differs (a map in RESP3).
func BenchmarkReserveAckPaired(b *testing.B) {
	ts := start(b)
	conns := pairedConns(b, ts.addr)
	push := bytes.Repeat(encodeCommand("JOBPUSH", "emails", "send", strings.Repeat("x", 100)), 64)
	var buf bytes.Buffer
	for n := 0; n < 2*b.N; n += 64 {
		if _, err := conns[0].nc.Write(push); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 64; j++ {
			buf.Reset()
			if err := readRaw(conns[0].r, &buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	reserve := encodeCommand("JOBRESERVE", "w", "60000", "QUEUES", "emails")
	tokenField := []byte("$5\r\ntoken\r\n$")
	ack := make([]byte, 0, 64)
	var spent [2]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, c := range conns {
			t0 := time.Now()
			if _, err := c.nc.Write(reserve); err != nil {
				b.Fatal(err)
			}
			buf.Reset()
			if err := readRaw(c.r, &buf); err != nil {
				b.Fatal(err)
			}
			rep := buf.Bytes()
			at := bytes.Index(rep, tokenField)
			if at < 0 {
				b.Fatalf("no token in %q", rep)
			}
			rest := rep[at+len(tokenField):]
			nl := bytes.IndexByte(rest, '\r')
			n, _ := strconv.Atoi(string(rest[:nl]))
			tok := rest[nl+2 : nl+2+n]
			ack = append(ack[:0], "*2\r\n$6\r\nJOBACK\r\n$"...)
			ack = strconv.AppendInt(ack, int64(len(tok)), 10)
			ack = append(append(append(ack, "\r\n"...), tok...), "\r\n"...)
			if _, err := c.nc.Write(ack); err != nil {
				b.Fatal(err)
			}
			buf.Reset()
			if err := readRaw(c.r, &buf); err != nil || buf.String() != "+OK\r\n" {
				b.Fatalf("JOBACK: %q %v", buf.Bytes(), err)
			}
			spent[k] += time.Since(t0)
		}
	}
	reportPaired(b, spent, b.N)
}

type benchConn struct {
	nc net.Conn
	r  *bufio.Reader
}

// pairedConns is a RESP2 connection that never sends HELLO and a RESP3
// one.
func pairedConns(b *testing.B, addr string) [2]benchConn {
	var cs [2]benchConn
	for k := range cs {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { nc.Close() })
		cs[k] = benchConn{nc: nc, r: bufio.NewReader(nc)}
	}
	if _, err := cs[1].nc.Write(encodeCommand("HELLO", "3")); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := readRaw(cs[1].r, &buf); err != nil || buf.Bytes()[0] != '%' {
		b.Fatalf("HELLO 3: %q %v", buf.Bytes(), err)
	}
	return cs
}

// reportPaired reports each protocol's time per operation and their ratio.
func reportPaired(b *testing.B, spent [2]time.Duration, n int) {
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(n), "resp2-ns/op")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(n), "resp3-ns/op")
	if spent[0] > 0 {
		b.ReportMetric(float64(spent[1])/float64(spent[0]), "resp3/resp2")
	}
}
