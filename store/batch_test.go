package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// words joins its operands' values with spaces.
func words(a ...any) string { return strings.TrimSuffix(fmt.Sprintln(a...), "\n") }

func batchJob(queue, batch string) PushOptions {
	return PushOptions{Queue: queue, Handler: "h", Payload: []byte("p"), Batch: batch}
}

// A batch completes once closed and its jobs all ended: its callback is
// pushed then, once, and BATCHGET counts by outcome; ON success skips the
// callback when a job did not succeed.
func TestBatchCallback(t *testing.T) {
	s, jr := depStore(t)
	cb := PushOptions{Queue: "cb", Handler: "report", Payload: []byte("done")}
	must(t, s.OpenBatch(1000, BatchOptions{ID: "b1", Callback: cb, Always: true}))
	must(t, s.OpenBatch(1000, BatchOptions{ID: "b2", Callback: cb}))
	if err := s.OpenBatch(1000, BatchOptions{ID: "b1"}); err == nil {
		t.Fatal("a second b1 was opened")
	}
	for i := 0; i < 3; i++ {
		_, err := s.Push(1001, batchJob(fmt.Sprint("q", i), "b1"))
		must(t, err)
		_, err = s.Push(1001, batchJob("r", "b2"))
		must(t, err)
	}
	info, _ := s.GetBatch(1001, "b1")
	eq(t, "open", words(info.State, info.Total, info.Pending), "open 3 3")
	for i := 0; i < 3; i++ {
		r := reserveOne(t, s, 1002, fmt.Sprint("q", i))
		if i == 1 {
			_, err := s.Fail(1003, r.Token, FailOptions{NoRetry: true})
			must(t, err)
		} else {
			must(t, s.Ack(1003, r.Token))
		}
	}
	info, _ = s.GetBatch(1003, "b1")
	eq(t, "before the close", words(info.State, info.Succeeded, info.Failed, info.Pending, info.Callback), "open 2 1 0 ")
	must(t, s.CloseBatch(1004, "b1"))
	if err := s.CloseBatch(1004, "b1"); !errors.Is(err, ErrNoBatch) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Push(1004, batchJob("q0", "b1")); !errors.Is(err, ErrNoBatch) {
		t.Fatalf("push to a closed batch: %v", err)
	}
	info, _ = s.GetBatch(1004, "b1")
	eq(t, "after the close", words(info.State, info.DoneAt, info.Callback != "", info.CallbackState), "done 1004 true queued")
	j := getJob(t, s, 1004, info.Callback)
	eq(t, "callback", words(j.Queue, j.Handler, string(j.Payload), j.CreatedAt), "cb report done 1004")

	must(t, s.CloseBatch(1005, "b2"))
	c, _ := s.Push(1005, PushOptions{Queue: "r", Handler: "h"})
	rs, err := s.Reserve(1006, ReserveOptions{Worker: "w", Lease: 100, Count: 4, Queues: []string{"r"}})
	must(t, err)
	for _, r := range rs {
		if r.ID == c {
			continue
		}
		if _, err := s.Fail(1007, r.Token, FailOptions{NoRetry: true}); err != nil {
			t.Fatal(err)
		}
	}
	info, _ = s.GetBatch(1007, "b2")
	eq(t, "success-only batch with failures", words(info.State, info.Failed, info.Callback, info.CallbackState), "done 3  skipped")
	eq(t, "open batches", s.OpenBatches(), 0)
	checkReplays(t, s, jr, 1007)

	// Retention forgets a complete batch.
	s.Tick(1004 + s.cfg.Retention)
	if _, ok := s.GetBatch(1004+s.cfg.Retention, "b1"); ok {
		t.Fatal("b1 outlived retention")
	}
	if _, ok := s.GetBatch(1004+s.cfg.Retention, "b2"); !ok {
		t.Fatal("b2 was forgotten early")
	}
	checkReplays(t, s, jr, 1004+s.cfg.Retention)
}

// 100,000 jobs (5,000 under the race detector), acked on two goroutines
// while the batch is closed: the callback is pushed exactly once, at the
// instant of the last end.
func TestBatchOfManyJobsCallsBackOnce(t *testing.T) {
	s, jr := depStore(t)
	must(t, s.OpenBatch(1000, BatchOptions{ID: "big", Callback: PushOptions{Queue: "cb", Handler: "h"}}))
	n := 100_000
	if raceEnabled {
		n = 5_000
	}
	ps := make([]PushOptions, 1000)
	for i := range ps {
		ps[i] = batchJob("q", "big")
	}
	ids, errs := make([]string, len(ps)), make([]error, len(ps))
	for k := 0; k < n/len(ps); k++ {
		s.PushMany(1000, ps, ids, errs)
		for _, err := range errs {
			must(t, err)
		}
	}
	var wg sync.WaitGroup
	var last [2]int64
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			now := int64(2000)
			for {
				rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 1 << 30, Count: 100, Queues: []string{"q"}})
				if err != nil || len(rs) == 0 {
					return
				}
				for _, r := range rs {
					now++
					if err := s.Ack(now, r.Token); err != nil {
						t.Error(err)
						return
					}
				}
				last[g] = now
			}
		}(g)
		if g == 0 {
			must(t, s.CloseBatch(1500, "big"))
		}
	}
	wg.Wait()
	info, _ := s.GetBatch(1_000_000, "big")
	if info.State != "done" || info.Succeeded != int64(n) || info.Callback == "" {
		t.Fatalf("batch: %+v", info)
	}
	_, cbs, err := s.ScanJobs("0", ScanFilter{Queue: "cb"}, 10, 1_000_000)
	must(t, err)
	if len(cbs) != 1 {
		t.Fatalf("%d callbacks: %v", len(cbs), cbs)
	}
	j := getJob(t, s, 1_000_000, info.Callback)
	if j.CreatedAt != info.DoneAt || (j.CreatedAt != last[0] && j.CreatedAt != last[1]) {
		t.Fatalf("callback pushed at %d, the batch done at %d, the last acks at %v", j.CreatedAt, info.DoneAt, last)
	}
	r := replayAll(t, s.cfg, jr.recs, "replay")
	ri, _ := r.GetBatch(1_000_000, "big")
	if fmt.Sprint(ri) != fmt.Sprint(info) {
		t.Fatalf("replayed batch %+v, live %+v", ri, info)
	}
}
