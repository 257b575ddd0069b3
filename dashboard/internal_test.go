package dashboard

import (
	"strings"
	"testing"
	"time"
)

// The ring keeps the last samples only, and rates are per second between
// neighbours, a counter that went down counting as none.
func TestRingRates(t *testing.T) {
	r := newRing(3)
	for i, v := range []uint64{0, 10, 30, 60, 50} {
		r.add(sample{at: int64(100 + i), ev: [numSeries]uint64{v}})
	}
	at, rates := r.rates()
	if len(at) != 3 || at[0] != 102 || at[2] != 104 {
		t.Fatalf("times %v, want the last three gaps ending at 102..104", at)
	}
	if got := rates[seriesPushed]; got[0] != 20 || got[1] != 30 || got[2] != 0 {
		t.Fatalf("rates %v, want [20 30 0]", got)
	}
}

// A chart spans the width whatever it covers, ends at the newest second,
// and never has more than chartPoints points.
func TestMakeChart(t *testing.T) {
	c := makeChart("pushed", []float64{5})
	if n := len(strings.Fields(c.Points)); n != 2 || c.Now != 5 || c.Max != 5 {
		t.Fatalf("one second: %d points, now %v, max %v; want a flat stroke of 2 at 5", n, c.Now, c.Max)
	}
	rates := make([]float64, ringSeconds)
	rates[len(rates)-1] = 1000
	c = makeChart("pushed", rates)
	pts := strings.Fields(c.Points)
	if len(pts) != chartPoints {
		t.Fatalf("an hour: %d points, want %d", len(pts), chartPoints)
	}
	if !strings.HasPrefix(pts[len(pts)-1], "556.0,") || c.Now != 1000 || c.Max != 100 {
		t.Fatalf("last point %s, now %v, max %v: want the last 10 s (mean 100) at the right edge", pts[len(pts)-1], c.Now, c.Max)
	}
}

func TestQuantile(t *testing.T) {
	counts := make([]uint64, 18)
	if q := quantile(counts, 0.5); q != "–" {
		t.Errorf("no observations: %q", q)
	}
	counts[2], counts[6], counts[17] = 50, 49, 1 // ≤10 ms, ≤250 ms, past an hour
	for q, want := range map[float64]string{0.5: "≤ 10 ms", 0.99: "≤ 250 ms", 1: "> 60 min"} {
		if got := quantile(counts, q); got != want {
			t.Errorf("q%v = %q, want %q", q, got, want)
		}
	}
}

func TestBlockedWords(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "",
		"paused":                   "waiting: the queue is paused",
		"concurrency:smtp 5/5":     "waiting: concurrency key smtp is at 5/5",
		"ratelimit:api until 1000": "waiting: rate limit key api is full until 1970-01-01 00:00:01.000Z",
		"throttled:api until 2000": "waiting: key api is throttled until 1970-01-01 00:00:02.000Z",
		"something new":            "waiting: something new",
		"concurrency:global 10/10, ratelimit:cust:a, b until 1000": "waiting: concurrency key global is at 10/10; rate limit key cust:a, b is full until 1970-01-01 00:00:01.000Z",
		"breaker:handler:pdf open until 3000":                      "waiting: circuit breaker handler:pdf is open until 1970-01-01 00:00:03.000Z",
		"concurrency:a 1/1, breaker:key:a half-open probes 1/2":    "waiting: concurrency key a is at 1/1; circuit breaker key:a is half-open, probes 1/2",
	} {
		if got := blockedWords(in); got != want {
			t.Errorf("blockedWords(%q) = %q, want %q", in, got, want)
		}
	}
}

// After sign-in a browser goes back to a page of this site only.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/queue?name=a": "/queue?name=a", "": "/", "//evil.example/": "/", "/\\evil.example": "/",
		"https://evil.example/": "/", "javascript:alert(1)": "/", "/a\r\nSet-Cookie: x": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// A session names its user until it expires; a changed byte or another
// server's secret makes it worthless.
func TestSession(t *testing.T) {
	d := &Dashboard{secret: []byte("one secret")}
	now := time.Unix(1_700_000_000, 0)
	v := d.session("alice", now)
	if u, ok := d.checkSession(v, now.Add(time.Hour)); !ok || u != "alice" {
		t.Fatalf("a fresh session: %q %v", u, ok)
	}
	if _, ok := d.checkSession(v, now.Add(sessionTTL)); ok {
		t.Error("an expired session was accepted")
	}
	forged := strings.Replace(v, ".", "x.", 1)
	if _, ok := d.checkSession(forged, now); ok {
		t.Error("a changed session was accepted")
	}
	other := &Dashboard{secret: []byte("another secret")}
	if _, ok := other.checkSession(v, now); ok {
		t.Error("another server's session was accepted")
	}
}

// errorGlob says to JOBBULK what containsFold means on the page: the
// text anywhere, ASCII letters in either case, glob characters as
// themselves. (The server's glob itself is checked against the page in
// TestBulkErrorFilterIsThePages.)
func TestErrorGlob(t *testing.T) {
	for in, want := range map[string]string{
		"":          "**",
		"Time out":  "*[tT][iI][mM][eE] [oO][uU][tT]*",
		"a*b?[c]\\": "*[aA]\\*[bB]\\?\\[[cC]\\]\\\\*",
		"42 é":      "*42 é*",
	} {
		if got := errorGlob(in); got != want {
			t.Errorf("errorGlob(%q) = %q, want %q", in, got, want)
		}
	}
}
