package client

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoCron is returned by CronGet when no such periodic entry exists.
var ErrNoCron = errors.New("sluice: no such periodic entry")

// CronOptions are CRONSET's optional arguments: the time zone the schedule
// is read in and the options of the job each tick pushes. The zero value
// reads the schedule in UTC and pushes jobs with the server's defaults.
type CronOptions struct {
	TZ          string // IANA time zone, e.g. "Europe/Berlin"; empty: UTC
	Priority    int64
	Concurrency string        // concurrency key; empty: none
	RateLimit   string        // rate-limit key; empty: none
	MaxAttempts int64         // > 0: failed attempts allowed; server default 1
	Backoff     time.Duration // > 0: base of the exponential retry delay; server default 1 s
	Expires     time.Duration // > 0: a job still waiting this long after its tick expires
	Timeout     time.Duration // > 0: each reservation of a job may last this long
}

// Cron is a periodic entry (CRONGET, CRONLIST).
type Cron struct {
	Name, Schedule, TZ string
	Queue, Handler     string
	Payload            []byte
	Priority           int64
	Concurrency        string
	RateLimit          string
	MaxAttempts        int64
	Backoff            time.Duration
	NextRunAt          time.Time // the next tick; zero if the schedule has no more
	LastRunAt          time.Time // the tick of the last job pushed; zero if none yet
	Fired              int64     // jobs pushed
	Missed             int64     // misfires (ticks skipped after downtime) and refused ticks
	Expires            time.Duration
	Timeout            time.Duration
}

// CronSet creates or replaces the periodic entry name: each tick of
// schedule (cron syntax, five fields, or a descriptor such as "@every 30s"
// or "@hourly") pushes one job for handler on queue. It reports whether
// the entry is new. opts may be nil.
func (c *Client) CronSet(ctx context.Context, name, schedule, queue, handler string, payload []byte, opts *CronOptions) (bool, error) {
	args := []any{"CRONSET", name, schedule, queue, handler, payload}
	if o := opts; o != nil {
		if o.TZ != "" {
			args = append(args, "TZ", o.TZ)
		}
		if o.Priority != 0 {
			args = append(args, "PRIORITY", o.Priority)
		}
		if o.Concurrency != "" {
			args = append(args, "CONCURRENCY", o.Concurrency)
		}
		if o.RateLimit != "" {
			args = append(args, "RATELIMIT", o.RateLimit)
		}
		if o.MaxAttempts > 0 {
			args = append(args, "MAXATTEMPTS", o.MaxAttempts)
		}
		if o.Backoff > 0 {
			args = append(args, "BACKOFF", ms(o.Backoff))
		}
		if o.Expires > 0 {
			args = append(args, "EXPIRES", ms(o.Expires))
		}
		if o.Timeout > 0 {
			args = append(args, "TIMEOUT", ms(o.Timeout))
		}
	}
	n, err := c.doInt(ctx, args...)
	return n == 1, err
}

// CronDel deletes a periodic entry and reports whether there was one.
func (c *Client) CronDel(ctx context.Context, name string) (bool, error) {
	n, err := c.doInt(ctx, "CRONDEL", name)
	return n == 1, err
}

// CronGet returns a periodic entry, or ErrNoCron.
func (c *Client) CronGet(ctx context.Context, name string) (*Cron, error) {
	v, err := c.do(ctx, "CRONGET", name)
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoCron
	}
	if err != nil {
		return nil, err
	}
	return decodeCron("CRONGET", v)
}

// CronList returns every periodic entry, sorted by name.
func (c *Client) CronList(ctx context.Context) ([]Cron, error) {
	v, err := c.do(ctx, "CRONLIST")
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, unexpected("CRONLIST", v)
	}
	out := make([]Cron, 0, len(arr))
	for _, item := range arr {
		e, err := decodeCron("CRONLIST", item)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, nil
}

func decodeCron(cmd string, v any) (*Cron, error) {
	r := newReply(cmd, v)
	e := &Cron{
		Name: r.str("name"), Schedule: r.str("schedule"), TZ: r.str("tz"),
		Queue: r.str("queue"), Handler: r.str("handler"), Payload: []byte(r.str("payload")),
		Priority: r.int("priority"), Concurrency: r.str("concurrency_key"), RateLimit: r.str("rate_limit_key"),
		MaxAttempts: r.int("max_attempts"), Backoff: time.Duration(r.int("backoff")) * time.Millisecond,
		Expires: time.Duration(r.int("expires")) * time.Millisecond, Timeout: time.Duration(r.int("timeout")) * time.Millisecond,
		NextRunAt: r.time("next_run_at"), LastRunAt: r.time("last_run_at"),
		Fired: r.int("fired"), Missed: r.int("missed"),
	}
	if r.err != nil {
		return nil, r.err
	}
	return e, nil
}
