// Command loadgen drives one workload against one server and prints its
// throughput and latency percentiles (one JSON object per figure with
// -json). It speaks RESP for sluice and redis-server and beanstalkd's text
// protocol, with pipelining and many connections.
//
//	loadgen -target sluice -addr 127.0.0.1:6390 -workload push -conns 50 -pipeline 16
//	loadgen -target redis-stream -addr 127.0.0.1:6379 -workload cycle -conns 50
//	loadgen -target beanstalkd -addr 127.0.0.1:11300 -workload block
//
// Workloads: push; cycle (reserve+ack on a pre-filled queue); cycle-start
// (reserve+start+ack); cycle-keys (cycle with 1,000 concurrency keys far
// from their limits); steady (reserve behind a blocked backlog, -blocked
// and -blocked-by); e2e (producers and workers, push→reserve latency);
// block (idle blocked workers, a trickle of pushes: wake-up latency);
// ratelimit (achieved rate of a saturated rate-limited key); scale (push
// and reserve at a queue depth of -prefill).
//
// With -addr2, the cycle and cycle-keys workloads run on two servers at
// once, taking turns in -blocks blocks, so that both see the same phases
// of a noisy machine:
//
//	loadgen -target sluice -addr 127.0.0.1:6390 -target2 redis-stream -addr2 127.0.0.1:6379 -workload cycle
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"sluice/benchmarks/internal/load"
)

func main() {
	var cfg load.Config
	fs := flag.NewFlagSet("loadgen", flag.ExitOnError)
	fs.StringVar(&cfg.Target, "target", "sluice", "server kind: "+strings.Join(load.Targets, ", "))
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:6390", "server address")
	fs.StringVar(&cfg.Workload, "workload", "push", "workload: "+strings.Join(load.Workloads, ", "))
	fs.IntVar(&cfg.Conns, "conns", 0, "connections (workers for reserve workloads); default 50")
	fs.IntVar(&cfg.Pipeline, "pipeline", 0, "push: commands in flight per connection; default 1 (scale: 16)")
	fs.IntVar(&cfg.N, "n", 0, "operations in the timed part (push, cycle*, steady)")
	fs.IntVar(&cfg.Size, "size", 0, "payload bytes; default 100")
	fs.IntVar(&cfg.Prefill, "prefill", 0, "jobs queued before the timed part")
	fs.DurationVar(&cfg.Duration, "duration", 0, "e2e, block, ratelimit: timed length")
	fs.IntVar(&cfg.Producers, "producers", 0, "e2e, block: producer connections")
	fs.IntVar(&cfg.Rate, "rate", 0, "e2e, block: pushes/s offered; ratelimit: limit per -period")
	fs.DurationVar(&cfg.Period, "period", 0, "ratelimit: window length")
	fs.IntVar(&cfg.Keys, "keys", 0, "cycle-keys: concurrency keys")
	fs.IntVar(&cfg.Blocked, "blocked", 0, "steady: jobs blocked ahead of the work that flows")
	fs.StringVar(&cfg.BlockedBy, "blocked-by", "", "steady: policy or handler")
	fs.IntVar(&cfg.Batch, "batch", 0, "scale: jobs per timed phase")
	fs.IntVar(&cfg.Phases, "phases", 0, "scale: push/reserve phase pairs")
	target2 := fs.String("target2", "", "paired run: the second server's kind (default: -target)")
	addr2 := fs.String("addr2", "", "paired run (workloads cycle and cycle-keys): the second server's address; the two take turns in -blocks blocks")
	workload2 := fs.String("workload2", "", "paired run: the second server's workload (default: -workload)")
	blocks := fs.Int("blocks", 20, "paired run: turns each server takes")
	asJSON := fs.Bool("json", false, "print one JSON object per figure")
	flush := fs.Bool("flush", false, "empty the server first (FLUSHALL; beanstalkd: delete the ready jobs of the tube)")
	fs.Parse(os.Args[1:])
	// benchrun waits for this line to start a CPU profile of the server.
	cfg.OnStart = func() { fmt.Fprintln(os.Stderr, "loadgen: timed part started") }

	paired := map[string]bool{"target2": true, "workload2": true, "blocks": true}
	fs.Visit(func(f *flag.Flag) {
		if paired[f.Name] && *addr2 == "" {
			fmt.Fprintf(os.Stderr, "loadgen: -%s needs -addr2\n", f.Name)
			os.Exit(2)
		}
	})
	if *addr2 != "" && *addr2 == cfg.Addr {
		fmt.Fprintln(os.Stderr, "loadgen: -addr2 is -addr: a paired run needs two servers")
		os.Exit(2)
	}
	if *flush {
		err := load.Flush(cfg.Target, cfg.Addr)
		if err == nil && *addr2 != "" {
			t := cfg.Target
			if *target2 != "" {
				t = *target2
			}
			err = load.Flush(t, *addr2)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: flush:", err)
			os.Exit(1)
		}
	}
	var rs []load.Result
	var err error
	if *addr2 != "" {
		cfg2 := cfg
		cfg2.Addr, cfg2.OnStart = *addr2, nil
		if *target2 != "" {
			cfg2.Target = *target2
		}
		if *workload2 != "" {
			cfg2.Workload = *workload2
		}
		rs, err = load.RunPaired(cfg, cfg2, *blocks)
	} else {
		rs, err = load.Run(cfg)
	}
	for _, r := range rs {
		r.Command = os.Args
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		} else {
			fmt.Println(r)
		}
	}
	for _, r := range rs {
		if w, ok := r.Extra["max_in_window"]; ok && w > r.Extra["limit_per_window"] {
			fmt.Fprintf(os.Stderr, "loadgen: warning: rate limit exceeded: %.0f admissions in one window, limit %.0f\n", w, r.Extra["limit_per_window"])
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
