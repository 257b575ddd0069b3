package commands

import (
	"strconv"
	"strings"
	"time"

	"sluice/protocol"
)

// sluiceCategories are the ACL categories sluice defines, beyond those the
// command flags give (protocol.Command.ACLCategories); docs/commands.md
// has the table.
var sluiceCategories = map[string][]string{
	"jobpush":    {"producer"},
	"queuelen":   {"producer", "worker"},
	"queuestats": {"producer", "worker"},
	"jobget":     {"producer", "worker"},
	"jobwait":    {"producer", "worker"}, // a producer waits for its job's result
	"batchopen":  {"producer"},
	"batchclose": {"producer"},
	"batchget":   {"producer", "worker"},

	"jobreserve":  {"worker"},
	"jobstart":    {"worker"},
	"jobtouch":    {"worker"},
	"joback":      {"worker"},
	"jobfail":     {"worker"},
	"jobrelease":  {"worker"},
	"jobprogress": {"worker"},

	"jobcancel":  {"admin"},
	"jobretry":   {"admin"},
	"jobscan":    {"admin"},
	"jobdelete":  {"admin"},
	"jobbulkids": {"admin"},
	// JOBBULK writes through JOBBULKIDS, whose rights it needs as well.
	"jobbulk":     {"admin", "write", "dangerous"},
	"queuepause":  {"admin"},
	"queueresume": {"admin"},
	"queuepurge":  {"admin"},
	"queuepeek":   {"admin"},
	"queues":      {"admin"},
	"scan":        {"admin"},
	"policyset":   {"admin"},
	"policydel":   {"admin"},
	"policyget":   {"admin"},
	"policylist":  {"admin"},
	"cronset":     {"admin"},
	"crondel":     {"admin"},
	"cronget":     {"admin"},
	"cronlist":    {"admin"},
	// A worker that meets an overloaded upstream holds its key: a worker's
	// act as much as an operator's.
	"policythrottle": {"worker", "admin"},
	"flushall":       {"admin", "dangerous"},
	"flushdb":        {"admin", "dangerous"},
	"client":         {"admin"},
	"info":           {"admin"},
	"dbsize":         {"admin"},
	"config":         {"admin"},
	"shutdown":       {"admin"},
	"bgrewriteaof":   {"admin"},
	"slowlog":        {"admin"},
	"monitor":        {"admin"},
}

// subCategories are the categories of subcommands that differ from their
// command's: CLIENT is @admin, but what a library sends on connecting is
// @connection, as in Redis.
var subCategories = map[string][]string{
	"client|setname":  {"connection", "slow"},
	"client|getname":  {"connection", "slow"},
	"client|id":       {"connection", "slow"},
	"client|info":     {"connection", "slow"},
	"client|setinfo":  {"connection", "slow"},
	"client|no-touch": {"connection", "slow"},
	"client|help":     {"connection", "slow"},
	"client|list":     {"admin", "slow"},
	"client|kill":     {"admin", "slow"},
	"client|no-evict": {"admin", "slow"},
}

// keyArgs are, for a user limited by ~patterns, the queue names and policy
// keys a call touches. Commands that name a job by its token have none:
// the right to the command is enough (docs/commands.md, "ACL").
var keyArgs = map[string]func(args [][]byte) [][]byte{
	"jobpush":        arg(1),
	"jobreserve":     reserveQueues,
	"queuelen":       arg(1),
	"queuestats":     arg(1),
	"queuepause":     arg(1),
	"queueresume":    arg(1),
	"queuepeek":      arg(1),
	"queuepurge":     arg(1),
	"policyset":      policyKey,
	"policydel":      policyKey,
	"policyget":      policyKey,
	"cronset":        cronKeys,
	"crondel":        arg(1),
	"cronget":        arg(1),
	"policythrottle": arg(1),
	"jobrelease":     releaseThrottleKey,
	"jobscan":        scanQueue(2),
	"jobbulk":        scanQueue(2),
	"batchopen":      batchCallbackQueue,
}

// batchCallbackQueue is the queue of BATCHOPEN's callback, if any (the
// batch itself needs no key right).
func batchCallbackQueue(args [][]byte) [][]byte {
	for i := 2; i+1 < len(args); i++ {
		if strings.EqualFold(string(args[i]), "CALLBACK") {
			return args[i+1 : i+2]
		}
	}
	return nil
}

// policyKey is a policy's key; for a breaker on a queue or a key, that
// queue or key (a breaker on a handler is checked by its whole target,
// handler:name, which only a pattern covering it allows).
func policyKey(args [][]byte) [][]byte {
	if len(args) > 2 && strings.EqualFold(string(args[1]), "BREAKER") {
		for _, p := range []string{"queue:", "key:"} {
			if rest, ok := strings.CutPrefix(string(args[2]), p); ok {
				return [][]byte{[]byte(rest)}
			}
		}
	}
	return arg(2)(args)
}

// cronKeys are CRONSET's entry name and the queue its jobs go to.
func cronKeys(args [][]byte) [][]byte {
	if len(args) > 3 {
		return [][]byte{args[1], args[3]}
	}
	return args[1:]
}

// releaseThrottleKey is the key of JOBRELEASE's THROTTLE option, if any
// (the token needs no key right; a throttle of another's key does). When
// THROTTLE has no key after it, every argument after the token is
// checked, never fewer.
func releaseThrottleKey(args [][]byte) [][]byte {
	for i := 2; i < len(args); i++ {
		if strings.EqualFold(string(args[i]), "THROTTLE") {
			if i+1 < len(args) {
				return args[i+1 : i+2]
			}
			return args[2:]
		}
	}
	return nil
}

// scanQueue is the QUEUE of JOBSCAN's or JOBBULK's filters, from args[i]
// on. Without one the scan reads every queue: every argument is checked,
// so that a user limited to some queues is refused, never shown more.
func scanQueue(i int) func(args [][]byte) [][]byte {
	return func(args [][]byte) [][]byte {
		var qs [][]byte // every QUEUE given is checked, should the command take more than one
		for k := i; k+1 < len(args); k += 2 {
			if strings.EqualFold(string(args[k]), "QUEUE") {
				qs = append(qs, args[k+1])
			}
		}
		if qs == nil {
			return [][]byte{[]byte("*")}
		}
		return qs
	}
}

func arg(i int) func(args [][]byte) [][]byte {
	return func(args [][]byte) [][]byte {
		if i < len(args) {
			return args[i : i+1]
		}
		return nil
	}
}

// reserveQueues finds JOBRESERVE's QUEUES list. When the options do not
// parse it returns every argument after the lease, so a malformed call is
// checked against more names, never fewer.
func reserveQueues(args [][]byte) [][]byte {
	for i := 3; i < len(args); {
		switch strings.ToUpper(string(args[i])) {
		case "COUNT", "BLOCK":
			i += 2
		case "ROUNDROBIN":
			i++
		case "HANDLERS":
			if i+1 >= len(args) {
				return args[3:]
			}
			n, err := strconv.Atoi(string(args[i+1]))
			if err != nil || n < 0 {
				return args[3:]
			}
			i += 2 + n
		case "QUEUES":
			return args[i+1:]
		default:
			return args[3:]
		}
	}
	return args[3:]
}

// basics are what every client needs whatever its role: connecting (what
// libraries send first), transactions, and finding the leader as clients
// configured with Sentinel do. @producer and @worker include them, so that
// "+@producer" alone makes a working producer.
var basics = []string{
	"ping", "echo", "select", "hello", "auth", "quit", "readonly", "readwrite", "time",
	"multi", "exec", "discard", "watch", "unwatch",
	"client|setname", "client|getname", "client|id", "client|info", "client|setinfo", "client|no-touch", "client|help",
	"role", "sentinel", "subscribe", "psubscribe", "unsubscribe", "punsubscribe",
}

// withACL gives the table's commands their categories and key extractors.
func withACL(cmds []protocol.Command) []protocol.Command {
	roles := func(name string, cats []string) []string {
		for _, b := range basics {
			if b == name {
				return append(cats, "producer", "worker")
			}
		}
		return cats
	}
	for i := range cmds {
		c := &cmds[i]
		c.Categories = roles(c.Name, append(append([]string(nil), c.Categories...), sluiceCategories[c.Name]...))
		c.Subs = append([]protocol.Command(nil), c.Subs...) // the lists are shared between tables
		for j := range c.Subs {
			sc := &c.Subs[j]
			sc.Categories = roles(sc.Name, append([]string(nil), subCategories[sc.Name]...))
		}
		if k := keyArgs[c.Name]; k != nil {
			c.Keys = k
		}
	}
	return cmds
}

func aclCommand() protocol.Command {
	return protocol.Command{Name: "acl", Arity: -2, Flags: protocol.Admin | protocol.Redact, Handler: acl,
		Categories: []string{"admin"},
		Group:      "server", Summary: "Manage users and their rights.",
		Subs: []protocol.Command{
			{Name: "acl|setuser", Arity: -3, Summary: "Create or change a user.",
				Args: []protocol.Arg{str("username"), {Name: "rule", Type: "string", Optional: true, Multiple: true}}},
			{Name: "acl|deluser", Arity: -3, Summary: "Delete users and disconnect their clients.",
				Args: []protocol.Arg{{Name: "username", Type: "string", Multiple: true}}},
			{Name: "acl|getuser", Arity: 3, Summary: "Show a user's rules.", Args: []protocol.Arg{str("username")}},
			{Name: "acl|list", Arity: 2, Summary: "List the users as rules."},
			{Name: "acl|users", Arity: 2, Summary: "List the user names."},
			{Name: "acl|whoami", Arity: 2, Summary: "Name the connection's user."},
			{Name: "acl|cat", Arity: -2, Summary: "List the categories, or a category's commands.",
				Args: []protocol.Arg{optional(str("category"))}},
			{Name: "acl|log", Arity: -2, Summary: "Show or reset the log of refused commands and logins.",
				Args: []protocol.Arg{{Name: "operation", Type: "oneof", Optional: true, Args: []protocol.Arg{
					integerArg("count"), {Name: "reset", Type: "pure-token", Token: "RESET"}}}}},
			{Name: "acl|load", Arity: 2, Summary: "Replace the users with those of the --aclfile."},
			{Name: "acl|save", Arity: 2, Summary: "Write the users to the --aclfile."},
			{Name: "acl|help", Arity: 2, Summary: "Show ACL's subcommands."},
		}}
}

// ACL SETUSER | DELUSER | GETUSER | LIST | USERS | WHOAMI | CAT | LOG | HELP
func acl(c *protocol.Client, args [][]byte) (any, error) {
	srv := c.Server()
	a := srv.ACL()
	switch strings.ToLower(string(args[1])) {
	case "setuser":
		rules := make([]string, 0, len(args)-3)
		for _, r := range args[3:] {
			rules = append(rules, string(r))
		}
		if err := a.SetUser(string(args[2]), rules); err != nil {
			return nil, err
		}
		return protocol.OK, nil
	case "deluser":
		names := make([]string, 0, len(args)-2)
		for _, n := range args[2:] {
			names = append(names, string(n))
		}
		n, err := srv.DelUser(names)
		if err != nil {
			return nil, err
		}
		return int64(n), nil
	case "getuser":
		u := a.User(string(args[2]))
		if u == nil {
			return protocol.NullArray, nil
		}
		return u.GetUser(), nil
	case "list":
		var out []string
		for _, n := range a.Names() {
			if u := a.User(n); u != nil {
				out = append(out, u.Describe())
			}
		}
		return out, nil
	case "users":
		return a.Names(), nil
	case "whoami":
		return c.User().Name(), nil
	case "cat":
		if len(args) == 2 {
			return a.Categories(), nil
		}
		if len(args) > 3 {
			return nil, protocol.ErrSyntax
		}
		cmds, ok := a.InCategory(string(args[2]))
		if !ok {
			return nil, protocol.Error("ERR Unknown category '" + string(args[2]) + "'")
		}
		return cmds, nil
	case "log":
		return aclLog(a, args[2:])
	case "load", "save":
		f := srv.SaveACLFile
		if strings.EqualFold(string(args[1]), "load") {
			f = srv.LoadACLFile
		}
		if err := f(); err != nil {
			return nil, err
		}
		return protocol.OK, nil
	case "help":
		return []string{
			"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"SETUSER <username> [<rule> ...]", "    Create or change a user with the given rules.",
			"DELUSER <username> [<username> ...]", "    Delete users and disconnect their clients.",
			"GETUSER <username>", "    Show a user's rules.",
			"LIST", "    Show every user as rules.",
			"USERS", "    List the user names.",
			"WHOAMI", "    Name the connection's user.",
			"CAT [<category>]", "    List the categories, or the commands of one.",
			"LOG [<count> | RESET]", "    Show the refused commands and logins, or forget them.",
			"LOAD", "    Replace the users with those of the --aclfile.",
			"SAVE", "    Write the users to the --aclfile.",
		}, nil
	}
	return nil, protocol.UnknownSubcommand("acl", args[1])
}

func aclLog(a *protocol.ACL, args [][]byte) (any, error) {
	n := 10
	switch {
	case len(args) > 1:
		return nil, protocol.ErrSyntax
	case len(args) == 1 && strings.EqualFold(string(args[0]), "reset"):
		a.ResetLog()
		return protocol.OK, nil
	case len(args) == 1:
		v, err := strconv.Atoi(string(args[0]))
		if err != nil || v < 0 {
			return nil, protocol.Error("ERR value is out of range, must be positive")
		}
		n = v
	}
	now := time.Now()
	entries := a.Log(n)
	out := make([]any, 0, len(entries))
	for _, e := range entries {
		out = append(out, protocol.Map{
			"count", e.Count,
			"reason", e.Reason,
			"context", e.Context,
			"object", e.Object,
			"username", e.Username,
			"age-seconds", strconv.FormatFloat(now.Sub(e.Created).Seconds(), 'f', 3, 64),
			"client-info", e.ClientInfo,
			"entry-id", e.ID,
			"timestamp-created", e.Created.UnixMilli(),
			"timestamp-last-updated", e.Updated.UnixMilli(),
		})
	}
	return out, nil
}
