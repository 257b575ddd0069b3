package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/server"
)

// peekCreated lists the created_at of queue's jobs on one node, by id.
func peekCreated(t *testing.T, n *server.Server, queue string) map[string]int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
	defer c.Close()
	res, err := c.Do(context.Background(), "QUEUEPEEK", queue, "COUNT", 1000).Slice()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, j := range res {
		m := j.([]any)
		var id string
		var at int64
		for k := 0; k+1 < len(m); k += 2 {
			switch m[k] {
			case "id":
				id = m[k+1].(string)
			case "created_at":
				at = m[k+1].(int64)
			}
		}
		out[id] = at
	}
	return out
}

// A periodic entry set on a group's leader fires once per tick for the
// whole group, through the leader's tick entries, and goes on firing, not
// twice, under the next leader: every node holds the same jobs, entries
// and DEBUG DIGEST.
func TestGroupCronFiresOnce(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	// onLeader runs a write on the leader, again if leadership moved
	// meanwhile (a new group may hold more than one election).
	onLeader := func(args ...any) int {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			l := leaderOf(t, nodes)
			c := redis.NewClient(&redis.Options{Addr: nodes[l].Addrs()[0], Protocol: 2})
			err := c.Do(ctx, args...).Err()
			c.Close()
			if err == nil {
				return l
			}
			if !strings.HasPrefix(err.Error(), "READONLY") || time.Now().After(deadline) {
				t.Fatalf("%v: %v", args, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	onLeader("CRONSET", "beat", "@every 1s", "q", "h", "p")
	onLeader("CRONSET", "yearly", "0 0 1 1 *", "y", "h", "p", "TZ", "Pacific/Auckland")
	// fired waits for node n's entry to have pushed at least least jobs
	// and returns how many it has.
	fired := func(n *server.Server, least int64) int64 {
		t.Helper()
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
		defer c.Close()
		deadline := time.Now().Add(20 * time.Second)
		for {
			e, err := c.Do(ctx, "CRONGET", "beat").Slice()
			for k := 0; err == nil && k+1 < len(e); k += 2 {
				if e[k] == "fired" && e[k+1].(int64) >= least {
					return e[k+1].(int64)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRONGET beat = %v %v, want fired >= %d", e, err, least)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	l := leaderOf(t, nodes)
	before := fired(nodes[l], 2)
	if err := nodes[l].Cluster().Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	l2 := leaderOf(t, nodes)
	if l2 == l {
		t.Fatal("leadership did not move")
	}
	total := fired(nodes[l2], before+2) // the new leader's ticks fire it
	l2 = onLeader("CRONDEL", "beat")

	// Nothing proposes entries any more (the yearly entry is far off): wait
	// for each node to have applied what the leader has, CRONDEL included.
	var digests []string
	var jobs []map[string]int64
	for i, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
		deadline := time.Now().Add(10 * time.Second)
		for {
			list, err := c.Do(ctx, "CRONLIST").Slice()
			if err == nil && len(list) == 1 && n.Cluster().Status().Applied >= nodes[l2].Cluster().Status().Applied {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d behind: CRONLIST %v %v", i, list, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		d, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
		if err != nil {
			t.Fatalf("node %d: DEBUG DIGEST: %v", i, err)
		}
		c.Close()
		digests = append(digests, d)
		jobs = append(jobs, peekCreated(t, n, "q"))
		if int64(len(jobs[i])) < total {
			t.Fatalf("node %d holds %d jobs, the entry fired %d", i, len(jobs[i]), total)
		}
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Fatalf("digests differ: %v", digests)
	}
	for i := 1; i < 3; i++ {
		if fmt.Sprint(jobs[i]) != fmt.Sprint(jobs[0]) {
			t.Fatalf("node %d holds other jobs:\n%v\nnode 0:\n%v", i, jobs[i], jobs[0])
		}
	}
	// One job per tick: whole seconds, none twice.
	var ticks []int64
	for _, at := range jobs[0] {
		ticks = append(ticks, at)
	}
	slices.Sort(ticks)
	for i, at := range ticks {
		if at%1000 != 0 || (i > 0 && ticks[i-1] == at) {
			t.Fatalf("ticks %v: %d is no tick or is there twice", ticks, at)
		}
	}
}
