package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
)

// Why a handler's context was cancelled; read it with context.Cause.
var (
	// ErrJobCancelled: the job was cancelled on the server (JOBCANCEL). The
	// worker neither acks nor fails it.
	ErrJobCancelled = errors.New("sluice: the job was cancelled")
	// ErrLeaseLost: the lease expired or is no longer the job's current
	// reservation, so another worker may be running the job. The worker
	// neither acks nor fails it.
	ErrLeaseLost = errors.New("sluice: the job's lease was lost")
	// ErrWorkerStopped: the worker's shutdown deadline passed. A handler
	// that then returns an error leaves its job to lease expiry (the
	// attempt is not failed); one that returns nil is acked.
	ErrWorkerStopped = errors.New("sluice: the worker stopped before the job finished")
)

// Task is the job a handler runs.
type Task struct {
	ID       string
	Queue    string
	Handler  string
	Payload  []byte
	Priority int64
	Attempt  int64  // this run's attempt number (1 for the first run)
	Token    string // the reservation; the worker acks or fails it

	c      *Client    // for Progress
	mu     sync.Mutex // protects result, hasResult
	result []byte     // SetResult's, sent with the ack (results.go)
	hasRes bool
}

// Handler runs one job. Returning nil acks it; returning an error fails the
// attempt with the error's text (see WithRetry to choose when it runs
// again). A panic fails the attempt with the panic value and its stack.
// ctx is cancelled when the job is cancelled, its lease is lost or the
// worker's shutdown deadline passes; context.Cause(ctx) says which.
type Handler func(ctx context.Context, t *Task) error

// WithRetry makes a handler's error fail the job under rule r (RetryIn(d)
// or NoRetry) instead of the server's backoff.
func WithRetry(err error, r RetryRule) error {
	if err == nil {
		return nil
	}
	return &retryError{err: err, rule: r}
}

// WithThrottle makes a handler's error hold every job of key for d (an
// upstream answered 429, say): the worker throttles the key
// (POLICYTHROTTLE, which never cuts a longer throttle short) before it
// fails the attempt, which runs again after d unless err carries a rule of
// its own (WithRetry). The job has started, so it cannot be released.
func WithThrottle(err error, key string, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &throttleError{err: err, key: key, d: d}
}

type throttleError struct {
	err error
	key string
	d   time.Duration
}

func (e *throttleError) Error() string { return e.err.Error() }
func (e *throttleError) Unwrap() error { return e.err }

type retryError struct {
	err  error
	rule RetryRule
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// WorkerOptions configure a Worker. Queues is required.
type WorkerOptions struct {
	ID          string        // worker name shown by JOBGET; default host-pid-random
	Queues      []string      // queues to take from, in order of preference
	RoundRobin  bool          // take from the queues in turn rather than in order (JOBRESERVE ROUNDROBIN)
	Concurrency int           // handlers run at once; default 1
	Lease       time.Duration // lease per reservation, extended at a third of it; default 30 s
	// Prefetch is how many jobs may be reserved beyond free executors, to
	// start the next job without a round trip. Default 0. Prefetched jobs
	// are given back on shutdown; keep it small next to Lease.
	Prefetch int
	// Block is how long each blocking reserve waits on the server; shutdown
	// stops reserving within it. Default 1 s.
	Block time.Duration
	// ShutdownTimeout bounds the drain Run does when its context ends.
	// Default 30 s.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger // default slog.Default()
}

// Worker reserves jobs for its registered handlers and runs them.
type Worker struct {
	c    *Client
	opts WorkerOptions
	log  *slog.Logger

	mu       sync.Mutex         // protects handlers, started, shutErr
	handlers map[string]Handler // read without mu once started
	started  bool
	shutErr  error // what Shutdown returned, for Run

	stop     chan struct{} // closed when shutdown begins: reserve no more
	stopOnce sync.Once
	done     chan struct{} // closed when shutdown has finished (or given up)
	doneOnce sync.Once

	// Set by begin, under mu, before started; fixed afterwards.
	// hctx is the parent of every handler context; abort cancels it at the
	// shutdown deadline.
	hctx        context.Context
	abort       context.CancelCauseFunc
	jobs        chan held      // reserved, waiting for an executor
	slots       chan struct{}  // one token per job the worker may hold
	fetcherDone chan struct{}  // closed when the fetcher has exited
	execWG      sync.WaitGroup // the executors
}

// NewWorker returns a worker that uses c. Register handlers with Handle,
// then call Run.
func NewWorker(c *Client, opts WorkerOptions) *Worker {
	if opts.ID == "" {
		opts.ID = defaultWorkerID()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.Prefetch < 0 {
		opts.Prefetch = 0
	}
	if opts.Block <= 0 {
		opts.Block = time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Worker{
		c: c, opts: opts,
		log:      opts.Logger.With("worker", opts.ID),
		handlers: make(map[string]Handler),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "worker"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ID is the worker's name, as reserved jobs show it.
func (w *Worker) ID() string { return w.opts.ID }

// Handle registers h for jobs pushed with handler name. It panics if name is
// already registered or the worker has started.
func (w *Worker) Handle(name string, h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.started:
		panic("sluice: Worker.Handle called after Run")
	case h == nil:
		panic("sluice: nil handler for " + name)
	case w.handlers[name] != nil:
		panic("sluice: handler " + name + " registered twice")
	}
	w.handlers[name] = h
}

// Run reserves and runs jobs until ctx ends or Shutdown is called. When ctx
// ends, Run shuts down gracefully within ShutdownTimeout. It returns nil
// after a clean shutdown, or the shutdown error when running handlers
// outlived the deadline.
func (w *Worker) Run(ctx context.Context) error {
	names, err := w.begin(ctx)
	if err != nil {
		return err
	}
	go w.fetch(names)
	for range w.opts.Concurrency {
		go w.execute()
	}
	w.log.Info("worker started", "queues", w.opts.Queues, "handlers", names, "concurrency", w.opts.Concurrency)

	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.ShutdownTimeout)
		defer cancel()
		return w.Shutdown(sctx)
	case <-w.done:
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.shutErr
	}
}

// begin checks the setup and makes the worker's channels.
func (w *Worker) begin(ctx context.Context) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.started:
		return nil, errors.New("sluice: Worker.Run called twice")
	case len(w.handlers) == 0:
		return nil, errors.New("sluice: the worker has no handlers")
	case len(w.opts.Queues) == 0:
		return nil, errors.New("sluice: the worker has no queues")
	}
	w.started = true
	names := make([]string, 0, len(w.handlers))
	for n := range w.handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	capacity := w.opts.Concurrency + w.opts.Prefetch
	w.jobs = make(chan held, capacity)
	w.slots = make(chan struct{}, capacity)
	for range capacity {
		w.slots <- struct{}{}
	}
	// Handlers see the values of Run's context but not its end, which only
	// starts a graceful shutdown.
	w.hctx, w.abort = context.WithCancelCause(context.WithoutCancel(ctx))
	// Made before Shutdown can see started, so it may wait on them.
	w.fetcherDone = make(chan struct{})
	w.execWG.Add(w.opts.Concurrency)
	return names, nil
}

// Shutdown stops reserving, gives back jobs reserved but not started, and
// waits for running handlers until ctx ends. Then it cancels their
// contexts with cause ErrWorkerStopped and returns ctx.Err(); their jobs
// are left to lease expiry unless the handlers still return nil.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stop) })
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if !started {
		w.finish(nil)
		return nil
	}
	executors := make(chan struct{})
	go func() { w.execWG.Wait(); close(executors) }()
	for _, ch := range []chan struct{}{w.fetcherDone, executors} {
		select {
		case <-ch:
		case <-w.done: // another Shutdown finished first
			return w.result()
		case <-ctx.Done():
			w.abort(ErrWorkerStopped)
			w.log.Warn("shutdown deadline passed with handlers still running")
			w.finish(ctx.Err())
			return w.result()
		}
	}
	w.abort(ErrWorkerStopped) // releases the context's resources; nothing runs
	w.log.Info("worker stopped")
	w.finish(nil)
	return w.result()
}

func (w *Worker) finish(err error) {
	w.doneOnce.Do(func() {
		w.mu.Lock()
		w.shutErr = err
		w.mu.Unlock()
		close(w.done)
	})
}

func (w *Worker) result() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shutErr
}

func (w *Worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// fetch is the one goroutine that reserves. It asks for as many jobs as
// there are free slots, so the worker never holds a lease it cannot serve
// soon. It owns w.jobs' sending side and, on exit, gives back whatever is
// still waiting there.
func (w *Worker) fetch(handlers []string) {
	defer close(w.fetcherDone)
	defer w.releaseWaiting()
	ctx := context.Background()
	backoff := time.Duration(0)
	for {
		select {
		case <-w.stop:
			return
		case <-w.slots:
		}
		n := 1
	more:
		for n < cap(w.slots) {
			select {
			case <-w.slots:
				n++
			default:
				break more
			}
		}
		res, err := w.c.Reserve(ctx, ReserveOptions{
			Worker: w.opts.ID, Lease: w.opts.Lease, Count: n, Block: w.opts.Block,
			Handlers: handlers, Queues: w.opts.Queues, RoundRobin: w.opts.RoundRobin,
		})
		for range n - len(res) {
			w.slots <- struct{}{}
		}
		if err != nil {
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			w.log.Warn("reserve failed", "err", err, "retry_in", backoff)
			select {
			case <-w.stop:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		now := time.Now()
		for _, r := range res {
			if w.stopping() {
				w.release(r)
				continue
			}
			w.jobs <- held{r, now} // never blocks: a slot was taken for it
		}
	}
}

// releaseWaiting gives back reserved jobs no executor has taken.
func (w *Worker) releaseWaiting() {
	for {
		select {
		case h := <-w.jobs:
			w.release(h.Reservation)
		default:
			return
		}
	}
}

// held is a reservation and when it arrived; the lease runs from about
// then, however long the job waits for an executor.
type held struct {
	Reservation
	at time.Time
}

func (w *Worker) release(r Reservation) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := w.c.Release(ctx, r.Token, 0)
	w.log.Debug("released a job not started", "job", r.ID, "err", err)
	w.slots <- struct{}{}
}

// execute is one executor: it runs reserved jobs one at a time until the
// worker stops.
func (w *Worker) execute() {
	defer w.execWG.Done()
	for {
		select {
		case <-w.stop:
			return
		case h := <-w.jobs:
			if w.stopping() {
				w.release(h.Reservation)
				continue
			}
			w.run(h.Reservation, h.at)
			w.slots <- struct{}{}
		}
	}
}

// run starts, runs and settles one job. received is when the reservation
// arrived; its first heartbeat is due a third of the lease after that.
func (w *Worker) run(r Reservation, received time.Time) {
	log := w.log.With("job", r.ID, "queue", r.Queue, "handler", r.Handler)
	bg := context.Background()
	h := w.handlers[r.Handler]
	if h == nil { // HANDLERS makes this impossible; give it back regardless
		log.Error("reserved a job with no handler")
		_ = w.c.Release(bg, r.Token, w.opts.Lease)
		return
	}
	attempt, err := w.c.Start(bg, r.Token)
	if err != nil {
		log.Warn("cannot start the job", "err", err)
		return
	}
	t := &Task{ID: r.ID, Queue: r.Queue, Handler: r.Handler, Payload: r.Payload,
		Priority: r.Priority, Attempt: attempt, Token: r.Token, c: w.c}

	jctx, cancel := context.WithCancelCause(w.hctx)
	defer cancel(nil)
	hbStop := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		w.heartbeat(r, received, hbStop, cancel, log)
	}()

	herr := call(jctx, h, t)
	close(hbStop)
	<-hbDone

	switch cause := context.Cause(jctx); {
	case errors.Is(cause, ErrJobCancelled), errors.Is(cause, ErrLeaseLost):
		log.Info("job abandoned", "cause", cause, "err", herr)
		return
	case errors.Is(cause, ErrWorkerStopped) && herr != nil:
		log.Warn("job interrupted by shutdown; it runs again when its lease expires", "err", herr)
		return
	}
	if herr == nil {
		if err := t.ack(bg); err != nil {
			log.Error("ack failed", "err", err)
		}
		return
	}
	opts := FailOptions{Error: herr.Error()}
	var re *retryError
	if errors.As(herr, &re) {
		opts.Retry = re.rule
	}
	var te *throttleError
	if errors.As(herr, &te) {
		if _, err := w.c.PolicyThrottle(bg, te.key, te.d); err != nil {
			log.Error("throttle failed", "key", te.key, "err", err)
		}
		if re == nil {
			opts.Retry = RetryIn(te.d)
		}
	}
	if opts.Error == "" {
		opts.Error = fmt.Sprintf("%T", herr)
	}
	state, err := w.c.Fail(bg, r.Token, opts)
	if err != nil {
		log.Error("fail failed", "err", err, "job_err", herr)
		return
	}
	log.Info("job failed", "err", herr, "state", state, "attempt", attempt)
}

// call runs the handler, turning a panic into an error with its stack.
func call(ctx context.Context, h Handler, t *Task) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n\n%s", v, debug.Stack())
		}
	}()
	return h(ctx, t)
}

// heartbeat extends the lease at a third of it until stop is closed, and
// cancels the handler's context when the lease cannot be kept.
func (w *Worker) heartbeat(r Reservation, received time.Time, stop <-chan struct{}, cancel context.CancelCauseFunc, log *slog.Logger) {
	lease := w.opts.Lease
	every := max(lease/3, 10*time.Millisecond)
	// The lease is safe until this local time: the server's expiry is
	// measured from when it handled the request, which is after we sent it.
	safeUntil := received.Add(lease)
	next := received.Add(every)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		sent := time.Now()
		_, err := w.c.Touch(context.Background(), r.Token, lease)
		var se *Error
		switch {
		case err == nil:
			safeUntil = sent.Add(lease)
		case errors.As(err, &se):
			cancel(w.lostCause(r, se))
			log.Info("lease ended", "reply", se.Message)
			return
		case time.Now().After(safeUntil):
			cancel(ErrLeaseLost)
			log.Warn("lease lost: no heartbeat reached the server in time", "err", err)
			return
		default:
			log.Warn("heartbeat failed; retrying", "err", err)
		}
		next = time.Now().Add(min(every, max(time.Until(safeUntil)/2, time.Millisecond)))
		if err == nil {
			next = sent.Add(every)
		}
		timer.Reset(time.Until(next))
	}
}

// lostCause tells a cancelled job from a lost lease after JOBTOUCH refused
// the token.
func (w *Worker) lostCause(r Reservation, e *Error) error {
	if !errors.Is(e, ErrWrongState) {
		return ErrLeaseLost
	}
	if strings.Contains(e.Message, "from cancelled") {
		return ErrJobCancelled
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if j, err := w.c.Get(ctx, r.ID); err == nil && j.State == StateCancelled {
		return ErrJobCancelled
	}
	return ErrLeaseLost
}
