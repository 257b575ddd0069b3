package commands

import (
	"strings"

	"github.com/tidwall/match"

	"sluice/protocol"
)

// Helpers to write argument documentation compactly.
func str(name string) protocol.Arg        { return protocol.Arg{Name: name, Type: "string"} }
func integerArg(name string) protocol.Arg { return protocol.Arg{Name: name, Type: "integer"} }
func optional(a protocol.Arg) protocol.Arg {
	a.Optional = true
	return a
}
func opt(token string, a protocol.Arg) protocol.Arg {
	a.Token = token
	a.Optional = true
	return a
}

// repeated is an optional argument that may be given again, each time
// after its token (JOBPUSH's CONCURRENCY and RATELIMIT, up to 4 each).
func repeated(token string, a protocol.Arg) protocol.Arg {
	a = opt(token, a)
	a.Multiple, a.MultipleToken = true, true
	return a
}

var commandSubs = []protocol.Command{
	{Name: "command|count", Arity: 2, Summary: "Count the commands."},
	{Name: "command|info", Arity: -2, Summary: "Describe commands.", Args: []protocol.Arg{{Name: "command-name", Type: "string", Optional: true, Multiple: true}}},
	{Name: "command|docs", Arity: -2, Summary: "Document commands.", Args: []protocol.Arg{{Name: "command-name", Type: "string", Optional: true, Multiple: true}}},
	{Name: "command|list", Arity: -2, Summary: "List command names, subcommands included, optionally filtered.",
		Args: []protocol.Arg{{Name: "filterby", Token: "FILTERBY", Type: "oneof", Optional: true, Args: []protocol.Arg{
			{Name: "module-name", Token: "MODULE", Type: "string"},
			{Name: "category", Token: "ACLCAT", Type: "string"},
			{Name: "pattern", Token: "PATTERN", Type: "pattern"}}}}},
	{Name: "command|help", Arity: 2, Summary: "Show COMMAND's subcommands."},
}

// COMMAND [COUNT | INFO [name ...] | DOCS [name ...] |
// LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern] | HELP]
// (the dispatcher has checked the arity in commandSubs)
func command(c *protocol.Client, args [][]byte) (any, error) {
	t := c.Server().Table()
	if len(args) == 1 {
		out := make([]any, 0, len(t.Commands()))
		for _, cmd := range t.Commands() {
			out = append(out, commandInfo(cmd))
		}
		return out, nil
	}
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "count":
		return int64(len(t.Commands())), nil
	case "list":
		keep, err := listFilter(args[2:])
		if err != nil {
			return nil, err
		}
		names := []string{}
		for _, cmd := range t.Commands() {
			if keep(cmd, cmd.Group) {
				names = append(names, cmd.Name)
			}
			for i := range cmd.Subs {
				if sc := &cmd.Subs[i]; keep(sc, cmd.Group) {
					names = append(names, sc.Name)
				}
			}
		}
		return names, nil
	case "info":
		if len(args) == 2 {
			return command(c, args[:1])
		}
		out := make([]any, 0, len(args)-2)
		for _, name := range args[2:] {
			if cmd := t.Lookup(name); cmd != nil {
				out = append(out, commandInfo(cmd))
			} else {
				out = append(out, protocol.NullArray)
			}
		}
		return out, nil
	case "docs":
		var cmds []*protocol.Command
		if len(args) == 2 {
			cmds = t.Commands()
		} else {
			for _, name := range args[2:] {
				if cmd := t.Lookup(name); cmd != nil {
					cmds = append(cmds, cmd)
				}
			}
		}
		out := make(protocol.Map, 0, 2*len(cmds))
		for _, cmd := range cmds {
			out = append(out, cmd.Name, commandDocs(cmd))
		}
		return out, nil
	case "getkeys", "getkeysandflags":
		return nil, protocol.Error("ERR The command has no key arguments")
	case "help":
		return []string{
			"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"(no subcommand)", "    Return details about all commands.",
			"COUNT", "    Return the total number of commands.",
			"DOCS [<command-name> ...]", "    Return documentation about commands.",
			"INFO [<command-name> ...]", "    Return details about the given commands.",
			"LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
			"    Return the names of all commands (subcommands as command|subcommand), or those the filter keeps.",
		}, nil
	}
	return nil, protocol.UnknownSubcommand("command", args[1])
}

// listFilter reads COMMAND LIST's optional filter, as Redis does: no module
// is loaded, so MODULE keeps nothing; ACLCAT keeps the commands of a
// category, named without its '@'; PATTERN is a glob over the names. The
// last two ignore case. group is the command's own, or for a subcommand
// without one, its parent's.
func listFilter(args [][]byte) (func(cmd *protocol.Command, group string) bool, error) {
	if len(args) == 0 {
		return func(*protocol.Command, string) bool { return true }, nil
	}
	if len(args) != 3 || !strings.EqualFold(string(args[0]), "filterby") {
		return nil, protocol.ErrSyntax
	}
	arg := strings.ToLower(string(args[2]))
	switch strings.ToLower(string(args[1])) {
	case "module":
		return func(*protocol.Command, string) bool { return false }, nil
	case "aclcat":
		return func(cmd *protocol.Command, group string) bool {
			if cmd.Group != "" {
				group = cmd.Group
			}
			return group == arg
		}, nil
	case "pattern":
		return func(cmd *protocol.Command, _ string) bool { return match.Match(cmd.Name, arg) }, nil
	}
	return nil, protocol.ErrSyntax
}

// commandInfo is one entry of COMMAND / COMMAND INFO, in Redis 7's shape:
// name, arity, flags, first key, last key, step, ACL categories, tips, key
// specs, subcommands. sluice commands take no keys.
func commandInfo(cmd *protocol.Command) []any {
	flags := protocol.Set{}
	for _, f := range cmd.Flags.Names() {
		flags = append(flags, protocol.SimpleString(f))
	}
	cats := protocol.Set{protocol.SimpleString("@" + cmd.Group)}
	subs := []any{}
	for i := range cmd.Subs {
		subs = append(subs, commandInfo(&cmd.Subs[i]))
	}
	return []any{cmd.Name, int64(cmd.Arity), flags, int64(0), int64(0), int64(0), cats, []any{}, []any{}, subs}
}

// commandDocs is one entry of COMMAND DOCS: a map, as its arguments and
// subcommands.
func commandDocs(cmd *protocol.Command) protocol.Map {
	since := cmd.Since
	if since == "" {
		since = "0.1.0"
	}
	group := cmd.Group
	if group == "" {
		group = "server"
	}
	doc := protocol.Map{"summary", cmd.Summary, "since", since, "group", group}
	if len(cmd.Args) > 0 {
		doc = append(doc, "arguments", argDocs(cmd.Args))
	}
	if len(cmd.Subs) > 0 {
		subs := protocol.Map{}
		for i := range cmd.Subs {
			sc := cmd.Subs[i]
			if sc.Group == "" {
				sc.Group = group
			}
			subs = append(subs, sc.Name, commandDocs(&sc))
		}
		doc = append(doc, "subcommands", subs)
	}
	return doc
}

func argDocs(args []protocol.Arg) []any {
	out := make([]any, 0, len(args))
	for _, a := range args {
		d := protocol.Map{"name", a.Name, "type", a.Type}
		if a.Type != "pure-token" && a.Type != "block" && a.Type != "oneof" {
			d = append(d, "display_text", a.Name)
		}
		if a.Token != "" {
			d = append(d, "token", a.Token)
		}
		var flags protocol.Set
		if a.Optional {
			flags = append(flags, protocol.SimpleString("optional"))
		}
		if a.Multiple {
			flags = append(flags, protocol.SimpleString("multiple"))
		}
		if a.MultipleToken {
			flags = append(flags, protocol.SimpleString("multiple_token"))
		}
		if flags != nil {
			d = append(d, "flags", flags)
		}
		if len(a.Args) > 0 {
			d = append(d, "arguments", argDocs(a.Args))
		}
		out = append(out, d)
	}
	return out
}
