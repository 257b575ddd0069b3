package commands

import (
	"sluice/protocol"
	"sluice/store"
)

func queueCommands(e *Env) []protocol.Command {
	q := []protocol.Arg{str("queue")}
	return []protocol.Command{
		{Name: "queuelen", Arity: 2, Flags: protocol.ReadOnly | protocol.Fast, Handler: e.queueLen,
			Group: "queues", Summary: "Count the queued jobs of a queue.", Args: q},
		{Name: "queuestats", Arity: 2, Flags: protocol.ReadOnly, Handler: e.queueStats,
			Group: "queues", Summary: "Show a queue's counts and status.", Args: q},
		{Name: "queues", Arity: 1, Flags: protocol.ReadOnly, Handler: e.queues,
			Group: "queues", Summary: "List the queues that hold jobs."},
		{Name: "queuepause", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.queuePause,
			Group: "queues", Summary: "Stop reservations from a queue; pushes still accepted.", Args: q},
		{Name: "queueresume", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.queueResume,
			Group: "queues", Summary: "Let reservations take from a paused queue again.", Args: q},
		{Name: "queuepeek", Arity: -2, Flags: protocol.ReadOnly, Handler: e.queuePeek,
			Group: "queues", Summary: "List queued jobs in reservation order.",
			Args: []protocol.Arg{str("queue"), opt("COUNT", integerArg("n"))}},
		{Name: "queuepurge", Arity: 2, Flags: protocol.Write, Handler: e.queuePurge,
			Group: "queues", Summary: "Cancel every queued and scheduled job of a queue.", Args: q},
	}
}

// QUEUELEN queue
func (e *Env) queueLen(c *protocol.Client, args [][]byte) (any, error) {
	q, err := ident(args[1], "queue")
	if err != nil {
		return nil, err
	}
	n, err := e.Store.QueueLen(e.now(c), q)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// QUEUESTATS queue
func (e *Env) queueStats(c *protocol.Client, args [][]byte) (any, error) {
	q, err := ident(args[1], "queue")
	if err != nil {
		return nil, err
	}
	s, err := e.Store.QueueStats(e.now(c), q)
	if err != nil {
		return nil, err
	}
	return queueStatsMap(q, s), nil
}

func queueStatsMap(q string, s store.QueueStats) []any {
	status := s.Status
	if status == "" {
		status = "idle"
	}
	return []any{
		"queue", q, "status", status, "queued", s.Queued, "scheduled", s.Scheduled,
		"reserved", s.Reserved, "running", s.Running, "retry_pending", s.RetryPending,
		"failed", s.Failed, "blocked_concurrency", s.BlockedConcurrency,
		"blocked_ratelimit", s.BlockedRateLimit, "paused", boolInt(s.Paused),
		"pushed_total", s.PushedTotal, "succeeded_total", s.SucceededTotal, "failed_total", s.FailedTotal,
	}
}

// QUEUES
func (e *Env) queues(c *protocol.Client, args [][]byte) (any, error) {
	qs := e.Store.Queues(e.now(c))
	if qs == nil {
		qs = []string{}
	}
	return qs, nil
}

// QUEUEPAUSE queue
func (e *Env) queuePause(c *protocol.Client, args [][]byte) (any, error) {
	q, err := ident(args[1], "queue")
	if err != nil {
		return nil, err
	}
	if err := e.Store.Pause(e.now(c), q); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// QUEUERESUME queue
func (e *Env) queueResume(c *protocol.Client, args [][]byte) (any, error) {
	q, err := ident(args[1], "queue")
	if err != nil {
		return nil, err
	}
	if err := e.Store.Resume(e.now(c), q); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// QUEUEPEEK queue [COUNT n]
func (e *Env) queuePeek(c *protocol.Client, args [][]byte) (any, error) {
	q, err := ident(args[1], "queue")
	if err != nil {
		return nil, err
	}
	n := int64(store.DefaultPeekCount)
	o := newOptions(args[2:])
	for o.more() {
		kw, err := o.next()
		if err != nil {
			return nil, err
		}
		if kw != "COUNT" {
			return nil, protocol.ErrSyntax
		}
		v, err := o.value()
		if err != nil {
			return nil, err
		}
		if n, err = positive(v); err != nil {
			return nil, err
		}
	}
	if n > 1<<20 {
		n = 1 << 20 // a count beyond any queue we hold in memory at once
	}
	jobs, err := e.Store.Peek(e.now(c), q, int(n))
	if err != nil {
		return nil, err
	}
	out := make([]any, len(jobs))
	for i, j := range jobs {
		out[i] = jobMap(j)
	}
	return out, nil
}

// QUEUEPURGE queue
func (e *Env) queuePurge(c *protocol.Client, args [][]byte) (any, error) {
	q, err := ident(args[1], "queue")
	if err != nil {
		return nil, err
	}
	n, err := e.Store.Purge(e.now(c), q)
	if err != nil {
		return nil, err
	}
	return n, nil
}
