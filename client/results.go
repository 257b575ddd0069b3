package client

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// AckResult marks a job succeeded and keeps result as its result, which
// JOBGET and JOBWAIT (Wait) show for as long as the job is retained. It is
// bounded by the server's --max-payload.
func (c *Client) AckResult(ctx context.Context, token string, result []byte) error {
	if result == nil {
		result = []byte{}
	}
	return c.doOK(ctx, "JOBACK", token, "RESULT", result)
}

// Progress records a reserved or running job's progress (at most 1024
// bytes: a percentage, a short status). It does not extend the lease.
func (c *Client) Progress(ctx context.Context, token string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return c.doOK(ctx, "JOBPROGRESS", token, value)
}

// Outcome is a terminal job as Wait returns it.
type Outcome struct {
	ID           string
	State        State  // succeeded, failed or cancelled
	Result       []byte // JOBACK's RESULT; nil: none
	LastError    string
	HasLastError bool // LastError was given (it may be empty)
}

// Wait blocks until the job is terminal and returns its outcome, or nil
// and no error when timeout (> 0; 0 waits for ever) passes first. An
// unknown job is ErrNoJob. As with a blocking Reserve, the call's deadline
// is timeout plus Options.ReadTimeout's margin, or ctx's if sooner.
func (c *Client) Wait(ctx context.Context, id string, timeout time.Duration) (*Outcome, error) {
	t := int64(0)
	if timeout > 0 {
		t = ms(timeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Millisecond+c.margin)
		defer cancel()
	}
	v, err := c.blk.Do(ctx, "JOBWAIT", id, t).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, wrapErr(err)
	}
	r := newReply("JOBWAIT", v)
	o := &Outcome{ID: r.str("id"), State: State(r.str("state")), LastError: r.str("last_error"),
		HasLastError: r.fields["last_error"] != nil}
	if r.fields["result"] != nil {
		o.Result = []byte(r.str("result"))
	}
	if r.err != nil {
		return nil, r.err
	}
	return o, nil
}

// SetResult makes the worker ack the task with result as its result (see
// Client.AckResult) when the handler returns nil. The last call wins.
func (t *Task) SetResult(result []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.result, t.hasRes = append([]byte{}, result...), true
}

// Progress reports the task's progress to the server (Client.Progress).
func (t *Task) Progress(ctx context.Context, value []byte) error {
	if t.c == nil {
		return errors.New("sluice: the task is not run by a worker")
	}
	return t.c.Progress(ctx, t.Token, value)
}

// ack acks the task, with its result when the handler set one.
func (t *Task) ack(ctx context.Context) error {
	t.mu.Lock()
	result, has := t.result, t.hasRes
	t.mu.Unlock()
	if has {
		return t.c.AckResult(ctx, t.Token, result)
	}
	return t.c.Ack(ctx, t.Token)
}
