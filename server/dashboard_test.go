package server_test

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

	"sluice/config"
)

// dashPost loads the queue page of base (a dashboard URL) in a fresh
// "browser" and posts op on queue with the page's CSRF token.
func dashPost(t *testing.T, base, queue, op string) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(base + "queue?name=" + url.QueryEscape(queue))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on %s:\n%s", base, page)
	}
	resp, err = c.PostForm(base+"action", url.Values{"op": {op}, "queue": {queue}, "csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// On a node of a group the dashboard's actions are a client's commands: a
// follower's page answers READONLY and changes nothing, the leader's
// pause is proposed and every node applies it.
func TestDashboardActionsInAGroup(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t, func(c *config.Config) { c.HTTPAddr = "127.0.0.1:0" })
	li := leaderOf(t, nodes)
	leader := nodes[li]
	follower := nodes[(li+1)%3]
	lc := redis.NewClient(&redis.Options{Addr: leader.Addrs()[0]})
	defer lc.Close()
	if err := lc.Do(ctx, "JOBPUSH", "emails", "send", "x").Err(); err != nil {
		t.Fatal(err)
	}

	code, body := dashPost(t, follower.DashboardURL(), "emails", "pause")
	if code != http.StatusConflict || !strings.Contains(body, "READONLY") {
		t.Fatalf("pause on a follower's dashboard: %d, want 409 and READONLY\n%s", code, body)
	}
	paused := func(addr string) bool {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		defer c.Close()
		m, err := c.Do(ctx, "QUEUESTATS", "emails").Slice()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(m); i += 2 {
			if m[i] == "paused" {
				return m[i+1] == int64(1)
			}
		}
		return false
	}
	if paused(leader.Addrs()[0]) {
		t.Fatal("a follower's refused pause paused the queue")
	}

	if code, body := dashPost(t, leader.DashboardURL(), "emails", "pause"); code != http.StatusOK {
		t.Fatalf("pause on the leader's dashboard: %d\n%s", code, body)
	}
	for _, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for !paused(n.Addrs()[0]) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s never applied the dashboard's pause", n.Addrs()[0])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
