package protocol

import (
	"cmp"
	"slices"
	"time"
)

// Client buffer accounting (Redis 7's maxmemory-clients). Each connection
// counts what its buffers hold, by capacity: input (the guard's read
// buffer, the command reader's buffer, which grows to hold a large or
// partial command, and what Wait.Park read while blocked) and output (the
// reply writer's buffer). The owner goroutine looks at those capacities
// after each read of the socket and around each write, and touches the
// client's and the server's counters only when one has changed, so a
// pipeline of small commands costs a few comparisons per read, no atomic
// operation. When the server's total passes Config.MaxMemoryClients, the
// clients holding the most are closed, biggest first, until it is back
// under the limit.

// sized counts the client's buffers again. Owner goroutine only.
func (c *Client) sized() {
	in := int64(len(c.guard.in) + cap(c.rd.buf) + cap(c.src.pending))
	if c.txn != nil {
		in += c.txn.bytes // queued commands wait in memory until EXEC
	}
	out := int64(cap(c.w.b))
	c.w.counted = cap(c.w.b)
	din, dout := in-c.memIn.Load(), out-c.memOut.Load()
	if din == 0 && dout == 0 {
		return
	}
	c.memIn.Store(in)
	c.memOut.Store(out)
	s := c.srv
	grew := din + dout
	total := s.clientMem.Add(grew)
	if lim := s.cfg.MaxMemoryClients; grew > 0 && lim > 0 && total > lim {
		s.evictClients()
	}
}

// released takes a closed client's buffers out of the server's total.
func (s *Server) released(c *Client) {
	s.clientMem.Add(-(c.memIn.Load() + c.memOut.Load()))
}

// evictClients closes the clients whose buffers hold the most until the
// total is within the limit. A client already closing is not counted: its
// buffers go with it. Any client's goroutine may call it.
func (s *Server) evictClients() {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	lim := s.cfg.MaxMemoryClients
	total := s.clientMem.Load()
	if total <= lim {
		return
	}
	type holder struct {
		c     *Client
		bytes int64
	}
	s.mu.Lock()
	hs := make([]holder, 0, len(s.clients))
	for _, c := range s.clients {
		n := c.memIn.Load() + c.memOut.Load() + c.memMon.Load()
		if c.killed.Load() {
			total -= n
			continue
		}
		if c.noEvict.Load() {
			continue // CLIENT NO-EVICT ON: counted, never closed
		}
		hs = append(hs, holder{c, n})
	}
	s.mu.Unlock()
	slices.SortFunc(hs, func(a, b holder) int { return cmp.Compare(b.bytes, a.bytes) })
	for _, h := range hs {
		if total <= lim {
			break
		}
		// Counted before the kill: once the client is gone, the stats
		// must already show why.
		s.evicted.Add(1)
		h.c.kill()
		total -= h.bytes
		// One line a second at most: a flood of clients evicted one after
		// another must not become a flood of log lines.
		if now := time.Now(); now.Sub(s.evictLogged) < time.Second {
			s.evictUnlogged++
			continue
		} else {
			s.evictLogged = now
		}
		s.log.Warn().Int64("client", h.c.id).Str("addr", h.c.addr).
			Int64("bytes", h.bytes).Int64("input_bytes", h.c.memIn.Load()).Int64("output_bytes", h.c.memOut.Load()).
			Int64("maxmemory_clients", lim).Int64("evicted_unlogged", s.evictUnlogged).
			Msg("client buffers past maxmemory-clients: closing the client holding the most (evicted_unlogged: those closed since the last such line)")
		s.evictUnlogged = 0
	}
}

// SetNoEvict keeps the client out of evictions for maxmemory-clients (CLIENT
// NO-EVICT ON), or puts it back (OFF). Its buffers still count.
func (c *Client) SetNoEvict(on bool) { c.noEvict.Store(on) }
