package cluster

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"sluice/faultproxy"
)

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// applyAll applies entries of commands straight to n's FSM, from index
// first on.
func applyAll(t *testing.T, n *storeNode, first uint64, now int64, batches ...Batch) {
	t.Helper()
	e := Entry{Kind: KindCommands, Now: now, Batches: batches}
	copy(e.Seed[:], fmt.Sprint(first))
	ap := n.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: first, Data: AppendEntry(nil, &e)}).(Applied)
	if ap.Err != nil {
		t.Fatal(ap.Err)
	}
	for i, rs := range ap.Results {
		for j, r := range rs {
			if r.Err != nil {
				t.Fatalf("batch %d command %d: %v", i, j, r.Err)
			}
		}
	}
}

// A node restored from another's snapshot holds the same state (jobs,
// policies, users) and, given the same next entries, stays the same: the
// generator's state travels with it.
func TestSnapshotRestoresTheSameState(t *testing.T) {
	a := newStoreNode(t)
	now := int64(1765100000000)
	applyAll(t, a, 1, now,
		Batch{args("JOBPUSH mail send one")}, Batch{args("JOBPUSH mail send two DELAY 60000")},
		Batch{args("POLICYSET CONCURRENCY smtp 3")}, Batch{args("JOBPUSH mail send three CONCURRENCY smtp")},
		Batch{args("ACL SETUSER carol on #" + fmt.Sprintf("%064x", 7) + " ~mail* +@producer")})
	applyAll(t, a, 2, now+5, Batch{args("JOBRESERVE w 30000 QUEUES mail")})

	var sink memSink
	snap, err := a.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	b := newStoreNode(t)
	applyAll(t, b, 1, now, Batch{args("JOBPUSH other h forget-me")})
	if err := b.fsm.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if da, db := a.digest(t), b.digest(t); da != db {
		t.Fatal("the restored state differs")
	}
	if b.fsm.AppliedIndex() != 2 || b.fsm.Now() != now+5 {
		t.Fatalf("restored index %d, now %d", b.fsm.AppliedIndex(), b.fsm.Now())
	}
	if b.fsm.srv.ACL().User("carol") == nil {
		t.Fatal("the users were not restored")
	}
	for _, n := range []*storeNode{a, b} {
		applyAll(t, n, 3, now+10, Batch{args("JOBPUSH mail send four")}, Batch{args("JOBRESERVE w2 30000 QUEUES mail")})
	}
	if da, db := a.digest(t), b.digest(t); da != db {
		t.Fatal("after the same entries the states differ: the generator did not travel")
	}

	// A damaged snapshot stops the node applying; it never half-applies.
	c := newStoreNode(t)
	bad := append([]byte(nil), sink.Bytes()...)
	bad = bad[:len(bad)-3]
	if err := c.fsm.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
		t.Fatal("a cut snapshot restored")
	}
	if c.fsm.Broken() == nil {
		t.Fatal("a node that failed a restore goes on applying")
	}
}

// A node cut off while the others move on and compact their logs catches
// up from the leader's snapshot, and ends with the same state.
func TestLaggingNodeCatchesUpFromASnapshot(t *testing.T) {
	nodes := make([]*storeNode, 3)
	var fsms []raft.FSM
	for i := range nodes {
		nodes[i] = newStoreNode(t)
		fsms = append(fsms, nodes[i].fsm)
	}
	g := startGroupWith(t, fsms, func(rc *RaftConfig) { rc.SnapshotThreshold, rc.TrailingLogs = 20, 5 })
	l := g.leader(t, -1)
	cut := (l + 1) % 3
	for j := range nodes {
		if j != cut {
			g.proxies[cut][j].SetBoth(faultproxy.Drop)
			g.proxies[j][cut].SetBoth(faultproxy.Drop)
			g.proxies[cut][j].Cut()
			g.proxies[j][cut].Cut()
		}
	}
	p := NewProposer(g.nodes[l].raft, nodes[l].fsm)
	defer p.Close()
	for i := range 100 {
		if _, err := p.Submit([][][]byte{args(fmt.Sprintf("JOBPUSH q h p%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.nodes[l].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for j := range nodes {
		if j != cut {
			g.proxies[cut][j].SetBoth(faultproxy.Pass)
			g.proxies[j][cut].SetBoth(faultproxy.Pass)
		}
	}
	want := g.nodes[l].raft.AppliedIndex()
	deadline := time.Now().Add(20 * time.Second)
	// Caught up, and from a snapshot (raft counts it once the FSM has
	// restored it).
	for nodes[cut].fsm.AppliedIndex() < want || g.nodes[cut].raft.Stats()["last_snapshot_index"] == "0" {
		if time.Now().After(deadline) {
			t.Fatalf("the cut node stayed at %d of %d, last snapshot %s", nodes[cut].fsm.AppliedIndex(), want,
				g.nodes[cut].raft.Stats()["last_snapshot_index"])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if nodes[cut].st.Len() != 100 || nodes[cut].digest(t) != nodes[l].digest(t) {
		t.Fatalf("the caught-up node holds %d jobs; digests equal: %v", nodes[cut].st.Len(), nodes[cut].digest(t) == nodes[l].digest(t))
	}
}

// An entry with a command this node does not know stops the node: the
// entries after it are not applied either, and no snapshot is taken that
// would skip them.
func TestUnknownCommandStopsApplying(t *testing.T) {
	n := newStoreNode(t)
	broke := make(chan struct{})
	n.fsm.onBreak = func() { close(broke) }
	e := Entry{Kind: KindCommands, Now: 1765100000000, Batches: []Batch{{args("JOBPUSH q h before")}, {args("NEWERCOMMAND x")}}}
	if ap := n.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: 1, Data: AppendEntry(nil, &e)}).(Applied); ap.Err == nil {
		t.Fatal("an entry with an unknown command applied")
	}
	if n.st.Len() != 0 {
		t.Fatal("part of the entry was applied")
	}
	<-broke
	e = Entry{Kind: KindCommands, Now: 1765100000001, Batches: []Batch{{args("JOBPUSH q h after")}}}
	if ap := n.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: 2, Data: AppendEntry(nil, &e)}).(Applied); ap.Err == nil || n.st.Len() != 0 {
		t.Fatalf("an entry after the break applied: %v", ap.Err)
	}
	if _, err := n.fsm.Snapshot(); err == nil {
		t.Fatal("a snapshot was taken after the break")
	}
	// A wrong arity stops it too.
	m := newStoreNode(t)
	e = Entry{Kind: KindCommands, Now: 1765100000000, Batches: []Batch{{args("JOBACK")}}}
	if ap := m.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: 1, Data: AppendEntry(nil, &e)}).(Applied); ap.Err == nil || m.fsm.Broken() == nil {
		t.Fatal("a command of the wrong arity was applied or answered")
	}
}
