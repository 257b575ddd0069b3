package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"sluice/client"
	"sluice/config"
	"sluice/protocol"
	"sluice/server"
	"sluice/store"
	"sluice/tlsserver"
)

// The tests run the whole server stack in-process on 127.0.0.1:0, built as
// main.go builds it (package server), with the log off. Only these test files import server packages; the
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
	cfg := config.DefaultConfig()
	cfg.Port, cfg.AppendOnly = 0, false
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	node, err := server.New(cfg, server.Options{Log: log, Version: "test", Store: func(c *store.Config) {
		for _, o := range opts {
			if o.config != nil {
				o.config(c)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		if o.journal != nil {
			node.Store().SetJournal(o.journal)
		}
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	addr := node.Addrs()[0]
	for _, o := range opts {
		if o.server != nil {
			o.server(node.Protocol())
		}
		if o.tls != nil { // one more listener, served by the same server
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr = ln.Addr().String()
			go func() { _ = node.Protocol().Serve(tlsserver.NewListener(ln, o.tls, 0, 100, log)) }()
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = node.Shutdown(ctx)
	})
	return &testServer{addr: addr}
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
