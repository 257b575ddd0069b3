package config

import (
	"errors"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	if got := addrs(c); got[0] != "127.0.0.1:7001" || got[1] != "[::1]:7001" {
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
	if addrs(c)[0] != "127.0.0.1:6390" || c.Dir != "./data" || !c.AppendOnly || c.AppendFsync != "everysec" ||
		c.MaxClients != 10000 || c.MaxPayload != 1<<20 || c.LogLevel != "info" ||
		c.MetricsMaxLabels != 100 || c.SlowlogSlowerThan != 10000 || c.SlowlogMaxLen != 128 || c.ShutdownTimeout != 10 || !c.HugePages ||
		c.ProtoMaxBulkLen != 512<<20 {
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
		{[]string{"--proto-max-bulk-len", "1000kb"}, nil, "proto-max-bulk-len: 1024000 is not between 1048576 (1mb) and 4611686018427387904 bytes"},
		{[]string{"--proto-max-bulk-len", "huge"}, nil, `--proto-max-bulk-len: "huge" is not a size`},
		{[]string{"missing.conf"}, nil, "config file: open missing.conf"},
		{[]string{"--timeout", "-1"}, nil, "--timeout: -1 is not between 0 and 2147483647 seconds"},
		{[]string{"--metrics-max-labels", "0"}, nil, "--metrics-max-labels: 0 is not between 1 and 1000000"},
		{[]string{"--slowlog-max-len", "-1"}, nil, "--slowlog-max-len: -1 is not between 0 and 2147483647"},
		{[]string{"--shutdown-timeout", "-5"}, nil, "--shutdown-timeout: -5 is not between 0 and 2147483647 seconds"},
		{[]string{"--hugepages", "some"}, nil, `hugepages: "some" is not yes or no`},
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
	// The largest size, and one byte past it in every unit: the error
	// gives the limit.
	if got, err := ParseSize("4294967296gb"); err != nil || got != 1<<62 {
		t.Errorf("4294967296gb: %d %v", got, err)
	}
	for _, in := range []string{"4611686018427387905", "4294967297gb", "4503599627370497kb", "9223372036854775808", "99999999999999999999mb"} {
		if _, err := ParseSize(in); err == nil || !strings.Contains(err.Error(), "is more than 4611686018427387904 bytes (4294967296gb)") {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// Every integer option takes a closed range, from every source alike, and
// a value outside it (one too many, or too large for int64) is refused
// with the range in the message. Among them the values of issue 19:
// --timeout 18446744074 (wrapped to 0.29 s as a time.Duration) and
// --shutdown-timeout 9223372036854775807 (wrapped to a negative deadline).
func TestIntegerOptionRanges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max string
		range_   string // as the error gives it
	}{
		{"port", "0", "65535", "between 0 and 65535"},
		{"maxclients", "1", "2147483647", "between 1 and 2147483647"},
		{"timeout", "0", "2147483647", "between 0 and 2147483647 seconds"},
		{"shutdown-timeout", "0", "2147483647", "between 0 and 2147483647 seconds"},
		{"slowlog-log-slower-than", "-1", "315360000000000", "between -1 and 315360000000000 microseconds"},
		{"slowlog-max-len", "0", "2147483647", "between 0 and 2147483647"},
		{"metrics-max-labels", "1", "1000000", "between 1 and 1000000"},
	} {
		env := "SLUICE_" + strings.ToUpper(strings.ReplaceAll(tc.name, "-", "_"))
		below, above := decimal(tc.min, -1), decimal(tc.max, +1)
		for _, value := range []string{tc.min, tc.max, " " + tc.max + " ", below, above,
			"18446744074", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "99999999999999999999999",
		} {
			v := struct {
				value string
				ok    bool
			}{value, inRange(strings.TrimSpace(value), tc.min, tc.max)}
			want := strings.TrimSpace(v.value) + " is not " + tc.range_
			sources := []struct {
				name string
				load func() (Config, []string, error)
				err  string // the source as the error names it
			}{
				{"flag", func() (Config, []string, error) { return Load([]string{"--" + tc.name, v.value}, nil) }, "--" + tc.name + ": "},
				{"flag=", func() (Config, []string, error) { return Load([]string{"--" + tc.name + "=" + v.value}, nil) }, "--" + tc.name + ": "},
				{"env", func() (Config, []string, error) { return Load(nil, []string{env + "=" + v.value}) }, env + ": "},
				{"file", func() (Config, []string, error) {
					path := filepath.Join(t.TempDir(), "s.conf")
					os.WriteFile(path, []byte("# x\n"+tc.name+" "+v.value+"\n"), 0o644)
					return Load([]string{path}, nil)
				}, "s.conf:2: " + tc.name + ": "},
			}
			for _, src := range sources {
				c, _, err := src.load()
				if v.ok {
					if err != nil {
						t.Errorf("%s %s %q: %v", src.name, tc.name, v.value, err)
					} else if got, _ := c.Get(tc.name); got != strings.TrimSpace(v.value) {
						t.Errorf("%s %s %q: CONFIG GET %q", src.name, tc.name, v.value, got)
					}
					continue
				}
				if err == nil || !strings.HasSuffix(err.Error(), src.err+want) {
					t.Errorf("%s %s %q: %v, want …%s%s", src.name, tc.name, v.value, err, src.err, want)
				}
			}
		}
	}
}

// inRange reports whether min <= s <= max, as integers however large.
func inRange(s, min, max string) bool {
	n, _ := new(big.Int).SetString(s, 10)
	lo, _ := new(big.Int).SetString(min, 10)
	hi, _ := new(big.Int).SetString(max, 10)
	return n.Cmp(lo) >= 0 && n.Cmp(hi) <= 0
}

// decimal adds d to the integer in s, however large.
func decimal(s string, d int64) string {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n.Add(n, big.NewInt(d)).String()
}

// A Config built in code is held to the same ranges by Validate, and the
// largest value of each duration option converts to a time.Duration
// without overflow.
func TestValidateRanges(t *testing.T) {
	for _, tc := range []struct {
		set  func(c *Config)
		want string
	}{
		{func(c *Config) { c.Timeout = 18446744074 }, "timeout: 18446744074 is not between 0 and 2147483647 seconds"},
		{func(c *Config) { c.ShutdownTimeout = math.MaxInt64 }, "shutdown-timeout: 9223372036854775807 is not between 0 and 2147483647 seconds"},
		{func(c *Config) { c.SlowlogSlowerThan = -2 }, "slowlog-log-slower-than: -2 is not between -1 and 315360000000000 microseconds"},
		{func(c *Config) { c.MaxClients = 0 }, "maxclients: 0 is not between 1 and 2147483647"},
		{func(c *Config) { c.MetricsMaxLabels = math.MaxInt64 }, "metrics-max-labels: 9223372036854775807 is not between 1 and 1000000"},
		{func(c *Config) { c.Port = -1 }, "port: -1 is not between 0 and 65535"},
		{func(c *Config) { c.MaxMemory = 1<<62 + 1 }, "maxmemory: 4611686018427387905 is not between 0 and 4611686018427387904 bytes"},
	} {
		c := DefaultConfig()
		tc.set(&c)
		if err := c.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}

	// The largest value each duration option takes, as main converts it.
	c, _, err := Load([]string{"--timeout", "2147483647", "--shutdown-timeout", "2147483647",
		"--slowlog-log-slower-than", "315360000000000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name string
		n    int64
		unit time.Duration
	}{
		{"timeout", int64(c.Timeout), time.Second}, {"shutdown-timeout", int64(c.ShutdownTimeout), time.Second},
		{"slowlog-log-slower-than", c.SlowlogSlowerThan, time.Microsecond},
	} {
		if got := time.Duration(d.n) * d.unit; got/d.unit != time.Duration(d.n) || !time.Now().Add(got).After(time.Now()) {
			t.Errorf("%s %d overflows as a duration: %v", d.name, d.n, got)
		}
	}
}

// bind takes redis.conf's '-' prefix: the address after it is validated,
// the listener is marked optional, and CONFIG GET shows what was given.
func TestBindOptional(t *testing.T) {
	for _, tc := range []struct {
		bind string
		want []Listener
		err  string
	}{
		{"127.0.0.1 -::1", []Listener{{"tcp4", "127.0.0.1:6390", false}, {"tcp6", "[::1]:6390", true}}, ""},
		{"-127.0.0.1", []Listener{{"tcp4", "127.0.0.1:6390", true}}, ""},
		{"-[::1] [::1]", []Listener{{"tcp6", "[::1]:6390", true}, {"tcp6", "[::1]:6390", false}}, ""},
		{"* -localhost", []Listener{{"tcp4", "0.0.0.0:6390", false}, {"tcp", "localhost:6390", true}}, ""},
		{"-*", []Listener{{"tcp4", "0.0.0.0:6390", true}}, ""},
		{"* -::*", []Listener{{"tcp4", "0.0.0.0:6390", false}, {"tcp6", "[::]:6390", true}}, ""},
		{"0.0.0.0 ::", []Listener{{"tcp4", "0.0.0.0:6390", false}, {"tcp6", "[::]:6390", false}}, ""},
		{"**", nil, `bind: "**" is not an IP address`},
		{"-", nil, `bind: "-" names no address after the '-'`},
		{"127.0.0.1 -", nil, `bind: "-" names no address after the '-'`},
		{"-notanip", nil, `bind: "-notanip" is not an IP address`},
		{"127.0.0.1 -notanip", nil, `bind: "-notanip" is not an IP address`},
		{"--::1", nil, `bind: "--::1" is not an IP address`},
		{"-[::1", nil, `bind: "-[::1" is not an IP address`},
		{"::1]", nil, `bind: "::1]" is not an IP address`},
	} {
		for _, args := range [][]string{{"--bind", tc.bind}, {"--bind=" + tc.bind}} {
			c, _, err := Load(args, nil)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("%q: %v, want %q", args, err, tc.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q: %v", args, err)
				continue
			}
			if got := c.Listeners(); !equalListeners(got, tc.want) {
				t.Errorf("%q: Listeners %v, want %v", args, got, tc.want)
			}
			if got, _ := c.Get("bind"); got != tc.bind {
				t.Errorf("%q: CONFIG GET bind %q", args, got)
			}
		}
	}

	// redis.conf's default line, from a file and from the environment.
	path := filepath.Join(t.TempDir(), "s.conf")
	os.WriteFile(path, []byte("bind 127.0.0.1 -::1\nport 7000\n"), 0o644)
	for _, load := range []func() (Config, []string, error){
		func() (Config, []string, error) { return Load([]string{path}, nil) },
		func() (Config, []string, error) {
			return Load([]string{"--port", "7000"}, []string{"SLUICE_BIND=127.0.0.1  -::1"})
		},
	} {
		c, _, err := load()
		if err != nil {
			t.Fatal(err)
		}
		want := []Listener{{"tcp4", "127.0.0.1:7000", false}, {"tcp6", "[::1]:7000", true}}
		if got := c.Listeners(); !equalListeners(got, want) {
			t.Errorf("Listeners %v, want %v", got, want)
		}
		if got, _ := c.Get("bind"); got != "127.0.0.1 -::1" {
			t.Errorf("CONFIG GET bind %q", got)
		}
		if got := c.Changed()["bind"]; got != "127.0.0.1 -::1" {
			t.Errorf("Changed bind %q", got)
		}
		if got := addrs(c); len(got) != 2 || got[0] != "127.0.0.1:7000" || got[1] != "[::1]:7000" {
			t.Errorf("Addrs %v", got)
		}
	}
}

func equalListeners(a, b []Listener) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Only an optional address that is not available here is skipped; an
// address in use, or any failure of a required address, stops the start.
func TestListenerSkip(t *testing.T) {
	wrap := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("socket", errno)}
	}
	opt, req := Listener{Network: "tcp6", Addr: "[::1]:6390", Optional: true}, Listener{Network: "tcp6", Addr: "[::1]:6390"}
	for _, tc := range []struct {
		err      error
		optional bool // Skip's answer for an optional address
	}{
		{nil, false},
		{wrap(syscall.EADDRNOTAVAIL), true},
		{wrap(syscall.EAFNOSUPPORT), true},
		{wrap(syscall.EPROTONOSUPPORT), true},
		{wrap(syscall.EADDRINUSE), false},
		{wrap(syscall.EACCES), false},
		{errors.New("cannot assign requested address"), false},
	} {
		if got := opt.Skip(tc.err); got != tc.optional {
			t.Errorf("optional, %v: Skip %v", tc.err, got)
		}
		if req.Skip(tc.err) {
			t.Errorf("required, %v: skipped", tc.err)
		}
	}

	// The errors net.Listen really returns: an address no interface has
	// (TEST-NET-1), and a port in use.
	if ln, err := net.Listen("tcp", "192.0.2.1:0"); err == nil {
		ln.Close()
		t.Log("this machine has 192.0.2.1; not checked")
	} else if !(Listener{Addr: "192.0.2.1:0", Optional: true}).Skip(err) {
		t.Errorf("optional unavailable address not skipped: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := net.Listen("tcp", ln.Addr().String()); err == nil || (Listener{Addr: ln.Addr().String(), Optional: true}).Skip(err) {
		t.Errorf("address in use: %v skipped or no error", err)
	}
}

// addrs are the host:port pairs c listens on, optional ones included.
func addrs(c Config) []string {
	var out []string
	for _, l := range c.Listeners() {
		out = append(out, l.Addr)
	}
	return out
}

// --maxmemory-clients: 1gb unless set, a size like --maxmemory, 0 for no
// limit.
func TestMaxMemoryClients(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int64
	}{
		{nil, 1 << 30},
		{[]string{"--maxmemory-clients", "256mb"}, 256 << 20},
		{[]string{"--maxmemory-clients", "0"}, 0},
	} {
		c, _, err := Load(tc.args, nil)
		if err != nil || c.MaxMemoryClients != tc.want {
			t.Errorf("%v: %d, %v; want %d", tc.args, c.MaxMemoryClients, err, tc.want)
		}
	}
	if _, _, err := Load([]string{"--maxmemory-clients", "-1"}, nil); err == nil || !strings.Contains(err.Error(), `"-1" is not a size`) {
		t.Errorf("--maxmemory-clients -1: %v", err)
	}
}

func TestTLSOptions(t *testing.T) {
	files := []string{"--tls-cert-file", "s.crt", "--tls-key-file", "s.key", "--tls-ca-cert-file", "ca.crt"}
	for _, tc := range []struct {
		args []string
		want string // "" : accepted
	}{
		{[]string{"--tls-port", "6391"}, "tls-port: needs tls-cert-file and tls-key-file"},
		{[]string{"--tls-port", "6391", "--tls-cert-file", "s.crt", "--tls-key-file", "s.key"}, "tls-auth-clients yes: needs tls-ca-cert-file"},
		{[]string{"--tls-port", "6391", "--tls-cert-file", "s.crt", "--tls-key-file", "s.key", "--tls-auth-clients", "no"}, ""},
		{append([]string{"--tls-port", "6390"}, files...), "tls-port: 6390 is also the plaintext port"},
		{append([]string{"--tls-port", "70000"}, files...), "--tls-port: 70000 is not between 0 and 65535"},
		{append([]string{"--tls-port", "6391", "--tls-auth-clients", "maybe"}, files...), `tls-auth-clients: "maybe" is not yes, no or optional`},
		{append([]string{"--tls-port", "6391", "--tls-protocols", "TLSv1.1"}, files...), `tls-protocols: "TLSv1.1" is not TLSv1.2 or TLSv1.3`},
		{append([]string{"--tls-port", "6391", "--tls-protocols", " "}, files...), "tls-protocols: names no protocol"},
		{append([]string{"--tls-port", "6391", "--tls-protocols", "tlsv1.3"}, files...), ""},
		{append([]string{"--tls-port", "6391", "--tls-auth-clients", "OPTIONAL"}, files...), ""},
		{[]string{"--metrics-tls", "yes"}, "metrics-tls: needs metrics-addr"},
		{[]string{"--metrics-tls", "yes", "--metrics-addr", ":0"}, "metrics-tls: needs tls-cert-file and tls-key-file"},
		{append([]string{"--metrics-tls", "yes", "--metrics-addr", ":0"}, files...), ""},
		{[]string{"--metrics-tls", "maybe"}, "--metrics-tls"},
	} {
		_, _, err := Load(tc.args, nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	c, _, err := Load(append([]string{"--port", "0", "--tls-port", "6391"}, files...), nil)
	if err != nil || !c.PlainOff() || len(c.TLSListeners()) != 1 || c.TLSListeners()[0].Addr != "127.0.0.1:6391" {
		t.Fatalf("TLS only: %v %v %v", err, c.PlainOff(), c.TLSListeners())
	}
	if c, _, _ := Load([]string{"--port", "0"}, nil); c.PlainOff() || c.TLSListeners() != nil {
		t.Fatal("port 0 without TLS must still pick a free port")
	}
	if min, max, _ := TLSVersions(DefaultConfig().TLSProtocols); min != 0x0303 || max != 0x0304 {
		t.Fatalf("default protocols %x..%x", min, max)
	}
}

// --maxmemory-share is repeatable; a pattern given again takes its new
// size; bad ones name themselves.
func TestMaxMemoryShare(t *testing.T) {
	c, _, err := Load([]string{"--maxmemory-share", "team-a:*=64mb", "--maxmemory-share", "team-b:*=1kb x=2", "--maxmemory-share", "x=3"},
		[]string{"SLUICE_MAXMEMORY_SHARE=env:*=1gb"})
	if err != nil {
		t.Fatal(err)
	}
	want := "env:*=1073741824 team-a:*=67108864 team-b:*=1024 x=3"
	if got, _ := c.Get("maxmemory-share"); got != want {
		t.Errorf("maxmemory-share %q, want %q", got, want)
	}
	def := DefaultConfig()
	if d, _ := def.Get("maxmemory-share"); d != "" {
		t.Errorf("default %q", d)
	}
	for _, bad := range []string{"team-a:*", "=1mb", "a=0", "a=lots", "a=-1"} {
		if _, err := ParseShares(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if s, err := ParseShares("a=b=1k"); err != nil || len(s) != 1 || s[0].Pattern != "a=b" || s[0].Bytes != 1000 {
		t.Errorf("a=b=1k: %v %v", s, err)
	}
}

func TestClusterName(t *testing.T) {
	c, _, err := Load(nil, nil)
	if err != nil || c.ClusterName != "sluice" {
		t.Fatalf("default %q %v", c.ClusterName, err)
	}
	c, _, err = Load([]string{"--cluster-name", "jobs-eu"}, nil)
	if got, _ := c.Get("cluster-name"); err != nil || got != "jobs-eu" {
		t.Fatalf("set: %q %v", got, err)
	}
	for _, bad := range []string{"", "two words", "tab\there", "é", strings.Repeat("x", 129)} {
		if _, _, err := Load([]string{"--cluster-name", bad}, nil); err == nil || !strings.Contains(err.Error(), "--cluster-name") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestClusterIDMustBeAWord(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClusterID, cfg.ClusterAddr = "node one", "127.0.0.1:7391"
	if err := cfg.Validate(); err == nil {
		t.Fatal("a cluster id with a space accepted")
	}
	cfg.ClusterID = "n1"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestClusterClientAdvertise(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClusterID, cfg.ClusterAddr = "n1", "127.0.0.1:7391"
	for _, good := range []string{"", "127.0.0.1:6379", "[::1]:6379", "jobs.internal:6379"} {
		cfg.ClusterClientAdvertise = good
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"127.0.0.1", ":6379", "127.0.0.1:", "0.0.0.0:6379", "[::]:6379"} {
		cfg.ClusterClientAdvertise = bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "cluster-client-advertise") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// --http-addr is host:port; a host left out is loopback, and only an
// address written out serves the dashboard beyond the machine.
func TestHTTPAddr(t *testing.T) {
	for _, tc := range []struct {
		arg, listen, err string
	}{
		{":8080", "127.0.0.1:8080", ""},
		{"0.0.0.0:8080", "0.0.0.0:8080", ""},
		{"[::1]:0", "[::1]:0", ""},
		{"8080", "", "http-addr: \"8080\" is not host:port"},
		{"localhost:", "", "is not host:port"},
	} {
		c, _, err := Load([]string{"--http-addr", tc.arg}, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--http-addr %s: %v, want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || c.HTTPListenAddr() != tc.listen {
			t.Errorf("--http-addr %s: listens on %q (%v), want %s", tc.arg, c.HTTPListenAddr(), err, tc.listen)
		}
	}
	if c, _, _ := Load(nil, nil); c.HTTPAddr != "" {
		t.Errorf("the dashboard is on by default at %q", c.HTTPAddr)
	}
}
