package protocol

import (
	"errors"
	"strings"

	"sluice/store"
)

// Error is a reply error whose text starts with its wire code, as in Redis:
// "ERR syntax error", "NOAUTH Authentication required.".
type Error string

func (e Error) Error() string { return string(e) }

// Redis's own wording, kept in one place so every command says the same.
const (
	ErrSyntax        = Error("ERR syntax error")
	ErrNotInteger    = Error("ERR value is not an integer or out of range")
	ErrNoAuth        = Error("NOAUTH Authentication required.")
	ErrWrongPass     = Error("WRONGPASS invalid username-password pair or user is disabled.")
	ErrNoPassword    = Error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	ErrHelloNoAuth   = Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	ErrDBIndex       = Error("ERR DB index is out of range")
	ErrMaxClients    = Error("ERR max number of clients reached")
	ErrInternal      = Error("ERR internal error")
	ErrNoSuchClient  = Error("ERR No such client")
	ErrShuttingDown  = Error("ERR server is shutting down")
	ErrProtectedMode = Error("DENIED sluice is running in protected mode because no password is set (--requirepass). " +
		"In this mode connections are only accepted from the loopback interface. " +
		"To accept other clients, set a password with --requirepass (or SLUICE_REQUIREPASS) and restart the server.")
)

// WrongArity is Redis's arity error for a command (name in lower case, with
// "|sub" for subcommands).
func WrongArity(name string) Error {
	return Error("ERR wrong number of arguments for '" + name + "' command")
}

// UnknownCommand is Redis's reply to a command it does not know.
func UnknownCommand(args [][]byte) Error {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(clip(args[0], 128))
	b.WriteString("', with args beginning with: ")
	for _, a := range args[1:] {
		if b.Len() >= 128+64 {
			break
		}
		b.WriteByte('\'')
		b.WriteString(clip(a, 128))
		b.WriteString("' ")
	}
	return Error(b.String())
}

// UnknownSubcommand is Redis's reply to CLIENT FOO and the like.
func UnknownSubcommand(cmd string, sub []byte) Error {
	return Error("ERR unknown subcommand '" + clip(sub, 128) + "'. Try " + strings.ToUpper(cmd) + " HELP.")
}

// SubcommandSyntaxError is Redis's reply when a subcommand of variable
// arity gets more arguments than its handler takes (SLOWLOG GET 1 2).
func SubcommandSyntaxError(cmd string, sub []byte) Error {
	return Error("ERR unknown subcommand or wrong number of arguments for '" + clip(sub, 128) + "'. Try " + strings.ToUpper(cmd) + " HELP.")
}

func clip(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// codedErrors are the domain errors whose text already starts with a wire
// code; errors.Is finds them even when wrapped.
var codedErrors = []error{
	store.ErrNoJob, store.ErrNoReservation, store.ErrExpired, store.ErrDupJob,
	store.ErrWrongState, store.ErrFull, store.ErrInvalid, store.ErrMisconf,
}

// ErrorText turns any error into the text of a RESP error reply. This is the
// one place where that happens. internal reports an error that is not part
// of the wire contract (a bug): the client then sees "ERR internal error".
func ErrorText(err error) (text string, internal bool) {
	var pe Error
	if errors.As(err, &pe) {
		return sanitize(string(pe)), false
	}
	for _, known := range codedErrors {
		if errors.Is(err, known) {
			msg := err.Error()
			code := firstWord(known.Error())
			if firstWord(msg) != code {
				msg = code + " " + msg
			}
			return sanitize(msg), false
		}
	}
	return string(ErrInternal), true
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// sanitize keeps an error on one line, as Redis does.
func sanitize(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}
