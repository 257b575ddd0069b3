package protocol

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// Inline commands split as Redis splits them (sdssplitargs). Every row's
// arguments are what redis-server 7.0 stored for the same line sent after
// "RPUSH k ", read back with LRANGE; every error row is a line it answered
// with "-ERR Protocol error: unbalanced quotes in request" and a close.
func TestInlineSplitsLikeRedis(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string // nil: unbalanced quotes
	}{
		// Separators: any isspace byte before an argument; space, \t, \n
		// and \r end one, \v and \f do not.
		{"a b", []string{"a", "b"}},
		{"a\tb", []string{"a", "b"}},
		{"\ta\t", []string{"a"}},
		{"  a   b  ", []string{"a", "b"}},
		{"a\rb", []string{"a", "b"}},
		{"a\r\rb", []string{"a", "b"}},
		{"a\r", []string{"a"}},
		{"a\vb", []string{"a\vb"}},
		{"a\fb", []string{"a\fb"}},
		{"\va \vb", []string{"a", "b"}},
		{"\f\va", []string{"a"}},
		// Double quotes: \xHH, \n \r \t \b \a, backslash + any other byte.
		{`a "b\x41c" d`, []string{"a", "bAc", "d"}},
		{`"\x4A\x4a\xfF"`, []string{"JJ\xff"}},
		{`"\x00" b`, []string{"\x00", "b"}},
		{`"\x4"`, []string{"x4"}},
		{`"\xzz"`, []string{"xzz"}},
		{`"\x4g"`, []string{"x4g"}},
		{`"a\tb\n\r\b\a\q\"\\"`, []string{"a\tb\n\r\b\aq\"\\"}},
		{`"\'"`, []string{"'"}},
		{`"a\\" b`, []string{`a\`, "b"}},
		{"\"a\rb\"", []string{"a\rb"}},
		{"\"a\tb\" c", []string{"a\tb", "c"}},
		// Single quotes: only \' is an escape.
		{`'it\'s\n'`, []string{`it's\n`}},
		{`'a\\b'`, []string{`a\\b`}},
		{`'\x41'`, []string{`\x41`}},
		{`'\''`, []string{"'"}},
		{`'a "b" c'`, []string{`a "b" c`}},
		// Quotes open mid-argument; a closing one needs whitespace or the end.
		{`a"b c"`, []string{"ab c"}},
		{`x'y z'`, []string{"xy z"}},
		{"\"x\"\vy", []string{"x", "y"}},
		{"\"x\"\fy", []string{"x", "y"}},
		{"\"a\"\t\"b\"", []string{"a", "b"}},
		{"\"q\"\r", []string{"q"}},
		{`"" '' x`, []string{"", "", "x"}},
		{`a\x41 b\c`, []string{`a\x41`, `b\c`}},
		// Bytes outside ASCII pass through.
		{"caf\xc3\xa9 \xff", []string{"caf\xc3\xa9", "\xff"}},
		{`$x  'a b' "c\nd"`, []string{"$x", "a b", "c\nd"}},
		// Unbalanced.
		{`"x"y`, nil},
		{`'x'y`, nil},
		{`a"b c"d`, nil},
		{`""""`, nil},
		{`"unterminated`, nil},
		{`'unterminated`, nil},
		{`"ends with backslash\`, nil},
		{`"a\"`, nil},
		{`"\x41`, nil},
		{`'a\'`, nil},
		{`a\x41 b\"`, nil},
	} {
		for _, chunk := range []int{1, 3, 1000} {
			in := tc.line + "\r\nPING\r\n"
			cmds, err := readAll(t, &chunkReader{data: []byte(in), n: chunk}, testLimits)
			if tc.want == nil {
				if msg, _ := isProtocolError(err); msg != "Protocol error: unbalanced quotes in request" || len(cmds) != 0 {
					t.Errorf("%q (chunk %d): %q, %v; want unbalanced quotes", tc.line, chunk, cmds, err)
				}
				continue
			}
			want := fmt.Sprintf("%q", [][]string{tc.want, {"PING"}})
			if got := fmt.Sprintf("%q", strs(cmds)); got != want || !errors.Is(err, io.EOF) {
				t.Errorf("%q (chunk %d): %s, %v; want %s", tc.line, chunk, got, err, want)
			}
		}
	}
}

// A line ends at "\n", with one "\r" before it dropped; a line of nothing
// but whitespace is an empty command, which the connection skips.
func TestInlineLineEnds(t *testing.T) {
	cmds, err := readAll(t, strings.NewReader("PING\n  \t \r\n\r\n\nECHO \"a\r\"\r\r\nX\r\r\n"), testLimits)
	got := fmt.Sprintf("%q", strs(cmds))
	if want := `[["PING"] [] [] [] ["ECHO" "a\r"] ["X"]]`; got != want || !errors.Is(err, io.EOF) {
		t.Fatalf("%s, %v; want %s", got, err, want)
	}
}

// Redis finds an inline line's end with strchr, which stops at a NUL byte:
// such a line never ends and never runs there (the client waits until 64
// KiB have come). The guard answers it with an error instead; commands
// before it run.
func TestInlineNULIsRefused(t *testing.T) {
	for _, in := range []string{"PING\r\nEC\x00HO x\r\nPING\r\n", "PING\r\n\x00", "PING\r\n\"a\x00\"\r\n"} {
		for _, chunk := range []int{1, 1000} {
			cmds, err := readAll(t, &chunkReader{data: []byte(in), n: chunk}, testLimits)
			if msg, _ := isProtocolError(err); msg != "Protocol error: NUL byte in inline request" || len(cmds) != 1 || string(cmds[0][0]) != "PING" {
				t.Errorf("%q (chunk %d): %q, %v", in, chunk, cmds, err)
			}
		}
	}
	// A NUL inside a multibulk argument is data like any other byte.
	cmds, err := readAll(t, strings.NewReader("*2\r\n$4\r\nECHO\r\n$3\r\na\x00b\r\n"), testLimits)
	if !errors.Is(err, io.EOF) || len(cmds) != 1 || string(cmds[0][1]) != "a\x00b" {
		t.Fatalf("%q, %v", cmds, err)
	}
}

// Over a real connection: inline escapes and separators reach the handler
// decoded, and each framing error is answered and closes the connection.
func TestFramingOverTheWire(t *testing.T) {
	_, addr := startServer(t, DefaultConfig(), testTable(t))
	c := dial(t, addr)
	for _, tc := range []struct{ send, want string }{
		{"ECHO \"a\\x41\\x42\"\r\n", "$aAB"},
		{"ECHO\t'x \\'y\\''\r\n", "$x 'y'"},
		{"\vECHO \"\"\r\n", "$"},
		{"*2\r\n$4\r\nECHO\r\n$1\r\n0\r\n", "$0"},
	} {
		c.send(tc.send)
		if got := c.reply(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
	for _, tc := range []struct{ send, want string }{
		{"*01\r\n$4\r\nPING\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*1\r\n$04\r\nPING\r\n", "-ERR Protocol error: invalid bulk length"},
		{"ECHO \"a\"b\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{"ECHO a\x00\r\n", "-ERR Protocol error: NUL byte in inline request"},
	} {
		c := dial(t, addr)
		c.send(tc.send)
		if got := c.reply(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
		if !c.closed() {
			t.Errorf("%q: connection left open", tc.send)
		}
	}
}
