package backpressure

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestConcurrencyCap(t *testing.T) {
	r := New()
	if _, err := r.SetConcurrency("k", 2); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if !r.Admit(0, "k", "", "w").OK {
			t.Fatalf("admission %d refused", i)
		}
	}
	a := r.Admit(0, "k", "", "w1")
	b, ok := a.Block, a.OK
	if ok || b.Kind != Concurrency || b.String() != "concurrency:k 2/2" {
		t.Fatalf("third admission: ok=%v block=%v", ok, b)
	}
	if ws := r.Release("k"); len(ws) != 1 || ws[0] != "w1" {
		t.Fatalf("release woke %v, want [w1]", ws)
	}
	if ws := r.Release("k"); len(ws) != 0 {
		t.Fatalf("waiters are woken once: %v", ws)
	}
	if got := r.Active("k"); got != 0 {
		t.Fatalf("active = %d", got)
	}
	// Lowering a limit evicts nobody.
	r.Admit(0, "k", "", nil)
	r.Admit(0, "k", "", nil)
	r.SetConcurrency("k", 1)
	if got := r.Active("k"); got != 2 {
		t.Fatalf("active after lowering = %d", got)
	}
	if r.Admit(0, "k", "", nil).OK {
		t.Fatal("admitted over a lowered limit")
	}
	r.Release("k")
	if r.Admit(0, "k", "", nil).OK {
		t.Fatal("admitted at the limit")
	}
}

func TestKeysWithoutPolicyCountButNeverBlock(t *testing.T) {
	r := New()
	for i := 0; i < 100; i++ {
		if !r.Admit(0, "c", "r", nil).OK {
			t.Fatal("refused without a policy")
		}
	}
	if got := r.Active("c"); got != 100 {
		t.Fatalf("active = %d, want 100", got)
	}
	r.SetRateLimit(0, "r", 1, 1000)
	info, _ := r.Get(0, RateLimit, "r")
	if info.Active != 0 {
		t.Fatalf("admissions recorded without a policy: %d", info.Active)
	}
}

func TestRollingWindow(t *testing.T) {
	r := New()
	r.SetRateLimit(0, "r", 2, 1000)
	for _, at := range []int64{100, 400} {
		if !r.Admit(at, "", "r", nil).OK {
			t.Fatalf("admission at %d refused", at)
		}
	}
	cases := []struct {
		at    int64
		ok    bool
		until int64
	}{
		{999, false, 1100},
		{1099, false, 1100},
		{1100, true, 0}, // the admission at 100 has left (now-period, now]
		{1101, false, 1400},
		{1400, true, 0},
	}
	for _, c := range cases {
		a := r.Admit(c.at, "", "r", nil)
		b, ok := a.Block, a.OK
		if ok != c.ok || (!ok && b.Until != c.until) {
			t.Fatalf("at %d: ok=%v until=%d, want ok=%v until=%d", c.at, ok, b.Until, c.ok, c.until)
		}
	}
	info, _ := r.Get(1400, RateLimit, "r")
	if info.Active != 2 || !info.Blocking || info.NextFreeAt != 2100 {
		t.Fatalf("info = %+v", info)
	}
	// Deleting forgets the admissions.
	if ok, _ := r.Delete(RateLimit, "r"); !ok {
		t.Fatal("delete reported no policy")
	}
	r.SetRateLimit(0, "r", 2, 1000)
	if info, _ := r.Get(1400, RateLimit, "r"); info.Active != 0 {
		t.Fatalf("admissions survived delete: %d", info.Active)
	}
}

func TestRefusedRateUndoesConcurrency(t *testing.T) {
	r := New()
	r.SetConcurrency("c", 1)
	r.SetRateLimit(0, "r", 1, 1000)
	if !r.Admit(0, "", "r", nil).OK {
		t.Fatal("first rate admission refused")
	}
	a := r.Admit(1, "c", "r", "w")
	b, ok := a.Block, a.OK
	if ok || b.Kind != RateLimit {
		t.Fatalf("want a rate-limit block, got ok=%v %v", ok, b)
	}
	if got := r.Active("c"); got != 0 {
		t.Fatalf("concurrency count leaked: %d", got)
	}
}

func TestOutOfOrderAdmissionsAreClampedToTheLatestTime(t *testing.T) {
	r := New()
	r.SetRateLimit(0, "r", 10, 100)
	for _, at := range []int64{50, 40, 60, 10} {
		r.Take(at, "", "r") // recorded at 50, 50, 60, 60
	}
	info, _ := r.Get(149, RateLimit, "r") // window (49, 149]: all four
	if info.Active != 4 {
		t.Fatalf("active = %d, want 4", info.Active)
	}
	info, _ = r.Get(155, RateLimit, "r") // window (55, 155]: the two at 60
	if info.Active != 2 {
		t.Fatalf("active = %d, want 2", info.Active)
	}
}

func TestInvalidPolicies(t *testing.T) {
	r := New()
	if _, err := r.SetConcurrency("k", 0); err != ErrLimit {
		t.Fatalf("limit 0: %v", err)
	}
	if _, err := r.SetRateLimit(0, "k", 1, 0); err != ErrPeriod {
		t.Fatalf("period 0: %v", err)
	}
	if list := r.List(0); len(list) != 0 {
		t.Fatalf("invalid policies were stored: %v", list)
	}
	if k, ok := ParseKind("RateLimit"); !ok || k != RateLimit {
		t.Fatal("ParseKind")
	}
}

func TestListSorted(t *testing.T) {
	r := New()
	r.SetRateLimit(0, "b", 1, 1)
	r.SetConcurrency("z", 1)
	r.SetConcurrency("a", 1)
	r.SetRateLimit(0, "a", 1, 1)
	var got []string
	for _, p := range r.List(0) {
		got = append(got, p.Kind.String()+":"+p.Key)
	}
	want := []string{"concurrency:a", "concurrency:z", "ratelimit:a", "ratelimit:b"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// Callers read their clocks before taking the lock, so admissions can arrive
// out of order. One arriving with an older time is judged, and recorded, at
// the latest time already used, so no window of the period ever holds more
// than the limit.
func TestLateCallerCannotOvershoot(t *testing.T) {
	r := New()
	r.SetRateLimit(0, "r", 3, 1000)
	var times []int64
	for _, now := range []int64{1, 2, 500, 1002, 1000, 1001, 999, 1600, 1500} {
		if a := r.Admit(now, "", "r", nil); a.OK {
			times = append(times, a.At)
		}
	}
	if len(times) == 0 || times[4] != 1002 {
		t.Fatalf("admissions at %v; the late caller at 1000 should be admitted at 1002", times)
	}
	for _, end := range times {
		n := 0
		for _, at := range times {
			if at > end-1000 && at <= end {
				n++
			}
		}
		if n > 3 {
			t.Fatalf("%d admissions in (%d, %d]: %v", n, end-1000, end, times)
		}
	}
}

// A Keys follows its keys' state through deletes, re-creation and Reset:
// it never counts on a state the registry has let go.
func TestKeysFollowPolicyChanges(t *testing.T) {
	r := New()
	k := Keys{CKey: "c", RKey: "r"}
	mustSet := func(_ []Waiter, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustSet(r.SetConcurrency("c", 1))
	mustSet(r.SetRateLimit(0, "r", 1, 1000))
	if a := r.AdmitKeys(1, &k, nil); !a.OK || !a.Rated {
		t.Fatalf("first admission %+v", a)
	}
	if a := r.AdmitKeys(2, &k, nil); a.OK || a.Block.Kind != Concurrency {
		t.Fatalf("second admission %+v, want a concurrency block", a)
	}
	r.ReleaseKeys(&k)
	// A new rate policy starts with an empty window; the cached one had
	// an admission and would refuse.
	r.Delete(RateLimit, "r")
	mustSet(r.SetRateLimit(3, "r", 1, 1000))
	if a := r.AdmitKeys(4, &k, nil); !a.OK || !a.Rated {
		t.Fatalf("admission after the rate policy was re-created %+v", a)
	}
	// The concurrency state goes when its policy is deleted and its last
	// job ends; a new policy's count must see the next admission.
	r.Delete(Concurrency, "c")
	r.ReleaseKeys(&k)
	mustSet(r.SetConcurrency("c", 5))
	if a := r.AdmitKeys(1500, &k, nil); !a.OK {
		t.Fatalf("admission after the concurrency policy was re-created %+v", a)
	}
	if n := r.Active("c"); n != 1 {
		t.Fatalf("active %d after one admission, want 1", n)
	}
	r.Reset()
	mustSet(r.SetConcurrency("c", 5))
	if a := r.AdmitKeys(3000, &k, nil); !a.OK {
		t.Fatalf("admission after Reset %+v", a)
	}
	if n := r.Active("c"); n != 1 {
		t.Fatalf("active %d after Reset and one admission, want 1", n)
	}
	r.ReleaseKeys(&k)
	if n := r.Active("c"); n != 0 {
		t.Fatalf("active %d after the release, want 0", n)
	}
}

// A held key's state outlives its jobs and its policy, so that a lane
// admitting and releasing jobs of an unconfigured key does not create and
// delete it every time; the last Drop lets it go.
func TestHoldKeepsTheStateUntilDrop(t *testing.T) {
	r := New()
	state := func(key string) *concState {
		s := r.shard(key)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.conc[key]
	}
	a, b := Keys{CKey: "k"}, Keys{CKey: "k"}
	r.Hold(&a)
	r.Hold(&a) // a second Hold of the same Keys counts once
	r.Hold(&b)
	held := state("k")
	if held == nil || r.Holders()["k"] != 2 {
		t.Fatalf("after Hold: state %v, %d holders", held, r.Holders()["k"])
	}
	for i := 0; i < 3; i++ {
		if ad := r.AdmitKeys(1, &a, nil); !ad.OK {
			t.Fatal("refused without a policy")
		}
		r.ReleaseKeys(&a)
		if state("k") != held {
			t.Fatalf("cycle %d: the held state was replaced", i)
		}
	}
	if _, err := r.SetConcurrency("k", 1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.Delete(Concurrency, "k"); !ok || state("k") != held {
		t.Fatal("deleting the policy dropped a held state")
	}
	r.Drop(&a)
	r.Drop(&a) // a second Drop does nothing
	if state("k") != held || r.Holders()["k"] != 1 {
		t.Fatalf("after one holder left: %d holders", r.Holders()["k"])
	}
	r.Drop(&b)
	if state("k") != nil {
		t.Fatal("the state outlived its last holder")
	}
	// Reset forgets held states; a Drop afterwards leaves the new ones be.
	c := Keys{CKey: "k"}
	r.Hold(&c)
	r.Reset()
	d := Keys{CKey: "k"}
	r.Hold(&d)
	r.Drop(&c)
	if r.Holders()["k"] != 1 {
		t.Fatalf("a Drop after Reset changed the new state: %d holders", r.Holders()["k"])
	}
}

// BenchmarkPolicyMemory reports the heap bytes per policy (10-byte keys)
// after 100,000 of them, and per admission of one rate limit: what
// ConcKeyOverhead, RateKeyOverhead and AdmissionBytes estimate.
func BenchmarkPolicyMemory(b *testing.B) {
	const n = 100_000
	measure := func(fill func(r *Registry, i int)) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		r := New()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			fill(r, i)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(r)
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	key := func(i int) string { return fmt.Sprintf("k%09d", i) }
	for range b.N {
		b.ReportMetric(measure(func(r *Registry, i int) { _, _ = r.SetConcurrency(key(i), 5) }), "bytes/concurrency")
		b.ReportMetric(measure(func(r *Registry, i int) { _, _ = r.SetRateLimit(0, key(i), 5, 1000) }), "bytes/ratelimit")
		b.ReportMetric(measure(func(r *Registry, i int) {
			if i == 0 {
				_, _ = r.SetRateLimit(0, "k", n, 1<<40)
			}
			r.Admit(int64(i), "", "k", nil)
		}), "bytes/admission")
	}
}

// The memory a rate limit's admissions count toward --maxmemory depends on
// the admissions and policy changes alone: a registry read in between (as
// a node of a group serving POLICYGET and blocked_by, or taking a
// snapshot), and one loaded from another's snapshot halfway (as a node that
// installs one, or a server restarted from a rewritten log), count the
// same as the one only written to, at every step, so all of them refuse the
// same pushes near the limit.
func TestAdmissionBytesIgnoreReads(t *testing.T) {
	quiet, read := New(), New()
	var loaded *Registry
	rng := rand.New(rand.NewPCG(7, 7))
	keys := []string{"r1", "r2", "r3"}
	policies := func(r *Registry) {
		for i, k := range keys {
			if _, err := r.SetRateLimit(0, k, int64(20+30*i), int64(5+20*i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	policies(quiet)
	policies(read)
	now := int64(0)
	for step := range 20000 {
		now += int64(rng.IntN(3))
		k := keys[rng.IntN(len(keys))]
		if step == 5000 {
			loaded = New()
			policies(loaded)
			for _, k := range keys {
				times, clock, _ := read.Admissions(now, k)
				loaded.RestoreAdmissions(k, times, clock)
			}
		}
		switch rng.IntN(4) {
		case 0, 1:
			for _, r := range []*Registry{quiet, read, loaded} {
				if r != nil {
					r.Admit(now, "", k, nil)
				}
			}
		case 2:
			read.Get(now, RateLimit, k)
			read.Check(now, "", k)
		case 3:
			read.Admissions(now, k)
			read.List(now)
		}
		for name, r := range map[string]*Registry{"read": read, "loaded": loaded} {
			if r == nil {
				continue
			}
			if q, b := quiet.Bytes(), r.Bytes(); q != b {
				t.Fatalf("step %d: the %s registry counts %d bytes, the one only written to %d", step, name, b, q)
			}
			if b, c := r.Bytes(), r.CountBytes(); b != c {
				t.Fatalf("step %d: %s: running count %d, recount %d", step, name, b, c)
			}
		}
	}
}
