// Command jobwait measures JOBWAIT against its bar (issue 21): with
// -waiters clients blocked in JOBWAIT, one per job, each is answered within
// 1 ms of its job's end at p99, and nothing polls while no job ends.
//
//	go run ./benchmarks/cmd/jobwait                  # 10,000 waiters
//	go run ./benchmarks/cmd/jobwait -waiters 1000
//
// The server runs in this process, so that its own timestamps can be read:
// for every waiter, the time from the moment the store announced its job's
// end (the end hook, as the ack is applied) to the moment the waiting
// command has its answer (blocking.JobWaits's answer hook). The reply's
// write to the socket comes after. The waiting clients run in a child
// process (this program again, with -child), each on its own connection,
// so that neither process needs more than about 10,000 descriptors.
//
// Then, with every waiter parked:
//   - idle: for -idle, no job ends; the parked waiters' wake-ups must stay
//     0, and the process's CPU time over the interval is reported;
//   - paced: a worker acks the jobs one at a time, each after the previous
//     ack's reply, over one connection (-paced of them);
//   - burst: the rest are acked in one pipelined write, so that thousands
//     of waiters are woken at once (the worst case, reported, not held to
//     the bar).
//
// It exits 1 when the paced p99 is above -bar or a waiter woke while
// nothing ended.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"sluice/benchmarks/internal/wire"
	"sluice/config"
	"sluice/server"
)

var (
	waiters = flag.Int("waiters", 10_000, "clients blocked in JOBWAIT, one per job")
	paced   = flag.Int("paced", 0, "jobs acked one at a time (0: all of them but -burst)")
	burst   = flag.Int("burst", 2000, "jobs acked in one pipelined write, after the paced ones")
	idle    = flag.Duration("idle", 2*time.Second, "how long the parked waiters are watched while nothing ends")
	bar     = flag.Duration("bar", time.Millisecond, "the paced p99 bound")
	child   = flag.String("child", "", "run as the waiting clients of the server at this address (ids on stdin)")
)

func main() {
	flag.Parse()
	var err error
	if *child != "" {
		err = runChild(*child)
	} else {
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobwait:", err)
		os.Exit(1)
	}
}

// answers collects the server's end-to-answer times.
type answers struct {
	mu sync.Mutex
	d  []time.Duration
}

func (a *answers) add(d time.Duration) {
	a.mu.Lock()
	a.d = append(a.d, d)
	a.mu.Unlock()
}

// take waits for k times (at most a minute) and returns those collected.
func (a *answers) take(k int) []time.Duration {
	deadline := time.Now().Add(time.Minute)
	for {
		a.mu.Lock()
		if len(a.d) >= k || time.Now().After(deadline) {
			d := a.d
			a.d = nil
			a.mu.Unlock()
			return d
		}
		a.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

func run() error {
	n := *waiters
	if *paced == 0 {
		*paced = max(0, n-*burst)
	}
	if *paced+*burst > n {
		*burst = n - *paced
	}
	dir, err := os.MkdirTemp("", "sluice-jobwait-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.DefaultConfig()
	cfg.Port, cfg.Dir, cfg.AppendOnly = 0, dir, false
	cfg.MaxClients = n + 100
	node, err := server.New(cfg, server.Options{Log: zerolog.Nop(), Version: "bench"})
	if err != nil {
		return err
	}
	if err := node.Start(); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = node.Shutdown(ctx)
	}()
	addr := node.Addrs()[0]
	jw := node.JobWaits()
	var got answers
	jw.SetAnswerHook(got.add)

	w, err := wire.DialRESP(addr)
	if err != nil {
		return err
	}
	defer w.Close()
	ids := make([]string, n)
	for range ids {
		w.SendStrings("JOBPUSH", "waited", "h", "p")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for i := range ids {
		r, err := w.Read()
		if err != nil {
			return err
		}
		ids[i] = string(r.Str)
	}

	cmd := exec.Command(os.Args[0], "-child", addr)
	cmd.Stdin = strings.NewReader(strings.Join(ids, "\n") + "\n")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(60 * time.Second)
	for jw.Waiting() < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d waiters parked", jw.Waiting(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("jobwait: %d clients blocked in JOBWAIT, one per job (GOMAXPROCS %s, %d CPUs)\n",
		n, os.Getenv("GOMAXPROCS"), numCPU())

	// Idle: nothing ends.
	wakes, cpu := jw.Wakeups(), cpuTime()
	time.Sleep(*idle)
	idleWakes, idleCPU := jw.Wakeups()-wakes, cpuTime()-cpu
	fmt.Printf("idle %v: %d wake-ups of parked waiters, process CPU %v (%.2f%% of one core)\n",
		*idle, idleWakes, idleCPU.Round(time.Microsecond), 100*float64(idleCPU)/float64(*idle))

	// Paced, then burst.
	res, err := w.Do("JOBRESERVE", "bench", "600000", "COUNT", strconv.Itoa(n), "QUEUES", "waited")
	if err != nil {
		return err
	}
	toks := make([]string, 0, n)
	for _, r := range res.Arr {
		toks = append(toks, string(r.Field("token").Str))
	}
	if len(toks) != n {
		return fmt.Errorf("reserved %d of %d jobs", len(toks), n)
	}
	start := time.Now()
	for _, tok := range toks[:*paced] {
		if _, err := w.Do("JOBACK", tok, "RESULT", "ok"); err != nil {
			return err
		}
	}
	pacedFor := time.Since(start)
	pacedD := got.take(*paced)
	for _, tok := range toks[*paced:] {
		w.SendStrings("JOBACK", tok, "RESULT", "ok")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for range toks[*paced:] {
		if _, err := w.Read(); err != nil {
			return err
		}
	}
	burstD := got.take(*burst)
	report(fmt.Sprintf("paced (%d acks in %v)", *paced, pacedFor.Round(time.Millisecond)), pacedD)
	report(fmt.Sprintf("burst (%d acks in one write)", *burst), burstD)

	// Every client must have its answer.
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "answered ") {
		return errors.New("the clients did not report")
	}
	fmt.Println("clients: " + sc.Text())
	_ = cmd.Wait()

	var failed []string
	if idleWakes != 0 {
		failed = append(failed, fmt.Sprintf("%d wake-ups while nothing ended", idleWakes))
	}
	if len(pacedD) > 0 {
		if p99 := quantile(pacedD, 0.99); p99 > *bar {
			failed = append(failed, fmt.Sprintf("paced p99 %v above %v", p99, *bar))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	fmt.Printf("bar met: paced p99 <= %v, no wake-up while idle\n", *bar)
	return nil
}

func report(what string, d []time.Duration) {
	if len(d) == 0 {
		fmt.Printf("%s: no answers\n", what)
		return
	}
	fmt.Printf("%s: %d answers, end to answer p50 %v, p99 %v, max %v\n", what, len(d),
		quantile(d, 0.5), quantile(d, 0.99), slices.Max(d))
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func numCPU() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "\nprocessor") + 1
}

// runChild opens one connection per id read from stdin, sends JOBWAIT id
// on each, reads every answer and prints how many were answered.
func runChild(addr string) error {
	var ids []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			ids = append(ids, id)
		}
	}
	conns := make([]net.Conn, len(ids))
	for i, id := range ids {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		defer c.Close()
		cmd := fmt.Sprintf("*2\r\n$7\r\nJOBWAIT\r\n$%d\r\n%s\r\n", len(id), id)
		if _, err := c.Write([]byte(cmd)); err != nil {
			return err
		}
		conns[i] = c
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered, bad := 0, 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			mu.Lock()
			defer mu.Unlock()
			if err != nil || !strings.HasPrefix(line, "*8") {
				bad++
				return
			}
			answered++
		}()
	}
	wg.Wait()
	fmt.Printf("answered %d, other replies or errors %d\n", answered, bad)
	return nil
}
