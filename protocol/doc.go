// Package protocol serves RESP2 and RESP3 connections over redcon's reader
// and reply encoders: a framing guard under the parser, per-connection state
// and limits, authentication, the command-table type and its dispatcher, and
// the one function that turns a Go error into a RESP error.
//
// # A connection
//
// Each connection has one goroutine (Client.serve) that owns everything
// about it. It reads whatever the client sent together (a pipeline) through
//
//	net.Conn → source → guard → cmdReader (redcon.ReadNextCommand)
//
// runs the commands in order, buffers their replies, and writes them out in
// one go with a write deadline (early, in 64 KiB steps, when they grow).
// On Linux a TCP or Unix socket is read and written with raw system calls
// that wait through the runtime's poller (rawConn): the socket never blocks,
// so the scheduler need not hand the goroutine's processor to another
// thread around each call.
//
// The guard validates RESP framing before redcon parses anything (a whole
// well-formed command in one check, anything else byte by byte), because redcon's reader trusts lengths it has not checked: a
// bulk length near MaxInt64 crashes the process, a huge array count makes it
// spin, and nothing bounds its buffers. The guard enforces Limits (argument
// count, argument size, inline line size, command size) and, before AUTH,
// Redis's smaller limits, releasing one command at a time so a successful
// AUTH lifts them for the rest of a pipeline. A violation is answered with
// "-ERR Protocol error: ..." and the connection closes. Every client's
// buffers count in one server-wide total (clientmem.go); past
// Config.MaxMemoryClients the clients holding the most are closed.
//
// # Handlers
//
// A Handler parses its arguments and returns a reply value (see reply.go) or
// an error; the dispatcher does the shared work once: case-insensitive
// lookup, Redis's arity rule and wording, the authentication check, panic
// recovery (ERR internal error, stack logged) and encoding. A reply value
// describes the reply once (a Map, a Bool, null...) and the connection's
// writer encodes it in the protocol the client chose with HELLO: RESP2
// until HELLO 3, so a client that never asks gets the RESP2 it always
// got, and RESP3's maps, nulls and verbatim text after it. ErrorText is the
// only place errors become wire text: domain errors start with their code
// and say so with a Code method (Coded), which ErrorText finds through
// wrapping, so protocol needs no list of them; an error without a code
// becomes "ERR internal error" and is logged.
//
// A handler that must wait (JOBRESERVE ... BLOCK) calls Client.Block: the
// replies buffered so far are written first, then the handler's goroutine
// parks in a read of its own socket (Wait.Park), so a disconnect is noticed
// at once (bytes read meanwhile are kept for the next commands), and
// whoever hands it work wakes it with a read deadline in the past
// (Wait.Wake). Client.OnWriteFailure registers what to undo if a reply
// never reaches the client.
//
// A command may also have a BatchHandler (JOBPUSH does): its calls that
// arrived together, one after another, run in one call of it, so that a
// pipeline of pushes takes its queue's lock once. Each call still gets its
// own reply, in order, and its own count in the statistics.
//
// # Transactions
//
// MULTI makes the dispatcher queue copies of the commands that follow
// (multi.go); EXEC runs them as one atomic step. Every command runs holding
// Config.Atomic's gate shared (a batch once, a blocked command letting it
// go while it waits); EXEC holds it alone and has the store log the
// commands' records as one unit.
//
// # Statistics
//
// The dispatcher times every command (less the time spent blocked in
// Client.Block) into per-command counters and a latency histogram, kept in
// shards chosen by client id so that busy connections on different cores
// rarely write the same cache line (CommandStats: INFO commandstats and
// metrics). Commands at least Config.SlowlogSlowerThan slow are copied,
// trimmed as Redis does, into a bounded slow log (SLOWLOG).
//
// # Goroutines and locks
//
// Server.Serve runs one accept loop per listener (backing off on errors)
// until Shutdown closes the listener. Each connection goroutine ends when its
// client leaves, is killed, or the server drains; Shutdown waits for them.
// Server.mu guards the client map and listeners and
// is never held while writing to a socket; Client.mu guards only the name
// fields other goroutines read for CLIENT LIST; the slow log's mutex is a
// leaf taken only for slow commands.
package protocol
