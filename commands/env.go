package commands

import (
	"sync"
	"time"

	"sluice/blocking"
	"sluice/protocol"
	"sluice/store"
)

// Env is what the handlers work with.
type Env struct {
	Store   *store.Store
	Waiters *blocking.Registry
	// JobWaits holds the clients blocked in JOBWAIT; nil: JOBWAIT is
	// refused.
	JobWaits *blocking.JobWaits
	Now      func() int64 // Unix ms; nil: the clock the protocol reads for each command

	MaxPayload int64 // largest job payload in bytes
	Version    string
	// Settings answers CONFIG GET and feeds INFO: every server option with
	// its current value, in a fixed order.
	Settings []Setting
	// Info adds server facts to INFO server (e.g. config_file, tcp_port).
	Info []Setting
	// Persistence, when set, gives INFO persistence's lines (name, value).
	Persistence func() []Setting
	// Rewrite, when set, starts a log rewrite in the background
	// (BGREWRITEAOF) and returns at once; its error (one is already
	// running, say) is the command's reply.
	Rewrite func() error
	// Shutdown, when set, starts the server's graceful stop (SHUTDOWN)
	// and returns at once.
	Shutdown func()
	// JobStats, when set, adds job event totals to INFO stats.
	JobStats func() []Setting
	// Digest, when set, hashes the node's whole state (DEBUG DIGEST).
	Digest func() (string, error)
	// MaxMemory is the job-memory limit in bytes (INFO memory); 0: none.
	MaxMemory int64
	// MaxReserveQueues bounds the queues, and the handlers, one JOBRESERVE
	// may name; 0: DefaultMaxReserveQueues.
	MaxReserveQueues int
	// ConfigSet, when set, changes the settings it names at run time
	// (CONFIG SET): all of changes, or none and an error saying why. Its
	// names are lower case; it applies none outside Settable.
	ConfigSet func(changes []Setting) error
	// Settable lists the settings ConfigSet can change.
	Settable []string
	// Replication is the node's view of its group (ROLE, INFO
	// replication, SENTINEL); nil: Standalone{} with the default name.
	Replication Replication

	settingsMu sync.Mutex // protects Settings' values once serving
}

// DefaultMaxReserveQueues is max-reserve-queues' default. A worker serving
// a thousand queues with one command is far past any layout we know of,
// while a blocked client on that many costs about 100 KB and a millisecond
// to register (BenchmarkRegister100Waiters in package blocking).
const DefaultMaxReserveQueues = 1000

// maxReserveNames is the bound on JOBRESERVE's lists.
func (e *Env) maxReserveNames() int {
	if e.MaxReserveQueues > 0 {
		return e.MaxReserveQueues
	}
	return DefaultMaxReserveQueues
}

// Setting is one name/value pair.
type Setting struct{ Name, Value string }

// now is the time of c's current command in Unix ms: when it started
// (Client.Started), so that a command reads the clock once, or e.Now's
// time when one is set (tests).
func (e *Env) now(c *protocol.Client) int64 {
	if e.Now != nil {
		return e.Now()
	}
	return c.Started().UnixMilli()
}

// clock is the time now in Unix ms, for work done after the command (a
// reply that could not be written).
func (e *Env) clock() int64 {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now().UnixMilli()
}

// Table returns every command, ready for protocol.NewTable.
func Table(e *Env) []protocol.Command {
	var cmds []protocol.Command
	cmds = append(cmds, jobCommands(e)...)
	cmds = append(cmds, jobScanCommands(e)...)
	cmds = append(cmds, resultCommands(e)...)
	cmds = append(cmds, queueCommands(e)...)
	cmds = append(cmds, policyCommands(e)...)
	cmds = append(cmds, cronCommands(e)...)
	cmds = append(cmds, batchCommands(e)...)
	cmds = append(cmds, serverCommands(e)...)
	cmds = append(cmds, replicationCommands(e)...)
	cmds = append(cmds, pubsubCommands()...)
	cmds = append(cmds, txCommands()...)
	cmds = append(cmds, aclCommand(), debugCommand(e))
	return withACL(cmds)
}
