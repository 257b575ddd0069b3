package protocol

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"sluice/internal/check"
)

// partial sends the start of an ECHO whose argument is size bytes long,
// and the first have bytes of it.
func partial(c *rawClient, size, have int) {
	c.t.Helper()
	c.send("*2\r\n$4\r\necho\r\n$" + strconv.Itoa(size) + "\r\n" + strings.Repeat("y", have))
}

// Clients holding partial commands push the buffers' total past
// MaxMemoryClients: the client holding the most is closed (not the one
// whose read crossed the limit), the others stay, the server answers, and
// the stats count the eviction.
func TestMaxMemoryClientsClosesTheBiggest(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits = LimitsFor(8 << 20)
	cfg.MaxMemoryClients = 7 << 20
	srv, addr := startServer(t, cfg, testTable(t))
	base := srv.Stats().ClientBuffers

	large := dial(t, addr)
	partial(large, 4<<20, 3<<20) // a reader buffer of 4 MiB
	waitFor(t, func() bool { return srv.Stats().ClientBuffers >= base+4<<20 })
	medium := dial(t, addr)
	partial(medium, 2<<20, 1200<<10) // 2 MiB
	waitFor(t, func() bool { return srv.Stats().ClientBuffers >= base+6<<20 })
	under := srv.Stats()
	check.Field(t, "under the limit: EvictedClients", under.EvictedClients, 0)
	if under.MaxInputBuffer < 4<<20 {
		t.Fatalf("under the limit: MaxInputBuffer = %d, want at least 4 MiB", under.MaxInputBuffer)
	}
	small := dial(t, addr)
	partial(small, 2<<20, 1200<<10) // 2 MiB more: past 7 MiB

	if !large.closed() {
		t.Fatal("the client holding the most was not closed")
	}
	waitFor(t, func() bool { return srv.Stats().Connected == 2 })
	st := srv.Stats()
	check.Field(t, "after the eviction: EvictedClients", st.EvictedClients, 1)
	if st.ClientBuffers > cfg.MaxMemoryClients {
		t.Fatalf("after the eviction: ClientBuffers = %d, over the limit %d", st.ClientBuffers, cfg.MaxMemoryClients)
	}
	// The others finish their commands and go on.
	for _, c := range []*rawClient{medium, small} {
		c.send(strings.Repeat("y", 2<<20-1200<<10) + "\r\n")
		if got := c.reply(); len(got) != 1+2<<20 {
			t.Fatalf("echo of %d bytes", len(got)-1)
		}
		c.ping("after the eviction")
	}
	dial(t, addr).ping("a new client")
}

// 0 turns the limit off; a negative one is refused.
func TestMaxMemoryClientsSettings(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.MaxMemoryClients != 1<<30 {
		t.Fatalf("default maxmemory-clients %d", cfg.MaxMemoryClients)
	}
	cfg.MaxMemoryClients = -1
	if err := cfg.Validate(); err == nil {
		t.Fatal("a negative maxmemory-clients accepted")
	}
	cfg.MaxMemoryClients = 0
	srv, addr := startServer(t, cfg, testTable(t))
	c := dial(t, addr)
	partial(c, 1<<20, 900<<10)
	waitFor(t, func() bool { return srv.Stats().ClientBuffers >= 1<<20 })
	c.send(strings.Repeat("y", 1<<20-900<<10) + "\r\n")
	if got := c.reply(); len(got) != 1+1<<20 {
		t.Fatalf("echo of %d bytes", len(got)-1)
	}
	if st := srv.Stats(); st.EvictedClients != 0 {
		t.Fatalf("evicted with no limit: %+v", st)
	}
}

// lineCounter counts the log lines written to it.
type lineCounter struct {
	mu sync.Mutex
	n  int
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.n += bytes.Count(p, []byte("\n"))
	l.mu.Unlock()
	return len(p), nil
}

// Clients evicted one after another are logged once a second, not once
// each: a flood of evictions must not become a flood of log lines.
func TestEvictionsAreLoggedOnceASecond(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits = LimitsFor(8 << 20)
	cfg.MaxMemoryClients = 3 << 20
	var lines lineCounter
	srv, err := NewServer(cfg, testTable(t), zerolog.New(&lines).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	const clients = 12
	began := time.Now()
	for i := 0; i < clients; i++ {
		partial(dial(t, ln.Addr().String()), 1<<20, 900<<10)
	}
	waitFor(t, func() bool { return srv.Stats().EvictedClients >= clients-3 })
	elapsed := time.Since(began)
	lines.mu.Lock()
	n := lines.n
	lines.mu.Unlock()
	if max := int(elapsed/time.Second) + 1; n > max {
		t.Fatalf("%d log lines for %d evictions in %s", n, srv.Stats().EvictedClients, elapsed)
	}
}
