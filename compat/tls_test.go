//go:build compat

package compat

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The lifecycle again over TLS with a client certificate, logged in as a
// named user: redis-cli --tls, go-redis, ioredis and node-redis. The
// certificates are made by the openssl commands of docs/securing.md, run
// as they are written there.

// The named user the scripts log in as; the default user has a password
// of its own, so a script that does not log in as app is refused.
const (
	appUser = "app"
	appPass = "app-secret"
)

// makeCerts runs the certificate commands of docs/securing.md in a new
// directory and returns it (ca.crt, server.crt/key, client.crt/key).
func makeCerts(t *testing.T) string {
	t.Helper()
	need(t, "openssl")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "securing.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- compat/tls_test.go runs this block"
	_, after, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/securing.md has no block marked %q", marker)
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok {
		t.Fatal("docs/securing.md: no ```sh block after the marker")
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the certificate commands of docs/securing.md: %v\n%s", err, out)
	}
	for _, f := range []string{"ca.crt", "server.crt", "server.key", "client.crt", "client.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("the commands made no %s: %v", f, err)
		}
	}
	return dir
}

// startTLSServer serves TLS only, client certificates required, with the
// user app in an --aclfile and a password on the default user; the
// scripts learn the files and the user from the environment.
func startTLSServer(t *testing.T) (*server, string) {
	t.Helper()
	certs := makeCerts(t)
	acl := filepath.Join(t.TempDir(), "users.acl")
	if err := os.WriteFile(acl, []byte("user "+appUser+" on >"+appPass+" ~* +@all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--tls-port", freePort(t), "--tls-cert-file", filepath.Join(certs, "server.crt"),
		"--tls-key-file", filepath.Join(certs, "server.key"), "--tls-ca-cert-file", filepath.Join(certs, "ca.crt"),
		"--tls-auth-clients", "yes", "--aclfile", acl, "--requirepass", "default-secret")
	t.Setenv("SLUICE_TLS_DIR", certs)
	t.Setenv("SLUICE_USER", appUser)
	t.Setenv("SLUICE_PASS", appPass)
	return s, certs
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

func TestRedisCLITLSUser(t *testing.T) {
	need(t, "redis-cli")
	s, _ := startTLSServer(t)
	runScript(t, s, filepath.Join(root, "compat", "cli"), "bash", "lifecycle.sh", s.port)
}

func TestNodeRedisTLSUser(t *testing.T) {
	dir := nodeModules(t)
	s, _ := startTLSServer(t)
	runScript(t, s, dir, "node", "node-redis.js", s.port)
}

func TestIORedisTLSUser(t *testing.T) {
	dir := nodeModules(t)
	s, _ := startTLSServer(t)
	runScript(t, s, dir, "node", "ioredis.js", s.port)
}

func TestGoRedisTLSUser(t *testing.T) {
	s, certs := startTLSServer(t)
	cfg := clientTLS(t, certs, true)
	goRedisLifecycleOn(t, 3, s, func(o *redis.Options) {
		o.TLSConfig = cfg.Clone()
		o.Username, o.Password = appUser, appPass
	})
}

// clientTLS trusts the CA of dir and, with cert, presents its client
// certificate.
func clientTLS(t *testing.T, dir string, cert bool) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// With --tls-auth-clients yes, a client without a certificate, or with
// one another CA signed, is refused by redis-cli and go-redis alike; the
// named user's password alone opens nothing.
func TestTLSRefusesClientsWithoutAValidCertificate(t *testing.T) {
	need(t, "redis-cli")
	s, certs := startTLSServer(t)
	other := makeCerts(t) // another CA, and a client certificate it signed
	ctx := context.Background()
	for name, args := range map[string][]string{
		"no certificate":      {"--tls", "--cacert", filepath.Join(certs, "ca.crt")},
		"another CA's client": {"--tls", "--cacert", filepath.Join(certs, "ca.crt"), "--cert", filepath.Join(other, "client.crt"), "--key", filepath.Join(other, "client.key")},
	} {
		cmd := exec.Command("redis-cli", append(args, "-p", s.port, "--user", appUser, "PING")...)
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+appPass)
		out, _ := cmd.CombinedOutput()
		if strings.Contains(string(out), "PONG") {
			t.Errorf("redis-cli with %s: served: %s", name, out)
		}
	}
	cfg := clientTLS(t, certs, false)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + s.port, TLSConfig: cfg, Username: appUser, Password: appPass, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("go-redis without a client certificate was served")
	}
	// The valid certificate with the user's password is served.
	ok := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + s.port, TLSConfig: clientTLS(t, certs, true), Username: appUser, Password: appPass})
	defer ok.Close()
	if got, err := ok.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || got != appUser {
		t.Errorf("with the client certificate: %q, %v", got, err)
	}
}
