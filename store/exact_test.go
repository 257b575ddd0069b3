package store

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestTemplatesExactUnderConcurrentWorkers: 16 workers reserve and ack jobs
// of many keys that follow templates (a cap per tenant, a window per API
// key, one tenant with a policy of its own, throttles set and lifted
// meanwhile) on the wall clock. The log, in the order the store applied
// the changes (one queue: one shard lock orders them all), shows from the
// server's own times that no key ever had more active jobs than its cap,
// no window more admissions than its limit, and no job was admitted under
// a throttle.
func TestTemplatesExactUnderConcurrentWorkers(t *testing.T) {
	const (
		workers  = 16
		jobs     = 3000
		tenants  = 12
		apis     = 4
		capOf    = 2
		vipCap   = 3
		rateLim  = 3
		ratePer  = 20
		throttle = 15
	)
	cfg := DefaultConfig()
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	j := &memJournal{}
	s.SetJournal(j)
	now := func() int64 { return time.Now().UnixMilli() }
	must(t, s.SetConcurrency(now(), "tenant:*", capOf))
	must(t, s.SetConcurrency(now(), "tenant:vip", vipCap))
	must(t, s.SetRateLimit(now(), "api:*", rateLim, ratePer))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range jobs {
		ck := fmt.Sprintf("tenant:%d", rng.IntN(tenants))
		if i%7 == 0 {
			ck = "tenant:vip"
		}
		p := PushOptions{Queue: "q", Handler: "h", Payload: []byte("x"), ConcurrencyKey: ck}
		if rng.IntN(2) == 0 {
			p.RateLimitKey = fmt.Sprintf("api:%d", rng.IntN(apis))
		}
		if _, err := s.Push(now(), p); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				mu.Lock()
				finished := done == jobs
				mu.Unlock()
				if finished {
					return
				}
				s.Tick(now())
				rs, err := s.Reserve(now(), ReserveOptions{Worker: fmt.Sprint("w", w), Lease: 60_000, Count: 1 + r.IntN(3), Queues: []string{"q"}})
				if err != nil {
					t.Error(err)
					return
				}
				if len(rs) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				if r.IntN(4) == 0 {
					time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
				}
				for _, res := range rs {
					if r.IntN(40) == 0 { // a 429: give it back and hold its tenant
						j, _ := s.Get(now(), res.ID)
						if err := s.ReleaseThrottle(now(), res.Token, 0, j.ConcurrencyKey, throttle); err != nil {
							t.Error(err)
						}
						continue
					}
					if err := s.Ack(now(), res.Token); err != nil {
						t.Error(err)
					}
					mu.Lock()
					done++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}

	// Walk the log in its order.
	j.mu.Lock()
	recs := append([]Record(nil), j.recs...)
	j.mu.Unlock()
	keys := map[string][2]string{} // job id → its keys
	active := map[string]int{}
	held := map[string]string{} // job id → its concurrency key, while active
	admitted := map[string][]int64{}
	thrUntil := map[string]int64{}
	reserves := 0
	for _, r := range recs {
		switch r.Op {
		case OpPush:
			keys[r.ID] = [2]string{r.CKey, r.RKey}
		case OpThrottle:
			thrUntil[r.PolicyKey] = r.Until
		case OpReserve:
			reserves++
			ck, rk := keys[r.ID][0], keys[r.ID][1]
			at := r.Now
			if thrUntil[ck] > at || (rk != "" && thrUntil[rk] > at) {
				t.Fatalf("job %s admitted at %d under a throttle of %s until %d", r.ID, at, ck, thrUntil[ck])
			}
			active[ck]++
			held[r.ID] = ck
			limit := capOf
			if ck == "tenant:vip" {
				limit = vipCap
			}
			if active[ck] > limit {
				t.Fatalf("%s had %d active jobs at %d, cap %d", ck, active[ck], r.Now, limit)
			}
			if r.Admitted {
				adm := r.Now
				if r.AdmittedAt != 0 {
					adm = r.AdmittedAt
				}
				admitted[rk] = append(admitted[rk], adm)
			} else if rk != "" {
				t.Fatalf("job %s of %s reserved without an admission", r.ID, rk)
			}
		case OpAck, OpRelease, OpExpire:
			if ck, ok := held[r.ID]; ok {
				active[ck]--
				delete(held, r.ID)
			}
		}
	}
	if reserves < jobs {
		t.Fatalf("%d reservations logged for %d jobs", reserves, jobs)
	}
	for rk, times := range admitted {
		sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
		for i, at := range times {
			n := 0
			for _, u := range times[:i+1] {
				if u > at-ratePer {
					n++
				}
			}
			if n > rateLim {
				t.Fatalf("%s admitted %d in the window ending %d, limit %d", rk, n, at, rateLim)
			}
		}
	}
}
