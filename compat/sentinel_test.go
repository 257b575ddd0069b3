//go:build compat

package compat

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Clients configured with Sentinel, given one standalone sluice node as
// their only sentinel and "sluice" as the master name, find the node
// through SENTINEL and run a push, a reservation and an ack there, with
// no sluice code: go-redis NewFailoverClient (RESP3, its default, and
// RESP2), ioredis with sentinels, node-redis createSentinel and Debian's
// python3-redis Sentinel.

func TestSentinelGoRedisRESP3(t *testing.T) { goRedisSentinel(t, 3) }

func TestSentinelGoRedisRESP2(t *testing.T) { goRedisSentinel(t, 2) }

func goRedisSentinel(t *testing.T, proto int) {
	s := startServer(t)
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: "sluice", SentinelAddrs: []string{"127.0.0.1:" + s.port}, Protocol: proto,
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := c.Do(ctx, "JOBPUSH", "sentinel:q", "send", "hello").Text()
	if err != nil {
		t.Fatalf("JOBPUSH through the failover client: %v\nserver log (tail):\n%s", err, tail(s.logs.String(), 20))
	}
	res, err := c.Do(ctx, "JOBRESERVE", "w1", 30000, "QUEUES", "sentinel:q").Slice()
	if err != nil || len(res) != 1 {
		t.Fatalf("JOBRESERVE: %v %v", res, err)
	}
	token, rid := mapField(res[0], "token"), mapField(res[0], "id")
	if rid != id || token == "" {
		t.Fatalf("reserved %v, pushed %s", res[0], id)
	}
	if ok, err := c.Do(ctx, "JOBACK", token).Text(); err != nil || ok != "OK" {
		t.Fatalf("JOBACK: %q %v", ok, err)
	}
	job, err := c.Do(ctx, "JOBGET", id).Result()
	if err != nil || mapField(job, "state") != "succeeded" {
		t.Fatalf("JOBGET: %v %v", job, err)
	}
	// The failover client subscribed to +switch-master on the node and
	// asked it for the other sentinels; a SentinelClient sees what it saw.
	sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + s.port, Protocol: proto})
	defer sc.Close()
	if addr, err := sc.GetMasterAddrByName(ctx, "sluice").Result(); err != nil || len(addr) != 2 || addr[1] != s.port {
		t.Errorf("GetMasterAddrByName: %v %v", addr, err)
	}
	if m, err := sc.Master(ctx, "sluice").Result(); err != nil || m["flags"] != "master" || m["port"] != s.port {
		t.Errorf("Master: %v %v", m, err)
	}
	if r, err := sc.Replicas(ctx, "sluice").Result(); err != nil || len(r) != 0 {
		t.Errorf("Replicas: %v %v", r, err)
	}
	if r, err := sc.Sentinels(ctx, "sluice").Result(); err != nil || len(r) != 0 {
		t.Errorf("Sentinels: %v %v", r, err)
	}
}

// mapField is a map reply's field as text, in either protocol's shape.
func mapField(v any, name string) string {
	switch m := v.(type) {
	case map[any]any:
		s, _ := m[name].(string)
		return s
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			if m[i] == name {
				s, _ := m[i+1].(string)
				return s
			}
		}
	}
	return ""
}

func TestSentinelIORedis(t *testing.T) {
	dir := nodeModules(t)
	s := startServer(t)
	runScript(t, s, dir, "node", "sentinel.js", "ioredis", s.port)
}

func TestSentinelNodeRedis(t *testing.T) {
	dir := nodeModules(t)
	s := startServer(t)
	runScript(t, s, dir, "node", "sentinel.js", "node-redis", s.port)
}

func TestSentinelPython(t *testing.T) {
	s := startServer(t)
	runScript(t, s, root+"/compat/python", "/usr/bin/python3", "sentinel.py", s.port)
}
