package protocol

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
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

// discardConn is a connection whose writes all succeed and go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// benchReservations is shaped like JOBRESERVE's reply: one reservation of
// 16 fields with a 100-byte payload.
type benchReservations struct{ payload []byte }

func (benchReservations) Len() int { return 1 }

func (r benchReservations) AppendElem(b []byte, i int, p Proto) []byte {
	b = AppendMapLen(b, 8, p)
	for _, f := range [...]string{"token", "0123456789abcdef0123", "id", "0123456789abcdef", "queue", "emails", "handler", "send"} {
		b = AppendBulkString(b, f)
	}
	b = AppendBulkString(b, "payload")
	b = AppendBulk(b, r.payload)
	b = AppendBulkString(b, "priority")
	b = AppendInt(b, 0)
	b = AppendBulkString(b, "attempt")
	b = AppendInt(b, 1)
	b = AppendBulkString(b, "expires_at")
	return AppendInt(b, 1700000000000)
}

// BenchmarkWriterReplies encodes the replies of a busy connection into its
// writer: JOBRESERVE's (an Array), a pipelined push's (a bulk id) and a
// small []any, written out every 64 KiB as the connection does.
func BenchmarkWriterReplies(b *testing.B) {
	for _, bc := range []struct {
		name  string
		reply any
	}{
		{"reserve", benchReservations{payload: bytes.Repeat([]byte("x"), 100)}},
		{"push", "0123456789abcdef"},
		{"any", []any{"id", "0123456789abcdef", "attempt", int64(1), nil}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := writer{nc: discardConn{}, timeout: 30 * time.Second, limit: 64 << 10}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				w.appendReply(bc.reply, nil)
				if len(w.b) >= w.limit {
					_ = w.flush()
				}
			}
			_ = w.flush()
		})
	}
}
