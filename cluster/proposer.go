package cluster

import (
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"sluice/protocol"
)

// Errors a client sees when its command cannot be replicated, in Redis's
// words where Redis has them: READONLY sends a Sentinel-aware client to
// look for the leader.
const (
	ErrReadOnly = protocol.Error("READONLY You can't write against a read only replica.")
	// ErrLeadershipLost: the command was handed to raft, and the node
	// cannot say whether the group applied it (it stopped leading, or
	// stopped applying, before it learned the outcome). A retry with an
	// idempotency key is safe.
	ErrLeadershipLost = protocol.Error("TRYAGAIN the command was handed to the group, but this node lost track of it (leadership changed or the node stopped applying); it may or may not have been applied")
)

// maxInFlight bounds the entries proposed and not yet applied: while they
// are on their way, new commands gather into the next entry, so that under
// load many clients share one commit.
const maxInFlight = 4

// maxEntryCommands and maxEntryBytes bound one entry (a batch larger
// than the byte bound goes alone): raft ships entries in appends under a
// deadline, and its log store keeps each entry as one value.
const (
	maxEntryCommands = 4096
	maxEntryBytes    = 8 << 20
)

// Proposer turns the write commands a leader receives into entries: it
// gathers the batches of many clients, proposes them as one entry with the
// leader's time and a fresh seed, and hands each client its results once
// the entry is committed and applied here.
//
// Its one goroutine (run) is ended by Close.
type Proposer struct {
	r   *raft.Raft
	fsm *FSM

	mu      sync.Mutex
	pending []*call
	closed  bool // under mu: Close ran, nothing more is taken
	kick    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	slots   chan struct{}
	last    int64 // the time of the last entry proposed; under mu

	applied    atomic.Uint64 // entries proposed here and applied
	appliedDur atomic.Int64  // their time from proposal to applied, summed (ns)
}

type call struct {
	batch Batch
	size  int // bytes of its arguments
	res   []protocol.Result
	err   error
	done  chan struct{}
}

// NewProposer proposes to r, whose FSM is fsm.
func NewProposer(r *raft.Raft, fsm *FSM) *Proposer {
	p := &Proposer{r: r, fsm: fsm, kick: make(chan struct{}, 1), done: make(chan struct{}),
		slots: make(chan struct{}, maxInFlight)}
	p.wg.Add(1)
	go p.run()
	return p
}

// Close stops proposing; calls waiting get ErrLeadershipLost.
func (p *Proposer) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	for _, c := range p.pending {
		c.err = ErrLeadershipLost
		close(c.done)
	}
	p.pending = nil
	p.mu.Unlock()
}

// Submit replicates one client's commands (several: a transaction, applied
// as one) and returns their results. The arguments are copied: the caller
// may reuse them once Submit returns... or before.
func (p *Proposer) Submit(cmds [][][]byte) ([]protocol.Result, error) {
	c := p.enqueue(cmds)
	<-c.done
	return c.res, c.err
}

// SubmitEach replicates several commands of one client that are not a
// transaction (a pipeline): each is its own batch, all in one entry when
// they fit.
func (p *Proposer) SubmitEach(cmds [][][]byte, out []protocol.Result) {
	calls := make([]*call, len(cmds))
	for i, cmd := range cmds {
		calls[i] = p.enqueue([][][]byte{cmd})
	}
	for i, c := range calls {
		<-c.done
		if c.err != nil {
			out[i] = protocol.Result{Err: c.err}
		} else {
			out[i] = c.res[0]
		}
	}
}

func (p *Proposer) enqueue(cmds [][][]byte) *call {
	b := make(Batch, len(cmds))
	size := 0
	for i, args := range cmds {
		cp := make([][]byte, len(args))
		for j, a := range args {
			cp[j] = append([]byte(nil), a...)
			size += len(a)
		}
		b[i] = cp
	}
	c := &call{batch: b, done: make(chan struct{}), size: size}
	if p.r.State() != raft.Leader || p.fsm.Broken() != nil {
		c.err = ErrReadOnly
		close(c.done)
		return c
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.err = ErrLeadershipLost
		close(c.done)
		return c
	}
	p.pending = append(p.pending, c)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return c
}

func (p *Proposer) run() {
	defer p.wg.Done()
	for {
		select {
		case <-p.kick:
		case <-p.done:
			return
		}
		for {
			select {
			case p.slots <- struct{}{}:
			case <-p.done:
				return
			}
			calls := p.take()
			if len(calls) == 0 {
				<-p.slots
				break
			}
			p.propose(calls)
		}
	}
}

// take removes up to an entry's worth of pending calls.
func (p *Proposer) take() []*call {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, cmds, size := 0, 0, 0
	for n < len(p.pending) {
		c := p.pending[n]
		if n > 0 && (cmds+len(c.batch) > maxEntryCommands || size+c.size > maxEntryBytes) {
			break
		}
		cmds += len(c.batch)
		size += c.size
		n++
	}
	calls := append([]*call(nil), p.pending[:n]...)
	p.pending = append(p.pending[:0], p.pending[n:]...)
	return calls
}

// propose sends calls as one entry; a goroutine waits for it and answers
// them. It holds one of slots until then.
func (p *Proposer) propose(calls []*call) {
	e := Entry{Kind: KindCommands, Now: p.clock(), Batches: make([]Batch, len(calls))}
	rand.Read(e.Seed[:])
	for i, c := range calls {
		e.Batches[i] = c.batch
	}
	began := time.Now()
	f := p.r.Apply(AppendEntry(nil, &e), 0)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.slots }()
		answer(calls, f)
		if f.Error() == nil {
			p.applied.Add(1)
			p.appliedDur.Add(int64(time.Since(began)))
		}
	}()
}

// clock is the leader's time for a new entry: never earlier than the last
// entry proposed or applied.
func (p *Proposer) clock() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := max(time.Now().UnixMilli(), p.last, p.fsm.Now())
	p.last = now
	return now
}

// Tick proposes a tick entry: time passes on every node (leases end,
// delayed jobs come due). It returns once the entry is applied here.
func (p *Proposer) Tick() error {
	if p.r.State() != raft.Leader {
		return ErrReadOnly
	}
	e := Entry{Kind: KindTick, Now: p.clock()}
	rand.Read(e.Seed[:])
	f := p.r.Apply(AppendEntry(nil, &e), 0)
	if err := f.Error(); err != nil {
		return err
	}
	if ap, ok := f.Response().(Applied); ok && ap.Err != nil {
		return ap.Err
	}
	return nil
}

func answer(calls []*call, f raft.ApplyFuture) {
	err := f.Error()
	var ap Applied
	if err == nil {
		ap, _ = f.Response().(Applied)
		err = ap.Err
	}
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		err = ErrReadOnly
	case err != nil:
		err = ErrLeadershipLost
	}
	for i, c := range calls {
		if err == nil && i < len(ap.Results) {
			c.res = ap.Results[i]
		} else if err == nil {
			c.err = errors.New("internal error: an entry's results do not match its batches")
		} else {
			c.err = err
		}
		close(c.done)
	}
}

// Applied is how many entries this proposer saw applied, and their time
// from proposal to applied, summed.
func (p *Proposer) Applied() (n uint64, total time.Duration) {
	return p.applied.Load(), time.Duration(p.appliedDur.Load())
}
