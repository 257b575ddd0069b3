package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

var testLimits = Limits{MaxArgs: 100, MaxBulk: 1000, MaxInline: 200, MaxCommand: 4000}

// readAll runs input through a guard and a command reader, as a connection
// does, and returns the commands parsed and the error that ended the stream.
// Both buffers start small, so long commands make the reader grow.
func readAll(t *testing.T, src io.Reader, lim Limits) ([][][]byte, error) {
	t.Helper()
	rd := newCmdReader(newGuard(src, &lim, 64), 64)
	var out [][][]byte
	for {
		cmds, err := readBatch(rd)
		out = append(out, cmds...)
		if err != nil {
			return out, err
		}
	}
}

// readBatch reads once and returns copies of the commands that are then
// complete, as the connection's loop runs them between two reads.
func readBatch(rd *cmdReader) ([][][]byte, error) {
	if err := rd.fill(); err != nil {
		return nil, err
	}
	var out [][][]byte
	for {
		args, ok, err := rd.next()
		if err != nil || !ok {
			return out, err
		}
		cp := make([][]byte, len(args))
		for i, a := range args {
			cp[i] = bytes.Clone(a)
		}
		out = append(out, cp)
	}
}

func TestGuardHostileInputs(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"bulk length near MaxInt64 (crashes redcon)", "*1\r\n$9223372036854775807\r\n", "Protocol error: invalid bulk length"},
		{"bulk length MaxInt64+1", "*1\r\n$9223372036854775808\r\n", "Protocol error: invalid bulk length"},
		{"huge array count (redcon spins)", "*9223372036854775807\r\n", "Protocol error: invalid multibulk length"},
		{"bulk beyond limit", "*1\r\n$1001\r\n", "Protocol error: invalid bulk length"},
		{"negative bulk", "*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
		{"non-digit count", "*1x\r\n", "Protocol error: invalid multibulk length"},
		{"empty count", "*\r\n", "Protocol error: invalid multibulk length"},
		{"count without CR", "*1\n$1\r\na\r\n", "Protocol error: invalid multibulk length"},
		{"missing dollar", "*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"},
		{"binary instead of dollar", "*1\r\n\x00", `Protocol error: expected '$', got '\x00'`},
		{"bulk not followed by CRLF", "*1\r\n$1\r\nab\r\n", "Protocol error: invalid bulk length"},
		{"inline line too long", strings.Repeat("a", 300), "Protocol error: too big inline request"},
		{"inline line too long with newline", strings.Repeat("a", 300) + "\r\n", "Protocol error: too big inline request"},
		{"unbalanced quotes (redcon's own check)", "SET \"a\r\n", "Protocol error: unbalanced quotes in request"},
		{"header digits overflow", "*1\r\n$" + strings.Repeat("9", 40) + "\r\n", "Protocol error: invalid bulk length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, feed := range []struct {
				name string
				r    func(string) io.Reader
			}{
				{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
				{"byte by byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
			} {
				cmds, err := readAll(t, feed.r(tc.input), testLimits)
				msg, ok := isProtocolError(err)
				if !ok || msg != tc.want {
					t.Fatalf("%s: err = %v, want %q", feed.name, err, tc.want)
				}
				if len(cmds) != 0 {
					t.Fatalf("%s: commands leaked past the guard: %q", feed.name, cmds)
				}
			}
		})
	}
}

// Once authenticated, a command too large to hold is read and dropped, not
// buffered, and the reader learns it is refused; the connection goes on.
// Past ProtoMaxBulk (Redis's proto-max-bulk-len) it closes, as in Redis.
func TestGuardRefusesOversizedCommands(t *testing.T) {
	lim := testLimits
	lim.ProtoMaxBulk = 1 << 20
	lim.Payload = 900
	ping := "*1\r\n$4\r\nPING\r\n"
	big := func(n int) string { return "$" + strconv.Itoa(n) + "\r\n" + strings.Repeat("x", n) + "\r\n" }
	tooMany := "*150\r\n" + strings.Repeat(big(2), 150)
	for _, tc := range []struct {
		name, input, want string
	}{
		{"argument past MaxBulk", "*3\r\n$4\r\nECHO\r\n" + big(50000) + "$1\r\na\r\n" + ping,
			`[ECHO  ] refused "ERR argument of 50000 bytes is larger than max-payload (900 bytes)"; [PING]`},
		{"argument of exactly ProtoMaxBulk", "*2\r\n$4\r\nECHO\r\n" + big(1<<20) + ping,
			`[ECHO ] refused "ERR argument of 1048576 bytes is larger than max-payload (900 bytes)"; [PING]`},
		{"command past MaxCommand", "*6\r\n$4\r\nECHO\r\n" + strings.Repeat(big(999), 5) + ping,
			`[ECHO ` + strings.Repeat("x", 999) + ` ` + strings.Repeat("x", 999) + ` ` + strings.Repeat("x", 999) + `  ] refused "ERR command is larger than 4000 bytes, the most max-payload (900 bytes) allows"; [PING]`},
		{"too many arguments", tooMany + ping, `[] refused "ERR command has 150 arguments, more than the limit (100)"; [PING]`},
		{"refused twice in a row", tooMany + tooMany + ping,
			`[] refused "ERR command has 150 arguments, more than the limit (100)"; [] refused "ERR command has 150 arguments, more than the limit (100)"; [PING]`},
		{"argument past ProtoMaxBulk closes", ping + "*2\r\n$4\r\nECHO\r\n$1048577\r\n", `[PING]; Protocol error: invalid bulk length`},
		{"past ProtoMaxBulk inside a refused command closes", tooMany[:40] + "$1048577\r\n", `Protocol error: invalid bulk length`},
	} {
		for _, noFast := range []bool{false, true} {
			for _, chunk := range []int{1, 7, 1 << 21} {
				if chunk == 1 && len(tc.input) > 100000 {
					continue
				}
				g := newGuard(&chunkReader{data: []byte(tc.input), n: chunk}, &lim, 64)
				g.noFast = noFast
				rd := newCmdReader(g, 64)
				var got []string
				for {
					if err := rd.fill(); err != nil {
						if msg, ok := isProtocolError(err); ok {
							got = append(got, msg)
						} else if !errors.Is(err, io.EOF) {
							got = append(got, err.Error())
						}
						break
					}
					for {
						args, ok, err := rd.next()
						if err != nil || !ok {
							break
						}
						s := fmt.Sprintf("%s", args)
						if rd.refused != "" {
							s += fmt.Sprintf(" refused %q", string(rd.refused))
						}
						got = append(got, s)
					}
					if len(rd.buf) > 8192 {
						t.Fatalf("%s: the reader's buffer grew to %d bytes", tc.name, len(rd.buf))
					}
				}
				if s := strings.Join(got, "; "); s != tc.want {
					t.Errorf("%s (noFast %v, chunk %d):\n got %.300s\nwant %.300s", tc.name, noFast, chunk, s, tc.want)
				}
			}
		}
	}
	// Before AUTH, Redis's small limits still close the connection.
	pre := lim
	pre.Unauthenticated = true
	for in, want := range map[string]string{
		"*101\r\n":                             "Protocol error: unauthenticated multibulk length",
		"*1\r\n$1001\r\n":                      "Protocol error: unauthenticated bulk length",
		"*5\r\n" + strings.Repeat(big(999), 5): "Protocol error: query buffer limit exceeded",
	} {
		if _, err := readAll(t, strings.NewReader(in), pre); fmt.Sprint(err) != want {
			t.Errorf("%.20q before AUTH: %v, want %q", in, err, want)
		}
	}
}

func TestGuardDeliversCommandsBeforeTheViolation(t *testing.T) {
	cmds, err := readAll(t, strings.NewReader("PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$99999999999\r\n"), testLimits)
	if len(cmds) != 2 {
		t.Fatalf("got %d commands, want 2", len(cmds))
	}
	if _, ok := isProtocolError(err); !ok {
		t.Fatalf("err = %v, want a protocol error", err)
	}
}

func TestGuardSkipsEmptyMultibulk(t *testing.T) {
	cmds, err := readAll(t, strings.NewReader("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n"), testLimits)
	if !errors.Is(err, io.EOF) || len(cmds) != 1 || string(cmds[0][0]) != "PING" {
		t.Fatalf("cmds %q err %v", cmds, err)
	}
}

func TestGuardUnauthenticatedLimits(t *testing.T) {
	pre := Limits{MaxArgs: 10, MaxBulk: 16384, MaxInline: 16384, MaxCommand: 65536, Unauthenticated: true}
	_, err := readAll(t, strings.NewReader("*11\r\n"), pre)
	if msg, _ := isProtocolError(err); msg != "Protocol error: unauthenticated multibulk length" {
		t.Fatalf("err = %v", err)
	}
	_, err = readAll(t, strings.NewReader("*1\r\n$16385\r\n"), pre)
	if msg, _ := isProtocolError(err); msg != "Protocol error: unauthenticated bulk length" {
		t.Fatalf("err = %v", err)
	}
}

// Before AUTH the guard releases one command per read, so that the limits
// can be lifted between the AUTH and the next command of a pipeline.
func TestGuardReleasesOneCommandAtATimeBeforeAuth(t *testing.T) {
	lim := Limits{MaxArgs: 2, MaxBulk: 100, MaxInline: 100, MaxCommand: 1000, Unauthenticated: true}
	input := "*2\r\n$4\r\nAUTH\r\n$1\r\np\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
	rd := newCmdReader(newGuard(strings.NewReader(input), &lim, 4096), 4096)
	cmds, err := readBatch(rd)
	if err != nil || len(cmds) != 1 || string(cmds[0][0]) != "AUTH" {
		t.Fatalf("first batch %v %v", cmds, err)
	}
	lim = Limits{MaxArgs: 3, MaxBulk: 100, MaxInline: 100, MaxCommand: 1000} // AUTH succeeded
	cmds, err = readBatch(rd)
	if err != nil || len(cmds) != 1 || len(cmds[0]) != 3 {
		t.Fatalf("second batch %v %v", cmds, err)
	}
}

// Valid traffic, cut anywhere, comes out exactly as it went in.
func TestGuardPassesValidTrafficIntact(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var want [][]string
	var b bytes.Buffer
	for i := 0; i < 300; i++ {
		n := 1 + rng.Intn(6)
		var cmd []string
		if rng.Intn(5) == 0 {
			for j := 0; j < n; j++ {
				cmd = append(cmd, fmt.Sprintf("w%d", rng.Intn(1000)))
			}
			b.WriteString(strings.Join(cmd, " ") + "\r\n")
		} else {
			fmt.Fprintf(&b, "*%d\r\n", n)
			for j := 0; j < n; j++ {
				arg := make([]byte, rng.Intn(300))
				rng.Read(arg)
				cmd = append(cmd, string(arg))
				fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(arg), arg)
			}
		}
		want = append(want, cmd)
	}
	for _, chunk := range []int{1, 2, 3, 7, 64, 1000, 1 << 20} {
		r := &chunkReader{data: b.Bytes(), n: chunk}
		got, err := readAll(t, r, Limits{MaxArgs: 10, MaxBulk: 1000, MaxInline: 10000, MaxCommand: 10000})
		if !errors.Is(err, io.EOF) {
			t.Fatalf("chunk %d: err %v", chunk, err)
		}
		if len(got) != len(want) {
			t.Fatalf("chunk %d: %d commands, want %d", chunk, len(got), len(want))
		}
		for i := range want {
			if len(got[i]) != len(want[i]) {
				t.Fatalf("chunk %d cmd %d: %d args, want %d", chunk, i, len(got[i]), len(want[i]))
			}
			for j := range want[i] {
				if string(got[i][j]) != want[i][j] {
					t.Fatalf("chunk %d cmd %d arg %d differs", chunk, i, j)
				}
			}
		}
	}
}

// Inline commands as redis-cli and telnet send them, including a line that
// starts with '$' (redcon's parser alone would read another protocol there)
// and empty lines, which are skipped.
func TestReaderInlineCommands(t *testing.T) {
	in := "PING\r\n\r\n$x  'a b' \"c\\nd\"\nECHO x\r\n*1\r\n$4\r\nPING\r\n"
	for _, chunk := range []int{1, 5, 1000} {
		cmds, err := readAll(t, &chunkReader{data: []byte(in), n: chunk}, testLimits)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("chunk %d: err %v", chunk, err)
		}
		var got []string
		for _, c := range cmds {
			got = append(got, fmt.Sprintf("%q", c))
		}
		want := []string{`["PING"]`, `[]`, `["$x" "a b" "c\nd"]`, `["ECHO" "x"]`, `["PING"]`}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("chunk %d: got %v, want %v", chunk, got, want)
		}
	}
}

// A command larger than the reader's buffer grows it; once the command is
// done the buffer goes back to its normal size.
func TestReaderGrowsAndShrinks(t *testing.T) {
	big := strings.Repeat("x", 900)
	in := "*2\r\n$4\r\nECHO\r\n$900\r\n" + big + "\r\n"
	rd := newCmdReader(newGuard(strings.NewReader(in+"*1\r\n$4\r\nPING\r\n"), &testLimits, 4096), 64)
	var got [][][]byte
	for len(got) < 1 {
		cmds, err := readBatch(rd)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, cmds...)
	}
	if string(got[0][1]) != big || len(rd.buf) <= 64 {
		t.Fatalf("big command %d bytes, buffer %d", len(got[0][1]), len(rd.buf))
	}
	for len(got) < 2 {
		cmds, err := readBatch(rd)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, cmds...)
	}
	if string(got[1][0]) != "PING" {
		t.Fatalf("second command %q", got[1])
	}
	if _, err := readBatch(rd); !errors.Is(err, io.EOF) || len(rd.buf) != 64 {
		t.Fatalf("err %v, buffer %d after the stream", err, len(rd.buf))
	}
}

type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(r.n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// Lengths are read as Redis's string2ll reads them: no '+', no leading
// zero, no "-0"; a negative count is an empty command down to MinInt64.
// Each row is what redis-server 7.0 answered to the same bytes. Both the
// fast path and the state machine alone must give it, whole or cut into
// single bytes.
func TestGuardHeadersLikeRedis(t *testing.T) {
	const invalidMultibulk, invalidBulk = "Protocol error: invalid multibulk length", "Protocol error: invalid bulk length"
	ping := "*1\r\n$4\r\nPING\r\n"
	for _, tc := range []struct {
		input string
		cmds  string // the commands that come out, as %q of their strings
		err   string // "": the stream ends cleanly
	}{
		{"*01\r\n$4\r\nPING\r\n", `[]`, invalidMultibulk},
		{"*00\r\n", `[]`, invalidMultibulk},
		{"*-01\r\n" + ping, `[]`, invalidMultibulk},
		{"*-0\r\n" + ping, `[]`, invalidMultibulk},
		{"*+1\r\n$4\r\nPING\r\n", `[]`, invalidMultibulk},
		{"*-9223372036854775809\r\n" + ping, `[]`, invalidMultibulk},
		{"*-09223372036854775808\r\n" + ping, `[]`, invalidMultibulk},
		{"*1\r\n$04\r\nPING\r\n", `[]`, invalidBulk},
		{"*1\r\n$+4\r\nPING\r\n", `[]`, invalidBulk},
		{"*1\r\n$00\r\n\r\n", `[]`, invalidBulk},
		{"*1\r\n$-0\r\n\r\n", `[]`, invalidBulk},
		{ping + "*2\r\n$4\r\nECHO\r\n$010\r\n0123456789\r\n", `[["PING"]]`, invalidBulk},
		{"*-9223372036854775808\r\n" + ping, `[["PING"]]`, ""},
		{"*-5\r\n*0\r\n" + ping, `[["PING"]]`, ""},
		{"*1\r\n$0\r\n\r\n*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n", `[[""] ["ECHO" "0123456789"]]`, ""},
	} {
		for _, noFast := range []bool{false, true} {
			for _, chunk := range []int{1, 1 << 20} {
				g := newGuard(&chunkReader{data: []byte(tc.input), n: chunk}, &testLimits, 64)
				g.noFast = noFast
				rd := newCmdReader(g, 64)
				var cmds [][][]byte
				var err error
				for err == nil {
					var c [][][]byte
					c, err = readBatch(rd)
					cmds = append(cmds, c...)
				}
				got := fmt.Sprintf("%q", strs(cmds))
				msg, _ := isProtocolError(err)
				if got != tc.cmds || msg != tc.err || (tc.err == "" && !errors.Is(err, io.EOF)) {
					t.Errorf("%q (noFast %v, chunk %d): %s, %v; want %s, %q", tc.input, noFast, chunk, got, err, tc.cmds, tc.err)
				}
			}
		}
	}

	// Redis refuses a count past INT_MAX as invalid before it asks whether
	// the client has authenticated.
	pre := Limits{MaxArgs: 10, MaxBulk: 16384, MaxInline: 16384, MaxCommand: 65536, Unauthenticated: true}
	for in, want := range map[string]string{
		"*2147483648\r\n": invalidMultibulk,
		"*2147483647\r\n": "Protocol error: unauthenticated multibulk length",
	} {
		if _, err := readAll(t, strings.NewReader(in), pre); fmt.Sprint(err) != want {
			t.Errorf("%q before AUTH: %v, want %q", in, err, want)
		}
	}
}

// strs are commands as strings, for messages and comparison.
func strs(cmds [][][]byte) [][]string {
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		out[i] = make([]string, len(c))
		for j, a := range c {
			out[i][j] = string(a)
		}
	}
	return out
}
