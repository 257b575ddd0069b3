package cluster

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"sluice/blocking"
	"sluice/commands"
	"sluice/protocol"
	"sluice/store"
)

// Node is a sluice node's part in a replicated group: raft, the FSM that
// applies entries to the node's store, and, while the node leads, the
// proposer that turns clients' writes into entries, the blocked reserves
// and the ticks that move the store's time.
//
// Built in two steps, since the command table and the FSM need each
// other: NewNode, then the table (Wrap), then Open.
type Node struct {
	st  *store.Store
	gen *store.EntryGenerator
	env *commands.Env
	log zerolog.Logger

	fsm     *FSM
	raft    *raftNode
	prop    *Proposer
	waiters *blocking.Registry // blocked reserves, on the leader
	timer   *blocking.Timer
	notify  *notifier

	fnMu      sync.Mutex
	leaderFns map[int]func(old, new Peer) // OnLeaderChange's, under fnMu
	nextFn    int

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewNode prepares a node over st, whose generator must be gen.
func NewNode(st *store.Store, gen *store.EntryGenerator, log zerolog.Logger) *Node {
	n := &Node{st: st, gen: gen, log: log, stop: make(chan struct{})}
	n.waiters = blocking.New(proposingReserver{n}, log, n.Now)
	n.notify = newNotifier(n.waiters.Notify)
	n.timer = blocking.NewTimer(ticker{n})
	return n
}

// Now is the time every command on this node runs at: the time of the
// entry being or last applied, so that reads never move the store past
// what the log says. Before any entry, the wall clock.
func (n *Node) Now() int64 {
	if n.fsm != nil {
		if t := n.fsm.Now(); t > 0 {
			return t
		}
	}
	return time.Now().UnixMilli()
}

// Open starts raft with the FSM over table (the handlers as they are, not
// Wrap's) run on detached clients of srv.
func (n *Node) Open(cfg RaftConfig, table *protocol.Table, srv *protocol.Server) error {
	n.fsm = NewFSM(n.st, n.gen, table, srv, n.log)
	// A node that stops applying leaves raft: it must neither lead (its
	// proposals would apply elsewhere and fail here) nor vote. It may
	// stop while raft starts (replaying its log), so the raft it shuts
	// down is handed over once there is one.
	started := make(chan *raft.Raft, 1)
	n.fsm.onBreak = func() { _ = (<-started).Shutdown().Error() }
	rn, err := openRaft(cfg, n.fsm, n.log)
	if err != nil {
		return err
	}
	started <- rn.raft
	n.raft = rn
	n.prop = NewProposer(rn.raft, n.fsm)
	n.st.SetNotify(n.notify.Notify)
	n.st.SetTimerHook(n.timer.Kick)
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.notify.run(n.stop) }()
	go func() { defer n.wg.Done(); n.timer.Run(n.stop) }()
	go func() { defer n.wg.Done(); n.watchLeader() }()
	return nil
}

// Waiters is the registry of the clients blocked in JOBRESERVE.
func (n *Node) Waiters() *blocking.Registry { return n.waiters }

// IsLeader reports whether this node leads the group now.
func (n *Node) IsLeader() bool { return n.raft != nil && n.raft.raft.State() == raft.Leader }

// Raft is the node's raft instance (status and membership).
func (n *Node) Raft() *raft.Raft { return n.raft.raft }

// Close stops proposing, ticking and raft. The store stays as applied.
func (n *Node) Close() error {
	n.waiters.Close()
	if n.raft == nil {
		return nil
	}
	close(n.stop)
	n.wg.Wait()
	n.prop.Close()
	return n.raft.close()
}

// Wrap returns the command table a client of this node runs: every write
// command is proposed and answered once its entry is applied here; a
// blocking JOBRESERVE waits here and proposes a reservation when work may
// be there. The others (reads, server commands) run here as they are.
// env is the handlers' environment (its Now must be Node.Now).
func (n *Node) Wrap(cmds []protocol.Command, env *commands.Env) []protocol.Command {
	n.env = env
	out := make([]protocol.Command, len(cmds))
	for i, cmd := range cmds {
		if cmd.Flags&protocol.Write != 0 {
			if cmd.Name == "jobreserve" {
				cmd.Handler = n.jobReserve
			} else {
				cmd.Handler = n.propose
				if cmd.Batch != nil {
					cmd.Batch = n.proposeBatch
				}
			}
		}
		if cmd.Name == "acl" {
			cmd.Handler = n.acl(cmd.Handler)
		}
		out[i] = cmd
	}
	return out
}

// propose replicates one command.
func (n *Node) propose(c *protocol.Client, args [][]byte) (v any, err error) {
	c.Ungated(func() {
		var res []protocol.Result
		res, err = n.prop.Submit([][][]byte{args})
		if err == nil {
			v, err = res[0].Reply, res[0].Err
		}
	})
	return v, err
}

// proposeBatch replicates a pipeline of one command, each call its own.
func (n *Node) proposeBatch(c *protocol.Client, calls [][][]byte, out []protocol.Result) {
	c.Ungated(func() { n.prop.SubmitEach(calls, out) })
}

// Transaction replicates a transaction's commands as one (EXEC), with
// protocol.Server.SetReplicator. Only job, queue and policy commands
// (writes and reads) may be in it: every node runs it.
func (n *Node) Transaction(cmds []*protocol.Command, args [][][]byte) ([]protocol.Result, error) {
	for _, cmd := range cmds {
		if cmd.Flags&(protocol.Write|protocol.ReadOnly) == 0 && cmd.Name != "ping" && cmd.Name != "echo" {
			return nil, errTxCommand(cmd.Name)
		}
	}
	return n.prop.Submit(args)
}

func errTxCommand(name string) error {
	return protocol.Error("ERR '" + name + "' cannot run in a transaction of a replicated group: only job, queue and policy commands (and PING, ECHO) can")
}

// jobReserve is JOBRESERVE on a node of a group: without BLOCK (or inside
// EXEC) it is proposed as it is; with BLOCK, what the registry reserves
// for the client is proposed each time work may be there, and the client
// waits here meanwhile.
func (n *Node) jobReserve(c *protocol.Client, args [][]byte) (any, error) {
	o, block, err := n.env.ReserveArgs(args)
	if err != nil {
		return nil, err
	}
	if block < 0 || !c.MayBlock() {
		return n.propose(c, args)
	}
	if !n.IsLeader() {
		return nil, ErrReadOnly
	}
	var res []store.Reservation
	c.Ungated(func() {
		res, err = n.waiters.Reserve(o, time.Duration(block)*time.Millisecond,
			func() (blocking.Parker, func()) { return c.Block() })
	})
	if err != nil {
		return nil, err
	}
	return commands.ReservationsReply(res), nil
}

// proposingReserver is the store as the blocked reserves of a leader see
// it: each reservation and release is proposed.
type proposingReserver struct{ n *Node }

func (p proposingReserver) Reserve(_ int64, o store.ReserveOptions) ([]store.Reservation, error) {
	args := [][]byte{[]byte("JOBRESERVE"), []byte(o.Worker), strconv.AppendInt(nil, o.Lease, 10)}
	if o.Count > 0 {
		args = append(args, []byte("COUNT"), strconv.AppendInt(nil, int64(o.Count), 10))
	}
	if o.Handlers != nil {
		args = append(args, []byte("HANDLERS"), strconv.AppendInt(nil, int64(len(o.Handlers)), 10))
		for _, h := range o.Handlers {
			args = append(args, []byte(h))
		}
	}
	args = append(args, []byte("QUEUES"))
	for _, q := range o.Queues {
		args = append(args, []byte(q))
	}
	res, err := p.n.prop.Submit([][][]byte{args})
	if err != nil {
		return nil, err
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	return commands.ReservationsOf(res[0].Reply), nil
}

func (p proposingReserver) Release(_ int64, token string, delay int64) error {
	args := [][]byte{[]byte("JOBRELEASE"), []byte(token)}
	if delay > 0 {
		args = append(args, []byte("DELAY"), strconv.AppendInt(nil, delay, 10))
	}
	res, err := p.n.prop.Submit([][][]byte{args})
	if err != nil {
		return err
	}
	return res[0].Err
}

// ticker is the store's maintenance as the leader drives it: when a
// deadline passes, a tick entry carries the leader's time to every node.
// A follower does not tick; it waits to lead.
type ticker struct{ n *Node }

func (t ticker) NextDeadline() int64 { return t.n.st.NextDeadline() }

func (t ticker) Tick(int64) {
	if !t.n.IsLeader() {
		select { // look again later: leadership may come
		case <-time.After(100 * time.Millisecond):
		case <-t.n.stop:
		}
		return
	}
	if err := t.n.prop.Tick(); err != nil && !errors.Is(err, ErrReadOnly) {
		t.n.log.Debug().Err(err).Msg("tick not applied")
	}
}

// notifier hands the store's notifications (applied on raft's FSM
// goroutine) to the registry on a goroutine of its own: serving a waiter
// proposes an entry, which the FSM goroutine must be free to apply.
type notifier struct {
	fn    func(queue string)
	mu    sync.Mutex
	dirty map[string]struct{}
	kick  chan struct{}
}

func newNotifier(fn func(string)) *notifier {
	return &notifier{fn: fn, dirty: map[string]struct{}{}, kick: make(chan struct{}, 1)}
}

// Notify marks queue; never blocks.
func (nt *notifier) Notify(queue string) {
	nt.mu.Lock()
	nt.dirty[queue] = struct{}{}
	nt.mu.Unlock()
	select {
	case nt.kick <- struct{}{}:
	default:
	}
}

func (nt *notifier) run(stop <-chan struct{}) {
	for {
		select {
		case <-nt.kick:
		case <-stop:
			return
		}
		nt.mu.Lock()
		qs := make([]string, 0, len(nt.dirty))
		for q := range nt.dirty {
			qs = append(qs, q)
		}
		clear(nt.dirty)
		nt.mu.Unlock()
		for _, q := range qs {
			nt.fn(q)
		}
	}
}
