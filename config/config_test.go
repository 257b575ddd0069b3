package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.conf")
	os.WriteFile(path, []byte("# comment\n\nport 7000\nmaxclients 5\nrequirepass \"a b\"\nbind 127.0.0.1 ::1\n"), 0o644)
	c, warn, err := Load([]string{path, "--maxclients=9", "--timeout", "3"},
		[]string{"SLUICE_PORT=7001", "SLUICE_MAX_PAYLOAD=2kb", "SLUICE_MAXCLIENTS=8", "SLUICE_TYPO=1", "HOME=/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7001 || c.MaxClients != 9 || c.Timeout != 3 || c.MaxPayload != 2048 || c.RequirePass != "a b" || len(c.Bind) != 2 || c.File != path {
		t.Fatalf("%+v", c)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "SLUICE_TYPO") {
		t.Fatalf("warnings %v", warn)
	}
	if got := c.Addrs(); got[0] != "127.0.0.1:7001" || got[1] != "[::1]:7001" {
		t.Fatalf("Addrs %v", got)
	}
	ch := c.Changed()
	if ch["requirepass"] != "(set)" || ch["port"] != "7001" || ch["dir"] != "" {
		t.Fatalf("Changed %v", ch)
	}
}

func TestDefaults(t *testing.T) {
	c, _, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addrs()[0] != "127.0.0.1:6390" || c.Dir != "./data" || !c.AppendOnly || c.AppendFsync != "everysec" ||
		c.MaxClients != 10000 || c.MaxPayload != 1<<20 || c.LogLevel != "info" ||
		c.MetricsMaxLabels != 100 || c.SlowlogSlowerThan != 10000 || c.SlowlogMaxLen != 128 || c.ShutdownTimeout != 10 {
		t.Fatalf("%+v", c)
	}
	if len(c.Changed()) != 0 {
		t.Fatalf("defaults differ from themselves: %v", c.Changed())
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--port", "x"}, nil, `--port: "x" is not an integer`},
		{[]string{"--appendonly", "maybe"}, nil, `"maybe" is not yes or no`},
		{nil, []string{"SLUICE_LOGLEVEL=loud"}, `loglevel: "loud" is not debug, info, warn or error`},
		{[]string{"--bind", "not-an-ip"}, nil, `bind: "not-an-ip" is not an IP address`},
		{[]string{"--max-payload", "1gb"}, nil, "max-payload: 1073741824 must be between 1 byte and 512mb"},
		{[]string{"missing.conf"}, nil, "config file: open missing.conf"},
		{[]string{"--timeout", "-1"}, nil, "timeout: -1 must not be negative"},
		{[]string{"--metrics-max-labels", "0"}, nil, "metrics-max-labels: 0 must be at least 1"},
		{[]string{"--slowlog-max-len", "-1"}, nil, "slowlog-max-len: -1 must not be negative"},
		{[]string{"--shutdown-timeout", "-5"}, nil, "shutdown-timeout: -5 must not be negative"},
	} {
		_, _, err := Load(tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(path, []byte("port 1\ncolour blue\n"), 0o644)
	if _, _, err := Load([]string{path}, nil); err == nil || !strings.Contains(err.Error(), ":2: unknown option \"colour\"") {
		t.Fatalf("bad file: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "1k": 1000, "1kb": 1024, "2MB": 2 << 20, "1g": 1e9, "1gb": 1 << 30, "0": 0} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1tb", "99999999999gb"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
