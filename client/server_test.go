package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"sluice/blocking"
	"sluice/client"
	"sluice/commands"
	"sluice/protocol"
	"sluice/store"
	"sluice/tlsserver"
)

// The tests run the whole server stack in-process on 127.0.0.1:0, wired as
// main.go wires it. Only these test files import server packages; the
// client package itself does not.

type testServer struct {
	addr string
}

// serverOption adjusts the store before the server starts.
type serverOption struct {
	config  func(*store.Config)
	journal store.Journal
	tls     *tls.Config            // serve TLS with it
	server  func(*protocol.Server) // e.g. add users
}

func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	cfg := store.DefaultConfig()
	for _, o := range opts {
		if o.config != nil {
			o.config(&cfg)
		}
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	st, err := store.New(cfg, store.NewRandomGenerator())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		if o.journal != nil {
			st.SetJournal(o.journal)
		}
	}
	now := func() int64 { return time.Now().UnixMilli() }
	waiters, timer := blocking.Attach(st, log, now)
	env := &commands.Env{Store: st, Waiters: waiters, Now: now, MaxPayload: 1 << 20, Version: "test"}
	table, err := protocol.NewTable(commands.Table(env))
	if err != nil {
		t.Fatal(err)
	}
	pcfg := protocol.DefaultConfig()
	pcfg.Limits = protocol.LimitsFor(1 << 20)
	srv, err := protocol.NewServer(pcfg, table, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnDrain(waiters.Close)
	var ln net.Listener
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		if o.server != nil {
			o.server(srv)
		}
		if o.tls != nil {
			ln = tlsserver.NewListener(ln, o.tls, 0, 100, log)
		}
	}
	stop := make(chan struct{})
	timerDone := make(chan struct{})
	go func() { timer.Run(stop); close(timerDone) }()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		close(stop)
		<-timerDone
	})
	return &testServer{addr: ln.Addr().String()}
}

func (ts *testServer) client(t testing.TB, tune ...func(*client.Options)) *client.Client {
	t.Helper()
	o := client.Options{Addr: ts.addr}
	for _, f := range tune {
		f(&o)
	}
	c := client.New(o)
	t.Cleanup(func() { c.Close() })
	return c
}

var bg = context.Background()

// eventually polls cond until it holds or the test's patience runs out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// brokenLog is a journal that cannot be written, as when the disk is full.
type brokenLog struct{}

func (brokenLog) Append(store.Record) uint64 { return 0 }
func (brokenLog) Wait(uint64) error          { return errors.New("no space left on device") }
func (brokenLog) Err() error                 { return errors.New("no space left on device") }

var _ store.Journal = brokenLog{}
