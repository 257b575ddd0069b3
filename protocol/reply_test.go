package protocol

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

type pairs [][2]string

func (p pairs) Len() int { return len(p) }
func (p pairs) AppendElem(b []byte, i int, _ Proto) []byte {
	b = AppendArray(b, 2)
	b = AppendBulkString(b, p[i][0])
	return AppendInt(b, int64(len(p[i][1])))
}

// An Array encodes exactly as the same reply built from []any.
func TestArrayReplyMatchesBoxedReply(t *testing.T) {
	p := pairs{{"a", "xyz"}, {"bb", ""}, {"", "1234567890"}}
	var boxed []any
	for _, e := range p {
		boxed = append(boxed, []any{e[0], int64(len(e[1]))})
	}
	var w1, w2 writer
	w1.limit, w2.limit = 1<<20, 1<<20
	if !w1.appendReply(p, nil) || !w2.appendReply(boxed, nil) {
		t.Fatal("not a reply type")
	}
	if string(w1.b) != string(w2.b) {
		t.Fatalf("Array %q, []any %q", w1.b, w2.b)
	}
	if got := string(w1.b[:4]); got != "*"+strconv.Itoa(len(p))+"\r\n" {
		t.Fatalf("header %q", got)
	}
}

var replySink any

// Handlers return OK as an interface on every JOBACK, JOBRELEASE and the
// like: it must not allocate.
func TestOKCostsNoAllocation(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { replySink = OK }); n != 0 {
		t.Errorf("OK as a reply: %v allocations, want 0", n)
	}
	w := writer{}
	if !w.appendReply(OK, nil) || string(w.b) != "+OK\r\n" {
		t.Errorf("OK encodes as %q", w.b)
	}
}

// Each reply value has one encoding per protocol.
func TestReplyEncodings(t *testing.T) {
	for _, tc := range []struct {
		v            any
		resp2, resp3 string
	}{
		{nil, "$-1\r\n", "_\r\n"},
		{Null, "$-1\r\n", "_\r\n"},
		{NullArray, "*-1\r\n", "_\r\n"},
		{OK, "+OK\r\n", "+OK\r\n"},
		{"ab", "$2\r\nab\r\n", "$2\r\nab\r\n"},
		{int64(-7), ":-7\r\n", ":-7\r\n"},
		{[]any{"a", nil}, "*2\r\n$1\r\na\r\n$-1\r\n", "*2\r\n$1\r\na\r\n_\r\n"},
		{Map{"k", int64(1), "n", nil}, "*4\r\n$1\r\nk\r\n:1\r\n$1\r\nn\r\n$-1\r\n", "%2\r\n$1\r\nk\r\n:1\r\n$1\r\nn\r\n_\r\n"},
		{Map{}, "*0\r\n", "%0\r\n"},
		{Set{SimpleString("x")}, "*1\r\n+x\r\n", "~1\r\n+x\r\n"},
		{Push{"monitor", SimpleString("1.5 [0 a] \"PING\"")}, "*2\r\n$7\r\nmonitor\r\n+1.5 [0 a] \"PING\"\r\n", ">2\r\n$7\r\nmonitor\r\n+1.5 [0 a] \"PING\"\r\n"},
		{Bool(true), ":1\r\n", "#t\r\n"},
		{Bool(false), ":0\r\n", "#f\r\n"},
		{Double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n"},
		{Double(3), "$1\r\n3\r\n", ",3\r\n"},
		{Double(math.Inf(-1)), "$4\r\n-inf\r\n", ",-inf\r\n"},
		{Double(math.NaN()), "$3\r\nnan\r\n", ",nan\r\n"},
		{Verbatim("# S\r\na:1\r\n"), "$10\r\n# S\r\na:1\r\n\r\n", "=14\r\ntxt:# S\r\na:1\r\n\r\n"},
		{Map{"odd"}, "-ERR internal error\r\n", "-ERR internal error\r\n"},
	} {
		for _, p := range []struct {
			proto Proto
			want  string
		}{{RESP2, tc.resp2}, {RESP3, tc.resp3}} {
			if got := string(AppendReply(nil, tc.v, p.proto)); got != p.want {
				t.Errorf("%#v in RESP%d: %q, want %q", tc.v, p.proto, got, p.want)
			}
		}
	}
}

// An Array's elements see the connection's protocol.
func TestArrayReplyRESP3(t *testing.T) {
	r := benchReservations{payload: []byte("p")}
	got := string(AppendReply(nil, r, RESP3))
	if !strings.HasPrefix(got, "*1\r\n%8\r\n$5\r\ntoken\r\n") {
		t.Fatalf("RESP3 %q", got)
	}
	if got := string(AppendReply(nil, r, RESP2)); !strings.HasPrefix(got, "*1\r\n*16\r\n$5\r\ntoken\r\n") {
		t.Fatalf("RESP2 %q", got)
	}
}
