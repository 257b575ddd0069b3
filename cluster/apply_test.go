package cluster

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"sluice/blocking"
	"sluice/commands"
	"sluice/protocol"
	"sluice/store"
)

// storeNode is a node's replicated state: its store and what applies
// entries to it.
type storeNode struct {
	st  *store.Store
	fsm *FSM
}

func newStoreNode(t *testing.T) *storeNode {
	t.Helper()
	gen := &store.EntryGenerator{}
	st, err := store.New(store.DefaultConfig(), gen)
	if err != nil {
		t.Fatal(err)
	}
	n := &storeNode{st: st}
	now := func() int64 { return n.fsm.Now() }
	waiters, _ := blocking.Attach(st, zerolog.Nop(), now)
	env := &commands.Env{Store: st, Waiters: waiters, Now: now, MaxPayload: 1 << 20, Version: "test"}
	table, err := protocol.NewTable(commands.Table(env))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := protocol.NewServer(protocol.DefaultConfig(), table, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	n.fsm = NewFSM(st, gen, table, srv, zerolog.Nop())
	return n
}

// digest hashes the store's whole state, as its dump writes it.
func (n *storeNode) digest(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	n.st.Shared()
	defer n.st.Unshared()
	if err := n.st.Dump(n.fsm.Now(), func(r *store.Record) error {
		fmt.Fprintf(h, "%+v\n", *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func args(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		out = append(out, []byte(f))
	}
	return out
}

// Commands proposed on the leader are applied on every node alike: the
// replies come from the leader's store after commit, and every store ends
// with the same state, generated ids and tokens included.
func TestReplicatedCommandsConverge(t *testing.T) {
	nodes := make([]*storeNode, 3)
	var fsms []raft.FSM
	for i := range nodes {
		nodes[i] = newStoreNode(t)
		fsms = append(fsms, nodes[i].fsm)
	}
	g := startGroupWith(t, fsms)
	l := g.leader(t, -1)
	p := NewProposer(g.nodes[l].raft, nodes[l].fsm)
	defer p.Close()

	// A pipeline of pushes, each its own batch.
	var pushes [][][]byte
	for i := range 20 {
		pushes = append(pushes, args(fmt.Sprintf("JOBPUSH mail send payload-%d", i)))
	}
	out := make([]protocol.Result, len(pushes))
	p.SubmitEach(pushes, out)
	ids := map[string]bool{}
	for i, r := range out {
		id, ok := r.Reply.(string)
		if r.Err != nil || !ok || id == "" {
			t.Fatalf("push %d: %#v %v", i, r.Reply, r.Err)
		}
		ids[id] = true
	}
	if len(ids) != 20 {
		t.Fatalf("%d distinct ids for 20 pushes", len(ids))
	}
	// A transaction: two pushes applied as one.
	res, err := p.Submit([][][]byte{args("JOBPUSH mail send a"), args("JOBPUSH mail send b")})
	if err != nil || len(res) != 2 || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("transaction: %+v %v", res, err)
	}
	// Reserve and ack some.
	res, err = p.Submit([][][]byte{args("JOBRESERVE w1 30000 COUNT 5 QUEUES mail")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	v := reflect.ValueOf(res[0].Reply)
	if v.Kind() != reflect.Slice || v.Len() != 5 {
		t.Fatalf("reserve reply: %#v", res[0].Reply)
	}
	var acks [][][]byte
	for i := range v.Len() {
		r := v.Index(i).Interface().(store.Reservation)
		acks = append(acks, args("JOBACK "+r.Token))
	}
	out = make([]protocol.Result, len(acks))
	p.SubmitEach(acks, out)
	for i, r := range out {
		if r.Err != nil {
			t.Fatalf("ack %d: %v", i, r.Err)
		}
	}

	// A follower refuses to propose.
	f := (l + 1) % 3
	fp := NewProposer(g.nodes[f].raft, nodes[f].fsm)
	defer fp.Close()
	if _, err := fp.Submit([][][]byte{args("JOBPUSH mail send x")}); err != ErrReadOnly {
		t.Fatalf("follower: %v", err)
	}

	// Every node reaches the leader's index and state.
	want := g.nodes[l].raft.AppliedIndex()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for n.fsm.AppliedIndex() < want {
			if time.Now().After(deadline) {
				t.Fatalf("a node stayed at index %d of %d", n.fsm.AppliedIndex(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	d0 := nodes[0].digest(t)
	for i, n := range nodes[1:] {
		if d := n.digest(t); d != d0 {
			t.Fatalf("node %d's state differs from node 0's", i+1)
		}
	}
	if got := nodes[f].st.Len(); got != 22 {
		t.Fatalf("follower holds %d jobs, want 22", got)
	}
	succeeded := 0
	for _, n := range nodes {
		st, err := n.st.QueueStats(n.fsm.Now(), "mail")
		if err != nil {
			t.Fatal(err)
		}
		succeeded += int(st.SucceededTotal)
	}
	if succeeded != 15 {
		t.Fatalf("%d succeeded over 3 nodes, want 5 each", succeeded)
	}
}

// A read on one node between entries changes nothing the others do not
// change too: every entry runs the store's maintenance at its time before
// its commands, even commands that are refused before they look at the
// store, so a read at that time finds nothing due (here a periodic entry's
// tick, whose job would otherwise be pushed by the read, with the reading
// node's own ids).
func TestReadsBetweenEntriesChangeNothing(t *testing.T) {
	a, b := newStoreNode(t), newStoreNode(t)
	const t0 = int64(1_800_000_000_000)
	entries := []Entry{
		{Kind: KindCommands, Now: t0, Batches: []Batch{{args("CRONSET every @every\x201s q h p")}}},
		// Commands that change nothing (refused before they look at the
		// store), yet move the group's time on.
		{Kind: KindCommands, Now: t0 + 1500, Batches: []Batch{{args("POLICYSET CONCURRENCY k 0")}}},
		{Kind: KindCommands, Now: t0 + 2500, Batches: []Batch{{args("JOBACK no-such-token")}}},
		{Kind: KindTick, Now: t0 + 3000},
	}
	for i := range entries {
		entries[i].Seed[0] = byte(i + 1)
	}
	// args splits on spaces: put the schedule back together.
	entries[0].Batches[0][0] = [][]byte{[]byte("CRONSET"), []byte("every"), []byte("@every 1s"), []byte("q"), []byte("h"), []byte("p")}
	for i, e := range entries {
		for _, n := range []*storeNode{a, b} {
			if r, ok := n.fsm.Apply(&raft.Log{Index: uint64(i + 1), Data: AppendEntry(nil, &e)}).(Applied); !ok || r.Err != nil {
				t.Fatalf("entry %d: %+v", i, r)
			}
		}
		// Node b serves reads at its time after every entry; a serves none.
		b.st.Queues(b.fsm.Now())
		if _, err := b.st.QueueStats(b.fsm.Now(), "q"); err != nil {
			t.Fatal(err)
		}
	}
	if a.st.Len() == 0 {
		t.Fatal("the periodic entry pushed no job: the test shows nothing")
	}
	if da, db := a.digest(t), b.digest(t); da != db {
		t.Fatalf("the node that served reads differs from the one that did not (%d and %d jobs)", b.st.Len(), a.st.Len())
	}
}
