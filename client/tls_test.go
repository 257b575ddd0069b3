package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/client"
	"sluice/protocol"

	"sluice/internal/testcert"
)

// pki is a CA made for one test, with a server certificate for 127.0.0.1
// and a client certificate.
type pki struct {
	roots          *x509.CertPool
	server, client tls.Certificate
}

func newPKI(t *testing.T) pki {
	t.Helper()
	ca := testcert.NewCA(t, "test-ca")
	return pki{roots: ca.Pool(), server: ca.Pair(t, "server", true), client: ca.Pair(t, "client", false)}
}

// The client and its worker over TLS with a client certificate, logged
// in as a named user with only a worker's and a producer's rights.
func TestClientTLSWithNamedUser(t *testing.T) {
	p := newPKI(t)
	ts := startServer(t, serverOption{
		tls: &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.roots,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		server: func(s *protocol.Server) {
			if err := s.ACL().SetUser("app", []string{"on", ">s3cret", "~jobs:*", "+@producer", "+@worker", "+jobget"}); err != nil {
				t.Fatal(err)
			}
		},
	})
	withTLS := func(o *client.Options) {
		o.TLSConfig = &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12}
		o.Username, o.Password = "app", "s3cret"
	}
	c := ts.client(t, withTLS)
	id := must[string](t)(c.Push(bg, "jobs:mail", "send", []byte("hi"), nil))
	rs := must[[]client.Reservation](t)(c.Reserve(bg, client.ReserveOptions{Worker: "w", Lease: time.Minute, Queues: []string{"jobs:mail"}}))
	if len(rs) != 1 || rs[0].ID != id {
		t.Fatalf("reserved %+v", rs)
	}
	if err := c.Ack(bg, rs[0].Token); err != nil {
		t.Fatal(err)
	}
	if j := must[*client.Job](t)(c.Get(bg, id)); j.State != client.StateSucceeded {
		t.Fatalf("job %+v", j)
	}
	// The user's rights hold: another team's queue is refused.
	if _, err := c.Push(bg, "other:mail", "send", nil, nil); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("push outside the user's queues: %v", err)
	}

	// The worker of that client runs a job.
	var ran atomic.Int64
	w := client.NewWorker(c, client.WorkerOptions{Queues: []string{"jobs:mail"}, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("send", func(ctx context.Context, task *client.Task) error { ran.Add(1); return nil })
	stop := startWorker(t, w)
	id2 := must[string](t)(c.Push(bg, "jobs:mail", "send", []byte("again"), nil))
	eventually(t, "the worker acks the job", func() bool {
		j, err := c.Get(bg, id2)
		return err == nil && j.State == client.StateSucceeded
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 1 {
		t.Errorf("the handler ran %d times", ran.Load())
	}

	// Without a client certificate, or with a wrong password, no command runs.
	noCert := ts.client(t, withTLS, func(o *client.Options) { o.TLSConfig = &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12} })
	if err := noCert.Ping(bg); err == nil {
		t.Error("a client without a certificate was served")
	}
	badPass := ts.client(t, withTLS, func(o *client.Options) { o.Password = "wrong" })
	if err := badPass.Ping(bg); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("a wrong password: %v", err)
	}
	// rediss:// URLs carry the user and turn TLS on.
	o, err := client.ParseURL("rediss://app:s3cret@" + ts.addr)
	if err != nil || o.TLSConfig == nil || o.Username != "app" || o.Password != "s3cret" {
		t.Fatalf("ParseURL: %+v %v", o, err)
	}
	o.TLSConfig.RootCAs, o.TLSConfig.Certificates = p.roots, []tls.Certificate{p.client}
	viaURL := client.New(o)
	defer viaURL.Close()
	if err := viaURL.Ping(bg); err != nil {
		t.Errorf("a client from a rediss:// URL: %v", err)
	}
}
