package commands

import (
	"net"
	"strconv"
	"sync"
	"time"

	"sluice/protocol"
)

// Replication is what a node knows of its group, for the commands that
// show roles the way Redis and Sentinel do (ROLE, INFO replication,
// SENTINEL, +switch-master). A replicated node implements it over its
// consensus engine; a node without a group uses Standalone.
type Replication interface {
	// Status is the node's current view of the group.
	Status() ReplStatus
	// OnLeaderChange calls fn, from any goroutine, each time the leader
	// changes (to unknown included), until the returned cancel is
	// called. fn must not block.
	OnLeaderChange(fn func(LeaderChange)) (cancel func())
}

// Role is a node's role, in Redis's words.
type Role uint8

// The roles.
const (
	RoleMaster  Role = iota // the leader: it takes writes
	RoleReplica             // a follower
)

// Addr is a client address: where clients reach a node. The zero value
// is unknown.
type Addr struct {
	Host string
	Port int
}

// Known reports whether a is an address.
func (a Addr) Known() bool { return a.Host != "" && a.Port > 0 }

// String is host:port.
func (a Addr) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// Peer is another member of the group, as this node sees it.
type Peer struct {
	ID   string
	Addr Addr // its client address; zero: unknown
	// LastContact is when this node last heard from it (the leader) or
	// it from the leader (a follower's view of the leader); zero: never.
	LastContact time.Time
	// Lag is how many entries it is behind the leader's commit index.
	Lag uint64
}

// ReplStatus is a node's view of its group.
type ReplStatus struct {
	Name     string // the group's name: the Sentinel master name (--cluster-name)
	Role     Role
	ID       string // this node's id; "" standalone
	Self     Addr   // this node's client address; zero: the address each client connected to
	Leader   Addr   // the leader's client address; zero: unknown (an election is on)
	LeaderID string // "" : unknown
	Term     uint64
	Commit   uint64 // commit index
	Applied  uint64 // applied index: the node's replication offset
	Peers    []Peer // the other members
}

// LeaderChange is a change of leader: +switch-master's addresses.
type LeaderChange struct{ Old, New Addr }

// DefaultClusterName is --cluster-name's default.
const DefaultClusterName = "sluice"

// Standalone is the Replication of a node without a group: it names
// itself master, at the address each client reached it on, with no
// replicas, and the leader never changes.
type Standalone struct{ Name string }

var _ Replication = Standalone{}

// Status implements Replication.
func (s Standalone) Status() ReplStatus {
	name := s.Name
	if name == "" {
		name = DefaultClusterName
	}
	return ReplStatus{Name: name, Role: RoleMaster}
}

// OnLeaderChange implements Replication: there are none.
func (Standalone) OnLeaderChange(func(LeaderChange)) func() { return func() {} }

// FakeReplication is a Replication whose view tests set: SetStatus
// replaces it and, when the leader's address changed, tells the
// subscribers.
type FakeReplication struct {
	mu   sync.Mutex // protects st, subs, next
	st   ReplStatus
	subs map[int]func(LeaderChange)
	next int
}

var _ Replication = (*FakeReplication)(nil)

// NewFakeReplication starts with st.
func NewFakeReplication(st ReplStatus) *FakeReplication {
	return &FakeReplication{st: st, subs: map[int]func(LeaderChange){}}
}

// Status implements Replication.
func (f *FakeReplication) Status() ReplStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Peers = append([]Peer(nil), st.Peers...)
	return st
}

// OnLeaderChange implements Replication.
func (f *FakeReplication) OnLeaderChange(fn func(LeaderChange)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

// SetStatus replaces the view; a new leader address is announced to the
// subscribers, in the caller's goroutine.
func (f *FakeReplication) SetStatus(st ReplStatus) {
	f.mu.Lock()
	old := f.st.Leader
	f.st = st
	var fns []func(LeaderChange)
	if old != st.Leader {
		for _, fn := range f.subs {
			fns = append(fns, fn)
		}
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn(LeaderChange{Old: old, New: st.Leader})
	}
}

// SwitchMasterChannel is the channel leader changes are published on, as
// Redis Sentinel names it.
const SwitchMasterChannel = "+switch-master"

// AnnounceLeaderChanges publishes each leader change of e's Replication
// on +switch-master to srv's subscribers, as Sentinel does: "<name>
// <old-ip> <old-port> <new-ip> <new-port>". A change to an unknown leader
// (an election under way) is not announced: clients keep the old address
// until the next leader is known, and a write there meanwhile answers
// -READONLY. It returns the function that stops it (the server's
// Shutdown calls it). Without a Replication it does nothing.
func AnnounceLeaderChanges(e *Env, srv *protocol.Server) (stop func()) {
	if e.Replication == nil {
		return func() {}
	}
	r := e.Replication
	var mu sync.Mutex // protects last: changes arrive from the engine's goroutines
	last := r.Status().Leader
	return r.OnLeaderChange(func(ch LeaderChange) {
		if !ch.New.Known() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		old := ch.Old
		if !old.Known() {
			old = last // the leader before the election
		}
		if !old.Known() {
			old = ch.New
		}
		last = ch.New
		msg := r.Status().Name + " " + old.Host + " " + strconv.Itoa(old.Port) + " " +
			ch.New.Host + " " + strconv.Itoa(ch.New.Port)
		srv.Publish(SwitchMasterChannel, msg)
	})
}
