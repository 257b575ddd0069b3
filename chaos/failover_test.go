package chaos

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// failoverKills is how many leader kills TestFailover measures:
// SLUICE_FAILOVER_KILLS, or 3 in the regular test run.
func failoverKills() int {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_FAILOVER_KILLS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestFailover kills the leader with SIGKILL while producers push, and
// measures the time from the kill to the first write a surviving node
// acknowledges (a client that tries every other node in turn). It prints
// the distribution and asserts no time: the figures go in the report.
func TestFailover(t *testing.T) {
	g := newGroup(t)
	h := newHistory()
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{g: g, r: &router{g: g}, h: h}
	w.end.Store(time.Now().Add(time.Hour).UnixNano())
	w.run(ctx, 4, 0)
	defer func() {
		w.end.Store(time.Now().UnixNano())
		cancel()
		w.wg.Wait()
		for _, s := range h.odd {
			t.Errorf("unexpected reply: %s", s)
		}
	}()

	var took []time.Duration
	for round := range failoverKills() {
		l := g.leader(30 * time.Second)
		if l < 0 {
			t.Fatal("no leader")
		}
		time.Sleep(500 * time.Millisecond) // under load a while
		killed := time.Now()
		g.nodes[l].kill()
		d, by := firstWrite(g, l, killed, round)
		if d < 0 {
			t.Fatalf("round %d: no write acknowledged within 30 s of killing n%d", round, l)
		}
		took = append(took, d)
		t.Logf("round %d: killed leader n%d, n%d acknowledged a write %v later", round, l, by, d.Round(time.Millisecond))
		g.start(g.nodes[l])
		time.Sleep(time.Second) // the restarted node catches up
	}
	slices.Sort(took)
	med := took[len(took)/2]
	if len(took)%2 == 0 {
		med = (took[len(took)/2-1] + took[len(took)/2]) / 2
	}
	line := fmt.Sprintf("failover over %d kills: min %v, median %v, p90 %v, max %v", len(took),
		took[0].Round(time.Millisecond), med.Round(time.Millisecond),
		took[(len(took)*9)/10-boolInt(len(took) >= 10)].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	t.Log(line)
	if os.Getenv("SLUICE_FAILOVER_KILLS") != "" {
		fmt.Println(line)
		fmt.Println("each:", took)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// firstWrite pushes to the nodes other than dead, in turn, until one
// acknowledges a push; it returns the time from killed to that reply and
// the node (-1 after 30 s).
func firstWrite(g *group, dead int, killed time.Time, round int) (time.Duration, int) {
	for i := 0; time.Since(killed) < 30*time.Second; i++ {
		for j, nd := range g.nodes {
			if j == dead {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := nd.cl.Do(ctx, "JOBPUSH", plainQueue, "h", "failover", "IDEMPOTENCY", fmt.Sprintf("failover-%d-%d", round, i)).Err()
			cancel()
			if err == nil {
				return time.Since(killed), j
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -1, -1
}
