// Package load runs the benchmark workloads against one target (sluice,
// redis-server as a list or a stream, or beanstalkd) and reports throughput
// and latency percentiles. cmd/loadgen is its command line; cmd/benchrun
// runs it many times, against every target, and writes RESULTS.md.
//
// Every workload connects all its clients first, then releases them
// together; only the part after the release is timed. Latencies are taken
// per operation on the client (time from the write to the arrival of the
// answer), into one histogram per connection, merged at the end.
package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sluice/benchmarks/internal/hist"
	"sluice/benchmarks/internal/wire"
)

// Workloads, by name.
var Workloads = []string{"push", "cycle", "cycle-start", "cycle-keys", "steady", "e2e", "block", "ratelimit", "scale"}

// Config is one run of one workload against one target. Zero fields take
// the defaults of Defaults.
type Config struct {
	Target    string
	Addr      string
	Workload  string
	Conns     int           // connections; workers for reserve workloads (default 50)
	Pipeline  int           // push: commands in flight per connection (default 1)
	N         int           // push, cycle*, steady: operations in the timed part
	Size      int           // payload bytes (default 100)
	Prefill   int           // jobs queued before the timed part
	Duration  time.Duration // e2e, block, ratelimit: timed length
	Producers int           // e2e, block: producer connections
	Rate      int           // e2e, block: pushes per second offered; ratelimit: the limit per Period
	Period    time.Duration // ratelimit: window
	Keys      int           // cycle-keys: distinct concurrency keys
	Blocked   int           // steady: jobs blocked ahead of the flowing work
	BlockedBy string        // steady: "policy" (a saturated concurrency key) or "handler"
	Batch     int           // scale: jobs per timed phase
	Phases    int           // scale: push/reserve phase pairs

	// OnStart, if set, is called once, when the timed part begins (after
	// prefills), so a profiler can be started at the right moment.
	OnStart func()
}

func (c *Config) started() {
	if c.OnStart != nil {
		c.OnStart()
		c.OnStart = nil
	}
}

// Defaults fills zero fields with the workload's defaults.
func (c *Config) Defaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Conns, 50)
	def(&c.Pipeline, 1)
	def(&c.Size, 100)
	switch c.Workload {
	case "push":
		def(&c.N, 200000)
	case "cycle", "cycle-start", "cycle-keys":
		def(&c.N, 100000)
		def(&c.Prefill, c.N)
		def(&c.Keys, 1000)
	case "steady":
		def(&c.N, 100000)
		def(&c.Prefill, 1000)
		if c.BlockedBy == "" {
			c.BlockedBy = "policy"
		}
	case "e2e":
		def(&c.Producers, 4)
		def(&c.Rate, 10000)
	case "block":
		def(&c.Producers, 1)
		def(&c.Rate, 500)
	case "ratelimit":
		def(&c.Rate, 1000)
		if c.Period == 0 {
			c.Period = time.Second
		}
		if c.Duration == 0 {
			c.Duration = 10 * time.Second
		}
	case "scale":
		def(&c.Prefill, 10000)
		def(&c.Batch, 20000)
		def(&c.Phases, 5)
		if c.Pipeline == 1 {
			c.Pipeline = 16
		}
	}
	if c.Duration == 0 {
		c.Duration = 5 * time.Second
	}
}

// Result is one measured figure. Latencies are in microseconds.
type Result struct {
	Target    string             `json:"target"`
	Workload  string             `json:"workload"`
	Metric    string             `json:"metric"` // what Ops counts: push, cycle, reserve, wakeup, e2e, admission
	Conns     int                `json:"conns"`
	Pipeline  int                `json:"pipeline"`
	Ops       uint64             `json:"ops"`
	Seconds   float64            `json:"seconds"`
	OpsPerSec float64            `json:"ops_per_sec"`
	P50       float64            `json:"p50_us"`
	P99       float64            `json:"p99_us"`
	P999      float64            `json:"p999_us"`
	Mean      float64            `json:"mean_us"`
	Max       float64            `json:"max_us"`
	Extra     map[string]float64 `json:"extra,omitempty"`
	Command   []string           `json:"command,omitempty"` // set by the caller
}

func (r Result) String() string {
	s := fmt.Sprintf("%-12s %-11s %-9s c=%-3d P=%-2d %10.0f ops/s  p50 %8.1fµs  p99 %8.1fµs  p99.9 %8.1fµs  (%d ops in %.2fs)",
		r.Target, r.Workload, r.Metric, r.Conns, r.Pipeline, r.OpsPerSec, r.P50, r.P99, r.P999, r.Ops, r.Seconds)
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s += fmt.Sprintf("  %s=%g", k, r.Extra[k])
	}
	return s
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func newResult(cfg *Config, metric string, ops uint64, el time.Duration, h *hist.Histogram) Result {
	r := Result{Target: cfg.Target, Workload: cfg.Workload, Metric: metric, Conns: cfg.Conns, Pipeline: cfg.Pipeline,
		Ops: ops, Seconds: el.Seconds()}
	if el > 0 {
		r.OpsPerSec = float64(ops) / el.Seconds()
	}
	if h != nil {
		r.P50, r.P99, r.P999 = us(h.Quantile(0.5)), us(h.Quantile(0.99)), us(h.Quantile(0.999))
		r.Mean, r.Max = us(h.Mean()), us(h.Max())
	}
	return r
}

// Run runs one workload and returns its figures.
func Run(cfg Config) ([]Result, error) {
	cfg.Defaults()
	if err := Setup(cfg.Target, cfg.Addr); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	needSluice := func() error {
		if cfg.Target != "sluice" {
			return fmt.Errorf("workload %s needs sluice's policies or handlers; target is %s", cfg.Workload, cfg.Target)
		}
		return nil
	}
	switch cfg.Workload {
	case "push":
		return runPush(&cfg)
	case "cycle", "cycle-start", "cycle-keys":
		spec, err := cycleSpec(&cfg)
		if err != nil {
			return nil, err
		}
		return runCycle(&cfg, cfg.Workload == "cycle-start", spec)
	case "steady":
		if err := needSluice(); err != nil {
			return nil, err
		}
		return runSteady(&cfg)
	case "e2e", "block":
		return runFlow(&cfg)
	case "ratelimit":
		if err := needSluice(); err != nil {
			return nil, err
		}
		return runRateLimit(&cfg)
	case "scale":
		return runScale(&cfg)
	}
	return nil, fmt.Errorf("unknown workload %q", cfg.Workload)
}

func payload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

func dialAll(cfg *Config, n, base int) ([]Client, error) {
	cs := make([]Client, 0, n)
	for i := 0; i < n; i++ {
		c, err := Dial(cfg.Target, cfg.Addr, base+i)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeAll(cs []Client) {
	for _, c := range cs {
		c.Close()
	}
}

// share splits n operations over k workers.
func share(n, k, i int) int {
	s := n / k
	if i < n%k {
		s++
	}
	return s
}

// parallel releases f(0..n-1) together and returns the time until the last
// one finished and the first error.
func parallel(n int, f func(i int) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}(i)
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return time.Since(t0), errors.Join(errs...)
}

// pushN pushes n jobs on cs, pipeline deep, timing each answer into hs
// (when not nil). spec(i) gives job i's options (nil: none).
func pushN(cs []Client, n, pipeline, size int, spec func(i int) *PushSpec, hs []hist.Histogram) (time.Duration, error) {
	return parallel(len(cs), func(k int) error {
		c := cs[k]
		p := payload(size)
		left := share(n, len(cs), k)
		idx := k
		for left > 0 {
			b := min(pipeline, left)
			t0 := time.Now()
			for j := 0; j < b; j++ {
				var s *PushSpec
				if spec != nil {
					s = spec(idx)
				}
				idx += len(cs)
				c.SendPush(p, s)
			}
			if err := c.Flush(); err != nil {
				return err
			}
			for j := 0; j < b; j++ {
				if err := c.RecvPush(); err != nil {
					return fmt.Errorf("push: %w", err)
				}
				if hs != nil {
					hs[k].Record(time.Since(t0))
				}
			}
			left -= b
		}
		return nil
	})
}

// Fill queues n jobs quickly and untimed (4 connections, 64 in flight).
func Fill(cfg *Config, n int, spec func(i int) *PushSpec) error {
	if n <= 0 {
		return nil
	}
	cs, err := dialAll(cfg, 4, 10000)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	_, err = pushN(cs, n, 64, cfg.Size, spec, nil)
	return err
}

func merge(hs []hist.Histogram) *hist.Histogram {
	var h hist.Histogram
	for i := range hs {
		h.Merge(&hs[i])
	}
	return &h
}

func runPush(cfg *Config) ([]Result, error) {
	cs, err := dialAll(cfg, cfg.Conns, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	hs := make([]hist.Histogram, len(cs))
	cfg.started()
	el, err := pushN(cs, cfg.N, cfg.Pipeline, cfg.Size, nil, hs)
	if err != nil {
		return nil, err
	}
	return []Result{newResult(cfg, "push", uint64(cfg.N), el, merge(hs))}, nil
}

// cycles runs n reserve(+start)+ack cycles over cs on a queue that holds
// at least n jobs; each cycle's time goes into hs.
func cycles(cs []Client, n int, start bool, rs *ReserveSpec, hs []hist.Histogram) (time.Duration, error) {
	return parallel(len(cs), func(k int) error {
		c := cs[k]
		for i, m := 0, share(n, len(cs), k); i < m; i++ {
			t0 := time.Now()
			j, ok, err := c.Reserve(rs)
			if err != nil {
				return fmt.Errorf("reserve: %w", err)
			}
			if !ok {
				return fmt.Errorf("reserve: queue ran dry after %d cycles", i)
			}
			if start {
				if err := c.Start(&j); err != nil {
					return fmt.Errorf("start: %w", err)
				}
			}
			c.SendAck(&j)
			if err := c.Flush(); err != nil {
				return err
			}
			if err := c.RecvAck(); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			hs[k].Record(time.Since(t0))
		}
		return nil
	})
}

func runCycle(cfg *Config, start bool, spec func(int) *PushSpec) ([]Result, error) {
	cs, err := prepareCycle(cfg, spec)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	hs := make([]hist.Histogram, len(cs))
	cfg.started()
	el, err := cycles(cs, cfg.N, start, &ReserveSpec{}, hs)
	if err != nil {
		return nil, err
	}
	return []Result{newResult(cfg, "cycle", uint64(cfg.N), el, merge(hs))}, nil
}

// prepareCycle fills the queue for a cycle workload and dials its workers.
func prepareCycle(cfg *Config, spec func(int) *PushSpec) ([]Client, error) {
	if cfg.Prefill < cfg.N {
		return nil, fmt.Errorf("prefill %d < n %d: the queue would run dry", cfg.Prefill, cfg.N)
	}
	if err := Fill(cfg, cfg.Prefill, spec); err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	return dialAll(cfg, cfg.Conns, 0)
}

// RunPaired runs the reserve+ack cycle (workload cycle or cycle-keys) on two
// servers at once, taking turns in blocks: block k runs share(N, blocks, k)
// cycles on one and then as many on the other, the first of the two
// alternating from block to block. The machines this runs on change speed
// for seconds at a time, so two workloads measured one after the other can
// land in different phases; taking turns every fraction of a second puts
// both in the same ones, and their ratio holds still. Each side's Result
// covers its own blocks only.
func RunPaired(a, b Config, blocks int) ([]Result, error) {
	sides := []*Config{&a, &b}
	a.Defaults()
	b.Defaults()
	if a.N != b.N {
		return nil, fmt.Errorf("paired runs need the same -n on both sides (%d, %d)", a.N, b.N)
	}
	if blocks < 1 || blocks > a.N {
		return nil, fmt.Errorf("blocks %d: need 1 to n (%d)", blocks, a.N)
	}
	css := make([][]Client, 2)
	defer func() {
		for _, cs := range css {
			closeAll(cs)
		}
	}()
	for i, cfg := range sides {
		if err := Setup(cfg.Target, cfg.Addr); err != nil {
			return nil, fmt.Errorf("%s: setup: %w", cfg.Target, err)
		}
		if cfg.Workload != "cycle" && cfg.Workload != "cycle-keys" {
			return nil, fmt.Errorf("paired runs take the cycle and cycle-keys workloads, not %q", cfg.Workload)
		}
		spec, err := cycleSpec(cfg)
		if err != nil {
			return nil, err
		}
		if css[i], err = prepareCycle(cfg, spec); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Target, err)
		}
	}
	hs := [2][]hist.Histogram{make([]hist.Histogram, len(css[0])), make([]hist.Histogram, len(css[1]))}
	var el [2]time.Duration
	a.started()
	for k := 0; k < blocks; k++ {
		n := share(a.N, blocks, k)
		for _, i := range [2]int{k % 2, 1 - k%2} {
			d, err := cycles(css[i], n, false, &ReserveSpec{}, hs[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sides[i].Target, err)
			}
			el[i] += d
		}
	}
	out := make([]Result, 2)
	for i, cfg := range sides {
		out[i] = newResult(cfg, "cycle", uint64(cfg.N), el[i], merge(hs[i]))
		out[i].Extra = map[string]float64{"blocks": float64(blocks)}
	}
	return out, nil
}

// admin sends setup commands (policies) on a fresh RESP connection.
func admin(cfg *Config, cmds [][]string) error {
	c, err := wire.DialRESP(cfg.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for len(cmds) > 0 {
		b := cmds[:min(len(cmds), 256)]
		cmds = cmds[len(b):]
		for _, a := range b {
			c.SendStrings(a...)
		}
		if err := c.Flush(); err != nil {
			return err
		}
		for _, a := range b {
			if err := c.Skip(); err != nil {
				return fmt.Errorf("%v: %w", a, err)
			}
		}
	}
	return nil
}

// cycleSpec returns the push options of a cycle workload's jobs: none for
// cycle and cycle-start. For cycle-keys, every job is under one of Keys
// concurrency keys, each with a policy set here, far above what the
// workers can hold.
func cycleSpec(cfg *Config) (func(int) *PushSpec, error) {
	if cfg.Workload != "cycle-keys" {
		return nil, nil
	}
	if cfg.Target != "sluice" {
		return nil, fmt.Errorf("workload cycle-keys needs sluice's policies; target is %s", cfg.Target)
	}
	keys := make([]string, cfg.Keys)
	cmds := make([][]string, cfg.Keys)
	specs := make([]PushSpec, cfg.Keys)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		cmds[i] = []string{"POLICYSET", "CONCURRENCY", keys[i], "1000000"}
		specs[i] = PushSpec{Concurrency: keys[i]}
	}
	if err := admin(cfg, cmds); err != nil {
		return nil, err
	}
	return func(i int) *PushSpec { return &specs[i%len(specs)] }, nil
}

// runSteady measures reserve with a backlog of Blocked jobs that cannot be
// reserved (a saturated concurrency key, or a handler nobody asks for)
// ahead of Prefill jobs that can. Each worker reserves, then acks and
// pushes a replacement in one round trip, so the backlog's shape holds for
// the whole run. Blocked=0 is the empty-backlog baseline.
func runSteady(cfg *Config) ([]Result, error) {
	const hotLimit = 10
	if cfg.Blocked > 0 {
		switch cfg.BlockedBy {
		case "policy":
			if err := admin(cfg, [][]string{{"POLICYSET", "CONCURRENCY", "hot", strconv.Itoa(hotLimit)}}); err != nil {
				return nil, err
			}
			hot := &PushSpec{Concurrency: "hot", Priority: 10}
			if err := Fill(cfg, cfg.Blocked+hotLimit, func(int) *PushSpec { return hot }); err != nil {
				return nil, fmt.Errorf("blocked backlog: %w", err)
			}
			// Hold the key at its limit for the whole run.
			c, err := wire.DialRESP(cfg.Addr)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			r, err := c.Do("JOBRESERVE", "holder", "3600000", "COUNT", strconv.Itoa(hotLimit), "QUEUES", queue)
			if err != nil {
				return nil, err
			}
			if len(r.Arr) != hotLimit {
				return nil, fmt.Errorf("holder reserved %d hot jobs, want %d", len(r.Arr), hotLimit)
			}
		case "handler":
			other := &PushSpec{Handler: "other", Priority: 10}
			if err := Fill(cfg, cfg.Blocked, func(int) *PushSpec { return other }); err != nil {
				return nil, fmt.Errorf("blocked backlog: %w", err)
			}
		default:
			return nil, fmt.Errorf("blocked-by %q: want policy or handler", cfg.BlockedBy)
		}
	}
	if err := Fill(cfg, cfg.Prefill, nil); err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	cs, err := dialAll(cfg, cfg.Conns, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	rh := make([]hist.Histogram, len(cs))
	ch := make([]hist.Histogram, len(cs))
	rs := &ReserveSpec{Handler: handler}
	cfg.started()
	el, err := parallel(len(cs), func(k int) error {
		c := cs[k]
		p := payload(cfg.Size)
		for i, m := 0, share(cfg.N, len(cs), k); i < m; i++ {
			t0 := time.Now()
			j, ok, err := c.Reserve(rs)
			if err != nil {
				return fmt.Errorf("reserve: %w", err)
			}
			if !ok {
				return fmt.Errorf("reserve: nothing eligible after %d cycles", i)
			}
			rh[k].Record(time.Since(t0))
			c.SendAck(&j)
			c.SendPush(p, nil)
			if err := c.Flush(); err != nil {
				return err
			}
			if err := c.RecvAck(); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			if err := c.RecvPush(); err != nil {
				return fmt.Errorf("push: %w", err)
			}
			ch[k].Record(time.Since(t0))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := newResult(cfg, "reserve", uint64(cfg.N), el, merge(rh))
	cyc := merge(ch)
	r.Extra = map[string]float64{"blocked": float64(cfg.Blocked), "cycle_p50_us": us(cyc.Quantile(0.5)), "cycle_p99_us": us(cyc.Quantile(0.99))}
	return []Result{r}, nil
}

// runFlow is producers and workers together: producers push at a fixed
// total rate with their send time in the payload; workers wait in blocking
// reserves and record the time from push to reservation. With many idle
// workers and a trickle of pushes ("block") that is the wake-up latency of
// a blocked reserve; with a steady stream ("e2e") the push→reserve latency.
func runFlow(cfg *Config) ([]Result, error) {
	if cfg.Size < 8 {
		return nil, errors.New("payload must hold an 8-byte timestamp")
	}
	ps, err := dialAll(cfg, cfg.Producers, 1000)
	if err != nil {
		return nil, err
	}
	defer closeAll(ps)
	ws, err := dialAll(cfg, cfg.Conns, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(ws)
	var sent, got atomic.Int64
	// Once the producers are done and every job has been reserved, the
	// workers still waiting in a blocking reserve are released by closing
	// their connections (beanstalkd cannot wait less than a second).
	producersDone := make(chan struct{})
	var finished atomic.Bool
	var finish sync.Once
	done := func() {
		finish.Do(func() {
			finished.Store(true)
			closeAll(ws)
		})
	}
	var pwg sync.WaitGroup
	pwg.Add(len(ps))
	go func() { pwg.Wait(); close(producersDone) }()
	hs := make([]hist.Histogram, len(ws))
	interval := time.Duration(float64(time.Second) * float64(len(ps)) / float64(cfg.Rate))
	const grace = 5 * time.Second
	rs := &ReserveSpec{Block: time.Second}
	var t0 time.Time
	var once sync.Once
	cfg.started()
	_, err = parallel(len(ps)+len(ws), func(k int) error {
		once.Do(func() { t0 = time.Now() })
		start := t0
		deadline := start.Add(cfg.Duration)
		if k < len(ps) {
			defer pwg.Done()
			c := ps[k]
			p := payload(cfg.Size)
			next := start.Add(interval * time.Duration(k) / time.Duration(len(ps)))
			for {
				now := time.Now()
				if !now.Before(deadline) {
					return nil
				}
				if d := next.Sub(now); d > 0 {
					time.Sleep(d)
				}
				binary.LittleEndian.PutUint64(p, uint64(time.Now().UnixNano()))
				c.SendPush(p, nil)
				if err := c.Flush(); err != nil {
					return err
				}
				if err := c.RecvPush(); err != nil {
					return fmt.Errorf("push: %w", err)
				}
				sent.Add(1)
				next = next.Add(interval)
			}
		}
		k -= len(ps)
		c := ws[k]
		allIn := func() bool {
			select {
			case <-producersDone:
				return got.Load() >= sent.Load()
			default:
				return false
			}
		}
		for {
			if allIn() {
				done()
				return nil
			}
			if time.Since(deadline) > grace {
				return fmt.Errorf("worker gave up: %d pushed, %d reserved", sent.Load(), got.Load())
			}
			j, ok, err := c.Reserve(rs)
			if err != nil {
				if finished.Load() {
					return nil
				}
				return fmt.Errorf("reserve: %w", err)
			}
			if !ok {
				continue
			}
			now := time.Now()
			if len(j.Payload) < 8 {
				return fmt.Errorf("reserved a payload of %d bytes", len(j.Payload))
			}
			ts := int64(binary.LittleEndian.Uint64(j.Payload))
			if ts < start.UnixNano() {
				return errors.New("reserved a job older than this run: start with an empty queue (-flush, or a fresh server)")
			}
			hs[k].Record(now.Sub(time.Unix(0, ts)))
			c.SendAck(&j)
			if err := c.Flush(); err != nil {
				return err
			}
			if err := c.RecvAck(); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			got.Add(1)
		}
	})
	if err != nil {
		return nil, err
	}
	metric := "e2e"
	if cfg.Workload == "block" {
		metric = "wakeup"
	}
	r := newResult(cfg, metric, uint64(got.Load()), cfg.Duration, merge(hs))
	r.Pipeline = 1
	r.Extra = map[string]float64{"offered_per_sec": float64(cfg.Rate), "producers": float64(len(ps))}
	return []Result{r}, nil
}

// runRateLimit saturates one rate-limited key with workers and checks the
// achieved admission rate against the limit. Admission times come from the
// server (expires_at minus the lease, in ms), so client scheduling does not
// blur them. In an exact sliding window a saturated key admits its whole
// limit, then each admission again one period after an earlier one; the
// count over whole periods from the first admission is therefore exactly
// limit per period when the server wakes workers on time, and lower by
// whatever wake-up lag accumulates. Every window (t-period, t] is also
// checked never to hold more than the limit.
func runRateLimit(cfg *Config) ([]Result, error) {
	periodMs := cfg.Period.Milliseconds()
	if err := admin(cfg, [][]string{{"POLICYSET", "RATELIMIT", "rk", strconv.Itoa(cfg.Rate), strconv.FormatInt(periodMs, 10)}}); err != nil {
		return nil, err
	}
	periods := int(cfg.Duration / cfg.Period)
	if periods < 1 {
		return nil, errors.New("duration must be at least one period")
	}
	spec := &PushSpec{RateLimit: "rk"}
	if err := Fill(cfg, cfg.Rate*(periods+3), func(int) *PushSpec { return spec }); err != nil {
		return nil, err
	}
	cs, err := dialAll(cfg, cfg.Conns, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	const lease = 10 * time.Minute
	adm := make([][]int64, len(cs))
	hs := make([]hist.Histogram, len(cs))
	rs := &ReserveSpec{Block: 50 * time.Millisecond, Lease: lease}
	cfg.started()
	end := time.Now().Add(cfg.Duration + cfg.Period/2)
	_, err = parallel(len(cs), func(k int) error {
		c := cs[k]
		for time.Now().Before(end) {
			t0 := time.Now()
			j, ok, err := c.Reserve(rs)
			if err != nil {
				return fmt.Errorf("reserve: %w", err)
			}
			if !ok {
				continue
			}
			hs[k].Record(time.Since(t0))
			adm[k] = append(adm[k], j.ExpiresAt-lease.Milliseconds())
			c.SendAck(&j)
			if err := c.Flush(); err != nil {
				return err
			}
			if err := c.RecvAck(); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var all []int64
	for _, a := range adm {
		all = append(all, a...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return nil, errors.New("no admissions")
	}
	first := all[0]
	horizon := first + int64(periods)*periodMs
	var inWindow int
	for _, t := range all {
		if t < horizon {
			inWindow++
		}
	}
	// Most admissions in any window (t-period, t].
	worst, lo := 0, 0
	for hi := range all {
		for all[lo] <= all[hi]-periodMs {
			lo++
		}
		worst = max(worst, hi-lo+1)
	}
	span := time.Duration(int64(periods)*periodMs) * time.Millisecond
	r := newResult(cfg, "admission", uint64(inWindow), span, merge(hs))
	limitPerSec := float64(cfg.Rate) / cfg.Period.Seconds()
	r.Extra = map[string]float64{
		"limit_per_sec":    limitPerSec,
		"achieved_ratio":   r.OpsPerSec / limitPerSec,
		"max_in_window":    float64(worst),
		"limit_per_window": float64(cfg.Rate),
		"periods":          float64(periods),
	}
	// A window holding more than the limit is a finding about the server,
	// reported in the figure (max_in_window), not a failure of the run.
	return []Result{r}, nil
}

// runScale queues Prefill jobs, then alternates timed phases of Batch
// pushes and Batch reserve+ack cycles, so the queue stays within Batch of
// its starting depth while push and reserve are measured at that depth.
func runScale(cfg *Config) ([]Result, error) {
	if err := Fill(cfg, cfg.Prefill, nil); err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	cs, err := dialAll(cfg, cfg.Conns, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	ph := make([]hist.Histogram, len(cs))
	rh := make([]hist.Histogram, len(cs))
	var pt, rt time.Duration
	cfg.started()
	for i := 0; i < cfg.Phases; i++ {
		el, err := pushN(cs, cfg.Batch, cfg.Pipeline, cfg.Size, nil, ph)
		if err != nil {
			return nil, err
		}
		pt += el
		el, err = cycles(cs, cfg.Batch, false, &ReserveSpec{}, rh)
		if err != nil {
			return nil, err
		}
		rt += el
	}
	n := uint64(cfg.Batch * cfg.Phases)
	p := newResult(cfg, "push", n, pt, merge(ph))
	r := newResult(cfg, "cycle", n, rt, merge(rh))
	r.Pipeline = 1
	for _, x := range []*Result{&p, &r} {
		x.Extra = map[string]float64{"queued": float64(cfg.Prefill)}
	}
	return []Result{p, r}, nil
}
