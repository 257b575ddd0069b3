package protocol

import (
	"net"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/redcon"
)

// Reply values. A handler returns one of these, and the connection encodes
// it once the handler is done:
//
//	nil, Null           null bulk string ($-1)
//	NullArray           null array (*-1)
//	SimpleString        simple string (+OK)
//	string, []byte      bulk string
//	int, int64          integer
//	[]any, []string     array (elements encoded recursively)
//	Array               an array that encodes its elements (no boxed fields)
//	Error, error        error reply (see ErrorText)
type (
	// SimpleString is a RESP simple string.
	SimpleString string
	nullArray    struct{}
	nullBulk     struct{}
)

// Array is an array reply that encodes its own elements: AppendElem
// appends the RESP2 encoding of element i to b and returns the result. A
// hot reply (JOBRESERVE's) uses it to avoid boxing every field; the writer
// may flush between elements, as for []any.
type Array interface {
	Len() int
	AppendElem(b []byte, i int) []byte
}

// AppendArray appends an array header of n elements (for Array
// implementations, as the next three).
func AppendArray(b []byte, n int) []byte { return redcon.AppendArray(b, n) }

// AppendBulk appends a bulk string.
func AppendBulk(b, bulk []byte) []byte { return redcon.AppendBulk(b, bulk) }

// AppendBulkString appends a bulk string.
func AppendBulkString(b []byte, bulk string) []byte { return redcon.AppendBulkString(b, bulk) }

// AppendInt appends an integer reply.
func AppendInt(b []byte, n int64) []byte { return redcon.AppendInt(b, n) }

// OK is the +OK reply. A constant, so that returning it as a reply (an
// interface) allocates nothing.
const OK = SimpleString("OK")

// Replies used everywhere.
var (
	NullArray = nullArray{}
	Null      = nullBulk{}
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
		w.b = append(w.b, "$-1\r\n"...)
	case nullArray:
		w.b = append(w.b, "*-1\r\n"...)
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
		ok := true
		for _, e := range v {
			ok = w.appendReply(e, onErr) && ok
			if w.full() {
				break
			}
		}
		return ok
	case Array:
		n := v.Len()
		w.b = redcon.AppendArray(w.b, n)
		for i := 0; i < n; i++ {
			w.b = v.AppendElem(w.b, i)
			if w.full() {
				break
			}
		}
	case error:
		w.writeError(onErr(v))
	default:
		w.writeError(string(ErrInternal))
		return false
	}
	return true
}

// Int formats an integer the way Redis prints numbers in text replies.
func Int(v int64) string { return strconv.FormatInt(v, 10) }
