package main

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"sluice/benchmarks/internal/load"
)

// index gives rows by (id, target) across rounds.
type index struct {
	rep *report
	by  map[[2]string][]row
}

func newIndex(rep *report) *index {
	ix := &index{rep: rep, by: map[[2]string][]row{}}
	for _, r := range rep.Rows {
		k := [2]string{r.ID, r.Target}
		ix.by[k] = append(ix.by[k], r)
	}
	return ix
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// med is the median over rounds of f applied to the rows of (id, target).
func (ix *index) med(id, target string, f func(load.Result) float64) float64 {
	var xs []float64
	for _, r := range ix.by[[2]string{id, target}] {
		xs = append(xs, f(r.Res))
	}
	return median(xs)
}

// max is the largest f over the rounds of (id, target).
func (ix *index) max(id, target string, f func(load.Result) float64) float64 {
	m := math.NaN()
	for _, r := range ix.by[[2]string{id, target}] {
		if v := f(r.Res); math.IsNaN(m) || v > m {
			m = v
		}
	}
	return m
}

// ratio is the median over rounds of f(a)/f(b), each from the same round.
func (ix *index) ratio(ida, ta, idb, tb string, f func(load.Result) float64) float64 {
	b := map[int]float64{}
	for _, r := range ix.by[[2]string{idb, tb}] {
		b[r.Round] = f(r.Res)
	}
	var xs []float64
	for _, r := range ix.by[[2]string{ida, ta}] {
		if v, ok := b[r.Round]; ok && v != 0 {
			xs = append(xs, f(r.Res)/v)
		}
	}
	return median(xs)
}

func ops(r load.Result) float64  { return r.OpsPerSec }
func p50(r load.Result) float64  { return r.P50 }
func p99(r load.Result) float64  { return r.P99 }
func p999(r load.Result) float64 { return r.P999 }
func extra(k string) func(load.Result) float64 {
	return func(r load.Result) float64 {
		if v, ok := r.Extra[k]; ok {
			return v
		}
		return math.NaN()
	}
}
func inv(f func(load.Result) float64) func(load.Result) float64 {
	return func(r load.Result) float64 { return 1 / f(r) }
}

func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v == 0:
		return "—"
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func ratioStr(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v)
}

// A bar of DESIGN.md: value is a median ratio; ok says whether it holds.
type barRow struct {
	what, sluice, peer, need string
	value                    float64
	ok                       bool
	note                     string
}

func (ix *index) has(id, target string) bool { return len(ix.by[[2]string{id, target}]) > 0 }

func (ix *index) bars() []barRow {
	var bs []barRow
	atLeast := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
	atMost := func(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
	// addOps adds a bar on ops/s if both figures exist, and says whether
	// it did.
	addOps := func(what, ida, ta, idb, tb, need string, ok func(float64) bool) bool {
		if !ix.has(ida, ta) || !ix.has(idb, tb) {
			return false
		}
		v := ix.ratio(ida, ta, idb, tb, ops)
		b := barRow{what: what, need: need, value: v, ok: ok(v),
			sluice: num(ix.med(ida, ta, ops)) + "/s", peer: num(ix.med(idb, tb, ops)) + "/s (" + tb + ")"}
		for _, r := range ix.by[[2]string{ida, ta}] {
			if r.Note != "" {
				b.note = r.Note
			}
		}
		bs = append(bs, b)
		return true
	}
	addOps("push, 50 conns, no pipelining (redis-benchmark JOBPUSH vs LPUSH)", "push P=1", "sluice", "push P=1", "redis-list", "≥ 1", atLeast(1))
	addOps("push, 50 conns, pipeline 16 (redis-benchmark JOBPUSH vs XADD)", "push P=16", "sluice", "push P=16", "redis-stream", "≥ 1", atLeast(1))
	addOps("push, 50 conns, pipeline 16, moonshot (JOBPUSH vs LPUSH)", "push P=16", "sluice", "push P=16", "redis-list", "≥ 1 (moonshot)", atLeast(1))
	addOps("for information: push P=1, sluice with GOMAXPROCS=1 vs LPUSH", "push P=1", "sluice-1cpu", "push P=1", "redis-list", "(not a bar)", atLeast(1))
	addOps("for information: push P=16, sluice with GOMAXPROCS=1 vs XADD", "push P=16", "sluice-1cpu", "push P=16", "redis-stream", "(not a bar)", atLeast(1))
	// The paired measures are the bars' figures; results written before
	// they existed fall back to the separate ones.
	if !addOps("reserve+ack, 50 workers, taking turns with streams (loadgen -addr2; vs XREADGROUP+XACK)", "cycle c=50, paired", "sluice", "cycle c=50, paired", "redis-stream", "≥ 1", atLeast(1)) {
		addOps("reserve+ack, 50 workers (loadgen; vs XREADGROUP+XACK)", "cycle c=50", "sluice", "cycle c=50", "redis-stream", "≥ 1", atLeast(1))
	}
	if !addOps("throughput with 1000 concurrency keys far from limits vs none, taking turns (loadgen -addr2)", "cycle c=50, paired: 1000 concurrency keys far from limits", "sluice", "cycle c=50, paired: no policies", "sluice", "≥ 0.9", atLeast(0.9)) {
		addOps("throughput with 1000 concurrency keys far from limits vs none", "cycle c=50, 1000 concurrency keys far from limits", "sluice", "cycle c=50, no policies", "sluice", "≥ 0.9", atLeast(0.9))
	}
	addOps("durability everysec vs in-memory, push P=1 (redis-benchmark)", "push P=1", "sluice-aof", "push P=1", "sluice", "≥ 0.8", atLeast(0.8))
	addOps("durability everysec vs in-memory, push P=16 (redis-benchmark)", "push P=16", "sluice-aof", "push P=16", "sluice", "≥ 0.8", atLeast(0.8))

	// Reserve behind a blocked backlog: cost is time per reserve (1/rate),
	// and the reserve latency itself.
	for _, id := range ix.rep.Order {
		if !strings.HasPrefix(id, "reserve behind ") || !ix.has(id, "sluice") || !ix.has("reserve, empty backlog", "sluice") {
			continue
		}
		v := ix.ratio(id, "sluice", "reserve, empty backlog", "sluice", inv(ops))
		lat := ix.ratio(id, "sluice", "reserve, empty backlog", "sluice", p50)
		bs = append(bs, barRow{what: "cost of " + id + " vs empty backlog (time per reserve+ack+push cycle)", need: "≤ 2",
			sluice: num(ix.med(id, "sluice", ops)) + "/s", peer: num(ix.med("reserve, empty backlog", "sluice", ops)) + "/s (empty)",
			value: v, ok: v <= 2, note: fmt.Sprintf("reserve p50 latency ratio %.2f×", lat)})
	}

	// Memory.
	if ix.has("memory", "sluice") && ix.has("memory", "redis-list") {
		f := extra("rss_bytes_per_job")
		v := ix.ratio("memory", "sluice", "memory", "redis-list", f)
		bs = append(bs, barRow{what: "bytes per queued 100-byte job (RSS) vs Redis list", need: "≤ 2", value: v, ok: atMost(2)(v),
			sluice: num(ix.med("memory", "sluice", f)) + " B", peer: num(ix.med("memory", "redis-list", f)) + " B (redis-list)"})
	}

	// Depth: the shallowest against the deepest level measured.
	var levels []string
	for _, id := range ix.rep.Order {
		if strings.HasPrefix(id, "depth ") {
			levels = append(levels, id)
		}
	}
	if len(levels) >= 2 {
		lo, hi := levels[0], levels[len(levels)-1]
		for _, metric := range []string{"push", "cycle"} {
			a, b := hi+" "+metric, lo+" "+metric
			if !ix.has(a, "sluice") || !ix.has(b, "sluice") {
				continue
			}
			v := ix.ratio(b, "sluice", a, "sluice", ops)
			bs = append(bs, barRow{what: fmt.Sprintf("%s rate at %s vs %s (slowdown)", metric, strings.TrimPrefix(hi, "depth "), strings.TrimPrefix(lo, "depth ")),
				need: "≤ 2", value: v, ok: v <= 2,
				sluice: num(ix.med(a, "sluice", ops)) + "/s", peer: num(ix.med(b, "sluice", ops)) + "/s (shallow)"})
		}
	}

	// Rate limit accuracy.
	if ix.has("rate-limited key", "sluice") {
		v := ix.med("rate-limited key", "sluice", extra("achieved_ratio"))
		worst := ix.max("rate-limited key", "sluice", extra("max_in_window")) // any round over the limit counts
		limit := ix.med("rate-limited key", "sluice", extra("limit_per_window"))
		bs = append(bs, barRow{what: "rate-limited key: achieved rate / limit, never over the limit in any window", need: "1 ± 0.01", value: v,
			ok:     math.Abs(v-1) <= 0.01 && worst <= limit,
			sluice: num(ix.med("rate-limited key", "sluice", ops)) + "/s", peer: num(ix.med("rate-limited key", "sluice", extra("limit_per_sec"))) + "/s (limit)",
			note: fmt.Sprintf("most admissions in one window, any round: %.0f (limit %.0f)", worst, limit)})
	}
	return bs
}

var targetOrder = []string{"sluice", "sluice-aof", "sluice-1cpu", "redis", "redis-list", "redis-stream", "beanstalkd"}

var targetLabel = map[string]string{
	"sluice":       "sluice",
	"sluice-aof":   "sluice (appendonly everysec)",
	"sluice-1cpu":  "sluice (GOMAXPROCS=1)",
	"redis":        "redis-server",
	"redis-list":   "redis-server list",
	"redis-stream": "redis-server stream",
	"beanstalkd":   "beanstalkd",
}

func (ix *index) targetsOf(id string) []string {
	var ts []string
	for _, t := range targetOrder {
		if ix.has(id, t) {
			ts = append(ts, t)
		}
	}
	return ts
}

func (ix *index) idsOf(section string) []string {
	var ids []string
	seen := map[string]bool{}
	for _, id := range ix.rep.Order {
		for _, r := range ix.rep.Rows {
			if r.Section != section || seen[r.ID] {
				continue
			}
			if r.ID == id || strings.HasPrefix(r.ID, id+" ") {
				seen[r.ID] = true
				ids = append(ids, r.ID)
			}
		}
	}
	return ids
}

// table writes one row per (id, target) of a section: median rate and
// latencies, and sluice's figure as a ratio to each other target's.
func (ix *index) table(b *strings.Builder, section string) {
	b.WriteString("| workload | server | ops/s | p50 µs | p99 µs | p99.9 µs | sluice ÷ this |\n|---|---|---:|---:|---:|---:|---|\n")
	for _, id := range ix.idsOf(section) {
		for _, t := range ix.targetsOf(id) {
			var rs []row = ix.by[[2]string{id, t}]
			cmp := "—"
			if t != "sluice" && ix.has(id, "sluice") {
				if rs[0].Lower {
					cmp = fmt.Sprintf("latency p50 %s, p99 %s", ratioStr(ix.ratio(id, "sluice", id, t, p50)), ratioStr(ix.ratio(id, "sluice", id, t, p99)))
				} else {
					cmp = "ops " + ratioStr(ix.ratio(id, "sluice", id, t, ops))
				}
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", id, targetLabel[t],
				num(ix.med(id, t, ops)), num(ix.med(id, t, p50)), num(ix.med(id, t, p99)), num(ix.med(id, t, p999)), cmp)
		}
	}
	b.WriteString("\n")
}

func markdown(rep *report, notes string) string {
	ix := newIndex(rep)
	var b strings.Builder
	b.WriteString("# sluice benchmarks: results\n\n")
	fmt.Fprintf(&b, "Written by `benchmarks/run.sh` (mode: %s; %d round(s); every figure is the median over the rounds, every ratio the median of the per-round ratios, both servers measured in the same round). Started %s, finished %s (UTC).\n\n",
		rep.Mode, rep.Rounds, rep.Started.Format("2006-01-02 15:04"), rep.Finished.Format("15:04"))
	if strings.HasPrefix(rep.Mode, "smoke") {
		b.WriteString("**Smoke run: the workloads are tiny and the figures mean nothing; it only shows the harness works.**\n\n")
	}
	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	for _, k := range []string{"cpu", "nproc", "memory", "kernel", "go", "sluice", "sluice commit", "redis-server", "redis-benchmark", "beanstalkd", "load average before", "load average after", "uptime", "first write to a page"} {
		if v, ok := rep.Machine[k]; ok {
			fmt.Fprintf(&b, "| %s | %s |\n", k, v)
		}
	}
	b.WriteString("\nClient and servers share the machine's cores over loopback; the load generator is one Go process, so on a 2-core machine it competes with the server it measures, the same way for every server.\n\n")

	if len(rep.Failures) > 0 {
		b.WriteString("## Failed measures\n\nThese produced no figure; their rows are missing below.\n\n| round | measure | server | error |\n|---|---|---|---|\n")
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", f.Round, f.ID, f.Target, cell(f.Error, 400))
		}
		b.WriteString("\n")
	}
	b.WriteString("## DESIGN.md's bars\n\n| bar | sluice | compared with | ratio | needs | verdict |\n|---|---:|---:|---:|---|---|\n")
	for _, br := range ix.bars() {
		verdict := "met"
		if !br.ok {
			verdict = "**missed**"
		}
		if strings.HasPrefix(rep.Mode, "smoke") {
			verdict = "(smoke: not judged)"
		}
		if strings.HasPrefix(br.what, "for information") {
			verdict = "not judged"
		}
		if br.note != "" {
			verdict += " — " + br.note
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", br.what, br.sluice, br.peer, ratioStr(br.value), br.need, verdict)
	}
	b.WriteString("\n")

	b.WriteString("## redis-benchmark, 50 connections, 100-byte payload\n\n`PING_INLINE` is the protocol ceiling; push is `JOBPUSH bench h <payload>` against `LPUSH bench <payload>` and `XADD bench:s * p <payload>`. redis-benchmark reports no p99.9.\n\n")
	ix.table(&b, "rb")
	b.WriteString("## Load generator\n\nLatencies are per operation on the client: for push, from the write of a pipelined batch to each answer; for a cycle, reserve through ack. The ratio column is sluice's ops/s over the other server's (higher is better for sluice), or for latency workloads sluice's latency over the other's (lower is better for sluice).\n\n")
	b.WriteString("### 1. Push (100-byte payloads)\n\n")
	ix.table(&b, "push")
	b.WriteString("![push throughput against connections](throughput.svg)\n\n")
	b.WriteString("### 2. Reserve + ack on a pre-filled queue\n\nsluice `JOBRESERVE`+`JOBACK` (and +`JOBSTART`); Redis `BLMOVE` into a per-worker processing list + `LREM`; Redis streams `XREADGROUP`+`XACK`; beanstalkd `reserve-with-timeout 0`+`delete`.\n\n")
	ix.table(&b, "cycle")
	b.WriteString("### 3 and 5. End to end, and wake-up of blocked workers\n\nProducers push at a fixed rate with their send time in the payload; workers wait in blocking reserves (sluice `BLOCK`, `BLMOVE`, `XREADGROUP BLOCK`, beanstalkd `reserve-with-timeout`) and record push→reservation time. ops/s is jobs reserved per second of the run.\n\n")
	ix.table(&b, "flow")
	b.WriteString("### 4. Policies (sluice)\n\n`steady` keeps the backlog's shape: each worker reserves, then acks and pushes a replacement in one round trip; its latency columns are the reserve alone. The blocked jobs are pushed first, with a higher priority than the work that flows, so a scan would meet them all before any eligible job. The rate-limited key's ops/s is admissions per second over whole periods from the first admission (server timestamps).\n\n")
	ix.table(&b, "policy")
	b.WriteString("### Queue depth (sluice)\n\nPhases of pushes (50 connections, pipeline 16) alternate with phases of reserve+ack cycles (50 workers), so the depth stays near its starting value.\n\n")
	ix.table(&b, "scale")

	b.WriteString("## Memory per queued 100-byte job\n\nResident set size of the server process after queueing the jobs, minus before, divided by the jobs (4 connections, pipeline 64). sluice runs with `--appendonly no`. `INFO used_memory` is each server's own count (sluice's and Redis's; beanstalkd has none).\n\n| server | jobs | RSS bytes per job | INFO used_memory per job | RSS after | sluice ÷ this |\n|---|---:|---:|---:|---:|---|\n")
	for _, t := range ix.targetsOf("memory") {
		rs := ix.by[[2]string{"memory", t}]
		cmp := "—"
		if t != "sluice" {
			cmp = ratioStr(ix.ratio("memory", "sluice", "memory", t, extra("rss_bytes_per_job")))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s MiB | %s |\n", targetLabel[t], rs[0].Res.Ops,
			num(ix.med("memory", t, extra("rss_bytes_per_job"))), num(ix.med("memory", t, extra("used_memory_per_job"))),
			num(ix.med("memory", t, extra("rss_after_mb"))), cmp)
	}
	b.WriteString("\n")

	if notes = strings.TrimSpace(notes); notes != "" {
		b.WriteString("## Findings\n\n")
		b.WriteString(notes)
		b.WriteString("\n\n")
	}

	if len(rep.Profiles) > 0 {
		b.WriteString("## CPU profiles of sluice\n\nA sluice built with `go build -overlay` adding `benchmarks/testdata/pprof_hook.go` (net/http/pprof, no change to the source tree), profiled for 8 seconds from one second into the timed part of each workload (after any prefill); `heap-1M-queued` is the in-use heap (after a GC) with 1,000,000 queued 100-byte jobs. The raw profiles are written to `benchmarks/profiles/` (not committed); read them with `go tool pprof benchmarks/bin/sluice-pprof FILE`.\n\n")
		for _, p := range rep.Profiles {
			fmt.Fprintf(&b, "<details><summary>%s — <code>%s</code></summary>\n\n```\n%s```\n</details>\n\n", p.Name, p.Command, p.Top)
		}
	}

	b.WriteString("## Exact command lines (round 1)\n\nPorts and data directories are picked afresh for every measurement; every server is started for one measurement and stopped after it.\n\n<details><summary>servers and tools</summary>\n\n```\n")
	seen := map[string]bool{}
	for _, r := range rep.Rows {
		// A paired measure's two rows share the tool's command line but
		// not the server's.
		k := r.Server + "\n" + r.Command
		if r.Round != 1 || seen[k] {
			continue
		}
		seen[k] = true
		fmt.Fprintf(&b, "# %s — %s\n%s\n%s\n\n", r.ID, r.Target, r.Server, r.Command)
	}
	b.WriteString("```\n</details>\n")
	return b.String()
}

// cell makes s fit in one Markdown table cell of at most n runes.
func cell(s string, n int) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " ⏎ ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}
