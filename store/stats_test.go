package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// blockedStore is a store whose queue "q" holds one reserved job of rate
// key "full" (limit 1 an hour: the window is full) and then n queued jobs,
// job "j<i>" in fair group "g<i>", so each its own lane: even ones of key
// "full" (blocked), odd ones of key "open" (no limit).
func blockedStore(t testing.TB, n int) *Store {
	t.Helper()
	s, err := New(DefaultConfig(), NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRateLimit(1000, "full", 1, 3_600_000); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", RateLimitKey: "full", ID: "first"}); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Reserve(1000, ReserveOptions{Worker: "w", Lease: 3_600_000, Queues: []string{"q"}}); err != nil || len(rs) != 1 {
		t.Fatalf("reserve: %v %v", rs, err)
	}
	for i := 0; i < n; i++ {
		key := "open"
		if i%2 == 0 {
			key = "full"
		}
		if _, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", RateLimitKey: key, Group: fmt.Sprint("g", i), ID: fmt.Sprint("j", i)}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// withStatsHold sets statsHold for the test.
func withStatsHold(t testing.TB, fn func(lanes int, held time.Duration)) {
	statsHold = fn
	t.Cleanup(func() { statsHold = nil })
}

// QueueStats over a queue of many keyed lanes holds the lock for at most
// statsSlice lanes at a time, and its figures are those of one hold.
func TestQueueStatsJudgesASliceOfLanesPerHold(t *testing.T) {
	const n = 5000
	s := blockedStore(t, n)
	var holds []int
	withStatsHold(t, func(lanes int, _ time.Duration) { holds = append(holds, lanes) })
	st, err := s.QueueStats(1000, "q")
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued != n || st.BlockedRateLimit != n/2 || st.BlockedConcurrency != 0 || st.Status != "active" {
		t.Errorf("QueueStats = %+v, want %d queued, %d blocked by the rate limit", st, n, n/2)
	}
	const most = 1024 // lanes per hold
	total := 0
	for _, l := range holds {
		if l > most {
			t.Errorf("a hold judged %d lanes, more than %d", l, most)
		}
		total += l
	}
	if want := (n + 1 + most - 1) / most; len(holds) < want {
		t.Errorf("%d holds of the lock (%v), want at least %d", len(holds), holds, want)
	}
	if total != n+1 {
		t.Errorf("%d lanes judged in all, want %d", total, n+1)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// Lanes that leave between two holds move others down the list: a lane
// there throughout is judged once, neither missed nor counted twice.
func TestQueueStatsCountsEachLaneOnceWhileLanesLeave(t *testing.T) {
	const n, gone = 5000, 400
	s := blockedStore(t, n)
	calls := 0
	removed := map[string]bool{}
	withStatsHold(t, func(int, time.Duration) {
		calls++
		if calls != 1 {
			return
		}
		// The walk goes down from the top: the lanes at the bottom of the
		// list are still to be judged. Take some away, each swapped for a
		// lane the walk has judged.
		var ids []string
		sh := s.shardOf("q")
		sh.mu.Lock()
		for _, l := range sh.queues["q"].keyed[:gone] {
			if l.key.group != "" { // not the first job's lane, of no group
				ids = append(ids, "j"+l.key.group[1:])
			}
		}
		sh.mu.Unlock()
		for _, id := range ids {
			if _, err := s.Cancel(1000, id); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(1000, id); err != nil {
				t.Fatal(err)
			}
			removed[id] = true
		}
	})
	st, err := s.QueueStats(1000, "q")
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	for i := 0; i < n; i += 2 {
		if !removed[fmt.Sprint("j", i)] {
			want++
		}
	}
	if calls < 2 || len(removed) == 0 {
		t.Fatalf("%d holds, %d lanes taken away: the test took no lane away between holds", calls, len(removed))
	}
	if st.BlockedRateLimit != want || st.Queued != int64(n-len(removed)) {
		t.Errorf("QueueStats = %+v; want %d blocked by the rate limit of %d queued", st, want, n-len(removed))
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkQueueStatsHold reports the holds of the queue's lock by
// QueueStats of a queue of 100,000 fair groups, each its own lane of a
// rate-limited key: in slices (as served) and in one hold (as it was,
// statsSlice unbounded). The times are wall time inside the lock, a
// descheduled or collecting moment included; most-lanes/hold is the
// bound itself.
func BenchmarkQueueStatsHold(b *testing.B) {
	s := blockedStore(b, 100_000)
	for _, c := range []struct {
		name  string
		slice int
	}{{"sliced", statsSlice}, {"one-hold", 1 << 30}} {
		b.Run(c.name, func(b *testing.B) {
			defer func(old int) { statsSlice = old }(statsSlice)
			statsSlice = c.slice
			var held []time.Duration
			lanes := 0
			withStatsHold(b, func(n int, d time.Duration) {
				held = append(held, d)
				lanes = max(lanes, n)
			})
			for b.Loop() {
				if _, err := s.QueueStats(1000, "q"); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(held)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(held[len(held)/2]), "median-hold-ms")
			b.ReportMetric(ms(held[len(held)*99/100]), "p99-hold-ms")
			b.ReportMetric(ms(held[len(held)-1]), "longest-hold-ms")
			b.ReportMetric(float64(lanes), "most-lanes/hold")
			b.ReportMetric(float64(len(held))/float64(b.N), "holds/op")
		})
	}
}
