package commands

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"sluice/blocking"
	"sluice/protocol"
	"sluice/store"
)

func jobCommands(e *Env) []protocol.Command {
	return []protocol.Command{
		{Name: "jobpush", Arity: -4, Flags: protocol.Write | protocol.Fast, Handler: e.jobPush, Batch: e.jobPushBatch,
			Group: "jobs", Summary: "Enqueue a job; returns its id.", Args: pushArgs},
		{Name: "jobreserve", Arity: -5, Flags: protocol.Write | protocol.Blocking, Handler: e.jobReserve,
			Waits: reserveWaits, Group: "jobs", Summary: "Reserve eligible jobs under a lease, optionally waiting for them.", Args: reserveArgs},
		{Name: "jobstart", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.jobStart,
			Group: "jobs", Summary: "Mark a reserved job running; returns the attempt number.", Args: []protocol.Arg{str("token")}},
		{Name: "jobtouch", Arity: 3, Flags: protocol.Write | protocol.Fast, Handler: e.jobTouch,
			Group: "jobs", Summary: "Extend a lease; returns the new expiry.", Args: []protocol.Arg{str("token"), integerArg("lease-ms")}},
		{Name: "joback", Arity: -2, Flags: protocol.Write | protocol.Fast, Handler: e.jobAck,
			Group: "jobs", Summary: "Mark a job succeeded, optionally with its result.", Args: ackArgs},
		{Name: "jobfail", Arity: -2, Flags: protocol.Write | protocol.Fast, Handler: e.jobFail,
			Group: "jobs", Summary: "Record a failed attempt; returns the new state.", Args: failArgs},
		{Name: "jobrelease", Arity: -2, Flags: protocol.Write | protocol.Fast, Handler: e.jobRelease,
			Group: "jobs", Summary: "Give a reserved job back without using an attempt.",
			Args: []protocol.Arg{str("token"), opt("DELAY", integerArg("ms")),
				{Name: "throttle", Type: "block", Token: "THROTTLE", Optional: true, Args: []protocol.Arg{str("key"), integerArg("ms")}}}},
		{Name: "jobcancel", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.jobCancel,
			Group: "jobs", Summary: "Cancel a job that has not finished.", Args: []protocol.Arg{str("id")}},
		{Name: "jobretry", Arity: 2, Flags: protocol.Write | protocol.Fast, Handler: e.jobRetry,
			Group: "jobs", Summary: "Queue a failed job again with its attempts reset.", Args: []protocol.Arg{str("id")}},
		{Name: "jobget", Arity: 2, Flags: protocol.ReadOnly | protocol.Fast, Handler: e.jobGet,
			Group: "jobs", Summary: "Show a job.", Args: []protocol.Arg{str("id")}},
	}
}

var pushArgs = []protocol.Arg{
	str("queue"), str("handler"), str("payload"),
	opt("ID", str("id")), opt("PRIORITY", integerArg("priority")),
	repeated("CONCURRENCY", str("key")), repeated("RATELIMIT", str("key")),
	{Name: "when", Type: "oneof", Optional: true, Args: []protocol.Arg{
		{Name: "ms", Type: "integer", Token: "DELAY"}, {Name: "unix-ms", Type: "integer", Token: "AT"}}},
	opt("MAXATTEMPTS", integerArg("n")), opt("BACKOFF", integerArg("ms")),
	{Name: "expiry", Type: "oneof", Optional: true, Args: []protocol.Arg{
		{Name: "ms", Type: "integer", Token: "EXPIRES"}, {Name: "unix-ms", Type: "integer", Token: "DEADLINE"}}},
	opt("TIMEOUT", integerArg("ms")),
	opt("IDEMPOTENCY", str("key")), opt("GROUP", str("group")),
	{Name: "unique", Type: "block", Token: "UNIQUE", Optional: true, Args: []protocol.Arg{
		str("key"),
		{Name: "scope", Type: "oneof", Token: "SCOPE", Optional: true, Args: []protocol.Arg{
			{Name: "queued", Type: "pure-token", Token: "QUEUED"}, {Name: "active", Type: "pure-token", Token: "ACTIVE"},
			{Name: "until-terminal", Type: "pure-token", Token: "UNTIL-TERMINAL"}}},
		opt("TTL", integerArg("ms")),
		{Name: "on-duplicate", Type: "oneof", Token: "ON-DUPLICATE", Optional: true, Args: []protocol.Arg{
			{Name: "keep", Type: "pure-token", Token: "KEEP"}, {Name: "reject", Type: "pure-token", Token: "REJECT"},
			{Name: "replace", Type: "pure-token", Token: "REPLACE"}, {Name: "extend", Type: "pure-token", Token: "EXTEND"}}},
	}},
	{Name: "after", Type: "block", Token: "AFTER", Optional: true, Args: []protocol.Arg{
		integerArg("numids"), {Name: "id", Type: "string", Multiple: true}}},
	{Name: "anyway", Type: "pure-token", Token: "ANYWAY", Optional: true},
	opt("BATCH", str("id")),
}

var reserveArgs = []protocol.Arg{
	str("worker"), integerArg("lease-ms"),
	opt("COUNT", integerArg("n")), opt("BLOCK", integerArg("ms")),
	{Name: "handlers", Type: "block", Token: "HANDLERS", Optional: true, Args: []protocol.Arg{
		integerArg("numhandlers"), {Name: "handler", Type: "string", Multiple: true}}},
	{Name: "roundrobin", Type: "pure-token", Token: "ROUNDROBIN", Optional: true},
	{Name: "queue", Type: "string", Token: "QUEUES", Multiple: true},
}

var failArgs = []protocol.Arg{
	str("token"), opt("ERROR", str("message")),
	{Name: "retry", Type: "oneof", Optional: true, Args: []protocol.Arg{
		{Name: "ms", Type: "integer", Token: "RETRYIN"}, {Name: "noretry", Type: "pure-token", Token: "NORETRY"}}},
}

// JOBPUSH queue handler payload [ID id] [PRIORITY n] [CONCURRENCY key ...]
// [RATELIMIT key ...] [DELAY ms | AT unix-ms] [MAXATTEMPTS n] [BACKOFF ms]
// [IDEMPOTENCY key] [GROUP group] [EXPIRES ms | DEADLINE unix-ms] [TIMEOUT ms]
// [UNIQUE key [SCOPE queued | active | until-terminal] [TTL ms]
// [ON-DUPLICATE keep | reject | replace | extend]]
// [AFTER numids id [id ...] [ANYWAY]] [BATCH id]
func (e *Env) jobPush(c *protocol.Client, args [][]byte) (any, error) {
	now := e.now(c)
	p, err := e.pushOptions(now, args)
	if err != nil {
		return nil, err
	}
	id, err := e.Store.Push(now, p)
	if err != nil {
		return nil, err
	}
	return id, nil
}

// jobPushBatch is JOBPUSH for a pipeline of them (protocol.BatchHandler):
// one Store.PushMany, which takes a queue's lock once for the pushes in a
// row that go to it.
func (e *Env) jobPushBatch(c *protocol.Client, calls [][][]byte, out []protocol.Result) {
	now := e.now(c)
	b := pushBatches.Get().(*pushBatch)
	for i, args := range calls {
		p, err := e.pushOptions(now, args)
		if err != nil {
			out[i].Err = err
			continue
		}
		b.ps = append(b.ps, p)
		b.at = append(b.at, i)
	}
	n := len(b.ps)
	b.ids, b.errs = slices.Grow(b.ids[:0], n)[:n], slices.Grow(b.errs[:0], n)[:n]
	if n > 0 {
		e.Store.PushMany(now, b.ps, b.ids, b.errs)
	}
	for k, i := range b.at {
		if b.errs[k] != nil {
			out[i].Err = b.errs[k]
		} else {
			out[i].Reply = b.ids[k]
		}
	}
	clear(b.ps) // payloads point into the read buffer
	clear(b.ids)
	clear(b.errs)
	b.ps, b.at = b.ps[:0], b.at[:0]
	pushBatches.Put(b)
}

// pushBatch is jobPushBatch's scratch, reused.
type pushBatch struct {
	ps   []store.PushOptions
	at   []int // the call each of ps came from
	ids  []string
	errs []error
}

var pushBatches = sync.Pool{New: func() any { return new(pushBatch) }}

// pushOptions reads JOBPUSH's arguments; now resolves DELAY.
func (e *Env) pushOptions(now int64, args [][]byte) (p store.PushOptions, err error) {
	if p.Queue, err = ident(args[1], "queue"); err != nil {
		return p, err
	}
	if p.Handler, err = ident(args[2], "handler"); err != nil {
		return p, err
	}
	if err := e.checkPayload(args[3]); err != nil {
		return p, err
	}
	// args[3] points into the connection's read buffer, which the next
	// read reuses: Push copies what it keeps.
	p.Payload = args[3]
	var delay, at int64 = -1, -1
	uniqueOpts := false // SCOPE, TTL or ON-DUPLICATE given
	o := newOptions(args[4:])
	for o.more() {
		kw, err := o.next()
		if err != nil {
			return p, err
		}
		switch kw {
		case "ANYWAY":
			p.AfterAnyway = true
			continue
		case "AFTER":
			if p.After, err = afterIDs(o); err != nil {
				return p, err
			}
			continue
		}
		v, err := o.value()
		if err != nil {
			return p, err
		}
		if ok, err := jobOption(kw, v, &p); ok {
			if err != nil {
				return p, err
			}
			continue
		}
		switch kw {
		case "ID":
			p.ID, err = ident(v, "id")
		case "DELAY":
			delay, err = duration(v, true)
		case "AT":
			at, err = integer(v)
			if err == nil && at < 0 {
				err = errNonNegative
			}
		case "IDEMPOTENCY":
			p.IdempotencyKey, err = ident(v, "idempotency key")
		case "GROUP":
			p.Group, err = ident(v, "group")
		case "DEADLINE":
			p.Deadline, err = positive(v)
		case "UNIQUE":
			p.UniqueKey, err = ident(v, "unique key")
		case "BATCH":
			p.Batch, err = ident(v, "batch id")
		case "SCOPE", "TTL", "ON-DUPLICATE":
			uniqueOpts = true
			err = uniqueOption(kw, v, &p)
		default:
			return p, protocol.ErrSyntax
		}
		if err != nil {
			return p, err
		}
	}
	switch {
	case p.AfterAnyway && p.After == nil:
		return p, protocol.Error("ERR ANYWAY needs AFTER")
	case uniqueOpts && p.UniqueKey == "":
		return p, protocol.Error("ERR SCOPE, TTL and ON-DUPLICATE need UNIQUE key")
	case p.UniqueKey != "" && p.IdempotencyKey != "":
		return p, protocol.Error("ERR a push takes IDEMPOTENCY or UNIQUE, not both")
	case delay >= 0 && at >= 0:
		return p, protocol.ErrSyntax
	case delay > 0:
		p.RunAt = now + delay
	case at > 0:
		p.RunAt = at
	}
	return p, nil
}

// afterIDs reads AFTER's count and ids: 1 to store.MaxAfter of them.
func afterIDs(o *options) ([]string, error) {
	v, err := o.value()
	if err != nil {
		return nil, err
	}
	n, err := integer(v)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > store.MaxAfter {
		return nil, protocol.Error("ERR AFTER takes 1 to " + protocol.Int(store.MaxAfter) + " job ids")
	}
	if int64(len(o.args)-o.i) < n {
		return nil, protocol.ErrSyntax
	}
	ids := make([]string, n)
	for k := range ids {
		if ids[k], err = ident(o.args[o.i], "dependency id"); err != nil {
			return nil, err
		}
		o.i++
	}
	return ids, nil
}

// uniqueOption reads one of UNIQUE's options into p.
func uniqueOption(kw string, v []byte, p *store.PushOptions) error {
	switch kw {
	case "SCOPE":
		switch {
		case keyword(v, "queued"):
			p.UniqueScope = store.ScopeQueued
		case keyword(v, "active"):
			p.UniqueScope = store.ScopeActive
		case keyword(v, "until-terminal"):
			p.UniqueScope = store.ScopeTerminal
		default:
			return protocol.Error("ERR SCOPE must be queued, active or until-terminal")
		}
	case "TTL":
		ttl, err := duration(v, false)
		if err != nil {
			return err
		}
		p.UniqueTTL = ttl
	case "ON-DUPLICATE":
		switch {
		case keyword(v, "keep"):
			p.OnDuplicate = store.DupKeep
		case keyword(v, "reject"):
			p.OnDuplicate = store.DupReject
		case keyword(v, "replace"):
			p.OnDuplicate = store.DupReplace
		case keyword(v, "extend"):
			p.OnDuplicate = store.DupExtend
		default:
			return protocol.Error("ERR ON-DUPLICATE must be keep, reject, replace or extend")
		}
	}
	return nil
}

// checkPayload refuses a job's payload over --max-payload.
func (e *Env) checkPayload(b []byte) error {
	if int64(len(b)) > e.MaxPayload {
		return protocol.Error("ERR payload is larger than max-payload (" + protocol.Int(e.MaxPayload) + " bytes)")
	}
	return nil
}

// jobOption reads one of the options that describe a job wherever one is
// pushed (JOBPUSH, CRONSET's job) into p, and reports whether kw was one.
func jobOption(kw string, v []byte, p *store.PushOptions) (ok bool, err error) {
	switch kw {
	case "PRIORITY":
		p.Priority, err = integer(v)
	case "CONCURRENCY":
		// Given again, a further key: the job needs every one to admit it.
		var k string
		if k, err = ident(v, "concurrency key"); err == nil {
			if p.ConcurrencyKey == "" {
				p.ConcurrencyKey = k
			} else {
				p.ExtraConcurrencyKeys = append(p.ExtraConcurrencyKeys, k)
			}
		}
	case "RATELIMIT":
		var k string
		if k, err = ident(v, "rate limit key"); err == nil {
			if p.RateLimitKey == "" {
				p.RateLimitKey = k
			} else {
				p.ExtraRateLimitKeys = append(p.ExtraRateLimitKeys, k)
			}
		}
	case "MAXATTEMPTS":
		p.MaxAttempts, err = positive(v)
	case "BACKOFF":
		p.Backoff, err = duration(v, false)
	case "EXPIRES":
		p.ExpiresIn, err = duration(v, false)
	case "TIMEOUT":
		p.Timeout, err = duration(v, false)
	default:
		return false, nil
	}
	return true, err
}

// errTooManyNames refuses a JOBRESERVE whose list of what (queues or
// handlers) is longer than the limit: a blocked reserve holds a place on
// each of them for as long as it waits. Repeats count, since the limit
// bounds the command's work before any of it is done.
func (e *Env) errTooManyNames(what string) error {
	return protocol.Error("ERR JOBRESERVE names more than " + strconv.Itoa(e.maxReserveNames()) +
		" " + what + " (max-reserve-queues)")
}

// JOBRESERVE worker lease-ms [COUNT n] [BLOCK ms]
// [HANDLERS numhandlers handler [handler ...]] [ROUNDROBIN] QUEUES queue [queue ...]
func (e *Env) jobReserve(c *protocol.Client, args [][]byte) (any, error) {
	r, block, err := e.reserveArgs(args)
	if err != nil {
		return nil, err
	}
	var res []store.Reservation
	if block < 0 || !c.MayBlock() { // inside EXEC, BLOCK does not wait
		res, err = e.Store.Reserve(e.now(c), r)
	} else {
		res, err = e.Waiters.Reserve(r, time.Duration(block)*time.Millisecond,
			func() (blocking.Parker, func()) { return c.Block() })
	}
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return protocol.NullArray, nil
	}
	c.OnWriteFailure(func() {
		for _, rv := range res {
			_ = e.Store.Release(e.clock(), rv.Token, 0)
		}
	})
	return reservations(res), nil
}

// reserveArgs reads JOBRESERVE's arguments: what to reserve, and how long
// to block for it (-1: not at all).
func (e *Env) reserveArgs(args [][]byte) (r store.ReserveOptions, block int64, err error) {
	if r.Worker, err = ident(args[1], "worker"); err != nil {
		return r, 0, err
	}
	if r.Lease, err = duration(args[2], false); err != nil {
		return r, 0, err
	}
	block = -1
	o := newOptions(args[3:])
	for o.more() && r.Queues == nil {
		kw, err := o.next()
		if err != nil {
			return r, 0, err
		}
		switch kw {
		case "COUNT":
			r.Count, err = reserveCount(o)
		case "BLOCK":
			block, err = reserveBlock(o)
		case "HANDLERS":
			r.Handlers, err = e.reserveHandlers(o)
		case "ROUNDROBIN":
			r.RoundRobin = true
		case "QUEUES":
			r.Queues, err = e.reserveQueues(o)
		default:
			err = protocol.ErrSyntax
		}
		if err != nil {
			return r, 0, err
		}
	}
	if r.Queues == nil {
		return r, 0, protocol.ErrSyntax
	}
	return r, block, nil
}

// reserveCount is COUNT's value: 1 to 2^20.
func reserveCount(o *options) (int, error) {
	v, err := o.value()
	if err != nil {
		return 0, err
	}
	n, err := positive(v)
	if err != nil {
		return 0, err
	}
	if n > 1<<20 {
		return 0, protocol.Error("ERR COUNT is larger than 1048576")
	}
	return int(n), nil
}

// reserveBlock is BLOCK's value in ms: 0 (for ever) up to maxDuration.
func reserveBlock(o *options) (int64, error) {
	v, err := o.value()
	if err != nil {
		return 0, err
	}
	block, err := integer(v)
	switch {
	case err != nil:
		return 0, err
	case block < 0:
		return 0, errTimeout
	case block > maxDuration:
		return 0, errTooLong
	}
	return block, nil
}

// reserveHandlers is HANDLERS' count and names. The store drops repeats;
// the limit counts them, since it bounds the command's work before any of
// it is done.
func (e *Env) reserveHandlers(o *options) ([]string, error) {
	v, err := o.value()
	if err != nil {
		return nil, err
	}
	n, err := positive(v)
	if err != nil {
		return nil, err
	}
	if n > int64(e.maxReserveNames()) {
		return nil, e.errTooManyNames("handlers")
	}
	if n > int64(len(o.args)-o.i) {
		return nil, protocol.ErrSyntax
	}
	names := o.args[o.i : o.i+int(n)]
	o.i += int(n)
	return idents(names, "handler")
}

// reserveQueues is QUEUES' names: the rest of the arguments, at least one
// (repeats as for HANDLERS).
func (e *Env) reserveQueues(o *options) ([]string, error) {
	names := o.rest()
	if len(names) == 0 {
		return nil, protocol.ErrSyntax
	}
	if len(names) > e.maxReserveNames() {
		return nil, e.errTooManyNames("queues")
	}
	return idents(names, "queue")
}

// idents checks each of names as an identifier (ident) of kind what.
func idents(names [][]byte, what string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, b := range names {
		name, err := ident(b, what)
		if err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

// reserveWaits reports whether a JOBRESERVE may wait: whether any argument
// after the lease is BLOCK (a queue or handler so named counts too, which
// only costs that command the fast path).
func reserveWaits(args [][]byte) bool {
	for _, a := range args[min(3, len(args)):] {
		if keyword(a, "BLOCK") {
			return true
		}
	}
	return false
}

// reservations is JOBRESERVE's reply: an array of maps (flat field/value
// arrays in RESP2). It encodes itself, so a reservation costs no boxed
// fields.
type reservations []store.Reservation

var _ protocol.Array = reservations(nil)

func (rs reservations) Len() int { return len(rs) }

func (rs reservations) AppendElem(b []byte, i int, p protocol.Proto) []byte {
	rv := &rs[i]
	b = protocol.AppendMapLen(b, 8, p)
	b = appendField(b, "token", rv.Token)
	b = appendField(b, "id", rv.ID)
	b = appendField(b, "queue", rv.Queue)
	b = appendField(b, "handler", rv.Handler)
	b = protocol.AppendBulkString(b, "payload")
	b = protocol.AppendBulk(b, rv.Payload)
	b = protocol.AppendBulkString(b, "priority")
	b = protocol.AppendInt(b, rv.Priority)
	b = protocol.AppendBulkString(b, "attempt")
	b = protocol.AppendInt(b, rv.Attempt)
	b = protocol.AppendBulkString(b, "expires_at")
	return protocol.AppendInt(b, rv.ExpiresAt)
}

func appendField(b []byte, name, value string) []byte {
	return protocol.AppendBulkString(protocol.AppendBulkString(b, name), value)
}

// JOBSTART token
func (e *Env) jobStart(c *protocol.Client, args [][]byte) (any, error) {
	n, err := e.Store.Start(e.now(c), string(args[1]))
	if err != nil {
		return nil, err
	}
	return n, nil
}

// JOBTOUCH token lease-ms
func (e *Env) jobTouch(c *protocol.Client, args [][]byte) (any, error) {
	lease, err := duration(args[2], false)
	if err != nil {
		return nil, err
	}
	exp, err := e.Store.Touch(e.now(c), string(args[1]), lease)
	if err != nil {
		return nil, err
	}
	return exp, nil
}

// JOBFAIL token [ERROR message] [RETRYIN ms | NORETRY]
func (e *Env) jobFail(c *protocol.Client, args [][]byte) (any, error) {
	var f store.FailOptions
	o := newOptions(args[2:])
	for o.more() {
		kw, err := o.next()
		if err != nil {
			return nil, err
		}
		switch kw {
		case "ERROR":
			v, err := o.value()
			if err != nil {
				return nil, err
			}
			f.Error, f.HasError = string(v), true
		case "RETRYIN":
			v, err := o.value()
			if err != nil {
				return nil, err
			}
			if f.RetryIn, err = duration(v, true); err != nil {
				return nil, err
			}
			f.HasRetry = true
		case "NORETRY":
			f.NoRetry = true
		default:
			return nil, protocol.ErrSyntax
		}
	}
	if f.HasRetry && f.NoRetry {
		return nil, protocol.ErrSyntax
	}
	st, err := e.Store.Fail(e.now(c), string(args[1]), f)
	if err != nil {
		return nil, err
	}
	return protocol.SimpleString(st.String()), nil
}

// JOBRELEASE token [DELAY ms] [THROTTLE key ms]
func (e *Env) jobRelease(c *protocol.Client, args [][]byte) (any, error) {
	var delay, throttle int64
	var key string
	o := newOptions(args[2:])
	for o.more() {
		kw, err := o.next()
		if err != nil {
			return nil, err
		}
		switch kw {
		case "DELAY":
			v, err := o.value()
			if err != nil {
				return nil, err
			}
			if delay, err = duration(v, true); err != nil {
				return nil, err
			}
		case "THROTTLE":
			k, err := o.value()
			if err != nil {
				return nil, err
			}
			if key, err = ident(k, "throttle key"); err != nil {
				return nil, err
			}
			v, err := o.value()
			if err != nil {
				return nil, err
			}
			if throttle, err = duration(v, true); err != nil {
				return nil, err
			}
		default:
			return nil, protocol.ErrSyntax
		}
	}
	var err error
	if key != "" {
		err = e.Store.ReleaseThrottle(e.now(c), string(args[1]), delay, key, throttle)
	} else {
		err = e.Store.Release(e.now(c), string(args[1]), delay)
	}
	if err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// JOBCANCEL id
func (e *Env) jobCancel(c *protocol.Client, args [][]byte) (any, error) {
	id, err := ident(args[1], "id")
	if err != nil {
		return nil, err
	}
	ok, err := e.Store.Cancel(e.now(c), id)
	if err != nil {
		return nil, err
	}
	return boolInt(ok), nil
}

// JOBRETRY id
func (e *Env) jobRetry(c *protocol.Client, args [][]byte) (any, error) {
	id, err := ident(args[1], "id")
	if err != nil {
		return nil, err
	}
	if err := e.Store.Retry(e.now(c), id); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// JOBGET id
func (e *Env) jobGet(c *protocol.Client, args [][]byte) (any, error) {
	id, err := ident(args[1], "id")
	if err != nil {
		return nil, err
	}
	j, ok := e.Store.Get(e.now(c), id)
	if !ok {
		return nil, nil
	}
	return jobMap(j), nil
}

// jobMap is JOBGET's reply shape, also used by QUEUEPEEK.
func jobMap(j store.Job) protocol.Map {
	var lastErr any
	if j.HasLastError {
		lastErr = j.LastError
	}
	m := protocol.Map{
		"id", j.ID, "queue", j.Queue, "handler", j.Handler, "payload", j.Payload,
		"state", j.State.String(), "priority", j.Priority,
		"concurrency_key", nullable(j.ConcurrencyKey), "rate_limit_key", nullable(j.RateLimitKey),
		"group", nullable(j.Group), "attempt", j.Attempt, "max_attempts", j.MaxAttempts,
		"created_at", j.CreatedAt, "updated_at", j.UpdatedAt, "run_at", nullableTime(j.RunAt),
		"worker", nullable(j.Worker), "expires_at", nullableTime(j.ExpiresAt),
		"last_error", lastErr, "blocked_by", nullable(j.BlockedBy),
		"result", nullBytes(j.Result), "progress", nullBytes(j.Progress),
		"deadline", nullableTime(j.Deadline), "timeout", nullableTime(j.Timeout),
	}
	if j.After != nil {
		m = append(m, "after", j.After) // what a waiting job still waits for
	}
	return append(m, moreKeys(j)...)
}

// moreKeys is what JOBGET adds for a job of several keys of a kind: every
// key of that kind, the first included (concurrency_key and
// rate_limit_key stay the first, so a job of one key of each replies as
// it always did).
func moreKeys(j store.Job) []any {
	var out []any
	if j.ConcurrencyKeys != nil {
		out = append(out, "concurrency_keys", j.ConcurrencyKeys)
	}
	if j.RateLimitKeys != nil {
		out = append(out, "rate_limit_keys", j.RateLimitKeys)
	}
	return out
}
