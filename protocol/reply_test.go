package protocol

import (
	"strconv"
	"testing"
)

type pairs [][2]string

func (p pairs) Len() int { return len(p) }
func (p pairs) AppendElem(b []byte, i int) []byte {
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
