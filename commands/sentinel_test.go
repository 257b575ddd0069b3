package commands_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/commands"
)

var masterFields = []string{"name", "ip", "port", "runid", "flags", "link-pending-commands", "link-refcount",
	"last-ping-sent", "last-ok-ping-reply", "last-ping-reply", "down-after-milliseconds", "info-refresh",
	"role-reported", "role-reported-time", "config-epoch", "num-slaves", "num-other-sentinels", "quorum",
	"failover-timeout", "parallel-syncs"}

var replicaFields = []string{"name", "ip", "port", "runid", "flags", "link-pending-commands", "link-refcount",
	"last-ping-sent", "last-ok-ping-reply", "last-ping-reply", "down-after-milliseconds", "info-refresh",
	"role-reported", "role-reported-time", "master-link-down-time", "master-link-status", "master-host",
	"master-port", "slave-priority", "slave-repl-offset", "replica-announced"}

var sentinelFields = []string{"name", "ip", "port", "runid", "flags", "link-pending-commands", "link-refcount",
	"last-ping-sent", "last-ok-ping-reply", "last-ping-reply", "down-after-milliseconds",
	"last-hello-message", "voted-leader", "voted-leader-epoch"}

// infoFields reads INFO's "name:value" lines.
func infoFields(text string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// TestStandaloneRoles: a node without a group names itself master, at
// the address the client reached, of a group of one called "sluice", in
// ROLE, INFO (by default too, as ioredis's ready check reads it) and the
// Sentinel subset; other master names are unknown, as Sentinel says.
func TestStandaloneRoles(t *testing.T) {
	ts := start(t)
	host, port, _ := net.SplitHostPort(ts.addr)
	protocols(t, func(t *testing.T, proto func(*redis.Options)) {
		c := ts.client(t, proto)
		role := do(t, c, "ROLE").([]any)
		if len(role) != 3 || role[0] != "master" || role[1] != int64(0) || len(role[2].([]any)) != 0 {
			t.Errorf("ROLE %#v", role)
		}
		addr := do(t, c, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sluice").([]any)
		if len(addr) != 2 || addr[0] != host || addr[1] != port {
			t.Errorf("get-master-addr-by-name %#v, want [%s %s]", addr, host, port)
		}
		isNil(t, c, "SENTINEL", "get-master-addr-by-name", "other")
		masters := do(t, c, "SENTINEL", "MASTERS").([]any)
		if len(masters) != 1 {
			t.Fatalf("MASTERS %#v", masters)
		}
		m := asMap(t, masters[0], masterFields...)
		if m["name"] != "sluice" || m["ip"] != host || m["port"] != port || m["flags"] != "master" ||
			m["num-slaves"] != "0" || m["num-other-sentinels"] != "0" || m["quorum"] != "1" {
			t.Errorf("MASTERS %v", m)
		}
		m = asMap(t, do(t, c, "SENTINEL", "master", "sluice"), masterFields...)
		if m["ip"] != host || m["port"] != port {
			t.Errorf("MASTER %v", m)
		}
		for _, sub := range []string{"MASTER", "REPLICAS", "SLAVES", "SENTINELS"} {
			if e := doErr(t, c, "SENTINEL", sub, "other"); e != "ERR No such master with that name" {
				t.Errorf("%s other: %s", sub, e)
			}
		}
		for _, sub := range []string{"REPLICAS", "SLAVES", "SENTINELS"} {
			if v := do(t, c, "SENTINEL", sub, "sluice").([]any); len(v) != 0 {
				t.Errorf("%s %#v", sub, v)
			}
		}
		if e := doErr(t, c, "SENTINEL", "FAILOVER", "sluice"); !strings.HasPrefix(e, "ERR unknown subcommand 'FAILOVER'") {
			t.Errorf("FAILOVER: %s", e)
		}
		if e := doErr(t, c, "SENTINEL", "MASTERS", "x"); !strings.Contains(e, "wrong number of arguments for 'sentinel|masters'") {
			t.Errorf("MASTERS x: %s", e)
		}
		for _, args := range [][]any{{"INFO"}, {"INFO", "replication"}} {
			text := do(t, c, args...).(string)
			f := infoFields(text)
			if !strings.Contains(text, "# Replication\r\n") || f["role"] != "master" || f["connected_slaves"] != "0" ||
				f["cluster_name"] != "sluice" || f["raft_peers"] != "0" || f["master_repl_offset"] != "0" {
				t.Errorf("%v: %q", args, text)
			}
		}
	})
}

// TestClusterNameOption: --cluster-name is the master name a standalone
// node answers to.
func TestClusterNameOption(t *testing.T) {
	ts := start(t, func(s *setup) { s.repl = commands.Standalone{Name: "jobs-eu"} })
	c := ts.client(t)
	if v := do(t, c, "SENTINEL", "get-master-addr-by-name", "jobs-eu").([]any); len(v) != 2 {
		t.Errorf("jobs-eu: %#v", v)
	}
	isNil(t, c, "SENTINEL", "get-master-addr-by-name", "sluice")
}

func groupLeader() commands.ReplStatus {
	return commands.ReplStatus{Name: "sluice", Role: commands.RoleMaster, ID: "n1",
		Self: commands.Addr{Host: "127.0.0.1", Port: 6390}, Term: 7, Commit: 120, Applied: 118,
		Peers: []commands.Peer{
			{ID: "n2", Addr: commands.Addr{Host: "127.0.0.1", Port: 6391}, LastContact: time.Now(), Lag: 3},
			{ID: "n3", Addr: commands.Addr{Host: "127.0.0.1", Port: 6392}, LastContact: time.Now().Add(-time.Minute), Lag: 200},
		}}
}

func groupFollower() commands.ReplStatus {
	return commands.ReplStatus{Name: "sluice", Role: commands.RoleReplica, ID: "n2",
		Self: commands.Addr{Host: "127.0.0.1", Port: 6391}, Leader: commands.Addr{Host: "127.0.0.1", Port: 6390}, LeaderID: "n1",
		Term: 7, Commit: 117, Applied: 115,
		Peers: []commands.Peer{
			{ID: "n1", Addr: commands.Addr{Host: "127.0.0.1", Port: 6390}, LastContact: time.Now()},
			{ID: "n3", Addr: commands.Addr{Host: "127.0.0.1", Port: 6392}},
		}}
}

// TestGroupRoles: a leader and a follower of a group of three, and a
// follower while no leader is known, in ROLE, INFO replication and the
// Sentinel subset, in both protocols.
func TestGroupRoles(t *testing.T) {
	fake := commands.NewFakeReplication(groupLeader())
	ts := start(t, func(s *setup) { s.repl = fake })
	protocols(t, func(t *testing.T, proto func(*redis.Options)) {
		c := ts.client(t, proto)
		fake.SetStatus(groupLeader())
		role := do(t, c, "ROLE").([]any)
		want := []any{"master", int64(118), []any{[]any{"127.0.0.1", "6391", "115"}, []any{"127.0.0.1", "6392", "0"}}}
		if !equalAny(role, want) {
			t.Errorf("leader ROLE %#v, want %#v", role, want)
		}
		f := infoFields(do(t, c, "INFO", "replication").(string))
		for k, v := range map[string]string{"role": "master", "connected_slaves": "2",
			"slave0":    "ip=127.0.0.1,port=6391,state=online,offset=115,lag=0",
			"slave1":    "ip=127.0.0.1,port=6392,state=online,offset=0,lag=60",
			"raft_term": "7", "raft_commit_index": "120", "raft_applied_index": "118", "raft_node_id": "n1",
			"raft_leader_id": "n1", "cluster_enabled_raft": "1", "raft_peers": "2", "master_repl_offset": "118"} {
			if f[k] != v {
				t.Errorf("leader INFO %s = %q, want %q", k, f[k], v)
			}
		}
		if p := f["peer1"]; !strings.HasPrefix(p, "id=n3,ip=127.0.0.1,port=6392,last_contact_ms=6") || !strings.HasSuffix(p, ",lag=200") {
			t.Errorf("leader INFO peer1 = %q", p)
		}
		if v := do(t, c, "SENTINEL", "get-master-addr-by-name", "sluice").([]any); !equalAny(v, []any{"127.0.0.1", "6390"}) {
			t.Errorf("leader get-master-addr-by-name %#v", v)
		}
		m := asMap(t, do(t, c, "SENTINEL", "MASTER", "sluice"), masterFields...)
		if m["ip"] != "127.0.0.1" || m["port"] != "6390" || m["runid"] != "n1" || m["num-slaves"] != "2" ||
			m["num-other-sentinels"] != "2" || m["quorum"] != "2" || m["config-epoch"] != "7" {
			t.Errorf("leader MASTER %v", m)
		}
		reps := do(t, c, "SENTINEL", "REPLICAS", "sluice").([]any)
		if len(reps) != 2 {
			t.Fatalf("leader REPLICAS %#v", reps)
		}
		r0, r1 := asMap(t, reps[0], replicaFields...), asMap(t, reps[1], replicaFields...)
		if r0["ip"] != "127.0.0.1" || r0["port"] != "6391" || r0["flags"] != "slave" || r0["slave-repl-offset"] != "115" ||
			r0["master-host"] != "127.0.0.1" || r0["master-port"] != "6390" || r0["name"] != "127.0.0.1:6391" {
			t.Errorf("leader REPLICAS[0] %v", r0)
		}
		if r1["flags"] != "slave,s_down" { // not heard from for a minute
			t.Errorf("leader REPLICAS[1] %v", r1)
		}
		sens := do(t, c, "SENTINEL", "SENTINELS", "sluice").([]any)
		if len(sens) != 2 {
			t.Fatalf("leader SENTINELS %#v", sens)
		}
		if s := asMap(t, sens[1], sentinelFields...); s["ip"] != "127.0.0.1" || s["port"] != "6392" || s["flags"] != "sentinel" {
			t.Errorf("leader SENTINELS[1] %v", s)
		}

		fake.SetStatus(groupFollower())
		role = do(t, c, "ROLE").([]any)
		if want := []any{"slave", "127.0.0.1", int64(6390), "connected", int64(115)}; !equalAny(role, want) {
			t.Errorf("follower ROLE %#v, want %#v", role, want)
		}
		f = infoFields(do(t, c, "INFO", "replication").(string))
		for k, v := range map[string]string{"role": "slave", "master_host": "127.0.0.1", "master_port": "6390",
			"master_link_status": "up", "master_last_io_seconds_ago": "0", "slave_repl_offset": "115",
			"slave_read_only": "1", "connected_slaves": "0", "raft_leader_id": "n1", "raft_node_id": "n2",
			"peer1": "id=n3,ip=127.0.0.1,port=6392,last_contact_ms=-1,lag=0"} {
			if f[k] != v {
				t.Errorf("follower INFO %s = %q, want %q", k, f[k], v)
			}
		}
		if v := do(t, c, "SENTINEL", "get-master-addr-by-name", "sluice").([]any); !equalAny(v, []any{"127.0.0.1", "6390"}) {
			t.Errorf("follower get-master-addr-by-name %#v", v)
		}
		reps = do(t, c, "SENTINEL", "SLAVES", "sluice").([]any)
		if len(reps) != 2 || asMap(t, reps[0], replicaFields...)["ip"] != "127.0.0.1" || asMap(t, reps[1], replicaFields...)["ip"] != "127.0.0.1" {
			t.Errorf("follower SLAVES %#v", reps)
		}

		st := groupFollower()
		st.Leader, st.LeaderID = commands.Addr{}, ""
		fake.SetStatus(st)
		if role := do(t, c, "ROLE").([]any); !equalAny(role, []any{"slave", "", int64(0), "connect", int64(115)}) {
			t.Errorf("leaderless ROLE %#v", role)
		}
		isNil(t, c, "SENTINEL", "get-master-addr-by-name", "sluice")
		m = asMap(t, do(t, c, "SENTINEL", "MASTER", "sluice"), masterFields...)
		if !strings.Contains(m["flags"].(string), "s_down") {
			t.Errorf("leaderless MASTER flags %v", m["flags"])
		}
		if f := infoFields(do(t, c, "INFO", "replication").(string)); f["master_link_status"] != "down" {
			t.Errorf("leaderless master_link_status %q", f["master_link_status"])
		}
	})
}

// equalAny compares nested reply values.
func equalAny(a, b any) bool {
	as, ok1 := a.([]any)
	bs, ok2 := b.([]any)
	if ok1 != ok2 {
		return false
	}
	if !ok1 {
		return a == b
	}
	if len(as) != len(bs) {
		return false
	}
	for i := range as {
		if !equalAny(as[i], bs[i]) {
			return false
		}
	}
	return true
}

// TestSwitchMasterPublished: a leader change of the node's Replication
// reaches a subscriber of +switch-master as Sentinel words it, and one of
// a matching pattern; a change to no leader is not announced, and the
// next leader is announced against the last one known.
func TestSwitchMasterPublished(t *testing.T) {
	fake := commands.NewFakeReplication(groupFollower())
	ts := start(t, func(s *setup) { s.repl = fake })
	c := ts.client(t)
	ps := c.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	pps := c.PSubscribe(ctx, "+switch-*")
	defer pps.Close()
	if _, err := pps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	st := groupFollower()
	st.Leader, st.LeaderID = commands.Addr{}, ""
	fake.SetStatus(st) // an election: nothing announced
	st.Leader, st.LeaderID = commands.Addr{Host: "127.0.0.1", Port: 6392}, "n3"
	fake.SetStatus(st)
	for _, p := range []*redis.PubSub{ps, pps} {
		msg, err := p.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Channel != "+switch-master" || msg.Payload != "sluice 127.0.0.1 6390 127.0.0.1 6392" {
			t.Errorf("got %+v", msg)
		}
	}
}

// TestPubSubWire: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE and PUNSUBSCRIBE
// confirmations and messages in RESP2 (arrays) and RESP3 (pushes); a
// RESP2 subscriber may run only the subscription commands, PING (whose
// reply is then ["pong", message]) and QUIT, a RESP3 one any command;
// PUBLISH is refused; SUBSCRIBE is refused inside MULTI.
func TestPubSubWire(t *testing.T) {
	ts := start(t)
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			w := dialWire(t, ts.addr)
			w.do("HELLO", proto)
			agg := "*"
			if proto == "3" {
				agg = ">"
			}
			frame := func(parts ...string) string {
				s := agg + strconv.Itoa(len(parts)) + "\r\n"
				for _, p := range parts {
					if p[0] == ':' {
						s += p + "\r\n"
					} else {
						s += "$" + strconv.Itoa(len(p)) + "\r\n" + p + "\r\n"
					}
				}
				return s
			}
			if got := w.do("PUBLISH", "a", "x"); !strings.HasPrefix(got, "-ERR PUBLISH is not supported") {
				t.Errorf("PUBLISH: %q", got)
			}
			w.send([]string{"SUBSCRIBE", "a", "b", "a"})
			for i, want := range []string{frame("subscribe", "a", ":1"), frame("subscribe", "b", ":2"), frame("subscribe", "a", ":2")} {
				if got := string(w.reply()); got != want {
					t.Errorf("confirmation %d: %q, want %q", i, got, want)
				}
			}
			if got := w.do("PSUBSCRIBE", "a*"); got != frame("psubscribe", "a*", ":3") {
				t.Errorf("PSUBSCRIBE: %q", got)
			}
			if n := ts.srv.Publish("a", "hello"); n != 2 {
				t.Errorf("Publish reached %d, want 2 (the channel and the pattern)", n)
			}
			if got := string(w.reply()); got != frame("message", "a", "hello") {
				t.Errorf("message: %q", got)
			}
			if got := string(w.reply()); got != frame("pmessage", "a*", "a", "hello") {
				t.Errorf("pmessage: %q", got)
			}
			if n := ts.srv.Publish("c", "nobody"); n != 0 {
				t.Errorf("Publish to c reached %d", n)
			}
			if proto == "2" {
				if got := w.do("DBSIZE"); got != "-ERR Can't execute 'dbsize': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT are allowed in this context\r\n" {
					t.Errorf("DBSIZE while subscribed: %q", got)
				}
				// A pipeline of pushes, which would otherwise run as one
				// batch, is refused call by call.
				w.send([]string{"JOBPUSH", "q", "h", "1"}, []string{"JOBPUSH", "q", "h", "2"})
				for i := 0; i < 2; i++ {
					if got := string(w.reply()); !strings.HasPrefix(got, "-ERR Can't execute 'jobpush'") {
						t.Errorf("pipelined JOBPUSH %d while subscribed: %q", i, got)
					}
				}
				if got := w.do("PING"); got != "*2\r\n$4\r\npong\r\n$0\r\n\r\n" {
					t.Errorf("PING: %q", got)
				}
				if got := w.do("PING", "hi"); got != "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n" {
					t.Errorf("PING hi: %q", got)
				}
			} else {
				if got := w.do("DBSIZE"); got != ":0\r\n" {
					t.Errorf("DBSIZE while subscribed: %q", got)
				}
				if got := w.do("PING"); got != "+PONG\r\n" {
					t.Errorf("PING: %q", got)
				}
			}
			w.send([]string{"UNSUBSCRIBE"})
			got := []string{string(w.reply()), string(w.reply())}
			if !(got[0] == frame("unsubscribe", "a", ":2") && got[1] == frame("unsubscribe", "b", ":1") ||
				got[0] == frame("unsubscribe", "b", ":2") && got[1] == frame("unsubscribe", "a", ":1")) {
				t.Errorf("UNSUBSCRIBE: %q", got)
			}
			if got := w.do("PUNSUBSCRIBE", "a*"); got != frame("punsubscribe", "a*", ":0") {
				t.Errorf("PUNSUBSCRIBE: %q", got)
			}
			nullName := "$-1\r\n"
			if proto == "3" {
				nullName = "_\r\n"
			}
			if got := w.do("UNSUBSCRIBE"); got != agg+"3\r\n$11\r\nunsubscribe\r\n"+nullName+":0\r\n" {
				t.Errorf("UNSUBSCRIBE with none: %q", got)
			}
			if n := ts.srv.Publish("a", "gone"); n != 0 {
				t.Errorf("Publish after UNSUBSCRIBE reached %d", n)
			}
			if got := w.do("DBSIZE"); got != ":0\r\n" {
				t.Errorf("DBSIZE after UNSUBSCRIBE: %q", got)
			}
			w.do("MULTI")
			if got := w.do("SUBSCRIBE", "x"); !strings.HasPrefix(got, "-ERR") {
				t.Errorf("SUBSCRIBE in MULTI: %q", got)
			}
			w.do("DISCARD")
		})
	}
}

// TestSlowSubscriberDisconnected: a subscriber that does not read is
// disconnected once what waits for it passes the output limit (32 MiB,
// Redis's for pubsub clients); publishing never waits for it.
func TestSlowSubscriberDisconnected(t *testing.T) {
	ts := start(t)
	w := dialWire(t, ts.addr)
	w.do("SUBSCRIBE", "big")
	big := strings.Repeat("x", 1<<20)
	for i := 0; ; i++ {
		if ts.srv.Publish("big", big) == 0 {
			break
		}
		if i > 200 {
			t.Fatal("200 MiB published to a subscriber that reads nothing, and it is still subscribed")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.Stats().Connected != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the slow subscriber is still connected (%d clients)", ts.srv.Stats().Connected)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSentinelRights: what a client configured with Sentinel sends is in
// @producer and @worker, so a worker limited to its role still finds the
// leader and hears of a new one.
func TestSentinelRights(t *testing.T) {
	ts := start(t)
	admin := ts.client(t)
	do(t, admin, "ACL", "SETUSER", "w", "on", ">pw", "~q", "+@worker")
	do(t, admin, "ACL", "SETUSER", "none", "on", ">pw", "~q", "+jobpush")
	c := ts.client(t, func(o *redis.Options) { o.Username, o.Password = "w", "pw" })
	do(t, c, "ROLE")
	do(t, c, "SENTINEL", "get-master-addr-by-name", "sluice")
	do(t, c, "SENTINEL", "masters")
	ps := c.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Errorf("SUBSCRIBE as a worker: %v", err)
	}
	n := ts.client(t, func(o *redis.Options) { o.Username, o.Password = "none", "pw" })
	if e := doErr(t, n, "SENTINEL", "masters"); !strings.HasPrefix(e, "NOPERM") {
		t.Errorf("SENTINEL without the right: %s", e)
	}
}

// TestSubscribedOnceConfirmed: once a client has read a subscription's
// confirmation, what is published reaches it, every time.
func TestSubscribedOnceConfirmed(t *testing.T) {
	ts := start(t)
	w := dialWire(t, ts.addr)
	for i := 0; i < 500; i++ {
		ch := "c" + strconv.Itoa(i)
		w.do("SUBSCRIBE", ch)
		if n := ts.srv.Publish(ch, "m"); n != 1 {
			t.Fatalf("subscription %d: Publish right after the confirmation reached %d", i, n)
		}
		if got, want := string(w.reply()), "*3\r\n$7\r\nmessage\r\n$"+strconv.Itoa(len(ch))+"\r\n"+ch+"\r\n$1\r\nm\r\n"; got != want {
			t.Fatalf("subscription %d: %q, want %q", i, got, want)
		}
	}
}
