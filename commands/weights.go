package commands

import (
	"sluice/protocol"
	"sluice/store"
)

// Weights of fair groups (JOBPUSH ... GROUP g) are policies of kind WEIGHT:
// set, deleted, shown and listed by the POLICY commands, store-wide.

// POLICYSET WEIGHT group weight
func (e *Env) weightSet(c *protocol.Client, args [][]byte) (any, error) {
	if len(args) != 4 {
		return nil, protocol.ErrSyntax
	}
	g, err := ident(args[2], "group")
	if err != nil {
		return nil, err
	}
	w, err := integer(args[3])
	if err != nil {
		return nil, err
	}
	if err := e.Store.SetWeight(e.now(c), g, w); err != nil {
		return nil, err
	}
	return protocol.OK, nil
}

// POLICYDEL WEIGHT group
func (e *Env) weightDel(c *protocol.Client, args [][]byte) (any, error) {
	g, err := ident(args[2], "group")
	if err != nil {
		return nil, err
	}
	ok, err := e.Store.DeleteWeight(e.now(c), g)
	if err != nil {
		return nil, err
	}
	return boolInt(ok), nil
}

// POLICYGET WEIGHT group
func (e *Env) weightGet(args [][]byte) (any, error) {
	g, err := ident(args[2], "group")
	if err != nil {
		return nil, err
	}
	w, ok, err := e.Store.GetWeight(g)
	if err != nil || !ok {
		return nil, err
	}
	return weightMap(w), nil
}

// weightMap has the fields of policyMap, so that a client reads either
// alike: limit is the weight; a weight holds nothing back.
func weightMap(w store.WeightInfo) protocol.Map {
	return protocol.Map{
		"kind", "weight", "key", w.Group, "limit", w.Weight, "period", nil,
		"active", int64(0), "waiting", int64(0), "next_free_at", nil,
	}
}

func weightMaps(ws []store.WeightInfo) []any {
	out := make([]any, len(ws))
	for i, w := range ws {
		out[i] = weightMap(w)
	}
	return out
}
