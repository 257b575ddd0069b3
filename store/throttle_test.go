package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"sluice/backpressure"
)

// TestThrottleParksAndWakesWithoutPolling: a throttled key's jobs stay
// queued, JOBGET says why, the store's next deadline is the throttle's end
// and, at that instant, Tick notifies the queue and the jobs are reserved.
func TestThrottleParksAndWakesWithoutPolling(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var notified []string
	f.s.SetNotify(func(q string) { mu.Lock(); notified = append(notified, q); mu.Unlock() })
	a := f.push("q h ck=api")
	b := f.push("q h rk=api")
	free := f.push("q h ck=other")
	until, err := f.s.Throttle(f.now, "api", 500)
	must(t, err)
	eq(t, "until", until, f.now+500)
	ids, _ := f.reserve(3, nil, "q")
	eq(t, "reserved while throttled", fmt.Sprint(ids), fmt.Sprint([]string{free}))
	for _, id := range []string{a, b} {
		j, _ := f.s.Get(f.now, id)
		eq(t, "blocked_by "+id, j.BlockedBy, fmt.Sprintf("throttled:api until %d", f.now+500))
	}
	p, ok, err := f.s.GetPolicy(f.now, backpressure.Throttle, "api")
	if err != nil || !ok || p.NextFreeAt != f.now+500 || p.Waiting != 2 {
		t.Fatalf("POLICYGET THROTTLE = %+v %v %v", p, ok, err)
	}
	eq(t, "next deadline", f.s.NextDeadline(), f.now+500)
	f.now += 499
	f.s.Tick(f.now)
	none, _ := f.one("q")
	eq(t, "reserved before the end", none, "")
	mu.Lock()
	notified = nil
	mu.Unlock()
	f.now++
	f.s.Tick(f.now)
	mu.Lock()
	eq(t, "notified at the end", fmt.Sprint(notified), "[q]")
	mu.Unlock()
	ids, _ = f.reserve(2, nil, "q")
	slices.Sort(ids)
	want := []string{a, b}
	slices.Sort(want)
	eq(t, "reserved after the end", fmt.Sprint(ids), fmt.Sprint(want))
	if _, ok, _ := f.s.GetPolicy(f.now, backpressure.Throttle, "api"); ok {
		t.Fatal("an ended throttle is still shown")
	}
}

// TestThrottleLiftedEarlyWakes: lifting (ms 0, or POLICYDEL THROTTLE) puts
// the parked lanes back at once, with a notification; extending keeps
// them parked, and a shorter throttle does not cut a longer one.
func TestThrottleLiftedEarlyWakes(t *testing.T) {
	for _, lift := range []string{"ms 0", "delete"} {
		t.Run(lift, func(t *testing.T) {
			f := newFixture(t)
			var mu sync.Mutex
			var notified []string
			f.s.SetNotify(func(q string) { mu.Lock(); notified = append(notified, q); mu.Unlock() })
			a := f.push("q h ck=api rk=api")
			_, err := f.s.Throttle(f.now, "api", 10_000)
			must(t, err)
			none, _ := f.one("q")
			eq(t, "throttled", none, "")
			_, err = f.s.Throttle(f.now, "api", 20_000) // longer: still parked
			must(t, err)
			until, err := f.s.Throttle(f.now, "api", 5_000) // shorter: the longer end is kept
			must(t, err)
			eq(t, "a shorter throttle", until, f.now+20_000)
			none, _ = f.one("q")
			eq(t, "extended", none, "")
			mu.Lock()
			notified = nil
			mu.Unlock()
			if lift == "ms 0" {
				until, err := f.s.Throttle(f.now, "api", 0)
				must(t, err)
				eq(t, "until", until, int64(0))
			} else {
				ok, err := f.s.DeletePolicy(f.now, backpressure.Throttle, "api")
				must(t, err)
				eq(t, "deleted", ok, true)
			}
			mu.Lock()
			eq(t, "notified", fmt.Sprint(notified), "[q]")
			mu.Unlock()
			id, _ := f.one("q")
			eq(t, "reserved after lifting", id, a)
			ok, err := f.s.DeletePolicy(f.now, backpressure.Throttle, "api")
			must(t, err)
			eq(t, "nothing left to delete", ok, false)
		})
	}
}

// TestReleaseThrottle: JOBRELEASE ... THROTTLE gives the job back and
// holds every job of the key, itself included, in one step; a shorter
// throttle from a worker never cuts a longer one.
func TestReleaseThrottle(t *testing.T) {
	f := newFixture(t)
	a := f.push("q h ck=api")
	b := f.push("q h ck=api")
	_, tok := f.one("q")
	must(t, f.s.ReleaseThrottle(f.now, tok, 0, "api", 1000))
	eq(t, "released", f.state(a), Queued)
	none, _ := f.one("q")
	eq(t, "throttled", none, "")
	f.now += 100
	f.s.Tick(f.now)
	// A bad token changes nothing, throttle included.
	if err := f.s.ReleaseThrottle(f.now, "nope.1", 0, "api", 5000); err == nil {
		t.Fatal("released an unknown token")
	}
	eq(t, "end kept", f.s.reg.Throttled(f.now, "api"), int64(1_001_000))
	f.now += 900
	f.s.Tick(f.now)
	id, tok := f.one("q")
	eq(t, "first after the end", id, b) // a went to the back when released
	must(t, f.s.ReleaseThrottle(f.now, tok, 0, "api", 5000))
	c := f.push("q h")
	f.now += 10
	// A later, shorter throttle from a worker keeps the longer end.
	id, tok = f.one("q")
	eq(t, "a job of no key", id, c)
	must(t, f.s.ReleaseThrottle(f.now, tok, 0, "api", 1))
	eq(t, "longer end kept", f.s.reg.Throttled(f.now, "api"), int64(1_006_000))
	// Bad arguments are refused before anything changes.
	for _, c := range []struct {
		key string
		ms  int64
	}{{"", 5}, {"t:*", 5}, {"api", -1}} {
		if _, err := f.s.Throttle(f.now, c.key, c.ms); err == nil {
			t.Errorf("Throttle(%q, %d) accepted", c.key, c.ms)
		}
	}
	f.check()
}

// TestTemplateCapsEveryTenant: a template gives every key under it a cap of
// its own; an exact policy wins; keys outside it stay unlimited; changing
// the template wakes its instances' parked lanes.
func TestTemplateCapsEveryTenant(t *testing.T) {
	f := newFixture(t)
	must(t, f.s.SetConcurrency(f.now, "tenant:*", 1))
	must(t, f.s.SetConcurrency(f.now, "tenant:vip", 2))
	for _, ck := range []string{"tenant:a", "tenant:a", "tenant:b", "tenant:b", "tenant:vip", "tenant:vip", "tenant:vip", "free", "free"} {
		f.push("q h ck=" + ck)
	}
	ids, _ := f.reserve(10, nil, "q")
	eq(t, "reserved", len(ids), 1+1+2+2)
	p, ok, _ := f.s.GetPolicy(f.now, backpressure.Concurrency, "tenant:a")
	if !ok || p.Limit != 1 || p.Active != 1 || p.Waiting != 1 || p.Template != "tenant:*" {
		t.Fatalf("instance = %+v", p)
	}
	var keys []string
	for _, p := range f.s.Policies(f.now) {
		keys = append(keys, p.Key)
	}
	eq(t, "listed", fmt.Sprint(keys), "[tenant:* tenant:a tenant:b tenant:vip]")
	must(t, f.s.SetConcurrency(f.now, "tenant:*", 2))
	ids, _ = f.reserve(10, nil, "q")
	eq(t, "reserved after raising the template", len(ids), 2)
	ok, err := f.s.DeletePolicy(f.now, backpressure.Concurrency, "tenant:a")
	must(t, err)
	eq(t, "an instance is not a policy to delete", ok, false)
	ok, err = f.s.DeletePolicy(f.now, backpressure.Concurrency, "tenant:*")
	must(t, err)
	eq(t, "template deleted", ok, true)
	ids, _ = f.reserve(10, nil, "q")
	eq(t, "vip keeps its own cap", len(ids), 0)
	f.check()
}
