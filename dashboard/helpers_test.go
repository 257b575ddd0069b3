package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"sluice/config"
	"sluice/server"
)

// The names and payload that must show as text, never run.
const (
	xssQueue   = `"><img src=x onerror=alert(1)>`
	xssPayload = `<script>alert(1)</script>`
)

// node is a server with the dashboard on 127.0.0.1, its client and its
// dashboard's base URL (no trailing slash).
type node struct {
	srv  *server.Server
	rdb  *redis.Client
	base string
}

func startNode(t *testing.T, adjust func(*config.Config)) *node {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Port, cfg.Dir, cfg.HTTPAddr = 0, t.TempDir(), "127.0.0.1:0"
	if adjust != nil {
		adjust(&cfg)
	}
	return startWith(t, cfg)
}

func startWith(t *testing.T, cfg config.Config) *node { return startWithTB(t, cfg) }

func startWithTB(t testing.TB, cfg config.Config) *node {
	t.Helper()
	log := zerolog.Nop()
	if tt, ok := t.(*testing.T); ok {
		log = zerolog.New(zerolog.NewTestWriter(tt))
	}
	s, err := server.New(cfg, server.Options{Log: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: s, base: strings.TrimSuffix(s.DashboardURL(), "/")}
	n.rdb = redis.NewClient(&redis.Options{Addr: s.Addrs()[0], Password: cfg.RequirePass})
	t.Cleanup(func() {
		n.rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return n
}

// do runs a command and fails the test on an error.
func (n *node) do(t *testing.T, args ...any) any {
	t.Helper()
	v, err := n.rdb.Do(context.Background(), args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

// stats is QUEUESTATS as a map.
func (n *node) stats(t *testing.T, queue string) map[any]any {
	t.Helper()
	v := n.do(t, "QUEUESTATS", queue)
	m := map[any]any{}
	switch r := v.(type) {
	case map[any]any:
		return r
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			m[r[i]] = r[i+1]
		}
	}
	return m
}

// failedJob pushes a job to queue and fails it for good; its id.
func (n *node) failedJob(t *testing.T, queue, errText string) string {
	t.Helper()
	id := n.do(t, "JOBPUSH", queue, "h", "{}").(string)
	r := n.do(t, "JOBRESERVE", "w", 60000, "QUEUES", queue).([]any)
	tok := fieldOf(r, "token")
	n.do(t, "JOBFAIL", tok, "ERROR", errText, "NORETRY")
	return id
}

// fieldOf reads a field of the first job of a JOBRESERVE reply.
func fieldOf(r []any, name string) string {
	var job []any
	switch v := r[0].(type) {
	case []any:
		job = v
	case map[any]any:
		s, _ := v[name].(string)
		return s
	}
	for i := 0; i+1 < len(job); i += 2 {
		if job[i] == name {
			s, _ := job[i+1].(string)
			return s
		}
	}
	return ""
}

// browser is an HTTP client with a cookie jar, like a browser tab.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf loads a page and returns its forms' token.
func csrf(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	code, body := get(t, c, u)
	m := csrfRe.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("GET %s: %d, no CSRF token in:\n%s", u, code, body)
	}
	return m[1]
}

func contextTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}
