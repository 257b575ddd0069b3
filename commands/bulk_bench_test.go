package commands_test

import (
	"flag"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
	"sluice/store"
)

var bulkN = flag.Int("bulk.n", 100_000, "failed jobs BenchmarkBulkRetryResponsiveness retries")

// BenchmarkBulkRetryResponsiveness: a JOBBULK RETRY of -bulk.n failed
// jobs on one connection while another sends PINGs one at a time and a
// third pushes to another queue. It reports PING's p99 while the bulk
// runs, the pushes' rate then against their rate before it
// (push-ratio), and the bulk's duration.
func BenchmarkBulkRetryResponsiveness(b *testing.B) {
	for range b.N {
		ts := start(b, func(s *setup) {
			s.scfg.MaxRetained = *bulkN + 1000
			s.scfg.Retention = 1 << 40
		})
		now := time.Now().UnixMilli()
		for i := 0; i < *bulkN; i += 1000 {
			for range 1000 {
				if _, err := ts.store.Push(now, store.PushOptions{Queue: "dead", Handler: "h"}); err != nil {
					b.Fatal(err)
				}
			}
			rs, err := ts.store.Reserve(now, store.ReserveOptions{Worker: "w", Lease: 3_600_000, Queues: []string{"dead"}, Count: 1000})
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				if _, err := ts.store.Fail(now, r.Token, store.FailOptions{Error: "boom", HasError: true, NoRetry: true}); err != nil {
					b.Fatal(err)
				}
			}
		}
		// JOBBULK replies when it is done, seconds later for a million jobs:
		// a read timeout would make go-redis send it again (docs/commands.md).
		pusher, pinger := ts.client(b), ts.client(b)
		bulk := ts.client(b, func(o *redis.Options) { o.ReadTimeout, o.MaxRetries = -1, -1 })
		var pushes atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := pusher.Do(ctx, "JOBPUSH", "live", "h", "p").Err(); err != nil {
					b.Error(err)
					return
				}
				pushes.Add(1)
			}
		}()
		rate := func(d time.Duration) float64 {
			n0 := pushes.Load()
			time.Sleep(d)
			return float64(pushes.Load()-n0) / d.Seconds()
		}
		var lat []time.Duration
		var pingStop, measuring atomic.Bool
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !pingStop.Load() {
				t0 := time.Now()
				if err := pinger.Ping(ctx).Err(); err != nil {
					b.Error(err)
					return
				}
				if measuring.Load() {
					lat = append(lat, time.Since(t0))
				}
			}
		}()
		before := rate(2 * time.Second) // with the PINGs going: they cost CPU too
		measuring.Store(true)
		t0 := time.Now()
		n0 := pushes.Load()
		res, err := bulk.Do(ctx, "JOBBULK", "RETRY", "QUEUE", "dead").Result()
		took := time.Since(t0)
		measuring.Store(false)
		during := float64(pushes.Load()-n0) / took.Seconds()
		pingStop.Store(true)
		close(stop)
		wg.Wait()
		_ = bulk.Close()
		if err != nil {
			b.Fatal(err)
		}
		if got := check.MapField(res, "changed"); got != int64(*bulkN) {
			b.Fatalf("JOBBULK RETRY changed %v jobs, want %d", got, *bulkN)
		}
		slices.Sort(lat)
		p99 := lat[len(lat)*99/100]
		b.ReportMetric(float64(p99.Microseconds())/1000, "ping-p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ping-max-ms")
		b.ReportMetric(during/before, "push-ratio")
		b.ReportMetric(before, "pushes/s-before")
		b.ReportMetric(took.Seconds(), "bulk-s")
		ts.shutdown(b)
	}
}
