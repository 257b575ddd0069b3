package protocol

import (
	"os"
	"strings"
	"testing"
	"unicode"

	"github.com/rs/zerolog"
)

func aclTestTable(t testing.TB) *Table {
	h := func(*Client, [][]byte) (any, error) { return OK, nil }
	tb, err := NewTable([]Command{
		{Name: "jobpush", Arity: -4, Flags: Write | Fast, Handler: h, Categories: []string{"producer"}},
		{Name: "jobreserve", Arity: -5, Flags: Write | Blocking, Handler: h, Categories: []string{"worker"}},
		{Name: "flushall", Arity: -1, Flags: Write, Handler: h, Categories: []string{"admin"}},
		{Name: "ping", Arity: -1, Flags: Fast, Handler: h, Group: "connection"},
		{Name: "client", Arity: -2, Handler: h, Categories: []string{"admin"}, Subs: []Command{
			{Name: "client|setname", Arity: 3, Categories: []string{"connection"}},
			{Name: "client|kill", Arity: -3}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// FuzzACLRules: whatever the rules (one a line), ACL SETUSER never panics;
// rules it refuses answer an error naming the rule and change nothing;
// rules it takes give a user whose ACL LIST line, applied to a new user,
// rebuilds the same user.
func FuzzACLRules(f *testing.F) {
	for _, s := range []string{
		"on\n>secret\n~team-a:*\n+@producer", "off\nnopass\nallkeys\nallcommands", "reset",
		"+client|setname\n-client", "+client\n-client|kill", "<secret", "#" + strings.Repeat("a", 64),
		"!" + strings.Repeat("b", 64), "~", "%R~x", "+@nosuch", "+nosuch", "&chan\nallchannels\nresetchannels",
		"-@all\n+jobpush\n~q*\nresetkeys\nresetpass", ">a b\n<a b", "", "\n", "+CLIENT|SETNAME\nON",
		"maxclients=3\nMAXCLIENTS=0", "maxclients=-1", "maxclients=99999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		a := newACL(aclTestTable(t), "")
		if err := a.SetUser("u", []string{"on", ">pw", "~q:*", "+@worker"}); err != nil {
			t.Fatal(err)
		}
		u := a.User("u")
		before := u.Describe()
		rules := strings.Split(in, "\n")
		err := a.SetUser("u", rules)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ERR Error in ACL SETUSER modifier '") || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error %q", err)
			}
			if got := u.Describe(); got != before {
				t.Fatalf("a refused rule changed the user: %q, was %q", got, before)
			}
			return
		}
		after := u.Describe()
		if strings.ContainsFunc(strings.ReplaceAll(in, "\n", ""), unicode.IsSpace) {
			return // a pattern with a space does not survive the one-line form
		}
		if err := a.SetUser("v", strings.Fields(after)[2:]); err != nil {
			t.Fatalf("ACL LIST's line %q does not parse: %v", after, err)
		}
		if got := strings.Replace(a.User("v").Describe(), "user v ", "user u ", 1); got != after {
			t.Fatalf("rebuilt %q from %q", got, after)
		}
	})
}

// A server does not start on a missing or bad --aclfile.
func TestACLFileAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.acl"
	if err := os.WriteFile(bad, []byte("user a on\nuser a off\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir + "/missing.acl", bad} {
		cfg := DefaultConfig()
		cfg.ACLFile = path
		if _, err := NewServer(cfg, aclTestTable(t), zerolog.Nop()); err == nil {
			t.Errorf("%s: the server started", path)
		}
	}
}
