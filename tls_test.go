package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
	"sluice/internal/testcert"
)

// newCA makes a certificate authority for one test.
func newCA(t *testing.T, name string) *testcert.CA { return testcert.NewCA(t, name) }

// tlsFiles writes the server's certificate, key and CA files into dir.
type tlsFiles struct{ dir, cert, key, ca string }

func writeTLSFiles(t *testing.T, dir string, serverCA, clientCA *testcert.CA) tlsFiles {
	t.Helper()
	f := tlsFiles{dir: dir, cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key"), ca: filepath.Join(dir, "ca.crt")}
	c, k := serverCA.Issue(t, "sluice", true)
	for path, b := range map[string][]byte{f.cert: c, f.key: k, f.ca: clientCA.PEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

type tlsServer struct {
	addr string
	stop chan os.Signal
	logs *bytes.Buffer
	mu   *syncWriter
}

func (s *tlsServer) logged() string {
	s.mu.mu.Lock()
	defer s.mu.mu.Unlock()
	return s.logs.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// startTLS runs sluice in this process serving TLS only (--port 0 with a
// tls-port) with the files f, and stops it at the end of the test.
func startTLS(t *testing.T, f tlsFiles, args ...string) *tlsServer {
	t.Helper()
	args = append([]string{"--port", "0", "--tls-port", freePort(t), "--dir", t.TempDir(), "--appendonly", "no",
		"--logformat", "json", "--tls-cert-file", f.cert, "--tls-key-file", f.key, "--tls-ca-cert-file", f.ca}, args...)
	s := &tlsServer{stop: make(chan os.Signal, 1), logs: &bytes.Buffer{}}
	s.mu = &syncWriter{w: s.logs}
	ready := make(chan []string, 1)
	done := make(chan int, 1)
	go func() { done <- run(args, nil, os.Stdout, s.mu, s.stop, ready) }()
	select {
	case addrs := <-ready:
		if len(addrs) != 1 {
			t.Fatalf("port 0 with a tls-port listens on %v, want the TLS address only", addrs)
		}
		s.addr = addrs[0]
		if !strings.Contains(s.logged(), `"tls_addr":["`+s.addr+`"]`) {
			t.Fatalf("the ready line does not name the TLS address:\n%s", s.logged())
		}
	case code := <-done:
		t.Fatalf("run exited %d:\n%s", code, s.logged())
	}
	t.Cleanup(func() {
		s.stop <- syscall.SIGTERM
		<-done
	})
	return s
}

func tlsClient(addr string, roots *x509.CertPool, certs ...tls.Certificate) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}})
}

// go-redis over TLS, with a client certificate, runs a job's lifecycle; the
// TLS port does not speak plaintext.
func TestTLSGoRedisLifecycle(t *testing.T) {
	ca := newCA(t, "ca")
	s := startTLS(t, writeTLSFiles(t, t.TempDir(), ca, ca))
	c := tlsClient(s.addr, ca.Pool(), ca.Pair(t, "client", false))
	defer c.Close()
	ctx := context.Background()
	id, err := c.Do(ctx, "JOBPUSH", "emails", "send", `{"to":"a@b"}`).Text()
	if err != nil {
		t.Fatalf("JOBPUSH over TLS: %v", err)
	}
	res, err := c.Do(ctx, "JOBRESERVE", "w", 60000, "QUEUES", "emails").Slice()
	if err != nil || len(res) != 1 {
		t.Fatalf("JOBRESERVE: %v, %v", res, err)
	}
	job := res[0].([]any)
	check.Field(t, "JOBRESERVE's first field", job[0], any("token"))
	check.Field(t, "JOBRESERVE's second field", job[2], any("id"))
	check.Field(t, "JOBRESERVE's id", job[3], any(id))
	if t.Failed() {
		t.FailNow()
	}
	if err := c.Do(ctx, "JOBACK", job[1]).Err(); err != nil {
		t.Fatalf("JOBACK: %v", err)
	}

	// A pipeline, and a payload larger than a TLS record (16 KiB).
	big := strings.Repeat("x", 300<<10)
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for range 300 {
			p.Do(ctx, "JOBPUSH", "many", "h", "p")
		}
		p.Do(ctx, "JOBPUSH", "big", "h", big)
		return nil
	})
	if err != nil || len(cmds) != 301 {
		t.Fatalf("pipeline over TLS: %d replies, %v", len(cmds), err)
	}
	res, err = c.Do(ctx, "JOBRESERVE", "w", 60000, "QUEUES", "big").Slice()
	if err != nil || len(res) != 1 || len(res[0].([]any)) < 10 || res[0].([]any)[9] != big {
		t.Fatalf("the big payload did not come back whole: %v", err)
	}

	plain := redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("a plaintext client was served on the TLS port")
	}
}

// tls-auth-clients yes refuses a client without a certificate (or with one
// from another CA); optional serves one without, still refusing a bad one.
func TestTLSAuthClients(t *testing.T) {
	ca, other := newCA(t, "ca"), newCA(t, "other")
	f := writeTLSFiles(t, t.TempDir(), ca, ca)
	ctx := context.Background()
	for _, tc := range []struct {
		mode         string
		noCertServed bool
	}{{"yes", false}, {"optional", true}, {"no", true}} {
		s := startTLS(t, f, "--tls-auth-clients", tc.mode)
		good := tlsClient(s.addr, ca.Pool(), ca.Pair(t, "client", false))
		if err := good.Ping(ctx).Err(); err != nil {
			t.Errorf("%s: a client with a certificate: %v", tc.mode, err)
		}
		good.Close()
		none := tlsClient(s.addr, ca.Pool())
		if err := none.Ping(ctx).Err(); (err == nil) != tc.noCertServed {
			t.Errorf("%s: a client without a certificate: %v", tc.mode, err)
		}
		none.Close()
		if tc.mode != "no" {
			// Sent even though the server names only its own CA.
			foreign := other.Pair(t, "client", false)
			bad := redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2, MaxRetries: -1,
				TLSConfig: &tls.Config{RootCAs: ca.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					return &foreign, nil
				}}})
			if err := bad.Ping(ctx).Err(); err == nil {
				t.Errorf("%s: a client certificate from another CA was accepted", tc.mode)
			}
			bad.Close()
		}
	}
}

// SIGHUP reads the certificate files again: new connections get the new
// server certificate, a connection opened before keeps working.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	oldCA, fresh := newCA(t, "old"), newCA(t, "new")
	dir := t.TempDir()
	f := writeTLSFiles(t, dir, oldCA, oldCA)
	s := startTLS(t, f, "--tls-auth-clients", "optional")
	ctx := context.Background()
	before := tlsClient(s.addr, oldCA.Pool())
	defer before.Close()
	if err := before.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	writeTLSFiles(t, dir, fresh, oldCA)
	s.stop <- syscall.SIGHUP
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.logged(), "TLS certificates reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", s.logged())
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: fresh.Pool()})
	if err != nil {
		t.Fatalf("a new connection does not get the new certificate: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0]; got.Issuer.CommonName != "new" {
		t.Fatalf("new connection's certificate issued by %q", got.Issuer.CommonName)
	}
	conn.Close()
	if _, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: oldCA.Pool()}); err == nil {
		t.Fatal("a new connection still gets the old certificate")
	}
	// The same pooled connection: go-redis keeps one open and idle.
	if st := before.PoolStats(); st.TotalConns != 1 {
		t.Fatalf("pool: %+v", st)
	}
	if err := before.Do(ctx, "JOBPUSH", "q", "h", "p").Err(); err != nil {
		t.Fatalf("the connection opened before the reload: %v", err)
	}
	if st := before.PoolStats(); st.TotalConns != 1 || st.Misses != 1 {
		t.Fatalf("the command did not use the connection opened before: %+v", st)
	}

	// A bad file leaves the certificate in use.
	os.WriteFile(f.key, []byte("not a key"), 0o600)
	s.stop <- syscall.SIGHUP
	for !strings.Contains(s.logged(), "TLS certificates not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload logged:\n%s", s.logged())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: fresh.Pool()}); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	} else {
		conn.Close()
	}
}

// Failed handshakes from one address are logged once, not once each.
func TestTLSHandshakeFailureLoggedOnce(t *testing.T) {
	ca := newCA(t, "ca")
	s := startTLS(t, writeTLSFiles(t, t.TempDir(), ca, ca))
	for range 5 {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte("PING\r\n")) // plaintext: not a TLS hello
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		for {
			if _, err := nc.Read(buf); err != nil {
				break // closed by the server
			}
		}
		nc.Close()
	}
	if n := strings.Count(s.logged(), "TLS handshake failed"); n != 1 {
		t.Fatalf("%d lines for 5 failed handshakes from one address:\n%s", n, s.logged())
	}
}

// redis-cli --tls with a CA, a certificate and a key runs PING and JOBPUSH.
func TestTLSRedisCLI(t *testing.T) {
	cli := need(t, "redis-cli")
	if out, _ := exec.Command(cli, "--help").CombinedOutput(); !bytes.Contains(out, []byte("--tls")) {
		t.Skip("redis-cli built without TLS")
	}
	ca := newCA(t, "ca")
	dir := t.TempDir()
	f := writeTLSFiles(t, dir, ca, ca)
	c, k := ca.Issue(t, "cli", false)
	ccert, ckey := filepath.Join(dir, "cli.crt"), filepath.Join(dir, "cli.key")
	os.WriteFile(ccert, c, 0o600)
	os.WriteFile(ckey, k, 0o600)
	s := startTLS(t, f)
	_, port, _ := net.SplitHostPort(s.addr)
	run := func(args ...string) string {
		out, err := exec.Command(cli, append([]string{"--tls", "--cacert", f.ca, "--cert", ccert, "--key", ckey,
			"-h", "127.0.0.1", "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("PING"); out != "PONG\n" {
		t.Fatalf("PING: %q", out)
	}
	if id := strings.TrimSpace(run("JOBPUSH", "emails", "send", "x")); len(id) != 16 {
		t.Fatalf("JOBPUSH printed %q", id)
	}
}

// A certificate that cannot be read stops the start with the file named.
func TestTLSBadFilesStopTheStart(t *testing.T) {
	ca := newCA(t, "ca")
	f := writeTLSFiles(t, t.TempDir(), ca, ca)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert-file", filepath.Join(f.dir, "missing.crt"), "--tls-key-file", f.key, "--tls-ca-cert-file", f.ca}, "missing.crt"},
		{[]string{"--tls-cert-file", f.cert, "--tls-key-file", f.ca, "--tls-ca-cert-file", f.ca}, "tls-cert-file/tls-key-file"},
		{[]string{"--tls-cert-file", f.cert, "--tls-key-file", f.key, "--tls-ca-cert-file", f.key}, "tls-ca-cert-file"},
	} {
		var logs bytes.Buffer
		args := append([]string{"--port", "0", "--tls-port", freePort(t), "--dir", t.TempDir(), "--appendonly", "no", "--logformat", "json"}, tc.args...)
		if code := run(args, nil, os.Stdout, &logs, make(chan os.Signal), nil); code != 1 || !strings.Contains(logs.String(), tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q in:\n%s", tc.args, code, tc.want, logs.String())
		}
	}
}

// With a port and a tls-port both are served, by the same server: a job
// pushed in plaintext is reserved over TLS.
func TestTLSBesidePlaintext(t *testing.T) {
	ca := newCA(t, "ca")
	f := writeTLSFiles(t, t.TempDir(), ca, ca)
	args := []string{"--port", freePort(t), "--tls-port", freePort(t), "--dir", t.TempDir(), "--appendonly", "no", "--logformat", "json",
		"--tls-cert-file", f.cert, "--tls-key-file", f.key, "--tls-auth-clients", "no"}
	stop, ready, done := make(chan os.Signal, 1), make(chan []string, 1), make(chan int, 1)
	var logs bytes.Buffer
	go func() { done <- run(args, nil, os.Stdout, &syncWriter{w: &logs}, stop, ready) }()
	var addrs []string
	select {
	case addrs = <-ready:
	case code := <-done:
		t.Fatalf("run exited %d", code)
	}
	defer func() { stop <- syscall.SIGTERM; <-done }()
	if len(addrs) != 2 {
		t.Fatalf("listening on %v, want plaintext then TLS", addrs)
	}
	ctx := context.Background()
	plain := redis.NewClient(&redis.Options{Addr: addrs[0], Protocol: 2})
	defer plain.Close()
	if err := plain.Do(ctx, "JOBPUSH", "q", "h", "p").Err(); err != nil {
		t.Fatal(err)
	}
	c := tlsClient(addrs[1], ca.Pool())
	defer c.Close()
	if res, err := c.Do(ctx, "JOBRESERVE", "w", 60000, "QUEUES", "q").Slice(); err != nil || len(res) != 1 {
		t.Fatalf("reserve over TLS: %v, %v", res, err)
	}
}
