package commands

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/match"

	"sluice/backpressure"
	"sluice/protocol"
)

func serverCommands(e *Env) []protocol.Command {
	return []protocol.Command{
		{Name: "ping", Arity: -1, Flags: protocol.Fast | protocol.PubSub, Handler: ping,
			Group: "connection", Summary: "Check the connection.", Args: []protocol.Arg{optional(str("message"))}},
		{Name: "echo", Arity: 2, Flags: protocol.Fast, Handler: echo,
			Group: "connection", Summary: "Return the message.", Args: []protocol.Arg{str("message")}},
		{Name: "quit", Arity: -1, Flags: protocol.NoAuth | protocol.Fast | protocol.TxControl | protocol.PubSub, Handler: quit,
			Group: "connection", Summary: "Close the connection."},
		{Name: "select", Arity: 2, Flags: protocol.Fast, Handler: selectDB,
			Group: "connection", Summary: "Only database 0 exists.", Args: []protocol.Arg{integerArg("index")}},
		{Name: "hello", Arity: -1, Flags: protocol.NoAuth | protocol.Fast | protocol.Redact, Handler: e.hello,
			Group: "connection", Summary: "Handshake: choose RESP2 or RESP3, optionally AUTH and SETNAME.",
			Args: []protocol.Arg{{Name: "arguments", Type: "block", Optional: true, Args: []protocol.Arg{
				integerArg("protover"),
				{Name: "auth", Type: "block", Token: "AUTH", Optional: true, Args: []protocol.Arg{str("username"), str("password")}},
				opt("SETNAME", str("clientname"))}}}},
		{Name: "auth", Arity: -2, Flags: protocol.NoAuth | protocol.Fast | protocol.Redact, Handler: auth,
			Group: "connection", Summary: "Authenticate with the server password.",
			Args: []protocol.Arg{optional(str("username")), str("password")}},
		{Name: "readonly", Arity: 1, Flags: protocol.Fast, Handler: noCluster,
			Group: "connection", Summary: "Cluster only: answers as a Redis without cluster support."},
		{Name: "readwrite", Arity: 1, Flags: protocol.Fast, Handler: noCluster,
			Group: "connection", Summary: "Cluster only: answers as a Redis without cluster support."},
		{Name: "client", Arity: -2, Handler: client,
			Group: "connection", Summary: "Inspect and manage client connections.", Subs: clientSubs},
		{Name: "command", Arity: -1, Handler: command,
			Group: "server", Summary: "Describe the commands.", Subs: commandSubs},
		{Name: "config", Arity: -2, Flags: protocol.Admin, Handler: e.config,
			Group: "server", Summary: "Read the server's settings.", Subs: configSubs},
		{Name: "slowlog", Arity: -2, Flags: protocol.Admin, Handler: slowlog,
			Group: "server", Summary: "Read or reset the log of slow commands.", Subs: slowlogSubs},
		{Name: "monitor", Arity: 1, Flags: protocol.Admin | protocol.NoMulti, Handler: monitor,
			Group: "server", Summary: "Stream every command the server runs, as Redis prints it."},
		{Name: "info", Arity: -1, Handler: e.info,
			Group: "server", Summary: "Server facts and counters, as text.",
			Args: []protocol.Arg{{Name: "section", Type: "string", Optional: true, Multiple: true}}},
		scanCommand(e),
		{Name: "dbsize", Arity: 1, Flags: protocol.ReadOnly | protocol.Fast, Handler: e.dbsize,
			Group: "server", Summary: "Count the jobs held, terminal ones included."},
		{Name: "bgrewriteaof", Arity: 1, Flags: protocol.Admin, Handler: e.bgRewrite,
			Group: "server", Summary: "Compact the append-only log in the background."},
		{Name: "time", Arity: 1, Flags: protocol.Fast, Handler: serverTime,
			Group: "server", Summary: "The server's clock: seconds and microseconds."},
		{Name: "shutdown", Arity: -1, Flags: protocol.Admin, Handler: e.shutdown,
			Group: "server", Summary: "Stop the server gracefully, as SIGTERM does; the log is always flushed and fsynced.",
			Args: []protocol.Arg{{Name: "mode", Type: "oneof", Optional: true, Multiple: true, Args: []protocol.Arg{
				{Name: "nosave", Type: "pure-token", Token: "NOSAVE"}, {Name: "save", Type: "pure-token", Token: "SAVE"},
				{Name: "now", Type: "pure-token", Token: "NOW"}, {Name: "force", Type: "pure-token", Token: "FORCE"}}}}},
		{Name: "flushall", Arity: -1, Flags: protocol.Write, Handler: e.flushAll,
			Group: "server", Summary: "Drop every job, queue and policy.",
			Args: []protocol.Arg{{Name: "mode", Type: "oneof", Optional: true, Args: []protocol.Arg{
				{Name: "async", Type: "pure-token", Token: "ASYNC"}, {Name: "sync", Type: "pure-token", Token: "SYNC"}}}}},
		{Name: "flushdb", Arity: -1, Flags: protocol.Write, Handler: e.flushAll,
			Group: "server", Summary: "FLUSHALL: database 0 is the only one.",
			Args: []protocol.Arg{{Name: "mode", Type: "oneof", Optional: true, Args: []protocol.Arg{
				{Name: "async", Type: "pure-token", Token: "ASYNC"}, {Name: "sync", Type: "pure-token", Token: "SYNC"}}}}},
	}
}

// PING [message]
// A RESP2 client subscribed to channels gets ["pong", message], as in
// Redis, since its replies share the stream with messages.
func ping(c *protocol.Client, args [][]byte) (any, error) {
	if c.Subscriptions() > 0 && c.Proto() != protocol.RESP3 && len(args) <= 2 {
		msg := ""
		if len(args) == 2 {
			msg = string(args[1])
		}
		return []any{"pong", msg}, nil
	}
	switch len(args) {
	case 1:
		return protocol.SimpleString("PONG"), nil
	case 2:
		return args[1], nil
	}
	return nil, protocol.WrongArity("ping")
}

// MONITOR
func monitor(c *protocol.Client, args [][]byte) (any, error) {
	c.Monitor()
	return protocol.OK, nil
}

// ECHO message
func echo(c *protocol.Client, args [][]byte) (any, error) { return args[1], nil }

// QUIT
func quit(c *protocol.Client, args [][]byte) (any, error) {
	c.CloseAfterReply()
	return protocol.OK, nil
}

// SELECT index
func selectDB(c *protocol.Client, args [][]byte) (any, error) {
	n, err := integer(args[1])
	if err != nil {
		return nil, err
	}
	if n != 0 {
		return nil, protocol.ErrDBIndex
	}
	return protocol.OK, nil
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]
func (e *Env) hello(c *protocol.Client, args [][]byte) (any, error) {
	proto := c.Proto()
	if len(args) >= 2 {
		v, err := integer(args[1])
		if err != nil {
			return nil, protocol.Error("ERR Protocol version is not an integer or out of range")
		}
		if v != 2 && v != 3 {
			return nil, protocol.Error("NOPROTO unsupported protocol version")
		}
		proto = protocol.Proto(v)
	}
	var user, pass, name []byte
	var hasAuth, hasName bool
	for i := 2; i < len(args); i++ {
		more := len(args) - 1 - i
		switch {
		case keyword(args[i], "AUTH") && more >= 2:
			user, pass, hasAuth = args[i+1], args[i+2], true
			i += 2
		case keyword(args[i], "SETNAME") && more >= 1:
			name, hasName = args[i+1], true
			if err := validName(name, "Client names"); err != nil {
				return nil, err
			}
			i++
		default:
			return nil, protocol.Error("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
		}
	}
	if hasAuth {
		if err := c.Authenticate(string(user), string(pass)); err != nil {
			return nil, err
		}
	}
	if !c.Authenticated() {
		return nil, protocol.ErrHelloNoAuth
	}
	if hasName {
		c.SetName(string(name))
	}
	// As Redis: the protocol changes only once everything else has
	// succeeded, and the reply is already in the new one.
	c.SetProto(proto)
	return protocol.Map{
		"server", "sluice", "version", e.Version, "proto", int64(proto), "id", c.ID(),
		"mode", "standalone", "role", "master", "modules", []any{},
	}, nil
}

// AUTH [username] password
func auth(c *protocol.Client, args [][]byte) (any, error) {
	if len(args) > 3 {
		return nil, protocol.ErrSyntax
	}
	user, pass := "", string(args[1])
	if len(args) == 3 {
		user, pass = string(args[1]), string(args[2])
	}
	if err := c.Authenticate(user, pass); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// validName applies Redis's rule for client names and library info: no
// spaces, newlines or other special characters.
func validName(b []byte, what string) error {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return protocol.Error("ERR " + what + " cannot contain spaces, newlines or special characters.")
		}
	}
	return nil
}

var clientSubs = []protocol.Command{
	{Name: "client|setname", Arity: 3, Summary: "Name the connection.", Args: []protocol.Arg{str("connection-name")}},
	{Name: "client|getname", Arity: 2, Summary: "The connection's name."},
	{Name: "client|id", Arity: 2, Summary: "The connection's id."},
	{Name: "client|info", Arity: 2, Summary: "Describe this connection."},
	{Name: "client|setinfo", Arity: 4, Summary: "Record the client library's name or version.",
		Args: []protocol.Arg{{Name: "attr", Type: "oneof", Args: []protocol.Arg{
			{Name: "libname", Type: "string", Token: "LIB-NAME"}, {Name: "libver", Type: "string", Token: "LIB-VER"}}}}},
	{Name: "client|list", Arity: -2, Summary: "Describe every connection.",
		Args: []protocol.Arg{{Name: "client-id", Type: "integer", Token: "ID", Optional: true, Multiple: true}}},
	{Name: "client|kill", Arity: -3, Summary: "Close connections by id or address.",
		Args: []protocol.Arg{{Name: "filter", Type: "oneof", Args: []protocol.Arg{
			str("ip:port"),
			{Name: "new-format", Type: "oneof", Multiple: true, Args: []protocol.Arg{
				{Name: "client-id", Type: "integer", Token: "ID", Optional: true},
				{Name: "ip:port", Type: "string", Token: "ADDR", Optional: true},
				{Name: "ip:port", Type: "string", Token: "LADDR", Optional: true},
				{Name: "yes/no", Type: "string", Token: "SKIPME", Optional: true}}}}}}},
	{Name: "client|no-evict", Arity: 3, Summary: "Keep this client out of maxmemory-clients evictions (ON), or not (OFF).",
		Args: []protocol.Arg{{Name: "enabled", Type: "oneof", Args: []protocol.Arg{
			{Name: "on", Type: "pure-token", Token: "ON"}, {Name: "off", Type: "pure-token", Token: "OFF"}}}}},
	{Name: "client|no-touch", Arity: 3, Summary: "Accepted, as Redis does: sluice keeps no access times.",
		Args: []protocol.Arg{{Name: "enabled", Type: "oneof", Args: []protocol.Arg{
			{Name: "on", Type: "pure-token", Token: "ON"}, {Name: "off", Type: "pure-token", Token: "OFF"}}}}},
	{Name: "client|help", Arity: 2, Summary: "Show CLIENT's subcommands."},
}

// READONLY, READWRITE: cluster commands, which clients send only in
// cluster mode; Redis without cluster support answers this.
func noCluster(c *protocol.Client, args [][]byte) (any, error) {
	return nil, protocol.Error("ERR This instance has cluster support disabled")
}

// CLIENT SETNAME|GETNAME|ID|INFO|SETINFO|NO-EVICT|NO-TOUCH|LIST|KILL|HELP ... (the
// dispatcher has checked the arity in clientSubs)
func client(c *protocol.Client, args [][]byte) (any, error) {
	switch strings.ToLower(string(args[1])) {
	case "setname":
		if err := validName(args[2], "Client names"); err != nil {
			return nil, err
		}
		c.SetName(string(args[2]))
		return protocol.OK, nil
	case "getname":
		return nullable(c.Name()), nil
	case "id":
		return c.ID(), nil
	case "info":
		for _, ci := range c.Server().Clients() {
			if ci.ID == c.ID() {
				return protocol.Verbatim(clientLine(ci)), nil
			}
		}
		return protocol.Verbatim(""), nil
	case "setinfo":
		v := string(args[3])
		switch {
		case keyword(args[2], "LIB-NAME"):
			if err := validName(args[3], "lib-name"); err != nil {
				return nil, err
			}
			c.SetLib(&v, nil)
		case keyword(args[2], "LIB-VER"):
			if err := validName(args[3], "lib-ver"); err != nil {
				return nil, err
			}
			c.SetLib(nil, &v)
		default:
			return nil, protocol.Error("ERR Unrecognized option '" + string(args[2]) + "'")
		}
		return protocol.OK, nil
	case "no-evict", "no-touch":
		// NO-TOUCH changes nothing here (no key access times); NO-EVICT
		// ON keeps the client out of --maxmemory-clients evictions, as in
		// Redis.
		on := keyword(args[2], "ON")
		if !on && !keyword(args[2], "OFF") {
			return nil, protocol.ErrSyntax
		}
		if keyword(args[1], "NO-EVICT") {
			c.SetNoEvict(on)
		}
		return protocol.OK, nil
	case "list":
		return clientList(c, args)
	case "kill":
		return clientKill(c, args)
	case "help":
		return []string{
			"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GETNAME", "    Return the name of the current connection.",
			"ID", "    Return the ID of the current connection.",
			"INFO", "    Return information about the current client connection.",
			"KILL <ip:port> | [ID <id>] [ADDR <ip:port>] [LADDR <ip:port>] [SKIPME yes|no]",
			"    Kill connections.",
			"LIST [ID <id> [<id> ...]]", "    Return information about client connections.",
			"NO-EVICT (ON|OFF)", "    Keep this client out of maxmemory-clients evictions, or not.",
			"NO-TOUCH (ON|OFF)", "    Accepted; sluice keeps no key access times.",
			"SETINFO <LIB-NAME|LIB-VER> <value>", "    Record the client library's name or version.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
		}, nil
	}
	return nil, protocol.UnknownSubcommand("client", args[1])
}

func clientLine(ci protocol.ClientInfo) string {
	flags := "N"
	if ci.Blocked {
		flags = "b"
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d idle=%d flags=%s db=0 cmd=%s user=%s lib-name=%s lib-ver=%s\n",
		ci.ID, ci.Addr, ci.LAddr, ci.Name, int64(ci.Age/time.Second), int64(ci.Idle/time.Second), flags, ci.Cmd, ci.User, ci.LibName, ci.LibVer)
}

// CLIENT LIST [TYPE normal] [ID id [id ...]]
func clientList(c *protocol.Client, args [][]byte) (any, error) {
	var ids map[int64]bool
	for i := 2; i < len(args); i++ {
		switch {
		case keyword(args[i], "TYPE") && i+1 < len(args):
			if !keyword(args[i+1], "normal") {
				return nil, protocol.Error("ERR Unknown client type '" + string(args[i+1]) + "'")
			}
			i++
		case keyword(args[i], "ID") && i+1 < len(args):
			ids = make(map[int64]bool)
			for i++; i < len(args); i++ {
				id, err := positive(args[i])
				if err != nil {
					return nil, protocol.Error("ERR Invalid client ID")
				}
				ids[id] = true
			}
		default:
			return nil, protocol.ErrSyntax
		}
	}
	var b strings.Builder
	for _, ci := range c.Server().Clients() {
		if ids == nil || ids[ci.ID] {
			b.WriteString(clientLine(ci))
		}
	}
	return protocol.Verbatim(b.String()), nil
}

// CLIENT KILL ip:port
// CLIENT KILL [ID id] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no] ...
func clientKill(c *protocol.Client, args [][]byte) (any, error) {
	if len(args) == 3 {
		addr := string(args[2])
		n := c.Server().Kill(func(ci protocol.ClientInfo) bool { return ci.Addr == addr }, c.ID())
		if addr == clientAddr(c) {
			n++
			c.CloseAfterReply() // the reply goes out first, as in Redis
		}
		if n == 0 {
			return nil, protocol.ErrNoSuchClient
		}
		return protocol.OK, nil
	}
	var id int64
	var addr, laddr string
	skipMe := true
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return nil, protocol.ErrSyntax
		}
		v := args[i+1]
		switch {
		case keyword(args[i], "ID"):
			n, err := positive(v)
			if err != nil {
				return nil, protocol.Error("ERR client-id should be greater than 0")
			}
			id = n
		case keyword(args[i], "ADDR"):
			addr = string(v)
		case keyword(args[i], "LADDR"):
			laddr = string(v)
		case keyword(args[i], "SKIPME"):
			switch {
			case keyword(v, "yes"):
				skipMe = true
			case keyword(v, "no"):
				skipMe = false
			default:
				return nil, protocol.ErrSyntax
			}
		case keyword(args[i], "USER"):
			if string(v) != "default" {
				return int64(0), nil
			}
		default:
			return nil, protocol.ErrSyntax
		}
	}
	var skip int64
	if skipMe {
		skip = c.ID()
	}
	killedSelf := false
	n := c.Server().Kill(func(ci protocol.ClientInfo) bool {
		ok := (id == 0 || ci.ID == id) && (addr == "" || ci.Addr == addr) && (laddr == "" || ci.LAddr == laddr)
		if ok && ci.ID == c.ID() {
			killedSelf = true
		}
		return ok && ci.ID != c.ID()
	}, skip)
	if killedSelf && !skipMe {
		n++
		c.CloseAfterReply()
	}
	return int64(n), nil
}

func clientAddr(c *protocol.Client) string {
	for _, ci := range c.Server().Clients() {
		if ci.ID == c.ID() {
			return ci.Addr
		}
	}
	return ""
}

// TIME
func serverTime(c *protocol.Client, args [][]byte) (any, error) {
	now := time.Now()
	return []any{strconv.FormatInt(now.Unix(), 10), strconv.FormatInt(int64(now.Nanosecond()/1000), 10)}, nil
}

// DBSIZE
func (e *Env) dbsize(c *protocol.Client, args [][]byte) (any, error) {
	return e.Store.Len(), nil
}

// BGREWRITEAOF
func (e *Env) bgRewrite(c *protocol.Client, args [][]byte) (any, error) {
	if e.Rewrite == nil {
		return nil, protocol.Error("ERR the append-only log is off (--appendonly no)")
	}
	if err := e.Rewrite(); err != nil { // e.g. one is in progress
		return nil, protocol.Error("ERR " + err.Error())
	}
	// The outcome shows in INFO persistence.
	return protocol.SimpleString("Background append only file rewriting started"), nil
}

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: the same graceful stop as SIGTERM
// (blocked reservations answered with null, connections drained, the log
// written and fsynced). The modifiers are accepted for redis-cli's sake and
// change nothing: there is no snapshot to save or skip, and the log is
// always flushed. Redis closes the connection without a reply; sluice
// replies +OK first, then closes it.
func (e *Env) shutdown(c *protocol.Client, args [][]byte) (any, error) {
	for _, a := range args[1:] {
		switch {
		case keyword(a, "NOSAVE"), keyword(a, "SAVE"), keyword(a, "NOW"), keyword(a, "FORCE"):
		case keyword(a, "ABORT"):
			return nil, protocol.Error("ERR No shutdown in progress.")
		default:
			return nil, protocol.ErrSyntax
		}
	}
	if e.Shutdown == nil {
		return nil, protocol.Error("ERR SHUTDOWN is not available on this server")
	}
	e.Shutdown()
	c.CloseAfterReply()
	return protocol.OK, nil
}

// FLUSHALL [ASYNC|SYNC], and FLUSHDB: sluice has database 0 only.
func (e *Env) flushAll(c *protocol.Client, args [][]byte) (any, error) {
	if len(args) > 2 || (len(args) == 2 && !keyword(args[1], "ASYNC") && !keyword(args[1], "SYNC")) {
		return nil, protocol.ErrSyntax
	}
	if err := e.Store.Flush(e.now(c)); err != nil {
		return nil, err // MISCONF: nothing was flushed
	}
	return protocol.OK, nil
}

var configSubs = []protocol.Command{
	{Name: "config|get", Arity: -3, Summary: "Read settings matching glob patterns.",
		Args: []protocol.Arg{{Name: "parameter", Type: "string", Multiple: true}}},
	{Name: "config|set", Arity: -4, Flags: protocol.Admin, Summary: "Change settings at run time: the TLS certificate files and maxmemory-share.",
		Args: []protocol.Arg{{Name: "parameter", Type: "string"}, {Name: "value", Type: "string"}}},
	{Name: "config|help", Arity: 2, Summary: "Show CONFIG's subcommands."},
}

// CONFIG GET pattern [pattern ...] | HELP (the dispatcher has checked the
// arity in configSubs)
func (e *Env) config(c *protocol.Client, args [][]byte) (any, error) {
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "get":
		out := protocol.Map{} // a map in RESP3, as Redis 7's
		e.settingsMu.Lock()
		defer e.settingsMu.Unlock()
		for _, s := range e.Settings {
			for _, p := range args[2:] {
				if match.Match(s.Name, strings.ToLower(string(p))) {
					out = append(out, s.Name, s.Value)
					break
				}
			}
		}
		return out, nil
	case "set":
		return e.configSet(args[2:])
	case "rewrite", "resetstat":
		return nil, protocol.Error("ERR CONFIG " + strings.ToUpper(sub) + " is not supported: settings come from flags, SLUICE_* variables or the config file; restart to change them")
	case "help":
		return []string{
			"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
			"SET <directive> <value> [<directive> <value> ...]", "    Change settings while running, all of them or none: the TLS certificate files and maxmemory-share.",
		}, nil
	}
	return nil, protocol.UnknownSubcommand("config", args[1])
}

// infoSections are INFO's sections in order; commandstats is shown only
// when asked for by name or with all/everything, as in Redis, and keyspace
// comes last, as in Redis.
var infoSections = []string{"server", "clients", "memory", "persistence", "stats", "replication", "queues", "policies", "cron", "commandstats", "keyspace"}

// INFO [section ...]
func (e *Env) info(c *protocol.Client, args [][]byte) (any, error) {
	want := infoWanted(args[1:])
	var b bytes.Buffer
	srv := c.Server()
	now := e.now(c)
	for _, name := range infoSections {
		if !want[name] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + strings.ToUpper(name[:1]) + name[1:] + "\r\n")
		lines := e.infoLines(name, srv, now)
		if name == "replication" {
			lines = e.infoReplication(c)
		}
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	return protocol.Verbatim(b.String()), nil
}

// infoWanted is the set of sections INFO's arguments name: none, or
// "default", is every section but commandstats; "all" or "everything" is
// every one.
func infoWanted(names [][]byte) map[string]bool {
	want := map[string]bool{}
	for _, a := range names {
		want[strings.ToLower(string(a))] = true
	}
	if len(names) == 0 || want["default"] {
		for _, s := range infoSections {
			want[s] = want[s] || s != "commandstats"
		}
	}
	if want["all"] || want["everything"] {
		for _, s := range infoSections {
			want[s] = true
		}
	}
	return want
}

// infoLines are the "name:value" lines of one INFO section.
func (e *Env) infoLines(section string, srv *protocol.Server, now int64) []string {
	switch section {
	case "server":
		return e.infoServer(srv)
	case "clients":
		st := srv.Stats()
		return []string{
			"connected_clients:" + strconv.Itoa(st.Connected),
			"blocked_clients:" + strconv.Itoa(st.Blocked),
			"jobwait_clients:" + strconv.FormatInt(e.jobWaiting(), 10),
			"maxclients:" + strconv.Itoa(srv.Config().MaxClients),
			"client_recent_max_input_buffer:" + strconv.FormatInt(st.MaxInputBuffer, 10),
			"client_recent_max_output_buffer:" + strconv.FormatInt(st.MaxOutputBuffer, 10)}
	case "memory":
		return e.infoMemory(srv)
	case "persistence":
		if e.Persistence == nil {
			return []string{"loading:0", "aof_enabled:0"}
		}
		return appendSettings([]string{"loading:0"}, e.Persistence())
	case "stats":
		// Keys held (idem.go): unique keys, and idempotency keys
		// remembered, expired ones not yet forgotten included.
		return append(e.infoStats(srv), "unique_keys:"+strconv.Itoa(e.Store.UniqueKeys()),
			"idempotency_keys:"+strconv.Itoa(e.Store.IdempotencyKeys()),
			"waiting_jobs:"+strconv.FormatInt(e.Store.WaitingJobs(), 10), // deps.go
			"open_batches:"+strconv.Itoa(e.Store.OpenBatches()))          // batch.go
	case "queues":
		return e.infoQueues(now)
	case "policies":
		return e.infoPolicies(now)
	case "cron":
		return []string{"cron_entries:" + strconv.Itoa(e.Store.CronEntries()),
			"cron_fired:" + strconv.FormatInt(e.Store.CronFired(), 10)}
	case "commandstats":
		return infoCommandStats(srv)
	case "keyspace":
		// Redis's line for database 0, which redis-cli --stat sums;
		// like Redis, none while there are no keys (jobs).
		if n := e.Store.Len(); n > 0 {
			return []string{"db0:keys=" + strconv.FormatInt(n, 10) + ",expires=0,avg_ttl=0"}
		}
	}
	return nil
}

// appendSettings adds "name:value" lines to lines.
func appendSettings(lines []string, settings []Setting) []string {
	for _, s := range settings {
		lines = append(lines, s.Name+":"+s.Value)
	}
	return lines
}

func (e *Env) infoStats(srv *protocol.Server) []string {
	st := srv.Stats()
	lines := []string{
		"total_connections_received:" + strconv.FormatInt(st.TotalConnections, 10),
		"total_commands_processed:" + strconv.FormatInt(st.TotalCommands, 10),
		"rejected_connections:" + strconv.FormatInt(st.RejectedConnections, 10),
		"evicted_clients:" + strconv.FormatInt(st.EvictedClients, 10),
		"total_net_input_bytes:" + strconv.FormatInt(st.NetInputBytes, 10),
		"total_net_output_bytes:" + strconv.FormatInt(st.NetOutputBytes, 10),
		"slowlog_len:" + strconv.Itoa(srv.SlowlogLen()),
		"jobs:" + strconv.FormatInt(e.Store.Len(), 10),
		"dead_letters:" + strconv.FormatInt(e.Store.DeadLetters(), 10),
	}
	if e.JobStats != nil {
		lines = appendSettings(lines, e.JobStats())
	}
	return lines
}

func (e *Env) infoQueues(now int64) []string {
	qs := e.Store.Queues(now)
	lines := []string{"queues:" + strconv.Itoa(len(qs))}
	for _, q := range qs {
		s, err := e.Store.QueueStats(now, q)
		if err != nil {
			continue // the queue vanished meanwhile
		}
		lines = append(lines, fmt.Sprintf("queue_%s:status=%s,queued=%d,scheduled=%d,reserved=%d,running=%d,retry_pending=%d,failed=%d,paused=%d,blocked_concurrency=%d,blocked_ratelimit=%d,pushed_total=%d,succeeded_total=%d,failed_total=%d,expired=%d",
			infoName(q), s.Status, s.Queued, s.Scheduled, s.Reserved, s.Running, s.RetryPending, s.Failed, boolInt(s.Paused),
			s.BlockedConcurrency, s.BlockedRateLimit, s.PushedTotal, s.SucceededTotal, s.FailedTotal, s.Expired))
	}
	return lines
}

func (e *Env) infoPolicies(now int64) []string {
	ps := e.Store.Policies(now)
	lines := []string{"policies:" + strconv.Itoa(len(ps))}
	for _, p := range ps {
		if p.Kind == backpressure.Throttle {
			lines = append(lines, fmt.Sprintf("policy_throttle_%s:until=%d,waiting=%d", infoName(p.Key), p.NextFreeAt, p.Waiting))
			continue
		}
		if p.Kind == backpressure.Breaker {
			lines = append(lines, fmt.Sprintf("policy_breaker_%s:state=%s,failures=%d,threshold=%d,window=%d,cooldown=%d,open_until=%d,probes=%d,probes_out=%d,probes_ok=%d,waiting=%d",
				infoName(p.Key), p.State, p.Active, p.Limit, p.Period, p.Cooldown, p.NextFreeAt, p.Probes, p.ProbesOut, p.ProbesOK, p.Waiting))
			continue
		}
		l := fmt.Sprintf("policy_%s_%s:limit=%d,active=%d,waiting=%d", p.Kind, infoName(p.Key), p.Limit, p.Active, p.Waiting)
		if p.Period > 0 {
			l += fmt.Sprintf(",period=%d,next_free_at=%d", p.Period, p.NextFreeAt)
		}
		lines = append(lines, l)
	}
	return lines
}

func infoCommandStats(srv *protocol.Server) []string {
	var lines []string
	for _, cs := range srv.CommandStats() {
		perCall := float64(cs.Usec) / float64(cs.Calls)
		lines = append(lines, fmt.Sprintf("cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=0,failed_calls=%d",
			cs.Name, cs.Calls, cs.Usec, perCall, cs.Failed))
	}
	return lines
}

func (e *Env) infoServer(srv *protocol.Server) []string {
	uptime := time.Since(srv.Started())
	lines := []string{
		"sluice_version:" + e.Version,
		"redis_version:7.0.0",
		"redis_mode:standalone",
		"os:" + runtime.GOOS + " " + runtime.GOARCH,
		"arch_bits:" + strconv.Itoa(strconv.IntSize),
		"go_version:" + runtime.Version(),
		"process_id:" + strconv.Itoa(os.Getpid()),
		"uptime_in_seconds:" + strconv.FormatInt(int64(uptime/time.Second), 10),
		"uptime_in_days:" + strconv.FormatInt(int64(uptime/(24*time.Hour)), 10),
	}
	for _, s := range e.Info {
		lines = append(lines, s.Name+":"+s.Value)
	}
	return lines
}

// residentBytes is the process's resident set size, from /proc/self/statm
// (Linux); 0 where that cannot be read.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// infoMemory reports the process's heap next to the memory estimate that
// --maxmemory limits (used_memory_dataset, see store.Memory) and its parts,
// and the client buffers that --maxmemory-clients limits.
func (e *Env) infoMemory(srv *protocol.Server) []string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := e.Store.Memory()
	jobs, used := m.Jobs, m.Used()
	// Memory the runtime holds from the system, less what it gave back:
	// address space it keeps mapped but released is not memory in use.
	sys := ms.Sys - ms.HeapReleased
	rss := residentBytes()
	lines := []string{
		"used_memory:" + strconv.FormatUint(ms.HeapAlloc, 10),
		"used_memory_human:" + humanBytes(int64(ms.HeapAlloc)),
		"used_memory_sys:" + strconv.FormatUint(sys, 10),
		"used_memory_sys_human:" + humanBytes(int64(sys)),
		"used_memory_rss:" + strconv.FormatInt(rss, 10),
		"used_memory_rss_human:" + humanBytes(rss),
		"used_memory_dataset:" + strconv.FormatInt(used, 10),
		"used_memory_dataset_human:" + humanBytes(used),
		"used_memory_jobs:" + strconv.FormatInt(jobs, 10),
		"used_memory_jobs_human:" + humanBytes(jobs),
		"used_memory_queues:" + strconv.FormatInt(m.Queues, 10),
		"used_memory_policies:" + strconv.FormatInt(m.Policies, 10),
		"used_memory_tokens:" + strconv.FormatInt(m.Tokens, 10),
		"used_memory_idempotency:" + strconv.FormatInt(m.Keys, 10),
		"used_memory_cron:" + strconv.FormatInt(m.Cron, 10),
		"used_memory_jobscan:" + strconv.FormatInt(m.Scan, 10),
		"used_memory_deps:" + strconv.FormatInt(m.Deps, 10),
		"used_memory_batches:" + strconv.FormatInt(m.Batches, 10),
		"maxmemory:" + strconv.FormatInt(e.MaxMemory, 10),
		"maxmemory_human:" + humanBytes(e.MaxMemory),
		"maxmemory_policy:noeviction",
		"mem_clients_normal:" + strconv.FormatInt(srv.Stats().ClientBuffers, 10),
		"maxmemory_clients:" + strconv.FormatInt(srv.Config().MaxMemoryClients, 10),
	}
	// One line per --maxmemory-share, by pattern (escaped as queue names
	// are in INFO queues).
	for _, s := range e.Store.Shares() {
		lines = append(lines, "maxmemory_share_"+infoName(s.Pattern)+":used="+strconv.FormatInt(s.Used, 10)+
			",limit="+strconv.FormatInt(s.Bytes, 10))
	}
	return lines
}

// humanBytes prints a size as Redis's *_human fields do: 1.50K, 2.00M.
func humanBytes(n int64) string {
	const units = "KMGTP"
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(f, 'f', 2, 64) + units[i:i+1]
}

var slowlogSubs = []protocol.Command{
	{Name: "slowlog|get", Arity: -2, Summary: "The most recent slow commands, newest first.", Args: []protocol.Arg{optional(integerArg("count"))}},
	{Name: "slowlog|len", Arity: 2, Summary: "The number of entries in the slow log."},
	{Name: "slowlog|reset", Arity: 2, Summary: "Empty the slow log."},
	{Name: "slowlog|help", Arity: 2, Summary: "Show SLOWLOG's subcommands."},
}

// SLOWLOG GET [count] | LEN | RESET | HELP (the dispatcher has checked the
// arity in slowlogSubs)
func slowlog(c *protocol.Client, args [][]byte) (any, error) {
	srv := c.Server()
	switch strings.ToLower(string(args[1])) {
	case "get":
		if len(args) > 3 {
			return nil, protocol.SubcommandSyntaxError("slowlog", args[1])
		}
		n := int64(10)
		if len(args) == 3 {
			var err error
			if n, err = integer(args[2]); err != nil || n < -1 {
				return nil, protocol.Error("ERR count should be greater than or equal to -1")
			}
		}
		var out []any
		for _, e := range srv.Slowlog(int(min(n, 1<<20))) {
			out = append(out, []any{e.ID, e.Time, e.Micros, e.Args, e.Addr, e.Name})
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case "len":
		return int64(srv.SlowlogLen()), nil
	case "reset":
		srv.SlowlogReset()
		return protocol.OK, nil
	case "help":
		return []string{
			"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET [<count>]", "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
			"    Entries are made of:", "    id, timestamp, time in microseconds, arguments array, client IP and port,", "    client name",
			"LEN", "    Return the length of the slowlog.",
			"RESET", "    Reset the slowlog.",
		}, nil
	}
	return nil, protocol.UnknownSubcommand("slowlog", args[1])
}

// CONFIG SET name value [name value ...]: as Redis 7, all or nothing; a
// name given twice is an error. Only the settings in e.Settable change
// while serving (the TLS certificate files, reloaded at once, and
// maxmemory-share); the rest come from the flags, variables or file.
func (e *Env) configSet(args [][]byte) (any, error) {
	if len(args)%2 != 0 {
		return nil, protocol.Error("ERR wrong number of arguments for 'config|set' command")
	}
	var changes []Setting
	for i := 0; i < len(args); i += 2 {
		name := strings.ToLower(string(args[i]))
		for _, c := range changes {
			if c.Name == name {
				return nil, protocol.Error("ERR CONFIG SET failed - duplicate parameter '" + name + "'")
			}
		}
		known, settable := false, false
		for i := range e.Settings { // names only: values may change meanwhile
			known = known || e.Settings[i].Name == name
		}
		for _, s := range e.Settable {
			settable = settable || s == name
		}
		switch {
		case !known:
			return nil, protocol.Error("ERR Unknown option or number of arguments for CONFIG SET - '" + infoText(name) + "'")
		case !settable || e.ConfigSet == nil:
			msg := "ERR CONFIG SET " + name + " is not supported while running: set it with a flag, a SLUICE_* variable or the config file and restart"
			if len(e.Settable) > 0 && e.ConfigSet != nil {
				msg += " (CONFIG SET changes " + strings.Join(e.Settable, ", ") + ")"
			}
			return nil, protocol.Error(msg)
		}
		changes = append(changes, Setting{Name: name, Value: string(args[i+1])})
	}
	if err := e.ConfigSet(changes); err != nil {
		return nil, protocol.Error("ERR CONFIG SET failed: " + infoText(err.Error()))
	}
	return protocol.OK, nil
}

// SetSetting changes a setting's value as CONFIG GET shows it.
func (e *Env) SetSetting(name, value string) {
	e.settingsMu.Lock()
	defer e.settingsMu.Unlock()
	for i := range e.Settings {
		if e.Settings[i].Name == name {
			e.Settings[i].Value = value
		}
	}
}

// infoText keeps a message one line.
func infoText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
