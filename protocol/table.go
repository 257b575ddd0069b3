package protocol

import (
	"fmt"
	"sort"
	"strings"

	"sluice/internal/ascii"
)

// Flags describe a command to the dispatcher and to COMMAND.
type Flags uint16

// Command flags.
const (
	// NoAuth commands run before the client has authenticated (AUTH,
	// HELLO, QUIT), as in Redis.
	NoAuth Flags = 1 << iota
	// Write commands change data.
	Write
	// ReadOnly commands only read.
	ReadOnly
	// Blocking commands may wait (JOBRESERVE with BLOCK).
	Blocking
	// Admin commands manage the server.
	Admin
	// Fast commands run in constant or logarithmic time.
	Fast
	// Redact hides the arguments from the slow log (AUTH, HELLO).
	Redact
	// TxControl commands run at once inside MULTI, never queued (MULTI,
	// EXEC, DISCARD, WATCH, UNWATCH, QUIT), and without the gate that
	// orders commands against transactions (multi.go): they must not
	// touch what the commands change.
	TxControl
	// NoMulti commands are refused inside MULTI, aborting the
	// transaction, as Redis's no-multi commands are (MONITOR).
	NoMulti
	// PubSub commands are those a RESP2 client subscribed to channels may
	// run (SUBSCRIBE, PING, QUIT, ...), as Redis allows them (pubsub.go).
	PubSub
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{Write, "write"}, {ReadOnly, "readonly"}, {Blocking, "blocking"},
	{Admin, "admin"}, {NoAuth, "no-auth"}, {Fast, "fast"}, {PubSub, "pubsub"},
}

// Names lists the flags as COMMAND shows them.
func (f Flags) Names() []string {
	var out []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// Handler runs a command. args[0] is the command name as sent. The
// arguments point into the connection's read buffer and are valid only
// until the handler returns: copy what must outlive the call (strings made
// from them are copies already). A []byte inside the returned reply may
// alias args; it is encoded before the next read. It returns a reply value
// (see reply.go) or an error, which ErrorText turns into a RESP error.
type Handler func(c *Client, args [][]byte) (any, error)

// BatchHandler runs calls of one command that arrived one after another in
// a connection's input, together: it sets out[i] to what Handler would
// have returned for calls[i], run in order. A batch lets a pipeline of
// pushes take a lock once, not once per push. Like a Handler it must not
// keep its arguments.
type BatchHandler func(c *Client, calls [][][]byte, out []Result)

// Result is one call's reply, or its error.
type Result struct {
	Reply any
	Err   error
}

// Command is one row of the command table.
type Command struct {
	Name    string // lower case
	Arity   int    // Redis rules: n means exactly n (name included), -n at least n
	Flags   Flags
	Handler Handler
	// Batch, if set, runs consecutive calls of the command from one
	// connection's input as one (see BatchHandler): calls that are
	// complete in the read buffer together, authenticated and of the
	// right arity, up to MaxBatch of them. Statistics still count each
	// call, with the batch's time shared evenly.
	Batch BatchHandler
	// Waits, for a Blocking command, reports whether it may wait for work
	// (call Client.Block) with these arguments: JOBRESERVE only with
	// BLOCK. nil: it may with any. The connection runs such a command
	// outside its read session (see Client.serve).
	Waits func(args [][]byte) bool
	// Categories are the ACL categories (no '@') beyond those the flags
	// give (see ACLCategories): sluice's producer, worker, admin.
	Categories []string
	// Keys, if set, lists the queue names and policy keys a call touches,
	// for a user's ~patterns (acl.go). It runs only after the arity check,
	// and only for users limited by patterns.
	Keys func(args [][]byte) [][]byte

	// Documentation, served by COMMAND DOCS.
	Group   string
	Summary string
	Since   string
	Args    []Arg
	// Subs are the subcommands, named "command|sub" in lower case, with
	// their own arity (counted from the command name) and documentation.
	// The dispatcher checks a listed subcommand's arity before the handler
	// runs; the handler does the work, and answers a subcommand it does not
	// list.
	Subs []Command

	stats *cmdStats // set by NewTable
}

// Arg documents an argument the way COMMAND DOCS describes it.
type Arg struct {
	Name     string
	Type     string // string, integer, key, pattern, pure-token, block or oneof
	Token    string // a keyword that introduces the argument
	Optional bool
	Multiple bool
	// MultipleToken: the token comes again before each value (CONCURRENCY
	// a CONCURRENCY b), Redis's multiple_token.
	MultipleToken bool
	Args          []Arg // for block and oneof
}

// Table is the immutable command table the dispatcher serves.
type Table struct {
	byName map[string]*Command
	list   []*Command
}

// NewTable checks and indexes the commands.
func NewTable(cmds []Command) (*Table, error) {
	t := &Table{byName: make(map[string]*Command, len(cmds))}
	for i := range cmds {
		c := &cmds[i]
		switch {
		case c.Name == "" || c.Name != strings.ToLower(c.Name):
			return nil, fmt.Errorf("command %q: name must be lower case", c.Name)
		case c.Arity == 0:
			return nil, fmt.Errorf("command %q: arity must not be 0", c.Name)
		case c.Handler == nil:
			return nil, fmt.Errorf("command %q: no handler", c.Name)
		case t.byName[c.Name] != nil:
			return nil, fmt.Errorf("command %q: defined twice", c.Name)
		case c.Batch != nil && (c.Flags&Blocking != 0 || len(c.Subs) > 0):
			return nil, fmt.Errorf("command %q: a batch handler for a blocking command or one with subcommands", c.Name)
		}
		if err := checkSubs(c); err != nil {
			return nil, err
		}
		c.stats = new(cmdStats)
		t.byName[c.Name] = c
		t.list = append(t.list, c)
	}
	sort.Slice(t.list, func(i, j int) bool { return t.list[i].Name < t.list[j].Name })
	return t, nil
}

func checkSubs(c *Command) error {
	seen := make(map[string]bool, len(c.Subs))
	for _, s := range c.Subs {
		sub, ok := strings.CutPrefix(s.Name, c.Name+"|")
		switch {
		case !ok || sub == "" || s.Name != strings.ToLower(s.Name):
			return fmt.Errorf("command %q: subcommand %q must be named %s|<lower case name>", c.Name, s.Name, c.Name)
		case s.Arity > -2 && s.Arity < 2:
			return fmt.Errorf("command %q: subcommand %q: arity %d does not count the command and the subcommand", c.Name, s.Name, s.Arity)
		case seen[sub]:
			return fmt.Errorf("command %q: subcommand %q defined twice", c.Name, s.Name)
		}
		seen[sub] = true
	}
	return nil
}

// Lookup finds a command by name, in any case.
func (t *Table) Lookup(name []byte) *Command {
	var buf [32]byte
	return t.byName[string(ascii.AppendLower(buf[:0], name))]
}

// Commands lists the table, sorted by name.
func (t *Table) Commands() []*Command { return t.list }

// sub finds the listed subcommand called name, in any case, or nil.
func (c *Command) sub(name []byte) *Command {
	for i := range c.Subs {
		if s := &c.Subs[i]; ascii.EqualFold(s.Name[len(c.Name)+1:], name) {
			return s
		}
	}
	return nil
}

// arityOK applies Redis's arity rule.
func arityOK(arity, n int) bool {
	if arity > 0 {
		return n == arity
	}
	return n >= -arity
}
