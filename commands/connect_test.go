package commands_test

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// What client libraries send when they connect, pipelined as they send it,
// and what Redis 7 answers: every reply a library checks must be the one
// it expects, and errors must be the ones it tolerates (see
// docs/clients.md).
func TestConnectPreludes(t *testing.T) {
	ts := start(t)
	const ok = "OK"
	noCluster := "ERR This instance has cluster support disabled"
	for _, lib := range []struct {
		name string
		cmds [][]any
		want []string // "OK", an error text, or "" for any non-error reply
	}{
		{"go-redis v9, RESP2, DB and name", [][]any{
			{"SELECT", 0}, {"CLIENT", "SETNAME", "app"},
			{"CLIENT", "SETINFO", "LIB-NAME", "go-redis(,go1.26.8)"}, {"CLIENT", "SETINFO", "LIB-VER", "9.23.0"},
		}, []string{ok, ok, ok, ok}},
		{"node-redis v4/v5", [][]any{
			{"SELECT", 0}, {"CLIENT", "SETINFO", "LIB-VER", "5.8.2"}, {"CLIENT", "SETINFO", "LIB-NAME", "node-redis"},
			{"CLIENT", "SETNAME", "w1"},
		}, []string{ok, ok, ok, ok}},
		{"connection settings an application may send first (Redis 7.0/7.2)", [][]any{
			{"CLIENT", "NO-EVICT", "ON"}, {"CLIENT", "NO-TOUCH", "off"}, {"CLIENT", "NO-EVICT", "maybe"},
		}, []string{ok, ok, "ERR syntax error"}},
		{"ioredis 5", [][]any{
			{"INFO"}, {"CLIENT", "SETINFO", "LIB-NAME", "ioredis"}, {"CLIENT", "SETINFO", "LIB-VER", "5.9.3"},
			{"CLIENT", "SETNAME", "w2"}, {"READONLY"},
		}, []string{"", ok, ok, ok, noCluster}},
		{"redis-py 5-8, protocol=2", [][]any{
			{"CLIENT", "SETNAME", "py"}, {"CLIENT", "SETINFO", "LIB-NAME", "redis-py"}, {"CLIENT", "SETINFO", "LIB-VER", "8.0.0"},
			{"SELECT", 0},
		}, []string{ok, ok, ok, ok}},
		{"redis-rb 5 (redis-client)", [][]any{
			{"CLIENT", "SETINFO", "LIB-NAME", "redis-client(redis-rb_v5.4.1)"}, {"CLIENT", "SETINFO", "LIB-VER", "0.26.1"},
		}, []string{ok, ok}},
		{"maintenance notifications (sent only after HELLO 3) and cluster commands: as Redis 7.0 without cluster", [][]any{
			{"CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "internal-ip"}, {"READWRITE"},
		}, []string{"ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.", noCluster}},
	} {
		c := ts.client(t, resp2)
		cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, args := range lib.cmds {
				p.Do(ctx, args...)
			}
			return nil
		})
		for i, cmd := range cmds {
			v, err := cmd.(*redis.Cmd).Result()
			switch want := lib.want[i]; {
			case want == "" && err != nil:
				t.Errorf("%s: %v: %v", lib.name, lib.cmds[i], err)
			case want == ok && (err != nil || v != ok):
				t.Errorf("%s: %v: %v, %v; want OK", lib.name, lib.cmds[i], v, err)
			case want != "" && want != ok && (err == nil || err.Error() != want):
				t.Errorf("%s: %v: %v, %v; want %s", lib.name, lib.cmds[i], v, err, want)
			}
		}
	}
}
