package client

import (
	"context"
	"iter"
)

// ScanFilter selects jobs for Scan and Bulk; empty fields select any.
// Error and Match are glob patterns (as SCAN's MATCH) on the last error
// and on the id.
type ScanFilter struct {
	Queue   string
	State   State
	Handler string
	Group   string
	Error   string
	Match   string
}

func (f ScanFilter) args() []any {
	var out []any
	for _, o := range []struct{ token, v string }{
		{"QUEUE", f.Queue}, {"STATE", string(f.State)}, {"HANDLER", f.Handler},
		{"GROUP", f.Group}, {"ERROR", f.Error}, {"MATCH", f.Match},
	} {
		if o.v != "" {
			out = append(out, o.token, o.v)
		}
	}
	return out
}

// Scan iterates over the ids of the jobs matching f (JOBSCAN), count per
// call (0: the server's default). As with SCAN, a job that matches for the
// whole iteration is yielded at least once, possibly more. An error ends
// the iteration, yielded with an empty id.
func (c *Client) Scan(ctx context.Context, f ScanFilter, count int) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		cursor := "0"
		for {
			args := append([]any{"JOBSCAN", cursor}, f.args()...)
			if count > 0 {
				args = append(args, "COUNT", count)
			}
			v, err := c.do(ctx, args...)
			if err != nil {
				yield("", err)
				return
			}
			page, ok := v.([]any)
			var ids []any
			if ok && len(page) == 2 {
				cursor, _ = page[0].(string)
				ids, ok = page[1].([]any)
			}
			if !ok || cursor == "" {
				yield("", unexpected("JOBSCAN", v))
				return
			}
			for _, id := range ids {
				s, ok := id.(string)
				if !ok {
					yield("", unexpected("JOBSCAN", v))
					return
				}
				if !yield(s, nil) {
					return
				}
			}
			if cursor == "0" {
				return
			}
		}
	}
}

// BulkAction is what Bulk does to each job.
type BulkAction string

// The bulk actions.
const (
	BulkRetry  BulkAction = "RETRY"  // failed jobs only
	BulkCancel BulkAction = "CANCEL" // jobs that have not finished
	BulkDelete BulkAction = "DELETE" // finished jobs
)

// BulkResult counts what a bulk action did: jobs changed, and jobs
// skipped because they were no longer in a state the action applies to
// or no longer held when their turn came.
type BulkResult struct {
	Changed, WrongState, NoJob int64
}

// Bulk runs action on every job matching f (JOBBULK), in slices on the
// server, and returns the counts once all are done.
func (c *Client) Bulk(ctx context.Context, action BulkAction, f ScanFilter) (BulkResult, error) {
	v, err := c.do(ctx, append([]any{"JOBBULK", string(action)}, f.args()...)...)
	if err != nil {
		return BulkResult{}, err
	}
	r := newReply("JOBBULK", v)
	out := BulkResult{Changed: r.int("changed")}
	if r.err == nil {
		sk := newReply("JOBBULK", r.fields["skipped"])
		out.WrongState, out.NoJob = sk.int("wrongstate"), sk.int("nojob")
		r.err = sk.err
	}
	return out, r.err
}

// Delete forgets a finished job (JOBDELETE); a job that has not finished
// is refused (cancel it first).
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.doOK(ctx, "JOBDELETE", id)
}
