package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/config"
	"sluice/store"
)

// preload puts per jobs in each of queues queues, straight into the store.
func preload(b *testing.B, st *store.Store, queues, per int) {
	b.Helper()
	now := time.Now().UnixMilli()
	ps := make([]store.PushOptions, per)
	ids, errs := make([]string, per), make([]error, per)
	for q := 0; q < queues; q++ {
		name := fmt.Sprintf("q%04d", q)
		for i := range ps {
			ps[i] = store.PushOptions{Queue: name, Handler: "h", Payload: []byte(`{"n":1}`)}
		}
		st.PushMany(now, ps, ids, errs)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	if got := st.Len(); got != int64(queues*per) {
		b.Fatalf("preloaded %d jobs, want %d", got, queues*per)
	}
}

func benchNode(b *testing.B) *node {
	cfg := config.DefaultConfig()
	cfg.Port, cfg.Dir, cfg.HTTPAddr, cfg.AppendOnly = 0, b.TempDir(), "127.0.0.1:0", false
	return startWithTB(b, cfg)
}

// BenchmarkOverview1M serves the overview of a node holding 1,000,000 jobs
// in 1,000 queues: the whole page, read and rendered, over loopback HTTP,
// as it opens (100 queues listed, every one counted) and with every queue
// listed (?all=1). ms/op is the server's time plus a loopback round trip.
func BenchmarkOverview1M(b *testing.B) {
	n := benchNode(b)
	preload(b, n.srv.Store(), 1000, 1000)
	c := &http.Client{}
	for _, bc := range []struct{ name, path string }{{"default", "/"}, {"all", "/?all=1"}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				resp, err := c.Get(n.base + bc.path)
				if err != nil {
					b.Fatal(err)
				}
				nb, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || nb < 20_000 {
					b.Fatalf("overview: %d, %d bytes", resp.StatusCode, nb)
				}
			}
		})
	}
}

// BenchmarkPushWhileRefreshing measures the push rate of a node holding
// 1,000,000 jobs in 1,000 queues with and without a dashboard tab
// refreshing the overview every second, in alternating blocks so that both
// see the same phases of a noisy machine; it reports the ratio
// (refreshing/idle). Pushes go to the 1,000 queues in turn, 8 connections
// pipelining 16.
func BenchmarkPushWhileRefreshing(b *testing.B) {
	n := benchNode(b)
	preload(b, n.srv.Store(), 1000, 1000)
	const blocks, block, conns, pipe = 10, 3 * time.Second, 8, 16
	push := func(d time.Duration) int64 {
		var total atomic.Int64
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for c := 0; c < conns; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				rdb := redis.NewClient(&redis.Options{Addr: n.srv.Addrs()[0], PoolSize: 1})
				defer rdb.Close()
				ctx := context.Background()
				k := c
				for time.Now().Before(end) {
					p := rdb.Pipeline()
					for i := 0; i < pipe; i++ {
						p.Do(ctx, "JOBPUSH", fmt.Sprintf("q%04d", k%1000), "h", `{"n":2}`)
						k += conns
					}
					if _, err := p.Exec(ctx); err != nil {
						b.Error(err)
						return
					}
					total.Add(pipe)
				}
			}(c)
		}
		wg.Wait()
		return total.Load()
	}
	refresh := func(stop <-chan struct{}, took *[]time.Duration) {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			began := time.Now()
			req, _ := http.NewRequest("GET", n.base+"/?partial=1", nil)
			req.Header.Set("X-Partial", "1")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				*took = append(*took, time.Since(began))
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}
	b.ResetTimer()
	var idle, busy int64
	var took []time.Duration
	var ratios []float64
	for i := 0; i < blocks; i++ {
		var pair [2]int64 // idle, refreshing
		for _, on := range []bool{i%2 == 0, i%2 != 0} {
			if !on {
				pair[0] = push(block)
				continue
			}
			stop, done := make(chan struct{}), make(chan struct{})
			go func() { refresh(stop, &took); close(done) }()
			pair[1] = push(block)
			close(stop)
			<-done
		}
		idle, busy = idle+pair[0], busy+pair[1]
		ratios = append(ratios, float64(pair[1])/float64(pair[0]))
		b.Logf("pair %d: idle %.0f, refreshing %.0f pushes/s", i, float64(pair[0])/block.Seconds(), float64(pair[1])/block.Seconds())
	}
	secs := float64(blocks) * block.Seconds()
	b.ReportMetric(float64(idle)/secs, "idle-pushes/s")
	b.ReportMetric(float64(busy)/secs, "refreshing-pushes/s")
	b.ReportMetric(float64(busy)/float64(idle), "ratio")
	slices.Sort(ratios)
	b.ReportMetric((ratios[(len(ratios)-1)/2]+ratios[len(ratios)/2])/2, "median-pair-ratio")
	var worst time.Duration
	for _, d := range took {
		worst = max(worst, d)
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-refresh-ms")
}
