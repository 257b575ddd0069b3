package commands

import (
	"net"
	"strconv"
	"strings"
	"time"

	"sluice/protocol"
)

// Roles on the wire, in Redis's and Sentinel's words, so that clients
// configured with Sentinel find the leader with no sluice code: every node
// answers ROLE, INFO replication and the SENTINEL subset for its group,
// and a standalone node answers them too, naming itself master of a group
// of one at the address the client reached it on.

// ErrNoSuchMaster is Sentinel's answer for a master name it does not know.
var ErrNoSuchMaster = protocol.Error("ERR No such master with that name")

// downAfter is the Sentinel entries' down-after-milliseconds: a peer not
// heard from for longer shows as s_down.
const downAfter = 5 * time.Second

func replicationCommands(e *Env) []protocol.Command {
	return []protocol.Command{
		{Name: "role", Arity: 1, Flags: protocol.Fast, Handler: e.role,
			Summary: "The node's role in its group, as Redis's ROLE: master with its replicas, or slave with its master."},
		{Name: "sentinel", Arity: -2, Handler: e.sentinel, Subs: sentinelSubs, Group: "sentinel",
			Summary: "The Sentinel subset clients use to find the leader: every node answers for its group."},
	}
}

var sentinelSubs = []protocol.Command{
	{Name: "sentinel|get-master-addr-by-name", Arity: 3, Summary: "The leader's client address: [ip, port], or null.", Args: []protocol.Arg{str("master-name")}},
	{Name: "sentinel|masters", Arity: 2, Summary: "The group, as Sentinel describes the masters it monitors."},
	{Name: "sentinel|master", Arity: 3, Summary: "The group's master (leader), as Sentinel describes it.", Args: []protocol.Arg{str("master-name")}},
	{Name: "sentinel|replicas", Arity: 3, Summary: "The group's replicas (followers).", Args: []protocol.Arg{str("master-name")}},
	{Name: "sentinel|slaves", Arity: 3, Summary: "The group's replicas (followers); SENTINEL REPLICAS's old name.", Args: []protocol.Arg{str("master-name")}},
	{Name: "sentinel|sentinels", Arity: 3, Summary: "The group's other nodes, each of which answers SENTINEL.", Args: []protocol.Arg{str("master-name")}},
	{Name: "sentinel|help", Arity: 2, Summary: "Show SENTINEL's subcommands."},
}

// replStatus is e's view of the group as c should see it: a node without
// its own client address is at the address c reached it on, and a master
// is the leader.
func (e *Env) replStatus(c *protocol.Client) ReplStatus {
	var r Replication = Standalone{}
	if e.Replication != nil {
		r = e.Replication
	}
	st := r.Status()
	if st.Name == "" {
		st.Name = DefaultClusterName
	}
	if !st.Self.Known() {
		st.Self = connAddr(c)
	}
	if st.Role == RoleMaster && !st.Leader.Known() {
		st.Leader = st.Self
		st.LeaderID = st.ID
	}
	return st
}

// connAddr is the address c connected to.
func connAddr(c *protocol.Client) Addr {
	host, port, err := net.SplitHostPort(c.LocalAddr())
	if err != nil {
		return Addr{}
	}
	p, _ := strconv.Atoi(port)
	return Addr{Host: host, Port: p}
}

// offset is a peer's replication offset: the leader's applied index less
// its lag.
func offset(applied, lag uint64) int64 {
	if lag > applied {
		return 0
	}
	return int64(applied - lag)
}

// replicas are the members that are not the leader, with their addresses
// known: from a follower's view, itself among them.
func (st *ReplStatus) replicas() []Peer {
	var out []Peer
	if st.Role == RoleReplica && st.Self.Known() {
		out = append(out, Peer{ID: st.ID, Addr: st.Self, LastContact: time.Now()})
	}
	for _, p := range st.Peers {
		if p.Addr.Known() && p.Addr != st.Leader && (st.LeaderID == "" || p.ID != st.LeaderID) {
			out = append(out, p)
		}
	}
	return out
}

// ROLE
func (e *Env) role(c *protocol.Client, args [][]byte) (any, error) {
	st := e.replStatus(c)
	if st.Role == RoleMaster {
		reps := []any{}
		for _, p := range st.Peers {
			if p.Addr.Known() {
				reps = append(reps, []any{p.Addr.Host, strconv.Itoa(p.Addr.Port), strconv.FormatInt(offset(st.Applied, p.Lag), 10)})
			}
		}
		return []any{"master", int64(st.Applied), reps}, nil
	}
	state := "connected"
	if !st.Leader.Known() {
		state = "connect" // Redis's state before it has reached a master
	}
	return []any{"slave", st.Leader.Host, int64(st.Leader.Port), state, int64(st.Applied)}, nil
}

// infoReplication is INFO's replication section: Redis's fields for the
// role, then sluice's own (the group and its consensus state).
func (e *Env) infoReplication(c *protocol.Client) []string {
	st := e.replStatus(c)
	now := time.Now()
	var l []string
	if st.Role == RoleMaster {
		l = append(l, "role:master")
	} else {
		status := "down"
		if st.Leader.Known() {
			status = "up"
		}
		l = append(l, "role:slave", "master_host:"+st.Leader.Host, "master_port:"+strconv.Itoa(st.Leader.Port),
			"master_link_status:"+status, "master_last_io_seconds_ago:"+strconv.FormatInt(leaderSilence(&st, now), 10),
			"master_sync_in_progress:0", "slave_read_repl_offset:"+strconv.FormatUint(st.Applied, 10),
			"slave_repl_offset:"+strconv.FormatUint(st.Applied, 10), "slave_read_only:1")
	}
	reps := 0
	var lines []string
	if st.Role == RoleMaster {
		for _, p := range st.Peers {
			if !p.Addr.Known() {
				continue
			}
			lines = append(lines, "slave"+strconv.Itoa(reps)+":ip="+p.Addr.Host+",port="+strconv.Itoa(p.Addr.Port)+
				",state=online,offset="+strconv.FormatInt(offset(st.Applied, p.Lag), 10)+",lag="+strconv.FormatInt(seconds(p.LastContact, now), 10))
			reps++
		}
	}
	l = append(l, "connected_slaves:"+strconv.Itoa(reps))
	l = append(l, lines...)
	l = append(l, "master_failover_state:no-failover", "master_repl_offset:"+strconv.FormatUint(st.Applied, 10),
		"cluster_name:"+infoName(st.Name), "cluster_enabled_raft:"+boolDigit(e.Replication != nil && st.ID != ""),
		"raft_node_id:"+infoName(st.ID), "raft_leader_id:"+infoName(st.LeaderID),
		"raft_term:"+strconv.FormatUint(st.Term, 10), "raft_commit_index:"+strconv.FormatUint(st.Commit, 10),
		"raft_applied_index:"+strconv.FormatUint(st.Applied, 10), "raft_peers:"+strconv.Itoa(len(st.Peers)))
	for i, p := range st.Peers {
		contact := int64(-1)
		if !p.LastContact.IsZero() {
			contact = max(0, now.Sub(p.LastContact).Milliseconds())
		}
		ip, port := p.Addr.Host, strconv.Itoa(p.Addr.Port)
		if !p.Addr.Known() {
			ip, port = "", "0"
		}
		l = append(l, "peer"+strconv.Itoa(i)+":id="+infoName(p.ID)+",ip="+ip+",port="+port+
			",last_contact_ms="+strconv.FormatInt(contact, 10)+",lag="+strconv.FormatUint(p.Lag, 10))
	}
	return l
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// seconds is how many whole seconds ago t was; 0 for never.
func seconds(t, now time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(0, int64(now.Sub(t)/time.Second))
}

// leaderSilence is a follower's master_last_io_seconds_ago: seconds since
// it heard from the leader, -1 if it never did, as Redis says.
func leaderSilence(st *ReplStatus, now time.Time) int64 {
	for _, p := range st.Peers {
		if p.ID == st.LeaderID && st.LeaderID != "" && !p.LastContact.IsZero() {
			return seconds(p.LastContact, now)
		}
	}
	return -1
}

// SENTINEL GET-MASTER-ADDR-BY-NAME name | MASTERS | MASTER name |
// REPLICAS name | SLAVES name | SENTINELS name | HELP
// (the dispatcher has checked the arity in sentinelSubs)
func (e *Env) sentinel(c *protocol.Client, args [][]byte) (any, error) {
	sub := strings.ToLower(string(args[1]))
	if sub == "help" {
		return []string{
			"SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET-MASTER-ADDR-BY-NAME <master-name>", "    Return the ip and port number of the group's leader.",
			"MASTERS", "    Show the group's master (a list of one).",
			"MASTER <master-name>", "    Show the group's master.",
			"REPLICAS <master-name>", "    Show the group's replicas.",
			"SENTINELS <master-name>", "    Show the group's other nodes, each of which answers SENTINEL.",
		}, nil
	}
	st := e.replStatus(c)
	if sub == "masters" {
		return []any{masterEntry(&st)}, nil
	}
	switch sub {
	case "get-master-addr-by-name", "master", "replicas", "slaves", "sentinels":
	default:
		return nil, protocol.UnknownSubcommand("sentinel", args[1])
	}
	if string(args[2]) != st.Name {
		if sub == "get-master-addr-by-name" {
			return protocol.NullArray, nil
		}
		return nil, ErrNoSuchMaster
	}
	switch sub {
	case "get-master-addr-by-name":
		if !st.Leader.Known() {
			// An election is on: the client asks another node, or again.
			return protocol.NullArray, nil
		}
		return []any{st.Leader.Host, strconv.Itoa(st.Leader.Port)}, nil
	case "master":
		return masterEntry(&st), nil
	case "replicas", "slaves":
		out := []any{}
		now := time.Now()
		for _, p := range st.replicas() {
			out = append(out, replicaEntry(&st, p, now))
		}
		return out, nil
	}
	out := []any{} // sentinels: the other nodes
	for _, p := range st.Peers {
		if p.Addr.Known() {
			out = append(out, sentinelEntry(p))
		}
	}
	return out, nil
}

// masterEntry describes the group's leader in the fields Redis Sentinel
// gives a master, every value a string as Sentinel sends them. Without a
// known leader the entry is flagged down and failing over, so that
// clients ask again rather than use it.
func masterEntry(st *ReplStatus) protocol.Map {
	flags, ip, port := "master", st.Leader.Host, strconv.Itoa(st.Leader.Port)
	if !st.Leader.Known() {
		flags, ip, port = "master,s_down,o_down,failover_in_progress", "", "0"
	}
	n := len(st.Peers) + 1
	return protocol.Map{
		"name", st.Name, "ip", ip, "port", port, "runid", st.LeaderID, "flags", flags,
		"link-pending-commands", "0", "link-refcount", "1",
		"last-ping-sent", "0", "last-ok-ping-reply", "0", "last-ping-reply", "0",
		"down-after-milliseconds", strconv.FormatInt(downAfter.Milliseconds(), 10), "info-refresh", "0",
		"role-reported", "master", "role-reported-time", "0", "config-epoch", strconv.FormatUint(st.Term, 10),
		"num-slaves", strconv.Itoa(len(st.replicas())), "num-other-sentinels", strconv.Itoa(len(st.Peers)),
		"quorum", strconv.Itoa(n/2 + 1), "failover-timeout", "0", "parallel-syncs", "1",
	}
}

// replicaEntry describes a follower as Sentinel describes a replica.
func replicaEntry(st *ReplStatus, p Peer, now time.Time) protocol.Map {
	flags := "slave"
	if !p.LastContact.IsZero() && now.Sub(p.LastContact) > downAfter {
		flags = "slave,s_down"
	}
	ip, port := p.Addr.Host, strconv.Itoa(p.Addr.Port)
	return protocol.Map{
		"name", net.JoinHostPort(ip, port), "ip", ip, "port", port, "runid", p.ID, "flags", flags,
		"link-pending-commands", "0", "link-refcount", "1",
		"last-ping-sent", "0", "last-ok-ping-reply", "0", "last-ping-reply", "0",
		"down-after-milliseconds", strconv.FormatInt(downAfter.Milliseconds(), 10), "info-refresh", "0",
		"role-reported", "slave", "role-reported-time", "0", "master-link-down-time", "0",
		"master-link-status", "ok", "master-host", st.Leader.Host, "master-port", strconv.Itoa(st.Leader.Port),
		"slave-priority", "100", "slave-repl-offset", strconv.FormatInt(offset(st.Applied, p.Lag), 10),
		"replica-announced", "1",
	}
}

// sentinelEntry describes another node as Sentinel describes a fellow
// sentinel: clients add it to the addresses they ask.
func sentinelEntry(p Peer) protocol.Map {
	ip, port := p.Addr.Host, strconv.Itoa(p.Addr.Port)
	return protocol.Map{
		"name", p.ID, "ip", ip, "port", port, "runid", p.ID, "flags", "sentinel",
		"link-pending-commands", "0", "link-refcount", "1",
		"last-ping-sent", "0", "last-ok-ping-reply", "0", "last-ping-reply", "0",
		"down-after-milliseconds", strconv.FormatInt(downAfter.Milliseconds(), 10),
		"last-hello-message", "0", "voted-leader", "?", "voted-leader-epoch", "0",
	}
}
