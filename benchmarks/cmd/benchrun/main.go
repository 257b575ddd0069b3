// Command benchrun runs the side-by-side benchmarks: for every measure of
// the plan and every round, it starts a fresh server (sluice, redis-server
// or beanstalkd) on a free loopback port, runs the load generator or
// redis-benchmark against it, stops it, and finally writes RESULTS.md
// (medians over the rounds, each sluice figure as a ratio to its peer from
// the same round), results.json (every raw figure) and throughput.svg.
// benchmarks/run.sh builds the binaries and calls it.
package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sluice/benchmarks/internal/load"
)

type runner struct {
	sluice, sluicePprof, loadgen string
	tools                        map[string]string // redis-server, redis-benchmark, beanstalkd
	tmp                          string
	notes                        string // findings file for RESULTS.md
	z                            sizes
	verbose                      io.Writer
}

// row is one figure from one round.
type row struct {
	Round   int         `json:"round"`
	ID      string      `json:"id"`
	Section string      `json:"section"`
	Target  string      `json:"target"`
	Tool    string      `json:"tool"`
	Lower   bool        `json:"lower_is_better,omitempty"`
	Server  string      `json:"server_command"`
	Command string      `json:"command"`
	Res     load.Result `json:"result"`
	Note    string      `json:"note,omitempty"`
}

// report is everything RESULTS.md is made from (results.json).
type report struct {
	Mode     string            `json:"mode"`
	Rounds   int               `json:"rounds"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Machine  map[string]string `json:"machine"`
	Rows     []row             `json:"rows"`
	Profiles []profile         `json:"profiles,omitempty"`
	Order    []string          `json:"order"` // ids in plan order
	Failures []failure         `json:"failures,omitempty"`
}

type failure struct {
	Round  int    `json:"round"`
	ID     string `json:"id"`
	Target string `json:"target"`
	Error  string `json:"error"`
}

type profile struct {
	Name    string `json:"name"`
	Command string `json:"command"`
	File    string `json:"file"`
	Top     string `json:"top"`
}

func main() {
	var r runner
	out := flag.String("out", "benchmarks", "where RESULTS.md, results.json and throughput.svg go")
	flag.StringVar(&r.sluice, "sluice", "", "sluice binary")
	flag.StringVar(&r.sluicePprof, "sluice-pprof", "", "sluice binary serving net/http/pprof at $SLUICE_BENCH_PPROF (enables profiles)")
	flag.StringVar(&r.loadgen, "loadgen", "", "loadgen binary")
	smoke := flag.Bool("smoke", false, "tiny workloads, one round: checks that the harness works, measures nothing")
	long := flag.Bool("long", false, "also measure at a depth of 10,000,000 queued jobs")
	rounds := flag.Int("rounds", 3, "rounds; the report shows medians")
	only := flag.String("only", "", "run only measures whose id contains this")
	flag.StringVar(&r.notes, "notes", "", "a Markdown file of findings to include in RESULTS.md")
	rerender := flag.String("report", "", "measure nothing: write RESULTS.md and throughput.svg again from this results.json")
	flag.Parse()
	var err error
	if *rerender != "" {
		err = r.rerender(*rerender, *out)
	} else {
		err = r.main(*out, *smoke, *long, *rounds, *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func (r *runner) main(out string, smoke, long bool, rounds int, only string) error {
	if r.sluice == "" || r.loadgen == "" {
		return errors.New("-sluice and -loadgen are required")
	}
	r.tools = map[string]string{}
	for _, t := range []string{"redis-server", "redis-benchmark", "beanstalkd"} {
		p, err := exec.LookPath(t)
		if err != nil {
			return fmt.Errorf("%s not found: install redis-server, redis-tools and beanstalkd (benchmarks/run.sh does)", t)
		}
		r.tools[t] = p
	}
	r.verbose = os.Stderr
	if smoke {
		r.z = smokeSizes()
	} else {
		r.z = fullSizes(rounds, long)
	}
	var err error
	if r.tmp, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(r.tmp)
	// Interrupted: servers die with us (Pdeathsig); remove their folders.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		os.RemoveAll(r.tmp)
		os.Exit(130)
	}()
	rep := &report{Mode: "full", Rounds: r.z.rounds, Started: time.Now().UTC(), Machine: r.machine()}
	if smoke {
		rep.Mode = "smoke"
	}
	if long {
		rep.Mode += " (long: 10M depth)"
	}
	ms := plan(r.z)
	if only != "" {
		var keep []measure
		for _, m := range ms {
			if strings.Contains(m.id, only) || m.id2 != "" && strings.Contains(m.id2, only) {
				keep = append(keep, m)
			}
		}
		ms = keep
	}
	seen := map[string]bool{}
	for _, m := range ms {
		for _, id := range []string{m.id, m.id2} {
			if id != "" && !seen[id] {
				seen[id] = true
				rep.Order = append(rep.Order, id)
			}
		}
	}
	for round := 1; round <= r.z.rounds; round++ {
		for i, m := range ms {
			fmt.Fprintf(r.verbose, "[round %d/%d, %d/%d] %s — %s\n", round, r.z.rounds, i+1, len(ms), m.id, m.target)
			rows, err := r.measure(m)
			if err != nil {
				// Keep going: one failed measure should not cost the others.
				fmt.Fprintf(r.verbose, "    FAILED: %v\n", err)
				rep.Failures = append(rep.Failures, failure{Round: round, ID: m.id, Target: m.target, Error: err.Error()})
				continue
			}
			for _, x := range rows {
				x.Round = round
				fmt.Fprintf(r.verbose, "    %s\n", x.Res)
				rep.Rows = append(rep.Rows, x)
			}
		}
	}
	if r.sluicePprof != "" && !smoke {
		ps, err := r.profiles(filepath.Join(out, "profiles"))
		if err != nil {
			fmt.Fprintf(r.verbose, "    FAILED: %v\n", err)
			rep.Failures = append(rep.Failures, failure{ID: "profiles", Error: err.Error()})
		}
		rep.Profiles = ps
	}
	rep.Finished = time.Now().UTC()
	rep.Machine["load average after"] = loadavg()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := r.write(rep, out); err != nil {
		return err
	}
	if len(rep.Failures) > 0 {
		return fmt.Errorf("%d measure(s) failed; see RESULTS.md", len(rep.Failures))
	}
	return nil
}

// write renders RESULTS.md and throughput.svg from rep.
func (r *runner) write(rep *report, out string) error {
	if err := os.WriteFile(filepath.Join(out, "throughput.svg"), chart(rep), 0o644); err != nil {
		return err
	}
	var notes []byte
	if r.notes != "" {
		var err error
		if notes, err = os.ReadFile(r.notes); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(out, "RESULTS.md"), []byte(markdown(rep, string(notes))), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(r.verbose, "wrote %s\n", filepath.Join(out, "RESULTS.md"))
	return nil
}

// rerender writes the report again from a results.json, e.g. after the
// findings or the report's layout changed.
func (r *runner) rerender(file, out string) error {
	r.verbose = os.Stderr
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return r.write(&rep, out)
}

func (r *runner) measure(m measure) ([]row, error) {
	srv, err := r.start(m.server)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	base := row{ID: m.id, Section: m.section, Target: m.target, Tool: m.tool, Lower: m.lower, Server: commandLine(srv.args)}
	switch m.tool {
	case "loadgen":
		argv := append([]string{r.loadgen, "-target", m.target, "-addr", srv.addr, "-json"}, m.args...)
		second := base // a paired measure's second figure
		if m.id2 != "" {
			srv2, err := r.start(m.server2)
			if err != nil {
				return nil, err
			}
			defer srv2.stop()
			argv = append(argv, "-target2", m.target2, "-addr2", srv2.addr)
			second.ID, second.Target, second.Server = m.id2, m.target2, commandLine(srv2.args)
		}
		res, err := r.runLoadgen(argv)
		if err != nil {
			return nil, err
		}
		if m.id2 != "" && len(res) != 2 {
			return nil, fmt.Errorf("%s: a paired run gave %d figures, not 2", commandLine(argv), len(res))
		}
		var rows []row
		for i, x := range res {
			rw := base
			switch {
			case m.id2 != "" && i == 1:
				rw = second
			case m.id2 == "" && len(res) > 1:
				rw.ID = m.id + " " + x.Metric
			}
			rw.Command = commandLine(argv)
			rw.Res = x
			rw.Res.Command = nil
			rows = append(rows, rw)
		}
		if m.server == "sluice-aof" {
			rows[0].Note = aofNote(srv)
		}
		return rows, nil
	case "redis-benchmark":
		host, port, _ := strings.Cut(srv.addr, ":")
		argv := []string{r.tools["redis-benchmark"], "-h", host, "-p", port, "-c", "50", "-n", strconv.Itoa(m.n), "-P", strconv.Itoa(m.p), "--csv"}
		argv = append(argv, m.args...)
		out, err := runTool(r.z.rbTimeout, argv)
		if err != nil {
			return nil, err
		}
		res, err := parseRedisBenchmark(out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", commandLine(argv), err)
		}
		res.Target, res.Workload, res.Metric, res.Conns, res.Pipeline = m.target, m.id, "request", 50, m.p
		res.Ops, res.Seconds = uint64(m.n), float64(m.n)/res.OpsPerSec
		rw := base
		rw.Command = commandLine(argv)
		rw.Res = res
		if m.server == "sluice-aof" {
			rw.Note = aofNote(srv)
		}
		return []row{rw}, nil
	case "memory":
		return r.memory(m, srv, base)
	}
	return nil, fmt.Errorf("unknown tool %q", m.tool)
}

func (r *runner) runLoadgen(argv []string) ([]load.Result, error) {
	out, err := runTool(r.z.loadgenTimeout, argv)
	if err != nil {
		return nil, err
	}
	var res []load.Result
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var x load.Result
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			return nil, fmt.Errorf("%s: bad output %q: %w", commandLine(argv), l, err)
		}
		res = append(res, x)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: no figures", commandLine(argv))
	}
	return res, nil
}

// aofNote reports what the server said about the append-only log: a
// server that logs it has not wired it yet is measured as in-memory.
func aofNote(s *server) string {
	b, _ := os.ReadFile(s.log)
	if strings.Contains(string(b), "not_yet_wired") && strings.Contains(string(b), "appendonly") {
		return "the server logged appendonly as not yet wired: this figure is in-memory"
	}
	return ""
}

// parseRedisBenchmark reads redis-benchmark --csv output.
func parseRedisBenchmark(out []byte) (load.Result, error) {
	recs, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil {
		return load.Result{}, err
	}
	if len(recs) < 2 || len(recs[0]) < 7 || recs[0][1] != "rps" {
		return load.Result{}, fmt.Errorf("unexpected output %q", out)
	}
	f := func(i int) float64 {
		v, _ := strconv.ParseFloat(recs[1][i], 64)
		return v
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	res := load.Result{OpsPerSec: f(col["rps"])}
	ms := func(name string) float64 {
		if i, ok := col[name]; ok {
			return f(i) * 1000
		}
		return 0
	}
	res.Mean, res.P50, res.P99, res.Max = ms("avg_latency_ms"), ms("p50_latency_ms"), ms("p99_latency_ms"), ms("max_latency_ms")
	if res.OpsPerSec <= 0 {
		return res, fmt.Errorf("no rate in %q", out)
	}
	return res, nil
}

// memory queues m.n jobs and reports resident memory per job.
func (r *runner) memory(m measure, srv *server, base row) ([]row, error) {
	time.Sleep(300 * time.Millisecond)
	rss0, err := srv.rss()
	if err != nil {
		return nil, err
	}
	used0, usedErr := srv.info("used_memory")
	argv := append([]string{r.loadgen, "-target", m.target, "-addr", srv.addr, "-json"}, m.args...)
	if _, err := r.runLoadgen(argv); err != nil {
		return nil, err
	}
	time.Sleep(time.Second)
	rss1, err := srv.rss()
	if err != nil {
		return nil, err
	}
	n := float64(m.n)
	res := load.Result{Target: m.target, Workload: "memory", Metric: "bytes_per_job", Ops: uint64(m.n),
		Extra: map[string]float64{"rss_bytes_per_job": float64(rss1-rss0) / n, "rss_after_mb": float64(rss1) / (1 << 20)}}
	if usedErr == nil {
		if used1, err := srv.info("used_memory"); err == nil {
			res.Extra["used_memory_per_job"] = float64(used1-used0) / n
		}
	}
	rw := base
	rw.Command = commandLine(argv)
	rw.Res = res
	return []row{rw}, nil
}

// profiles takes CPU profiles of a pprof-enabled sluice under the
// workloads the bars are about, and keeps `go tool pprof -top` of each.
func (r *runner) profiles(dir string) ([]profile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := strconv.Itoa(r.z.profileN)
	cases := []struct {
		name string
		args []string
	}{
		{"push-c50-P1", []string{"-workload", "push", "-conns", "50", "-pipeline", "1", "-n", n}},
		{"push-c50-P16", []string{"-workload", "push", "-conns", "50", "-pipeline", "16", "-n", n}},
		{"cycle-c50", []string{"-workload", "cycle", "-conns", "50", "-n", strconv.Itoa(r.z.profileN / 8)}},
		{"cycle-keys-c50", []string{"-workload", "cycle-keys", "-conns", "50", "-n", strconv.Itoa(r.z.profileN / 8)}},
		{"heap-1M-queued", []string{"-workload", "push", "-conns", "4", "-pipeline", "64", "-n", "1000000"}},
		{"steady-behind-1M-blocked", []string{"-workload", "steady", "-conns", "50", "-n", strconv.Itoa(r.z.profileN / 8), "-blocked", "1000000", "-blocked-by", "policy"}},
	}
	var ps []profile
	var errs []error
	for _, c := range cases {
		fmt.Fprintf(r.verbose, "[profile] %s\n", c.name)
		p, err := r.profileOne(dir, c.name, c.args)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			continue
		}
		ps = append(ps, p)
	}
	return ps, errors.Join(errs...)
}

func (r *runner) profileOne(dir, name string, args []string) (profile, error) {
	srv, err := r.start("sluice-pprof")
	if err != nil {
		return profile{}, err
	}
	defer srv.stop()
	argv := append([]string{r.loadgen, "-target", "sluice", "-addr", srv.addr}, args...)
	lg := exec.Command(argv[0], argv[1:]...)
	lg.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := lg.StderrPipe()
	if err != nil {
		return profile{}, err
	}
	if err := lg.Start(); err != nil {
		return profile{}, err
	}
	defer func() {
		if lg.ProcessState == nil {
			lg.Process.Kill()
			lg.Wait()
		}
	}()
	// Profile the timed part only, not the prefill: wait for loadgen to
	// say it started, then give it a second to settle.
	started := make(chan bool, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), "timed part started") {
				ok = true
				started <- true
			}
		}
		if !ok {
			started <- false
		}
	}()
	heap := strings.HasPrefix(name, "heap")
	select {
	case ok := <-started:
		if !ok {
			return profile{}, errors.New("loadgen ended before its timed part")
		}
	case <-time.After(5 * time.Minute):
		return profile{}, errors.New("loadgen's timed part never started")
	}
	url := "http://" + srv.pprofAddr() + "/debug/pprof/profile?seconds=8"
	var pprofArgs []string
	if heap {
		// What stays in memory once the jobs are queued.
		<-drained
		if err := lg.Wait(); err != nil {
			return profile{}, fmt.Errorf("%s: %w", commandLine(argv), err)
		}
		url = "http://" + srv.pprofAddr() + "/debug/pprof/heap?gc=1"
		pprofArgs = []string{"-sample_index=inuse_space"}
	} else {
		time.Sleep(time.Second)
	}
	resp, err := http.Get(url)
	if err != nil {
		return profile{}, err
	}
	defer resp.Body.Close()
	file := filepath.Join(dir, name+".pprof")
	f, err := os.Create(file)
	if err != nil {
		return profile{}, err
	}
	_, err = io.Copy(f, resp.Body)
	f.Close()
	if err != nil {
		return profile{}, err
	}
	pp := func(extra ...string) (string, error) {
		argv := append([]string{"go", "tool", "pprof", "-top", "-nodecount=25"}, pprofArgs...)
		argv = append(append(argv, extra...), r.sluicePprof, file)
		out, err := runTool(time.Minute, argv)
		return string(out), err
	}
	top, err := pp()
	if err != nil {
		return profile{}, err
	}
	cum, err := pp("-cum")
	if err != nil {
		return profile{}, err
	}
	return profile{Name: name, Command: commandLine(argv), File: filepath.Base(file), Top: top + "\n--- by cumulative ---\n" + cum}, nil
}

func (r *runner) machine() map[string]string {
	m := map[string]string{
		"nproc":               strconv.Itoa(runtime.NumCPU()),
		"load average before": loadavg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				m["memory"] = strings.TrimSpace(v)
			}
		}
	}
	tool := func(key string, argv ...string) {
		out, err := runTool(30*time.Second, argv)
		if err == nil {
			m[key] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	tool("kernel", "uname", "-sr")
	tool("go", "go", "version")
	tool("redis-server", r.tools["redis-server"], "--version")
	tool("redis-benchmark", r.tools["redis-benchmark"], "--version")
	tool("beanstalkd", r.tools["beanstalkd"], "-v")
	tool("sluice", r.sluice, "--version")
	tool("sluice commit", "git", "log", "-1", "--format=%h %cs")
	if out, err := runTool(30*time.Second, []string{"git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks"}); err == nil {
		if n := len(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), " ", ""))); n > 0 {
			m["sluice commit"] += fmt.Sprintf(" (built from a tree with %d changed file(s) outside benchmarks/)", n)
		}
	}
	tool("uptime", "uptime")
	if d, err := firstTouch(64 << 20); err == nil {
		m["first write to a page"] = fmt.Sprintf("%.1f µs per 4 KiB page of fresh memory (64 MiB mapped and written once)", d.Seconds()*1e6)
	}
	if m["go"] == "" {
		m["go"] = runtime.Version()
	}
	return m
}

// firstTouch maps n bytes of anonymous memory and returns the time one
// write to each untouched 4 KiB page takes: the page fault that gives a
// process memory. A server pays it for every page its data grows into, so
// on a machine where it is slow, bytes per job cost time as well as memory.
func firstTouch(n int) (time.Duration, error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return 0, err
	}
	defer syscall.Munmap(b)
	start := time.Now()
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return time.Since(start) / time.Duration(n/4096), nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
