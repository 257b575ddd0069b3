package commands_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
	"sluice/protocol"
)

func TestServerCommands(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1 })
	for _, tc := range []struct {
		args []any
		want any
	}{
		{[]any{"PING"}, "PONG"},
		{[]any{"PING", "hi"}, "hi"},
		{[]any{"ECHO", "x y"}, "x y"},
		{[]any{"SELECT", 0}, "OK"},
		{[]any{"DBSIZE"}, int64(0)},
		{[]any{"CLIENT", "SETNAME", "worker-1"}, "OK"},
		{[]any{"CLIENT", "GETNAME"}, "worker-1"},
		{[]any{"CLIENT", "SETINFO", "LIB-NAME", "mylib"}, "OK"},
		{[]any{"FLUSHALL"}, "OK"},
	} {
		if got := do(t, c, tc.args...); got != tc.want {
			t.Errorf("%v: got %#v, want %#v", tc.args, got, tc.want)
		}
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"PING", "a", "b"}, "ERR wrong number of arguments for 'ping' command"},
		{[]any{"SELECT", 1}, "ERR DB index is out of range"},
		{[]any{"SELECT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"HELLO", 4}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "x"}, "ERR Protocol version is not an integer or out of range"},
		{[]any{"HELLO", 2, "BOGUS"}, "ERR Syntax error in HELLO option 'BOGUS'"},
		{[]any{"CLIENT", "SETNAME", "a b"}, "ERR Client names cannot contain spaces, newlines or special characters."},
		{[]any{"CLIENT", "SETINFO", "COLOR", "x"}, "ERR Unrecognized option 'COLOR'"},
		{[]any{"CLIENT", "NOPE"}, "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."},
		{[]any{"CLIENT", "GETNAME", "x"}, "ERR wrong number of arguments for 'client|getname' command"},
		{[]any{"CLIENT", "KILL", "1.2.3.4:5"}, "ERR No such client"},
		{[]any{"CONFIG", "SET", "port", "1"}, "ERR CONFIG SET port is not supported while running: set it with a flag, a SLUICE_* variable or the config file and restart (CONFIG SET changes tls-cert-file, tls-key-file, tls-ca-cert-file, maxmemory-share)"},
		{[]any{"CONFIG", "GET"}, "ERR wrong number of arguments for 'config|get' command"},
		{[]any{"AUTH", "pw"}, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{[]any{"FLUSHALL", "NOW"}, "ERR syntax error"},
		{[]any{"GET", "k"}, "ERR unknown command 'GET', with args beginning with: 'k' "},
	} {
		if got := doErr(t, c, tc.args...); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.args, got, tc.want)
		}
	}

	hello := asMap(t, do(t, c, "HELLO", 2, "SETNAME", "h2"), "server", "version", "proto", "id", "mode", "role", "modules")
	check.Fields(t, "HELLO", hello, map[string]any{"server": "sluice", "proto": int64(2)})
	id := do(t, c, "CLIENT", "ID").(int64)
	if hello["id"] != id {
		t.Fatalf("HELLO id %v, CLIENT ID %d", hello["id"], id)
	}
	list := do(t, c, "CLIENT", "LIST").(string)
	if !strings.Contains(list, "id="+strconv.FormatInt(id, 10)+" ") || !strings.Contains(list, "name=h2 ") || !strings.Contains(list, "lib-name=mylib") {
		t.Fatalf("CLIENT LIST %q", list)
	}
	if info := do(t, c, "CLIENT", "INFO").(string); !strings.Contains(info, "cmd=client") {
		t.Fatalf("CLIENT INFO %q", info)
	}

	tm := do(t, c, "TIME").([]any)
	secs, _ := strconv.ParseInt(tm[0].(string), 10, 64)
	if d := time.Now().Unix() - secs; d < -1 || d > 1 {
		t.Fatalf("TIME %v", tm)
	}

	n := do(t, c, "COMMAND", "COUNT").(int64)
	if n < 30 {
		t.Fatalf("COMMAND COUNT %d", n)
	}
	if all := do(t, c, "COMMAND").([]any); int64(len(all)) != n {
		t.Fatalf("COMMAND lists %d, COUNT says %d", len(all), n)
	}
	// COMMAND LIST names subcommands too, as Redis 7 does, and filters.
	cmdList := func(args ...any) []string {
		t.Helper()
		var out []string
		for _, v := range do(t, c, append([]any{"COMMAND", "LIST"}, args...)...).([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	names := cmdList()
	if int64(len(names)) <= n || !slices.Contains(names, "jobpush") || !slices.Contains(names, "config|get") {
		t.Fatalf("COMMAND LIST %v", names)
	}
	if got := cmdList("FILTERBY", "PATTERN", "CONFIG*"); !slices.Equal(got, []string{"config", "config|get", "config|set", "config|help"}) {
		t.Fatalf("COMMAND LIST FILTERBY PATTERN CONFIG* %v", got)
	}
	if got := cmdList("filterby", "aclcat", "QUEUES"); !slices.Contains(got, "queuelen") || slices.Contains(got, "jobpush") {
		t.Fatalf("COMMAND LIST FILTERBY ACLCAT QUEUES %v", got)
	}
	for _, f := range [][]any{{"FILTERBY", "MODULE", "x"}, {"FILTERBY", "ACLCAT", "@queues"}, {"FILTERBY", "PATTERN", "[z"}} {
		if got := cmdList(f...); len(got) != 0 {
			t.Fatalf("COMMAND LIST %v: %v", f, got)
		}
	}
	for _, f := range [][]any{{"FILTERBY"}, {"FILTERBY", "PATTERN"}, {"x", "PATTERN", "*"}, {"FILTERBY", "NOPE", "x"}, {"FILTERBY", "PATTERN", "*", "x"}} {
		if _, err := c.Do(context.Background(), append([]any{"COMMAND", "LIST"}, f...)...).Result(); err == nil || err.Error() != "ERR syntax error" {
			t.Fatalf("COMMAND LIST %v: %v", f, err)
		}
	}

	info := do(t, c, "COMMAND", "INFO", "jobpush", "nope").([]any)
	if len(info) != 2 || info[1] != nil {
		t.Fatalf("COMMAND INFO %v", info)
	}
	row := info[0].([]any)
	check.Len(t, "COMMAND INFO jobpush", row, 10)
	check.Field(t, "COMMAND INFO jobpush's name", row[0], any("jobpush"))
	check.Field(t, "COMMAND INFO jobpush's arity", row[1], any(int64(-4)))
	docs := do(t, c, "COMMAND", "DOCS", "jobreserve").([]any)
	if docs[0] != "jobreserve" {
		t.Fatalf("COMMAND DOCS %v", docs)
	}
	doc := docs[1].([]any)
	check.Field(t, "COMMAND DOCS jobreserve's first field", doc[0], any("summary"))
	check.Field(t, "COMMAND DOCS jobreserve's fourth field", doc[6], any("arguments"))

	cfg := do(t, c, "CONFIG", "GET", "sav*").([]any)
	check.Equal(t, "CONFIG GET sav*", cfg, []any{"save", ""})
	if cfg := do(t, c, "CONFIG", "GET", "no-such-setting").([]any); len(cfg) != 0 {
		t.Fatalf("CONFIG GET unknown %v", cfg)
	}

	do(t, c, "JOBPUSH", "q", "h", "p")
	do(t, c, "POLICYSET", "CONCURRENCY", "k", 3)
	text := do(t, c, "INFO").(string)
	for _, want := range []string{"# Server\r\n", "# Clients\r\n", "# Memory\r\n", "# Persistence\r\n", "# Stats\r\n", "# Queues\r\n",
		"connected_clients:", "queue_q:status=active,queued=1"} {
		if !strings.Contains(text, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	if text := do(t, c, "INFO", "clients").(string); strings.Contains(text, "# Server") || !strings.Contains(text, "# Clients") {
		t.Fatalf("INFO clients %q", text)
	}
	if got := do(t, c, "DBSIZE"); got != int64(1) {
		t.Fatal(got)
	}
	do(t, c, "FLUSHALL")
	if got := do(t, c, "DBSIZE"); got != int64(0) {
		t.Fatal(got)
	}
	if got := do(t, c, "POLICYLIST").([]any); len(got) != 0 {
		t.Fatalf("FLUSHALL kept policies %v", got)
	}
}

// The default go-redis client asks for RESP3 with HELLO 3, gets NOPROTO and
// must carry on over RESP2, then sends CLIENT SETINFO.
func TestDefaultGoRedisClientFallsBackToRESP2(t *testing.T) {
	ts := start(t)
	c := redis.NewClient(&redis.Options{Addr: ts.addr})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	id, err := c.Do(ctx, "JOBPUSH", "q", "h", "p").Text()
	if err != nil || id == "" {
		t.Fatal(id, err)
	}
	list := do(t, c, "CLIENT", "LIST").(string)
	if !strings.Contains(list, "lib-name=go-redis") {
		t.Fatalf("CLIENT SETINFO from go-redis not recorded: %q", list)
	}
}

func TestGoRedisPipeline(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 0; i < 100; i++ {
			p.Do(ctx, "JOBPUSH", "q", "h", strconv.Itoa(i), "ID", "j"+strconv.Itoa(i))
		}
		p.Do(ctx, "QUEUELEN", "q")
		p.Do(ctx, "JOBPUSH", "q", "h", "dup", "ID", "j0")
		p.Do(ctx, "PING")
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "DUPJOB") {
		t.Fatalf("pipeline error %v", err)
	}
	for i := 0; i < 100; i++ {
		if v, _ := cmds[i].(*redis.Cmd).Text(); v != "j"+strconv.Itoa(i) {
			t.Fatalf("reply %d = %q", i, v)
		}
	}
	if v, _ := cmds[100].(*redis.Cmd).Int64(); v != 100 {
		t.Fatalf("QUEUELEN in pipeline = %d", v)
	}
	if v, _ := cmds[102].(*redis.Cmd).Text(); v != "PONG" {
		t.Fatalf("PING after an error in the pipeline = %q", v)
	}
}

func TestAuthAndQuit(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.RequirePass = "pw" })
	bad := ts.client(t, func(o *redis.Options) { o.MaxRetries = -1 })
	if err := bad.Ping(ctx).Err(); err == nil || err.Error() != "NOAUTH Authentication required." {
		t.Fatalf("unauthenticated PING: %v", err)
	}
	wrong := ts.client(t, func(o *redis.Options) { o.Password = "nope"; o.MaxRetries = -1 })
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v", err)
	}
	// go-redis authenticates with HELLO 3 AUTH, gets NOPROTO, then AUTH.
	good := ts.client(t, func(o *redis.Options) { o.Password = "pw" })
	if err := good.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	named := ts.client(t, resp2, func(o *redis.Options) { o.Username = "default"; o.Password = "pw"; o.ClientName = "n1" })
	if got := do(t, named, "CLIENT", "GETNAME"); got != "n1" {
		t.Fatalf("HELLO 2 AUTH ... SETNAME: %v", got)
	}
	if got := do(t, good, "QUIT"); got != "OK" {
		t.Fatal(got)
	}
}

func TestClientKill(t *testing.T) {
	ts := start(t)
	a := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1; o.MaxRetries = -1 })
	b := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1 })
	idA := do(t, a, "CLIENT", "ID").(int64)
	if got := do(t, b, "CLIENT", "KILL", "ID", idA); got != int64(1) {
		t.Fatalf("CLIENT KILL ID = %v", got)
	}
	// go-redis notices the dead connection and dials a new one.
	if v, err := a.Do(ctx, "CLIENT", "ID").Int64(); err == nil && v == idA {
		t.Fatal("killed connection still served")
	}
	if got := do(t, b, "CLIENT", "KILL", "ID", do(t, b, "CLIENT", "ID")); got != int64(0) {
		t.Fatalf("SKIPME yes by default: %v", got)
	}
	_ = protocol.OK
}

// Every subcommand's arity is checked from its Subs entry, with Redis 7's
// text, before its handler runs: too few and too many arguments where the
// arity allows either, while the arity itself is never refused.
func TestSubcommandArity(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1 })
	args := func(cmd, sub string, n int) []any {
		out := []any{strings.ToUpper(cmd), strings.ToUpper(sub)}
		for len(out) < n {
			out = append(out, "x")
		}
		return out
	}
	parents, subs := 0, 0
	for _, cmd := range ts.srv.Table().Commands() {
		if len(cmd.Subs) > 0 {
			parents++
		}
		for _, s := range cmd.Subs {
			subs++
			name, sub, _ := strings.Cut(s.Name, "|")
			if name != cmd.Name || sub == "" {
				t.Errorf("%s: subcommand named %q", cmd.Name, s.Name)
				continue
			}
			wrong := "ERR wrong number of arguments for '" + s.Name + "' command"
			n := s.Arity
			if n < 0 {
				n = -n
			}
			var bad []int
			if n > 2 {
				bad = append(bad, n-1)
			}
			if s.Arity > 0 {
				bad = append(bad, n+1, n+3)
			}
			for _, k := range bad {
				v, err := c.Do(ctx, args(cmd.Name, sub, k)...).Result()
				if err == nil || err.Error() != wrong {
					t.Errorf("%v: got %v, %v, want %q", args(cmd.Name, sub, k), v, err, wrong)
				}
			}
			if _, err := c.Do(ctx, args(cmd.Name, sub, n)...).Result(); err != nil && strings.Contains(err.Error(), "wrong number of arguments") {
				t.Errorf("%v: %v", args(cmd.Name, sub, n), err)
			}
		}
	}
	if parents < 4 || subs < 19 {
		t.Fatalf("only %d commands with %d subcommands", parents, subs)
	}
	// A subcommand of variable arity whose handler takes fewer arguments
	// answers as Redis does; an unknown one keeps its own error.
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SLOWLOG", "get", 1, 2}, "ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP."},
		{[]any{"COMMAND", "COUNT", "x"}, "ERR wrong number of arguments for 'command|count' command"},
		{[]any{"CONFIG", "NOPE", "x"}, "ERR unknown subcommand 'NOPE'. Try CONFIG HELP."},
	} {
		if v, err := c.Do(ctx, tc.args...).Result(); err == nil || err.Error() != tc.want {
			t.Errorf("%v: got %v, %v, want %q", tc.args, v, err, tc.want)
		}
	}
}

// BGREWRITEAOF says whether a rewrite started: with the log off, while one
// is running (the error of the log's StartRewrite), and when it did.
func TestBgRewriteAOFReply(t *testing.T) {
	off := start(t).client(t)
	if got := doErr(t, off, "BGREWRITEAOF"); got != "ERR the append-only log is off (--appendonly no)" {
		t.Fatalf("log off: %q", got)
	}
	var busy atomic.Bool
	var calls atomic.Int32
	busy.Store(true)
	c := start(t, func(s *setup) {
		s.rewrite = func() error {
			calls.Add(1)
			if busy.Load() {
				return errors.New("Background append only file rewriting already in progress")
			}
			return nil
		}
	}).client(t)
	if got := doErr(t, c, "BGREWRITEAOF"); got != "ERR Background append only file rewriting already in progress" {
		t.Fatalf("while one runs: %q", got)
	}
	busy.Store(false)
	if got := do(t, c, "BGREWRITEAOF"); got != "Background append only file rewriting started" {
		t.Fatalf("started: %v", got)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d rewrites asked for, want 2", n)
	}
}

// Without a way to stop the server (an embedded one), SHUTDOWN says so and
// the connection stays up.
func TestShutdownWithoutAHook(t *testing.T) {
	c := start(t).client(t)
	if got := doErr(t, c, "SHUTDOWN"); got != "ERR SHUTDOWN is not available on this server" {
		t.Fatalf("SHUTDOWN: %q", got)
	}
	if got := do(t, c, "PING"); got != "PONG" {
		t.Fatalf("PING after SHUTDOWN: %v", got)
	}
}
