package protocol

import (
	"sync"
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds, in microseconds, of the command
// latency histogram's buckets (Prometheus's "le"); a last bucket holds the
// rest.
var LatencyBounds = [...]uint64{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000}

// statShards spreads each command's counters over cache lines: a
// connection updates the shard of its id, so connections busy on different
// cores rarely write the same line.
const statShards = 8

// cmdStats are one command's counters.
type cmdStats struct {
	shards [statShards]cmdShard
}

// cmdShard counts calls by latency bucket (their sum is the number of
// calls), so a call costs two atomic adds.
type cmdShard struct {
	failed  atomic.Uint64 // calls that replied with an error
	usec    atomic.Uint64 // time spent, µs
	buckets [len(LatencyBounds) + 1]atomic.Uint64
	_       [64 - (2+len(LatencyBounds)+1)*8%64]byte // to a multiple of 64 bytes
}

func (s *cmdStats) observe(shard int64, d time.Duration, failed bool) {
	sh := &s.shards[shard&(statShards-1)]
	us := uint64(d / time.Microsecond)
	i := 0
	for i < len(LatencyBounds) && us > LatencyBounds[i] {
		i++
	}
	sh.buckets[i].Add(1)
	sh.usec.Add(us)
	if failed {
		sh.failed.Add(1)
	}
}

// CommandStats are a command's totals since start (INFO commandstats,
// metrics). Buckets[i] counts calls of at most LatencyBounds[i] µs that fit
// no earlier bucket; the last counts the rest.
type CommandStats struct {
	Name    string
	Calls   uint64
	Failed  uint64
	Usec    uint64
	Buckets [len(LatencyBounds) + 1]uint64
}

// CommandStats lists every command that has run at least once, by name.
// Commands that only answered arity or authentication errors do not count.
func (s *Server) CommandStats() []CommandStats {
	var out []CommandStats
	for _, cmd := range s.table.list {
		var cs CommandStats
		for i := range cmd.stats.shards {
			sh := &cmd.stats.shards[i]
			cs.Failed += sh.failed.Load()
			cs.Usec += sh.usec.Load()
			for b := range sh.buckets {
				n := sh.buckets[b].Load()
				cs.Buckets[b] += n
				cs.Calls += n
			}
		}
		if cs.Calls > 0 {
			cs.Name = cmd.Name
			out = append(out, cs)
		}
	}
	return out
}

// SlowlogEntry is one command that took at least the slow log threshold
// (SLOWLOG GET).
type SlowlogEntry struct {
	ID         int64
	Time       int64 // Unix seconds, when the command started
	Micros     int64
	Args       []string // at most 32, each at most 128 bytes, as Redis trims them
	Addr, Name string
}

// slowlog keeps the most recent slow commands.
type slowlog struct {
	slower time.Duration // threshold; negative: off
	max    int

	mu      sync.Mutex // protects entries, next
	entries []SlowlogEntry
	next    int64
}

func (l *slowlog) add(e SlowlogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max == 0 {
		return
	}
	e.ID = l.next
	l.next++
	if len(l.entries) >= l.max {
		copy(l.entries, l.entries[1:])
		l.entries = l.entries[:len(l.entries)-1]
	}
	l.entries = append(l.entries, e)
}

// slowArgs copies a command's arguments the way Redis's slow log keeps
// them, with AUTH and HELLO's passwords redacted.
func slowArgs(cmd *Command, args [][]byte) []string {
	const maxArgs, maxLen = 32, 128
	n := min(len(args), maxArgs)
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if i == maxArgs-1 && len(args) > maxArgs {
			out = append(out, "... ("+Int(int64(len(args)-maxArgs+1))+" more arguments)")
			break
		}
		a := args[i]
		switch {
		case i > 0 && cmd.Flags&Redact != 0:
			out = append(out, "(redacted)")
			continue
		case len(a) > maxLen:
			out = append(out, string(a[:maxLen])+"... ("+Int(int64(len(a)-maxLen))+" more bytes)")
			continue
		}
		out = append(out, string(a))
	}
	return out
}

// Slowlog returns the most recent n slow log entries, newest first (n < 0:
// all).
func (s *Server) Slowlog(n int) []SlowlogEntry {
	l := &s.slow
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < 0 || n > len(l.entries) {
		n = len(l.entries)
	}
	out := make([]SlowlogEntry, 0, n)
	for i := len(l.entries) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, l.entries[i])
	}
	return out
}

// SlowlogLen is the number of slow log entries held.
func (s *Server) SlowlogLen() int {
	s.slow.mu.Lock()
	defer s.slow.mu.Unlock()
	return len(s.slow.entries)
}

// SlowlogReset empties the slow log.
func (s *Server) SlowlogReset() {
	s.slow.mu.Lock()
	s.slow.entries = nil
	s.slow.mu.Unlock()
}
