//go:build compat

package compat

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis with Protocol 3 (its default): HELLO 3, maps as
// map[interface{}]interface{}. go-redis falls back to RESP2 by itself when
// HELLO 3 is refused, so the steps check the shapes, not just the values.
func TestGoRedisRESP3(t *testing.T) { goRedisLifecycle(t, 3) }

// go-redis with Protocol 2: no HELLO, maps as flat lists.
func TestGoRedisRESP2(t *testing.T) { goRedisLifecycle(t, 2) }

// goLife is one run of the lifecycle (doc.go) with go-redis.
type goLife struct {
	t     *testing.T
	proto int
	addr  string
	c     *redis.Client
	tune  func(*redis.Options) // TLS and a user, or nil
}

func goRedisLifecycle(t *testing.T, proto int) {
	goRedisLifecycleOn(t, proto, startServer(t), nil)
}

func goRedisLifecycleOn(t *testing.T, proto int, s *server, tune func(*redis.Options)) {
	l := &goLife{t: t, proto: proto, addr: "127.0.0.1:" + s.port, tune: tune}
	// Only the address and the protocol differ from go-redis's defaults.
	l.c = l.client()
	defer l.c.Close()
	ctx := context.Background()

	hello := "HELLO answers proto 2"
	if proto == 3 {
		hello = "[RESP3] HELLO answers proto 3"
	}
	t.Run(hello, func(t *testing.T) {
		m := l.asMap(t, l.do(t, "HELLO"), "HELLO")
		l.fields(t, m, map[string]any{"server": "sluice", "proto": int64(proto)}, "HELLO")
	})

	t.Run("policies", func(t *testing.T) {
		l.ok(t, l.do(t, "POLICYSET", "CONCURRENCY", "tenant:a", 2))
		l.ok(t, l.do(t, "POLICYSET", "RATELIMIT", "api:x", 100, 60000))
	})

	var token string
	t.Run("blocking reserve woken by a push", func(t *testing.T) {
		other := l.client()
		defer other.Close()
		got := make(chan any, 1)
		fail := make(chan error, 1)
		go func() {
			v, err := other.Do(ctx, "JOBRESERVE", "w1", 30000, "BLOCK", 10000, "QUEUES", "mail:out").Result()
			if err != nil {
				fail <- err
				return
			}
			got <- v
		}()
		deadline := time.Now().Add(5 * time.Second)
		for l.infoSection(t, "clients")["blocked_clients"] != "1" {
			if time.Now().After(deadline) {
				t.Fatal("the reserve never blocked")
			}
			time.Sleep(20 * time.Millisecond)
		}
		id := l.do(t, "JOBPUSH", "mail:out", "send", `{"to":"a@example.com"}`, "ID", "job:a",
			"PRIORITY", 5, "CONCURRENCY", "tenant:a", "RATELIMIT", "api:x", "MAXATTEMPTS", 3, "BACKOFF", 10)
		if id != "job:a" {
			t.Fatalf("JOBPUSH: %v", id)
		}
		var v any
		select {
		case v = <-got:
		case err := <-fail:
			t.Fatalf("JOBRESERVE BLOCK: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("JOBRESERVE BLOCK was not woken by the push")
		}
		list, ok := v.([]any)
		if !ok || len(list) != 1 {
			t.Fatalf("reserve: %#v", v)
		}
		r := l.asMap(t, list[0], "reservation")
		l.fields(t, r, map[string]any{"id": "job:a", "queue": "mail:out", "handler": "send",
			"payload": `{"to":"a@example.com"}`, "priority": int64(5), "attempt": int64(0)}, "reservation")
		if exp, _ := r["expires_at"].(int64); exp <= time.Now().UnixMilli() {
			t.Errorf("reservation expires_at %v", r["expires_at"])
		}
		token, _ = r["token"].(string)
	})

	t.Run("DELAY and AT", func(t *testing.T) {
		b := l.do(t, "JOBPUSH", "mail:out", "send", "later", "DELAY", 600000)
		at := time.Now().UnixMilli() + 600000
		c := l.do(t, "JOBPUSH", "mail:out", "send", "at", "AT", at)
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", b), "JOBGET"), map[string]any{"state": "scheduled", "payload": "later"}, "JOBGET delayed")
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", c), "JOBGET"), map[string]any{"state": "scheduled", "run_at": at}, "JOBGET at")
	})

	t.Run("start touch get ack", func(t *testing.T) {
		if token == "" {
			t.Fatal("no reservation from the blocking step")
		}
		if n := l.do(t, "JOBSTART", token); n != int64(1) {
			t.Fatalf("JOBSTART: %#v", n)
		}
		exp, _ := l.do(t, "JOBTOUCH", token, 60000).(int64)
		if exp < time.Now().UnixMilli()+50000 {
			t.Fatalf("JOBTOUCH: %d", exp)
		}
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", "job:a"), "JOBGET"), map[string]any{
			"id": "job:a", "queue": "mail:out", "handler": "send", "state": "running", "priority": int64(5),
			"concurrency_key": "tenant:a", "rate_limit_key": "api:x", "attempt": int64(1), "max_attempts": int64(3),
			"worker": "w1", "expires_at": exp, "last_error": nil, "blocked_by": nil,
		}, "JOBGET job:a")
		l.ok(t, l.do(t, "JOBACK", token))
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", "job:a"), "JOBGET"), map[string]any{"state": "succeeded", "worker": nil}, "JOBGET job:a")
	})

	t.Run("fail and retry", func(t *testing.T) {
		d := l.do(t, "JOBPUSH", "mail:out", "send", "fails")
		list, ok := l.do(t, "JOBRESERVE", "w2", 30000, "QUEUES", "mail:out").([]any)
		if !ok || len(list) != 1 {
			t.Fatalf("reserve: %#v", list)
		}
		r := l.asMap(t, list[0], "reservation")
		l.fields(t, r, map[string]any{"id": d}, "reservation")
		if st := l.do(t, "JOBFAIL", r["token"], "ERROR", "boom", "NORETRY"); st != "failed" {
			t.Fatalf("JOBFAIL: %#v", st)
		}
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", d), "JOBGET"), map[string]any{"state": "failed", "last_error": "boom", "attempt": int64(1)}, "JOBGET failed")
		l.ok(t, l.do(t, "JOBRETRY", d))
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", d), "JOBGET"), map[string]any{"state": "queued", "attempt": int64(0)}, "JOBGET retried")
	})

	t.Run("nulls", func(t *testing.T) {
		for _, args := range [][]any{
			{"JOBGET", "no:such:job"},
			{"JOBRESERVE", "w3", 1000, "QUEUES", "empty:q"},
			{"POLICYGET", "CONCURRENCY", "no:such:key"},
		} {
			if v, err := l.c.Do(ctx, args...).Result(); err != redis.Nil {
				t.Errorf("%v: %#v, %v; want a null reply", args, v, err)
			}
		}
	})

	t.Run("QUEUESTATS", func(t *testing.T) {
		m := l.asMap(t, l.do(t, "QUEUESTATS", "mail:out"), "QUEUESTATS")
		l.fields(t, m, map[string]any{"queue": "mail:out", "status": "active", "queued": int64(1), "scheduled": int64(2),
			"reserved": int64(0), "running": int64(0), "retry_pending": int64(0), "failed": int64(0),
			"pushed_total": int64(4), "succeeded_total": int64(1), "failed_total": int64(1)}, "QUEUESTATS mail:out")
		if p := m["paused"]; p != int64(0) && p != false {
			t.Errorf("QUEUESTATS paused = %#v", p)
		}
	})

	t.Run("policies read", func(t *testing.T) {
		l.fields(t, l.asMap(t, l.do(t, "POLICYGET", "CONCURRENCY", "tenant:a"), "POLICYGET"), map[string]any{
			"kind": "concurrency", "key": "tenant:a", "limit": int64(2), "period": nil, "active": int64(0),
			"waiting": int64(0), "next_free_at": nil}, "POLICYGET CONCURRENCY tenant:a")
		l.fields(t, l.asMap(t, l.do(t, "POLICYGET", "RATELIMIT", "api:x"), "POLICYGET"), map[string]any{
			"kind": "ratelimit", "key": "api:x", "limit": int64(100), "period": int64(60000), "active": int64(1),
			"waiting": int64(0), "next_free_at": nil}, "POLICYGET RATELIMIT api:x")
		list, ok := l.do(t, "POLICYLIST").([]any)
		if !ok || len(list) != 2 {
			t.Fatalf("POLICYLIST: %#v", list)
		}
		l.fields(t, l.asMap(t, list[0], "POLICYLIST[0]"), map[string]any{"kind": "concurrency", "key": "tenant:a"}, "POLICYLIST[0]")
		l.fields(t, l.asMap(t, list[1], "POLICYLIST[1]"), map[string]any{"kind": "ratelimit", "key": "api:x"}, "POLICYLIST[1]")
	})

	t.Run("[MULTI] TxPipelined of three pushes", func(t *testing.T) {
		cmds, err := l.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Do(ctx, "JOBPUSH", "batch:q", "h", "one")
			p.Do(ctx, "JOBPUSH", "batch:q", "h", "two", "PRIORITY", 1)
			p.Do(ctx, "JOBPUSH", "batch:q", "h", "three", "ID", "batch:3")
			return nil
		})
		if err != nil {
			t.Fatalf("TxPipelined: %v", err)
		}
		ids := map[string]bool{}
		for _, c := range cmds {
			id, err := c.(*redis.Cmd).Text()
			if err != nil {
				t.Fatalf("%v: %v", c.Args(), err)
			}
			ids[id] = true
		}
		if len(ids) != 3 || !ids["batch:3"] {
			t.Fatalf("ids: %v", ids)
		}
		if n := l.do(t, "QUEUELEN", "batch:q"); n != int64(3) {
			t.Fatalf("QUEUELEN batch:q: %#v", n)
		}
	})

	t.Run("[IDEMPOTENCY] every option and a retry", func(t *testing.T) {
		at := time.Now().UnixMilli() + 600000
		e := []any{"JOBPUSH", "idem:q", "send", "p1", "ID", "job:e", "PRIORITY", -3, "CONCURRENCY", "tenant:a",
			"RATELIMIT", "api:x", "DELAY", 600000, "MAXATTEMPTS", 2, "BACKOFF", 50, "IDEMPOTENCY", "order:1"}
		f := []any{"JOBPUSH", "idem:q", "send", "p2", "PRIORITY", 7, "CONCURRENCY", "tenant:a",
			"RATELIMIT", "api:x", "AT", at, "MAXATTEMPTS", 4, "BACKOFF", 60, "IDEMPOTENCY", "order:2"}
		idE := l.do(t, e...)
		if idE != "job:e" {
			t.Fatalf("JOBPUSH: %#v", idE)
		}
		idF := l.do(t, f...)
		if again := l.do(t, e...); again != idE {
			t.Errorf("the retry of the push with ID answered %#v, want %#v", again, idE)
		}
		if again := l.do(t, f...); again != idF {
			t.Errorf("the retry of the push without ID answered %#v, want %#v", again, idF)
		}
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", idE), "JOBGET"), map[string]any{"state": "scheduled", "priority": int64(-3),
			"concurrency_key": "tenant:a", "rate_limit_key": "api:x", "max_attempts": int64(2)}, "JOBGET job:e")
		l.fields(t, l.asMap(t, l.do(t, "JOBGET", idF), "JOBGET"), map[string]any{"state": "scheduled", "priority": int64(7),
			"run_at": at, "max_attempts": int64(4)}, "JOBGET second")
		l.fields(t, l.asMap(t, l.do(t, "QUEUESTATS", "idem:q"), "QUEUESTATS"), map[string]any{"scheduled": int64(2),
			"pushed_total": int64(2)}, "QUEUESTATS idem:q")
	})

	t.Run("InfoMap with ':' in names", func(t *testing.T) {
		q := l.infoSection(t, "queues")
		mail := subFields(q["queue_mail%3Aout"])
		if mail["status"] != "active" || mail["queued"] != "1" || mail["scheduled"] != "2" {
			t.Errorf("INFO queue_mail%%3Aout = %q in %v", q["queue_mail%3Aout"], q)
		}
		n := 0
		found := false
		for k := range q {
			if name, ok := strings.CutPrefix(k, "queue_"); ok {
				n++
				if dec, err := url.PathUnescape(name); err == nil && dec == "mail:out" {
					found = true
				}
			}
		}
		if !found || q["queues"] != strconv.Itoa(n) {
			t.Errorf("INFO queues: queues:%s, %d queue_ fields, mail:out found %v: %v", q["queues"], n, found, q)
		}
		p := l.infoSection(t, "policies")
		c := subFields(p["policy_concurrency_tenant%3Aa"])
		r := subFields(p["policy_ratelimit_api%3Ax"])
		if p["policies"] != "2" || c["limit"] != "2" || c["active"] != "0" || r["limit"] != "100" || r["period"] != "60000" {
			t.Errorf("INFO policies: %v", p)
		}
	})
}

func (l *goLife) client() *redis.Client {
	o := &redis.Options{Addr: l.addr, Protocol: l.proto}
	if l.tune != nil {
		l.tune(o)
	}
	return redis.NewClient(o)
}

// do sends one command and fails the step on an error reply.
func (l *goLife) do(t *testing.T, args ...any) any {
	t.Helper()
	v, err := l.c.Do(context.Background(), args...).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

func (l *goLife) ok(t *testing.T, v any) {
	t.Helper()
	if v != "OK" {
		t.Fatalf("got %#v, want OK", v)
	}
}

// asMap reads a map reply and checks its shape: a RESP3 map with Protocol
// 3, a flat field/value list with Protocol 2.
func (l *goLife) asMap(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	out := map[string]any{}
	if l.proto == 3 {
		if m, ok := v.(map[any]any); ok {
			for k, val := range m {
				out[fmt.Sprint(k)] = val
			}
			return out
		}
		// Read it anyway, so that the steps after this one still run.
		t.Errorf("[RESP3] %s: %#v, want a RESP3 map", what, v)
	}
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		t.Fatalf("%s: %#v, want a flat field/value list", what, v)
	}
	for i := 0; i < len(list); i += 2 {
		out[fmt.Sprint(list[i])] = list[i+1]
	}
	return out
}

func (l *goLife) fields(t *testing.T, m map[string]any, want map[string]any, what string) {
	t.Helper()
	for k, w := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s: no field %s in %v", what, k, m)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: %s = %#v, want %#v", what, k, got, w)
		}
	}
}

// infoSection reads one INFO section with go-redis's own parser, InfoMap.
func (l *goLife) infoSection(t *testing.T, section string) map[string]string {
	t.Helper()
	all, err := l.c.InfoMap(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	for name, fields := range all {
		if strings.EqualFold(strings.TrimSpace(name), section) {
			out := map[string]string{}
			for k, v := range fields {
				out[k] = strings.TrimSpace(v)
			}
			return out
		}
	}
	t.Fatalf("INFO %s: no such section in %v", section, all)
	return nil
}

// subFields splits an INFO value at ',' and '=' as redis-py does.
func subFields(v string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if i := strings.LastIndex(kv, "="); i >= 0 {
			out[kv[:i]] = kv[i+1:]
		}
	}
	return out
}
