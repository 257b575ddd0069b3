package backpressure

import "testing"

// Setting and lifting a throttle again and again holds no more memory
// than one throttle: the ends it leaves behind are dropped.
func TestThrottleEndsStayBounded(t *testing.T) {
	r := New()
	const far = 10 * 365 * 24 * 3600 * 1000
	for range 100_000 {
		r.SetThrottle(1000, "k", 1000+far, true)
		r.SetThrottle(1000, "k", 0, false)
	}
	if n := len(r.thrEnds); n > 2*int(r.throttles.Load())+64 {
		t.Fatalf("the heap of ends holds %d entries for %d throttles", n, r.throttles.Load())
	}
	// Ends still in force are kept: a throttle set after all that ends.
	r.SetThrottle(1000, "k", 2000, false)
	if r.Throttled(1500, "k") != 2000 {
		t.Fatal("the throttle set last is not in force")
	}
	r.SetThrottle(2500, "other", 3000, false) // sweeps the ends due by 2500
	if _, ok := r.Throttles()["k"]; ok {
		t.Fatal("the ended throttle was not forgotten at the next throttle set")
	}
}
