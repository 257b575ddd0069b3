package client

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// PolicyKind is a kind of backpressure policy.
type PolicyKind string

// The policy kinds.
const (
	Concurrency PolicyKind = "concurrency"
	RateLimit   PolicyKind = "ratelimit"
	Weight      PolicyKind = "weight"   // a fair group's weight: Limit is the weight
	Throttle    PolicyKind = "throttle" // POLICYGET/POLICYDEL of a key's throttle
	Breaker     PolicyKind = "breaker"  // a circuit breaker; its key is BreakerHandler(h) and the like
)

// Policy is a policy with its live usage (POLICYGET, POLICYLIST).
type Policy struct {
	Kind       PolicyKind
	Key        string
	Limit      int64
	Period     time.Duration // rate limits only
	Active     int64         // active jobs (concurrency) or admissions in the window (rate limit)
	Waiting    int64         // queued jobs the policy refuses now
	NextFreeAt time.Time     // when a full rate window admits again, or a throttle ends; zero otherwise
	Template   string        // the template ("tenant:*") a key's policy comes from; "" for its own

	// A circuit breaker's (Kind Breaker): Limit is its threshold of
	// failures, Period its window, Active the failures in it and
	// NextFreeAt the end of its cooldown while open.
	State     string // BreakerClosed, BreakerOpen or BreakerHalfOpen
	Cooldown  time.Duration
	Probes    int64 // jobs let through while half-open
	ProbesOut int64 // probes reserved and not yet resolved
	ProbesOK  int64 // probes that succeeded in this half-open spell
}

// Circuit breaker states.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// BreakerHandler, BreakerQueue and BreakerKey name the breaker over a
// handler's jobs, a queue's, or those of a concurrency or rate-limit key.
func BreakerHandler(name string) string { return "handler:" + name }
func BreakerQueue(name string) string   { return "queue:" + name }
func BreakerKey(name string) string     { return "key:" + name }

// PolicySetConcurrency caps the active (reserved or running) jobs that
// carry concurrency key key, across all queues, at limit (>= 1). A key
// ending in '*' is a template: every key starting with what precedes the
// '*' gets a cap of limit of its own (the longest template wins, a key's
// own policy wins over any).
func (c *Client) PolicySetConcurrency(ctx context.Context, key string, limit int64) error {
	return c.doOK(ctx, "POLICYSET", "CONCURRENCY", key, limit)
}

// PolicySetRateLimit allows at most limit reservations of jobs that carry
// rate-limit key key in any rolling window of period. A key ending in '*'
// is a template, each key under it with a window of its own.
func (c *Client) PolicySetRateLimit(ctx context.Context, key string, limit int64, period time.Duration) error {
	return c.doOK(ctx, "POLICYSET", "RATELIMIT", key, limit, ms(period))
}

// PolicySetWeight gives fair group group weight n (1 to 1000) in every
// queue: while backlogged, it is served n times as often as a group of
// weight 1.
func (c *Client) PolicySetWeight(ctx context.Context, group string, n int64) error {
	return c.doOK(ctx, "POLICYSET", "WEIGHT", group, n)
}

// PolicySetBreaker sets a circuit breaker on target (BreakerHandler,
// BreakerQueue or BreakerKey): failures attempts failing (JOBFAIL or an
// expired lease) within window open it for cooldown, during which its jobs
// stay queued; then probes jobs may go, and it closes when they all
// succeed or opens again when one fails. Setting it again starts it
// closed.
func (c *Client) PolicySetBreaker(ctx context.Context, target string, failures int64, window, cooldown time.Duration, probes int64) error {
	return c.doOK(ctx, "POLICYSET", "BREAKER", target, failures, ms(window), ms(cooldown), probes)
}

// PolicyThrottle stops every admission under key (as a concurrency or a
// rate-limit key) for d, unless a throttle in force ends later, and
// returns when the key's throttle ends; d of 0 lifts it (zero Time).
func (c *Client) PolicyThrottle(ctx context.Context, key string, d time.Duration) (time.Time, error) {
	n, err := c.doInt(ctx, "POLICYTHROTTLE", key, ms(d))
	if err != nil || n == 0 {
		return time.Time{}, err
	}
	return time.UnixMilli(n), nil
}

// PolicyDel deletes a policy (or lifts a throttle) and reports whether
// there was one.
func (c *Client) PolicyDel(ctx context.Context, kind PolicyKind, key string) (bool, error) {
	n, err := c.doInt(ctx, "POLICYDEL", string(kind), key)
	return n == 1, err
}

// PolicyGet returns a policy, or ErrNoPolicy.
func (c *Client) PolicyGet(ctx context.Context, kind PolicyKind, key string) (*Policy, error) {
	v, err := c.do(ctx, "POLICYGET", string(kind), key)
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoPolicy
	}
	if err != nil {
		return nil, err
	}
	return decodePolicy("POLICYGET", v)
}

// PolicyList returns every policy, sorted by kind then key.
func (c *Client) PolicyList(ctx context.Context) ([]Policy, error) {
	v, err := c.do(ctx, "POLICYLIST")
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, unexpected("POLICYLIST", v)
	}
	out := make([]Policy, 0, len(arr))
	for _, item := range arr {
		p, err := decodePolicy("POLICYLIST", item)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

func decodePolicy(cmd string, v any) (*Policy, error) {
	r := newReply(cmd, v)
	p := &Policy{
		Kind:       PolicyKind(r.str("kind")),
		Key:        r.str("key"),
		Limit:      r.int("limit"),
		Period:     time.Duration(r.int("period")) * time.Millisecond,
		Active:     r.int("active"),
		Waiting:    r.int("waiting"),
		NextFreeAt: r.time("next_free_at"),
		Template:   r.str("template"),
		State:      r.str("state"),
		Cooldown:   time.Duration(r.int("cooldown")) * time.Millisecond,
		Probes:     r.int("probes"),
		ProbesOut:  r.int("probes_out"),
		ProbesOK:   r.int("probes_ok"),
	}
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}
