package server_test

import (
	"context"
	"fmt"
	"slices"
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
	l := leaderOf(t, nodes)
	lc := redis.NewClient(&redis.Options{Addr: nodes[l].Addrs()[0], Protocol: 2})
	if err := lc.Do(ctx, "CRONSET", "beat", "@every 1s", "q", "h", "p").Err(); err != nil {
		t.Fatal(err)
	}
	if err := lc.Do(ctx, "CRONSET", "yearly", "0 0 1 1 *", "y", "h", "p", "TZ", "Pacific/Auckland").Err(); err != nil {
		t.Fatal(err)
	}
	waitJobs := func(c *redis.Client, n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := c.Do(ctx, "QUEUELEN", "q").Int64()
			if err == nil && got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("QUEUELEN q = %d %v, want %d", got, err, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitJobs(lc, 2)
	if err := nodes[l].Cluster().Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	lc.Close()
	l2 := leaderOf(t, nodes)
	if l2 == l {
		t.Fatal("leadership did not move")
	}
	lc = redis.NewClient(&redis.Options{Addr: nodes[l2].Addrs()[0], Protocol: 2})
	defer lc.Close()
	before, _ := lc.Do(ctx, "QUEUELEN", "q").Int64()
	waitJobs(lc, before+2) // the new leader's ticks fire it
	if err := lc.Do(ctx, "CRONDEL", "beat").Err(); err != nil {
		t.Fatal(err)
	}

	want := nodes[l2].Cluster().Status().Applied
	var digests []string
	var jobs []map[string]int64
	for i, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for n.Cluster().Status().Applied < want {
			if time.Now().After(deadline) {
				t.Fatalf("node %d behind", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
		d, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
		if err != nil {
			t.Fatalf("node %d: DEBUG DIGEST: %v", i, err)
		}
		list, err := c.Do(ctx, "CRONLIST").Slice()
		if err != nil || len(list) != 1 {
			t.Fatalf("node %d: CRONLIST %v %v", i, list, err)
		}
		c.Close()
		digests = append(digests, d)
		jobs = append(jobs, peekCreated(t, n, "q"))
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
	if len(ticks) < 4 {
		t.Fatalf("%d jobs, want at least 4", len(ticks))
	}
}
