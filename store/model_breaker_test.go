package store_test

// The model's circuit breakers, as docs/semantics.md describes them: every
// failure since the breaker last closed is kept, and the window is judged
// by counting them; probes are the jobs reserved while it is half-open.

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"sluice/backpressure"
	"sluice/store"
)

type mbrk struct {
	failures, window, cooldown, probes int64
	fails                              []int64 // every failure counted since it last closed
	until                              int64   // 0 closed; open before, half-open from
	ok                                 int64
	probeIDs                           []string
}

// brkKey validates and canonicalizes a breaker's key.
func brkKey(key string) (string, bool) {
	key = strings.TrimSpace(key)
	target, name, found := strings.Cut(key, ":")
	if !found || !ident(&name) {
		return "", false
	}
	target = strings.ToLower(target)
	if target != "handler" && target != "queue" && target != "key" {
		return "", false
	}
	if target == "key" && isTemplate(name) {
		return "", false
	}
	return target + ":" + name, true
}

// brkOver lists the breakers over j, in the order the store looks at them.
func (m *model) brkOver(j *mjob) []string {
	keys := []string{"queue:" + j.job.Queue, "handler:" + j.job.Handler}
	for _, k := range mCKeys(j) {
		keys = append(keys, "key:"+k)
	}
	for _, k := range mRKeys(j) {
		if !slices.Contains(mCKeys(j), k) {
			keys = append(keys, "key:"+k)
		}
	}
	var out []string
	for _, k := range keys {
		if m.brk[k] != nil {
			out = append(out, k)
		}
	}
	return out
}

// breakerBlock is the blocked_by of the first breaker that refuses j now.
func (m *model) breakerBlock(now int64, j *mjob) string {
	for _, k := range m.brkOver(j) {
		b := m.brk[k]
		switch {
		case b.until == 0:
		case now < b.until:
			return fmt.Sprintf("breaker:%s open until %d", k, b.until)
		case b.ok+int64(len(b.probeIDs)) >= b.probes:
			return fmt.Sprintf("breaker:%s half-open probes %d/%d", k, b.ok+int64(len(b.probeIDs)), b.probes)
		}
	}
	return ""
}

func (m *model) brkReserved(now int64, j *mjob) {
	for _, k := range m.brkOver(j) {
		if b := m.brk[k]; b.until != 0 && now >= b.until {
			b.probeIDs = append(b.probeIDs, j.job.ID)
		}
	}
}

func (b *mbrk) open(now int64) {
	b.until, b.fails, b.ok, b.probeIDs = now+b.cooldown, nil, 0, nil
}

// brkOutcome counts the end of j's attempt at now.
func (m *model) brkOutcome(now int64, j *mjob, success bool) {
	for _, k := range m.brkOver(j) {
		b := m.brk[k]
		if i := indexOf(b.probeIDs, j.job.ID); i >= 0 {
			b.probeIDs = append(b.probeIDs[:i], b.probeIDs[i+1:]...)
			if !success {
				b.open(now)
			} else if b.ok++; b.ok >= b.probes {
				b.until, b.fails, b.ok, b.probeIDs = 0, nil, 0, nil
			}
			continue
		}
		if success || b.until != 0 {
			continue
		}
		b.fails = append(b.fails, now)
		n := int64(0)
		for _, t := range b.fails {
			if t > now-b.window {
				n++
			}
		}
		if n >= b.failures {
			b.open(now)
		}
	}
}

// brkFreed forgets j as a probe: given back or cancelled.
func (m *model) brkFreed(j *mjob) {
	for _, k := range m.brkOver(j) {
		b := m.brk[k]
		if i := indexOf(b.probeIDs, j.job.ID); i >= 0 {
			b.probeIDs = append(b.probeIDs[:i], b.probeIDs[i+1:]...)
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func (m *model) SetBreaker(now int64, key string, failures, window, cooldown, probes int64) error {
	key, ok := brkKey(key)
	if !ok || failures < 1 || failures > store.MaxBreakerFailures || window < 1 || cooldown < 1 ||
		probes < 1 || probes > store.MaxBreakerProbes {
		return store.ErrInvalid
	}
	m.maintain(now)
	m.brk[key] = &mbrk{failures: failures, window: window, cooldown: cooldown, probes: probes}
	return nil
}

func (m *model) brkInfo(now int64, key string) store.PolicyInfo {
	b := m.brk[key]
	info := store.PolicyInfo{Info: backpressure.Info{Kind: backpressure.Breaker, Key: key, Limit: b.failures,
		Period: b.window, Cooldown: b.cooldown, Probes: b.probes, ProbesOut: int64(len(b.probeIDs)), ProbesOK: b.ok}}
	switch {
	case b.until == 0:
		info.State = "closed"
		for _, t := range b.fails {
			if t > now-b.window {
				info.Active++
			}
		}
	case now < b.until:
		info.State, info.NextFreeAt, info.Blocking = "open", b.until, true
	default:
		info.State, info.Blocking = "half-open", b.ok+int64(len(b.probeIDs)) >= b.probes
	}
	if info.Blocking {
		for _, j := range m.jobs {
			if j.job.State == store.Queued && contains(m.brkOver(j), key) {
				info.Waiting++
			}
		}
	}
	return info
}

func (m *model) brkInfos(now int64) []store.PolicyInfo {
	keys := make([]string, 0, len(m.brk))
	for k := range m.brk {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []store.PolicyInfo
	for _, k := range keys {
		out = append(out, m.brkInfo(now, k))
	}
	return out
}
