package commands

import (
	"strconv"

	"sluice/protocol"
)

const (
	errInvalidCursor = protocol.Error("ERR invalid cursor")

	// scanDefaultCount is Redis's COUNT default; scanMaxCount bounds the
	// work of one call, whatever COUNT asks for (COUNT is a hint).
	scanDefaultCount = 10
	scanMaxCount     = 10_000
	// jobType is the TYPE of every key SCAN returns: job ids.
	jobType = "job"
)

func scanCommand(e *Env) protocol.Command {
	return protocol.Command{Name: "scan", Arity: -2, Flags: protocol.ReadOnly, Handler: e.scan,
		Group: "server", Summary: "Iterate over the ids of the jobs held, a page at a time.",
		Args: []protocol.Arg{integerArg("cursor"),
			{Name: "pattern", Type: "pattern", Token: "MATCH", Optional: true},
			{Name: "count", Type: "integer", Token: "COUNT", Optional: true},
			{Name: "type", Type: "string", Token: "TYPE", Optional: true}}}
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//
// The keys are job ids, every state included (DBSIZE counts the same
// jobs), with Redis's guarantees: a job held from the first call to the
// last is returned at least once, possibly more; one that comes or goes
// meanwhile may or may not be. The cursor carries all the state (see
// store.ScanIDs). A call visits at most 10 × COUNT home slots of the id
// index, so a page may hold fewer ids than COUNT, or none, before the
// scan ends with cursor 0. Every id has TYPE job; another type matches no
// id, so the scan ends at once with an empty page.
func (e *Env) scan(c *protocol.Client, args [][]byte) (any, error) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		return nil, errInvalidCursor
	}
	count := int64(scanDefaultCount)
	var pattern *glob
	otherType := false
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return nil, protocol.ErrSyntax
		}
		v := args[i+1]
		switch {
		case keyword(args[i], "MATCH"):
			pattern = nil
			if string(v) != "*" {
				pattern = compileGlob(string(v))
			}
		case keyword(args[i], "COUNT"):
			if count, err = integer(v); err != nil {
				return nil, err
			}
			if count < 1 {
				return nil, protocol.ErrSyntax
			}
		case keyword(args[i], "TYPE"):
			otherType = !keyword(v, jobType)
		default:
			return nil, protocol.ErrSyntax
		}
	}
	if otherType {
		return []any{"0", []string{}}, nil
	}
	n := int(min(count, scanMaxCount))
	next, ids := e.Store.ScanIDs(cursor, n, 10*n)
	if pattern != nil { // matched outside the index's locks
		kept := ids[:0]
		for _, id := range ids {
			if pattern.match(id) {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	if ids == nil {
		ids = []string{}
	}
	return []any{strconv.FormatUint(next, 10), ids}, nil
}
