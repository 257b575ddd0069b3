package commands

import (
	"sluice/backpressure"
	"sluice/protocol"
	"sluice/store"
)

func policyCommands(e *Env) []protocol.Command {
	kindKey := []protocol.Arg{
		{Name: "kind", Type: "oneof", Args: []protocol.Arg{
			{Name: "concurrency", Type: "pure-token", Token: "CONCURRENCY"},
			{Name: "ratelimit", Type: "pure-token", Token: "RATELIMIT"},
			{Name: "weight", Type: "pure-token", Token: "WEIGHT"},
			{Name: "throttle", Type: "pure-token", Token: "THROTTLE"},
			{Name: "breaker", Type: "pure-token", Token: "BREAKER"}}},
		str("key"),
	}
	return []protocol.Command{
		{Name: "policyset", Arity: -4, Flags: protocol.Write | protocol.Fast, Handler: e.policySet,
			Group: "policies", Summary: "Create or change a concurrency cap, a rate limit, a weight or a circuit breaker.",
			Args: []protocol.Arg{{Name: "policy", Type: "oneof", Args: []protocol.Arg{
				{Name: "concurrency", Type: "block", Token: "CONCURRENCY", Args: []protocol.Arg{str("key"), integerArg("limit")}},
				{Name: "ratelimit", Type: "block", Token: "RATELIMIT", Args: []protocol.Arg{str("key"), integerArg("limit"), integerArg("period-ms")}},
				{Name: "weight", Type: "block", Token: "WEIGHT", Args: []protocol.Arg{str("group"), integerArg("weight")}},
				{Name: "breaker", Type: "block", Token: "BREAKER", Args: []protocol.Arg{str("target"), integerArg("failures"),
					integerArg("window-ms"), integerArg("cooldown-ms"), {Name: "probes", Type: "integer", Optional: true}}},
			}}}},
		{Name: "policydel", Arity: 3, Flags: protocol.Write | protocol.Fast, Handler: e.policyDel,
			Group: "policies", Summary: "Delete a policy.", Args: kindKey},
		{Name: "policyget", Arity: 3, Flags: protocol.ReadOnly | protocol.Fast, Handler: e.policyGet,
			Group: "policies", Summary: "Show a policy and its live usage.", Args: kindKey},
		{Name: "policylist", Arity: 1, Flags: protocol.ReadOnly, Handler: e.policyList,
			Group: "policies", Summary: "List every policy with its live usage."},
		{Name: "policythrottle", Arity: 3, Flags: protocol.Write | protocol.Fast, Handler: e.policyThrottle,
			Group: "policies", Summary: "Stop admissions under a key for a while (0 lifts it); returns its end.",
			Args: []protocol.Arg{str("key"), integerArg("ms")}},
	}
}

func parseKind(b []byte) (backpressure.Kind, error) {
	k, ok := backpressure.ParseKind(string(b))
	if !ok {
		return 0, protocol.ErrSyntax
	}
	return k, nil
}

// POLICYSET CONCURRENCY key limit
// POLICYSET RATELIMIT key limit period-ms
// POLICYSET WEIGHT group weight
// POLICYSET BREAKER handler:h|queue:q|key:k failures window-ms cooldown-ms [probes]
func (e *Env) policySet(c *protocol.Client, args [][]byte) (any, error) {
	if keyword(args[1], "WEIGHT") {
		return e.weightSet(c, args)
	}
	if keyword(args[1], "BREAKER") {
		return e.breakerSet(c, args)
	}
	kind, err := parseKind(args[1])
	if err != nil {
		return nil, err
	}
	if kind == backpressure.Throttle {
		return nil, protocol.ErrSyntax // POLICYTHROTTLE sets those
	}
	want := 4
	if kind == backpressure.RateLimit {
		want = 5
	}
	if len(args) != want {
		return nil, protocol.ErrSyntax
	}
	key, err := ident(args[2], "policy key")
	if err != nil {
		return nil, err
	}
	limit, err := integer(args[3])
	if err != nil {
		return nil, err
	}
	if kind == backpressure.Concurrency {
		err = e.Store.SetConcurrency(e.now(c), key, limit)
	} else {
		period, perr := integer(args[4])
		if perr != nil {
			return nil, perr
		}
		if period > maxDuration {
			return nil, errTooLong
		}
		err = e.Store.SetRateLimit(e.now(c), key, limit, period)
	}
	if err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// POLICYDEL CONCURRENCY|RATELIMIT|WEIGHT key
func (e *Env) policyDel(c *protocol.Client, args [][]byte) (any, error) {
	if keyword(args[1], "WEIGHT") {
		return e.weightDel(c, args)
	}
	kind, err := parseKind(args[1])
	if err != nil {
		return nil, err
	}
	key, err := ident(args[2], "policy key")
	if err != nil {
		return nil, err
	}
	ok, err := e.Store.DeletePolicy(e.now(c), kind, key)
	if err != nil {
		return nil, err
	}
	return boolInt(ok), nil
}

// POLICYGET CONCURRENCY|RATELIMIT|WEIGHT key
func (e *Env) policyGet(c *protocol.Client, args [][]byte) (any, error) {
	if keyword(args[1], "WEIGHT") {
		return e.weightGet(args)
	}
	kind, err := parseKind(args[1])
	if err != nil {
		return nil, err
	}
	key, err := ident(args[2], "policy key")
	if err != nil {
		return nil, err
	}
	p, ok, err := e.Store.GetPolicy(e.now(c), kind, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	return policyMap(p), nil
}

// POLICYLIST
func (e *Env) policyList(c *protocol.Client, args [][]byte) (any, error) {
	ps := e.Store.Policies(e.now(c))
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = policyMap(p)
	}
	return append(out, weightMaps(e.Store.Weights())...), nil
}

// POLICYSET BREAKER target failures window-ms cooldown-ms [probes]; probes
// defaults to 1.
func (e *Env) breakerSet(c *protocol.Client, args [][]byte) (any, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, protocol.ErrSyntax
	}
	key, err := ident(args[2], "breaker")
	if err != nil {
		return nil, err
	}
	failures, err := integer(args[3])
	if err != nil {
		return nil, err
	}
	window, err := duration(args[4], false)
	if err != nil {
		return nil, err
	}
	cooldown, err := duration(args[5], false)
	if err != nil {
		return nil, err
	}
	probes := int64(1)
	if len(args) == 7 {
		if probes, err = integer(args[6]); err != nil {
			return nil, err
		}
	}
	if err := e.Store.SetBreaker(e.now(c), key, failures, window, cooldown, probes); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// POLICYTHROTTLE key ms
func (e *Env) policyThrottle(c *protocol.Client, args [][]byte) (any, error) {
	key, err := ident(args[1], "throttle key")
	if err != nil {
		return nil, err
	}
	ms, err := duration(args[2], true)
	if err != nil {
		return nil, err
	}
	return e.Store.Throttle(e.now(c), key, ms)
}

// policyMap is a policy as POLICYGET shows it. A throttle has the same
// fields (no limit, no period, next_free_at its end); an instance of a
// template has one more, template. A breaker's limit is its threshold of
// failures, period its window, active the failures in it, next_free_at
// the end of its cooldown while open, and it adds state, cooldown, probes,
// probes_out and probes_ok.
func policyMap(p store.PolicyInfo) protocol.Map {
	var period, limit any = nil, p.Limit
	switch p.Kind {
	case backpressure.RateLimit:
		period = p.Period
	case backpressure.Throttle:
		limit = nil
	case backpressure.Breaker:
		period = p.Period
	}
	m := protocol.Map{
		"kind", p.Kind.String(), "key", p.Key, "limit", limit, "period", period,
		"active", p.Active, "waiting", p.Waiting, "next_free_at", nullableTime(p.NextFreeAt),
	}
	if p.Template != "" {
		m = append(m, "template", p.Template)
	}
	if p.Kind == backpressure.Breaker {
		m = append(m, "state", p.State, "cooldown", p.Cooldown, "probes", p.Probes,
			"probes_out", p.ProbesOut, "probes_ok", p.ProbesOK)
	}
	return m
}
