package backpressure

import (
	"fmt"
	"runtime"
	"testing"
)

func TestTemplateGivesEachKeyItsOwnCap(t *testing.T) {
	r := New()
	if _, err := r.SetTemplate(0, Concurrency, "tenant:*", 2, 0); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"tenant:a", "tenant:b"} {
		for i := 0; i < 2; i++ {
			if !r.Admit(0, key, "", nil).OK {
				t.Fatalf("%s admission %d refused", key, i)
			}
		}
		a := r.Admit(0, key, "", "w")
		if a.OK || a.Block.String() != "concurrency:"+key+" 2/2" {
			t.Fatalf("%s: third admission %+v", key, a)
		}
	}
	// Keys outside the template stay unlimited.
	for i := 0; i < 10; i++ {
		if !r.Admit(0, "other", "", nil).OK {
			t.Fatal("a key under no template was refused")
		}
	}
	info, ok := r.Get(0, Concurrency, "tenant:a")
	if !ok || info.Limit != 2 || info.Active != 2 || info.Template != "tenant:*" || !info.Blocking {
		t.Fatalf("instance info = %+v, %v", info, ok)
	}
	// Raising the template wakes the waiters of its instances.
	ws, _ := r.SetTemplate(0, Concurrency, "tenant:*", 3, 0)
	if len(ws) != 2 || ws[0].Key != "tenant:a" || ws[1].Key != "tenant:b" {
		t.Fatalf("woken = %+v", ws)
	}
	if !r.Admit(0, "tenant:a", "", nil).OK {
		t.Fatal("raised template not applied to its instance")
	}
	// Released to zero, an instance is forgotten.
	for i := 0; i < 3; i++ {
		r.Release("tenant:a")
	}
	for _, p := range r.List(0) {
		if p.Key == "tenant:a" {
			t.Fatalf("idle instance still listed: %+v", p)
		}
	}
	if got, want := r.Bytes(), r.CountBytes(); got != want {
		t.Fatalf("Bytes = %d, CountBytes = %d", got, want)
	}
}

func TestLongestTemplateAndExactPolicyWin(t *testing.T) {
	r := New()
	r.SetTemplate(0, Concurrency, "t:*", 1, 0)
	r.SetTemplate(0, Concurrency, "t:big:*", 3, 0)
	r.SetConcurrency("t:big:vip", 5)
	cases := map[string]int64{"t:x": 1, "t:big:x": 3, "t:big:vip": 5, "t:bi": 1, "u:x": 0}
	for key, want := range cases {
		n := int64(0)
		for i := 0; i < 10 && r.Admit(0, key, "", nil).OK; i++ {
			n++
		}
		if want == 0 {
			want = 10
		}
		if n != want {
			t.Errorf("%s admitted %d, want %d", key, n, want)
		}
	}
	// Deleting the exact policy hands the key to the template.
	r.Delete(Concurrency, "t:big:vip")
	if info, _ := r.Get(0, Concurrency, "t:big:vip"); info.Limit != 3 || info.Template != "t:big:*" {
		t.Fatalf("after deleting the exact policy: %+v", info)
	}
	// Deleting the longer template hands its keys to the shorter one.
	if ok, _ := r.DeleteTemplate(0, Concurrency, "t:big:*"); !ok {
		t.Fatal("template not found")
	}
	if info, _ := r.Get(0, Concurrency, "t:big:x"); info.Limit != 1 || info.Template != "t:*" {
		t.Fatalf("after deleting the longer template: %+v", info)
	}
	if ok, _ := r.DeleteTemplate(0, Concurrency, "t:big:*"); ok {
		t.Fatal("deleted a template twice")
	}
}

func TestRateTemplateWindowsAndForgetting(t *testing.T) {
	r := New()
	r.SetTemplate(0, RateLimit, "api:*", 2, 1000)
	for _, key := range []string{"api:a", "api:b"} {
		for i := int64(0); i < 2; i++ {
			if !r.Admit(100+i, "", key, nil).OK {
				t.Fatalf("%s admission %d refused", key, i)
			}
		}
		a := r.Admit(200, "", key, nil)
		if a.OK || a.Block.String() != "ratelimit:"+key+" until 1100" {
			t.Fatalf("%s: %+v", key, a)
		}
	}
	if got := len(r.List(500)); got != 3 { // the template and two instances
		t.Fatalf("listed %d, want 3: %+v", got, r.List(500))
	}
	// Windows empty: instances are neither listed nor kept once new ones
	// are admitted.
	if got := len(r.List(5000)); got != 1 {
		t.Fatalf("listed %d after the windows emptied, want 1", got)
	}
	for i := range 200 { // enough for every shard to sweep
		r.Admit(int64(5000+i), "", fmt.Sprintf("api:n%d", i), nil)
	}
	s := r.shard("api:a")
	s.mu.Lock()
	_, keptA := s.rate["api:a"]
	s.mu.Unlock()
	s = r.shard("api:b")
	s.mu.Lock()
	_, keptB := s.rate["api:b"]
	s.mu.Unlock()
	if keptA || keptB {
		t.Fatal("idle instances were never forgotten")
	}
	if got, want := r.Bytes(), r.CountBytes(); got != want {
		t.Fatalf("Bytes = %d, CountBytes = %d", got, want)
	}
	// Replay restores an instance's admissions through Take.
	r2 := New()
	r2.SetTemplate(0, RateLimit, "api:*", 1, 1000)
	r2.Take(100, "", "api:z")
	if a := r2.Admit(200, "", "api:z", nil); a.OK {
		t.Fatal("Take recorded no admission on an instance")
	}
}

func TestThrottle(t *testing.T) {
	r := New()
	r.SetConcurrency("k", 10)
	if ws := r.SetThrottle(0, "k", 1000, false); ws != nil {
		t.Fatalf("woken %v", ws)
	}
	for _, keys := range [][2]string{{"k", ""}, {"", "k"}} {
		a := r.Admit(500, keys[0], keys[1], "w")
		if a.OK || a.Block.String() != "throttled:k until 1000" {
			t.Fatalf("keys %v: %+v", keys, a)
		}
	}
	if r.Active("k") != 0 {
		t.Fatal("a throttled admission counted")
	}
	if b, blocked := r.Check(999, "", "k"); !blocked || b.Kind != Throttle {
		t.Fatalf("Check = %v %v", b, blocked)
	}
	if !r.Admit(1000, "k", "", nil).OK {
		t.Fatal("refused once the throttle ended")
	}
	// Extending keeps the later end; setting replaces it; both wake.
	r.SetThrottle(1000, "k", 3000, false)
	r.Admit(1500, "k", "", "w")
	if ws := r.SetThrottle(1500, "k", 2000, true); len(ws) != 1 || r.Throttled(1500, "k") != 3000 {
		t.Fatalf("extend: woken %v, until %d", ws, r.Throttled(1500, "k"))
	}
	r.SetThrottle(1500, "k", 2000, false)
	if r.Throttled(1500, "k") != 2000 {
		t.Fatal("set did not replace the end")
	}
	r.SetThrottle(1500, "k", 1500, false) // lifted
	if r.Throttled(1500, "k") != 0 || !r.Admit(1500, "k", "", nil).OK {
		t.Fatal("lifted throttle still refuses")
	}
	if got, want := r.Bytes(), r.CountBytes(); got != want {
		t.Fatalf("Bytes = %d, CountBytes = %d", got, want)
	}
	if _, ok := r.Get(1500, Throttle, "k"); ok {
		t.Fatal("lifted throttle still shown")
	}
}

// BenchmarkTemplateMemory reports the heap bytes per live instance of a
// template (10-byte keys, 100,000 of them): a concurrency key with an
// active job, a rate-limit key with one admission in its window.
func BenchmarkTemplateMemory(b *testing.B) {
	const n = 100_000
	measure := func(fill func(r *Registry, i int)) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		r := New()
		r.SetTemplate(0, Concurrency, "k*", 5, 0)
		r.SetTemplate(0, RateLimit, "k*", 5, 1<<40)
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
		b.ReportMetric(measure(func(r *Registry, i int) { r.Admit(0, key(i), "", nil) }), "bytes/concurrency-instance")
		b.ReportMetric(measure(func(r *Registry, i int) { r.Admit(int64(i), "", key(i), nil) }), "bytes/ratelimit-instance")
	}
}
