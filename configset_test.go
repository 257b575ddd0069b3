package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sluice/internal/testcert"
)

// CONFIG SET of the certificate files loads them at once: a connection
// opened before keeps working, a new one gets the new certificate; files
// that do not load answer an error and leave the ones in use.
func TestTLSReloadByConfigSet(t *testing.T) {
	oldCA, fresh := newCA(t, "old"), newCA(t, "new")
	f := writeTLSFiles(t, t.TempDir(), oldCA, oldCA)
	s := startTLS(t, f)
	ctx := context.Background()
	client := oldCA.Pair(t, "client", false)
	before := tlsClient(s.addr, oldCA.Pool(), client)
	defer before.Close()
	if err := before.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	g := writeTLSFiles(t, t.TempDir(), fresh, oldCA) // new paths: a new server certificate, the same client CA
	if err := before.Do(ctx, "CONFIG", "SET", "tls-cert-file", g.cert, "tls-key-file", g.key).Err(); err != nil {
		t.Fatalf("CONFIG SET: %v", err)
	}
	if got := before.ConfigGet(ctx, "tls-*-file").Val(); got["tls-cert-file"] != g.cert || got["tls-key-file"] != g.key {
		t.Errorf("CONFIG GET after the change: %v", got)
	}
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: fresh.Pool(), Certificates: []tls.Certificate{client}})
	if err != nil {
		t.Fatalf("a new connection does not get the new certificate: %v", err)
	}
	conn.Close()
	if err := before.Do(ctx, "JOBPUSH", "q", "h", "p").Err(); err != nil {
		t.Fatalf("the connection opened before the reload: %v", err)
	}
	if st := before.PoolStats(); st.TotalConns != 1 || st.Misses != 1 {
		t.Fatalf("the command did not use the connection opened before: %+v", st)
	}

	for _, bad := range [][]any{
		{"tls-key-file", filepath.Join(g.dir, "missing.key")},
		{"tls-cert-file", f.cert}, // the old certificate with the new key
		{"tls-ca-cert-file", g.key},
		{"tls-cert-file", g.cert, "port", "1"},
	} {
		err := before.Do(ctx, append([]any{"CONFIG", "SET"}, bad...)...).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR ") {
			t.Errorf("CONFIG SET %v: %v, want an error", bad, err)
		}
		t.Logf("CONFIG SET %v: %v", bad, err)
	}
	if got := before.ConfigGet(ctx, "tls-*").Val(); got["tls-cert-file"] != g.cert || got["tls-key-file"] != g.key || got["tls-ca-cert-file"] != f.ca {
		t.Errorf("a refused CONFIG SET changed the settings: %v", got)
	}
	conn, err = tls.Dial("tcp", s.addr, &tls.Config{RootCAs: fresh.Pool(), Certificates: []tls.Certificate{client}})
	if err != nil {
		t.Fatalf("after refused changes: %v", err)
	}
	conn.Close()
}

// --metrics-tls serves the metrics over HTTPS with the server's
// certificate, which CONFIG SET reloads for it too.
func TestMetricsOverTLS(t *testing.T) {
	oldCA, fresh := newCA(t, "old"), newCA(t, "new")
	f := writeTLSFiles(t, t.TempDir(), oldCA, oldCA)
	s := startTLS(t, f, "--metrics-addr", "127.0.0.1:0", "--metrics-tls", "yes")
	m := regexp.MustCompile(`"metrics":"(https://[^"]+)"`).FindStringSubmatch(s.logged())
	if m == nil {
		t.Fatalf("no https metrics URL logged:\n%s", s.logged())
	}
	url := m[1]
	client := oldCA.Pair(t, "client", false)
	get := func(ca *testcert.CA) (string, error) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}}}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	body, err := get(oldCA)
	if err != nil || !strings.Contains(body, "sluice_") {
		t.Fatalf("GET %s: %v\n%.300s", url, err, body)
	}
	if resp, err := http.Get(strings.Replace(url, "https:", "http:", 1)); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "sluice_") {
			t.Fatal("the metrics are served over plain HTTP too")
		}
	}
	// Without a client certificate (tls-auth-clients yes) it is refused.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: oldCA.Pool()}}}
	if resp, err := hc.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a client without a certificate was served")
	}
	c := tlsClient(s.addr, oldCA.Pool(), client)
	defer c.Close()
	g := writeTLSFiles(t, t.TempDir(), fresh, oldCA)
	if err := c.Do(context.Background(), "CONFIG", "SET", "tls-cert-file", g.cert, "tls-key-file", g.key).Err(); err != nil {
		t.Fatal(err)
	}
	if body, err := get(fresh); err != nil || !strings.Contains(body, "sluice_") {
		t.Fatalf("after CONFIG SET, with the new CA: %v", err)
	}
	if _, err := get(oldCA); err == nil {
		t.Fatal("after CONFIG SET the metrics still use the old certificate")
	}
}

// maxmemory-share from the command line, CONFIG GET and CONFIG SET: pushes
// past a share answer FULL and change nothing.
func TestMaxMemoryShareSetting(t *testing.T) {
	ca := newCA(t, "ca")
	s := startTLS(t, writeTLSFiles(t, t.TempDir(), ca, ca), "--maxmemory-share", "team-a:*=1kb", "--maxmemory-share", "team-b:*=2kb")
	c := tlsClient(s.addr, ca.Pool(), ca.Pair(t, "client", false))
	defer c.Close()
	ctx := context.Background()
	if got := c.ConfigGet(ctx, "maxmemory-share").Val()["maxmemory-share"]; got != "team-a:*=1024 team-b:*=2048" {
		t.Errorf("CONFIG GET maxmemory-share: %q", got)
	}
	payload := strings.Repeat("x", 300)
	pushes := 0
	var err error
	for ; pushes < 10; pushes++ {
		if err = c.Do(ctx, "JOBPUSH", "team-a:mail", "send", payload).Err(); err != nil {
			break
		}
	}
	if pushes != 1 || err == nil || !strings.HasPrefix(err.Error(), "FULL ") {
		t.Fatalf("%d pushes, then %v; want 1, then FULL", pushes, err)
	}
	if n := c.Do(ctx, "QUEUELEN", "team-a:mail").Val(); n != int64(1) {
		t.Errorf("team-a:mail holds %v jobs", n)
	}
	if err := c.Do(ctx, "JOBPUSH", "team-c:mail", "send", payload).Err(); err != nil {
		t.Errorf("a queue no share matches: %v", err)
	}
	for _, bad := range []string{"team-a:*", "team-a:*=0", "a=1 a=lots"} {
		if err := c.Do(ctx, "CONFIG", "SET", "maxmemory-share", bad).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR CONFIG SET failed: maxmemory-share") {
			t.Errorf("CONFIG SET maxmemory-share %q: %v", bad, err)
		}
	}
	if err := c.Do(ctx, "CONFIG", "SET", "maxmemory-share", "team-a:*=1mb").Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.ConfigGet(ctx, "maxmemory-share").Val()["maxmemory-share"]; got != "team-a:*=1048576" {
		t.Errorf("CONFIG GET after CONFIG SET: %q", got)
	}
	if err := c.Do(ctx, "JOBPUSH", "team-a:mail", "send", payload).Err(); err != nil {
		t.Errorf("after raising the share: %v", err)
	}
	if err := c.Do(ctx, "CONFIG", "SET", "maxmemory-share", "").Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.ConfigGet(ctx, "maxmemory-share").Val()["maxmemory-share"]; got != "" {
		t.Errorf("CONFIG GET after removing the shares: %q", got)
	}
}
