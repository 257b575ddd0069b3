package client

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// State is a job's lifecycle state (PROTOCOL.md "Job lifecycle").
type State string

// The job states.
const (
	StateScheduled    State = "scheduled"
	StateQueued       State = "queued"
	StateReserved     State = "reserved"
	StateRunning      State = "running"
	StateSucceeded    State = "succeeded"
	StateFailed       State = "failed"
	StateRetryPending State = "retry_pending"
	StateCancelled    State = "cancelled"
	StateExpired      State = "expired" // its deadline came before a reservation
	StateWaiting      State = "waiting" // it waits for the jobs it was pushed after (PushOptions.After)
)

// Terminal reports whether nothing more happens to a job in state s on its
// own (a failed job may still be revived with Retry, or cancelled).
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled || s == StateExpired
}

// PushOptions are JOBPUSH's optional arguments. The zero value pushes a job
// with the server's defaults.
type PushOptions struct {
	ID          string // job id; empty: the server generates one
	Priority    int64  // higher runs first; default 0
	Concurrency string // concurrency key; empty: none
	RateLimit   string // rate-limit key; empty: none
	// MoreConcurrency and MoreRateLimit are further keys after
	// Concurrency and RateLimit (at most 4 of a kind in all, none twice):
	// the job is reserved only when every one of its keys admits it.
	MoreConcurrency []string
	MoreRateLimit   []string
	Delay           time.Duration // > 0: scheduled this long from now
	At              time.Time     // non-zero: scheduled at this time (not with Delay)
	MaxAttempts     int64         // > 0: failed attempts allowed; server default 1
	Backoff         time.Duration // > 0: base of the exponential retry delay; server default 1 s
	// IdempotencyKey, if set, makes the push safe to send again: a repeat
	// within the server's --idempotency-window creates nothing and returns
	// the first push's id.
	IdempotencyKey string
	// Group is the job's fair group: among a queue's eligible jobs of one
	// priority, reservations rotate between groups (weighed by
	// PolicySetWeight). Empty: the default group.
	Group string
	// A job still waiting for a reservation at its deadline ends
	// expired: Expires after the push, or at Deadline (not both).
	Expires  time.Duration
	Deadline time.Time
	// Timeout, when > 0, bounds each reservation: past it the attempt
	// fails with error "timeout", whatever the lease.
	Timeout time.Duration
	// Unique, if set, makes the job hold a unique key (UNIQUE): while it
	// does, a push of the same key does what OnDuplicate says. Not with
	// IdempotencyKey.
	Unique *Unique
	// After names jobs (at most 64) that must succeed before this one is
	// queued: until then it is waiting. A dependency that ends without
	// success cancels it, unless AfterAnyway: then it runs anyway.
	After       []string
	AfterAnyway bool
	// Batch, if set, makes the job one of that open batch's (BatchOpen).
	Batch string
}

// Unique is JOBPUSH's UNIQUE key and its options.
type Unique struct {
	Key string
	// Scope is how long the job holds the key: "queued", "active" or
	// "until-terminal"; empty: the server's default, until-terminal.
	Scope string
	// TTL > 0 lets the key go after this long at the latest.
	TTL time.Duration
	// OnDuplicate is what a push of a held key does: "keep" (the
	// default: returns the holder's id), "reject" (ErrDupKey), "replace"
	// or "extend" (debounce).
	OnDuplicate string
}

// Push enqueues a job for handler on queue and returns its id. opts may be
// nil.
func (c *Client) Push(ctx context.Context, queue, handler string, payload []byte, opts *PushOptions) (string, error) {
	args := []any{"JOBPUSH", queue, handler, payload}
	if o := opts; o != nil {
		if o.ID != "" {
			args = append(args, "ID", o.ID)
		}
		if o.Priority != 0 {
			args = append(args, "PRIORITY", o.Priority)
		}
		if o.Concurrency != "" {
			args = append(args, "CONCURRENCY", o.Concurrency)
		}
		for _, k := range o.MoreConcurrency {
			args = append(args, "CONCURRENCY", k)
		}
		if o.RateLimit != "" {
			args = append(args, "RATELIMIT", o.RateLimit)
		}
		for _, k := range o.MoreRateLimit {
			args = append(args, "RATELIMIT", k)
		}
		if o.Delay > 0 {
			args = append(args, "DELAY", ms(o.Delay))
		}
		if !o.At.IsZero() {
			args = append(args, "AT", o.At.UnixMilli())
		}
		if o.MaxAttempts > 0 {
			args = append(args, "MAXATTEMPTS", o.MaxAttempts)
		}
		if o.Backoff > 0 {
			args = append(args, "BACKOFF", ms(o.Backoff))
		}
		if o.IdempotencyKey != "" {
			args = append(args, "IDEMPOTENCY", o.IdempotencyKey)
		}
		if o.Group != "" {
			args = append(args, "GROUP", o.Group)
		}
		if o.Expires > 0 {
			args = append(args, "EXPIRES", ms(o.Expires))
		}
		if !o.Deadline.IsZero() {
			args = append(args, "DEADLINE", o.Deadline.UnixMilli())
		}
		if o.Timeout > 0 {
			args = append(args, "TIMEOUT", ms(o.Timeout))
		}
		if u := o.Unique; u != nil {
			args = append(args, "UNIQUE", u.Key)
			if u.Scope != "" {
				args = append(args, "SCOPE", u.Scope)
			}
			if u.TTL > 0 {
				args = append(args, "TTL", ms(u.TTL))
			}
			if u.OnDuplicate != "" {
				args = append(args, "ON-DUPLICATE", u.OnDuplicate)
			}
		}
		if len(o.After) > 0 {
			args = append(args, "AFTER", len(o.After))
			for _, id := range o.After {
				args = append(args, id)
			}
		}
		if o.AfterAnyway {
			args = append(args, "ANYWAY")
		}
		if o.Batch != "" {
			args = append(args, "BATCH", o.Batch)
		}
	}
	v, err := c.do(ctx, args...)
	if err != nil {
		return "", err
	}
	id, ok := v.(string)
	if !ok {
		return "", unexpected("JOBPUSH", v)
	}
	return id, nil
}

// BlockForever makes Reserve wait until a job is eligible (BLOCK 0).
const BlockForever time.Duration = -1

// ReserveOptions are JOBRESERVE's arguments.
type ReserveOptions struct {
	Worker   string        // required: who holds the lease (shown by JOBGET)
	Lease    time.Duration // required: how long the reservation lasts without a Touch
	Count    int           // > 0: reserve up to this many jobs; default 1
	Block    time.Duration // > 0: wait this long for work; BlockForever: wait forever; 0: do not wait
	Handlers []string      // non-empty: only jobs for these handlers
	Queues   []string      // required: queues to take from, in order of preference
	// RoundRobin starts with the queue after the one that last gave this
	// worker id a job under RoundRobin, and takes one job per queue in turn.
	RoundRobin bool
}

// Reservation is one job leased by Reserve.
type Reservation struct {
	Token     string // the lease; pass it to Start, Touch, Ack, Fail, Release
	ID        string
	Queue     string
	Handler   string
	Payload   []byte
	Priority  int64
	Attempt   int64     // attempts made before this reservation
	ExpiresAt time.Time // when the lease runs out unless touched
}

// Reserve leases up to opts.Count eligible jobs. It returns an empty slice
// and no error when nothing was eligible (within opts.Block).
//
// A blocking Reserve is not cut short by Options.ReadTimeout: its deadline is
// opts.Block plus that timeout (or ctx's deadline, if sooner). Cancelling ctx
// without a deadline does not interrupt a call already waiting on the
// server; keep Block short where prompt cancellation matters.
func (c *Client) Reserve(ctx context.Context, opts ReserveOptions) ([]Reservation, error) {
	args := []any{"JOBRESERVE", opts.Worker, ms(opts.Lease)}
	if opts.Count > 0 {
		args = append(args, "COUNT", opts.Count)
	}
	rdb := c.rdb
	if opts.Block != 0 {
		rdb = c.blk
		block := int64(0)
		if opts.Block > 0 {
			block = ms(opts.Block)
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(block)*time.Millisecond+c.margin)
			defer cancel()
		}
		args = append(args, "BLOCK", block)
	}
	if len(opts.Handlers) > 0 {
		args = append(args, "HANDLERS", len(opts.Handlers))
		for _, h := range opts.Handlers {
			args = append(args, h)
		}
	}
	if opts.RoundRobin {
		args = append(args, "ROUNDROBIN")
	}
	args = append(args, "QUEUES")
	for _, q := range opts.Queues {
		args = append(args, q)
	}
	v, err := rdb.Do(ctx, args...).Result()
	if errors.Is(err, redis.Nil) {
		return []Reservation{}, nil
	}
	if err != nil {
		return nil, wrapErr(err)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, unexpected("JOBRESERVE", v)
	}
	out := make([]Reservation, 0, len(arr))
	for _, item := range arr {
		r := newReply("JOBRESERVE", item)
		res := Reservation{
			Token:     r.str("token"),
			ID:        r.str("id"),
			Queue:     r.str("queue"),
			Handler:   r.str("handler"),
			Payload:   []byte(r.str("payload")),
			Priority:  r.int("priority"),
			Attempt:   r.int("attempt"),
			ExpiresAt: r.time("expires_at"),
		}
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, res)
	}
	return out, nil
}

// Start marks a reserved job running and returns its attempt number
// (1 for the first run).
func (c *Client) Start(ctx context.Context, token string) (int64, error) {
	return c.doInt(ctx, "JOBSTART", token)
}

// Touch extends a lease to lease from now and returns the new expiry.
func (c *Client) Touch(ctx context.Context, token string, lease time.Duration) (time.Time, error) {
	n, err := c.doInt(ctx, "JOBTOUCH", token, ms(lease))
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(n), nil
}

// Ack marks a job succeeded.
func (c *Client) Ack(ctx context.Context, token string) error {
	return c.doOK(ctx, "JOBACK", token)
}

// RetryRule says when a failed job may run again. The zero value leaves it
// to the server's exponential backoff.
type RetryRule struct {
	never bool
	in    time.Duration
	set   bool
}

// RetryIn retries the job after d (0: at once), if it has attempts left.
func RetryIn(d time.Duration) RetryRule { return RetryRule{in: d, set: true} }

// NoRetry fails the job for good, whatever attempts it has left.
var NoRetry = RetryRule{never: true}

// FailOptions are JOBFAIL's optional arguments.
type FailOptions struct {
	Error string    // the failure's text, kept as the job's last_error; empty: none
	Retry RetryRule // zero: the server's backoff
}

// Fail records a failed attempt and returns the job's new state
// (StateRetryPending or StateFailed).
func (c *Client) Fail(ctx context.Context, token string, opts FailOptions) (State, error) {
	args := []any{"JOBFAIL", token}
	if opts.Error != "" {
		args = append(args, "ERROR", opts.Error)
	}
	switch {
	case opts.Retry.never:
		args = append(args, "NORETRY")
	case opts.Retry.set:
		args = append(args, "RETRYIN", ms(max(opts.Retry.in, 0)))
	}
	v, err := c.do(ctx, args...)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", unexpected("JOBFAIL", v)
	}
	return State(s), nil
}

// Release gives a reserved (not started) job back without using an
// attempt: queued again at once, or after delay when delay > 0.
func (c *Client) Release(ctx context.Context, token string, delay time.Duration) error {
	if delay > 0 {
		return c.doOK(ctx, "JOBRELEASE", token, "DELAY", ms(delay))
	}
	return c.doOK(ctx, "JOBRELEASE", token)
}

// ReleaseThrottle is Release that also stops every admission under key for
// d, in one step (JOBRELEASE ... THROTTLE): for a worker that learned,
// before starting the job, that the upstream behind key is overloaded. A
// throttle in force that ends later is kept.
func (c *Client) ReleaseThrottle(ctx context.Context, token string, delay time.Duration, key string, d time.Duration) error {
	return c.doOK(ctx, "JOBRELEASE", token, "DELAY", ms(delay), "THROTTLE", key, ms(d))
}

// Cancel cancels a job that has not finished, or a failed one (which then
// leaves the dead letters). It reports false if the job was already
// succeeded, cancelled or expired.
func (c *Client) Cancel(ctx context.Context, id string) (bool, error) {
	n, err := c.doInt(ctx, "JOBCANCEL", id)
	return n == 1, err
}

// Retry queues a failed job again with its attempts reset (and no
// deadline).
func (c *Client) Retry(ctx context.Context, id string) error {
	return c.doOK(ctx, "JOBRETRY", id)
}

// Job is a job's record as JOBGET and QUEUEPEEK show it. Times that the
// server reports as null are zero.
type Job struct {
	ID             string
	Queue          string
	Handler        string
	Payload        []byte
	State          State
	Priority       int64
	ConcurrencyKey string // empty: none
	RateLimitKey   string // empty: none
	// Every key of a kind, the first included, when the job has several
	// of that kind (PushOptions.ConcurrencyKeys); nil otherwise.
	ConcurrencyKeys []string
	RateLimitKeys   []string
	Group           string // the fair group; empty: the default one
	Attempt         int64
	MaxAttempts     int64
	CreatedAt       time.Time
	UpdatedAt       time.Time
	RunAt           time.Time // when it entered, or will enter, queued
	Worker          string    // while reserved or running
	ExpiresAt       time.Time // while reserved or running
	LastError       string
	HasLastError    bool       // LastError was given (it may be empty)
	BlockedBy       *BlockedBy // why a queued job is not being reserved now; nil: it is not blocked
	// BlockedByAll is every key that refuses a job of several keys, when
	// more than one does; BlockedBy is the first of them.
	BlockedByAll []*BlockedBy
	Result       []byte        // JOBACK's RESULT; nil: none
	Progress     []byte        // the last JOBPROGRESS; nil: none
	Deadline     time.Time     // zero: none
	Timeout      time.Duration // zero: none
	// After lists what a waiting job still waits for (BlockedBy names the
	// first, reason BlockedAfter); nil otherwise.
	After []string
}

// Blocked reasons.
const (
	BlockedConcurrency = "concurrency"
	BlockedRateLimit   = "ratelimit"
	BlockedThrottled   = "throttled"
	BlockedBreaker     = "breaker"
	BlockedPaused      = "paused"
	BlockedAfter       = "after" // a waiting job: Key is the first job it still waits for
)

// BlockedBy is a decoded blocked_by field.
type BlockedBy struct {
	Reason string    // BlockedConcurrency, BlockedRateLimit, BlockedThrottled, BlockedBreaker, BlockedPaused or BlockedAfter
	Key    string    // the policy key (concurrency, ratelimit, throttled), the breaker's ("handler:h"), the job waited for (after)
	Active int64     // active jobs for the key (concurrency), probes taken (a half-open breaker)
	Limit  int64     // the policy's limit (concurrency), the breaker's probes (half-open)
	Until  time.Time // when the rate window next admits (ratelimit), the throttle ends (throttled) or an open breaker turns half-open
	Text   string    // the field as the server sent it
}

// Get returns a job's record, or ErrNoJob if the server does not know it.
func (c *Client) Get(ctx context.Context, id string) (*Job, error) {
	v, err := c.do(ctx, "JOBGET", id)
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoJob
	}
	if err != nil {
		return nil, err
	}
	return decodeJob("JOBGET", v)
}

func decodeJob(cmd string, v any) (*Job, error) {
	r := newReply(cmd, v)
	j := &Job{
		ID:             r.str("id"),
		Queue:          r.str("queue"),
		Handler:        r.str("handler"),
		Payload:        []byte(r.str("payload")),
		State:          State(r.str("state")),
		Priority:       r.int("priority"),
		ConcurrencyKey: r.str("concurrency_key"),
		RateLimitKey:   r.str("rate_limit_key"),
		Group:          r.str("group"),
		Attempt:        r.int("attempt"),
		MaxAttempts:    r.int("max_attempts"),
		CreatedAt:      r.time("created_at"),
		UpdatedAt:      r.time("updated_at"),
		RunAt:          r.time("run_at"),
		Worker:         r.str("worker"),
		ExpiresAt:      r.time("expires_at"),
		LastError:      r.str("last_error"),
		HasLastError:   r.fields["last_error"] != nil,
		Deadline:       r.time("deadline"),
		Timeout:        time.Duration(r.int("timeout")) * time.Millisecond,
	}
	j.ConcurrencyKeys = r.strs("concurrency_keys")
	j.RateLimitKeys = r.strs("rate_limit_keys")
	j.After = r.strs("after")
	if r.fields["result"] != nil {
		j.Result = []byte(r.str("result"))
	}
	if r.fields["progress"] != nil {
		j.Progress = []byte(r.str("progress"))
	}
	if b := r.str("blocked_by"); b != "" {
		parts := splitBlocked(b)
		j.BlockedBy = parseBlockedBy(parts[0])
		if len(parts) > 1 {
			for _, p := range parts {
				j.BlockedByAll = append(j.BlockedByAll, parseBlockedBy(p))
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return j, nil
}

// splitBlocked cuts a blocked_by that names several keys (a job of
// several keys refused by more than one) into one reason each: the
// server joins them with ", ", and a reason starts with its kind. It is
// store.SplitBlockedBy's twin: the client imports nothing of the server.
func splitBlocked(s string) []string {
	var out []string
	start := 0
	for i := 0; i+2 < len(s); i++ {
		if s[i] != ',' || s[i+1] != ' ' {
			continue
		}
		rest := s[i+2:]
		for _, p := range []string{"concurrency:", "ratelimit:", "throttled:", "breaker:"} {
			if strings.HasPrefix(rest, p) {
				out = append(out, s[start:i])
				start = i + 2
				break
			}
		}
	}
	return append(out, s[start:])
}

// parseBlockedBy reads "concurrency:<key> <active>/<limit>",
// "ratelimit:<key> until <unix-ms>", "throttled:<key> until <unix-ms>",
// "breaker:<key> open until <unix-ms>", "breaker:<key> half-open probes
// <taken>/<probes>" or "paused". Keys may hold spaces, so
// the numbers are taken from the end. What it cannot read is kept in Text.
func parseBlockedBy(s string) *BlockedBy {
	b := &BlockedBy{Text: s}
	switch {
	case s == BlockedPaused:
		b.Reason = BlockedPaused
	case strings.HasPrefix(s, "after:"):
		b.Reason, b.Key = BlockedAfter, strings.TrimPrefix(s, "after:")
	case strings.HasPrefix(s, "concurrency:"):
		b.Reason = BlockedConcurrency
		rest := strings.TrimPrefix(s, "concurrency:")
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			b.Key = rest[:i]
			if a, l, ok := strings.Cut(rest[i+1:], "/"); ok {
				b.Active, _ = strconv.ParseInt(a, 10, 64)
				b.Limit, _ = strconv.ParseInt(l, 10, 64)
			}
		}
	case strings.HasPrefix(s, "breaker:"):
		b.Reason = BlockedBreaker
		rest := strings.TrimPrefix(s, "breaker:")
		if i := strings.LastIndex(rest, " open until "); i >= 0 {
			b.Key = rest[:i]
			if n, err := strconv.ParseInt(rest[i+len(" open until "):], 10, 64); err == nil {
				b.Until = time.UnixMilli(n)
			}
		} else if i := strings.LastIndex(rest, " half-open probes "); i >= 0 {
			b.Key = rest[:i]
			if a, l, ok := strings.Cut(rest[i+len(" half-open probes "):], "/"); ok {
				b.Active, _ = strconv.ParseInt(a, 10, 64)
				b.Limit, _ = strconv.ParseInt(l, 10, 64)
			}
		}
	case strings.HasPrefix(s, "ratelimit:"), strings.HasPrefix(s, "throttled:"):
		reason, rest, _ := strings.Cut(s, ":")
		b.Reason = reason
		if i := strings.LastIndex(rest, " until "); i >= 0 {
			b.Key = rest[:i]
			if n, err := strconv.ParseInt(rest[i+len(" until "):], 10, 64); err == nil {
				b.Until = time.UnixMilli(n)
			}
		}
	}
	return b
}

// BatchOptions are BatchOpen's optional arguments.
type BatchOptions struct {
	// Callback, when Queue is set, is the job pushed once the closed
	// batch's jobs all ended: always with Always, else only when every
	// one succeeded.
	CallbackQueue, CallbackHandler string
	CallbackPayload                []byte
	Always                         bool
}

// BatchOpen opens a batch; jobs join it with PushOptions.Batch until
// BatchClose. opts may be nil.
func (c *Client) BatchOpen(ctx context.Context, id string, opts *BatchOptions) error {
	args := []any{"BATCHOPEN", id}
	if o := opts; o != nil && o.CallbackQueue != "" {
		args = append(args, "CALLBACK", o.CallbackQueue, o.CallbackHandler, o.CallbackPayload)
		if o.Always {
			args = append(args, "ON", "always")
		}
	}
	_, err := c.do(ctx, args...)
	return err
}

// BatchClose closes a batch: it completes once its jobs all ended.
func (c *Client) BatchClose(ctx context.Context, id string) error {
	_, err := c.do(ctx, "BATCHCLOSE", id)
	return err
}

// Batch is a batch's progress as BATCHGET shows it.
type Batch struct {
	ID                                  string
	State                               string // open, closed or done
	Total, Succeeded, Failed, Cancelled int64
	Expired, Pending                    int64
	Callback                            string // the callback job's id once pushed
	CallbackState                       string // its state, "skipped", "dropped" or empty
	DoneAt                              time.Time
}

// BatchGet returns a batch's progress, or ErrNoBatch if the server does
// not hold it.
func (c *Client) BatchGet(ctx context.Context, id string) (*Batch, error) {
	v, err := c.do(ctx, "BATCHGET", id)
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoBatch
	}
	if err != nil {
		return nil, err
	}
	r := newReply("BATCHGET", v)
	b := &Batch{ID: r.str("id"), State: r.str("state"), Total: r.int("total"), Succeeded: r.int("succeeded"),
		Failed: r.int("failed"), Cancelled: r.int("cancelled"), Expired: r.int("expired"), Pending: r.int("pending"),
		Callback: r.str("callback"), CallbackState: r.str("callback_state"), DoneAt: r.time("done_at")}
	if r.err != nil {
		return nil, r.err
	}
	return b, nil
}
