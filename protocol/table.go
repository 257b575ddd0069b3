package protocol

import (
	"fmt"
	"sort"
	"strings"
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
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{Write, "write"}, {ReadOnly, "readonly"}, {Blocking, "blocking"},
	{Admin, "admin"}, {NoAuth, "no-auth"}, {Fast, "fast"},
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

// Command is one row of the command table.
type Command struct {
	Name    string // lower case
	Arity   int    // Redis rules: n means exactly n (name included), -n at least n
	Flags   Flags
	Handler Handler

	// Documentation, served by COMMAND DOCS.
	Group   string
	Summary string
	Since   string
	Args    []Arg
	Subs    []Command // subcommands, documentation only (the handler dispatches them)

	stats *cmdStats // set by NewTable
}

// Arg documents an argument the way COMMAND DOCS describes it.
type Arg struct {
	Name     string
	Type     string // string, integer, key, pure-token, block or oneof
	Token    string // a keyword that introduces the argument
	Optional bool
	Multiple bool
	Args     []Arg // for block and oneof
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
		}
		c.stats = new(cmdStats)
		t.byName[c.Name] = c
		t.list = append(t.list, c)
	}
	sort.Slice(t.list, func(i, j int) bool { return t.list[i].Name < t.list[j].Name })
	return t, nil
}

// Lookup finds a command by name, in any case.
func (t *Table) Lookup(name []byte) *Command {
	var buf [32]byte
	if len(name) > len(buf) {
		return t.byName[strings.ToLower(string(name))]
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return t.byName[string(buf[:len(name)])]
}

// Commands lists the table, sorted by name.
func (t *Table) Commands() []*Command { return t.list }

// arityOK applies Redis's arity rule.
func arityOK(arity, n int) bool {
	if arity > 0 {
		return n == arity
	}
	return n >= -arity
}
