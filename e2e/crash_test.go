package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// acked is what clients were told: job id → state acknowledged, with when.
type acked struct {
	mu    sync.Mutex
	state map[string]string
	at    map[string]time.Time
	tried atomic.Int64
}

func (a *acked) set(id, state string) {
	a.mu.Lock()
	a.state[id] = state
	a.at[id] = time.Now()
	a.mu.Unlock()
}

// crashRounds is how many kill -9 rounds each fsync policy gets;
// SLUICE_CRASH_ROUNDS raises it for a longer run.
func crashRounds() int {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_CRASH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestKillNine pushes and acks at full speed from many clients, kills the
// server with SIGKILL at a random moment, restarts it on the same data and
// checks that every acknowledged push is there, in at least the
// acknowledged state, and that no job nobody pushed appeared.
func TestKillNine(t *testing.T) {
	for _, fsync := range []string{"always", "everysec"} {
		t.Run(fsync, func(t *testing.T) {
			for round := 0; round < crashRounds(); round++ {
				killRound(t, fsync, round)
			}
		})
	}
}

func killRound(t *testing.T, fsync string, round int) {
	dir := t.TempDir()
	port := freePort(t)
	srv := start(t, dir, port, "--appendonly", "yes", "--appendfsync", fsync)
	a := &acked{state: map[string]string{}, at: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const clients = 16
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cl := srv.client()
			defer cl.Close()
			q := fmt.Sprintf("q%d", c%4)
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("r%d-c%d-%d", round, c, i)
				a.tried.Add(1)
				if err := cl.Do(ctx, "JOBPUSH", q, "h", "payload-"+id, "ID", id).Err(); err != nil {
					return // the server died
				}
				a.set(id, "queued")
				if i%2 == 1 {
					continue // leave half of them queued
				}
				res, err := cl.Do(ctx, "JOBRESERVE", fmt.Sprintf("w%d", c), 60000, "QUEUES", q).Slice()
				if err != nil || len(res) == 0 {
					continue
				}
				m := res[0].([]any)
				tok, rid := m[1].(string), m[3].(string)
				if cl.Do(ctx, "JOBACK", tok).Err() == nil {
					a.set(rid, "succeeded")
				}
			}
		}(c)
	}
	rng := rand.New(rand.NewPCG(uint64(round), uint64(len(fsync))))
	time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
	killedAt := time.Now()
	srv.kill()
	cancel()
	wg.Wait()
	if len(a.state) == 0 {
		t.Fatalf("round %d: no push was acknowledged before the kill", round)
	}

	srv2 := start(t, dir, port, "--appendonly", "yes", "--appendfsync", fsync)
	defer srv2.stop()
	cl := srv2.client()
	defer cl.Close()
	bg := context.Background()
	missing, regressed := 0, 0
	for id, want := range a.state {
		m, err := cl.Do(bg, "JOBGET", id).Slice()
		if err != nil || len(m) == 0 {
			// everysec may lose what was acknowledged in the last ~2 s.
			if fsync == "always" || killedAt.Sub(a.at[id]) > 2*time.Second {
				missing++
			}
			continue
		}
		state := m[9].(string)
		if want == "succeeded" && state != "succeeded" {
			if fsync == "always" || killedAt.Sub(a.at[id]) > 2*time.Second {
				regressed++
			}
		}
	}
	if missing > 0 || regressed > 0 {
		t.Fatalf("round %d (%s): %d acknowledged pushes missing, %d acknowledged acks lost, of %d acknowledged\n%s",
			round, fsync, missing, regressed, len(a.state), srv2.logText())
	}
	n, err := cl.DBSize(bg).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n > a.tried.Load() {
		t.Fatalf("round %d: %d jobs after restart, but only %d pushes were ever sent", round, n, a.tried.Load())
	}
	// Every job held is one a client sent: names follow the clients' pattern.
	for _, q := range []string{"q0", "q1", "q2", "q3"} {
		for cursor := "0"; ; { // a page holds 1000 jobs at most
			page, err := cl.Do(bg, "QUEUEPEEK", q, "COUNT", 1000, "CURSOR", cursor).Slice()
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range page[1].([]any) {
				id := j.([]any)[1].(string)
				if _, ok := a.state[id]; !ok && !sentBy(id, round) {
					t.Fatalf("unknown job %q after restart", id)
				}
			}
			if cursor = page[0].(string); cursor == "0" {
				break
			}
		}
	}
	t.Logf("round %d (%s): %d acknowledged, %d sent, %d held after restart", round, fsync, len(a.state), a.tried.Load(), n)
}

// sentBy reports whether id has the shape this round's clients give ids
// (a push in flight at the kill may land without its acknowledgement).
func sentBy(id string, round int) bool {
	var r, c, i int
	_, err := fmt.Sscanf(id, "r%d-c%d-%d", &r, &c, &i)
	return err == nil && r == round
}
