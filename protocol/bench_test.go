package protocol

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// BenchmarkGuardedReader measures the framing guard plus the command reader
// on a pipeline of push-like commands (100-byte payloads).
func BenchmarkGuardedReader(b *testing.B) {
	benchmarkReader(b, "*4\r\n$7\r\nJOBPUSH\r\n$6\r\nemails\r\n$4\r\nsend\r\n$100\r\n"+strings.Repeat("x", 100)+"\r\n")
}

// BenchmarkGuardedReaderInline: the same pushes as inline commands, the
// payload quoted with escapes in it.
func BenchmarkGuardedReaderInline(b *testing.B) {
	benchmarkReader(b, "JOBPUSH emails send \""+strings.Repeat("x\\x41", 20)+"\"\r\n")
}

func benchmarkReader(b *testing.B, cmd string) {
	data := []byte(strings.Repeat(cmd, 1000))
	lim := LimitsFor(DefaultMaxPayload)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rd := newCmdReader(newGuard(bytes.NewReader(data), &lim, 16<<10), 16<<10)
		n := 0
		for {
			if err := rd.fill(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			for {
				_, ok, err := rd.next()
				if err != nil {
					b.Fatal(err)
				}
				if !ok {
					break
				}
				n++
			}
		}
		if n != 1000 {
			b.Fatalf("%d commands", n)
		}
	}
}
