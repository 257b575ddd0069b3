package commands_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// BenchmarkPushPipelined pushes 100-byte jobs over one TCP connection in
// pipelines of 16, through the whole stack.
func BenchmarkPushPipelined(b *testing.B) {
	ts := start(b)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
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
