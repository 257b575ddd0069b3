package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// txn is one MULTI/EXEC a client sent: the ids it pushed, and whether
// (and when) EXEC's reply said it applied.
type txn struct {
	ids   []string
	acked bool
	at    time.Time
}

// TestKillNineTransactions sends MULTI/EXEC transactions of up to 30
// pushes from several clients, beside plain pushes, kills the server with
// SIGKILL at a random moment and restarts it on the same data: every
// transaction is then wholly there or wholly absent, and every one whose
// EXEC was answered is there (with everysec, those answered more than 2 s
// before the kill).
func TestKillNineTransactions(t *testing.T) {
	for _, fsync := range []string{"always", "everysec"} {
		t.Run(fsync, func(t *testing.T) {
			for round := 0; round < crashRounds(); round++ {
				txKillRound(t, fsync, round)
			}
		})
	}
}

func txKillRound(t *testing.T, fsync string, round int) {
	dir := t.TempDir()
	port := freePort(t)
	srv := start(t, dir, port, "--appendonly", "yes", "--appendfsync", fsync)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var txns []*txn
	var wg sync.WaitGroup
	const clients, loaders = 6, 4
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cl := srv.client()
			defer cl.Close()
			rng := rand.New(rand.NewPCG(uint64(round), uint64(c)))
			for i := 0; ctx.Err() == nil; i++ {
				tx := &txn{}
				for k := 0; k < 1+rng.IntN(30); k++ {
					tx.ids = append(tx.ids, fmt.Sprintf("t%d-c%d-%d-%d", round, c, i, k))
				}
				mu.Lock()
				txns = append(txns, tx)
				mu.Unlock()
				_, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for k, id := range tx.ids {
						p.Do(ctx, "JOBPUSH", fmt.Sprintf("tq%d", k%3), "h", "payload-"+id, "ID", id)
					}
					return nil
				})
				if err != nil {
					return // the server died
				}
				mu.Lock()
				tx.acked, tx.at = true, time.Now()
				mu.Unlock()
			}
		}(c)
	}
	for c := 0; c < loaders; c++ { // load beside them: pushes, reserves, acks
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cl := srv.client()
			defer cl.Close()
			for i := 0; ctx.Err() == nil; i++ {
				if cl.Do(ctx, "JOBPUSH", "tq0", "h", "load").Err() != nil {
					return
				}
				res, err := cl.Do(ctx, "JOBRESERVE", fmt.Sprintf("w%d", c), 60000, "QUEUES", "tq0", "tq1", "tq2").Slice()
				if err != nil || len(res) == 0 {
					continue
				}
				_ = cl.Do(ctx, "JOBACK", res[0].([]any)[1]).Err()
			}
		}(c)
	}
	rng := rand.New(rand.NewPCG(uint64(round), 99))
	time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
	killedAt := time.Now()
	srv.kill()
	cancel()
	wg.Wait()

	srv2 := start(t, dir, port, "--appendonly", "yes", "--appendfsync", fsync)
	defer srv2.stop()
	cl := srv2.client()
	defer cl.Close()
	bg := context.Background()
	acked, partial, lost, whole := 0, 0, 0, 0
	for _, tx := range txns {
		cmds, _ := cl.Pipelined(bg, func(p redis.Pipeliner) error {
			for _, id := range tx.ids {
				p.Do(bg, "JOBGET", id)
			}
			return nil
		})
		there := 0
		for _, c := range cmds {
			if v, err := c.(*redis.Cmd).Slice(); err == nil && len(v) > 0 {
				there++
			}
		}
		if there != 0 && there != len(tx.ids) {
			partial++
			t.Errorf("round %d (%s): a transaction of %d pushes left %d after the kill (first id %s)",
				round, fsync, len(tx.ids), there, tx.ids[0])
		}
		if there == len(tx.ids) {
			whole++
		}
		if tx.acked {
			acked++
			if there == 0 && (fsync == "always" || killedAt.Sub(tx.at) > 2*time.Second) {
				lost++
			}
		}
	}
	if acked == 0 {
		t.Fatalf("round %d: no transaction was answered before the kill", round)
	}
	if partial > 0 || lost > 0 {
		t.Fatalf("round %d (%s): %d transactions in part, %d answered transactions lost, of %d sent\n%s",
			round, fsync, partial, lost, len(txns), srv2.logText())
	}
	t.Logf("round %d (%s): %d transactions sent, %d answered, %d whole after restart", round, fsync, len(txns), acked, whole)
}
