package protocol

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/tidwall/match"
)

// Users and their rights, as Redis's ACLs (docs/commands.md, "ACL"). A
// user's rules are an immutable value behind an atomic pointer: ACL SETUSER
// builds new rules and swaps them in, so connections logged in as the user
// see the change at their next command, and the dispatcher's check for a
// user with every right is one load and one flag test.

// ACLLogMaxLen is how many entries ACL LOG keeps, as Redis's
// acllog-max-len default.
const ACLLogMaxLen = 128

// User is a named set of rights a client authenticates as.
type User struct {
	acl   *ACL
	name  string
	rules atomic.Pointer[aclRules]
	// clients is how many connections are authenticated as the user
	// (ACL.logins); protected by acl.mu.
	clients int64
}

// Name is the user's name.
func (u *User) Name() string { return u.name }

// aclRules is what a user may do. Never changed once published.
type aclRules struct {
	enabled  bool
	nopass   bool
	hashes   []string // SHA-256 of the passwords, lower-case hex, in the order added
	allowed  map[string]bool
	allCmds  bool     // allowed holds every command of the table
	allKeys  bool     // every queue name and policy key
	patterns []string // else the queue names and policy keys allowed, as globs
	all      bool     // allCmds && allKeys: the dispatcher's fast path
	// maxClients bounds the connections authenticated as the user at once
	// (rule maxclients=N); 0: no bound.
	maxClients int64
}

func (r *aclRules) clone() *aclRules {
	n := *r
	n.hashes = append([]string(nil), r.hashes...)
	n.patterns = append([]string(nil), r.patterns...)
	n.allowed = make(map[string]bool, len(r.allowed))
	for k, v := range r.allowed {
		n.allowed[k] = v
	}
	return &n
}

// ACL holds the users and the log of refusals.
type ACL struct {
	table  *Table
	def    *User
	rights []right // every command and listed subcommand, in table order
	// defStart is the default user as --requirepass made it.
	defStart *aclRules

	mu    sync.Mutex // protects users, log, logins and every User.clients
	users map[string]*User
	log   []*ACLLogEntry // newest first
	logID int64
	// logins is the user each connection that authenticated is counted
	// against (maxclients=N); a connection that never did is in no count.
	logins map[*Client]*User
	// nLogins is len(logins), read without mu so that a connection that
	// never authenticated closes without taking it.
	nLogins atomic.Int64
}

func newACL(table *Table, requirepass string) *ACL {
	a := &ACL{table: table, users: map[string]*User{}}
	for _, c := range table.list {
		a.rights = append(a.rights, right{c.Name, c.ACLCategories()})
		for i := range c.Subs {
			sc := &c.Subs[i]
			cats := c.ACLCategories()
			if len(sc.Categories) > 0 {
				cats = sc.ACLCategories()
			}
			a.rights = append(a.rights, right{sc.Name, cats})
		}
	}
	r := &aclRules{enabled: true, allKeys: true}
	if requirepass == "" {
		r.nopass = true
	} else {
		r.hashes = []string{hashPassword(requirepass)}
	}
	a.setAllCommands(r, true)
	a.seal(r)
	a.defStart = r
	a.def = &User{acl: a, name: "default"}
	a.def.rules.Store(r)
	a.users["default"] = a.def
	return a
}

func hashPassword(p string) string {
	h := sha256.Sum256([]byte(p))
	return hex.EncodeToString(h[:])
}

// ACL is the server's users and rights.
func (s *Server) ACL() *ACL { return s.acl }

// User finds a user by name, or nil.
func (a *ACL) User(name string) *User {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.users[name]
}

// Names lists the users, sorted.
func (a *ACL) Names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.users))
	for n := range a.users {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// right is a command, or a subcommand ("client|kill"), that a user may be
// allowed to run, with its categories: a subcommand's own if the table
// gives it some, else its command's.
type right struct {
	name string
	cats []string
}

func (a *ACL) setAllCommands(r *aclRules, on bool) {
	r.allowed = make(map[string]bool, len(a.rights))
	if on {
		for _, x := range a.rights {
			r.allowed[x.name] = true
		}
	}
}

func (a *ACL) seal(r *aclRules) {
	r.allCmds = true
	for _, x := range a.rights {
		if !r.allowed[x.name] {
			r.allCmds = false
			break
		}
	}
	r.all = r.allCmds && r.allKeys
}

// Categories lists every category a command of the table belongs to,
// sorted, without the '@'.
func (a *ACL) Categories() []string {
	seen := map[string]bool{"all": true}
	for _, x := range a.rights {
		for _, cat := range x.cats {
			seen[cat] = true
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// InCategory lists the commands and subcommands of a category (no '@'),
// sorted, or false when none has it.
func (a *ACL) InCategory(cat string) ([]string, bool) {
	cat = strings.ToLower(cat)
	var out []string
	for _, x := range a.rights {
		if cat == "all" || hasString(x.cats, cat) {
			out = append(out, x.name)
		}
	}
	sort.Strings(out)
	return out, len(out) > 0
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ACLCategories are the command's categories: those its flags give, as
// in Redis (write, read, fast or slow, admin and dangerous, blocking,
// connection and transaction by group), and the table's own (Categories).
func (c *Command) ACLCategories() []string {
	var out []string
	add := func(s string) {
		if !hasString(out, s) {
			out = append(out, s)
		}
	}
	if c.Flags&Write != 0 {
		add("write")
	}
	if c.Flags&ReadOnly != 0 {
		add("read")
	}
	if c.Flags&Fast != 0 {
		add("fast")
	} else {
		add("slow")
	}
	if c.Flags&Admin != 0 {
		add("admin")
		add("dangerous")
	}
	if c.Flags&Blocking != 0 {
		add("blocking")
	}
	switch c.Group {
	case "connection":
		add("connection")
	case "transactions":
		add("transaction")
	}
	for _, s := range c.Categories {
		add(s)
	}
	return out
}

// SetUser creates or changes a user by applying rules in order, as ACL
// SETUSER: a rule that does not parse changes nothing and is named in the
// error. A new user starts off, with no password, no commands and no
// queues.
func (a *ACL) SetUser(name string, rules []string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n\"'") {
		return Error("ERR Usernames must be non-empty and contain no spaces or quotes")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.users[name]
	var r *aclRules
	if u != nil {
		r = u.rules.Load().clone()
	} else {
		r = &aclRules{}
		a.setAllCommands(r, false)
	}
	for _, rule := range rules {
		if err := a.apply(r, rule); err != nil {
			return Error("ERR Error in ACL SETUSER modifier '" + ruleText(rule) + "': " + err.Error())
		}
	}
	a.seal(r)
	if u == nil {
		u = &User{acl: a, name: name}
		a.users[name] = u
	}
	u.rules.Store(r)
	return nil
}

// ruleText keeps an error line one line.
func ruleText(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

type ruleError string

func (e ruleError) Error() string { return string(e) }

const errRuleSyntax = ruleError("Syntax error")

func (a *ACL) apply(r *aclRules, rule string) error {
	switch strings.ToLower(rule) {
	case "on":
		r.enabled = true
		return nil
	case "off":
		r.enabled = false
		return nil
	case "nopass":
		r.nopass, r.hashes = true, nil
		return nil
	case "resetpass":
		r.nopass, r.hashes = false, nil
		return nil
	case "allkeys":
		r.allKeys, r.patterns = true, nil
		return nil
	case "resetkeys":
		r.allKeys, r.patterns = false, nil
		return nil
	case "allcommands":
		a.setAllCommands(r, true)
		return nil
	case "nocommands":
		a.setAllCommands(r, false)
		return nil
	case "allchannels", "resetchannels":
		return nil // sluice has no channels
	case "reset":
		r.enabled, r.nopass, r.hashes, r.allKeys, r.patterns, r.maxClients = false, false, nil, false, nil, 0
		a.setAllCommands(r, false)
		return nil
	}
	if rule == "" {
		return errRuleSyntax
	}
	if v, ok := cutPrefixFold(rule, "maxclients="); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > maxUserClients || strconv.FormatInt(n, 10) != v {
			return ruleError("maxclients= takes a number of connections from 0 (no limit) to 2147483647")
		}
		r.maxClients = n
		return nil
	}
	body := rule[1:]
	switch rule[0] {
	case '>':
		r.nopass = false
		if h := hashPassword(body); !hasString(r.hashes, h) {
			r.hashes = append(r.hashes, h)
		}
		return nil
	case '<':
		return removeHash(r, hashPassword(body))
	case '#', '!':
		if len(body) != 64 || strings.ToLower(body) != body {
			return ruleError("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")
		}
		if _, err := hex.DecodeString(body); err != nil {
			return ruleError("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")
		}
		if rule[0] == '!' {
			return removeHash(r, body)
		}
		r.nopass = false
		if !hasString(r.hashes, body) {
			r.hashes = append(r.hashes, body)
		}
		return nil
	case '~':
		if body == "" {
			return errRuleSyntax
		}
		if strings.ContainsFunc(body, unicode.IsSpace) {
			return ruleError("Patterns cannot contain spaces")
		}
		if r.allKeys {
			return nil
		}
		if body == "*" {
			r.allKeys, r.patterns = true, nil
		} else if !hasString(r.patterns, body) {
			r.patterns = append(r.patterns, body)
		}
		return nil
	case '&':
		return nil // channel patterns: sluice has no channels
	case '%':
		return ruleError("Read/write key patterns (%R~, %W~) are not supported")
	case '+', '-':
		on := rule[0] == '+'
		if strings.HasPrefix(body, "@") {
			cmds, ok := a.InCategory(body[1:])
			if !ok {
				return ruleError("Unknown command or category name in ACL")
			}
			for _, c := range cmds {
				r.allowed[c] = on
			}
			return nil
		}
		name := strings.ToLower(body)
		if _, ok := r.allowed[name]; !ok && !a.isRight(name) {
			return ruleError("Unknown command or category name in ACL")
		}
		r.allowed[name] = on
		if !strings.Contains(name, "|") {
			for _, sc := range a.table.byName[name].Subs {
				r.allowed[sc.Name] = on
			}
		}
		return nil
	}
	return errRuleSyntax
}

// maxUserClients is the largest maxclients=N, as the server's own
// --maxclients.
const maxUserClients = 2147483647

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

func (a *ACL) isRight(name string) bool {
	for _, x := range a.rights {
		if x.name == name {
			return true
		}
	}
	return false
}

func removeHash(r *aclRules, h string) error {
	for i, x := range r.hashes {
		if x == h {
			r.hashes = append(r.hashes[:i:i], r.hashes[i+1:]...)
			return nil
		}
	}
	return ruleError("no such password")
}

// DelUser removes users and reports how many existed; clients logged in
// as one are disconnected, as in Redis. The default user cannot be
// removed.
func (s *Server) DelUser(names []string) (int, error) {
	a := s.acl
	for _, n := range names {
		if n == "default" {
			return 0, Error("ERR The 'default' user cannot be removed")
		}
	}
	a.mu.Lock()
	gone := map[*User]bool{}
	for _, n := range names {
		if u := a.users[n]; u != nil {
			gone[u] = true
			delete(a.users, n)
		}
	}
	a.mu.Unlock()
	s.disconnect(gone)
	return len(gone), nil
}

// Describe is a user as ACL LIST shows it: rules that rebuild it.
func (u *User) Describe() string {
	r := u.rules.Load()
	var b strings.Builder
	b.WriteString("user ")
	b.WriteString(u.name)
	if r.enabled {
		b.WriteString(" on")
	} else {
		b.WriteString(" off")
	}
	if r.nopass {
		b.WriteString(" nopass")
	}
	for _, h := range r.hashes {
		b.WriteString(" #" + h)
	}
	if r.maxClients > 0 {
		b.WriteString(" maxclients=" + strconv.FormatInt(r.maxClients, 10))
	}
	b.WriteString(" " + r.keysText())
	b.WriteString(" " + r.commandsText(u.acl))
	return b.String()
}

func (r *aclRules) keysText() string {
	if r.allKeys {
		return "~*"
	}
	if len(r.patterns) == 0 {
		return "resetkeys"
	}
	return "~" + strings.Join(r.patterns, " ~")
}

func (r *aclRules) commandsText(a *ACL) string {
	if r.allCmds {
		return "+@all"
	}
	var on []string
	for _, x := range a.rights {
		if strings.Contains(x.name, "|") {
			continue
		}
		cmd := r.allowed[x.name]
		if cmd {
			on = append(on, "+"+x.name)
		}
		for _, sc := range a.table.byName[x.name].Subs {
			if r.allowed[sc.Name] != cmd {
				if cmd {
					on = append(on, "-"+sc.Name)
				} else {
					on = append(on, "+"+sc.Name)
				}
			}
		}
	}
	return strings.TrimSpace("-@all " + strings.Join(on, " "))
}

// GetUser is ACL GETUSER's reply for the user.
func (u *User) GetUser() Map {
	r := u.rules.Load()
	flags := []string{"off"}
	if r.enabled {
		flags[0] = "on"
	}
	if r.nopass {
		flags = append(flags, "nopass")
	}
	keys := ""
	if r.allKeys {
		keys = "~*"
	} else if len(r.patterns) > 0 {
		keys = "~" + strings.Join(r.patterns, " ~")
	}
	return Map{
		"flags", flags,
		"passwords", append([]string{}, r.hashes...),
		"commands", r.commandsText(u.acl),
		"keys", keys,
		"channels", "",
		"selectors", []any{},
		"maxclients", r.maxClients,
	}
}

// errUserMaxClients refuses an AUTH past the user's maxclients=N.
func errUserMaxClients(user string) Error {
	return Error("ERR max number of clients reached for user '" + user + "'")
}

// login counts c against u, uncounting it from the user it was
// authenticated as before, unless that passes u's maxclients=N: then
// nothing changes. Check and count are one step under a.mu.
func (a *ACL) login(c *Client, u *User) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.logins[c]
	if prev == u {
		return nil
	}
	if max := u.rules.Load().maxClients; max > 0 && u.clients >= max {
		return errUserMaxClients(u.name)
	}
	if prev != nil {
		prev.clients--
	} else {
		if a.logins == nil {
			a.logins = map[*Client]*User{}
		}
		a.nLogins.Add(1)
	}
	u.clients++
	a.logins[c] = u
	return nil
}

// logout uncounts a connection that closes.
func (a *ACL) logout(c *Client) {
	if a.nLogins.Load() == 0 {
		return
	}
	a.mu.Lock()
	if u := a.logins[c]; u != nil {
		u.clients--
		delete(a.logins, c)
		a.nLogins.Add(-1)
	}
	a.mu.Unlock()
}

// Clients is how many connections are authenticated as the user.
func (u *User) Clients() int64 {
	u.acl.mu.Lock()
	defer u.acl.mu.Unlock()
	return u.clients
}

// CheckPassword reports whether pass opens the user: enabled, and nopass or
// one of its hashes, compared in constant time.
func (u *User) CheckPassword(pass string) bool {
	r := u.rules.Load()
	if !r.enabled {
		return false
	}
	if r.nopass {
		return true
	}
	h := []byte(hashPassword(pass))
	ok := 0
	for _, x := range r.hashes {
		ok |= subtle.ConstantTimeCompare(h, []byte(x))
	}
	return ok == 1
}

// NoPass reports whether the user needs no password.
func (u *User) NoPass() bool {
	r := u.rules.Load()
	return r.enabled && r.nopass
}

// Enabled reports whether the user is on (may sign in).
func (u *User) Enabled() bool { return u.rules.Load().enabled }

// ErrNoPermKey refuses a command for a queue name or policy key outside
// the user's patterns, in Redis 7's words.
var ErrNoPermKey = Error("NOPERM No permissions to access a key")

func errNoPermCommand(user, cmd string) Error {
	return Error("NOPERM User " + user + " has no permissions to run the '" + cmd + "' command")
}

// permit checks a command against the client's user, and records a
// refusal in ACL LOG. context is "toplevel" or "multi".
func (c *Client) permit(cmd *Command, args [][]byte, context string) error {
	u := c.userPtr.Load()
	reason, object := u.rules.Load().refusal(cmd, args)
	if reason == "" {
		return nil
	}
	c.srv.acl.record(c, reason, context, object, u.name)
	if reason == "command" {
		return errNoPermCommand(u.name, object)
	}
	return ErrNoPermKey
}

// refusal is why r refuses cmd with args, "command" or "key", and the
// command's name or the key refused; "" if r allows it.
func (r *aclRules) refusal(cmd *Command, args [][]byte) (reason, object string) {
	if r.all || cmd.Flags&NoAuth != 0 {
		return "", ""
	}
	name := cmd.Name
	if len(cmd.Subs) > 0 && len(args) > 1 {
		if sc := cmd.sub(args[1]); sc != nil {
			name = sc.Name
		}
	}
	if !r.allowed[name] {
		return "command", name
	}
	if r.allKeys || cmd.Keys == nil {
		return "", ""
	}
	for _, k := range cmd.Keys(args) {
		if !r.matchKey(k) {
			return "key", string(k)
		}
	}
	return "", ""
}

func (r *aclRules) matchKey(k []byte) bool {
	s := string(k)
	for _, p := range r.patterns {
		if match.Match(s, p) {
			return true
		}
	}
	return false
}

// ACLLogEntry is one refusal, or several alike within a minute.
type ACLLogEntry struct {
	Count                   int64
	Reason, Context, Object string
	Username                string
	ClientInfo              string
	ID                      int64
	Created, Updated        time.Time
}

// record adds a refusal to the log, or counts it in a like entry of the
// last minute, as Redis does.
func (a *ACL) record(c *Client, reason, context, object, user string) {
	now := time.Now()
	info := "id=" + strconv.FormatInt(c.id, 10) + " addr=" + c.addr + " laddr=" + c.laddr + " name=" + c.Name() + " user=" + user
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.log {
		if e.Reason == reason && e.Context == context && e.Object == object && e.Username == user &&
			now.Sub(e.Updated) < time.Minute {
			e.Count++
			e.Updated = now
			e.ClientInfo = info
			return
		}
	}
	e := &ACLLogEntry{Count: 1, Reason: reason, Context: context, Object: object, Username: user,
		ClientInfo: info, ID: a.logID, Created: now, Updated: now}
	a.logID++
	a.log = append([]*ACLLogEntry{e}, a.log...)
	if len(a.log) > ACLLogMaxLen {
		a.log = a.log[:ACLLogMaxLen]
	}
}

// Log returns up to n entries, newest first (n < 0: all).
func (a *ACL) Log(n int) []ACLLogEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n < 0 || n > len(a.log) {
		n = len(a.log)
	}
	out := make([]ACLLogEntry, n)
	for i := range out {
		out[i] = *a.log[i]
	}
	return out
}

// ResetLog empties the log.
func (a *ACL) ResetLog() {
	a.mu.Lock()
	a.log = nil
	a.mu.Unlock()
}

// User is the user the client is logged in as (default until AUTH).
func (c *Client) User() *User { return c.userPtr.Load() }

// ErrNoACLFile answers ACL LOAD and ACL SAVE without --aclfile.
var ErrNoACLFile = Error("ERR This instance is not configured to use an ACL file. Start it with --aclfile to load and save users")

// LoadACLFile replaces the users with those of the --aclfile: lines
// "user <name> <rule> ...", as ACL LIST prints them, each applied to a
// new user; blank lines and lines starting with '#' are skipped. Any error
// (a rule, a duplicate user, an unreadable file) changes nothing. Users not
// in the file are deleted and their clients disconnected; without a
// "default" line the default user is what --requirepass made it.
func (s *Server) LoadACLFile() error {
	if s.cfg.ACLFile == "" {
		return ErrNoACLFile
	}
	data, err := os.ReadFile(s.cfg.ACLFile)
	if err != nil {
		return Error("ERR cannot read the ACL file: " + ruleText(err.Error()))
	}
	return s.ReplaceUsers(string(data), s.cfg.ACLFile)
}

// ReplaceUsers replaces the users with those of text, lines as ACL LIST
// prints them (UsersText), as LoadACLFile does; source names it in errors.
func (s *Server) ReplaceUsers(text, source string) error {
	a := s.acl
	tmp := &ACL{table: a.table, rights: a.rights, users: map[string]*User{}}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		where := source + ":" + strconv.Itoa(i+1) + ": "
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "user" {
			return Error("ERR " + ruleText(where) + "a line must read: user <name> <rule> ...")
		}
		if tmp.users[f[1]] != nil {
			return Error("ERR " + ruleText(where) + "user " + ruleText(f[1]) + " is defined twice")
		}
		if err := tmp.SetUser(f[1], f[2:]); err != nil {
			return Error("ERR " + ruleText(where) + strings.TrimPrefix(err.Error(), "ERR "))
		}
	}
	if tmp.users["default"] == nil {
		tmp.users["default"] = &User{acl: a, name: "default"}
		tmp.users["default"].rules.Store(a.defStart)
	}
	a.mu.Lock()
	gone := map[*User]bool{}
	for name, u := range a.users {
		if tmp.users[name] == nil {
			gone[u] = true
			delete(a.users, name)
		}
	}
	for name, nu := range tmp.users {
		if u := a.users[name]; u != nil {
			u.rules.Store(nu.rules.Load())
		} else {
			nu.acl = a
			a.users[name] = nu
		}
	}
	a.mu.Unlock()
	s.disconnect(gone)
	return nil
}

// UsersText is every user as ACL LIST prints them, a line each, in name
// order.
func (s *Server) UsersText() string {
	var b strings.Builder
	for _, n := range s.acl.Names() {
		if u := s.acl.User(n); u != nil {
			b.WriteString(u.Describe())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// SaveACLFile writes every user, as ACL LIST prints them, to the
// --aclfile: a new file renamed over the old one, so a crash leaves one or
// the other.
func (s *Server) SaveACLFile() error {
	if s.cfg.ACLFile == "" {
		return ErrNoACLFile
	}
	text := s.UsersText()
	tmp := s.cfg.ACLFile + ".tmp"
	err := func() error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(text); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(tmp, s.cfg.ACLFile)
	}()
	if err != nil {
		os.Remove(tmp)
		return Error("ERR cannot write the ACL file: " + ruleText(err.Error()))
	}
	return nil
}

// disconnect closes the clients logged in as one of users.
func (s *Server) disconnect(users map[*User]bool) {
	if len(users) == 0 {
		return
	}
	s.mu.Lock()
	for _, c := range s.clients {
		if users[c.userPtr.Load()] {
			c.kill()
		}
	}
	s.mu.Unlock()
}
