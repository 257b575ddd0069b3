package commands

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"sluice/internal/ascii"
	"sluice/protocol"
	"sluice/store"
)

// Argument errors not worded by Redis.
const (
	errPositive    = protocol.Error("ERR value is out of range, must be positive")
	errNonNegative = protocol.Error("ERR value is out of range, must not be negative")
	errTimeout     = protocol.Error("ERR timeout is negative")
	errTooLong     = protocol.Error("ERR value is out of range, must be at most 315360000000 ms (10 years)")
)

// maxDuration keeps now + duration far from overflowing.
const maxDuration = 10 * 365 * 24 * 3600 * 1000

// ident reads an identifier (queue, handler, job id, worker, policy key)
// by the store's rule. The store checks again what reaches it; this check
// stays for what the protocol promises beyond it: errors named as the
// command names its arguments ("id", "policy key"), reported before any
// later argument's, and an empty CONCURRENCY or RATELIMIT key refused
// (the store reads an empty key as none).
func ident(b []byte, what string) (string, error) {
	// Trimmed first, so that the string kept holds no whitespace.
	return store.Ident(what, string(bytes.TrimSpace(b)))
}

// integer reads a signed 64-bit decimal, strictly (as Redis's string2ll).
func integer(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 20 || (len(b) > 1 && b[0] == '0') || b[0] == '+' {
		return 0, protocol.ErrNotInteger
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || (len(b) > 1 && b[0] == '-' && b[1] == '0') {
		return 0, protocol.ErrNotInteger
	}
	return v, nil
}

// positive reads an integer >= 1.
func positive(b []byte) (int64, error) {
	v, err := integer(b)
	if err != nil {
		return 0, err
	}
	if v < 1 {
		return 0, errPositive
	}
	return v, nil
}

// duration reads milliseconds: > 0 (or >= 0 with zeroOK), at most 10 years.
func duration(b []byte, zeroOK bool) (int64, error) {
	v, err := integer(b)
	if err != nil {
		return 0, err
	}
	switch {
	case v < 0 && zeroOK:
		return 0, errNonNegative
	case v < 1 && !zeroOK:
		return 0, errPositive
	case v > maxDuration:
		return 0, errTooLong
	}
	return v, nil
}

// keyword reports whether b is kw, ignoring the case of ASCII letters.
func keyword(b []byte, kw string) bool { return ascii.EqualFold(b, kw) }

// options walks "KEYWORD value" pairs. Each keyword may appear once (but
// see next);
// unknown keywords and missing values are syntax errors.
type options struct {
	args [][]byte
	i    int
	seen [20]string // keywords so far: JOBPUSH, with the most, takes 17
	n    int
}

func newOptions(args [][]byte) *options { return &options{args: args} }

func (o *options) more() bool { return o.i < len(o.args) }

// optionKeywords are the keywords the commands' options take: next returns
// these strings themselves, so that parsing a known keyword allocates
// nothing.
var optionKeywords = []string{
	"AT", "BACKOFF", "BLOCK", "CONCURRENCY", "COUNT", "DELAY", "ERROR", "GROUP", "HANDLERS",
	"ID", "MAXATTEMPTS", "NORETRY", "PRIORITY", "QUEUES", "RATELIMIT", "RETRYIN", "ROUNDROBIN",
}

// upperKeyword is b upper-cased: one of optionKeywords when it is one.
func upperKeyword(b []byte) string {
	for _, kw := range optionKeywords {
		if keyword(b, kw) {
			return kw
		}
	}
	return strings.ToUpper(string(b))
}

// next returns the upper-cased keyword, refusing repeats but of a job's
// keys (CONCURRENCY and RATELIMIT may be given again for further keys:
// the store bounds their number).
func (o *options) next() (string, error) {
	kw := upperKeyword(o.args[o.i])
	o.i++
	if (kw == "CONCURRENCY" || kw == "RATELIMIT") && slices.Contains(o.seen[:o.n], kw) {
		return kw, nil
	}
	if o.n == len(o.seen) || slices.Contains(o.seen[:o.n], kw) {
		return "", protocol.ErrSyntax // a repeat, or more keywords than any command takes
	}
	o.seen[o.n] = kw
	o.n++
	return kw, nil
}

// value returns the keyword's value.
func (o *options) value() ([]byte, error) {
	if o.i >= len(o.args) {
		return nil, protocol.ErrSyntax
	}
	v := o.args[o.i]
	o.i++
	return v, nil
}

// rest returns every remaining argument (a final variadic list).
func (o *options) rest() [][]byte {
	r := o.args[o.i:]
	o.i = len(o.args)
	return r
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// nullable is a null bulk string for "", else the string.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullableTime is a null bulk string for 0, else the integer.
func nullableTime(t int64) any {
	if t == 0 {
		return nil
	}
	return t
}
