package commands_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"sluice/blocking"
	"sluice/commands"
	"sluice/config"
	"sluice/internal/check"
	"sluice/metrics"
	"sluice/protocol"
	"sluice/server"
	"sluice/store"
)

// testServer is the whole stack (store, blocking registry, timer, command
// table, RESP server) on 127.0.0.1:0, built as main.go builds it (package
// server) with the log off.
type testServer struct {
	addr    string
	node    *server.Server
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
	gen    store.Generator // ids and tokens; nil: random ones
	// atomic, if set, wraps the store as the server's Atomic.
	atomic func(*store.Store) protocol.Atomic
	// repl, if set, is the node's view of its group; nil: standalone.
	repl commands.Replication
	// journal, if set, is the store's log, installed before the server
	// starts (the log is off otherwise).
	journal store.Journal
}

func start(t testing.TB, opts ...func(*setup)) *testServer {
	t.Helper()
	s := setup{pcfg: protocol.DefaultConfig(), scfg: store.DefaultConfig(), maxPayload: 1 << 20}
	for _, o := range opts {
		o(&s)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	if _, fuzz := t.(*testing.F); fuzz {
		// A fuzz target's server may log from its connections while an
		// input runs, and F.Log inside the fuzz target panics the worker
		// ("fuzzing process hung or terminated unexpectedly").
		log = zerolog.Nop()
	}
	cfg := config.DefaultConfig()
	cfg.Port, cfg.AppendOnly = 0, false
	cfg.MaxPayload, cfg.MaxMemory = s.maxPayload, s.scfg.MaxBytes
	node, err := server.New(cfg, server.Options{Log: log, Version: "test", Now: s.now, Generator: s.gen,
		Store: func(c *store.Config) { *c = s.scfg },
		Env: func(e *commands.Env) {
			e.Settings = []commands.Setting{{Name: "port", Value: "0"}, {Name: "save", Value: ""}, {Name: "appendonly", Value: "yes"}}
			e.Rewrite = s.rewrite
			e.Shutdown = nil // an embedded server: nothing watches for SHUTDOWN
			if s.repl != nil {
				e.Replication = s.repl
			}
			if s.journal != nil {
				e.Store.SetJournal(s.journal)
			}
		},
		Commands: func(cmds []protocol.Command) []protocol.Command { return serialize(cmds, s.serial) },
		Protocol: func(p *protocol.Config) {
			atomic := p.Atomic
			*p = s.pcfg
			p.Limits = protocol.LimitsFor(s.maxPayload)
			p.Atomic = atomic
		},
		Atomic: s.atomic,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: node.Addrs()[0], node: node, store: node.Store(), srv: node.Protocol(),
		waiters: node.Waiters(), metrics: node.Metrics()}
	t.Cleanup(func() { ts.shutdown(t) })
	return ts
}

// serialize makes every command hold mu while it runs (nil: no change).
func serialize(cmds []protocol.Command, mu *sync.Mutex) []protocol.Command {
	if mu == nil {
		return cmds
	}
	for i := range cmds {
		if h := cmds[i].Handler; h != nil {
			cmds[i].Handler = func(c *protocol.Client, args [][]byte) (any, error) {
				mu.Lock()
				defer mu.Unlock()
				return h(c, args)
			}
		}
		if b := cmds[i].Batch; b != nil {
			cmds[i].Batch = func(c *protocol.Client, calls [][][]byte, out []protocol.Result) {
				mu.Lock()
				defer mu.Unlock()
				b(c, calls, out)
			}
		}
	}
	return cmds
}

func (ts *testServer) shutdown(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ts.node.Shutdown(ctx)
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

// protocols runs test once in each protocol go-redis speaks: RESP3, its
// default (HELLO 3), and RESP2. Each connection checks that it got the
// protocol it asked for (go-redis would fall back to RESP2 silently).
func protocols(t *testing.T, test func(t *testing.T, proto func(*redis.Options))) {
	for _, p := range []int{3, 2} {
		t.Run("RESP"+strconv.Itoa(p), func(t *testing.T) {
			test(t, func(o *redis.Options) {
				o.Protocol = p
				o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
					v, err := cn.Do(ctx, "HELLO").Result()
					if err != nil {
						return err
					}
					if got := check.MapField(v, "proto"); got != int64(p) {
						return fmt.Errorf("asked for RESP%d, HELLO says %v", p, got)
					}
					return nil
				}
			})
		})
	}
}

// isTrue reports whether v is a true boolean field: RESP3's true, RESP2's 1.
func isTrue(v any) bool { return v == true || v == int64(1) }

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

// asMap turns a map reply into a Go map: a flat field/value array (RESP2),
// whose field order it checks, or a RESP3 map, whose fields it checks
// (go-redis does not keep their order; the wire tests do).
func asMap(t testing.TB, v any, fields ...string) map[string]any {
	t.Helper()
	if m3, ok := v.(map[any]any); ok {
		if len(m3) != len(fields) {
			t.Fatalf("want a map of %d fields, got %#v", len(fields), v)
		}
		m := make(map[string]any, len(fields))
		for _, f := range fields {
			fv, ok := m3[f]
			if !ok {
				t.Fatalf("field %s missing from %#v", f, v)
			}
			m[f] = fv
		}
		return m
	}
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
	"concurrency_key", "rate_limit_key", "group", "attempt", "max_attempts", "created_at",
	"updated_at", "run_at", "worker", "expires_at", "last_error", "blocked_by", "result", "progress", "deadline", "timeout"}

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
