package commands_test

import (
	"strings"
	"testing"

	"sluice/internal/check"
)

// TestRESP3Replies checks each reply shape of RESP3 on the wire: maps for
// field/value replies (fields in the documented order), null for absent
// values and empty results, booleans, verbatim text, sets, and that
// HELLO 2 brings back RESP2.
func TestRESP3Replies(t *testing.T) {
	ts := start(t, func(s *setup) { s.now = func() int64 { return goldenNow } })
	w := dialWire(t, ts.addr)
	hello := w.do("HELLO", "3")
	if !strings.HasPrefix(hello, "%7\r\n$6\r\nserver\r\n$6\r\nsluice\r\n") || !strings.Contains(hello, "$5\r\nproto\r\n:3\r\n") {
		t.Fatalf("HELLO 3: %q", hello)
	}
	id := strings.TrimSuffix(strings.SplitN(w.do("JOBPUSH", "q", "h", "p"), "\r\n", 2)[1], "\r\n")
	for _, tc := range []struct {
		args   []string
		prefix string // the reply starts with it
		has    []string
	}{
		{[]string{"JOBGET", "nope"}, "_\r\n", nil},
		{[]string{"JOBGET", id}, "%22\r\n$2\r\nid\r\n", []string{"$15\r\nconcurrency_key\r\n_\r\n", "$10\r\nlast_error\r\n_\r\n$10\r\nblocked_by\r\n_\r\n"}},
		{[]string{"QUEUESTATS", "q"}, "%15\r\n$5\r\nqueue\r\n$1\r\nq\r\n", []string{"$6\r\npaused\r\n#f\r\n"}},
		{[]string{"QUEUEPEEK", "q"}, "*1\r\n%22\r\n", nil},
		{[]string{"POLICYSET", "CONCURRENCY", "k", "1"}, "+OK\r\n", nil},
		{[]string{"POLICYGET", "CONCURRENCY", "k"}, "%7\r\n$4\r\nkind\r\n$11\r\nconcurrency\r\n", []string{"$6\r\nperiod\r\n_\r\n"}},
		{[]string{"POLICYGET", "RATELIMIT", "k"}, "_\r\n", nil},
		{[]string{"POLICYLIST"}, "*1\r\n%7\r\n", nil},
		{[]string{"JOBRESERVE", "w", "1000", "QUEUES", "q"}, "*1\r\n%8\r\n$5\r\ntoken\r\n", []string{"$7\r\npayload\r\n$1\r\np\r\n$8\r\npriority\r\n:0\r\n"}},
		{[]string{"JOBRESERVE", "w", "1000", "QUEUES", "q"}, "_\r\n", nil},
		{[]string{"QUEUEPAUSE", "q"}, "+OK\r\n", nil},
		{[]string{"QUEUESTATS", "q"}, "%15\r\n", []string{"$6\r\npaused\r\n#t\r\n"}},
		{[]string{"CONFIG", "GET", "port"}, "%1\r\n$4\r\nport\r\n$1\r\n0\r\n", nil},
		{[]string{"CONFIG", "GET", "nothing"}, "%0\r\n", nil},
		{[]string{"INFO", "keyspace"}, "=48\r\ntxt:# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n\r\n", nil},
		{[]string{"INFO"}, "=", []string{"txt:# Server\r\n"}},
		{[]string{"CLIENT", "INFO"}, "=", []string{"txt:id="}},
		{[]string{"CLIENT", "LIST"}, "=", []string{"txt:id="}},
		{[]string{"COMMAND", "INFO", "jobget", "nope"}, "*2\r\n*10\r\n$6\r\njobget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n", []string{"~1\r\n+@jobs\r\n", "\r\n_\r\n"}},
		{[]string{"COMMAND", "DOCS", "queuelen"}, "%1\r\n$8\r\nqueuelen\r\n%4\r\n$7\r\nsummary\r\n", []string{"$9\r\narguments\r\n*1\r\n%3\r\n$4\r\nname\r\n"}},
		{[]string{"COMMAND", "DOCS", "jobrelease"}, "%1\r\n", []string{"$5\r\nflags\r\n~1\r\n+optional\r\n"}},
		{[]string{"COMMAND", "DOCS", "jobpush"}, "%1\r\n", []string{"$5\r\ntoken\r\n$11\r\nCONCURRENCY\r\n$5\r\nflags\r\n~3\r\n+optional\r\n+multiple\r\n+multiple_token\r\n", "$5\r\ntoken\r\n$7\r\nEXPIRES\r\n", "$5\r\ntoken\r\n$7\r\nTIMEOUT\r\n"}},
		{[]string{"HELLO", "2"}, "*14\r\n", []string{"$5\r\nproto\r\n:2\r\n"}},
		{[]string{"JOBGET", "nope"}, "$-1\r\n", nil},
		{[]string{"QUEUESTATS", "q"}, "*30\r\n", []string{"$6\r\npaused\r\n:1\r\n"}},
		{[]string{"INFO", "keyspace"}, "$44\r\n# Keyspace\r\n", nil},
	} {
		got := w.do(tc.args...)
		if !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("%v: %q, want it to start with %q", tc.args, got, tc.prefix)
		}
		for _, h := range tc.has {
			if !strings.Contains(got, h) {
				t.Errorf("%v: %q, want it to contain %q", tc.args, got, h)
			}
		}
	}
}

// HELLO before AUTH answers as Redis 7 does, and a HELLO that fails
// changes nothing: the connection stays RESP2.
func TestHello3BeforeAuth(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.RequirePass = "secret" })
	w := dialWire(t, ts.addr)
	noauth := "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"HELLO", "3"}, noauth},
		{[]string{"HELLO", "3", "SETNAME", "x"}, noauth},
		{[]string{"HELLO", "4", "AUTH", "default", "secret"}, "-NOPROTO unsupported protocol version\r\n"},
		{[]string{"HELLO", "3", "AUTH", "default", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{[]string{"AUTH", "secret"}, "+OK\r\n"},
		{[]string{"JOBGET", "nope"}, "$-1\r\n"}, // still RESP2
		{[]string{"HELLO", "4"}, "-NOPROTO unsupported protocol version\r\n"},
		{[]string{"JOBGET", "nope"}, "$-1\r\n"},
	} {
		if got := w.do(tc.args...); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
	w2 := dialWire(t, ts.addr)
	if got := w2.do("HELLO", "3", "AUTH", "default", "secret", "SETNAME", "n"); !strings.HasPrefix(got, "%7\r\n") {
		t.Fatalf("HELLO 3 AUTH: %q", got)
	}
	if got := w2.do("JOBGET", "nope"); got != "_\r\n" {
		t.Fatalf("after HELLO 3 AUTH: %q", got)
	}
	if got := w2.do("CLIENT", "GETNAME"); got != "$1\r\nn\r\n" {
		t.Fatalf("name %q", got)
	}
}

// go-redis with its default, Protocol 3, sees maps as maps, booleans as
// booleans, null as redis.Nil and INFO as text.
func TestGoRedisRESP3Shapes(t *testing.T) {
	ts := start(t)
	c := ts.client(t)
	id := do(t, c, "JOBPUSH", "q", "h", "p").(string)
	job, ok := do(t, c, "JOBGET", id).(map[any]any)
	if !ok {
		t.Fatalf("JOBGET: a %T, want a map", job)
	}
	check.Equal(t, "JOBGET", map[any]any{"id": job["id"], "state": job["state"], "worker": job["worker"]},
		map[any]any{"id": id, "state": "queued", "worker": nil})
	st := do(t, c, "QUEUESTATS", "q").(map[any]any)
	check.Equal(t, "QUEUESTATS", map[any]any{"paused": st["paused"], "queued": st["queued"]},
		map[any]any{"paused": false, "queued": int64(1)})
	isNil(t, c, "JOBGET", "nope")
	isNil(t, c, "JOBRESERVE", "w", 1000, "QUEUES", "empty")
	if info := c.Info(ctx, "keyspace").Val(); !strings.HasPrefix(info, "# Keyspace\r\ndb0:keys=1") {
		t.Fatalf("INFO %q", info)
	}
	cfg, err := c.ConfigGet(ctx, "port").Result()
	if err != nil || cfg["port"] != "0" {
		t.Fatalf("CONFIG GET %v %v", cfg, err)
	}
	if _, err := c.ClientList(ctx).Result(); err != nil {
		t.Fatal(err)
	}
	if cmds, err := c.Command(ctx).Result(); err != nil || cmds["jobget"] == nil || !cmds["jobget"].ReadOnly {
		t.Fatalf("COMMAND: %v %v", err, cmds["jobget"])
	}
	proto := do(t, c, "HELLO").(map[any]any)["proto"]
	if proto != int64(3) {
		t.Fatalf("proto %v", proto)
	}
	c2 := ts.client(t, resp2)
	if proto := asMap(t, do(t, c2, "HELLO"), "server", "version", "proto", "id", "mode", "role", "modules")["proto"]; proto != int64(2) {
		t.Fatalf("resp2 proto %v", proto)
	}
}
