package protocol

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Client is one connection. Its goroutine (serve) owns the reader, the
// writer and the authentication state; other goroutines only read the
// fields guarded by mu or held in atomics, and may kill it.
type Client struct {
	srv   *Server
	id    int64
	nc    net.Conn
	addr  string
	laddr string
	born  time.Time

	src    *source
	guard  *guard
	rd     *cmdReader
	w      writer
	limits Limits // what the guard enforces now; swapped on AUTH

	authed  bool                 // owner goroutine only
	userPtr atomic.Pointer[User] // who the client is (acl.go); written by the owner only
	closing bool                 // close after this batch's replies; the owner's
	onFail  []func()             // owner goroutine only: run if pending replies cannot be written

	blockedFor time.Duration       // owner goroutine only: time the current command spent in Block
	started    time.Time           // owner goroutine only: when the current command started (Started)
	lastEnd    time.Time           // owner goroutine only: when the last command ended, if lastEndOK
	lastEndOK  bool                // no read or write since lastEnd: the next command starts then
	held       [][]byte            // owner goroutine only: a command that may wait, to run outside the read session
	heldCmd    *Command            // owner goroutine only: held's command
	inSession  bool                // owner goroutine only: in a read session (see serve)
	batch      batch               // owner goroutine only: calls parsed and not run yet
	txn        *tx                 // owner goroutine only: the transaction being queued (multi.go); nil: none
	inExec     bool                // owner goroutine only: EXEC is running the queued commands
	gated      bool                // owner goroutine only: holds the server's Atomic gate (shared, or alone in EXEC)
	noEvict    atomic.Bool         // CLIENT NO-EVICT ON: never closed for maxmemory-clients
	mon        *monitor            // owner goroutine only: set once the client monitors (monitor.go)
	monStart   bool                // owner goroutine only: MONITOR ran; start at the next flush
	monitoring bool                // owner goroutine only: c.mon is among the server's monitors
	subs       map[string]struct{} // owner goroutine only: the channels subscribed to (pubsub.go)
	psubs      map[string]struct{} // owner goroutine only: the patterns subscribed to

	mu      sync.Mutex // protects name, libName, libVer
	name    string
	libName string
	libVer  string

	errFn func(error) string // c.errText, bound once

	commands   atomic.Int64 // written by the owner only
	netIn      atomic.Int64 // written by the owner only
	netOut     atomic.Int64 // written by the owner only (its writer counts what it writes)
	lastCmd    atomic.Pointer[Command]
	lastActive atomic.Int64 // unix ms
	blocked    atomic.Bool
	killed     atomic.Bool

	// What the client's buffers hold, as the server's total counts it
	// (clientmem.go); written by the owner only.
	memIn  atomic.Int64
	memOut atomic.Int64
	memMon atomic.Int64 // a monitor's buffer (monitor.go); written under its mu
}

func newClient(s *Server, nc net.Conn) *Client {
	nc = fastConn(nc)
	c := &Client{
		srv:   s,
		id:    s.nextID.Add(1),
		nc:    nc,
		addr:  nc.RemoteAddr().String(),
		laddr: nc.LocalAddr().String(),
		born:  time.Now(),
	}
	c.userPtr.Store(s.acl.def)
	c.authed = s.acl.def.NoPass()
	if c.authed {
		c.limits = s.cfg.Limits
	} else {
		c.limits = s.cfg.PreAuth
	}
	c.errFn = c.errText
	c.src = &source{nc: nc, idle: s.cfg.IdleTimeout, srv: s, c: c}
	c.guard = newGuard(c.src, &c.limits, s.cfg.ReadBuffer)
	c.rd = newCmdReader(c.guard, s.cfg.ReadBuffer)
	c.w = writer{nc: nc, timeout: s.cfg.WriteTimeout, limit: s.cfg.FlushAt, sent: &c.netOut, proto: RESP2}
	c.w.resized = c.sized
	c.lastActive.Store(c.born.UnixMilli())
	return c
}

// serve is the connection's goroutine: read whatever arrived together (e.g.
// a pipeline), run its commands in order, write the replies, read again.
//
// On a socket that offers read sessions (rawio_linux.go) the loop runs
// inside one: a read that finds the socket empty needs no second read to
// learn it, so the goroutine waits for input after one system call per
// batch of commands, not two. A command that may wait for work (see
// Command.Waits) runs between sessions, since its Wait.Park reads
// the socket too.
func (c *Client) serve() {
	log := c.srv.log.With().Int64("client", c.id).Str("addr", c.addr).Logger()
	log.Debug().Msg("client connected")
	defer func() {
		if c.mon != nil {
			c.unsubscribeAll()
			c.srv.removeMonitor(c.mon)
			c.mon.stop()
		}
		c.nc.Close()
		c.runOnFail()
		c.srv.remove(c)
	}()
	c.sized()
	sess, _ := c.nc.(sessionConn)
	for {
		var st runState
		if sess != nil {
			c.inSession = true
			err := sess.session(func() bool {
				st = c.run(&log, sess)
				return st == runWait
			})
			c.inSession = false
			if err != nil {
				if c.probed(err) {
					continue
				}
				if c.srv.isDraining() && !c.killed.Load() {
					// Commands the client sent before the drain still
					// run (a held command may have more behind it);
					// run stops at the drain once they are answered.
					c.run(&log, nil)
					return
				}
				c.readFailed(&log, err)
				return
			}
		} else {
			st = c.run(&log, nil)
		}
		if st == runExit {
			return
		}
		cmd, args := c.heldCmd, c.held // runHeld
		c.heldCmd, c.held = nil, nil
		c.dispatch(cmd, args)
		// Answer it now: the next session may end before its first turn
		// (an expired deadline), and the client waited long enough.
		if err := c.flush(); err != nil {
			c.writeFailed(&log, err)
			return
		}
		if c.closing || c.killed.Load() {
			return
		}
	}
}

type runState uint8

const (
	runExit runState = iota // the connection is done
	runWait                 // the socket is empty: wait for input, then run again
	runHeld                 // c.held may wait for work: run it outside the session
)

// sessionConn is a socket that can run serve's loop inside a read session:
// session calls run until it returns false, waiting for input whenever it
// returns true; inside it, a Read that finds the socket empty returns 0
// bytes, and empty reports (and forgets) that it did.
type sessionConn interface {
	session(run func() (wait bool)) error
	empty() (empty, skipped bool)
}

// probeAfter is how long a session waits, after it knew the socket empty
// without reading EAGAIN, before it reads again anyway (see rawConn).
const probeAfter = 200 * time.Millisecond

// armProbe sets the read deadline for a wait that follows a skipped read,
// unless the idle timeout comes sooner.
func (c *Client) armProbe() {
	if idle := c.src.idle; idle > 0 && idle <= probeAfter {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(probeAfter))
	// A drain or a kill that set its own deadline meanwhile is seen here.
	if c.srv.isDraining() || c.killed.Load() {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// probed reports whether err, which ended a read session, is a probe's
// deadline, armed for this wait or for an earlier one that input cut
// short. Other deadlines are a drain's, a kill's (both checked here) and
// the idle timeout's (which has passed by its own clock). If it is a
// probe the deadline is cleared, so that the next session can begin;
// source.Read sets the idle deadline again before it reads.
func (c *Client) probed(err error) bool {
	if c.killed.Load() || c.srv.isDraining() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if c.src.idle > 0 && !time.Now().Before(c.src.idleAt) {
		return false
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return true
}

// run reads, runs and answers commands until the connection is done, the
// socket is empty (in a session), or a command that may wait is next (in
// a session; it is left in c.held). Without a session it returns only
// when the connection is done.
func (c *Client) run(log *zerolog.Logger, sess sessionConn) runState {
	for {
		args, ok, err := c.rd.next()
		var cmd *Command
		if ok && len(args) > 0 && c.rd.refused == "" {
			cmd = c.srv.table.Lookup(args[0])
		}
		// Calls of a batch command gather until something else comes:
		// another command, the end of what the buffer holds, an error.
		batchable := ok && c.batchable(cmd, args)
		if c.batch.cmd != nil && (!batchable || cmd != c.batch.cmd) {
			if !c.runBatch(log) {
				return runExit
			}
		}
		if batchable {
			if c.batch.add(cmd, args) == MaxBatch && !c.runBatch(log) {
				return runExit
			}
			continue
		}
		if err == nil && !ok {
			// Nothing complete is buffered: answer what ran, then wait
			// for more, unless the server is draining.
			c.lastEndOK = false
			if err := c.flush(); err != nil {
				c.writeFailed(log, err)
				return runExit
			}
			if c.srv.isDraining() {
				return runExit
			}
			err = c.rd.fill()
			c.sized() // a large command grows the buffer, and its end lets it go
			if err == nil {
				if sess != nil {
					if empty, skipped := sess.empty(); empty {
						if skipped {
							c.armProbe()
						}
						return runWait
					}
				}
				continue
			}
		}
		if err != nil {
			c.readFailed(log, err)
			return runExit
		}
		if c.rd.refused != "" {
			c.refuse(c.rd.refused)
			if !c.dispatched(log) {
				return runExit
			}
			continue
		}
		if sess != nil && c.txn == nil && mayWait(cmd, args) {
			c.heldCmd, c.held = cmd, args
			return runHeld
		}
		c.dispatch(cmd, args)
		if !c.dispatched(log) {
			return runExit
		}
	}
}

// dispatched writes now when the command asked to close, when a write
// inside it failed (flush then reports that failure), or when enough
// replies are buffered. It reports whether the connection goes on: after
// a failed write or a kill nothing more of this pipeline runs on the gone
// connection's behalf.
func (c *Client) dispatched(log *zerolog.Logger) bool {
	if c.closing || c.w.err != nil || len(c.w.b) >= c.w.limit {
		c.lastEndOK = false
		if err := c.flush(); err != nil {
			c.writeFailed(log, err)
			return false
		}
		if c.closing {
			return false
		}
	}
	return !c.killed.Load()
}

func (c *Client) writeFailed(log *zerolog.Logger, err error) {
	if !c.killed.Load() {
		log.Debug().Err(err).Msg("write failed, closing")
	}
}

func (c *Client) readFailed(log *zerolog.Logger, err error) {
	if msg, ok := isProtocolError(err); ok {
		log.Debug().Str("error", msg).Msg("protocol error, closing")
		c.w.writeError("ERR " + msg)
		_ = c.flush()
	} else if !errors.Is(err, io.EOF) && !c.killed.Load() && !c.srv.isDraining() {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			log.Debug().Msg("idle timeout, closing")
		} else {
			log.Debug().Err(err).Msg("read failed, closing")
		}
	}
}

// mayWait reports whether cmd may wait for work with these arguments.
func mayWait(cmd *Command, args [][]byte) bool {
	if cmd == nil || cmd.Flags&Blocking == 0 {
		return false
	}
	return cmd.Waits == nil || cmd.Waits(args)
}

// dispatch runs one command, looked up as cmd (nil: unknown): arity (a
// listed subcommand's too, as Redis 7 checks it), authentication, the
// handler (with panic recovery), the reply.
func (c *Client) dispatch(cmd *Command, args [][]byte) {
	if len(args) == 0 {
		return
	}
	if c.txn != nil && (cmd == nil || cmd.Flags&TxControl == 0) {
		c.queue(cmd, args)
		return
	}
	c.begin(1)
	if cmd == nil {
		c.writeErr(UnknownCommand(args))
		return
	}
	c.lastCmd.Store(cmd)
	if !arityOK(cmd.Arity, len(args)) {
		c.writeErr(WrongArity(cmd.Name))
		return
	}
	if len(cmd.Subs) > 0 && len(args) > 1 {
		if sub := cmd.sub(args[1]); sub != nil && !arityOK(sub.Arity, len(args)) {
			c.writeErr(WrongArity(sub.Name))
			return
		}
	}
	if !c.authed && cmd.Flags&NoAuth == 0 {
		c.writeErr(ErrNoAuth)
		return
	}
	if !c.userPtr.Load().rules.Load().all {
		if err := c.permit(cmd, args, "toplevel"); err != nil {
			c.writeErr(err)
			return
		}
	}
	if cmd.Flags&PubSub == 0 && c.w.proto != RESP3 && c.Subscriptions() > 0 {
		c.writeErr(errSubscribed(cmd.Name))
		return
	}
	c.blockedFor = 0
	var v any
	var err error
	if cmd.Flags&TxControl != 0 {
		v, err = c.call(cmd, args)
	} else {
		c.enter()
		v, err = c.call(cmd, args)
		c.leave()
	}
	if ms := c.srv.monitors.Load(); ms != nil {
		c.monitored(*ms, cmd, args)
	}
	c.observe(cmd, args, err != nil)
	c.reply(cmd, v, err)
}

// refuse answers a command refused before it could run: one too large to
// read (the guard dropped its bytes). It does not count as a call, as in
// Redis, where a rejected command never reaches call(). A transaction
// being queued remembers it, so that EXEC aborts as it does after an
// unknown command.
func (c *Client) refuse(err Error) {
	if c.txn != nil {
		c.txn.dirty = true
	}
	c.writeErr(err)
}

// begin starts n calls: counted, and timed from when the last command
// ended if nothing was read or written since (one clock read per
// command, not two), else from now.
func (c *Client) begin(n int) {
	c.commands.Add(int64(n))
	c.started = c.lastEnd
	if !c.lastEndOK {
		c.started = time.Now()
	}
	c.lastActive.Store(c.started.UnixMilli())
}

// reply buffers a call's reply, or its error.
func (c *Client) reply(cmd *Command, v any, err error) {
	if err != nil {
		c.writeErr(err)
	} else if !c.w.appendReply(v, c.errFn) {
		c.srv.log.Error().Str("command", cmd.Name).Type("reply", v).Msg("handler returned a value that is not a reply")
	}
}

// observe counts the command that started at c.started in its statistics
// and, when slow, in the slow log. Time spent blocked waiting for work does
// not count, as in Redis.
func (c *Client) observe(cmd *Command, args [][]byte, failed bool) {
	end := time.Now()
	c.lastEnd, c.lastEndOK = end, true
	c.record(cmd, args, end.Sub(c.started)-c.blockedFor, failed)
}

// record counts one call of cmd that took d.
func (c *Client) record(cmd *Command, args [][]byte, d time.Duration, failed bool) {
	cmd.stats.observe(c.id, d, failed)
	if sl := &c.srv.slow; sl.slower >= 0 && d >= sl.slower {
		sl.add(SlowlogEntry{
			Time: c.started.Unix(), Micros: int64(d / time.Microsecond),
			Args: slowArgs(cmd, args), Addr: c.addr, Name: c.Name(),
		})
	}
}

// MaxBatch is the most calls a batch runs at once (see Command.Batch).
const MaxBatch = 64

// batch is the calls of one batch command parsed from the read buffer and
// not run yet. Their arguments point into the buffer, which is not read
// into again before they run; args keeps their headers, since the reader
// reuses its own.
type batch struct {
	cmd   *Command
	args  [][]byte   // every call's arguments, back to back
	calls [][][]byte // each call's, in args (or in an array args outgrew, which still holds them)
	out   []Result
}

// add appends a call and returns how many the batch holds.
func (b *batch) add(cmd *Command, args [][]byte) int {
	b.cmd = cmd
	from := len(b.args)
	b.args = append(b.args, args...)
	b.calls = append(b.calls, b.args[from:len(b.args):len(b.args)])
	return len(b.calls)
}

// batchable reports whether this call may join a batch: its command has a
// batch handler, it may run (authenticated, right arity, allowed to the
// client's user, not subscribed to channels), so the handler sees only
// calls that get that far. A call
// refused goes through dispatch, which refuses it again and logs it.
func (c *Client) batchable(cmd *Command, args [][]byte) bool {
	if cmd == nil || cmd.Batch == nil || !c.authed || c.txn != nil || c.Subscriptions() > 0 || !arityOK(cmd.Arity, len(args)) {
		return false
	}
	reason, _ := c.userPtr.Load().rules.Load().refusal(cmd, args)
	return reason == ""
}

// runBatch runs the gathered calls and buffers their replies, in order; it
// reports, as dispatched does, whether the connection goes on. One call
// alone runs as any other command. A batch is one step of the pipeline: a
// kill or a failed write stops the pipeline before it or after it, never
// inside it.
func (c *Client) runBatch(log *zerolog.Logger) bool {
	b := &c.batch
	cmd := b.cmd
	switch {
	case c.killed.Load() || c.w.err != nil:
		// Gone while the calls gathered: as after any command, nothing
		// more of the pipeline runs (dispatched below reports it).
	case len(b.calls) == 1:
		c.dispatch(cmd, b.calls[0])
	default:
		c.dispatchBatch(cmd, b.calls)
	}
	clear(b.args) // the replies are written; let go of the buffer's slices
	clear(b.calls)
	b.cmd, b.args, b.calls = nil, b.args[:0], b.calls[:0]
	return c.dispatched(log)
}

// dispatchBatch is dispatch for a batch: the checks dispatch makes were
// made when each call joined (batchable).
func (c *Client) dispatchBatch(cmd *Command, calls [][][]byte) {
	n := len(calls)
	c.begin(n)
	c.lastCmd.Store(cmd)
	c.blockedFor = 0
	b := &c.batch
	if cap(b.out) < n {
		b.out = make([]Result, n)
	}
	out := b.out[:n]
	c.enter()
	c.callBatch(cmd, calls, out)
	c.leave()
	if ms := c.srv.monitors.Load(); ms != nil {
		for _, args := range calls {
			c.monitored(*ms, cmd, args)
		}
	}
	end := time.Now()
	c.lastEnd, c.lastEndOK = end, true
	each := end.Sub(c.started) / time.Duration(n)
	for i, r := range out {
		c.record(cmd, calls[i], each, r.Err != nil)
		c.reply(cmd, r.Reply, r.Err)
	}
	clear(out)
}

// callBatch is call for a batch: a panic fails every call of it.
func (c *Client) callBatch(cmd *Command, calls [][][]byte, out []Result) {
	defer func() {
		if c.recovered(cmd, recover()) {
			for i := range out {
				out[i] = Result{Err: ErrInternal}
			}
		}
	}()
	cmd.Batch(c, calls, out)
}

func (c *Client) call(cmd *Command, args [][]byte) (v any, err error) {
	defer func() {
		if c.recovered(cmd, recover()) {
			v, err = nil, ErrInternal
		}
	}()
	return cmd.Handler(c, args)
}

// recovered logs r, what a handler of cmd panicked with, if anything, and
// reports whether there was a panic.
func (c *Client) recovered(cmd *Command, r any) bool {
	if r == nil {
		return false
	}
	c.srv.log.Error().Str("command", cmd.Name).Int64("client", c.id).
		Interface("panic", r).Bytes("stack", debug.Stack()).Msg("command panicked")
	return true
}

func (c *Client) writeErr(err error) {
	c.w.writeError(c.errText(err))
}

func (c *Client) errText(err error) string {
	text, internal := ErrorText(err)
	if internal {
		c.srv.log.Error().Err(err).Int64("client", c.id).Msg("unexpected error")
	}
	return text
}

// flush writes the buffered replies; if that fails, the OnWriteFailure
// callbacks of those replies run.
func (c *Client) flush() error {
	if c.killed.Load() {
		c.runOnFail()
		return net.ErrClosed
	}
	var m *monitor
	fresh := false
	if c.monStart {
		// MONITOR's +OK is buffered: it goes first into the monitor's
		// output, and the lines after it. The monitor is published
		// before its writer starts, so a client that has read the +OK
		// sees every command run after it. A subscriber has the output
		// already.
		c.monStart = false
		m = c.mon
		if m == nil {
			m, fresh = c.newMonitor(), true
			c.w.sent = nil // run counts what it writes
		}
	}
	err := c.w.flush()
	if m != nil {
		c.monitoring = true
		c.srv.addMonitor(m)
		if fresh {
			go m.run(c.srv.cfg.WriteTimeout)
		}
	}
	if err != nil {
		c.runOnFail()
		return err
	}
	c.onFail = c.onFail[:0]
	return nil
}

// runOnFail runs the OnWriteFailure callbacks, under the gate (they give
// back what the replies held).
func (c *Client) runOnFail() {
	fns := c.onFail
	c.onFail = nil
	if len(fns) == 0 {
		return
	}
	held := c.gated
	if !held {
		c.enter()
	}
	for _, fn := range fns {
		fn()
	}
	if !held {
		c.leave()
	}
}

// enter takes the server's gate shared for a command: it waits while a
// transaction runs. Owner goroutine only.
func (c *Client) enter() {
	c.srv.atomic.Shared()
	c.gated = true
}

// leave lets the gate go.
func (c *Client) leave() {
	c.gated = false
	c.srv.atomic.Unshared()
}

// interrupt wakes a client waiting for input so that it notices a drain.
func (c *Client) interrupt() {
	_ = c.nc.SetReadDeadline(time.Now())
}

// kill closes the connection from any goroutine. A blocked command learns
// it before kill returns, so nothing is handed to the client afterwards
// (CLIENT KILL is synchronous, as in Redis).
//
// A socket with read sessions is closed by its goroutine on the way out,
// not here: Close waits until a session lets go of the socket, and the
// session may be the caller's own (a command that kills its own
// connection) or need a lock the caller holds (Shutdown holds s.mu). The
// past deadline wakes the goroutine if it waits; a read inside a session
// is a plain system call that no deadline stops, so the goroutine checks
// killed before each read (source.Read) and each write (Client.flush).
func (c *Client) kill() {
	c.killed.Store(true)
	if _, ok := c.nc.(sessionConn); ok {
		_ = c.nc.SetDeadline(time.Unix(1, 0))
		return
	}
	c.nc.Close()
}

func (c *Client) info() ClientInfo {
	now := time.Now()
	c.mu.Lock()
	ci := ClientInfo{ID: c.id, Addr: c.addr, LAddr: c.laddr, Name: c.name, LibName: c.libName, LibVer: c.libVer,
		User: c.userPtr.Load().name}
	c.mu.Unlock()
	ci.Age = now.Sub(c.born)
	ci.Idle = now.Sub(time.UnixMilli(c.lastActive.Load()))
	if ci.Idle < 0 {
		ci.Idle = 0
	}
	if cmd := c.lastCmd.Load(); cmd != nil {
		ci.Cmd = cmd.Name
	} else {
		ci.Cmd = "NULL"
	}
	ci.Blocked = c.blocked.Load()
	return ci
}

// ---- what handlers may do with their client ----

// ID is the client's id (CLIENT ID).
func (c *Client) ID() int64 { return c.id }

// LocalAddr is the server's address the client connected to (host:port).
func (c *Client) LocalAddr() string { return c.laddr }

// Server is the server this client is connected to.
func (c *Client) Server() *Server { return c.srv }

// Name is the name set with CLIENT SETNAME or HELLO SETNAME.
func (c *Client) Name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name
}

// SetName sets the client's name.
func (c *Client) SetName(name string) {
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
}

// SetLib records CLIENT SETINFO LIB-NAME / LIB-VER; an empty value leaves
// the field as it is when set is false for it.
func (c *Client) SetLib(name *string, ver *string) {
	c.mu.Lock()
	if name != nil {
		c.libName = *name
	}
	if ver != nil {
		c.libVer = *ver
	}
	c.mu.Unlock()
}

// Proto is the protocol the client's replies are encoded in: RESP2 until
// HELLO 3. Only the client's own commands may call it.
func (c *Client) Proto() Proto { return c.w.proto }

// SetProto switches the encoding of the client's replies, the reply of
// the current command included (HELLO answers in the protocol it chose).
// p must be RESP2 or RESP3.
func (c *Client) SetProto(p Proto) {
	c.w.proto = p
	if c.mon != nil {
		c.mon.proto.Store(uint32(p))
	}
}

// Authenticated reports whether the client may run every command.
func (c *Client) Authenticated() bool { return c.authed }

// PasswordRequired reports whether the server has a password.
func (c *Client) PasswordRequired() bool { return c.srv.cfg.RequirePass != "" }

// Authenticate checks a user (empty or "default") and password. On success
// the client may run every command and the full protocol limits apply.
func (c *Client) Authenticate(user, pass string) error {
	if user == "" {
		// As Redis: without a password for the default user the
		// one-argument form is a configuration mistake.
		if c.srv.acl.def.NoPass() {
			return ErrNoPassword
		}
		user = "default"
	}
	u := c.srv.acl.User(user)
	if u == nil || !u.CheckPassword(pass) {
		c.srv.log.Warn().Int64("client", c.id).Str("addr", c.addr).Msg("authentication failed")
		c.srv.acl.record(c, "auth", "toplevel", "AUTH", user)
		return ErrWrongPass
	}
	if err := c.srv.acl.login(c, u); err != nil { // maxclients=N (acl.go)
		return err
	}
	c.userPtr.Store(u)
	c.authed = true
	c.limits = c.srv.cfg.Limits
	return nil
}

// CloseAfterReply closes the connection once the current batch of replies
// is written (QUIT).
func (c *Client) CloseAfterReply() { c.closing = true }

// Started is when the current command started, as its latency counts it:
// a handler's clock, so that the commands of a pipelined batch read the
// clock once each. Only the command's own handler may call it.
func (c *Client) Started() time.Time { return c.started }

// OnWriteFailure registers fn to run if the replies buffered so far (the
// current one included) cannot be written: a reservation whose reply never
// reaches the worker is given back at once.
func (c *Client) OnWriteFailure(fn func()) { c.onFail = append(c.onFail, fn) }

// Block prepares the client to wait: it writes every reply buffered so far
// (pipelined commands before a blocking one get their answers first) and
// returns the wait, on which the command's goroutine parks until it is
// woken, its deadline passes or the client leaves. done must be called when
// the wait is over; bytes the client sent meanwhile are kept for the next
// commands.
//
// Only a command flagged Blocking may call Block, and only with arguments
// its Waits accepts: the others run inside the connection's read session,
// where Park could not read.
func (c *Client) Block() (w *Wait, done func()) {
	w = &Wait{c: c}
	// A waiting command lets the gate go, so that transactions run
	// meanwhile, and takes it back before it goes on. It lets it go before
	// it writes the replies buffered so far: a client slow to read would
	// otherwise hold up a transaction, and every command behind it.
	gated := c.gated
	if gated {
		c.leave()
	}
	regate := func() {
		if gated {
			c.enter()
		}
	}
	if err := c.flush(); err != nil {
		w.left.Store(true)
		return w, regate
	}
	if c.inSession {
		// Park could not read the socket a session holds, so the wait
		// could not notice a disconnect or a kill: it ends at once, as
		// if the client had gone, rather than never.
		c.srv.log.Error().Int64("client", c.id).Msg("a command blocks inside a read session: it lacks the Blocking flag, or its Waits said no")
		w.left.Store(true)
		return w, regate // Wake stays inactive: the session's deadlines are its own
	}
	w.active = true // no other goroutine has w yet
	c.blocked.Store(true)
	blockedAt := time.Now()
	return w, func() {
		w.end()
		regate()
		c.blocked.Store(false)
		c.blockedFor += time.Since(blockedAt)
	}
}

// Wait is a blocked command's wait on its connection (see Block). Park
// reads the socket, so a disconnect ends it at once; Wake, from whoever
// hands the command its result, sets a read deadline in the past, which
// ends the read: one wake-up of the command's own goroutine, no watcher
// goroutine beside it.
type Wait struct {
	c      *Client
	left   atomic.Bool // the client disconnected or flooded us; see Left for kill
	woken  atomic.Bool // Wake was called since Park last looked
	mu     sync.Mutex  // protects active
	active bool        // until done: Wake may still move the deadline
}

// Park waits until Wake, deadline (zero: none) or the client's leaving, and
// reports whether the client left; a server that is draining counts as
// left, since the wait must end and nothing more is handed over. Only the
// command's goroutine calls it.
func (w *Wait) Park(deadline time.Time) (left bool) {
	c, s := w.c, w.c.src
	limit := int(c.limits.MaxCommand) + c.srv.cfg.ReadBuffer
	for {
		// Set the deadline, then look for a wake, a kill and a drain: each
		// sets its flag before its past deadline, so one that lands before
		// ours is seen here, and one that lands after ends the read.
		_ = c.nc.SetReadDeadline(deadline)
		if w.Left() || c.srv.isDraining() {
			return true
		}
		if w.woken.Swap(false) {
			return false
		}
		if cap(s.pending)-len(s.pending) < 512 {
			s.pending = slices.Grow(s.pending, 4096)
			c.sized()
		}
		n, err := c.nc.Read(s.pending[len(s.pending):cap(s.pending)])
		if n > 0 {
			c.netIn.Add(int64(n))
			s.pending = s.pending[:len(s.pending)+n]
			if len(s.pending)-s.pp > limit {
				// A client flooding us while blocked is treated as gone.
				c.closing = true
				w.left.Store(true)
				return true
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.woken.Store(false) // the caller looks for its result anyway
			return w.Left() || c.srv.isDraining()
		default:
			s.rerr = err
			w.left.Store(true)
			return true
		}
	}
}

// Wake ends the current Park, or the next. Any goroutine may call it; once
// the wait is over it does nothing, so a late wake cannot end a later read.
func (w *Wait) Wake() {
	w.mu.Lock()
	if w.active {
		w.woken.Store(true)
		_ = w.c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	w.mu.Unlock()
}

// Left reports whether the client has gone: disconnected, flooded us while
// blocked, or killed. Any goroutine may call it.
func (w *Wait) Left() bool { return w.left.Load() || w.c.killed.Load() }

// end closes the wait to Wake and clears the deadline Park or Wake set.
func (w *Wait) end() {
	w.mu.Lock()
	w.active = false
	w.mu.Unlock()
	_ = w.c.nc.SetReadDeadline(time.Time{})
}

var errDraining = errors.New("server is shutting down")

// source feeds the guard: first whatever Wait.Park read while the
// client was blocked, then the socket (with the idle deadline).
type source struct {
	nc      net.Conn
	srv     *Server
	c       *Client
	pending []byte
	pp      int
	rerr    error // a read error seen by Wait.Park
	idle    time.Duration
	idleAt  time.Time // the idle deadline set last
}

func (s *source) Read(p []byte) (int, error) {
	if s.pp < len(s.pending) {
		n := copy(p, s.pending[s.pp:])
		s.pp += n
		if s.pp == len(s.pending) {
			s.pending, s.pp = s.pending[:0], 0 // Park's next wait reads into it again
			if cap(s.pending) > 64<<10 {
				s.pending = nil // a flood's buffer is not kept
			}
		}
		return n, nil
	}
	if s.rerr != nil {
		return 0, s.rerr
	}
	if s.idle > 0 {
		s.idleAt = time.Now().Add(s.idle)
		_ = s.nc.SetReadDeadline(s.idleAt)
	}
	// Checked after setting the deadline: a drain or a kill that began
	// earlier has interrupted us already or is seen here.
	if s.srv.isDraining() {
		return 0, errDraining
	}
	if s.c.killed.Load() {
		return 0, net.ErrClosed
	}
	n, err := s.nc.Read(p)
	s.c.netIn.Add(int64(n))
	return n, err
}
