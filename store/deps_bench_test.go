package store

import (
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAfterAck acks a job with n waiting dependents (in four queues
// besides its own): the ack queues all of them before it returns. The bar
// (issue 22): 10,000 dependents in one step costing O(10,000), which
// ns/dependent, flat from 1,000 to 100,000, shows.
func BenchmarkAfterAck(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run("dependents="+strconv.Itoa(n), func(b *testing.B) {
			const now = 1_000_000
			payload := make([]byte, 100)
			var took time.Duration
			for i := 0; i < b.N; i++ {
				s := benchStore(b)
				dep, _ := s.Push(now, PushOptions{Queue: "dep", Handler: "h"})
				rs, _ := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1 << 40, Queues: []string{"dep"}})
				for k := 0; k < n; k++ {
					if _, err := s.Push(now, PushOptions{Queue: "w" + strconv.Itoa(k%4), Handler: "h", Payload: payload,
						After: []string{dep}}); err != nil {
						b.Fatal(err)
					}
				}
				debug.FreeOSMemory()
				start := time.Now()
				if err := s.Ack(now, rs[0].Token); err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				if s.WaitingJobs() != 0 {
					b.Fatalf("%d jobs still waiting", s.WaitingJobs())
				}
			}
			b.ReportMetric(float64(took.Nanoseconds())/float64(b.N), "ns/ack")
			b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*n), "ns/dependent")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkWaitingBacklogCost pairs reserving (each job acked after its
// block, untimed) from a queue that also holds 1,000,000 jobs waiting for
// a running job against the same on a store without them, in alternating
// blocks as BenchmarkThrottleBacklogCost does. The bar (issue 22): ratio =
// waiting ÷ empty ≤ 1.1.
func BenchmarkWaitingBacklogCost(b *testing.B) {
	const now = 1_000_000
	payload := make([]byte, 100)
	empty, waiting := benchStore(b), benchStore(b)
	dep, _ := waiting.Push(now, PushOptions{Queue: "dep", Handler: "h"})
	if _, err := waiting.Reserve(now, ReserveOptions{Worker: "w", Lease: 1 << 40, Queues: []string{"dep"}}); err != nil {
		b.Fatal(err)
	}
	for range 1_000_000 {
		if _, err := waiting.Push(now, PushOptions{Queue: "q", Handler: "h", Priority: 10, Payload: payload, After: []string{dep}}); err != nil {
			b.Fatal(err)
		}
	}
	pairedBacklog(b, now, empty, waiting, "waiting")
	if waiting.WaitingJobs() != 1_000_000 {
		b.Fatalf("%d jobs waiting", waiting.WaitingJobs())
	}
}

// BenchmarkBatchLastAck times the ack of the last job of a closed batch of
// 100,000, which pushes the batch's callback before it returns. The bar
// (issue 22): the callback within 10 ms of the last job's end.
func BenchmarkBatchLastAck(b *testing.B) {
	const now, n = 1_000_000, 100_000
	var took time.Duration
	for i := 0; i < b.N; i++ {
		s := benchStore(b)
		if err := s.OpenBatch(now, BatchOptions{ID: "b", Callback: PushOptions{Queue: "cb", Handler: "h"}}); err != nil {
			b.Fatal(err)
		}
		for range n {
			if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", Batch: "b"}); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.CloseBatch(now, "b"); err != nil {
			b.Fatal(err)
		}
		var last string
		for k := 0; k < n; k++ {
			rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1 << 30, Queues: []string{"q"}})
			if err != nil || len(rs) != 1 {
				b.Fatal(rs, err)
			}
			if k == n-1 {
				last = rs[0].Token
				break
			}
			if err := s.Ack(now, rs[0].Token); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		if err := s.Ack(now+1, last); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		if info, _ := s.GetBatch(now+1, "b"); info.CallbackState != "queued" {
			b.Fatalf("batch %+v", info)
		}
	}
	b.ReportMetric(float64(took.Nanoseconds())/float64(b.N), "ns/last-ack")
	b.ReportMetric(0, "ns/op")
}
