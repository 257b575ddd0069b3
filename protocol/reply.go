package protocol

import (
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/redcon"
)

// Reply values. A handler returns one of these, and the connection encodes
// it once the handler is done, in the connection's protocol: RESP2 unless
// the client switched to RESP3 with HELLO 3. One description, two
// encodings:
//
//	value               RESP2                     RESP3
//	nil, Null           null bulk string ($-1)    null (_)
//	NullArray           null array (*-1)          null (_)
//	SimpleString        simple string (+OK)       the same
//	string, []byte      bulk string               the same
//	int, int64          integer                   the same
//	[]any, []string     array                     the same
//	Array               array (see Array)         the same
//	Map                 flat array k1 v1 k2 v2    map (%)
//	Set                 array                     set (~)
//	Bool                integer 1 or 0            boolean (#t, #f)
//	Double              bulk string ("1.5")       double (,1.5)
//	Verbatim            bulk string               verbatim string (=, txt:)
//	Push                array                     push (>)
//	Error, error        error reply (see ErrorText)
//	NoReply             nothing: the command has sent its replies (SUBSCRIBE)
//
// Elements of arrays, maps, sets and pushes are encoded recursively.
type (
	// SimpleString is a RESP simple string.
	SimpleString string
	nullArray    struct{}
	nullBulk     struct{}
	noReply      struct{}

	// Map is a map reply: keys and values alternate, in the order given
	// (field/value replies keep a fixed field order in both protocols).
	Map []any
	// Set is a set reply: an array in RESP2.
	Set []any
	// Bool is a boolean reply: the integer 1 or 0 in RESP2.
	Bool bool
	// Double is a floating-point reply: in RESP2 a bulk string, as Redis
	// sends scores.
	Double float64
	// Verbatim is text meant for people (INFO, CLIENT LIST): a bulk string
	// in RESP2, a verbatim string of format txt in RESP3.
	Verbatim string
	// Push is an out-of-band frame, not the reply to a command (MONITOR's
	// lines, say): an array in RESP2, a push (>) in RESP3.
	Push []any
)

// Proto is a connection's protocol version, 2 or 3 (HELLO).
type Proto uint8

// The protocol versions.
const (
	RESP2 Proto = 2
	RESP3 Proto = 3
)

// Array is an array reply that encodes its own elements: AppendElem
// appends the encoding of element i in protocol p to b and returns the
// result. A hot reply (JOBRESERVE's) uses it to avoid boxing every field;
// the writer may flush between elements, as for []any.
type Array interface {
	Len() int
	AppendElem(b []byte, i int, p Proto) []byte
}

// AppendArray appends an array header of n elements (for Array
// implementations, as the next ones).
func AppendArray(b []byte, n int) []byte { return redcon.AppendArray(b, n) }

// AppendMapLen appends the header of a map of n fields: a flat array of
// 2n elements in RESP2, a map in RESP3.
func AppendMapLen(b []byte, n int, p Proto) []byte {
	if p == RESP3 {
		return appendHeader(b, '%', n)
	}
	return redcon.AppendArray(b, 2*n)
}

// AppendBulk appends a bulk string.
func AppendBulk(b, bulk []byte) []byte { return redcon.AppendBulk(b, bulk) }

// AppendBulkString appends a bulk string.
func AppendBulkString(b []byte, bulk string) []byte { return redcon.AppendBulkString(b, bulk) }

// AppendInt appends an integer reply.
func AppendInt(b []byte, n int64) []byte { return redcon.AppendInt(b, n) }

// AppendReply appends v, any reply value, encoded in protocol p: for
// frames written outside a command's reply (a MONITOR line, say).
func AppendReply(b []byte, v any, p Proto) []byte {
	w := writer{b: b, limit: math.MaxInt, proto: p}
	w.appendReply(v, func(err error) string { text, _ := ErrorText(err); return text })
	return w.b
}

func appendHeader(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// appendDouble encodes f as Redis does: the shortest text that reads back
// as f, and inf, -inf, nan.
func appendDouble(b []byte, f float64, p Proto) []byte {
	var num [32]byte
	var t []byte
	switch {
	case math.IsInf(f, 1):
		t = append(num[:0], "inf"...)
	case math.IsInf(f, -1):
		t = append(num[:0], "-inf"...)
	case math.IsNaN(f):
		t = append(num[:0], "nan"...)
	default:
		t = strconv.AppendFloat(num[:0], f, 'g', -1, 64)
	}
	if p == RESP3 {
		b = append(b, ',')
		b = append(b, t...)
		return append(b, '\r', '\n')
	}
	return redcon.AppendBulk(b, t)
}

// OK is the +OK reply. A constant, so that returning it as a reply (an
// interface) allocates nothing.
const OK = SimpleString("OK")

// Replies used everywhere.
var (
	NullArray = nullArray{}
	Null      = nullBulk{}
	// NoReply is the reply of a command that has sent its own (see
	// Client.Subscribe).
	NoReply = noReply{}
)

// writer buffers replies for one connection and writes them out with a
// deadline, so a client that stops reading cannot pin a goroutine forever.
// The buffer is flushed whenever it grows past limit, and a bulk string of
// limit bytes or more is written from where it lies, not copied in, so one
// connection's buffer holds about limit bytes plus one element (a
// reservation, say) however large the reply. Once a write has failed the
// buffer is dropped and nothing more is encoded: the rest of the reply
// would only pile up in memory for a client that is gone. Owned by the
// connection goroutine.
type writer struct {
	nc      net.Conn
	b       []byte
	err     error         // sticky write error; b is nil from then on
	timeout time.Duration // per write; 0: none
	limit   int           // flush threshold
	sent    *atomic.Int64 // counts the bytes written, if set
	proto   Proto         // the encoding of replies: RESP2 (also the zero value) or RESP3

	deadline time.Time // the write deadline set last

	// resized, if set, is called when cap(b) differs from counted (the
	// client's buffer accounting); looked at on each write, not each reply.
	resized func()
	counted int
}

// flush writes the buffer out. After a failed write it does nothing and
// returns that write's error.
func (w *writer) flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.b) == 0 {
		return nil
	}
	w.sized() // the buffer is at its largest now, and held while the write waits
	if w.write(w.b) != nil {
		return w.err
	}
	if cap(w.b) > 2*w.limit {
		w.b = make([]byte, 0, 4096)
	} else {
		w.b = w.b[:0]
	}
	w.sized()
	return nil
}

// write writes p with the write deadline. A failure is kept in w.err and
// drops the buffer.
func (w *writer) write(p []byte) error {
	if w.timeout > 0 {
		// Moving the deadline costs a runtime timer update; a busy
		// connection moves it only when less than 7/8 of the timeout is
		// left, so a write may be cut off after 7/8 of it, never later.
		now := time.Now()
		if w.deadline.Sub(now) < w.timeout-w.timeout/8 {
			w.deadline = now.Add(w.timeout)
			_ = w.nc.SetWriteDeadline(w.deadline)
		}
	}
	n, err := w.nc.Write(p)
	if w.sent != nil {
		w.sent.Add(int64(n))
	}
	if err != nil {
		w.err = err
		w.b = nil
		w.sized()
	}
	return err
}

func (w *writer) sized() {
	if cap(w.b) != w.counted && w.resized != nil {
		w.resized()
	}
}

// full flushes the buffer once it holds limit bytes, and reports whether
// encoding must stop: a write has failed.
func (w *writer) full() bool {
	if len(w.b) >= w.limit {
		_ = w.flush()
	}
	return w.err != nil
}

func (w *writer) writeError(text string) {
	if w.err == nil {
		w.b = redcon.AppendError(w.b, text)
	}
}

// appendBigBulk encodes a bulk string of at least limit bytes: its header
// goes out with what is buffered, the bytes themselves straight from p.
func (w *writer) appendBigBulk(p []byte) {
	w.b = append(w.b, '$')
	w.b = strconv.AppendInt(w.b, int64(len(p)), 10)
	w.b = append(w.b, '\r', '\n')
	if w.flush() != nil || w.write(p) != nil {
		return
	}
	w.b = append(w.b, '\r', '\n')
}

// appendReply encodes v. It reports false if v is not a reply type (a bug
// in a handler), after encoding "ERR internal error" in its place. After a
// failed write it encodes nothing, and an array stops at the element
// whose write failed.
func (w *writer) appendReply(v any, onErr func(error) string) bool {
	if w.err != nil {
		return true
	}
	switch v := v.(type) {
	case nil, nullBulk:
		if w.proto == RESP3 {
			w.b = append(w.b, "_\r\n"...)
		} else {
			w.b = append(w.b, "$-1\r\n"...)
		}
	case nullArray:
		if w.proto == RESP3 {
			w.b = append(w.b, "_\r\n"...)
		} else {
			w.b = append(w.b, "*-1\r\n"...)
		}
	case SimpleString:
		w.b = redcon.AppendString(w.b, string(v))
	case string:
		if len(v) >= w.limit {
			w.appendBigBulk(unsafe.Slice(unsafe.StringData(v), len(v))) // Write does not modify it
		} else {
			w.b = redcon.AppendBulkString(w.b, v)
		}
	case []byte:
		if len(v) >= w.limit {
			w.appendBigBulk(v)
		} else {
			w.b = redcon.AppendBulk(w.b, v)
		}
	case int64:
		w.b = redcon.AppendInt(w.b, v)
	case int:
		w.b = redcon.AppendInt(w.b, int64(v))
	case []string:
		w.b = redcon.AppendArray(w.b, len(v))
		for _, s := range v {
			w.appendReply(s, onErr)
			if w.full() {
				break
			}
		}
	case []any:
		w.b = redcon.AppendArray(w.b, len(v))
		return w.appendElems(v, onErr)
	case Array:
		n := v.Len()
		w.b = redcon.AppendArray(w.b, n)
		for i := 0; i < n; i++ {
			w.b = v.AppendElem(w.b, i, w.proto)
			if w.full() {
				break
			}
		}
	case Map:
		if len(v)%2 != 0 {
			w.writeError(string(ErrInternal))
			return false
		}
		w.b = AppendMapLen(w.b, len(v)/2, w.proto)
		return w.appendElems(v, onErr)
	case Set:
		w.b = w.appendHeader('~', len(v))
		return w.appendElems(v, onErr)
	case Push:
		w.b = w.appendHeader('>', len(v))
		return w.appendElems(v, onErr)
	case Bool:
		switch {
		case w.proto != RESP3:
			w.b = redcon.AppendInt(w.b, boolInt(bool(v)))
		case bool(v):
			w.b = append(w.b, "#t\r\n"...)
		default:
			w.b = append(w.b, "#f\r\n"...)
		}
	case Double:
		w.b = appendDouble(w.b, float64(v), w.proto)
	case Verbatim:
		if w.proto != RESP3 {
			return w.appendReply(string(v), onErr)
		}
		w.b = appendHeader(w.b, '=', len(v)+4)
		w.b = append(w.b, "txt:"...)
		w.b = append(w.b, v...)
		w.b = append(w.b, '\r', '\n')
	case noReply:
	case error:
		w.writeError(onErr(v))
	default:
		w.writeError(string(ErrInternal))
		return false
	}
	return true
}

// appendHeader appends the header of an aggregate of n elements whose
// RESP3 type is kind: in RESP2 every one of them is an array.
func (w *writer) appendHeader(kind byte, n int) []byte {
	if w.proto != RESP3 {
		kind = '*'
	}
	return appendHeader(w.b, kind, n)
}

// appendElems encodes the elements of an aggregate whose header is written,
// stopping after a failed write.
func (w *writer) appendElems(v []any, onErr func(error) string) bool {
	ok := true
	for _, e := range v {
		ok = w.appendReply(e, onErr) && ok
		if w.full() {
			break
		}
	}
	return ok
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Int formats an integer the way Redis prints numbers in text replies.
func Int(v int64) string { return strconv.FormatInt(v, 10) }
