package commands

import (
	"strconv"
	"strings"
	"time"

	"sluice/protocol"
	"sluice/store"
)

// Job search and bulk actions: JOBSCAN, JOBDELETE, JOBBULK and the slice
// command it runs, JOBBULKIDS.

func jobScanCommands(e *Env) []protocol.Command {
	filterArgs := []protocol.Arg{opt("QUEUE", str("queue")), opt("STATE", str("state")),
		opt("HANDLER", str("handler")), opt("GROUP", str("group")),
		{Name: "error", Type: "pattern", Token: "ERROR", Optional: true},
		{Name: "pattern", Type: "pattern", Token: "MATCH", Optional: true}}
	action := protocol.Arg{Name: "action", Type: "oneof", Args: []protocol.Arg{
		{Name: "retry", Type: "pure-token", Token: "RETRY"}, {Name: "cancel", Type: "pure-token", Token: "CANCEL"},
		{Name: "delete", Type: "pure-token", Token: "DELETE"}}}
	return []protocol.Command{
		{Name: "jobscan", Arity: -2, Flags: protocol.ReadOnly, Handler: e.jobScan,
			Group: "jobs", Summary: "Iterate over the ids of the jobs matching filters, a page at a time.",
			Args: append([]protocol.Arg{str("cursor")}, append(filterArgs, opt("COUNT", integerArg("count")))...)},
		{Name: "jobdelete", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.jobDelete,
			Group: "jobs", Summary: "Forget a finished job at once.", Args: []protocol.Arg{str("id")}},
		{Name: "jobbulk", Arity: -2, Flags: protocol.NoMulti | protocol.Blocking, Handler: e.jobBulk,
			Waits: func([][]byte) bool { return true }, // rests between slices on the connection, to see a hang-up
			Group: "jobs", Summary: "Retry, cancel or delete every job matching filters, in slices; returns counts.",
			Args: append([]protocol.Arg{action}, filterArgs...)},
		{Name: "jobbulkids", Arity: -3, Flags: protocol.Write, Handler: e.jobBulkIDs,
			Group: "jobs", Summary: "Retry, cancel or delete the jobs named; returns counts (one slice of JOBBULK).",
			Args: []protocol.Arg{action, {Name: "id", Type: "string", Multiple: true}}},
	}
}

const (
	// bulkSlice is how many jobs one slice of JOBBULK names: one
	// JOBBULKIDS, one entry of a replicated group's log.
	bulkSlice = 256
	// bulkRest is how long JOBBULK rests after a slice, in multiples of
	// the slice's time.
	bulkRest = 3
	// maxBulkIDs bounds JOBBULKIDS's list.
	maxBulkIDs = 10_000
)

var (
	errBulkAction = protocol.Error("ERR the action must be RETRY, CANCEL or DELETE")
	errBulkRetry  = protocol.Error("ERR JOBBULK RETRY applies to failed jobs only: leave STATE out or say STATE failed")
	errBulkIDs    = protocol.Error("ERR JOBBULKIDS names at most 10000 jobs")
)

// scanArgs reads JOBSCAN's and JOBBULK's filters (and COUNT, when count
// is not nil) from args.
func scanArgs(args [][]byte, count *int64) (store.ScanFilter, error) {
	var f store.ScanFilter
	seen := make(map[string]bool, 4)
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return f, protocol.ErrSyntax
		}
		v := args[i+1]
		if name := strings.ToUpper(string(args[i])); seen[name] {
			// A filter given twice is refused, not overwritten: the
			// rights were checked against every QUEUE given.
			return f, protocol.Error("ERR " + name + " is given twice")
		} else {
			seen[name] = true
		}
		var err error
		switch {
		case keyword(args[i], "QUEUE"):
			f.Queue, err = ident(v, "queue")
		case keyword(args[i], "STATE"):
			st, ok := store.ParseState(string(v))
			if !ok {
				names := make([]string, 0, 8)
				for _, s := range store.States() {
					names = append(names, s.String())
				}
				return f, protocol.Error("ERR unknown state '" + string(v) + "': one of " + strings.Join(names, ", "))
			}
			f.State = st
		case keyword(args[i], "HANDLER"):
			f.Handler, err = ident(v, "handler")
		case keyword(args[i], "GROUP"):
			f.Group, err = ident(v, "group")
		case keyword(args[i], "MATCH"):
			if string(v) != "*" {
				g := compileGlob(string(v))
				f.ID = func(id string) bool { return g.match(id) }
			}
		case keyword(args[i], "ERROR"):
			g := compileGlob(string(v))
			f.Error = func(e string) bool { return g.match(e) }
		case count != nil && keyword(args[i], "COUNT"):
			if *count, err = integer(v); err == nil && *count < 1 {
				err = protocol.Error("ERR COUNT must be at least 1")
			}
		default:
			return f, protocol.ErrSyntax
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// JOBSCAN cursor [QUEUE q] [STATE s] [HANDLER h] [GROUP g] [ERROR glob]
// [MATCH glob] [COUNT n]
//
// Like SCAN, over the jobs that match the filters: [next-cursor, [ids]].
// A call visits at most 10 × COUNT home slots of the tables it reads
// (store.ScanJobs), so a page may hold fewer ids than COUNT, or none,
// before the scan ends with cursor 0.
func (e *Env) jobScan(c *protocol.Client, args [][]byte) (any, error) {
	count := int64(scanDefaultCount)
	f, err := scanArgs(args[2:], &count)
	if err != nil {
		return nil, err
	}
	n := int(min(count, scanMaxCount))
	next, ids, err := e.Store.ScanJobs(string(args[1]), f, n, 10*n)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return []any{next, ids}, nil
}

// JOBDELETE id
func (e *Env) jobDelete(c *protocol.Client, args [][]byte) (any, error) {
	id, err := ident(args[1], "id")
	if err != nil {
		return nil, err
	}
	if err := e.Store.Delete(e.now(c), id); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// bulkCounts are what a bulk action did: jobs changed, and jobs skipped
// by reason (the wire code of the single-job command's refusal, lower
// case: "wrongstate" not in a state the action applies to, "nojob" gone
// meanwhile).
type bulkCounts struct {
	changed   int64
	wrong, no int64
}

func (b *bulkCounts) reply() protocol.Map {
	return protocol.Map{"changed", b.changed, "skipped", protocol.Map{"wrongstate", b.wrong, "nojob", b.no}}
}

// bulkAction reads RETRY, CANCEL or DELETE.
func bulkAction(b []byte) (string, error) {
	for _, a := range []string{"retry", "cancel", "delete"} {
		if keyword(b, a) {
			return a, nil
		}
	}
	return "", errBulkAction
}

// JOBBULKIDS RETRY|CANCEL|DELETE id [id ...]
//
// The action on each job named, as JOBRETRY, JOBCANCEL or JOBDELETE would
// do it (each logged as they log it); a job the action does not apply to
// is skipped and counted, not an error.
func (e *Env) jobBulkIDs(c *protocol.Client, args [][]byte) (any, error) {
	a, err := bulkAction(args[1])
	if err != nil {
		return nil, err
	}
	if len(args)-2 > maxBulkIDs {
		return nil, errBulkIDs
	}
	ids := make([]string, len(args)-2)
	for i, b := range args[2:] {
		if ids[i], err = ident(b, "id"); err != nil {
			return nil, err
		}
	}
	now := e.now(c)
	var n bulkCounts
	for _, id := range ids {
		var err error
		switch a {
		case "retry":
			err = e.Store.Retry(now, id)
		case "cancel":
			var ok bool
			if ok, err = e.Store.Cancel(now, id); err == nil && !ok {
				err = store.ErrWrongState
			}
		case "delete":
			err = e.Store.Delete(now, id)
		}
		switch {
		case err == nil:
			n.changed++
		case isCode(err, "WRONGSTATE"):
			n.wrong++
		case isCode(err, "NOJOB"):
			n.no++
		default:
			return nil, err // the log failed, say: the counts so far are lost with it
		}
	}
	return n.reply(), nil
}

// isCode reports whether err carries the wire code code.
func isCode(err error, code string) bool {
	cd, ok := err.(interface{ Code() string })
	return ok && cd.Code() == code
}

// JOBBULK RETRY|CANCEL|DELETE [QUEUE q] [STATE s] [HANDLER h] [GROUP g]
// [ERROR glob] [MATCH glob]
//
// Scans the matching jobs (as JOBSCAN) and runs the action on each slice
// of up to 256 ids as a JOBBULKIDS of its own, through the server's
// table as the client: each slice is one step (one entry of a replicated
// group's log) with the gate let go in between, so other commands and
// transactions run meanwhile, and the scan's guarantees hold: a job that
// matches throughout is acted on at least once. It answers the counts
// added up.
func (e *Env) jobBulk(c *protocol.Client, args [][]byte) (any, error) {
	a, err := bulkAction(args[1])
	if err != nil {
		return nil, err
	}
	f, err := scanArgs(args[2:], nil)
	if err != nil {
		return nil, err
	}
	switch a { // only the states the action applies to are read
	case "retry":
		if f.State != 0 && f.State != store.Failed {
			return nil, errBulkRetry
		}
		f.State = store.Failed
	case "cancel":
		f.In = func(st store.State) bool { return !st.Terminal() || st == store.Failed } // JOBCANCEL takes a dead letter out too
	case "delete":
		f.In = store.State.Terminal
	}
	srv := c.Server()
	cmd := srv.Table().Lookup([]byte("jobbulkids"))
	if cmd == nil {
		return nil, protocol.Error("ERR JOBBULKIDS is not in this server's table")
	}
	sub := srv.DetachedAs(c.User(), "jobbulk:client-"+strconv.FormatInt(c.ID(), 10))
	run := func(rest func(time.Duration) (left bool)) (any, error) {
		var total bulkCounts
		cursor := "0"
		for {
			next, ids, err := e.Store.ScanJobs(cursor, f, bulkSlice, 10*bulkSlice)
			if err != nil {
				return nil, err
			}
			if len(ids) > 0 {
				start := time.Now()
				v, err := sub.Run(cmd, bulkArgs(args[1], ids))
				if err != nil {
					return nil, err
				}
				total.add(v)
				// Three times as long without work: a bulk action takes at
				// most a quarter of a core from the other clients.
				if rest(bulkRest * time.Since(start)) {
					return nil, errBulkLeft
				}
			}
			if next == "0" {
				return total.reply(), nil
			}
			cursor = next
		}
	}
	// The slices run without the connection's gate, as a replicated
	// write waits: each takes it itself. A connection's rests are waits on
	// it (Block, Park), so that a client that hangs up stops the bulk
	// after the slice in progress; only the rests count as blocked time,
	// so the command's own time (its stats, SLOWLOG) is its slices'.
	rest := func(d time.Duration) bool {
		w, done := c.Block()
		defer done()
		return w.Park(time.Now().Add(d))
	}
	if !c.MayBlock() { // a caller inside the process (the dashboard): no connection to watch
		rest = func(d time.Duration) bool { time.Sleep(d); return false }
	}
	var v any
	c.Ungated(func() { v, err = run(rest) })
	return v, err
}

// errBulkLeft ends a JOBBULK whose client hung up, or whose server is
// shutting down: nobody reads it.
var errBulkLeft = protocol.Error("ERR JOBBULK stopped: the client left or the server is shutting down")

func bulkArgs(action []byte, ids []string) [][]byte {
	out := make([][]byte, 0, 2+len(ids))
	out = append(out, []byte("jobbulkids"), action)
	for _, id := range ids {
		out = append(out, []byte(id))
	}
	return out
}

// add adds a JOBBULKIDS reply's counts.
func (b *bulkCounts) add(v any) {
	m, ok := v.(protocol.Map)
	if !ok || len(m) != 4 {
		return
	}
	b.changed += m[1].(int64)
	if sk, ok := m[3].(protocol.Map); ok && len(sk) == 4 {
		b.wrong += sk[1].(int64)
		b.no += sk[3].(int64)
	}
}
