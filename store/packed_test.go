package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"sluice/backpressure"
)

// packedJobs counts the live packed entries of a store. Locks are taken:
// call it while no other operation runs.
func packedJobs(s *Store) int {
	n := 0
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, q := range sh.queues {
			for _, l := range q.lanes {
				for _, b := range l.buckets {
					n += b.np
				}
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// chunksOf lists the chunks of one queue's lane bucket, in FIFO order.
func chunksOf(s *Store, queue string, k laneKey, prio int64) []*chunk {
	sh := s.shardOf(queue)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []*chunk
	if q := sh.queues[queue]; q != nil {
		if l := q.lanes[k]; l != nil {
			if b := l.bucketOf(prio); b != nil {
				for c := b.first; c != nil; c = c.next {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

func peekIDs(t *testing.T, s *Store, now int64, queue string, n int) []string {
	t.Helper()
	js, err := s.Peek(now, queue, n)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return ids
}

// TestPackedMixedFIFO interleaves packed jobs with jobs that re-entered
// queued (released, expired, due) in one bucket and across priorities:
// peek and reserve must follow entry order whichever form a job has.
func TestPackedMixedFIFO(t *testing.T) {
	f := newFixture(t)
	a, b, c := f.push("q h"), f.push("q h"), f.push("q h")
	eq(t, "packed after pushes", packedJobs(f.s), 3)
	id, tok := f.one("q")
	eq(t, "first", id, a)
	eq(t, "packed after a reservation", packedJobs(f.s), 2)
	if err := f.s.Release(f.now, tok, 0); err != nil { // a is queued again, after c
		t.Fatal(err)
	}
	d := f.push("q h")
	s := f.push("q h delay=10") // due later: enters queued after d
	hi := f.push("q h prio=5")
	hi2 := f.push("q h prio=5")
	f.check()
	eq(t, "packed", packedJobs(f.s), 5) // b, c, d, hi, hi2
	eq(t, "peek", peekIDs(t, f.s, f.now, "q", 0), []string{hi, hi2, b, c, a, d})
	f.now += 10
	e := f.push("q h") // the due job was queued (at maintenance) before e
	eq(t, "peek after due", peekIDs(t, f.s, f.now, "q", 0), []string{hi, hi2, b, c, a, d, s, e})

	// Expire a packed-born job: it comes back in the ring of its bucket,
	// after hi2, which is still packed.
	id, _ = f.one("q")
	eq(t, "reserved", id, hi)
	f.now += 1000 // the lease (1000 ms) runs out
	g := f.push("q h")
	eq(t, "peek after expiry", peekIDs(t, f.s, f.now, "q", 0), []string{hi2, hi, b, c, a, d, s, e, g})
	ids, _ := f.reserve(20, nil, "q")
	eq(t, "reserve order", ids, []string{hi2, hi, b, c, a, d, s, e, g})
	eq(t, "packed at the end", packedJobs(f.s), 0)
}

// TestPackedMiddleOfChunk reads, cancels and peeks packed jobs in the
// middle of a chunk.
func TestPackedMiddleOfChunk(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i := 0; i < 10; i++ {
		id, err := f.s.Push(f.now+int64(i), PushOptions{Queue: "q", Handler: "h", Payload: []byte("payload-" + strconv.Itoa(i)),
			MaxAttempts: int64(i%3 + 1), Backoff: int64(100 * (i%2 + 1)), ConcurrencyKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	f.now += 10
	k := laneKey{"h", "k", "", "", ""}
	cs := chunksOf(f.s, "q", k, 0)
	most := 0 // a bucket's first chunk is sized for its first job; the next holds the others
	for _, c := range cs {
		most = max(most, c.live)
	}
	if most < 6 {
		t.Fatalf("the jobs are not packed together: %d chunks, at most %d jobs in one", len(cs), most)
	}
	j, ok := f.s.Get(f.now, ids[5])
	if !ok {
		t.Fatal("job 5 not found")
	}
	want := Job{ID: ids[5], Queue: "q", Handler: "h", Payload: []byte("payload-5"), State: Queued,
		ConcurrencyKey: "k", MaxAttempts: 3, Backoff: 200,
		CreatedAt: 1_000_005, UpdatedAt: 1_000_005, RunAt: 1_000_005}
	eq(t, "get", fmt.Sprintf("%+v", j), fmt.Sprintf("%+v", want))

	// The payload handed out is a copy: changing it changes nothing held.
	j.Payload[0] = 'X'
	j2, _ := f.s.Get(f.now, ids[5])
	eq(t, "payload after the caller changed its copy", string(j2.Payload), "payload-5")

	// blocked_by is computed for a packed job as for any queued job.
	if err := f.s.SetConcurrency(f.now, "k", 1); err != nil {
		t.Fatal(err)
	}
	f.one("q")
	j, _ = f.s.Get(f.now, ids[5])
	if !strings.HasPrefix(j.BlockedBy, "concurrency:k") {
		t.Fatalf("blocked_by: %q", j.BlockedBy)
	}

	if ok, err := f.s.Cancel(f.now, ids[5]); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	f.check()
	eq(t, "state", f.state(ids[5]), Cancelled)
	live := 0
	for _, c := range chunksOf(f.s, "q", k, 0) {
		live += c.live
	}
	eq(t, "live in the chunks", live, 8)
	if ok, err := f.s.Cancel(f.now, ids[5]); ok || err != nil {
		t.Fatalf("second cancel: %v %v", ok, err)
	}
	err := f.s.Retry(f.now, ids[6])
	var se *StateError
	if !errors.As(err, &se) || se.ID != ids[6] || se.From != Queued {
		t.Fatalf("retry of a packed queued job: %v", err)
	}
	want6 := append(append([]string{}, ids[1:5]...), ids[6:]...)
	eq(t, "peek", peekIDs(t, f.s, f.now, "q", 0), want6)
	eq(t, "peek 3", peekIDs(t, f.s, f.now, "q", 3), ids[1:4])
	if _, err := f.s.DeletePolicy(f.now, 1, "k"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.reserve(20, nil, "q")
	eq(t, "reserve", got, want6)
}

// TestPackedChunkEmptiedByCancels cancels every job of a chunk between two
// others: it leaves its bucket, and the FIFO stays whole.
func TestPackedChunkEmptiedByCancels(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i := 0; i < 300; i++ {
		ids = append(ids, f.push("q h"))
	}
	k := laneKey{"h", "", "", "", ""}
	cs := chunksOf(f.s, "q", k, 0)
	if len(cs) < 3 {
		t.Fatalf("%d chunks, want at least 3", len(cs))
	}
	first := cs[0].live
	mid := cs[1].live
	for _, id := range ids[first : first+mid] {
		if ok, err := f.s.Cancel(f.now, id); !ok || err != nil {
			t.Fatalf("cancel %s: %v %v", id, ok, err)
		}
	}
	f.check()
	after := chunksOf(f.s, "q", k, 0)
	eq(t, "chunks", len(after), len(cs)-1)
	if after[0] != cs[0] || after[1] != cs[2] {
		t.Fatal("the emptied chunk is still linked")
	}
	// Cancel the head chunk's jobs from the back: its head moves only at
	// the end.
	for i := first - 1; i >= 0; i-- {
		f.s.Cancel(f.now, ids[i])
		f.check()
	}
	eq(t, "chunks after the head chunk emptied", len(chunksOf(f.s, "q", k, 0)), len(cs)-2)
	want := ids[first+mid:]
	eq(t, "peek", peekIDs(t, f.s, f.now, "q", 1000), want)
	got, _ := f.reserve(1000, nil, "q")
	eq(t, "reserve", got, want)
	eq(t, "packed", packedJobs(f.s), 0)
}

// TestPackedChunkReuse drains a lane as fast as it fills: its chunk is
// rewound instead of replaced, and ids handed out earlier do not change.
func TestPackedChunkReuse(t *testing.T) {
	f := newFixture(t)
	var pushed []string
	var seen []*chunk
	for i := 0; i < 200; i++ {
		id := f.push("q h")
		pushed = append(pushed, id)
		cs := chunksOf(f.s, "q", laneKey{"h", "", "", "", ""}, 0)
		if len(cs) != 1 {
			t.Fatalf("%d chunks", len(cs))
		}
		if len(seen) == 0 || seen[len(seen)-1] != cs[0] {
			seen = append(seen, cs[0])
		}
		got, tok := f.one("q")
		eq(t, "reserved", got, id)
		if err := f.s.Ack(f.now, tok); err != nil {
			t.Fatal(err)
		}
	}
	eq(t, "chunks used", len(seen), 1)
	for i, id := range pushed {
		eq(t, "id", id, "j"+strconv.Itoa(i+1))
		j, ok := f.s.Get(f.now, id)
		if !ok {
			t.Fatalf("job %s is gone", id)
		}
		eq(t, "state of "+id, j.State, Succeeded)
		eq(t, "payload of "+id, string(j.Payload), "p")
	}
}

// TestPushKeepsNoPayload changes the caller's payload after each kind of
// push: packed, too big to pack, scheduled.
func TestPushKeepsNoPayload(t *testing.T) {
	f := newFixture(t)
	big := bytes.Repeat([]byte("b"), packMax+1)
	cases := []struct {
		name    string
		payload []byte
		runAt   int64
		packed  bool
	}{
		{"packed", []byte("small"), 0, true},
		{"big", big, 0, false},
		{"scheduled", []byte("later"), f.now + 5, false},
		{"nil", nil, 0, true},
		{"empty", []byte{}, 0, true},
	}
	for _, c := range cases {
		before := packedJobs(f.s)
		buf := bytes.Clone(c.payload)
		id, err := f.s.Push(f.now, PushOptions{Queue: "q", Handler: "h", Payload: buf, RunAt: c.runAt})
		if err != nil {
			t.Fatal(err)
		}
		eq(t, c.name+" packed", packedJobs(f.s) > before, c.packed)
		for i := range buf {
			buf[i] = '!'
		}
		j, _ := f.s.Get(f.now, id)
		if !bytes.Equal(j.Payload, c.payload) || (j.Payload == nil) != (c.payload == nil) {
			t.Fatalf("%s: payload %q (nil %v), want %q", c.name, j.Payload, j.Payload == nil, c.payload)
		}
	}
	f.check()
	f.now += 5
	rs, err := f.s.Reserve(f.now, ReserveOptions{Worker: "w", Lease: 100, Count: 10, Queues: []string{"q"}})
	if err != nil || len(rs) != len(cases) {
		t.Fatalf("reserve: %d %v", len(rs), err)
	}
	want := []string{"small", string(big), "", "", "later"}
	for i, r := range rs {
		eq(t, "reserved payload "+strconv.Itoa(i), string(r.Payload), want[i])
	}
	eq(t, "nil payload stays nil", rs[2].Payload == nil, true)
	eq(t, "empty payload stays empty", rs[3].Payload != nil, true)
}

// TestPackedPurgeAndFlush purges a queue mixing packed, re-queued and
// scheduled jobs, then flushes one with packed jobs.
func TestPackedPurgeAndFlush(t *testing.T) {
	f := newFixture(t)
	a := f.push("q h")
	b := f.push("q h2 prio=3")
	sc := f.push("q h delay=100")
	c := f.push("q h")
	_, tok := f.one("q") // b
	if err := f.s.Release(f.now, tok, 0); err != nil {
		t.Fatal(err)
	}
	other := f.push("r h")
	n, err := f.s.Purge(f.now, "q")
	if err != nil || n != 4 {
		t.Fatalf("purge: %d %v", n, err)
	}
	f.check()
	for _, id := range []string{a, b, sc, c} {
		eq(t, "state of "+id, f.state(id), Cancelled)
	}
	eq(t, "other queue", f.state(other), Queued)
	eq(t, "packed", packedJobs(f.s), 1)
	// Purged jobs were filed in push order: retention drops them so.
	f.s.ret.mu.Lock()
	var order []string
	for i := 0; i < f.s.ret.fifo.len(); i++ {
		order = append(order, f.s.ret.fifo.at(i).j.id)
	}
	f.s.ret.mu.Unlock()
	eq(t, "retention order", order, []string{a, b, sc, c})

	if err := f.s.Flush(f.now); err != nil {
		t.Fatal(err)
	}
	f.check()
	if _, ok := f.s.Get(f.now, other); ok {
		t.Fatal("a packed job survived FLUSHALL")
	}
	eq(t, "len", f.s.Len(), 0)
	if id := f.push("r h id=" + other); id != other {
		t.Fatalf("push after flush: %s", id)
	}
	eq(t, "packed after flush", packedJobs(f.s), 1)
}

// TestPackedSnapshotAndReplay dumps a store with packed jobs and loads it
// back packed, and replays a log whose records name packed jobs.
func TestPackedSnapshotAndReplay(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 2
	live, _ := New(cfg, NewSeqGenerator())
	jr := &memJournal{}
	live.SetJournal(jr)
	now := int64(5_000)
	var ids []string
	for i := 0; i < 40; i++ {
		p := PushOptions{Queue: "q" + strconv.Itoa(i%2), Handler: "h", Payload: []byte(strconv.Itoa(i)),
			Priority: int64(i % 3), MaxAttempts: int64(i % 4)}
		if i%7 == 0 {
			p.Payload = nil
		}
		id, err := live.Push(now+int64(i), p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	now += 100
	rs, _ := live.Reserve(now, ReserveOptions{Worker: "w", Lease: 50, Count: 3, Queues: []string{"q0"}})
	live.Release(now, rs[0].Token, 0)
	live.Cancel(now, ids[11])
	live.Cancel(now, ids[20])
	live.Tick(now + 60) // the other two leases run out
	now += 60
	if err := live.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	packedLive := packedJobs(live)
	if packedLive == 0 {
		t.Fatal("nothing is packed")
	}
	want := dump(t, live, now)

	replayed := replayAll(t, cfg, jr.recs, "replay")
	if err := replayed.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	eq(t, "packed after replay", packedJobs(replayed), packedLive)
	if diff := sameDump(dump(t, replayed, now), want); diff != "" {
		t.Fatalf("replayed state differs: %s", diff)
	}

	loaded := replayAll(t, cfg, want, "load")
	if err := loaded.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	eq(t, "packed after load", packedJobs(loaded), packedLive)
	if diff := sameDump(dump(t, loaded, now), want); diff != "" {
		t.Fatalf("loaded state differs: %s", diff)
	}
	for _, q := range []string{"q0", "q1"} {
		a, _ := live.Peek(now, q, 100)
		b, _ := loaded.Peek(now, q, 100)
		eq(t, "peek "+q, fmt.Sprintf("%+v", b), fmt.Sprintf("%+v", a))
	}
	// Records other than reserve and cancel are refused for a packed job
	// as for any queued one, and change nothing.
	for _, op := range []Op{OpStart, OpAck, OpDue, OpDrop, OpRetry, OpExpire} {
		if err := loaded.Replay(&Record{Op: op, Now: now, ID: ids[39]}); err == nil {
			t.Fatalf("%v of a queued job replayed", op)
		}
	}
	if err := loaded.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	eq(t, "packed after refused records", packedJobs(loaded), packedLive)
}

// TestPackedConcurrentLookups reads, cancels and reserves packed jobs from
// several goroutines at once, so that lookups race with the entries'
// unpacking and their chunks' reuse.
func TestPackedConcurrentLookups(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 2
	s, _ := New(cfg, NewSeqGenerator())
	const n = 3000
	for i := 0; i < n; i++ {
		if _, err := s.Push(1, PushOptions{Queue: "q", Handler: "h", Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	reserved, cancelled := map[string]bool{}, map[string]bool{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < n; i++ {
				id := "j" + strconv.Itoa(1+r.IntN(n))
				switch w {
				case 0, 1:
					rs, err := s.Reserve(1, ReserveOptions{Worker: "w", Lease: 1 << 40, Queues: []string{"q"}})
					if err != nil {
						t.Error(err)
						return
					}
					for _, x := range rs {
						mu.Lock()
						reserved[x.ID] = true
						mu.Unlock()
						if k := mustAtoi(x.ID[1:]); k <= n && string(x.Payload) != strconv.Itoa(k-1) {
							t.Errorf("job %s reserved with payload %q", x.ID, x.Payload)
						}
					}
					s.Push(1, PushOptions{Queue: "q", Handler: "h", Payload: []byte("new")})
				case 2:
					if ok, err := s.Cancel(1, id); err == nil && ok {
						mu.Lock()
						cancelled[id] = true
						mu.Unlock()
					}
				default:
					j, ok := s.Get(1, id)
					if !ok || j.ID != id {
						t.Errorf("get %s: %+v %v", id, j, ok)
					} else if mustAtoi(id[1:]) <= n && string(j.Payload) != strconv.Itoa(mustAtoi(id[1:])-1) {
						t.Errorf("get %s: payload %q", id, j.Payload)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	for id := range reserved {
		if want := Reserved; !cancelled[id] {
			j, _ := s.Get(1, id)
			eq(t, "state of "+id, j.State, want)
		}
	}
	for id := range cancelled {
		j, _ := s.Get(1, id)
		eq(t, "state of "+id, j.State, Cancelled)
	}
	if len(reserved) == 0 || len(cancelled) == 0 {
		t.Fatalf("%d reserved, %d cancelled: the goroutines did not mix", len(reserved), len(cancelled))
	}
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// TestCheckInvariantsSeesPackedDamage breaks the packed form in the ways
// CheckInvariants must notice.
func TestCheckInvariantsSeesPackedDamage(t *testing.T) {
	damage := []struct {
		name string
		do   func(s *Store, c *chunk)
		want string
	}{
		{"a live entry not indexed", func(s *Store, c *chunk) {
			id := string(c.idAt(c.head))
			s.index.remove(id, ref{c: c, off: c.head})
			sh := s.shardOf("q")
			sh.jobs.Add(-1)
			sh.bytes.Add(-JobBytes(1, len(id), 0))
			sh.queues["q"].counts[Queued]--
			sh.queues["q"].jobs--
		}, "not indexed"},
		{"a dead entry indexed", func(s *Store, c *chunk) {
			c.buf[c.head] |= entDead
		}, "does not hold it live"},
		{"a wrong live count", func(s *Store, c *chunk) { c.live++ }, "live"},
		{"entries out of order", func(s *Store, c *chunk) {
			off := c.nextLive(c.head)
			c.buf[off+1] = 0 // the second entry's seq delta: 0, the first one's
		}, "order"},
		{"a misfiled chunk", func(s *Store, c *chunk) { c.prev = c }, "misfiled"},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			s, _ := New(DefaultConfig(), NewSeqGenerator())
			for i := 0; i < 5; i++ {
				s.Push(1, PushOptions{Queue: "q", Handler: "h", Payload: []byte("x")})
			}
			if err := s.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			d.do(s, chunksOf(s, "q", laneKey{"h", "", "", "", ""}, 0)[0])
			err := s.CheckInvariants()
			if err == nil || !strings.Contains(err.Error(), d.want) {
				t.Fatalf("CheckInvariants = %v, want an error about %q", err, d.want)
			}
		})
	}
}

// Jobs of one lane with a priority each (a deadline used as priority, say)
// get a bucket each: a bucket's first chunk holds just its job, so such a
// job takes no more than the job-memory estimate counts for it. (Chunks
// used to be sized by the lane's chunk count, which gave each such job a
// 4 KiB chunk of its own once the lane had made four.)
func TestPackedBucketPerJobIsSmall(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 1
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		if _, err := s.Push(1, PushOptions{Queue: "q", Handler: "h", Priority: int64(i), Payload: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perJob := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	estimate := s.Bytes() / n
	t.Logf("%d heap bytes per job; the job-memory estimate counts %d", perJob, estimate)
	if perJob > estimate*5/4 {
		t.Fatalf("a queued job with a priority of its own takes %d heap bytes; the job limit counts %d", perJob, estimate)
	}
	runtime.KeepAlive(s)
}

// A lane that parked on a rate-limit key and then died leaves q.parked, and
// keeps no chunk aside: lanes that come and go on a key that never frees
// do not pile up.
func TestDeadParkedLanesAreForgotten(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 1
	cfg.Retention = 1
	s, err := New(cfg, NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1_000_000)
	if err := s.SetRateLimit(now, "R", 1, 1000); err != nil {
		t.Fatal(err)
	}
	// A job far in the future keeps the queue alive.
	if _, err := s.Push(now, PushOptions{Queue: "q", Handler: "keep", Payload: []byte("k"), RunAt: now + 1e12}); err != nil {
		t.Fatal(err)
	}
	var first *lane // the first round's lane, to look at once it died
	for round := 0; round < 50; round++ {
		now += 2000
		var ids []string
		for k := 0; k < 40; k++ {
			id, err := s.Push(now, PushOptions{Queue: "q", Handler: "h", RateLimitKey: "R", Payload: make([]byte, 100)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		// One is admitted; the lane then parks on R.
		rs, err := s.Reserve(now, ReserveOptions{Worker: "w", Lease: 100, Count: 2, Queues: []string{"q"}})
		if err != nil || len(rs) != 1 {
			t.Fatalf("reserve: %v %v", rs, err)
		}
		if round == 0 {
			sh := s.shardOf("q")
			sh.mu.Lock()
			first = sh.queues["q"].lanes[laneKey{"h", "", "R", "", ""}]
			sh.mu.Unlock()
		}
		for _, id := range ids[1:] {
			if _, err := s.Cancel(now, id); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Ack(now, rs[0].Token); err != nil {
			t.Fatal(err)
		}
		now += 10
		s.Tick(now) // retention drops the finished jobs: the lane dies
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	sh := s.shardOf("q")
	sh.mu.Lock()
	defer sh.mu.Unlock()
	q := sh.queues["q"]
	if q == nil {
		t.Fatal("the queue is gone")
	}
	for _, l := range q.parked[parkKey{backpressure.RateLimit, "R"}] {
		if l.dead {
			t.Fatalf("dead lanes stay in q.parked (%d listed)", len(q.parked[parkKey{backpressure.RateLimit, "R"}]))
		}
	}
	if first == nil || !first.dead || first.aside != nil {
		t.Fatalf("the first round's lane: %+v, want dead with no chunk aside", first)
	}
}
