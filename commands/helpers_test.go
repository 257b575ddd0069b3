package commands_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"sluice/blocking"
	"sluice/commands"
	"sluice/metrics"
	"sluice/protocol"
	"sluice/store"
)

// testServer is the whole stack (store, blocking registry, timer, command
// table, RESP server) on 127.0.0.1:0.
type testServer struct {
	addr    string
	store   *store.Store
	srv     *protocol.Server
	waiters *blocking.Registry
	metrics *metrics.Metrics
}

type setup struct {
	pcfg       protocol.Config
	scfg       store.Config
	maxPayload int64
	rewrite    func() error // BGREWRITEAOF's; nil: the log is off
	now        func() int64 // the clock; nil: the real one
	// serial, if set, is held by every command while it runs, so that a
	// test holding it sees the store between commands (and the race
	// detector sees the order a socket's round trip gives).
	serial *sync.Mutex
}

func start(t testing.TB, opts ...func(*setup)) *testServer {
	t.Helper()
	s := setup{pcfg: protocol.DefaultConfig(), scfg: store.DefaultConfig(), maxPayload: 1 << 20}
	for _, o := range opts {
		o(&s)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	st, err := store.New(s.scfg, store.NewRandomGenerator())
	if err != nil {
		t.Fatal(err)
	}
	met := metrics.New(metrics.DefaultConfig())
	st.SetObserver(met)
	now := s.now
	if now == nil {
		now = func() int64 { return time.Now().UnixMilli() }
	}
	waiters, timer := blocking.Attach(st, log, now)
	env := &commands.Env{Store: st, Waiters: waiters, Now: now, MaxPayload: s.maxPayload, Version: "test",
		Settings:  []commands.Setting{{Name: "port", Value: "0"}, {Name: "save", Value: ""}, {Name: "appendonly", Value: "yes"}},
		MaxMemory: s.scfg.MaxBytes,
		JobStats: func() []commands.Setting { // as main does
			var out []commands.Setting
			for i, n := range met.Totals() {
				out = append(out, commands.Setting{Name: "total_jobs_" + metrics.EventNames[i], Value: strconv.FormatUint(n, 10)})
			}
			return out
		}}
	env.Rewrite = s.rewrite
	cmds := commands.Table(env)
	if s.serial != nil {
		for i := range cmds {
			if h := cmds[i].Handler; h != nil {
				cmds[i].Handler = func(c *protocol.Client, args [][]byte) (any, error) {
					s.serial.Lock()
					defer s.serial.Unlock()
					return h(c, args)
				}
			}
			if b := cmds[i].Batch; b != nil {
				cmds[i].Batch = func(c *protocol.Client, calls [][][]byte, out []protocol.Result) {
					s.serial.Lock()
					defer s.serial.Unlock()
					b(c, calls, out)
				}
			}
		}
	}
	table, err := protocol.NewTable(cmds)
	if err != nil {
		t.Fatal(err)
	}
	s.pcfg.Limits = protocol.LimitsFor(s.maxPayload)
	s.pcfg.Atomic = st
	srv, err := protocol.NewServer(s.pcfg, table, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnDrain(waiters.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	timerDone := make(chan struct{})
	go func() { timer.Run(stop); close(timerDone) }()
	served := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(served) }()
	ts := &testServer{addr: ln.Addr().String(), store: st, srv: srv, waiters: waiters, metrics: met}
	t.Cleanup(func() { ts.shutdown(t) })
	return ts
}

func (ts *testServer) shutdown(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ts.srv.Shutdown(ctx)
}

// client returns a go-redis client with the library's default options
// (RESP3 requested, so every connection starts with HELLO 3 and falls back).
func (ts *testServer) client(t testing.TB, opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: ts.addr, ReadTimeout: 10 * time.Second}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func resp2(o *redis.Options) { o.Protocol = 2 }

var ctx = context.Background()

func do(t testing.TB, c *redis.Client, args ...any) any {
	t.Helper()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

// doErr runs a command that must fail and returns the error text.
func doErr(t testing.TB, c *redis.Client, args ...any) string {
	t.Helper()
	v, err := c.Do(ctx, args...).Result()
	if err == nil {
		t.Fatalf("%v: want an error, got %v", args, v)
	}
	return err.Error()
}

// isNil runs a command that must reply null.
func isNil(t testing.TB, c *redis.Client, args ...any) {
	t.Helper()
	v, err := c.Do(ctx, args...).Result()
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("%v: want null, got %v, %v", args, v, err)
	}
}

// asMap turns a flat field/value array into a map, checking field order.
func asMap(t testing.TB, v any, fields ...string) map[string]any {
	t.Helper()
	arr, ok := v.([]any)
	if !ok || len(arr) != 2*len(fields) {
		t.Fatalf("want a map of %d fields, got %#v", len(fields), v)
	}
	m := make(map[string]any, len(fields))
	for i, f := range fields {
		if arr[2*i] != f {
			t.Fatalf("field %d = %v, want %s", i, arr[2*i], f)
		}
		m[f] = arr[2*i+1]
	}
	return m
}

var jobFields = []string{"id", "queue", "handler", "payload", "state", "priority",
	"concurrency_key", "rate_limit_key", "attempt", "max_attempts", "created_at",
	"updated_at", "run_at", "worker", "expires_at", "last_error", "blocked_by"}

var reservationFields = []string{"token", "id", "queue", "handler", "payload", "priority", "attempt", "expires_at"}

// reserve runs JOBRESERVE and returns the reservations as maps (nil when
// the reply is null).
func reserve(t testing.TB, c *redis.Client, args ...any) []map[string]any {
	t.Helper()
	v, err := c.Do(ctx, append([]any{"JOBRESERVE"}, args...)...).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		t.Fatalf("JOBRESERVE %v: %v", args, err)
	}
	var out []map[string]any
	for _, r := range v.([]any) {
		out = append(out, asMap(t, r, reservationFields...))
	}
	return out
}
