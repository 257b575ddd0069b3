package main

import (
	"math"
	"strings"
	"testing"

	"sluice/benchmarks/internal/load"
)

func TestParseRedisBenchmark(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"XADD bench:s * p xxxx","285714.28","2.462","0.472","2.183","3.863","9.583","9.751"
`
	r, err := parseRedisBenchmark([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.OpsPerSec != 285714.28 || math.Abs(r.P50-2183) > 1e-6 || math.Abs(r.P99-9583) > 1e-6 || math.Abs(r.Mean-2462) > 1e-6 {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseRedisBenchmark([]byte("ERROR: connection refused\n")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func rows(id, target string, lower bool, rates ...float64) []row {
	var rs []row
	for i, v := range rates {
		rs = append(rs, row{Round: i + 1, ID: id, Target: target, Section: "push", Lower: lower, Res: load.Result{OpsPerSec: v, P50: 1000 / v, Pipeline: 1, Conns: 1}})
	}
	return rs
}

// Ratios pair figures of the same round before taking the median, so a
// round where the whole machine was slow does not skew them.
func TestRatiosPairRounds(t *testing.T) {
	rep := &report{Rounds: 3, Order: []string{"push c=1 P=1"}}
	rep.Rows = append(rows("push c=1 P=1", "sluice", false, 100, 50, 300), rows("push c=1 P=1", "redis-list", false, 200, 50, 150)...)
	ix := newIndex(rep)
	if got := ix.med("push c=1 P=1", "sluice", ops); got != 100 {
		t.Fatalf("median %v, want 100", got)
	}
	// Per-round ratios 0.5, 1, 2: median 1 (the ratio of medians would be 100/150).
	if got := ix.ratio("push c=1 P=1", "sluice", "push c=1 P=1", "redis-list", ops); got != 1 {
		t.Fatalf("ratio %v, want 1", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Fatalf("even median %v", got)
	}
	if !math.IsNaN(ix.ratio("push c=1 P=1", "sluice", "nothing", "redis-list", ops)) {
		t.Fatal("ratio against nothing is a number")
	}
	md := markdown(rep, "")
	if !strings.Contains(md, "| push c=1 P=1 | redis-server list | 150 |") || !strings.Contains(md, "ops 1.00×") {
		t.Fatalf("table:\n%s", md)
	}
	svg := string(chart(rep))
	if strings.Count(svg, "<polyline") != 2 {
		t.Fatalf("chart has %d lines, want 2", strings.Count(svg, "<polyline"))
	}
}

func TestBarsVerdicts(t *testing.T) {
	rep := &report{Rounds: 1, Mode: "full", Order: []string{"push P=1", "cycle c=50"}}
	rep.Rows = append(rep.Rows, rows("push P=1", "sluice", false, 90)...)
	rep.Rows = append(rep.Rows, rows("push P=1", "redis-list", false, 100)...)
	rep.Rows = append(rep.Rows, rows("cycle c=50", "sluice", false, 50)...)
	rep.Rows = append(rep.Rows, rows("cycle c=50", "redis-stream", false, 40)...)
	bs := newIndex(rep).bars()
	if len(bs) != 2 {
		t.Fatalf("%d bars, want 2: %+v", len(bs), bs)
	}
	if bs[0].ok || math.Abs(bs[0].value-0.9) > 1e-9 {
		t.Errorf("push bar: %+v", bs[0])
	}
	if !bs[1].ok || math.Abs(bs[1].value-1.25) > 1e-9 {
		t.Errorf("cycle bar: %+v", bs[1])
	}
}

func TestCommandLineQuotes(t *testing.T) {
	got := commandLine([]string{"redis-benchmark", "XADD", "bench:s", "*", "p", "it's", ""})
	want := `redis-benchmark XADD bench:s '*' p 'it'\''s' ''`
	if got != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
}

// One round over the rate limit fails the bar, whatever the median says.
func TestRateLimitBarUsesWorstRound(t *testing.T) {
	rep := &report{Rounds: 3, Mode: "full", Order: []string{"rate-limited key"}}
	for i, w := range []float64{100, 101, 100} {
		rep.Rows = append(rep.Rows, row{Round: i + 1, ID: "rate-limited key", Target: "sluice", Section: "policy",
			Res: load.Result{OpsPerSec: 1000, Extra: map[string]float64{"achieved_ratio": 1, "max_in_window": w, "limit_per_window": 100, "limit_per_sec": 1000}}})
	}
	bs := newIndex(rep).bars()
	if len(bs) != 1 || bs[0].ok || !strings.Contains(bs[0].note, "101") {
		t.Fatalf("bars: %+v", bs)
	}
}

// The cycle bar takes the paired rows when a run has them, the separate
// ones otherwise; both servers of a paired measure are listed.
func TestPairedCycleBar(t *testing.T) {
	rep := &report{Rounds: 1, Mode: "full", Order: []string{"cycle c=50", "cycle c=50, paired"}}
	rep.Rows = append(rep.Rows, rows("cycle c=50", "sluice", false, 50)...)
	rep.Rows = append(rep.Rows, rows("cycle c=50", "redis-stream", false, 40)...)
	if bs := newIndex(rep).bars(); len(bs) != 1 || math.Abs(bs[0].value-1.25) > 1e-9 {
		t.Fatalf("without paired rows: %+v", bs)
	}
	paired := append(rows("cycle c=50, paired", "sluice", false, 45), rows("cycle c=50, paired", "redis-stream", false, 50)...)
	paired[0].Server, paired[1].Server = "sluice --port 1", "redis-server --port 2"
	paired[0].Command, paired[1].Command = "loadgen -addr2 x", "loadgen -addr2 x"
	rep.Rows = append(rep.Rows, paired...)
	bs := newIndex(rep).bars()
	if len(bs) != 1 || bs[0].ok || math.Abs(bs[0].value-0.9) > 1e-9 || !strings.Contains(bs[0].what, "taking turns") {
		t.Fatalf("with paired rows: %+v", bs)
	}
	md := markdown(rep, "")
	if !strings.Contains(md, "sluice --port 1\nloadgen -addr2 x") || !strings.Contains(md, "redis-server --port 2\nloadgen -addr2 x") {
		t.Fatalf("command lines:\n%s", md[strings.Index(md, "## Exact"):])
	}
}

// firstTouch measures something: a page fault takes time, and mapping
// fails cleanly rather than faking a figure.
func TestFirstTouch(t *testing.T) {
	d, err := firstTouch(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Fatalf("a page fault took %v", d)
	}
	if _, err := firstTouch(0); err == nil {
		t.Fatal("mapping nothing did not fail")
	}
}
