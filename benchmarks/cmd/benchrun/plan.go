package main

import (
	"strconv"
	"strings"
	"time"
)

// A measure is one figure taken once per round: a tool run against one
// freshly started server. Measures with the same id are compared with each
// other; target names the column.
type measure struct {
	id      string   // e.g. "push c=50 P=16"
	section string   // heading in RESULTS.md
	target  string   // sluice, sluice-aof, sluice-1cpu, redis-list, redis-stream, beanstalkd, redis
	server  string   // process to start: sluice, sluice-aof, sluice-1cpu, redis, beanstalkd
	tool    string   // loadgen, redis-benchmark, memory
	args    []string // loadgen flags (without -target/-addr) or redis-benchmark's command
	n       int      // redis-benchmark -n; memory: jobs queued
	p       int      // redis-benchmark -P
	lower   bool     // latency workload: compare p50/p99 (lower is better), not ops/s
	// A paired measure (loadgen -addr2) starts a second server and runs
	// on both at once, taking turns: its second figure is row id2 of
	// target2, on server2.
	id2, target2, server2 string
}

// sizes scale the plan between the full run and the smoke run.
type sizes struct {
	rounds                    int
	rbN1, rbN16               int
	push                      map[[2]int]int // {conns, pipeline} → operations
	sweep                     []int          // connection counts for the chart (pipeline 1)
	sweepN                    int
	cycleN                    int
	steadyN, blocked          int
	flow                      time.Duration
	rlRate                    int
	rlPeriod, rlDur           time.Duration
	scaleLevels               []int
	scaleBatch, scalePhases   int
	memN                      int
	profileN                  int
	loadgenTimeout, rbTimeout time.Duration
}

func fullSizes(rounds int, long bool) sizes {
	s := sizes{
		rounds: rounds,
		rbN1:   200000, rbN16: 1000000,
		push:  map[[2]int]int{{1, 1}: 50000, {1, 16}: 300000, {50, 1}: 200000, {50, 16}: 1000000},
		sweep: []int{1, 4, 16, 50, 200}, sweepN: 200000,
		cycleN:  100000,
		steadyN: 100000, blocked: 1000000,
		flow:   5 * time.Second,
		rlRate: 1000, rlPeriod: time.Second, rlDur: 10 * time.Second,
		scaleLevels: []int{10000, 1000000},
		scaleBatch:  20000, scalePhases: 5,
		memN:           1000000,
		profileN:       3000000,
		loadgenTimeout: 15 * time.Minute, rbTimeout: 5 * time.Minute,
	}
	if long {
		s.scaleLevels = append(s.scaleLevels, 10000000)
	}
	return s
}

func smokeSizes() sizes {
	return sizes{
		rounds: 1,
		rbN1:   2000, rbN16: 5000,
		push:  map[[2]int]int{{1, 1}: 500, {1, 16}: 2000, {50, 1}: 2000, {50, 16}: 5000},
		sweep: []int{1, 50}, sweepN: 2000,
		cycleN:  2000,
		steadyN: 2000, blocked: 5000,
		flow:   300 * time.Millisecond,
		rlRate: 20, rlPeriod: 100 * time.Millisecond, rlDur: 500 * time.Millisecond,
		scaleLevels: []int{1000, 5000},
		scaleBatch:  500, scalePhases: 2,
		memN:           5000,
		loadgenTimeout: time.Minute, rbTimeout: time.Minute,
	}
}

// payload100 is the 100-byte payload redis-benchmark sends.
var payload100 = strings.Repeat("x", 100)

func itoa(n int) string { return strconv.Itoa(n) }

func plan(z sizes) []measure {
	var ms []measure
	add := func(m measure) { ms = append(ms, m) }

	serverOf := func(t string) string {
		if strings.HasPrefix(t, "redis") {
			return "redis"
		}
		return t
	}

	// redis-benchmark: the protocol ceiling and the push bars.
	jobpush := []string{"JOBPUSH", "bench", "h", payload100}
	for _, p := range []int{1, 16} {
		n := z.rbN1
		if p == 16 {
			n = z.rbN16
		}
		rb := func(id, target string, args ...string) {
			add(measure{id: id, section: "rb", target: target, server: serverOf(target), tool: "redis-benchmark", args: args, n: n, p: p})
		}
		for _, t := range []string{"sluice", "sluice-1cpu", "redis"} {
			rb("PING_INLINE P="+itoa(p), t, "-t", "ping_inline")
		}
		id := "push P=" + itoa(p)
		rb(id, "sluice", jobpush...)
		rb(id, "sluice-1cpu", jobpush...)
		rb(id, "redis-list", "LPUSH", "bench", payload100)
		rb(id, "redis-stream", "XADD", "bench:s", "*", "p", payload100)
		rb(id, "sluice-aof", jobpush...)
	}

	peers := []string{"sluice", "redis-list", "redis-stream", "beanstalkd"}
	lg := func(section, id, target string, args ...string) measure {
		return measure{id: id, section: section, target: target, server: serverOf(target), tool: "loadgen", args: args}
	}

	// 1. push, and the chart's sweep over connections.
	for _, c := range []int{1, 50} {
		for _, p := range []int{1, 16} {
			for _, t := range peers {
				add(lg("push", "push c="+itoa(c)+" P="+itoa(p), t, "-workload", "push", "-conns", itoa(c), "-pipeline", itoa(p), "-n", itoa(z.push[[2]int{c, p}])))
			}
		}
	}
	for _, c := range z.sweep {
		if c == 1 || c == 50 {
			continue // measured above
		}
		for _, t := range peers {
			add(lg("push", "push c="+itoa(c)+" P=1", t, "-workload", "push", "-conns", itoa(c), "-pipeline", "1", "-n", itoa(z.sweepN)))
		}
	}

	// 2. reserve+ack (and reserve+start+ack) on a pre-filled queue.
	for _, t := range peers {
		add(lg("cycle", "cycle c=50", t, "-workload", "cycle", "-conns", "50", "-n", itoa(z.cycleN)))
	}
	add(lg("cycle", "cycle+start c=50", "sluice", "-workload", "cycle-start", "-conns", "50", "-n", itoa(z.cycleN)))
	// The bar's figure: sluice and streams taking turns (see loadgen -addr2).
	add(lg("cycle", "cycle c=50, paired", "sluice", "-workload", "cycle", "-conns", "50", "-n", itoa(z.cycleN)).
		pair("cycle c=50, paired", "redis-stream", serverOf("redis-stream")))

	// 3. end to end, and 5. wake-up of blocked workers.
	for _, t := range peers {
		add(lg("flow", "e2e 4 producers, 16 workers, 10k/s", t, "-workload", "e2e", "-conns", "16", "-producers", "4", "-rate", "10000", "-duration", z.flow.String()).latency())
	}
	for _, t := range peers {
		add(lg("flow", "block 50 idle workers, 500 pushes/s", t, "-workload", "block", "-conns", "50", "-producers", "1", "-rate", "500", "-duration", z.flow.String()).latency())
	}

	// 4. policies.
	add(lg("policy", "cycle c=50, no policies", "sluice", "-workload", "cycle", "-conns", "50", "-n", itoa(z.cycleN)))
	add(lg("policy", "cycle c=50, 1000 concurrency keys far from limits", "sluice", "-workload", "cycle-keys", "-conns", "50", "-keys", "1000", "-n", itoa(z.cycleN)))
	add(lg("policy", "cycle c=50, paired: 1000 concurrency keys far from limits", "sluice", "-workload", "cycle-keys", "-workload2", "cycle", "-conns", "50", "-keys", "1000", "-n", itoa(z.cycleN)).
		pair("cycle c=50, paired: no policies", "sluice", "sluice"))
	add(lg("policy", "reserve, empty backlog", "sluice", "-workload", "steady", "-conns", "50", "-n", itoa(z.steadyN), "-blocked", "0"))
	add(lg("policy", "reserve behind "+itoa(z.blocked)+" jobs of a hot key at its limit", "sluice", "-workload", "steady", "-conns", "50", "-n", itoa(z.steadyN), "-blocked", itoa(z.blocked), "-blocked-by", "policy"))
	add(lg("policy", "reserve behind "+itoa(z.blocked)+" jobs of another handler", "sluice", "-workload", "steady", "-conns", "50", "-n", itoa(z.steadyN), "-blocked", itoa(z.blocked), "-blocked-by", "handler"))
	add(lg("policy", "rate-limited key", "sluice", "-workload", "ratelimit", "-conns", "8", "-rate", itoa(z.rlRate), "-period", z.rlPeriod.String(), "-duration", z.rlDur.String()))

	// Queue depth.
	for _, lvl := range z.scaleLevels {
		add(lg("scale", "depth "+itoa(lvl), "sluice", "-workload", "scale", "-conns", "50", "-prefill", itoa(lvl), "-batch", itoa(z.scaleBatch), "-phases", itoa(z.scalePhases)))
	}

	// Memory per queued job.
	for _, t := range []string{"sluice", "redis-list", "beanstalkd"} {
		add(measure{id: "memory", section: "memory", target: t, server: serverOf(t), tool: "memory", n: z.memN,
			args: []string{"-workload", "push", "-conns", "4", "-pipeline", "64", "-n", itoa(z.memN)}})
	}
	return ms
}

func (m measure) latency() measure { m.lower = true; return m }

// pair makes m a paired measure whose second figure is row id of target,
// on a server of its own.
func (m measure) pair(id, target, server string) measure {
	m.id2, m.target2, m.server2 = id, target, server
	return m
}
