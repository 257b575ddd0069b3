package commands_test

import (
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"

	"sluice/store"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files from the server's replies")

// goldenNow is the clock of the golden transcripts: every time in them is
// fixed, and so is every id and token (store.SeqGenerator).
const goldenNow = int64(4102444800000) // 2100-01-01: ahead of the timer goroutine, which reads the real clock

// goldenScript covers every command family and every reply shape: simple
// strings, errors, integers, bulk and null bulk strings, null and empty
// arrays, field/value maps, nested arrays, INFO sections without volatile
// lines, CONFIG GET, HELLO, COMMAND INFO/DOCS; SCAN only where its order
// (the id hash's, seeded per process) cannot show. One line is one write: ";"
// separates the commands of a pipeline; an argument of two apostrophes is
// empty.
//
// Commands whose replies depend on the command table as a whole (COMMAND,
// COMMAND COUNT, unknown-command errors for commands that other work may
// add) are left out, so that adding a command does not move the file.
var goldenScript = []string{
	// First: a blocked reserve reads the real clock, not the fixed one.
	"JOBRESERVE w 30000 BLOCK 10 QUEUES empty",
	"PING", "PING hi", "ECHO ''", "SELECT 0", "SELECT 1", "GETX k",
	"HELLO", "HELLO 2", "HELLO 2 SETNAME golden", "HELLO x", "HELLO 2 BOGUS", "HELLO 4",
	"CLIENT ID", "CLIENT GETNAME", "CLIENT SETNAME g2", "CLIENT GETNAME", "CLIENT SETINFO LIB-NAME lib",
	"CLIENT NO-EVICT ON", "CLIENT NOPE", "AUTH pw",
	"JOBPUSH emails send hello",
	"JOBPUSH emails send p2 ID custom PRIORITY 5 CONCURRENCY ck RATELIMIT rk MAXATTEMPTS 3 BACKOFF 10",
	"JOBPUSH emails send later DELAY 1000", "JOBPUSH emails send at AT 4102444805000",
	"JOBPUSH emails send x PRIORITY z", "JOBPUSH emails send x BOGUS 1", "JOBPUSH emails send x ID custom",
	"JOBPUSH '' send x", "JOBPUSH emails",
	"JOBPUSH other a 1 ; JOBPUSH other a 2 ; JOBPUSH other b 3 ; JOBPUSH other b 4 PRIORITY q",
	"JOBGET j1", "JOBGET custom", "JOBGET nope",
	"QUEUELEN emails", "QUEUES", "QUEUESTATS emails", "QUEUESTATS nosuch",
	"QUEUEPEEK emails COUNT 2", "QUEUEPEEK emails COUNT 1 CURSOR 0", "QUEUEPEEK nosuch",
	"POLICYSET CONCURRENCY ck 2", "POLICYSET RATELIMIT rk 5 1000", "POLICYSET RATELIMIT rk 5",
	"POLICYGET CONCURRENCY ck", "POLICYGET RATELIMIT rk", "POLICYGET CONCURRENCY none", "POLICYLIST",
	"JOBRESERVE w 30000 COUNT 2 QUEUES emails", "JOBRESERVE w 30000 QUEUES empty",
	"JOBRESERVE w 30000 HANDLERS 1 a QUEUES other",
	"JOBRESERVE w 0 QUEUES emails",
	"JOBSTART custom.1", "JOBTOUCH custom.1 5000", "JOBTOUCH custom.1 x", "JOBFAIL custom.1 ERROR boom",
	"JOBPROGRESS j1.2 half", "JOBACK j1.2", "JOBGET custom", "JOBGET j1", "JOBRETRY j1",
	"JOBFAIL j4.3 RETRYIN 5 NORETRY", "JOBFAIL j4.3 NORETRY", "JOBACK nosuch", "JOBSTART j4.3", "JOBRETRY j4",
	"JOBRESERVE w2 1000 QUEUES other", "JOBRELEASE j5.4 DELAY 100", "JOBGET j4",
	"JOBWAIT j1", "JOBWAIT j4 1", "JOBWAIT j2 1", "JOBWAIT nope", "JOBWAIT j2 -1", "JOBPROGRESS j1.2 late",
	"JOBCANCEL j2", "JOBCANCEL j2", "JOBCANCEL nope",
	"QUEUEPAUSE emails", "QUEUESTATS emails", "QUEUERESUME emails", "QUEUEPURGE other",
	"SCAN 0 MATCH j1 COUNT 100", "SCAN 0 MATCH nomatch COUNT 100", "SCAN 0 MATCH c* COUNT 100 TYPE job", "SCAN x", "DBSIZE",
	"CONFIG GET *", "CONFIG GET nothing", "CONFIG SET port 1", "CONFIG HELP",
	"COMMAND INFO queuestats nosuch", "COMMAND DOCS queuestats policyget config", "COMMAND GETKEYS x",
	"COMMAND LIST FILTERBY PATTERN queue*",
	"SLOWLOG LEN", "SLOWLOG GET",
	"INFO queues", "INFO policies keyspace",
	"POLICYDEL CONCURRENCY ck", "POLICYDEL CONCURRENCY ck", "TIME x",
	"FLUSHALL", "DBSIZE", "QUEUES", "JOBGET j1", "INFO keyspace",
	// Roles (a standalone node; its address, with the test's port, is
	// left to sentinel_test.go) and publish/subscribe.
	"ROLE", "INFO replication", "SENTINEL GET-MASTER-ADDR-BY-NAME nope", "SENTINEL MASTER nope",
	"SENTINEL REPLICAS sluice", "SENTINEL SENTINELS sluice", "SENTINEL NOPE", "PUBLISH ch hi",
	"SUBSCRIBE +switch-master", "PING", "PING hi", "DBSIZE", "PSUBSCRIBE *", "UNSUBSCRIBE", "PUNSUBSCRIBE", "UNSUBSCRIBE",
	"QUIT",
}

// goldenAuthScript runs on a server with a password: HELLO before AUTH.
var goldenAuthScript = []string{
	"PING", "HELLO", "HELLO 2", "HELLO 2 SETNAME x", "HELLO 2 AUTH default wrong",
	"HELLO 2 AUTH default secret SETNAME named", "CLIENT GETNAME", "PING",
}

// TestRESP2Golden: a client that never sends HELLO, or sends HELLO 2,
// gets byte for byte the replies recorded in testdata/resp2.golden.
func TestRESP2Golden(t *testing.T) {
	compareGolden(t, "testdata/resp2.golden", goldenTranscript(t, 2))
}

// TestRESP3Golden: the same script after HELLO 3 (its HELLO 2 lines made
// HELLO 3), recorded in testdata/resp3.golden; TestRESP3Replies checks its
// shapes one by one.
func TestRESP3Golden(t *testing.T) {
	compareGolden(t, "testdata/resp3.golden", goldenTranscript(t, 3))
}

func compareGolden(t *testing.T, path, got string) {
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("line %d of %s differs:\n got %s\nwant %s", i+1, path, g, w)
		}
	}
}

// goldenTranscript runs goldenScript on a fresh server with a fixed clock
// and ids, and returns each command followed by its reply's bytes, quoted.
func goldenTranscript(t *testing.T, proto int) string {
	script, authScript := goldenScript, goldenAuthScript
	if proto == 3 {
		script = append([]string{"HELLO 3"}, resp3Script(script)...)
		authScript = resp3Script(authScript)
	}
	var out strings.Builder
	runGolden(t, &out, script, "")
	out.WriteString("# with requirepass\n")
	runGolden(t, &out, authScript, "secret")
	return out.String()
}

// resp3Script is script with each HELLO 2 made HELLO 3.
func resp3Script(script []string) []string {
	out := make([]string, len(script))
	for i, l := range script {
		out[i] = strings.ReplaceAll(l, "HELLO 2", "HELLO 3")
	}
	return out
}

func runGolden(t *testing.T, out *strings.Builder, script []string, pass string) {
	ts := start(t, func(s *setup) {
		s.now = func() int64 { return goldenNow }
		s.gen = store.NewSeqGenerator()
		s.pcfg.SlowlogSlowerThan = -1 // a slow machine must not change SLOWLOG's reply
		s.pcfg.RequirePass = pass
	})
	w := dialWire(t, ts.addr)
	for _, line := range script {
		var cmds [][]string
		for _, c := range strings.Split(line, ";") {
			args := strings.Fields(c)
			for i, a := range args {
				if a == "''" {
					args[i] = ""
				}
			}
			cmds = append(cmds, args)
			out.WriteString("> " + strings.TrimSpace(c) + "\n")
		}
		w.send(cmds...)
		for range cmds {
			out.WriteString("< " + strconv.Quote(string(w.reply())) + "\n")
		}
	}
}
