// Command abuse runs the attacks that once made one client cost the whole
// server (issue: hardening) against a built sluice for a while, with a
// second client PINGing throughout, and reports the server's peak resident
// memory and PING latency against stated bounds. It exits 1 when a bound
// is missed.
//
//	go run ./benchmarks/cmd/abuse                 # 60 s, the defaults
//	go run ./benchmarks/cmd/abuse -duration 20s   # shorter
//
// The attacks, all at once:
//   - peek-rst: clients that ask QUEUEPEEK over 512 KB jobs for as many as
//     the server allows, read a little, and close with a reset;
//   - peek-noread: a client that pipelines big peeks and never reads;
//   - peek-huge: QUEUEPEEK with a huge COUNT on a queue of a million jobs;
//   - reserve-queues: clients blocked in JOBRESERVE naming the most queues
//     allowed (and one naming 65,000, which must be refused);
//   - partial: clients each holding a 1 MB partial command (200 of them,
//     past -maxmemory-clients);
//   - state: QUEUEPAUSE of new names, POLICYSET of new keys, rate
//     admissions, without end.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sluice/benchmarks/internal/wire"
)

var (
	duration      = flag.Duration("duration", 60*time.Second, "how long the attacks run")
	maxMemory     = flag.Int64("maxmemory", 1<<30, "the server's --maxmemory, bytes")
	clientsMemory = flag.Int64("maxmemory-clients", 128<<20, "the server's --maxmemory-clients, bytes")
	slack         = flag.Int64("slack", 100<<20, "RSS allowed above maxmemory + maxmemory-clients, bytes")
	pingP99       = flag.Duration("ping-p99", 50*time.Millisecond, "the PING p99 bound")
	hugeJobs      = flag.Int("huge-jobs", 1_000_000, "jobs in the queue peeked with a huge COUNT")
	reserveQueues = flag.Int("reserve-queues", 0, "queues each blocked reserve names (0: the server's max-reserve-queues)")
	binary        = flag.String("binary", "", "the sluice binary (default: built from this tree)")
	extra         = flag.String("args", "", "more server arguments, space-separated")
	only          = flag.String("attacks", "", "run only these attacks (comma-separated names)")
	pause         = flag.Duration("reconnect-pause", 100*time.Millisecond, "how long a closed attacker waits before it connects again")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "abuse:", err)
		os.Exit(1)
	}
}

// counters per attack.
type stats struct {
	name          string
	ops, errs     atomic.Int64
	refused       atomic.Int64 // error replies (the server said no)
	closed        atomic.Int64 // connections the server closed
	mu            sync.Mutex
	errorExamples []string
}

func (s *stats) refusal(msg string) {
	s.refused.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	code, _, _ := strings.Cut(msg, " ")
	for _, e := range s.errorExamples {
		if strings.HasPrefix(e, code+" ") || e == code {
			return
		}
	}
	if len(s.errorExamples) < 4 {
		if len(msg) > 100 {
			msg = msg[:100]
		}
		s.errorExamples = append(s.errorExamples, msg)
	}
}

// dialRaw connects an attacker; a failure is counted, with a short pause.
func (s *stats) dialRaw(addr string) (net.Conn, bool) {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		s.errs.Add(1)
		time.Sleep(10 * time.Millisecond)
		return nil, false
	}
	return nc, true
}

// dialRESP is dialRaw for a RESP client.
func (s *stats) dialRESP(addr string) (*wire.RESP, bool) {
	c, err := wire.DialRESP(addr)
	if err != nil {
		s.errs.Add(1)
		time.Sleep(10 * time.Millisecond)
		return nil, false
	}
	return c, true
}

func run() error {
	dir, err := os.MkdirTemp("", "sluice-abuse-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := *binary
	if bin == "" {
		bin = filepath.Join(dir, "sluice")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building sluice: %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"--port", strconv.Itoa(port), "--dir", filepath.Join(dir, "data"),
		"--maxmemory", strconv.FormatInt(*maxMemory, 10),
		"--logformat", "json", "--loglevel", "warn"}
	if *clientsMemory > 0 { // 0: a server without the option
		args = append(args, "--maxmemory-clients", strconv.FormatInt(*clientsMemory, 10))
	}
	if *extra != "" {
		args = append(args, strings.Fields(*extra)...)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	srv := exec.Command(bin, args...)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
		if data, _ := os.ReadFile(logf.Name()); len(data) > 0 {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			fmt.Printf("\nserver log: %d lines (warnings and errors); the last:\n", len(lines))
			for _, l := range lines[max(0, len(lines)-5):] {
				if len(l) > 300 {
					l = l[:300] + "..."
				}
				fmt.Println("  " + l)
			}
		}
	}()
	if err := waitReady(addr); err != nil {
		return err
	}
	ctl, err := wire.DialRESP(addr)
	if err != nil {
		return err
	}
	defer ctl.Close()
	nq := *reserveQueues
	if nq == 0 {
		r, err := ctl.Do("CONFIG", "GET", "max-reserve-queues")
		if err == nil && len(r.Arr) == 2 {
			nq, _ = strconv.Atoi(string(r.Arr[1].Str))
		}
		if nq == 0 {
			nq = 1024
		}
	}

	fmt.Printf("setup: 500 jobs of 512 KB in queue big, %d small jobs in queue huge\n", *hugeJobs)
	big := strings.Repeat("x", 512<<10)
	if err := fill(ctl, "big", 500, big); err != nil {
		return err
	}
	if err := fill(ctl, "huge", *hugeJobs, "p"); err != nil {
		return err
	}
	base, _ := rss(srv.Process.Pid)
	fmt.Printf("setup done: RSS %d MB\n", base>>20)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var all []*stats
	attack := func(name string, n int, fn func(s *stats, i int)) {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), name) {
			return
		}
		s := &stats{name: name}
		all = append(all, s)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					fn(s, i)
					// The server closed the connection (or the attacker
					// hung up): come again, but not as a connection flood,
					// which is a different attack (on bandwidth).
					time.Sleep(*pause)
				}
			}(i)
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}

	attack("peek-rst", 4, func(s *stats, _ int) {
		nc, ok := s.dialRaw(addr)
		if !ok {
			return
		}
		defer nc.Close()
		fmt.Fprintf(nc, "QUEUEPEEK big COUNT %d\r\n", []int{1048576, 1000, 100}[s.ops.Load()%3])
		s.ops.Add(1)
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64<<10)
		n, _ := nc.Read(buf)
		if n > 0 && buf[0] == '-' {
			line, _, _ := strings.Cut(string(buf[1:n]), "\r\n")
			s.refusal(line)
		}
		nc.(*net.TCPConn).SetLinger(0) // close with a reset
	})
	attack("peek-noread", 1, func(s *stats, _ int) {
		nc, ok := s.dialRaw(addr)
		if !ok {
			return
		}
		defer nc.Close()
		for !stopped() {
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := fmt.Fprintf(nc, "QUEUEPEEK big COUNT 1000\r\n"); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue // the server does not read ahead of its replies
				}
				s.closed.Add(1)
				return
			}
			s.ops.Add(1)
		}
	})
	attack("peek-huge", 1, func(s *stats, _ int) {
		c, ok := s.dialRESP(addr)
		if !ok {
			return
		}
		defer c.Close()
		for !stopped() {
			c.SetDeadline(time.Now().Add(30 * time.Second))
			_, err := c.Do("QUEUEPEEK", "huge", "COUNT", "1048576")
			s.ops.Add(1)
			var se wire.ServerError
			if errors.As(err, &se) {
				s.refusal(string(se))
				// The allowed maximum, then, page after page.
				_, err = c.Do("QUEUEPEEK", "huge", "COUNT", "1000")
				s.ops.Add(1)
			}
			if err != nil && !errors.As(err, &se) {
				s.closed.Add(1)
				return
			}
		}
	})
	names := func(n int, prefix string) []string {
		out := []string{"JOBRESERVE", "w", "60000", "BLOCK", "0", "QUEUES"}
		for i := 0; i < n; i++ {
			out = append(out, prefix+strconv.Itoa(i))
		}
		return out
	}
	tooMany, allowed := names(65000, "never-"), names(nq, "never-")
	attack("reserve-queues", 100, func(s *stats, i int) {
		c, ok := s.dialRESP(addr)
		if !ok {
			return
		}
		defer c.Close()
		args := allowed
		if i == 0 { // one client always names 65,000 queues
			args = tooMany
		}
		c.SendStrings(args...)
		c.Flush()
		s.ops.Add(1)
		// Blocked, until the server answers (a refusal) or a few seconds
		// pass; then hang up and come again.
		c.SetDeadline(time.Now().Add(3 * time.Second))
		_, err = readReply(c)
		var se wire.ServerError
		switch {
		case errors.As(err, &se):
			s.refusal(string(se))
		case err != nil && !isTimeout(err):
			s.closed.Add(1) // evicted while its command came in, say
		}
	})
	// A push whose payload stops short: within --max-payload, so the
	// server must hold it and wait for the rest.
	partial := "*4\r\n$7\r\nJOBPUSH\r\n$1\r\nq\r\n$1\r\nh\r\n$1048576\r\n" + strings.Repeat("y", 1000000)
	attack("partial", 200, func(s *stats, _ int) {
		nc, ok := s.dialRaw(addr)
		if !ok {
			return
		}
		defer nc.Close()
		nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write([]byte(partial)); err != nil {
			s.closed.Add(1)
			return
		}
		s.ops.Add(1)
		// Hold it until the server closes the connection, or a while.
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		if n, err := nc.Read(buf); err == nil || n > 0 {
			s.closed.Add(1)
			if n > 0 && buf[0] == '-' {
				line, _, _ := strings.Cut(string(buf[1:n]), "\r\n")
				s.refusal(line)
			}
		} else if !isTimeout(err) {
			s.closed.Add(1)
		}
	})
	var seq atomic.Int64
	attack("state", 1, func(s *stats, _ int) {
		c, ok := s.dialRESP(addr)
		if !ok {
			return
		}
		defer c.Close()
		for !stopped() {
			i := strconv.FormatInt(seq.Add(1), 10)
			c.SendStrings("QUEUEPAUSE", "paused-"+i)
			c.SendStrings("POLICYSET", "CONCURRENCY", "ckey-"+i, "5")
			c.SendStrings("POLICYSET", "RATELIMIT", "rkey-"+i, "1000000", "3600000")
			c.SendStrings("POLICYSET", "RATELIMIT", "admit", "1000000", "3600000")
			c.SendStrings("JOBPUSH", "admit", "h", "p", "RATELIMIT", "admit")
			c.SendStrings("JOBRESERVE", "w", "60000", "QUEUES", "admit")
			if err := c.Flush(); err != nil {
				s.closed.Add(1)
				return
			}
			for k := 0; k < 6; k++ {
				r, err := readReply(c)
				s.ops.Add(1)
				var se wire.ServerError
				if errors.As(err, &se) {
					s.refusal(string(se))
					continue
				}
				if err != nil {
					s.closed.Add(1)
					return
				}
				if k == 5 && len(r.Arr) > 0 {
					if tok := r.Arr[0].Field("token"); tok != nil {
						c.SendStrings("JOBACK", string(tok.Str))
						c.Flush()
						c.Read()
					}
				}
			}
		}
	})

	// The bystander: a PING every 10 ms, each on the same connection.
	var lat []time.Duration
	var latMu sync.Mutex
	pingErrs := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := wire.DialRESP(addr)
		if err != nil {
			pingErrs++
			return
		}
		defer c.Close()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for !stopped() {
			<-tick.C
			t := time.Now()
			c.SetDeadline(t.Add(10 * time.Second))
			if _, err := c.Do("PING"); err != nil {
				pingErrs++
				c.Close()
				if c, err = wire.DialRESP(addr); err != nil {
					return
				}
				continue
			}
			latMu.Lock()
			lat = append(lat, time.Since(t))
			latMu.Unlock()
		}
	}()

	var peak int64
	began := time.Now()
	fmt.Printf("attacking for %s\n", *duration)
	for time.Since(began) < *duration {
		time.Sleep(200 * time.Millisecond)
		r, err := rss(srv.Process.Pid)
		if err != nil {
			close(stop)
			return fmt.Errorf("the server is gone: %w", err)
		}
		peak = max(peak, r)
	}
	close(stop)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		fmt.Println("(some attackers were still busy 30 s after the end)")
	}

	info, _ := ctl.Do("INFO")
	fields := infoFields(string(info.Str))
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	bound := *maxMemory + *clientsMemory + *slack
	fmt.Printf("\n%-15s %10s %10s %10s %10s  %s\n", "attack", "requests", "refused", "closed", "errors", "refusals seen")
	for _, s := range all {
		fmt.Printf("%-15s %10d %10d %10d %10d  %s\n", s.name, s.ops.Load(), s.refused.Load(), s.closed.Load(), s.errs.Load(), strings.Join(s.errorExamples, " | "))
	}
	fmt.Printf("\nserver RSS: %d MB before the attacks, peak %d MB during them; bound %d MB (maxmemory %d + maxmemory-clients %d + %d)\n",
		base>>20, peak>>20, bound>>20, *maxMemory>>20, *clientsMemory>>20, *slack>>20)
	fmt.Printf("PING: %d answered, %d failed; p50 %s, p99 %s, max %s; bound p99 %s\n",
		len(lat), pingErrs, pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond), *pingP99)
	for _, k := range []string{"used_memory", "used_memory_jobs", "used_memory_queues", "used_memory_policies", "mem_clients_normal", "evicted_clients", "connected_clients", "blocked_clients", "queues"} {
		if v, ok := fields[k]; ok {
			fmt.Printf("INFO %s: %s\n", k, v)
		}
	}
	var failed []string
	if peak > bound {
		failed = append(failed, fmt.Sprintf("RSS peak %d MB over the bound %d MB", peak>>20, bound>>20))
	}
	if pct(0.99) > *pingP99 || pingErrs > 0 {
		failed = append(failed, fmt.Sprintf("PING p99 %s (bound %s), %d failed", pct(0.99), *pingP99, pingErrs))
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	fmt.Println("\nevery bound held")
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fill pushes n jobs with payload p into queue q, pipelined.
func fill(c *wire.RESP, q string, n int, p string) error {
	const batch = 1000
	for done := 0; done < n; {
		k := min(batch, n-done)
		for i := 0; i < k; i++ {
			c.SendStrings("JOBPUSH", q, "h", p)
		}
		if err := c.Flush(); err != nil {
			return err
		}
		for i := 0; i < k; i++ {
			if _, err := c.Read(); err != nil {
				return fmt.Errorf("filling %s: %w", q, err)
			}
		}
		done += k
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := wire.DialRESP(addr); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the server did not come up")
}

// rss is the resident set size of process pid, from /proc.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) == 2 {
				n, err := strconv.ParseInt(fs[0], 10, 64)
				return n << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

func infoFields(text string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// readReply reads one reply, an error reply as a wire.ServerError.
func readReply(c *wire.RESP) (wire.Reply, error) {
	r, err := c.Read()
	if err == nil && r.Kind == '-' {
		err = wire.ServerError(r.Str)
	}
	return r, err
}
