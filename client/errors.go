package client

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Sentinels for the protocol's error codes (PROTOCOL.md "Errors"). Error
// replies are returned as *Error, which matches the sentinel of its code
// with errors.Is.
var (
	ErrNoJob         = errors.New("sluice: no such job (NOJOB)")
	ErrNoReservation = errors.New("sluice: no such reservation (NORESERVATION)")
	ErrExpired       = errors.New("sluice: the reservation's lease has expired (EXPIRED)")
	ErrDupJob        = errors.New("sluice: a job with this id already exists (DUPJOB)")
	ErrDupKey        = errors.New("sluice: the unique key is held by another job (DUPKEY)")
	ErrDepFailed     = errors.New("sluice: a dependency ended without success (DEPFAILED)")
	ErrNoBatch       = errors.New("sluice: no such open batch (NOBATCH)")
	ErrWrongState    = errors.New("sluice: not allowed in the job's state (WRONGSTATE)")
	ErrFull          = errors.New("sluice: the queue or server is full (FULL)")
	ErrMisconf       = errors.New("sluice: the server cannot persist changes (MISCONF)")
	ErrNoAuth        = errors.New("sluice: authentication required (NOAUTH)")
	ErrWrongPass     = errors.New("sluice: authentication failed (WRONGPASS)")
	ErrNoProto       = errors.New("sluice: protocol version not supported (NOPROTO)")
	ErrDenied        = errors.New("sluice: connection refused by protected mode (DENIED)")
	// ErrRequest is the generic ERR code: syntax and argument errors, unknown
	// commands, and the server's other refusals.
	ErrRequest = errors.New("sluice: request refused (ERR)")
)

// ErrNoPolicy is returned by PolicyGet when no such policy exists (the
// server answers null; there is no wire code for it).
var ErrNoPolicy = errors.New("sluice: no such policy")

var codes = map[string]error{
	"NOJOB":         ErrNoJob,
	"NORESERVATION": ErrNoReservation,
	"EXPIRED":       ErrExpired,
	"DUPJOB":        ErrDupJob,
	"DUPKEY":        ErrDupKey,
	"DEPFAILED":     ErrDepFailed,
	"NOBATCH":       ErrNoBatch,
	"WRONGSTATE":    ErrWrongState,
	"FULL":          ErrFull,
	"MISCONF":       ErrMisconf,
	"NOAUTH":        ErrNoAuth,
	"WRONGPASS":     ErrWrongPass,
	"NOPROTO":       ErrNoProto,
	"DENIED":        ErrDenied,
	"ERR":           ErrRequest,
}

// Error is an error reply from the server. Code is its first word
// ("EXPIRED"); Message is the whole reply text, as the server sent it.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := codes[e.Code]
	return ok && s == target
}

// wrapErr turns a go-redis error reply into *Error; other errors (network,
// timeouts, redis.Nil) pass through unchanged.
func wrapErr(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return err
	}
	msg := re.Error()
	code := msg
	if i := strings.IndexByte(msg, ' '); i >= 0 {
		code = msg[:i]
	}
	// A reply error is one line of text; anything else go-redis reports
	// through this interface (a closed pool, say) has no code of ours.
	if code == "" || strings.ToUpper(code) != code {
		return err
	}
	return &Error{Code: code, Message: msg}
}
