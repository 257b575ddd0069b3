package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// progressTransport is raft's transport with a record of what the
// followers answered the leader's appends: raft keeps each follower's
// progress to itself, and INFO replication and the metrics show it (each
// peer's last contact and how far behind it is).
type progressTransport struct {
	*raft.NetworkTransport
	book *progressBook
}

// progressBook is each peer's last answer to an append, by id.
type progressBook struct {
	mu sync.Mutex
	by map[raft.ServerID]Progress
}

// Progress is what a follower last told the leader.
type Progress struct {
	LastLog uint64    // the last index in its log
	Contact time.Time // when it answered
}

func (b *progressBook) record(id raft.ServerID, resp *raft.AppendEntriesResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.by == nil {
		b.by = map[raft.ServerID]Progress{}
	}
	b.by[id] = Progress{LastLog: resp.LastLog, Contact: time.Now()}
}

func (b *progressBook) get(id string) (Progress, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.by[raft.ServerID(id)]
	return p, ok
}

func (t *progressTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.book.record(id, resp)
	}
	return err
}

func (t *progressTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	w := &progressPipeline{AppendPipeline: p, id: id, book: t.book,
		out: make(chan raft.AppendFuture, 128), stop: make(chan struct{})}
	go w.forward()
	return w, nil
}

// progressPipeline passes the pipeline's finished appends on, recording
// each answer. Its goroutine (forward) ends with Close.
type progressPipeline struct {
	raft.AppendPipeline
	id   raft.ServerID
	book *progressBook
	out  chan raft.AppendFuture
	stop chan struct{}
	once sync.Once
}

func (p *progressPipeline) forward() {
	in := p.AppendPipeline.Consumer()
	for {
		select {
		case f := <-in:
			if f.Error() == nil {
				p.book.record(p.id, f.Response())
			}
			select {
			case p.out <- f:
			case <-p.stop:
				return
			}
		case <-p.stop:
			return
		}
	}
}

func (p *progressPipeline) Consumer() <-chan raft.AppendFuture { return p.out }

func (p *progressPipeline) Close() error {
	p.once.Do(func() { close(p.stop) })
	return p.AppendPipeline.Close()
}
