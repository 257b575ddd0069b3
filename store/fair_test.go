package store

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// fairStore is a store with n jobs pushed to queue "q" per group of
// groups, group by group, at priority 0.
func fairStore(t testing.TB, perGroup int, groups ...string) *Store {
	t.Helper()
	s, err := New(DefaultConfig(), NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for i := 0; i < perGroup; i++ {
			if _, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", Group: g}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// groupsOf reserves n jobs one at a time from queue "q" and returns the
// group of each, in order.
func groupsOf(t testing.TB, s *Store, n int, worker string) []string {
	t.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		rs, err := s.Reserve(1000, ReserveOptions{Worker: worker, Lease: 60_000, Queues: []string{"q"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		j, _ := s.Get(1000, rs[0].ID)
		out = append(out, j.Group)
	}
	return out
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestFairLateGroup is the bar: A pushes 100,000 jobs, then B pushes 10;
// all of B's are among the next 20 reservations. Without groups they wait
// behind A's.
func TestFairLateGroup(t *testing.T) {
	for _, grouped := range []bool{true, false} {
		s, _ := New(DefaultConfig(), NewSeqGenerator())
		a, b := "", ""
		if grouped {
			a, b = "A", "B"
		}
		for i := 0; i < 100_000; i++ {
			must(t, pushErr(s.Push(1000, PushOptions{Queue: "q", Handler: "h", Group: a, ID: fmt.Sprintf("a%d", i)})))
		}
		for i := 0; i < 10; i++ {
			must(t, pushErr(s.Push(1000, PushOptions{Queue: "q", Handler: "h", Group: b, ID: fmt.Sprintf("b%d", i)})))
		}
		rs, err := s.Reserve(1000, ReserveOptions{Worker: "w", Lease: 1000, Count: 20, Queues: []string{"q"}})
		must(t, err)
		nb := 0
		for _, r := range rs {
			if r.ID[0] == 'b' {
				nb++
			}
		}
		if want := map[bool]int{true: 10, false: 0}[grouped]; nb != want {
			t.Fatalf("grouped %v: %d of B's jobs among the first 20 reservations, want %d", grouped, nb, want)
		}
		if err := s.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
	}
}

func pushErr(_ string, err error) error { return err }

// jain is Jain's fairness index of xs.
func jain(xs []int) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// TestFairJain is the bar: with 1,000 backlogged groups, Jain's index of
// reservations per group over any 10,000 consecutive reservations is at
// least 0.99.
func TestFairJain(t *testing.T) {
	const groups, window = 1000, 10_000
	names := make([]string, groups)
	for i := range names {
		names[i] = fmt.Sprintf("g%d", i)
	}
	s := fairStore(t, 30, names...) // pushed group by group: FIFO would serve g0's 30 first
	got := groupsOf(t, s, 25_000, "w")
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	counts := make([]int, groups)
	worst := 1.0
	for i, g := range got {
		counts[index[g]]++
		if i >= window {
			counts[index[got[i-window]]]--
		}
		if i >= window-1 {
			worst = math.Min(worst, jain(counts))
		}
	}
	if worst < 0.99 {
		t.Fatalf("Jain's index over a window of %d reservations fell to %.4f", window, worst)
	}
	t.Logf("worst Jain's index over any %d of %d reservations: %.6f", window, len(got), worst)
}

// TestFairWeights is the bar: while backlogged, groups share reservations
// within 2% of their weights.
func TestFairWeights(t *testing.T) {
	s := fairStore(t, 10_000, "w1", "w2", "w5", "plain")
	must(t, s.SetWeight(1000, "w2", 2))
	must(t, s.SetWeight(1000, "w5", 5))
	must(t, s.SetWeight(1000, "w1", 1))
	got := groupsOf(t, s, 9000, "w")
	weights := map[string]float64{"w1": 1, "w2": 2, "w5": 5, "plain": 1}
	for g, w := range weights {
		want := 9000 * w / 9
		if n := float64(count(got, g)); math.Abs(n-want) > 0.02*want {
			t.Errorf("group %s (weight %v): %v reservations, want %v ±2%%", g, w, n, want)
		}
	}
	// A weight given back to the default: equal shares again.
	if ok, err := s.DeleteWeight(1000, "w5"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	must(t, s.SetWeight(1000, "w2", 1))
	got = groupsOf(t, s, 4000, "w")
	for _, g := range []string{"w1", "w2", "w5", "plain"} {
		if n := count(got, g); n < 990 || n > 1010 {
			t.Errorf("group %s after the weights went back to 1: %d of 4000", g, n)
		}
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestFairRules: priority before turns; FIFO inside a group; a group that
// was idle takes one turn, not a burst; jobs without a group form one.
func TestFairRules(t *testing.T) {
	s := fairStore(t, 100, "A", "B")
	// An urgent job of A goes before everything of equal or lower priority.
	_, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", Group: "A", ID: "urgent", Priority: 5})
	must(t, err)
	rs, _ := s.Reserve(1000, ReserveOptions{Worker: "w", Lease: 1000, Queues: []string{"q"}})
	if rs[0].ID != "urgent" {
		t.Fatalf("first reservation %s, want the urgent job", rs[0].ID)
	}
	got := groupsOf(t, s, 100, "w")
	for i := 0; i+1 < len(got); i += 2 {
		if got[i] == got[i+1] {
			t.Fatalf("reservations %d and %d both went to %s: %v", i, i+1, got[i], got)
		}
	}
	// C was never served; it arrives with 10 jobs and the ungrouped jobs
	// with 10: each takes its turn in the rotation, not ten in a row.
	for i := 0; i < 10; i++ {
		_, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", Group: "C", ID: fmt.Sprintf("c%d", i)})
		must(t, err)
		_, err = s.Push(1000, PushOptions{Queue: "q", Handler: "h2", ID: fmt.Sprintf("n%d", i)})
		must(t, err)
	}
	got = groupsOf(t, s, 8, "w")
	for _, g := range []string{"A", "B", "C", ""} {
		if n := count(got, g); n != 2 {
			t.Fatalf("group %q had %d of the 8 reservations after C and the ungrouped arrived: %v", g, n, got)
		}
	}
	// FIFO inside a group.
	var cs []string
	for _, id := range []string{"c0", "c1", "c2"} {
		j, _ := s.Get(1000, id)
		cs = append(cs, j.State.String())
	}
	if cs[0] != "reserved" || cs[1] != "reserved" || cs[2] != "queued" {
		t.Fatalf("C's jobs c0..c2 are %v, want the two oldest reserved", cs)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestFairHandlers: the rotation is the queue's, across handlers, and a
// HANDLERS filter keeps it.
func TestFairHandlers(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	for i := 0; i < 50; i++ {
		for _, p := range []PushOptions{{Group: "A", Handler: "h1"}, {Group: "A", Handler: "h2"}, {Group: "B", Handler: "h2"}} {
			p.Queue = "q"
			_, err := s.Push(1000, p)
			must(t, err)
		}
	}
	got := groupsOf(t, s, 40, "w")
	if a, b := count(got, "A"), count(got, "B"); a != 20 || b != 20 {
		t.Fatalf("A had %d and B %d of 40 reservations across handlers, want 20 each", a, b)
	}
	var only []string
	for i := 0; i < 20; i++ {
		rs, err := s.Reserve(1000, ReserveOptions{Worker: "w", Lease: 1000, Handlers: []string{"h2"}, Queues: []string{"q"}})
		must(t, err)
		j, _ := s.Get(1000, rs[0].ID)
		if j.Handler != "h2" {
			t.Fatalf("HANDLERS h2 gave a job of %s", j.Handler)
		}
		only = append(only, j.Group)
	}
	if a, b := count(only, "A"), count(only, "B"); a != 10 || b != 10 {
		t.Fatalf("HANDLERS h2: A had %d and B %d of 20, want 10 each", a, b)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestFairBadInput: a bad group or weight is refused and changes nothing.
func TestFairBadInput(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	long := string(make([]byte, MaxIdentifier+1))
	if _, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", Group: long}); err == nil {
		t.Fatal("a group longer than the identifier bound was accepted")
	}
	for _, w := range []int64{0, -1, MaxWeight + 1} {
		if err := s.SetWeight(1000, "g", w); err == nil {
			t.Fatalf("weight %d was accepted", w)
		}
	}
	if err := s.SetWeight(1000, "", 2); err == nil {
		t.Fatal("an empty group name was given a weight")
	}
	if s.Len() != 0 || len(s.Weights()) != 0 || s.Memory().Queues != 0 {
		t.Fatalf("refused input left state behind: %d jobs, %v, %d bytes", s.Len(), s.Weights(), s.Memory().Queues)
	}
}

// TestFairReplayContinues: a store rebuilt from its log, or from a dump,
// continues the very same rotation, weights and round-robin places
// included.
func TestFairReplayContinues(t *testing.T) {
	cfg := DefaultConfig()
	live, _ := New(cfg, NewSeqGenerator())
	j := &memJournal{}
	live.SetJournal(j)
	must(t, live.SetWeight(1000, "B", 3))
	for i := 0; i < 40; i++ {
		for _, g := range []string{"A", "B", "C"} {
			for _, q := range []string{"q", "r"} {
				_, err := live.Push(1000, PushOptions{Queue: q, Handler: "h", Group: g})
				must(t, err)
			}
		}
	}
	rr := ReserveOptions{Worker: "w", Lease: 60_000, Queues: []string{"q", "r"}, RoundRobin: true}
	for i := 0; i < 7; i++ {
		_, err := live.Reserve(1000, rr)
		must(t, err)
	}
	groupsOf(t, live, 5, "x")
	fromLog := replayAll(t, cfg, j.recs, "log")
	fromDump := replayAll(t, cfg, dump(t, live, 1000), "dump")
	next := func(s *Store) []string {
		var out []string
		for i := 0; i < 30; i++ {
			rs, err := s.Reserve(1000, rr)
			must(t, err)
			g, _ := s.Get(1000, rs[0].ID)
			out = append(out, rs[0].Queue+"/"+g.Group)
		}
		return out
	}
	want := next(live)
	for name, s := range map[string]*Store{"log": fromLog, "dump": fromDump} {
		if err := s.CheckInvariants(); err != nil {
			t.Fatal(name, err)
		}
		if got := next(s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("rebuilt from its %s, the store reserves\n%v\nwhere the live one reserved\n%v", name, got, want)
		}
	}
}

// TestRoundRobin: ROUNDROBIN starts after the queue that last gave the
// worker a job, per worker, and takes one job per queue in turn.
func TestRoundRobin(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	for _, q := range []string{"a", "b", "c"} {
		for i := 0; i < 10; i++ {
			_, err := s.Push(1000, PushOptions{Queue: q, Handler: "h"})
			must(t, err)
		}
	}
	queuesOf := func(worker string, count int) string {
		rs, err := s.Reserve(1000, ReserveOptions{Worker: worker, Lease: 1000, Count: count,
			Queues: []string{"a", "b", "c"}, RoundRobin: true})
		must(t, err)
		out := ""
		for _, r := range rs {
			out += r.Queue
		}
		return out
	}
	seq := ""
	for i := 0; i < 4; i++ {
		seq += queuesOf("w1", 1)
	}
	if seq != "abca" {
		t.Fatalf("w1's reserves took from %q, want abca", seq)
	}
	if got := queuesOf("w2", 1); got != "a" {
		t.Fatalf("w2's first reserve took from %q: its place is its own", got)
	}
	if got := queuesOf("w1", 4); got != "bcab" {
		t.Fatalf("w1's COUNT 4 took from %q, want bcab", got)
	}
	// Without ROUNDROBIN the list's order holds, and the place is kept.
	rs, _ := s.Reserve(1000, ReserveOptions{Worker: "w1", Lease: 1000, Queues: []string{"a", "b", "c"}})
	if rs[0].Queue != "a" {
		t.Fatalf("a plain reserve took from %s", rs[0].Queue)
	}
	if got := queuesOf("w1", 1); got != "c" {
		t.Fatalf("w1 continued with %q, want c", got)
	}
	// A queue that is empty is skipped, the rotation goes on.
	s.Purge(1000, "a")
	if got := queuesOf("w1", 3); got != "bcb" {
		t.Fatalf("with a empty, w1 took from %q, want bcb", got)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// fairCycler reserves, acks and pushes again on a queue whose backlog is
// spread over groups fair groups (1: every job in one group), so the
// backlog and the groups stay as they are.
type fairCycler struct {
	s     *Store
	now   int64
	names []string
	opts  ReserveOptions
}

func newFairCycler(b *testing.B, groups, perGroup int) *fairCycler {
	c := &fairCycler{s: benchStoreFair(b), now: 1_000_000, names: make([]string, groups)}
	for i := range c.names {
		c.names[i] = fmt.Sprintf("tenant-%06d", i)
	}
	for k := 0; k < perGroup; k++ {
		for _, g := range c.names {
			if _, err := c.s.Push(c.now, PushOptions{Queue: "q", Handler: "h", Group: g, Payload: make([]byte, 100)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	c.opts = ReserveOptions{Worker: "w", Lease: 30_000, Queues: []string{"q"}}
	return c
}

func benchStoreFair(b *testing.B) *Store {
	b.Helper()
	s, err := New(DefaultConfig(), NewSeqGenerator())
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// run does n reserve → ack → push cycles and returns how long the
// reserves and acks took (the push that keeps the backlog is not timed).
func (c *fairCycler) run(b *testing.B, n int) time.Duration {
	var took time.Duration
	p := PushOptions{Queue: "q", Handler: "h", Payload: make([]byte, 100)}
	for range n {
		c.now++
		start := time.Now()
		rs, err := c.s.Reserve(c.now, c.opts)
		if err != nil || len(rs) != 1 {
			b.Fatalf("reserve: %v %v", rs, err)
		}
		if err := c.s.Ack(c.now, rs[0].Token); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		j, _ := c.s.Get(c.now, rs[0].ID)
		p.Group = j.Group
		if _, err := c.s.Push(c.now, p); err != nil {
			b.Fatal(err)
		}
	}
	return took
}

// BenchmarkFairCost is the cost bar: reserve+ack with 300,000 jobs
// backlogged in 100,000 fair groups against the same backlog in one group
// (each cycle then pushes a job to the group served, untimed, to keep the
// backlog), paired as BenchmarkPolicyCost pairs its two stores (blocks of
// 10,000 cycles, alternating which goes first). speed = one group ÷
// 100,000 groups; the bar is ≥ 0.9.
func BenchmarkFairCost(b *testing.B) {
	one, many := newFairCycler(b, 1, 300_000), newFairCycler(b, 100_000, 3)
	one.run(b, 110_000) // retention full on both
	many.run(b, 110_000)
	debug.FreeOSMemory()
	b.ReportAllocs()
	t1, tn := pairedBlocks(b, func(n int) time.Duration { return one.run(b, n) },
		func(n int) time.Duration { return many.run(b, n) })
	b.ReportMetric(float64(t1.Nanoseconds())/float64(b.N), "ns/one-group")
	b.ReportMetric(float64(tn.Nanoseconds())/float64(b.N), "ns/100k-groups")
	b.ReportMetric(float64(t1)/float64(tn), "speed")
}

// BenchmarkFairGroupMemory measures an idle fair group (its jobs
// reserved): 100,000 jobs each in a lane of its own (a concurrency key
// each), in one group or in a group each; the difference per job is a
// group's memory. FairOverhead is it rounded up.
func BenchmarkFairGroupMemory(b *testing.B) {
	const n = 100_000
	measure := func(group func(i int) string) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		s := benchStoreFair(b)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			key := fmt.Sprintf("k%09d", i)
			if _, err := s.Push(1, PushOptions{Queue: "q", Handler: "h", ID: key, ConcurrencyKey: key, Group: group(i)}); err != nil {
				b.Fatal(err)
			}
		}
		if rs, err := s.Reserve(1, ReserveOptions{Worker: "w", Lease: 1 << 40, Count: n, Queues: []string{"q"}}); err != nil || len(rs) != n {
			b.Fatal(len(rs), err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	for range b.N {
		shared := measure(func(int) string { return "g" })
		own := measure(func(i int) string { return fmt.Sprintf("g%09d", i) })
		b.ReportMetric(own-shared-10, "bytes/group") // less the 10-byte name, counted apart
	}
}

// TestFairMemory: --maxmemory counts a named group while it is held, a
// weight while it is set, and a worker remembered by ROUNDROBIN.
func TestFairMemory(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	_, err := s.Push(1000, PushOptions{Queue: "q", Handler: "h", ID: "a"})
	must(t, err)
	base := s.Memory().Queues
	_, err = s.Push(1000, PushOptions{Queue: "q", Handler: "h", ID: "b", Group: "tenant"})
	must(t, err)
	if got, want := s.Memory().Queues-base, int64(LaneOverhead+FairOverhead+len("tenant")); got != want {
		t.Fatalf("a job in a new group added %d bytes, want %d", got, want)
	}
	must(t, s.SetWeight(1000, "tenant", 3))
	if got, want := s.Memory().Queues-base, int64(LaneOverhead+FairOverhead+WeightOverhead+2*len("tenant")); got != want {
		t.Fatalf("with a weight: %d bytes, want %d", got, want)
	}
	if _, err := s.Reserve(1000, ReserveOptions{Worker: "wk", Lease: 1000, Queues: []string{"q"}, RoundRobin: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Memory().Queues-base, int64(LaneOverhead+FairOverhead+WeightOverhead+2*len("tenant")+RotationOverhead+len("wk")); got != want {
		t.Fatalf("with a worker remembered: %d bytes, want %d", got, want)
	}
	s.Cancel(1000, "b")
	s.Flush(1000)
	if got := s.Memory().Queues; got != 0 {
		t.Fatalf("after FLUSHALL %d bytes are still counted", got)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	// A limit refuses a weight that does not fit, and changes nothing.
	cfg := DefaultConfig()
	cfg.MaxBytes = WeightOverhead
	small, _ := New(cfg, NewSeqGenerator())
	if err := small.SetWeight(1000, "tenant", 2); err == nil {
		t.Fatal("a weight past --maxmemory was accepted")
	}
	if len(small.Weights()) != 0 || small.Memory().Queues != 0 {
		t.Fatal("a refused weight left state behind")
	}
}
