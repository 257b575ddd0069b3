package commands

import (
	"sluice/protocol"
	"sluice/store"
)

func cronCommands(e *Env) []protocol.Command {
	return []protocol.Command{
		{Name: "cronset", Arity: -6, Flags: protocol.Write, Handler: e.cronSet,
			Group: "cron", Summary: "Create or replace a periodic entry: each tick of its schedule pushes one job; 1 if created, 0 if replaced.",
			Args: []protocol.Arg{str("name"), str("schedule"), str("queue"), str("handler"), str("payload"),
				opt("TZ", str("zone")), opt("PRIORITY", integerArg("priority")),
				opt("CONCURRENCY", str("key")), opt("RATELIMIT", str("key")),
				opt("MAXATTEMPTS", integerArg("n")), opt("BACKOFF", integerArg("ms")),
				opt("EXPIRES", integerArg("ms")), opt("TIMEOUT", integerArg("ms"))}},
		{Name: "crondel", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.cronDel,
			Group: "cron", Summary: "Delete a periodic entry; 1 if it existed.", Args: []protocol.Arg{str("name")}},
		{Name: "cronget", Arity: 2, Flags: protocol.ReadOnly | protocol.Fast, Handler: e.cronGet,
			Group: "cron", Summary: "Show a periodic entry and its next tick.", Args: []protocol.Arg{str("name")}},
		{Name: "cronlist", Arity: 1, Flags: protocol.ReadOnly, Handler: e.cronList,
			Group: "cron", Summary: "List every periodic entry, by name, with its next tick."},
	}
}

// CRONSET name schedule queue handler payload [TZ zone] [PRIORITY n]
// [CONCURRENCY key] [RATELIMIT key] [MAXATTEMPTS n] [BACKOFF ms]
func (e *Env) cronSet(c *protocol.Client, args [][]byte) (any, error) {
	var o store.CronOptions
	var err error
	if o.Name, err = ident(args[1], "cron name"); err != nil {
		return nil, err
	}
	o.Spec = string(args[2])
	if o.Queue, err = ident(args[3], "queue"); err != nil {
		return nil, err
	}
	if o.Handler, err = ident(args[4], "handler"); err != nil {
		return nil, err
	}
	if err := e.checkPayload(args[5]); err != nil {
		return nil, err
	}
	o.Payload = args[5]       // copied by the store
	var job store.PushOptions // the job options JOBPUSH reads too
	opts := newOptions(args[6:])
	for opts.more() {
		kw, err := opts.next()
		if err != nil {
			return nil, err
		}
		v, err := opts.value()
		if err != nil {
			return nil, err
		}
		switch ok, err := jobOption(kw, v, &job); {
		case err != nil:
			return nil, err
		case ok:
		case kw == "TZ":
			o.Zone = string(v)
		default:
			return nil, protocol.ErrSyntax
		}
	}
	if job.ExtraConcurrencyKeys != nil || job.ExtraRateLimitKeys != nil {
		return nil, protocol.Error("ERR a periodic job takes at most one CONCURRENCY and one RATELIMIT key")
	}
	o.Priority, o.ConcurrencyKey, o.RateLimitKey = job.Priority, job.ConcurrencyKey, job.RateLimitKey
	o.MaxAttempts, o.Backoff = job.MaxAttempts, job.Backoff
	o.ExpiresIn, o.Timeout = job.ExpiresIn, job.Timeout
	created, err := e.Store.CronSet(e.now(c), o)
	if err != nil {
		return nil, err
	}
	return boolInt(created), nil
}

// CRONDEL name
func (e *Env) cronDel(c *protocol.Client, args [][]byte) (any, error) {
	name, err := ident(args[1], "cron name")
	if err != nil {
		return nil, err
	}
	ok, err := e.Store.CronDel(e.now(c), name)
	if err != nil {
		return nil, err
	}
	return boolInt(ok), nil
}

// CRONGET name
func (e *Env) cronGet(c *protocol.Client, args [][]byte) (any, error) {
	name, err := ident(args[1], "cron name")
	if err != nil {
		return nil, err
	}
	en, ok := e.Store.CronGet(e.now(c), name)
	if !ok {
		return nil, nil
	}
	return cronMap(en), nil
}

// CRONLIST
func (e *Env) cronList(c *protocol.Client, args [][]byte) (any, error) {
	es := e.Store.CronList(e.now(c))
	out := make([]any, len(es))
	for i, en := range es {
		out[i] = cronMap(en)
	}
	return out, nil
}

// cronMap is CRONGET's reply shape, and each of CRONLIST's.
func cronMap(en store.CronEntry) protocol.Map {
	return protocol.Map{
		"name", en.Name, "schedule", en.Spec, "tz", en.Zone,
		"queue", en.Queue, "handler", en.Handler, "payload", en.Payload, "priority", en.Priority,
		"concurrency_key", nullable(en.ConcurrencyKey), "rate_limit_key", nullable(en.RateLimitKey),
		"max_attempts", en.MaxAttempts, "backoff", en.Backoff,
		"next_run_at", nullableTime(en.Next), "last_run_at", nullableTime(en.Last),
		"fired", en.Fired, "missed", en.Missed,
		"expires", nullableTime(en.ExpiresIn), "timeout", nullableTime(en.Timeout),
	}
}
