package protocol

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Limits bound what a client may send in one command. The guard enforces
// them on the raw byte stream, before redcon's reader sees a single byte.
type Limits struct {
	MaxArgs    int64 // arguments in one multibulk command
	MaxBulk    int64 // bytes in one argument
	MaxInline  int64 // bytes in one inline (telnet-style) command line
	MaxCommand int64 // bytes in one command, framing included

	// ProtoMaxBulk is Redis's proto-max-bulk-len: a bulk length past it
	// (or past MaxBulk, if that is larger) closes the connection. Once
	// authenticated, an argument past MaxBulk but not past this, a command
	// past MaxCommand or with more than MaxArgs arguments is refused
	// instead: its bytes are read and dropped, never buffered, and the
	// command answers an error (see refusal).
	ProtoMaxBulk int64
	// Payload is the max-payload the limits follow, named in refusals; 0:
	// they name the limit itself.
	Payload int64

	// Unauthenticated selects Redis's wording for a client that has not yet
	// authenticated ("unauthenticated multibulk length"), and makes the guard
	// release one command at a time, so that a successful AUTH lifts the
	// limits for the very next command of a pipeline.
	Unauthenticated bool
}

// ProtocolError is a framing violation. The connection is answered with
// "-ERR Protocol error: ..." and closed.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

var (
	errInvalidMultibulk = &ProtocolError{"invalid multibulk length"}
	errInvalidBulk      = &ProtocolError{"invalid bulk length"}
	errUnauthMultibulk  = &ProtocolError{"unauthenticated multibulk length"}
	errUnauthBulk       = &ProtocolError{"unauthenticated bulk length"}
	errInlineTooBig     = &ProtocolError{"too big inline request"}
	errInlineNUL        = &ProtocolError{"NUL byte in inline request"}
	errUnbalancedQuotes = &ProtocolError{"unbalanced quotes in request"}
	errCommandTooBig    = &ProtocolError{"query buffer limit exceeded"}
)

// maxHeader is the longest "*<n>" or "$<n>" line we accept (digits only);
// no valid count needs more.
const maxHeader = 20

type guardState uint8

const (
	gsStart     guardState = iota // at the first byte of a command
	gsArrayLen                    // in "*<digits>", before '\r'
	gsArrayLF                     // after the '\r' of "*<n>"
	gsBulkStart                   // expecting '$'
	gsBulkLen                     // in "$<digits>", before '\r'
	gsBulkLF                      // after the '\r' of "$<n>"
	gsBulkData                    // in the payload
	gsBulkSkip                    // in the payload of a refused command: dropped
	gsBulkCR                      // expecting the '\r' after the payload
	gsBulkEnd                     // expecting the '\n' after the payload
	gsInline                      // in an inline command line
)

// guard is an io.Reader that validates RESP framing incrementally and passes
// only validated bytes on. It sits between the network connection and
// redcon's reader, whose own parser trusts lengths it has not checked
// (a bulk length near MaxInt64 crashes the process, a huge array count makes
// it spin) and has no size limits. A violation is reported once the bytes
// before it have been delivered; it is sticky.
//
// A guard belongs to its connection's goroutine; it is not safe for
// concurrent use.
type guard struct {
	src    io.Reader
	limits *Limits // read at every header; the owner may swap its contents

	in     []byte // raw input; in[ip:ie] is not yet validated
	ip, ie int
	rerr   error // read error to report once in[ip:ie] is consumed
	err    error // sticky framing error

	hold  [maxHeader + 4]byte // a validated header not yet handed on
	holdN int
	holdP int

	state   guardState
	neg     bool  // header had a leading '-'
	digits  int   // digits seen in the current header
	num     int64 // value of the current header, without its sign
	args    int64 // arguments still expected in this command
	remain  int64 // payload bytes still expected in this argument
	cmdSize int64 // bytes of the current command so far
	paused  bool  // a command just ended and Limits.Unauthenticated is set
	noFast  bool  // tests: the state machine alone, without fast

	// A refused command (see Limits.ProtoMaxBulk) is handed on in a
	// placeholder form, so that the reader still finds a command where it
	// was: with too many arguments, as one empty argument ("*1" now, "$0"
	// and its CRLF at its end: dropAll); else with the rest of its
	// arguments empty (dropEmpty). The reader learns that it is refused
	// from refusals, by where it starts in the stream handed on.
	drop     dropMode
	out      int64     // bytes handed on so far
	cmdStart int64     // where the current multibulk command starts, in out
	refusals []refusal // refused commands the reader has not reached, in order
}

type dropMode uint8

const (
	dropNone  dropMode = iota
	dropEmpty          // hand on each remaining argument as "$0\r\n\r\n"
	dropAll            // hand on nothing until the command's end
)

// refusal is a command the guard dropped: it starts at byte at of the
// stream handed on, and answers err.
type refusal struct {
	at  int64
	err Error
}

func newGuard(src io.Reader, limits *Limits, bufSize int) *guard {
	return &guard{src: src, limits: limits, in: make([]byte, bufSize)}
}

// Read implements io.Reader.
func (g *guard) Read(p []byte) (int, error) {
	n := 0
	g.paused = false
	for n < len(p) {
		if g.holdP < g.holdN {
			c := copy(p[n:], g.hold[g.holdP:g.holdN])
			g.holdP += c
			n += c
			g.out += int64(c)
			continue
		}
		if g.paused || g.err != nil {
			break
		}
		if g.ip == g.ie {
			if n > 0 {
				break // never block while holding validated bytes
			}
			if g.rerr != nil {
				return 0, g.rerr
			}
			m, err := g.src.Read(g.in)
			g.ip, g.ie = 0, m
			if err != nil {
				g.rerr = err
			}
			if m == 0 && err == nil {
				return 0, nil
			}
			continue
		}
		c := g.scan(p[n:])
		n += c
		g.out += int64(c)
	}
	if n == 0 && g.err != nil {
		return 0, g.err
	}
	return n, nil
}

func (g *guard) fail(err error) int {
	g.err = err
	return 0
}

// scan consumes input from in[ip:ie], writes validated bytes to p, and
// returns how many it wrote. It stops at a state change that needs room.
func (g *guard) scan(p []byte) int {
	lim := g.limits
	n := 0
	for g.ip < g.ie && g.holdP == g.holdN && !g.paused && g.err == nil {
		b := g.in[g.ip]
		switch g.state {
		case gsStart:
			g.cmdSize = 0
			if b == '*' {
				if c := g.fast(p[n:]); c > 0 {
					n += c
					continue
				}
				g.state, g.neg, g.digits, g.num = gsArrayLen, false, 0, 0
				g.cmdStart, g.drop = g.out+int64(n), dropNone
				g.ip++
				g.cmdSize++
				continue
			}
			g.state = gsInline
			continue
		case gsArrayLen, gsBulkLen:
			array := g.state == gsArrayLen
			g.ip++
			g.cmdSize++
			// The header must be what Redis's string2ll reads: an optional
			// '-', then "0" alone or a digit 1-9 and more digits, within
			// int64. So no '+', no leading zero, no "-0".
			switch {
			case b == '\r':
				if g.digits == 0 || (g.neg && g.num == 0) {
					return n + g.fail(g.headerErr(array))
				}
				if array {
					g.state = gsArrayLF
				} else {
					g.state = gsBulkLF
				}
			case b == '-' && g.digits == 0 && !g.neg:
				g.neg = true
			case b >= '0' && b <= '9' && !(g.digits == 1 && g.num == 0) && g.digits < 18:
				g.digits++
				g.num = g.num*10 + int64(b-'0')
			case b >= '0' && b <= '9' && g.digits == 18 && array && g.neg &&
				(g.num < math.MaxInt64/10 || (g.num == math.MaxInt64/10 && b <= '8')):
				// A 19-digit negative count down to MinInt64: an empty
				// command to Redis like any other. 18 digits are enough
				// for every other header, which no limit lets past.
				g.digits++
				g.num = math.MaxInt64
			default:
				return n + g.fail(g.headerErr(array))
			}
		case gsArrayLF:
			g.ip++
			g.cmdSize++
			if b != '\n' {
				return n + g.fail(errInvalidMultibulk)
			}
			count := g.num
			if g.neg {
				count = -count
			}
			if count <= 0 {
				// "*0" and "*-1" are empty commands: Redis skips them.
				g.state = gsStart
				continue
			}
			if count > math.MaxInt32 {
				// Redis refuses this before it asks about authentication.
				return n + g.fail(errInvalidMultibulk)
			}
			if lim.Unauthenticated && count > lim.MaxArgs {
				return n + g.fail(errUnauthMultibulk)
			}
			g.args = count
			g.state = gsBulkStart
			if count > lim.MaxArgs {
				// Redis takes up to INT_MAX arguments; this many would
				// cost more than their bytes to hold, so they are
				// dropped and the command refused.
				g.refuse(lim.tooManyArgs(count), dropAll)
				g.holdHeader('*', 1)
				continue
			}
			g.holdHeader('*', count)
		case gsBulkStart:
			if b != '$' {
				return n + g.fail(&ProtocolError{"expected '$', got '" + printable(b) + "'"})
			}
			g.ip++
			g.cmdSize++
			g.state, g.neg, g.digits, g.num = gsBulkLen, false, 0, 0
		case gsBulkLF:
			g.ip++
			g.cmdSize++
			if b != '\n' || g.neg {
				return n + g.fail(errInvalidBulk)
			}
			if lim.Unauthenticated {
				// Redis's small limits before AUTH close the connection.
				if g.num > lim.MaxBulk {
					return n + g.fail(errUnauthBulk)
				}
				if g.cmdSize+g.num > lim.MaxCommand {
					return n + g.fail(errCommandTooBig)
				}
			} else {
				if g.num > max(lim.ProtoMaxBulk, lim.MaxBulk) {
					return n + g.fail(errInvalidBulk)
				}
				if g.drop == dropNone {
					if g.num > lim.MaxBulk {
						g.refuse(lim.argTooBig(g.num), dropEmpty)
					} else if g.cmdSize+g.num > lim.MaxCommand {
						g.refuse(lim.commandTooBig(), dropEmpty)
					}
				}
			}
			g.remain = g.num
			switch g.drop {
			case dropNone:
				g.state = gsBulkData
				g.holdHeader('$', g.num)
			case dropEmpty:
				g.state = gsBulkSkip
				g.holdHeader('$', 0)
			default:
				g.state = gsBulkSkip
			}
		case gsBulkData:
			if g.remain == 0 {
				g.state = gsBulkCR
				continue
			}
			if n == len(p) {
				return n
			}
			c := int64(g.ie - g.ip)
			if c > g.remain {
				c = g.remain
			}
			if room := int64(len(p) - n); c > room {
				c = room
			}
			copy(p[n:], g.in[g.ip:g.ip+int(c)])
			n += int(c)
			g.ip += int(c)
			g.remain -= c
			g.cmdSize += c
		case gsBulkSkip:
			c := min(int64(g.ie-g.ip), g.remain)
			g.ip += int(c)
			g.remain -= c
			if g.remain == 0 {
				g.state = gsBulkCR
			}
		case gsBulkCR, gsBulkEnd:
			want := byte('\r')
			if g.state == gsBulkEnd {
				want = '\n'
			}
			if b != want {
				return n + g.fail(errInvalidBulk)
			}
			if g.drop != dropAll {
				if n == len(p) {
					return n
				}
				p[n] = b
				n++
			}
			g.ip++
			g.cmdSize++
			if g.state == gsBulkCR {
				g.state = gsBulkEnd
				continue
			}
			g.args--
			if g.args > 0 {
				g.state = gsBulkStart
				if g.cmdSize > lim.MaxCommand && g.drop == dropNone {
					if lim.Unauthenticated {
						return n + g.fail(errCommandTooBig)
					}
					g.refuse(lim.commandTooBig(), dropEmpty)
				}
				continue
			}
			if g.drop == dropAll {
				g.holdN = copy(g.hold[:], "$0\r\n\r\n")
				g.holdP = 0
			}
			g.endCommand()
		case gsInline:
			if n == len(p) {
				return n
			}
			// Copy up to the end of the line in one go.
			end := g.ip
			for end < g.ie && g.in[end] != '\n' && g.in[end] != 0 {
				end++
			}
			if end < g.ie && g.in[end] == 0 && end == g.ip {
				// Redis looks for the line's end with strchr, which
				// stops at a NUL: the command never ends and never runs.
				// Here it gets an error instead of a wait.
				return n + g.fail(errInlineNUL)
			}
			found := end < g.ie && g.in[end] == '\n'
			if found {
				end++ // include the '\n'
			}
			c := end - g.ip
			if room := len(p) - n; c > room {
				c, found = room, false
			}
			if g.cmdSize+int64(c) > lim.MaxInline+2 || (!found && g.cmdSize+int64(c) > lim.MaxInline) {
				return n + g.fail(errInlineTooBig)
			}
			copy(p[n:], g.in[g.ip:g.ip+c])
			n += c
			g.ip += c
			g.cmdSize += int64(c)
			if found {
				g.endCommand()
			}
		}
	}
	return n
}

// fast passes on the whole command at in[ip:] in one copy when the state
// machine would pass it on unchanged and without error: a multibulk command
// of at least one argument, complete in the input, its lengths in canonical
// form (digits only, no leading zero), within the limits, before
// authentication is not at stake, and fitting in p. Anything else (a
// partial command, an odd form, a violation) it leaves to the state
// machine, returning 0. It saves parsing a pipeline's every byte twice.
func (g *guard) fast(p []byte) int {
	lim := g.limits
	if lim.Unauthenticated || g.noFast {
		return 0
	}
	b := g.in[g.ip:g.ie]
	count, i, ok := canonicalHeader(b, 1)
	if !ok || count == 0 || count > lim.MaxArgs {
		return 0
	}
	for range count {
		if i >= len(b) || b[i] != '$' {
			return 0
		}
		var size int64
		if size, i, ok = canonicalHeader(b, i+1); !ok || size > lim.MaxBulk || int64(len(b)-i) < size+2 {
			return 0
		}
		i += int(size)
		if b[i] != '\r' || b[i+1] != '\n' {
			return 0
		}
		i += 2
	}
	if int64(i) > lim.MaxCommand || i > len(p) {
		return 0
	}
	g.ip += copy(p, b[:i])
	return i
}

// canonicalHeader reads the length of a header that starts at b[i] and ends
// in "\r\n": at most 18 digits, no sign, no leading zero. It returns the
// length and where the next header starts.
func canonicalHeader(b []byte, i int) (v int64, next int, ok bool) {
	start := i
	for i < len(b) && i-start < 18 && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	if i == start || (b[start] == '0' && i-start > 1) || i+1 >= len(b) || b[i] != '\r' || b[i+1] != '\n' {
		return 0, 0, false
	}
	return v, i + 2, true
}

// refuse notes that the current command is refused with err, and drops
// the rest of it as mode says.
func (g *guard) refuse(err Error, mode dropMode) {
	g.refusals = append(g.refusals, refusal{at: g.cmdStart, err: err})
	g.drop = mode
}

// refused reports whether the command that starts at byte at of the
// stream handed on was refused, and why; the reader asks about each
// command in turn.
func (g *guard) refused(at int64) (Error, bool) {
	if len(g.refusals) == 0 || g.refusals[0].at != at {
		return "", false
	}
	err := g.refusals[0].err
	g.refusals = append(g.refusals[:0], g.refusals[1:]...)
	return err, true
}

// The refusals' wording names the setting a user can change.
func (l *Limits) argTooBig(size int64) Error {
	if l.Payload > 0 {
		return Error(fmt.Sprintf("ERR argument of %d bytes is larger than max-payload (%d bytes)", size, l.Payload))
	}
	return Error(fmt.Sprintf("ERR argument of %d bytes is larger than the limit (%d bytes)", size, l.MaxBulk))
}

func (l *Limits) commandTooBig() Error {
	if l.Payload > 0 {
		return Error(fmt.Sprintf("ERR command is larger than %d bytes, the most max-payload (%d bytes) allows", l.MaxCommand, l.Payload))
	}
	return Error(fmt.Sprintf("ERR command is larger than the limit (%d bytes)", l.MaxCommand))
}

func (l *Limits) tooManyArgs(n int64) Error {
	return Error(fmt.Sprintf("ERR command has %d arguments, more than the limit (%d)", n, l.MaxArgs))
}

func (g *guard) endCommand() {
	g.state = gsStart
	g.drop = dropNone
	if g.limits.Unauthenticated {
		g.paused = true
	}
}

func (g *guard) headerErr(array bool) error {
	if array {
		return errInvalidMultibulk
	}
	return errInvalidBulk
}

// holdHeader queues a validated "*<n>\r\n" or "$<n>\r\n" for delivery.
func (g *guard) holdHeader(c byte, v int64) {
	b := append(g.hold[:0], c)
	b = strconv.AppendInt(b, v, 10)
	b = append(b, '\r', '\n')
	g.holdN, g.holdP = len(b), 0
}

func printable(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return string(rune(b))
	}
	return "\\x" + string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&15])
}

// isProtocolError reports whether err is a framing error, ours or one of
// redcon's (its multibulk parser words them "Protocol error: ...").
func isProtocolError(err error) (string, bool) {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Error(), true
	}
	if err != nil {
		if msg := err.Error(); strings.HasPrefix(msg, "Protocol error:") {
			return msg, true
		}
	}
	return "", false
}
