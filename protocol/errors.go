package protocol

import (
	"errors"
	"strings"
)

// Error is a reply error whose text starts with its wire code, as in Redis:
// "ERR syntax error", "NOAUTH Authentication required.".
type Error string

func (e Error) Error() string { return string(e) }

// Code is the error's wire code, its first word.
func (e Error) Code() string { return firstWord(string(e)) }

// Coded is an error that knows its wire code: the refusals of the domain
// packages (store's NOJOB, FULL, MISCONF...), found anywhere in a wrapped
// error's chain. A domain package implements it without importing protocol,
// so a new refusal needs no entry here; an error with no code in its chain
// is a bug and reaches the client as ErrInternal.
type Coded interface {
	error
	Code() string
}

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

// ErrorText turns any error into the text of a RESP error reply. This is the
// one place where that happens. An Error anywhere in the chain is sent as it
// is; otherwise the first Coded error's code leads the whole error's text
// (prefixed when a wrapper put words before it). internal reports an error
// with no code (a bug): the client then sees "ERR internal error".
func ErrorText(err error) (text string, internal bool) {
	if pe, ok := errors.AsType[Error](err); ok {
		return sanitize(string(pe)), false
	}
	if ce, ok := errors.AsType[Coded](err); ok {
		if code := ce.Code(); code != "" {
			msg := err.Error()
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
