package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestGroupJobWaitOnEveryNode: a JOBWAIT on each node of a group, the
// followers included, is answered with the result when the job's ack is
// applied there.
func TestGroupJobWaitOnEveryNode(t *testing.T) {
	ctx := context.Background()
	nodes := startGroup(t)
	l, lc := leaderClient(t, nodes)
	id, err := lc.Do(ctx, "JOBPUSH", "q", "h", "p").Text()
	if err != nil {
		t.Fatal(err)
	}
	everyNode(t, nodes, l, "JOBGET", id) // every node holds the job
	answers := make(chan string, len(nodes))
	for i, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addrs()[0], Protocol: 2})
		defer c.Close()
		go func() {
			v, err := c.Do(ctx, "JOBWAIT", id, 20000).Result()
			answers <- fmt.Sprintf("node %d: %v %v", i, v, err)
		}()
	}
	for i, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for n.JobWaits().Waiting() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d: the JOBWAIT is not waiting", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	res, err := lc.Do(ctx, "JOBRESERVE", "w", "30000", "QUEUES", "q").Slice()
	if err != nil || len(res) != 1 {
		t.Fatalf("reserve: %v %v", res, err)
	}
	token := fmt.Sprint(res[0].([]any)[1])
	if err := lc.Do(ctx, "JOBPROGRESS", token, "half").Err(); err != nil {
		t.Fatal(err)
	}
	if err := lc.Do(ctx, "JOBACK", token, "RESULT", "42").Err(); err != nil {
		t.Fatal(err)
	}
	for range nodes {
		select {
		case a := <-answers:
			want := fmt.Sprintf("[id %s state succeeded result 42 last_error <nil>] <nil>", id)
			if a[len("node 0: "):] != want {
				t.Fatalf("%s, want %s", a, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a node did not answer its JOBWAIT")
		}
	}
	for i, got := range everyNode(t, nodes, l, "JOBGET", id) {
		if want := " result 42 progress half "; !strings.Contains(got, want) {
			t.Fatalf("node %d: JOBGET %s", i, got)
		}
	}
}
