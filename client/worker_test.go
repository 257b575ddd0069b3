package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/client"
	"sluice/internal/check"
)

func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startWorker runs w until the test ends (or the returned stop is called)
// and reports Run's error. A test that fails with handlers stuck waits 5 s
// for them, not the worker's default 30 s.
func startWorker(t *testing.T, w *client.Worker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = w.Shutdown(sctx)
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// A few workers with several executors each share two queues and a
// concurrency cap. With leases far longer than any job, every job runs
// exactly once, every job succeeds, and the cap holds.
func TestWorkersRunEveryJobOnce(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	const jobs, capped, limit = 300, 60, 2
	if err := producer.PolicySetConcurrency(bg, "db", limit); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	runs := map[string]int{}         // job id → runs
	handledBy := map[string]string{} // job id → handler
	var inDB, maxInDB atomic.Int64
	var done atomic.Int64
	handler := func(name string) client.Handler {
		return func(ctx context.Context, task *client.Task) error {
			capped := string(task.Payload) == "db"
			if capped {
				n := inDB.Add(1)
				for m := maxInDB.Load(); n > m && !maxInDB.CompareAndSwap(m, n); m = maxInDB.Load() {
				}
				time.Sleep(2 * time.Millisecond)
				inDB.Add(-1)
			}
			mu.Lock()
			runs[task.ID]++
			handledBy[task.ID] = name
			mu.Unlock()
			done.Add(1)
			if task.Attempt != 1 {
				return fmt.Errorf("attempt %d", task.Attempt)
			}
			return nil
		}
	}
	for i := range 3 {
		c := ts.client(t)
		w := client.NewWorker(c, client.WorkerOptions{
			ID: fmt.Sprintf("w%d", i), Queues: []string{"high", "low"}, Concurrency: 4,
			Prefetch: i, Lease: time.Minute, Block: 200 * time.Millisecond, Logger: quietLogger(t),
		})
		w.Handle("resize", handler("resize"))
		w.Handle("email", handler("email"))
		startWorker(t, w)
	}

	want := map[string]string{}
	for i := range jobs {
		q, h, payload, opts := "low", "email", "", &client.PushOptions{}
		if i%2 == 0 {
			q, h = "high", "resize"
		}
		if i < capped {
			payload, opts.Concurrency = "db", "db"
		}
		id := must[string](t)(producer.Push(bg, q, h, []byte(payload), opts))
		want[id] = h
	}
	eventually(t, "every job ran", func() bool { return done.Load() >= jobs })
	eventually(t, "every job is acked", func() bool {
		a := must[*client.QueueStats](t)(producer.QueueStats(bg, "high"))
		b := must[*client.QueueStats](t)(producer.QueueStats(bg, "low"))
		return a.SucceededTotal+b.SucceededTotal == jobs
	})

	mu.Lock()
	defer mu.Unlock()
	if len(runs) != jobs {
		t.Fatalf("%d distinct jobs ran, want %d", len(runs), jobs)
	}
	for id, h := range want {
		if runs[id] != 1 || handledBy[id] != h {
			t.Errorf("job %s: ran %d times by %q, want once by %q", id, runs[id], handledBy[id], h)
		}
	}
	if m := maxInDB.Load(); m > limit || m < 1 {
		t.Errorf("at most %d capped jobs ran at once, limit %d", m, limit)
	}
	for _, q := range []string{"high", "low"} {
		st := must[*client.QueueStats](t)(producer.QueueStats(bg, q))
		if st.Queued+st.Reserved+st.Running+st.RetryPending+st.Failed != 0 || st.FailedTotal != 0 {
			t.Errorf("queue %s left %+v", q, st)
		}
	}
}

// Only registered handlers are reserved: a job for another handler stays
// queued for a worker that knows it.
func TestWorkerReservesOnlyItsHandlers(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	other := must[string](t)(producer.Push(bg, "q", "other", nil, nil))
	mine := must[string](t)(producer.Push(bg, "q", "mine", nil, nil))
	ran := make(chan string, 2)
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"q"}, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("mine", func(ctx context.Context, task *client.Task) error { ran <- task.ID; return nil })
	startWorker(t, w)
	if got := <-ran; got != mine {
		t.Fatalf("ran %s, want %s", got, mine)
	}
	eventually(t, "mine is acked", func() bool {
		return must[*client.Job](t)(producer.Get(bg, mine)).State == client.StateSucceeded
	})
	if j := must[*client.Job](t)(producer.Get(bg, other)); j.State != client.StateQueued {
		t.Fatalf("the other handler's job is %s", j.State)
	}
}

// Errors fail the attempt with their text; WithRetry picks the retry; a
// panic fails with its stack and the worker keeps going.
func TestWorkerFailures(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"q"}, Concurrency: 2, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("fail", func(ctx context.Context, task *client.Task) error {
		return errors.New("smtp said no")
	})
	w.Handle("never", func(ctx context.Context, task *client.Task) error {
		return client.WithRetry(errors.New("bad address"), client.NoRetry)
	})
	w.Handle("flaky", func(ctx context.Context, task *client.Task) error {
		if task.Attempt == 1 {
			return client.WithRetry(errors.New("try again"), client.RetryIn(0))
		}
		return nil
	})
	w.Handle("panic", func(ctx context.Context, task *client.Task) error {
		panic("boom")
	})
	w.Handle("ok", func(ctx context.Context, task *client.Task) error { return nil })
	startWorker(t, w)

	fail := must[string](t)(producer.Push(bg, "q", "fail", nil, nil))
	never := must[string](t)(producer.Push(bg, "q", "never", nil, &client.PushOptions{MaxAttempts: 5}))
	flaky := must[string](t)(producer.Push(bg, "q", "flaky", nil, &client.PushOptions{MaxAttempts: 2}))
	pan := must[string](t)(producer.Push(bg, "q", "panic", nil, nil))
	ok := must[string](t)(producer.Push(bg, "q", "ok", nil, nil))

	settled := func(id string) *client.Job {
		t.Helper()
		var j *client.Job
		eventually(t, id+" settles", func() bool {
			j = must[*client.Job](t)(producer.Get(bg, id))
			return j.State.Terminal()
		})
		return j
	}
	j := settled(fail)
	check.Field(t, "fail: State", j.State, client.StateFailed)
	check.Field(t, "fail: LastError", j.LastError, "smtp said no")
	check.Field(t, "fail: Attempt", j.Attempt, 1)
	j = settled(never)
	check.Field(t, "never: State", j.State, client.StateFailed)
	check.Field(t, "never: LastError", j.LastError, "bad address")
	check.Field(t, "never: Attempt", j.Attempt, 1)
	j = settled(flaky)
	check.Field(t, "flaky: State", j.State, client.StateSucceeded)
	check.Field(t, "flaky: LastError", j.LastError, "try again")
	check.Field(t, "flaky: Attempt", j.Attempt, 2)
	j = settled(pan)
	check.Field(t, "panic: State", j.State, client.StateFailed)
	if !strings.HasPrefix(j.LastError, "panic: boom") || !strings.Contains(j.LastError, "worker_test.go") {
		t.Errorf("panic: LastError %q, want the panic and its stack", j.LastError)
	}
	if j := settled(ok); j.State != client.StateSucceeded {
		t.Errorf("ok after a panic: %+v", j)
	}
}

// Cancelling a running job cancels its handler's context with
// ErrJobCancelled, and the worker leaves the job cancelled.
func TestWorkerCancelledJob(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	started := make(chan string, 1)
	cause := make(chan error, 1)
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"q"}, Lease: 300 * time.Millisecond, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("h", func(ctx context.Context, task *client.Task) error {
		started <- task.ID
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	})
	startWorker(t, w)
	id := must[string](t)(producer.Push(bg, "q", "h", nil, nil))
	<-started
	if !must[bool](t)(producer.Cancel(bg, id)) {
		t.Fatal("cancel said 0")
	}
	select {
	case err := <-cause:
		if !errors.Is(err, client.ErrJobCancelled) {
			t.Fatalf("cause %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
	time.Sleep(50 * time.Millisecond) // let the worker settle the job, wrongly or not
	j := must[*client.Job](t)(producer.Get(bg, id))
	check.Field(t, "job's State", j.State, client.StateCancelled)
	check.Field(t, "job's HasLastError", j.HasLastError, false)
}

// A heartbeat keeps a job running through many lease periods: nobody else
// gets it, and it is acked on its first attempt.
func TestHeartbeatKeepsLongJob(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	const lease = 300 * time.Millisecond
	var runs atomic.Int64
	expiries := make(chan time.Time, 100)
	mk := func(name string) *client.Worker {
		w := client.NewWorker(ts.client(t), client.WorkerOptions{ID: name, Queues: []string{"q"}, Lease: lease, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
		w.Handle("long", func(ctx context.Context, task *client.Task) error {
			runs.Add(1)
			end := time.Now().Add(5 * lease)
			for time.Now().Before(end) {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				if j, err := producer.Get(bg, task.ID); err == nil {
					expiries <- j.ExpiresAt
				}
				time.Sleep(lease / 4)
			}
			return nil
		})
		return w
	}
	startWorker(t, mk("a"))
	startWorker(t, mk("b"))
	id := must[string](t)(producer.Push(bg, "q", "long", nil, nil))
	var j *client.Job
	eventually(t, "the long job settles", func() bool {
		j = must[*client.Job](t)(producer.Get(bg, id))
		return j.State.Terminal()
	})
	check.Field(t, "job's State", j.State, client.StateSucceeded)
	check.Field(t, "job's Attempt", j.Attempt, 1)
	check.Field(t, "runs", runs.Load(), 1)
	close(expiries)
	var first, last time.Time
	for e := range expiries {
		if first.IsZero() {
			first = e
		}
		last = e
	}
	if !last.After(first.Add(2 * lease)) {
		t.Fatalf("the lease was not extended: first expiry %v, last %v", first, last)
	}
}

// Shutdown stops reserving, releases prefetched jobs, and waits for the
// running ones, which are acked.
func TestShutdownDrains(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	var ids []string
	for range 6 {
		ids = append(ids, must[string](t)(producer.Push(bg, "q", "h", nil, nil)))
	}
	running := make(chan string, 6)
	finish := make(chan struct{})
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"q"}, Concurrency: 2, Prefetch: 3,
		Lease: time.Minute, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("h", func(ctx context.Context, task *client.Task) error {
		running <- task.ID
		<-finish
		return nil
	})
	startWorker(t, w)
	started := map[string]bool{<-running: true, <-running: true}
	eventually(t, "the worker prefetches", func() bool {
		st := must[*client.QueueStats](t)(producer.QueueStats(bg, "q"))
		return st.Running == 2 && st.Reserved == 3 && st.Queued == 1
	})

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		defer cancel()
		shut <- w.Shutdown(ctx)
	}()
	eventually(t, "prefetched jobs are released", func() bool {
		st := must[*client.QueueStats](t)(producer.QueueStats(bg, "q"))
		return st.Reserved == 0 && st.Queued == 4 && st.Running == 2
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with handlers running", err)
	default:
	}
	close(finish)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, id := range ids {
		j := must[*client.Job](t)(producer.Get(bg, id))
		switch {
		case started[id] && j.State != client.StateSucceeded,
			!started[id] && (j.State != client.StateQueued || j.Attempt != 0):
			t.Errorf("job %s (started %v): %s, attempt %d", id, started[id], j.State, j.Attempt)
		}
	}
	// Nothing is reserved once the worker is down.
	must[string](t)(producer.Push(bg, "q", "h", nil, nil))
	time.Sleep(300 * time.Millisecond)
	if st := must[*client.QueueStats](t)(producer.QueueStats(bg, "q")); st.Queued != 5 || len(running) != 0 {
		t.Fatalf("after shutdown: %+v, %d more ran", st, len(running))
	}
}

// Past the shutdown deadline a handler's context is cancelled with
// ErrWorkerStopped and its job is not failed: it returns to the queue when
// the lease expires.
func TestShutdownDeadline(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	id := must[string](t)(producer.Push(bg, "q", "h", nil, nil))
	started := make(chan struct{})
	cause := make(chan error, 1)
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"q"}, Lease: 500 * time.Millisecond, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("h", func(ctx context.Context, task *client.Task) error {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	})
	startWorker(t, w)
	<-started
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if err := w.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-cause; !errors.Is(err, client.ErrWorkerStopped) {
		t.Fatalf("cause %v", err)
	}
	var j *client.Job
	eventually(t, "the lease expires", func() bool {
		j = must[*client.Job](t)(producer.Get(bg, id))
		return j.State != client.StateRunning
	})
	check.Field(t, "job's State", j.State, client.StateQueued)
	check.Field(t, "job's HasLastError", j.HasLastError, false)
}

// partition is a dialer whose connections can all be cut, like a network
// failure between one worker and the server.
type partition struct {
	mu    sync.Mutex // protects cut and conns
	cut   bool
	conns []net.Conn
}

func (p *partition) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return nil, errors.New("partitioned")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		p.conns = append(p.conns, c)
	}
	return c, err
}

func (p *partition) set(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// A worker that cannot reach the server cancels its handler with
// ErrLeaseLost once its lease must have run out; the server gives the job
// to another worker.
func TestLeaseLostCancelsHandler(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	const lease = 400 * time.Millisecond
	var p partition
	cut := ts.client(t, func(o *client.Options) {
		o.ReadTimeout = 100 * time.Millisecond
		o.Redis = func(ro *redis.Options) { ro.Dialer = p.dial }
	})
	started := make(chan string, 1)
	cause := make(chan error, 1)
	a := client.NewWorker(cut, client.WorkerOptions{ID: "a", Queues: []string{"q"}, Lease: lease, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	a.Handle("h", func(ctx context.Context, task *client.Task) error {
		started <- task.ID
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	})
	startWorker(t, a)
	id := must[string](t)(producer.Push(bg, "q", "h", nil, nil))
	<-started
	p.set(true)
	select {
	case err := <-cause:
		if !errors.Is(err, client.ErrLeaseLost) {
			t.Fatalf("cause %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not cancelled")
	}

	ran := make(chan *client.Task, 1)
	b := client.NewWorker(ts.client(t), client.WorkerOptions{ID: "b", Queues: []string{"q"}, Lease: lease, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	b.Handle("h", func(ctx context.Context, task *client.Task) error { ran <- task; return nil })
	startWorker(t, b)
	task := <-ran
	check.Field(t, "b ran: ID", task.ID, id)
	check.Field(t, "b ran: Attempt", task.Attempt, 2)
	eventually(t, "b acks", func() bool {
		return must[*client.Job](t)(producer.Get(bg, id)).State == client.StateSucceeded
	})
}

// A worker process killed in the middle of a job: the job runs again, on
// another worker, once the lease expires.
func TestKilledWorkerJobRunsAgain(t *testing.T) {
	if os.Getenv("SLUICE_HELPER_ADDR") != "" {
		t.Skip("helper process")
	}
	ts := startServer(t)
	producer := ts.client(t)
	id := must[string](t)(producer.Push(bg, "q", "h", []byte("work"), nil))

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "SLUICE_HELPER_ADDR="+ts.addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "started "+id) {
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	j := must[*client.Job](t)(producer.Get(bg, id))
	check.Field(t, "before the kill: State", j.State, client.StateRunning)
	check.Field(t, "before the kill: Worker", j.Worker, "doomed")
	if t.Failed() {
		t.FailNow()
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}

	ran := make(chan *client.Task, 1)
	w := client.NewWorker(ts.client(t), client.WorkerOptions{ID: "survivor", Queues: []string{"q"}, Block: 100 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("h", func(ctx context.Context, task *client.Task) error { ran <- task; return nil })
	startWorker(t, w)
	task := <-ran
	check.Field(t, "survivor ran: ID", task.ID, id)
	check.Field(t, "survivor ran: Attempt", task.Attempt, 2)
	check.Field(t, "survivor ran: Payload", string(task.Payload), "work")
	eventually(t, "the survivor acks", func() bool {
		return must[*client.Job](t)(producer.Get(bg, id)).State == client.StateSucceeded
	})
}

// TestHelperWorkerProcess is the worker that TestKilledWorkerJobRunsAgain
// kills; it does nothing unless started by that test.
func TestHelperWorkerProcess(t *testing.T) {
	addr := os.Getenv("SLUICE_HELPER_ADDR")
	if addr == "" {
		t.Skip("run by TestKilledWorkerJobRunsAgain")
	}
	c := client.New(client.Options{Addr: addr})
	w := client.NewWorker(c, client.WorkerOptions{ID: "doomed", Queues: []string{"q"}, Lease: 500 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("h", func(ctx context.Context, task *client.Task) error {
		fmt.Printf("started %s\n", task.ID)
		select {} // until killed
	})
	_ = w.Run(context.Background())
}

// A handler that meets an overloaded upstream returns WithThrottle: the
// worker holds every job of the key for the while given, and the job runs
// again after it.
func TestWorkerThrottle(t *testing.T) {
	ts := startServer(t)
	producer := ts.client(t)
	const hold = 300 * time.Millisecond
	var mu sync.Mutex
	var runs []time.Time
	w := client.NewWorker(ts.client(t), client.WorkerOptions{Queues: []string{"q"}, Concurrency: 2, Block: 50 * time.Millisecond, Logger: quietLogger(t)})
	w.Handle("api", func(ctx context.Context, task *client.Task) error {
		mu.Lock()
		runs = append(runs, time.Now())
		first := len(runs) == 1
		mu.Unlock()
		if first {
			return client.WithThrottle(errors.New("429"), "upstream", hold)
		}
		return nil
	})
	first := must[string](t)(producer.Push(bg, "q", "api", nil, &client.PushOptions{RateLimit: "upstream", MaxAttempts: 3}))
	startWorker(t, w)
	eventually(t, "the first run", func() bool { mu.Lock(); defer mu.Unlock(); return len(runs) == 1 })
	var p *client.Policy
	eventually(t, "the throttle", func() bool {
		var err error
		p, err = producer.PolicyGet(bg, client.Throttle, "upstream")
		return err == nil
	})
	if p.Kind != client.Throttle || p.NextFreeAt.IsZero() {
		t.Fatalf("POLICYGET THROTTLE = %+v", p)
	}
	other := must[string](t)(producer.Push(bg, "q", "api", nil, &client.PushOptions{RateLimit: "upstream"}))
	for _, id := range []string{first, other} {
		eventually(t, id+" succeeds", func() bool {
			return must[*client.Job](t)(producer.Get(bg, id)).State == client.StateSucceeded
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for i, at := range runs[1:] {
		if at.Before(p.NextFreeAt.Add(-5 * time.Millisecond)) { // the server's and this clock are the same one
			t.Errorf("run %d at %v, the throttle ends at %v", i+2, at, p.NextFreeAt)
		}
	}
}
