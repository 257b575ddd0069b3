package commands_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

func named(user, pass string) func(*redis.Options) {
	return func(o *redis.Options) { o.Username, o.Password = user, pass }
}

// The bar: a producer limited to team-a's queues pushes there and
// is refused everything else, each refusal logged, nothing changed.
func TestACLProducerLimitedToQueues(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "alice", "on", ">secret", "~team-a:*", "+@producer")
	other := do(t, admin, "JOBPUSH", "team-b:mail", "send", "x")
	alice := ts.client(t, named("alice", "secret"))

	do(t, alice, "JOBPUSH", "team-a:mail", "send", "y")
	refusals := []struct {
		args []any
		want string
	}{
		{[]any{"JOBPUSH", "team-b:mail", "send", "z"}, "NOPERM No permissions to access a key"},
		{[]any{"JOBCANCEL", other}, "NOPERM User alice has no permissions to run the 'jobcancel' command"},
		{[]any{"FLUSHALL"}, "NOPERM User alice has no permissions to run the 'flushall' command"},
		{[]any{"POLICYSET", "CONCURRENCY", "team-a:mail", 1}, "NOPERM User alice has no permissions to run the 'policyset' command"},
	}
	for _, r := range refusals {
		if got := doErr(t, alice, r.args...); got != r.want {
			t.Errorf("%v: got %q, want %q", r.args, got, r.want)
		}
	}
	// Nothing changed.
	if n := do(t, admin, "QUEUELEN", "team-b:mail"); n != int64(1) {
		t.Errorf("team-b:mail holds %v jobs, want 1 (cancelled or flushed?)", n)
	}
	if n := do(t, admin, "QUEUELEN", "team-a:mail"); n != int64(1) {
		t.Errorf("team-a:mail holds %v jobs, want 1", n)
	}
	isNil(t, admin, "POLICYGET", "CONCURRENCY", "team-a:mail")
	// Every refusal is in the log, newest first.
	log := do(t, admin, "ACL", "LOG").([]any)
	var objects []string
	for _, e := range log {
		if check.MapField(e, "username") != "alice" {
			t.Errorf("log entry of %v", check.MapField(e, "username"))
		}
		if o := check.MapField(e, "object").(string); !strings.HasPrefix(o, "client") {
			// (go-redis's own CLIENT MAINT_NOTIFICATIONS is refused too)
			objects = append(objects, check.MapField(e, "reason").(string)+":"+o)
		}
	}
	want := "command:policyset command:flushall command:jobcancel key:team-b:mail"
	if got := strings.Join(objects, " "); got != want {
		t.Errorf("ACL LOG objects: got %q, want %q", got, want)
	}
	do(t, admin, "ACL", "LOG", "RESET")
	if n := len(do(t, admin, "ACL", "LOG").([]any)); n != 0 {
		t.Errorf("after RESET the log holds %d entries", n)
	}
}

// Inside MULTI a refused command is refused when queued and the
// transaction aborts, as in Redis.
func TestACLRefusedInMulti(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "alice", "on", ">secret", "~team-a:*", "+@producer")
	alice := ts.client(t, named("alice", "secret"))
	_, err := alice.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "JOBPUSH", "team-a:mail", "send", "1")
		p.Do(ctx, "JOBPUSH", "team-b:mail", "send", "2")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "EXECABORT") {
		t.Fatalf("EXEC: got %v, want EXECABORT", err)
	}
	if n := do(t, admin, "QUEUELEN", "team-a:mail"); n != int64(0) {
		t.Errorf("team-a:mail holds %v jobs after an aborted transaction", n)
	}
	e := do(t, admin, "ACL", "LOG").([]any)
	if len(e) == 0 {
		t.Fatal("ACL LOG is empty")
	}
	check.Field(t, "ACL LOG's newest context", check.MapField(e[0], "context"), any("multi"))
	check.Field(t, "ACL LOG's newest object", check.MapField(e[0], "object"), any("team-b:mail"))
}

// go-redis with a named user runs the job lifecycle; a wrong password is
// refused and logged.
func TestACLNamedUserLifecycle(t *testing.T) {
	protocols(t, func(t *testing.T, proto func(*redis.Options)) {
		ts := start(t)
		admin := ts.client(t)
		do(t, admin, "ACL", "SETUSER", "worker", "on", ">pw", "~jobs:*", "+@producer", "+@worker")
		w := ts.client(t, proto, named("worker", "pw"))
		do(t, w, "JOBPUSH", "jobs:mail", "send", "hello")
		rs := reserve(t, w, "w1", 30000, "QUEUES", "jobs:mail")
		check.Len(t, "reserved", rs, 1)
		check.Fields(t, "reserved", rs[0], map[string]any{"payload": "hello"})
		if got := do(t, w, "JOBACK", rs[0]["token"]); got != int64(1) && got != "OK" {
			t.Errorf("JOBACK: %v", got)
		}
		if got := doErr(t, w, "JOBRESERVE", "w1", 30000, "QUEUES", "jobs:mail", "other"); !strings.HasPrefix(got, "NOPERM") {
			t.Errorf("reserve from another queue: %q", got)
		}
		bad := ts.client(t, proto, named("worker", "nope"))
		if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("wrong password: %v", err)
		}
		found := false
		for _, e := range do(t, admin, "ACL", "LOG").([]any) {
			found = found || check.MapField(e, "reason") == "auth"
		}
		if !found {
			t.Error("the failed login is not in ACL LOG")
		}
	})
}

// Bad rules are refused with the rule named, and change nothing.
func TestACLBadRulesChangeNothing(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "bob", "on", "nopass", "~q:*", "+jobpush")
	before := do(t, admin, "ACL", "LIST")
	for _, rules := range [][]any{
		{"+nosuchcommand"}, {"+@nosuchcategory"}, {"off", "bogus"}, {"#abc"}, {"<notapassword"},
		{"%R~x"}, {"~"}, {""}, {"+client|nosuch"},
	} {
		got := doErr(t, admin, append([]any{"ACL", "SETUSER", "bob"}, rules...)...)
		if !strings.HasPrefix(got, "ERR Error in ACL SETUSER modifier '") {
			t.Errorf("%v: %q", rules, got)
		}
	}
	if got := doErr(t, admin, "ACL", "SETUSER", "b ob", "on"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("a name with a space: %q", got)
	}
	if got := do(t, admin, "ACL", "LIST"); len(got.([]any)) != len(before.([]any)) || got.([]any)[0] != before.([]any)[0] || got.([]any)[1] != before.([]any)[1] {
		t.Errorf("ACL LIST changed: %v, was %v", got, before)
	}
	if got := doErr(t, admin, "ACL", "DELUSER", "default"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("DELUSER default: %q", got)
	}
	if got := doErr(t, admin, "ACL", "CAT", "nosuch"); !strings.HasPrefix(got, "ERR Unknown category") {
		t.Errorf("ACL CAT nosuch: %q", got)
	}
}

// ACL LIST, GETUSER, CAT and DELUSER as Redis answers them.
func TestACLIntrospection(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	list := do(t, admin, "ACL", "LIST").([]any)
	if len(list) != 1 || list[0] != "user default on nopass ~* +@all" {
		t.Errorf("ACL LIST: %q", list)
	}
	if got := do(t, admin, "ACL", "WHOAMI"); got != "default" {
		t.Errorf("WHOAMI: %v", got)
	}
	do(t, admin, "ACL", "SETUSER", "bob", "on", ">pw", "~q:*", "+jobpush", "+acl")
	want := "user bob on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~q:* -@all +acl +jobpush"
	if got := do(t, admin, "ACL", "LIST").([]any); len(got) != 2 || got[0] != want {
		t.Errorf("ACL LIST: %q", got)
	}
	u := do(t, admin, "ACL", "GETUSER", "bob")
	check.Field(t, "GETUSER keys", check.MapField(u, "keys"), any("~q:*"))
	check.Field(t, "GETUSER commands", check.MapField(u, "commands"), any("-@all +acl +jobpush"))
	isNil(t, admin, "ACL", "GETUSER", "nobody")
	cats := do(t, admin, "ACL", "CAT").([]any)
	for _, c := range []string{"producer", "worker", "admin", "read", "write", "fast", "connection"} {
		found := false
		for _, x := range cats {
			found = found || x == c
		}
		if !found {
			t.Errorf("ACL CAT lacks %s: %v", c, cats)
		}
	}
	if got := do(t, admin, "ACL", "CAT", "producer").([]any); !contains(got, "jobpush") || contains(got, "jobreserve") {
		t.Errorf("ACL CAT producer: %v", got)
	}
	bob := ts.client(t, named("bob", "pw"))
	if got := do(t, bob, "ACL", "WHOAMI"); got != "bob" {
		t.Errorf("WHOAMI: %v", got)
	}
	if n := do(t, admin, "ACL", "DELUSER", "bob", "nobody"); n != int64(1) {
		t.Errorf("DELUSER: %v", n)
	}
	if err := bob.Do(ctx, "ACL", "WHOAMI").Err(); err == nil {
		// go-redis reconnects after the disconnect: as the deleted user
		// it must be refused.
		t.Error("a deleted user still runs commands")
	}
}

func contains(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --aclfile: users loaded at start; ACL SAVE writes them as ACL LIST
// prints them; ACL LOAD replaces them, and a bad file changes nothing.
func TestACLFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.acl")
	if err := os.WriteFile(path, []byte("# team A\nuser mailer on >pw ~team-a:* +@producer\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(s *setup) { s.pcfg.ACLFile = path })
	admin := ts.client(t)
	mailer := ts.client(t, named("mailer", "pw"))
	do(t, mailer, "JOBPUSH", "team-a:mail", "send", "x")
	if got := doErr(t, mailer, "FLUSHALL"); !strings.HasPrefix(got, "NOPERM") {
		t.Errorf("FLUSHALL: %q", got)
	}

	do(t, admin, "ACL", "SETUSER", "worker", "on", ">w", "~team-a:*", "+@worker")
	do(t, admin, "ACL", "SAVE")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	list := do(t, admin, "ACL", "LIST").([]any)
	var want strings.Builder
	for _, l := range list {
		want.WriteString(l.(string) + "\n")
	}
	if string(data) != want.String() {
		t.Errorf("saved %q, want ACL LIST %q", data, want.String())
	}

	// A bad line: refused with its place, nothing changed.
	if err := os.WriteFile(path, []byte("user mailer on +nosuch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := doErr(t, admin, "ACL", "LOAD"); !strings.Contains(got, "users.acl:1: Error in ACL SETUSER modifier '+nosuch'") {
		t.Errorf("ACL LOAD of a bad file: %q", got)
	}
	if got := do(t, admin, "ACL", "LIST").([]any); len(got) != 3 {
		t.Errorf("a bad file changed the users: %q", got)
	}
	// A good one replaces the users: worker goes, mailer changes.
	if err := os.WriteFile(path, []byte("user mailer on >pw ~team-b:* +@producer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, admin, "ACL", "LOAD")
	check.Equal(t, "users after LOAD", do(t, admin, "ACL", "USERS"), any([]any{"default", "mailer"}))
	if got := doErr(t, mailer, "JOBPUSH", "team-a:mail", "send", "y"); !strings.HasPrefix(got, "NOPERM") {
		t.Errorf("after LOAD mailer still pushes to team-a: %q", got)
	}

	// Without --aclfile, LOAD and SAVE say so.
	plain := start(t).client(t)
	for _, sub := range []string{"LOAD", "SAVE"} {
		if got := doErr(t, plain, "ACL", sub); !strings.Contains(got, "--aclfile") {
			t.Errorf("ACL %s without a file: %q", sub, got)
		}
	}
}

// Rights taken away between MULTI's queueing and EXEC refuse the command
// at EXEC, as in Redis; the rest of the transaction runs.
func TestACLChangedBeforeExec(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "alice", "on", ">pw", "~team-a:*", "+@producer")
	w := dialWire(t, ts.addr)
	for _, args := range [][]string{{"AUTH", "alice", "pw"}, {"MULTI"}, {"JOBPUSH", "team-a:mail", "send", "1"}, {"QUEUELEN", "team-a:mail"}} {
		if got := w.do(args...); strings.HasPrefix(got, "-") {
			t.Fatalf("%v: %q", args, got)
		}
	}
	do(t, admin, "ACL", "SETUSER", "alice", "-jobpush")
	want := "*2\r\n-NOPERM User alice has no permissions to run the 'jobpush' command\r\n:0\r\n"
	if got := w.do("EXEC"); got != want {
		t.Errorf("EXEC: %q, want %q", got, want)
	}
}

// CLIENT INFO and CLIENT LIST name the connection's user.
func TestACLClientListNamesUser(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "alice", "on", ">pw", "~team-a:*", "+@producer")
	alice := ts.client(t, named("alice", "pw"))
	if got := do(t, alice, "CLIENT", "INFO").(string); !strings.Contains(got, " user=alice ") {
		t.Errorf("CLIENT INFO: %q", got)
	}
	if got := do(t, admin, "CLIENT", "LIST").(string); !strings.Contains(got, " user=alice ") || !strings.Contains(got, " user=default ") {
		t.Errorf("CLIENT LIST: %q", got)
	}
}

// maxclients=N bounds the connections authenticated as a user: AUTH past
// it is refused and leaves the connection as it was; a connection counts
// until it closes or authenticates as someone else.
func TestACLUserMaxClients(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "carol", "on", ">pw", "~*", "+@all", "maxclients=2")
	for _, bad := range []string{"maxclients=x", "maxclients=-1", "maxclients=2147483648", "maxclients=", "maxclients=01"} {
		if got := doErr(t, admin, "ACL", "SETUSER", "carol", bad); !strings.HasPrefix(got, "ERR Error in ACL SETUSER modifier '"+bad+"'") {
			t.Errorf("SETUSER %s: %q", bad, got)
		}
	}
	want := "user carol on #" + sha256hex("pw") + " maxclients=2 ~* +@all"
	if got := do(t, admin, "ACL", "LIST").([]any); got[0] != want {
		t.Errorf("ACL LIST: %q, want %q", got[0], want)
	}
	if got := check.MapField(do(t, admin, "ACL", "GETUSER", "carol"), "maxclients"); got != int64(2) {
		t.Errorf("GETUSER maxclients: %v", got)
	}
	var pools []*redis.Client
	conn := func() *redis.Conn {
		p := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
		pools = append(pools, p)
		c := p.Conn()
		t.Cleanup(func() { c.Close() })
		return c
	}
	c1, c2, c3 := conn(), conn(), conn()
	for _, c := range []*redis.Conn{c1, c2} {
		if err := c.Do(ctx, "AUTH", "carol", "pw").Err(); err != nil {
			t.Fatal(err)
		}
	}
	full := "ERR max number of clients reached for user 'carol'"
	if err := c3.Do(ctx, "AUTH", "carol", "pw").Err(); err == nil || err.Error() != full {
		t.Fatalf("third AUTH: %v, want %q", err, full)
	}
	if got, _ := c3.Do(ctx, "ACL", "WHOAMI").Result(); got != "default" {
		t.Errorf("a refused AUTH changed the connection's user to %v", got)
	}
	if err := c3.Do(ctx, "HELLO", "3", "AUTH", "carol", "pw").Err(); err == nil || err.Error() != full {
		t.Errorf("HELLO AUTH past the limit: %v", err)
	}
	// Re-AUTH as the same user is not a second login.
	if err := c1.Do(ctx, "AUTH", "carol", "pw").Err(); err != nil {
		t.Errorf("re-AUTH as carol: %v", err)
	}
	// Re-AUTH as someone else frees a place.
	if err := c1.Do(ctx, "AUTH", "default", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c3.Do(ctx, "AUTH", "carol", "pw").Err(); err != nil {
		t.Fatalf("AUTH after another's re-AUTH: %v", err)
	}
	// So does a close.
	c2.Close()
	pools[1].Close() // closes the connection itself
	c4 := conn()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c4.Do(ctx, "AUTH", "carol", "pw").Err()
		if err == nil {
			break
		}
		if err.Error() != full || time.Now().After(deadline) {
			t.Fatalf("AUTH after a close: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Raising the limit takes effect at once; 0 lifts it.
	do(t, admin, "ACL", "SETUSER", "carol", "maxclients=0")
	if err := c1.Do(ctx, "AUTH", "carol", "pw").Err(); err != nil {
		t.Errorf("AUTH with no limit: %v", err)
	}
	if got := do(t, admin, "ACL", "LIST").([]any); got[0] != "user carol on #"+sha256hex("pw")+" ~* +@all" {
		t.Errorf("ACL LIST without a limit: %q", got[0])
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// A worker limited to its queues cannot throttle another team's key, by
// POLICYTHROTTLE or by JOBRELEASE ... THROTTLE, and may reserve its own
// queues round-robin.
func TestACLThrottleAndRoundRobinKeys(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "wa", "on", ">pw", "~jobs:*", "+@producer", "+@worker")
	w := ts.client(t, named("wa", "pw"))
	do(t, w, "JOBPUSH", "jobs:mail", "send", "hello")
	do(t, w, "JOBPUSH", "jobs:mail", "send", "again")
	if got := doErr(t, w, "POLICYTHROTTLE", "other:api", 60000); got != "NOPERM No permissions to access a key" {
		t.Errorf("POLICYTHROTTLE outside the patterns: %q", got)
	}
	isNil(t, admin, "POLICYGET", "THROTTLE", "other:api")
	res := do(t, w, "JOBRESERVE", "w1", 30000, "ROUNDROBIN", "QUEUES", "jobs:mail").([]any)
	tok := check.MapField(res[0], "token")
	if got := doErr(t, w, "JOBRELEASE", tok, "THROTTLE", "other:api", 60000); got != "NOPERM No permissions to access a key" {
		t.Errorf("JOBRELEASE ... THROTTLE outside the patterns: %q", got)
	}
	isNil(t, admin, "POLICYGET", "THROTTLE", "other:api")
	do(t, w, "JOBRELEASE", tok, "THROTTLE", "jobs:api", 60000)
	do(t, w, "POLICYTHROTTLE", "jobs:api", 0)
}

// A user limited to its queues may set, see and delete periodic entries
// only under its patterns (the entry's name and its queue), and breakers
// only on its own queues and keys.
func TestACLCronAndBreakerKeys(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "ops", "on", ">pw", "~team-a:*", "+@admin", "+@producer")
	ops := ts.client(t, named("ops", "pw"))
	const noKey = "NOPERM No permissions to access a key"
	for _, args := range [][]any{
		{"CRONSET", "team-a:beat", "@every 1s", "team-b:mail", "send", "z"},
		{"CRONSET", "evil", "@every 1s", "team-a:mail", "send", "z"},
		{"POLICYSET", "BREAKER", "queue:team-b:mail", 3, 1000, 5000},
	} {
		if got := doErr(t, ops, args...); got != noKey {
			t.Errorf("%v: %q, want %q", args, got, noKey)
		}
	}
	do(t, admin, "CRONSET", "team-b:beat", "@every 1s", "team-b:mail", "send", "z")
	for _, args := range [][]any{{"CRONDEL", "team-b:beat"}, {"CRONGET", "team-b:beat"}} {
		if got := doErr(t, ops, args...); got != noKey {
			t.Errorf("%v: %q, want %q", args, got, noKey)
		}
	}
	do(t, ops, "CRONSET", "team-a:beat", "@every 1s", "team-a:mail", "send", "z")
	do(t, ops, "CRONDEL", "team-a:beat")
	do(t, ops, "POLICYSET", "BREAKER", "queue:team-a:mail", 3, 1000, 5000)
	do(t, ops, "POLICYDEL", "BREAKER", "queue:team-a:mail")
	if got := do(t, admin, "CRONGET", "team-b:beat"); got == nil {
		t.Error("the other team's entry is gone")
	}
}
