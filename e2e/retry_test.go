package e2e

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// dropProxy forwards TCP connections to a server, except that, when armed,
// it loses the reply to the next JOBPUSH: once the server has answered, it
// closes that client's connection instead of forwarding the answer, as a
// network that fails at the worst moment does. The push itself has been
// applied.
type dropProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	pushes atomic.Int32 // JOBPUSH commands seen going to the server
	wg     sync.WaitGroup
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			cl, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(cl)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *dropProxy) serve(cl net.Conn) {
	defer cl.Close()
	sv, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer sv.Close()
	var drop atomic.Bool
	go func() { // client → server
		buf := make([]byte, 64<<10)
		for {
			n, err := cl.Read(buf)
			if n > 0 {
				// The client sends one command at a time here, so one
				// read holds the push whole.
				if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("JOBPUSH")) {
					p.pushes.Add(1)
					if p.armed.CompareAndSwap(true, false) {
						drop.Store(true) // before the server can answer
					}
				}
				if _, err := sv.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				sv.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for { // server → client
		n, err := sv.Read(buf)
		if n > 0 {
			if drop.Load() {
				return // the reply is lost with the connection
			}
			if _, err := cl.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A reply lost after the push was applied, then go-redis's own retry (its
// defaults: 3 retries on a broken connection): with IDEMPOTENCY exactly
// one job, and the retry answers the first push's id; without it, two jobs
// (why the option exists); with ID alone, DUPJOB although the push
// succeeded. The key survives a restart.
func TestRetryAfterADroppedReply(t *testing.T) {
	ctx := context.Background()
	dir, port := t.TempDir(), freePort(t)
	srv := start(t, dir, port)
	defer func() { srv.stop() }()
	proxy := newDropProxy(t, srv.addr)
	c := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String()}) // the library's defaults
	defer c.Close()
	direct := srv.client()
	defer direct.Close()
	dbsize := func(c *redis.Client) int64 {
		t.Helper()
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	proxy.armed.Store(true)
	id, err := c.Do(ctx, "JOBPUSH", "orders", "charge", "p", "IDEMPOTENCY", "order-1").Text()
	if err != nil {
		t.Fatalf("keyed push through a lost reply: %v", err)
	}
	if n := proxy.pushes.Load(); n != 2 {
		t.Fatalf("the server saw %d pushes: the client did not retry once", n)
	}
	if n := dbsize(direct); n != 1 {
		t.Fatalf("a keyed push retried once left %d jobs, want 1", n)
	}
	if q, err := direct.Do(ctx, "JOBGET", id).Slice(); err != nil || q[3] != "orders" {
		t.Fatalf("JOBGET %s: %v %v", id, q, err)
	}

	proxy.pushes.Store(0)
	proxy.armed.Store(true)
	if _, err := c.Do(ctx, "JOBPUSH", "plain", "charge", "p").Text(); err != nil {
		t.Fatalf("plain push through a lost reply: %v", err)
	}
	if n := dbsize(direct); n != 3 || proxy.pushes.Load() != 2 {
		t.Fatalf("a plain push retried once left %d jobs in all (%d sent), want 3: the duplicate", n, proxy.pushes.Load())
	}

	proxy.armed.Store(true)
	_, err = c.Do(ctx, "JOBPUSH", "plain", "charge", "p", "ID", "pay-1").Text()
	if err == nil || !strings.HasPrefix(err.Error(), "DUPJOB") {
		t.Fatalf("a push with ID alone, retried: %v, want DUPJOB", err)
	}
	if n := dbsize(direct); n != 4 {
		t.Fatalf("%d jobs, want 4", n)
	}

	// After a restart (the log replayed) the key still answers.
	direct.Close()
	srv.stop()
	srv = start(t, dir, port)
	direct = srv.client()
	got, err := direct.Do(ctx, "JOBPUSH", "orders", "charge", "p", "IDEMPOTENCY", "order-1").Text()
	if err != nil || got != id {
		t.Fatalf("after a restart the key answered %q %v, want %s", got, err, id)
	}
	if n := dbsize(direct); n != 4 {
		t.Fatalf("after a restart: %d jobs, want 4", n)
	}
}
