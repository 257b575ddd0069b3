package client

import "context"

// QueueStats is QUEUESTATS's reply.
type QueueStats struct {
	Queue              string
	Status             string // "paused", "throttled", "active" or "idle"
	Queued             int64
	Scheduled          int64
	Reserved           int64
	Running            int64
	RetryPending       int64
	Failed             int64
	BlockedConcurrency int64 // queued jobs a concurrency policy refuses now
	BlockedRateLimit   int64 // queued jobs a rate limit refuses now
	Paused             bool
	PushedTotal        int64
	SucceededTotal     int64
	FailedTotal        int64
	Expired            int64 // expired jobs held
}

// QueueLen returns how many jobs of queue are queued.
func (c *Client) QueueLen(ctx context.Context, queue string) (int64, error) {
	return c.doInt(ctx, "QUEUELEN", queue)
}

// QueueStats returns a queue's counts and status (all zero, "idle", for a
// queue the server does not know).
func (c *Client) QueueStats(ctx context.Context, queue string) (*QueueStats, error) {
	v, err := c.do(ctx, "QUEUESTATS", queue)
	if err != nil {
		return nil, err
	}
	r := newReply("QUEUESTATS", v)
	s := &QueueStats{
		Queue:              r.str("queue"),
		Status:             r.str("status"),
		Queued:             r.int("queued"),
		Scheduled:          r.int("scheduled"),
		Reserved:           r.int("reserved"),
		Running:            r.int("running"),
		RetryPending:       r.int("retry_pending"),
		Failed:             r.int("failed"),
		BlockedConcurrency: r.int("blocked_concurrency"),
		BlockedRateLimit:   r.int("blocked_ratelimit"),
		Paused:             r.int("paused") != 0,
		PushedTotal:        r.int("pushed_total"),
		SucceededTotal:     r.int("succeeded_total"),
		FailedTotal:        r.int("failed_total"),
		Expired:            r.int("expired"),
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// Queues lists the queues that hold any job, sorted.
func (c *Client) Queues(ctx context.Context) ([]string, error) {
	v, err := c.do(ctx, "QUEUES")
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, unexpected("QUEUES", v)
	}
	out := make([]string, len(arr))
	for i, q := range arr {
		if out[i], ok = q.(string); !ok {
			return nil, unexpected("QUEUES", v)
		}
	}
	return out, nil
}

// Pause stops reservations from queue; pushes are still accepted.
func (c *Client) Pause(ctx context.Context, queue string) error {
	return c.doOK(ctx, "QUEUEPAUSE", queue)
}

// Resume lets reservations take from a paused queue again.
func (c *Client) Resume(ctx context.Context, queue string) error {
	return c.doOK(ctx, "QUEUERESUME", queue)
}

// Peek lists up to count queued jobs (count <= 0: the server's default of
// 10; the server refuses more than 1000) in the order Reserve would take
// them if no policy blocked anything.
func (c *Client) Peek(ctx context.Context, queue string, count int) ([]Job, error) {
	args := []any{"QUEUEPEEK", queue}
	if count > 0 {
		args = append(args, "COUNT", count)
	}
	v, err := c.do(ctx, args...)
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, unexpected("QUEUEPEEK", v)
	}
	out := make([]Job, 0, len(arr))
	for _, item := range arr {
		j, err := decodeJob("QUEUEPEEK", item)
		if err != nil {
			return nil, err
		}
		out = append(out, *j)
	}
	return out, nil
}

// Purge cancels every queued and scheduled job of queue and returns how
// many.
func (c *Client) Purge(ctx context.Context, queue string) (int64, error) {
	return c.doInt(ctx, "QUEUEPURGE", queue)
}
