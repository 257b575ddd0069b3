package commands_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
	"sluice/protocol"
	"sluice/store"
)

// recordLog keeps a server's log records in memory, in the order the
// store appended them.
type recordLog struct {
	mu   sync.Mutex
	recs []store.Record
}

func (l *recordLog) Append(r store.Record) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return uint64(len(l.recs))
}
func (l *recordLog) Wait(uint64) error { return nil }
func (l *recordLog) Err() error        { return nil }

func (l *recordLog) records() []store.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]store.Record(nil), l.recs...)
}

// TestLayeredKeysExactUnderConcurrentWorkers: 16 workers reserve and ack,
// over a real connection each, jobs that carry layered keys: a global
// cap, a cap per customer (a template), a global window, a window per
// customer (a template) and a long quota window per customer that never
// fills. From the server's log (caps in the order it admitted and
// released, windows by its times of the admissions: a caller's clock is
// read before its turn, so times alone do not order an ack and the next
// admission) no cap and no window is ever exceeded; and since a job refused
// by one key records nothing under the others, each quota holds exactly
// as many admissions as its customer's jobs were reserved, and the caps
// end with no slot held.
func TestLayeredKeysExactUnderConcurrentWorkers(t *testing.T) {
	const (
		workers   = 16
		jobs      = 1200
		customers = 6
		globalCap = 5
		custCap   = 2
		globalLim = 30
		globalPer = 100
		custLim   = 4
		custPer   = 60
		lease     = 60_000
	)
	log := &recordLog{}
	ts := start(t, func(s *setup) {
		s.atomic = func(st *store.Store) protocol.Atomic { st.SetJournal(log); return st }
	})
	c := ts.client(t)
	do(t, c, "POLICYSET", "CONCURRENCY", "global", globalCap)
	do(t, c, "POLICYSET", "CONCURRENCY", "cust:*", custCap)
	do(t, c, "POLICYSET", "RATELIMIT", "gw", globalLim, globalPer)
	do(t, c, "POLICYSET", "RATELIMIT", "cw:*", custLim, custPer)
	do(t, c, "POLICYSET", "RATELIMIT", "quota:*", 1_000_000, 600_000)
	rng := rand.New(rand.NewPCG(7, 7))
	custOf := map[string]int{}
	for range jobs {
		cu := rng.IntN(customers)
		id := do(t, c, "JOBPUSH", "q", "h", "x", "CONCURRENCY", "global", "CONCURRENCY", fmt.Sprint("cust:", cu),
			"RATELIMIT", "gw", "RATELIMIT", fmt.Sprint("cw:", cu), "RATELIMIT", fmt.Sprint("quota:", cu)).(string)
		custOf[id] = cu
	}

	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc := ts.client(t)
			r := rand.New(rand.NewPCG(uint64(w), 3))
			for {
				mu.Lock()
				finished := done >= jobs
				mu.Unlock()
				if finished {
					return
				}
				v, err := wc.Do(ctx, "JOBRESERVE", fmt.Sprint("w", w), lease, "COUNT", 1+r.IntN(2), "QUEUES", "q").Result()
				if err == redis.Nil {
					time.Sleep(500 * time.Microsecond)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				for _, res := range v.([]any) {
					if r.IntN(3) == 0 {
						time.Sleep(time.Duration(r.IntN(1500)) * time.Microsecond)
					}
					if err := wc.Do(ctx, "JOBACK", check.MapField(res, "token")).Err(); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					done++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Walk the server's log in its order (one queue: one lock orders
	// every change): caps by the order of admissions and releases, windows
	// by the server's times of the admissions.
	capOf := func(key string) int {
		if key == "global" {
			return globalCap
		}
		return custCap
	}
	recs := log.records()
	keys := map[string][]string{} // job id → its concurrency keys
	active := map[string]int{}
	held := map[string]bool{}
	windows := map[string][]int64{}
	reserved := map[int]int64{}
	for _, r := range recs {
		switch r.Op {
		case store.OpPush:
			keys[r.ID] = append([]string{r.CKey}, r.CKeys...)
		case store.OpReserve:
			for _, k := range keys[r.ID] {
				if active[k]++; active[k] > capOf(k) {
					t.Fatalf("%s had %d active jobs at %d, cap %d", k, active[k], r.Now, capOf(k))
				}
			}
			held[r.ID] = true
			if !r.Admitted {
				t.Fatalf("job %s reserved without an admission", r.ID)
			}
			at := r.Now
			if r.AdmittedAt != 0 {
				at = r.AdmittedAt
			}
			cu := custOf[r.ID]
			windows["gw"] = append(windows["gw"], at)
			windows[fmt.Sprint("cw:", cu)] = append(windows[fmt.Sprint("cw:", cu)], at)
			reserved[cu]++
		case store.OpAck, store.OpRelease, store.OpExpire:
			if held[r.ID] {
				for _, k := range keys[r.ID] {
					active[k]--
				}
				delete(held, r.ID)
			}
		}
	}
	if n := len(windows["gw"]); n != jobs {
		t.Fatalf("%d reservations logged for %d jobs", n, jobs)
	}
	for key, times := range windows {
		limit, period := custLim, int64(custPer)
		if key == "gw" {
			limit, period = globalLim, globalPer
		}
		sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
		for i, at := range times {
			first := sort.Search(len(times), func(k int) bool { return times[k] > at-period })
			if n := i + 1 - first; n > limit {
				t.Fatalf("%s admitted %d in the window ending %d, limit %d", key, n, at, limit)
			}
		}
	}
	// Refusals recorded nothing: every quota window holds exactly its
	// customer's reservations, and no cap holds a slot.
	for cu := range customers {
		p := do(t, c, "POLICYGET", "RATELIMIT", fmt.Sprint("quota:", cu))
		if got := check.MapField(p, "active"); got != reserved[cu] {
			t.Fatalf("quota:%d holds %v admissions, %d jobs were reserved", cu, got, reserved[cu])
		}
	}
	for key := range active {
		if got := check.MapField(do(t, c, "POLICYGET", "CONCURRENCY", key), "active"); got != int64(0) {
			t.Fatalf("%s holds %v slots with every job done", key, got)
		}
	}
}
