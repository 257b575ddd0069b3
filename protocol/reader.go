package protocol

import (
	"bytes"
	"io"

	"github.com/tidwall/redcon"
)

// cmdReader splits the guard's validated byte stream into commands: multibulk
// ones with redcon's zero-copy parser (redcon.ReadNextCommand), inline ones
// with splitInline. A command's arguments are slices of the reader's own
// buffer and of one reused argument slice: they stay valid until the next
// call to fill, which is why a handler must not keep its arguments after it
// returns (the dispatcher writes each reply before the next read). redcon's
// streaming Reader, by contrast, copies every command and allocates its
// argument list; on a pipeline of small commands that was about a third of
// the server's CPU.
//
// A cmdReader belongs to its connection's goroutine.
type cmdReader struct {
	src        io.Reader // the guard: only validated, canonical framing
	buf        []byte
	start, end int // buf[start:end] is read but not yet parsed
	args       [][]byte
	size       int // the buffer's normal size; it grows for a larger command and shrinks back
	err        error

	// pos is where buf[start] lies in the stream; the guard, if src is
	// one, names refused commands by where they start.
	pos   int64
	guard *guard
	// refused is set when the command next returned last was refused by
	// the guard (see Limits.ProtoMaxBulk): its arguments are a placeholder,
	// and the command must answer this error instead of running.
	refused Error
}

func newCmdReader(src io.Reader, size int) *cmdReader {
	g, _ := src.(*guard)
	return &cmdReader{src: src, guard: g, buf: make([]byte, size), size: size, args: make([][]byte, 0, 16)}
}

// next returns the next complete command in the buffer, or nil when the
// buffer holds none (call fill). An empty inline line is a command with no
// arguments. err is a framing error; the stream is unusable after it.
func (r *cmdReader) next() (args [][]byte, ok bool, err error) {
	if r.start == r.end {
		return nil, false, nil
	}
	b := r.buf[r.start:r.end]
	if b[0] != '*' {
		return r.inline(b)
	}
	complete, args, _, left, err := redcon.ReadNextCommand(b, r.args)
	if err != nil {
		return nil, false, err
	}
	if !complete {
		return nil, false, nil
	}
	r.args = args[:0]
	at := r.pos
	r.pos += int64(len(b) - len(left))
	r.start = r.end - len(left)
	r.refused = ""
	if r.guard != nil && len(r.guard.refusals) > 0 {
		r.refused, _ = r.guard.refused(at)
	}
	return args, true, nil
}

// inline parses a telnet-style line as Redis does (see splitInline): the
// line ends at '\n', a '\r' before it is dropped, and what is left is
// split into arguments, decoded in place in the buffer. An empty line is a
// command with no arguments, which the connection skips.
func (r *cmdReader) inline(b []byte) ([][]byte, bool, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, false, nil
	}
	line := b[:i]
	if i > 0 && line[i-1] == '\r' {
		line = line[:i-1]
	}
	args, err := splitInline(line, r.args[:0])
	if err != nil {
		return nil, false, err
	}
	r.args = args[:0]
	r.start += i + 1
	r.pos += int64(i + 1)
	r.refused = "" // the guard refuses no inline command: it closes
	return args, true, nil
}

// fill reads more of the stream: once, blocking only if nothing at all is
// available. Arguments returned by next before fill are invalid after it.
func (r *cmdReader) fill() error {
	if r.err != nil {
		return r.err
	}
	switch {
	case r.start == r.end:
		r.start, r.end = 0, 0
		if len(r.buf) > r.size {
			r.buf = make([]byte, r.size) // let a large command's buffer go
		}
	case r.start > 0:
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end == len(r.buf) {
		// One command is larger than the buffer; the guard bounds it.
		nb := make([]byte, 2*len(r.buf))
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	n, err := r.src.Read(r.buf[r.end:])
	r.end += n
	if err != nil && n == 0 {
		r.err = err
		return err
	}
	return nil
}
