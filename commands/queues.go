package commands

import (
	"strconv"

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
			Args: []protocol.Arg{str("queue"), opt("COUNT", integerArg("n")), opt("CURSOR", str("cursor"))}},
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

func queueStatsMap(q string, s store.QueueStats) protocol.Map {
	status := s.Status
	if status == "" {
		status = "idle"
	}
	return protocol.Map{
		"queue", q, "status", status, "queued", s.Queued, "scheduled", s.Scheduled,
		"reserved", s.Reserved, "running", s.Running, "retry_pending", s.RetryPending,
		"failed", s.Failed, "blocked_concurrency", s.BlockedConcurrency,
		"blocked_ratelimit", s.BlockedRateLimit, "paused", protocol.Bool(s.Paused),
		"pushed_total", s.PushedTotal, "succeeded_total", s.SucceededTotal, "failed_total", s.FailedTotal,
		"expired", s.Expired,
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

// Bounds of QUEUEPEEK: a page names at most MaxPeekCount jobs, and stops
// before the job that would take its payloads and ids past PeekReplyBytes
// (one job is always listed, whatever its size). Redis users page with a
// cursor rather than ask for everything at once (SCAN); so does CURSOR.
const (
	MaxPeekCount   = 1000
	PeekReplyBytes = 4 << 20
)

var errPeekCount = protocol.Error("ERR COUNT is larger than " + strconv.Itoa(MaxPeekCount) +
	" (QUEUEPEEK's most per page: page on with CURSOR)")

// QUEUEPEEK queue [COUNT n] [CURSOR cursor]
//
// Without CURSOR the reply is the page's array of jobs; with it (0 to
// start), SCAN's shape: the cursor to go on from ("0" when nothing was
// left) and the array.
func (e *Env) queuePeek(c *protocol.Client, args [][]byte) (any, error) {
	q, err := ident(args[1], "queue")
	if err != nil {
		return nil, err
	}
	o := store.PeekOptions{Count: store.DefaultPeekCount, MaxBytes: PeekReplyBytes}
	paged := false
	opts := newOptions(args[2:])
	for opts.more() {
		kw, err := opts.next()
		if err != nil {
			return nil, err
		}
		v, err := opts.value()
		if err != nil {
			return nil, err
		}
		switch kw {
		case "COUNT":
			n, err := positive(v)
			if err != nil {
				return nil, err
			}
			if n > MaxPeekCount {
				return nil, errPeekCount
			}
			o.Count = int(n)
		case "CURSOR":
			if o.After, err = store.ParsePeekCursor(string(v)); err != nil {
				return nil, errInvalidCursor // SCAN's wording
			}
			paged = true
		default:
			return nil, protocol.ErrSyntax
		}
	}
	pg, err := e.Store.PeekPage(e.now(c), q, o)
	if err != nil {
		return nil, err
	}
	jobs := make([]any, len(pg.Jobs))
	for i, j := range pg.Jobs {
		jobs[i] = jobMap(j)
	}
	if !paged {
		return jobs, nil
	}
	next := "0"
	if !pg.Done {
		next = pg.Next.String()
	}
	return []any{next, jobs}, nil
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
