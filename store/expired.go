package store

import (
	"sync"
	"sync/atomic"

	"sluice/internal/minheap"
)

// expiredTokens remembers the most recent tokens whose lease expired. When
// over its bound it forgets the token that expired first (ties: the smaller
// token), an order that does not depend on when maintenance noticed the
// expiries, so a replayed store remembers the same tokens as the live one.
type expiredTokens struct {
	mu    sync.Mutex // protects set and heap; a leaf lock
	set   map[string]struct{}
	heap  []expiredToken
	max   int
	bytes atomic.Int64 // their estimated memory (ExpiredTokenOverhead each, plus the token)
}

type expiredToken struct {
	at  int64
	tok string
}

func (a expiredToken) Less(b expiredToken) bool {
	return a.at < b.at || (a.at == b.at && a.tok < b.tok)
}

func (e *expiredTokens) init(max int) {
	e.mu.Lock()
	e.set = make(map[string]struct{})
	e.heap = nil
	e.max = max
	e.bytes.Store(0)
	e.mu.Unlock()
}

func (e *expiredTokens) add(tok string, at int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.set[tok]; ok {
		return
	}
	e.set[tok] = struct{}{}
	e.bytes.Add(ExpiredTokenOverhead + int64(len(tok)))
	e.heap = minheap.Push(e.heap, expiredToken{at, tok})
	for len(e.heap) > e.max {
		tok := e.popLocked().tok
		delete(e.set, tok)
		e.bytes.Add(-ExpiredTokenOverhead - int64(len(tok)))
	}
}

// Lock must be held.
func (e *expiredTokens) popLocked() expiredToken {
	h, top := minheap.Pop(e.heap)
	e.heap = h
	return top
}

// countBytes recounts what bytes keeps, for consistency checks.
func (e *expiredTokens) countBytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for tok := range e.set {
		n += ExpiredTokenOverhead + int64(len(tok))
	}
	return n
}

func (e *expiredTokens) has(tok string) bool {
	e.mu.Lock()
	_, ok := e.set[tok]
	e.mu.Unlock()
	return ok
}
