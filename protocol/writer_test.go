package protocol

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countedArray is an Array reply of n bulk strings of size bytes that
// counts the elements encoded, in *encoded.
type countedArray struct {
	n, size int
	encoded *atomic.Int64
}

var bulk64k = bytes.Repeat([]byte("x"), 64<<10)

func (a countedArray) Len() int { return a.n }
func (a countedArray) AppendElem(b []byte, i int, _ Proto) []byte {
	a.encoded.Add(1)
	return AppendBulk(b, bulk64k[:a.size])
}

// A client that asks for a large reply and resets the connection: once
// the first write fails, nothing more of the reply is encoded (not one
// more element of an Array, nor of the []any around it), and the
// connection is closed.
func TestResetClientStopsTheReply(t *testing.T) {
	var encoded atomic.Int64
	release := make(chan struct{})
	big := Command{Name: "bigreply", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		<-release
		// 10 arrays of 100 elements of 64 KiB: 64 MiB.
		out := make([]any, 10)
		for i := range out {
			out[i] = countedArray{n: 100, size: 64 << 10, encoded: &encoded}
		}
		return out, nil
	}}
	srv, addr := startServer(t, DefaultConfig(), testTable(t, big))
	c := dial(t, addr)
	c.send("bigreply\r\n")
	waitFor(t, func() bool { return srv.Stats().TotalCommands == 1 }) // the handler has begun
	if err := c.nc.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.nc.Close() // a reset, before the first reply byte
	close(release)
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
	// The first write fails, with 64 KiB buffered (one element, and the
	// first of the next): what a write that fails may leave.
	if n := encoded.Load(); n > 2 {
		t.Fatalf("%d elements of 64 KiB encoded after the client was gone", n)
	}
}

// A client that never reads is cut off by the write timeout, and the
// server has encoded only about what it wrote: not the whole reply.
func TestClientThatNeverReadsIsCutOffEarly(t *testing.T) {
	var encoded atomic.Int64
	const n = 2000 // 2000 elements of 64 KiB: 125 MiB, far more than socket buffers hold
	big := Command{Name: "bigreply", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
		return countedArray{n: n, size: 64 << 10, encoded: &encoded}, nil
	}}
	cfg := DefaultConfig()
	cfg.WriteTimeout = 200 * time.Millisecond
	srv, addr := startServer(t, cfg, testTable(t, big))
	c := dial(t, addr)
	c.send("bigreply\r\n")
	waitFor(t, func() bool { return srv.Stats().Connected == 0 })
	sent := srv.Stats().NetOutputBytes
	// The buffer is written every 64 KiB: what was encoded is what went
	// out, plus the buffer whose write timed out.
	elem := int64(len("$65536\r\n") + 64<<10 + 2)
	if got, most := encoded.Load(), sent/elem+2; got > most {
		t.Fatalf("%d elements encoded, %d bytes written: at most %d elements should have been", got, sent, most)
	}
	if got := encoded.Load(); got >= n {
		t.Fatalf("the whole reply (%d elements) was encoded", got)
	}
}

// A bulk string of FlushAt bytes or more is written from where it lies:
// the writer's buffer stays small, and the reply is intact.
func TestBigBulkIsWrittenWithoutBuffering(t *testing.T) {
	blob := make([]byte, 1<<20)
	for i := range blob {
		blob[i] = byte('a' + i%26)
	}
	var peak atomic.Int64
	cmds := []Command{
		{Name: "blob", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
			return []any{blob, string(blob), "small"}, nil
		}},
		{Name: "peak", Arity: 1, Handler: func(c *Client, args [][]byte) (any, error) {
			peak.Store(int64(cap(c.w.b)))
			return OK, nil
		}},
	}
	srv, addr := startServer(t, DefaultConfig(), testTable(t, cmds...))
	c := dial(t, addr)
	c.send("blob\r\n")
	want := "*[$" + string(blob) + " $" + string(blob) + " $small]"
	if got := c.reply(); got != want {
		t.Fatalf("reply of %d bytes differs from the %d expected", len(got), len(want))
	}
	c.send("peak\r\n")
	c.reply()
	if p := peak.Load(); p > 2*int64(srv.Config().FlushAt) {
		t.Fatalf("the writer's buffer grew to %d bytes for a bulk written in place", p)
	}
}
