package protocol

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/check"
)

func TestCommandStatsAndSlowlog(t *testing.T) {
	sleep := Command{Name: "sleep", Arity: 2, Handler: func(c *Client, args [][]byte) (any, error) {
		ms, _ := strconv.Atoi(string(args[1]))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return OK, nil
	}}
	fail := Command{Name: "fail", Arity: -1, Handler: func(c *Client, args [][]byte) (any, error) { return nil, ErrSyntax }}
	cfg := DefaultConfig()
	cfg.SlowlogSlowerThan = 20 * time.Millisecond
	cfg.SlowlogMaxLen = 2
	srv, addr := startServer(t, cfg, testTable(t, sleep, fail))
	c := dial(t, addr)
	var many strings.Builder
	many.WriteString("*40\r\n$4\r\nfail\r\n")
	for i := 1; i < 40; i++ {
		many.WriteString("$1\r\na\r\n")
	}
	c.send("sleep 30\r\nsleep 0\r\nPING\r\nfail\r\n" + many.String() + "echo\r\n")
	for _, want := range []string{"+OK", "+OK", "+PONG", "-ERR syntax error", "-ERR syntax error", "-ERR wrong number of arguments for 'echo' command"} {
		if got := c.reply(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	stats := map[string]CommandStats{}
	for _, cs := range srv.CommandStats() {
		stats[cs.Name] = cs
	}
	// Calls is the sum of the buckets. Which one the 0 ms call lands in
	// depends on how busy the machine is, so only the 30 ms one's is
	// checked, below.
	s := stats["sleep"]
	check.Field(t, "sleep's Calls", s.Calls, 2)
	check.Field(t, "sleep's Failed", s.Failed, 0)
	if s.Usec < 30_000 {
		t.Errorf("sleep's Usec = %d, want at least 30000", s.Usec)
	}
	slow := 0
	for i, b := range LatencyBounds {
		if b >= 25_000 && b <= 1_000_000 {
			slow += int(stats["sleep"].Buckets[i])
		}
	}
	if slow != 1 {
		t.Fatalf("the 30 ms call is not in a bucket between 25 ms and 1 s: %v", stats["sleep"].Buckets)
	}
	check.Field(t, "fail's Calls", stats["fail"].Calls, 2)
	check.Field(t, "fail's Failed", stats["fail"].Failed, 2)
	if _, ok := stats["echo"]; ok {
		t.Fatal("an arity error counted as a call")
	}
	entries := srv.Slowlog(-1)
	check.Len(t, "slow log", entries, 1)
	check.Equal(t, "slow log entry's Args", entries[0].Args, []string{"sleep", "30"})
	if entries[0].Micros < 30_000 {
		t.Errorf("slow log entry's Micros = %d, want at least 30000", entries[0].Micros)
	}

	cfg.SlowlogSlowerThan = 0
	srv, addr = startServer(t, cfg, testTable(t, sleep, fail))
	c = dial(t, addr)
	c.send(many.String())
	c.reply()
	entries = srv.Slowlog(-1)
	check.Len(t, "a long command in the slow log", entries, 1)
	check.Len(t, "a long command's Args in the slow log", entries[0].Args, 32)
	check.Field(t, "a long command's last Arg in the slow log", entries[0].Args[31], "... (9 more arguments)")
	c.send("PING\r\nPING\r\nPING\r\n")
	c.reply()
	c.reply()
	c.reply()
	if srv.SlowlogLen() != 2 {
		t.Fatalf("slow log holds %d entries, bound 2", srv.SlowlogLen())
	}
	srv.SlowlogReset()
	if srv.SlowlogLen() != 0 {
		t.Fatal("reset left entries")
	}
}
