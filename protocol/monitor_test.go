package protocol

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func monitorTable(t *testing.T) *Table {
	return testTable(t,
		Command{Name: "monitor", Arity: 1, Flags: Admin, Handler: func(c *Client, args [][]byte) (any, error) {
			c.Monitor()
			return OK, nil
		}},
		Command{Name: "hello", Arity: -1, Flags: NoAuth | Redact, Handler: func(c *Client, args [][]byte) (any, error) { return OK, nil }},
		Command{Name: "login", Arity: -2, Flags: NoAuth | Redact, Handler: func(c *Client, args [][]byte) (any, error) { return OK, nil }},
		Command{Name: "secret", Arity: -1, Flags: Admin, Handler: func(c *Client, args [][]byte) (any, error) { return OK, nil }},
	)
}

// A monitor gets +OK, then a line per command run by any client, as Redis
// 7 prints it: time, database and address, arguments quoted as
// sdscatrepr quotes them; passwords redacted; admin commands and commands
// refused before they run left out.
func TestMonitorShowsCommandsAsRedis(t *testing.T) {
	srv, addr := startServer(t, DefaultConfig(), monitorTable(t))
	mon := dial(t, addr)
	mon.send("MONITOR\r\n")
	if got := mon.reply(); got != "+OK" {
		t.Fatalf("MONITOR answered %q", got)
	}
	c := dial(t, addr)
	from := c.nc.LocalAddr().String()
	for _, cmd := range []string{
		"*2\r\n$4\r\nEcHo\r\n$12\r\na b\"\\\n\r\t\x07\x08\x01\xff\r\n",
		"NOSUCH x\r\n", // unknown: not shown
		"*3\r\n$4\r\necho\r\n$1\r\na\r\n$1\r\nb\r\n", // wrong arity: not shown
		"SECRET x\r\n", // admin: not shown
		"LOGIN user pass\r\n",
		"HELLO 2 SETNAME auth AUTH default pw SETNAME n\r\n",
		"*1\r\n$4\r\nPING\r\n",
	} {
		c.send(cmd)
		c.reply()
	}
	mon.send("PING\r\n") // the monitor's own commands run, and show
	want := []string{
		`"EcHo" "a b\"\\\n\r\t\a\b\x01\xff"`,
		`"LOGIN" "(redacted)" "(redacted)"`,
		`"HELLO" "2" "SETNAME" "auth" "AUTH" "(redacted)" "(redacted)" "SETNAME" "n"`,
		`"PING"`,
	}
	line := regexp.MustCompile(`^\+(\d+)\.(\d{6}) \[0 ([^\]]+)\] (.*)$`)
	for i, w := range want {
		got := mon.reply()
		m := line.FindStringSubmatch(got)
		if m == nil || m[3] != from || m[4] != w {
			t.Fatalf("line %d: %q, want [0 %s] %s", i, got, from, w)
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		if d := time.Since(time.Unix(sec, 0)); d < -time.Second || d > time.Minute {
			t.Fatalf("line %d: time %s is %v away", i, m[1], d)
		}
	}
	// Its own PING: the line (shown first: it ran before its reply was
	// written) and the reply, in the same stream.
	if got := mon.reply(); !strings.HasSuffix(got, `"PING"`) || !strings.Contains(got, mon.nc.LocalAddr().String()) {
		t.Fatalf("monitor's own PING: %q", got)
	}
	if got := mon.reply(); got != "+PONG" {
		t.Fatalf("monitor's PING answered %q", got)
	}
	// Once the monitor leaves, the list is empty again: commands cost one
	// atomic load.
	mon.send("QUIT\r\n")
	if got := mon.reply(); !strings.HasSuffix(got, `"QUIT"`) {
		t.Fatalf("QUIT line: %q", got)
	}
	if got := mon.reply(); got != "+OK" {
		t.Fatalf("QUIT answered %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.monitors.Load() != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if srv.monitors.Load() != nil {
		t.Fatal("the monitor is still listed after QUIT")
	}
}

// A monitor that reads nothing does not make the server hold its lines
// without bound: past monitorLimit it is disconnected, and what the
// clients' buffers hold stays within the limit.
func TestMonitorFallingBehindIsClosed(t *testing.T) {
	srv, addr := startServer(t, DefaultConfig(), monitorTable(t))
	mon := dial(t, addr)
	mon.send("MONITOR\r\n")
	if got := mon.reply(); got != "+OK" {
		t.Fatalf("MONITOR answered %q", got)
	}
	c := dial(t, addr)
	arg := strings.Repeat("\x00", 100<<10) // 400 KB a line, quoted
	cmd := "*2\r\n$4\r\necho\r\n$" + strconv.Itoa(len(arg)) + "\r\n" + arg + "\r\n"
	most := int64(0)
	for i := 0; i < 400 && srv.monitors.Load() != nil; i++ {
		c.send(cmd)
		c.reply()
		most = max(most, srv.Stats().ClientBuffers)
	}
	if srv.monitors.Load() != nil {
		t.Fatal("a monitor that reads nothing is still monitoring after 160 MB of lines")
	}
	if most > monitorLimit+4<<20 {
		t.Fatalf("client buffers reached %d bytes; the monitor's limit is %d", most, monitorLimit)
	}
	if !mon.closedAfterDraining() {
		t.Fatal("the monitor's connection was not closed")
	}
	c.ping("after the monitor was closed")
}

// closedAfterDraining reads whatever is queued and reports whether the
// connection then ends.
func (c *rawClient) closedAfterDraining() bool {
	buf := make([]byte, 1<<20)
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.r.Read(buf); err != nil {
			return !strings.Contains(err.Error(), "timeout")
		}
	}
}
