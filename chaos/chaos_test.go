package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The kinds of fault, injected in turn.
const (
	killLeader = iota
	killFollower
	pauseLeader
	isolateLeader
	oneWayLink
	kinds
)

var kindNames = [kinds]string{"kill -9 of the leader", "kill -9 of a follower", "SIGSTOP of the leader",
	"partition isolating the leader", "one-way partition"}

// faults injects faults in turn until each kind came minEach times and
// the run lasted at least minRun, then ends every fault.
type faulter struct {
	g      *group
	rng    *rand.Rand
	counts [kinds]int
	oneWay int // one-way partitions so far: they alternate direction
}

// inject brings one fault of kind k, holds it a moment and ends it.
func (f *faulter) inject(t *testing.T, k int) bool {
	g := f.g
	l := g.leader(10 * time.Second)
	if l < 0 {
		t.Logf("no leader before a fault; ending every fault")
		g.restore()
		return false
	}
	other := (l + 1 + f.rng.IntN(2)) % 3
	hold := time.Duration(300+f.rng.IntN(700)) * time.Millisecond
	switch k {
	case killLeader:
		g.nodes[l].kill()
	case killFollower:
		g.nodes[other].kill()
	case pauseLeader:
		g.nodes[l].pause()
	case isolateLeader:
		g.partition(l)
	case oneWayLink:
		if f.oneWay%2 == 0 {
			g.oneWay(l, other) // the follower stops hearing the leader
		} else {
			g.oneWay(other, l) // the leader stops hearing the follower
		}
		f.oneWay++
	}
	time.Sleep(hold)
	g.restore()
	f.counts[k]++
	time.Sleep(time.Duration(200+f.rng.IntN(400)) * time.Millisecond)
	return true
}

// chaosDuration is how long faults go on: SLUICE_CHAOS_SECONDS, or until
// each kind came 10 times.
func chaosDuration() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_CHAOS_SECONDS")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

// TestChaos runs producers and workers against a group of three while
// faults come, then checks the history against the group's final state.
func TestChaos(t *testing.T) {
	g := newGroup(t)
	setPolicies(t, g)
	h := newHistory()
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{g: g, r: &router{g: g}, h: h}
	w.end.Store(time.Now().Add(time.Hour).UnixNano())
	w.run(ctx, 4, 6)

	f := &faulter{g: g, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))}
	began := time.Now()
	long := chaosDuration()
	const minEach = 10
	nextReport := began.Add(time.Minute)
	for i := 0; ; i++ {
		done := true
		for _, c := range f.counts {
			done = done && c >= minEach
		}
		if done && time.Since(began) >= long {
			break
		}
		f.inject(t, i%kinds)
		if time.Now().After(nextReport) {
			t.Logf("%v: %d faults, %d replies, %d attempts without one", time.Since(began).Round(time.Second),
				sum(f.counts[:]), h.replies.Load(), h.errs.Load())
			nextReport = nextReport.Add(time.Minute)
		}
	}
	faulting := time.Since(began)
	g.restore()
	w.end.Store(time.Now().Add(15 * time.Second).UnixNano())
	cancel()
	w.wg.Wait()

	l := g.leader(30 * time.Second)
	if l < 0 {
		t.Fatal("no leader after every fault ended")
	}
	c := &checker{t: t, g: g, h: h, leader: l}
	c.converge()
	c.checkAll()

	for k, n := range f.counts {
		t.Logf("faults: %d × %s", n, kindNames[k])
	}
	t.Logf("ops: %d replies (%d pushes answered, %d reservations, %d token commands), %d attempts without a reply, in %v of faults",
		h.replies.Load(), c.answered, len(h.resvs), len(h.ops), h.errs.Load(), faulting.Round(time.Second))
	outcomes := map[string]int{}
	for _, o := range h.ops {
		what := "OK"
		if !o.ok {
			what, _, _ = strings.Cut(o.err, " ")
		}
		outcomes[o.kind+" "+what]++
	}
	t.Logf("token commands by outcome: %v", outcomes)
	t.Logf("checks: %d passed, %d failed", c.passed, c.failed)
	if s := os.Getenv("SLUICE_CHAOS_SECONDS"); s != "" {
		fmt.Printf("chaos: %v, %d faults, %d replies, checks %d passed, %d failed\n",
			faulting.Round(time.Second), sum(f.counts[:]), h.replies.Load(), c.passed, c.failed)
	}
}

func sum(a []int) int {
	n := 0
	for _, v := range a {
		n += v
	}
	return n
}

// checker compares the history with the group's final state.
type checker struct {
	t        testing.TB
	g        *group
	h        *history
	leader   int
	passed   int
	failed   int
	answered int
	final    map[string]map[string]string // JOBGET on the leader, per id
}

// check counts one check and reports it when it failed (at most 20
// reports per kind, then only the count).
func (c *checker) check(ok bool, format string, args ...any) {
	if ok {
		c.passed++
		return
	}
	c.failed++
	if c.failed <= 40 {
		c.t.Errorf(format, args...)
	}
}

func (c *checker) get(nd *node, args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return nd.cl.Do(ctx, args...).Result()
}

// ids are every job id a client was told of.
func (c *checker) ids() []string {
	seen := map[string]bool{}
	for _, p := range c.h.pushes {
		for _, id := range p.ids {
			seen[id] = true
		}
	}
	for _, r := range c.h.resvs {
		seen[r.id] = true
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// snapshot is what a node holds of the workload, read through reads.
func (c *checker) snapshot(nd *node, ids []string) (map[string]any, error) {
	out := map[string]any{}
	for len(ids) > 0 { // pipelines of 1,000 reads
		page := ids[:min(len(ids), 1000)]
		ids = ids[len(page):]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pipe := nd.cl.Pipeline()
		cmds := make([]*redis.Cmd, len(page))
		for i, id := range page {
			cmds[i] = pipe.Do(ctx, "JOBGET", id)
		}
		pipe.Exec(ctx)
		cancel()
		for i, id := range page {
			v, err := cmds[i].Result()
			if err == redis.Nil {
				out["job "+id] = nil
				continue
			}
			if err != nil {
				return nil, err
			}
			out["job "+id] = fields(v)
		}
	}
	for _, q := range queues {
		v, err := c.get(nd, "QUEUESTATS", q)
		if err != nil {
			return nil, err
		}
		out["queue "+q] = fields(v)
	}
	v, err := c.get(nd, "POLICYLIST")
	if err != nil {
		return nil, err
	}
	out["policies"] = fmt.Sprint(v)
	return out, nil
}

// converge waits until the workload's leases have ended and every node
// shows the same state, then records that state as the final one. The
// check that all nodes end alike is that they get there.
func (c *checker) converge() {
	ids := c.ids()
	deadline := time.Now().Add(60 * time.Second)
	var snaps []map[string]any
	for {
		time.Sleep(time.Second)
		// A write through the leader: followers apply up to it.
		(&router{g: c.g}).do(context.Background(), time.Second, probe...)
		snaps = snaps[:0]
		var err error
		for _, nd := range c.g.nodes {
			var s map[string]any
			if s, err = c.snapshot(nd, ids); err != nil {
				break
			}
			snaps = append(snaps, s)
		}
		if err == nil && reflect.DeepEqual(snaps[0], snaps[1]) && reflect.DeepEqual(snaps[0], snaps[2]) && settled(snaps[0]) {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				c.t.Fatalf("reading the final state: %v", err)
			}
			for k := range snaps[0] {
				if !reflect.DeepEqual(snaps[0][k], snaps[1][k]) || !reflect.DeepEqual(snaps[0][k], snaps[2][k]) {
					c.t.Errorf("%s differs: n0 %v, n1 %v, n2 %v", k, snaps[0][k], snaps[1][k], snaps[2][k])
				}
			}
			c.check(false, "the nodes did not reach the same state in 60 s")
			break
		}
	}
	c.check(true, "")
	c.final = map[string]map[string]string{}
	for _, id := range ids {
		s := snaps[c.leader]["job "+id]
		if m, ok := s.(map[string]string); ok {
			c.final[id] = m
		}
	}
}

// settled reports whether no job is reserved or running any more (every
// lease of the run has ended).
func settled(s map[string]any) bool {
	for _, q := range queues {
		m := s["queue "+q].(map[string]string)
		if m["reserved"] != "0" || m["running"] != "0" {
			return false
		}
	}
	return true
}

func (c *checker) checkAll() {
	c.checkPushes()
	c.checkAcks()
	c.checkTokens()
	c.checkCap()
	c.checkWindow()
	for _, s := range c.h.odd {
		c.check(false, "unexpected reply: %s", s)
	}
}

// checkPushes: every answered push is on the final leader, a key always
// answered the same id, and no queue counts more pushes than keys tried.
func (c *checker) checkPushes() {
	tried := map[string]int{}
	for _, p := range c.h.pushes {
		tried[p.queue]++
		if len(p.ids) == 0 {
			continue
		}
		c.answered++
		for _, id := range p.ids[1:] {
			c.check(id == p.ids[0], "push %s: its idempotency key answered ids %s and %s", p.key, p.ids[0], id)
		}
		_, ok := c.final[p.ids[0]]
		c.check(ok, "push %s answered id %s, which the final leader does not have", p.key, p.ids[0])
	}
	if c.g == nil {
		return // a made-up history (TestCheckerFindsViolations)
	}
	for _, q := range queues {
		v, err := c.get(c.g.nodes[c.leader], "QUEUESTATS", q)
		if err != nil {
			c.t.Fatal(err)
		}
		n, _ := strconv.Atoi(fields(v)["pushed_total"])
		c.check(n <= tried[q], "queue %s counts %d pushes, more than the %d keys pushed to it", q, n, tried[q])
	}
}

// byJob is the reservations of each job.
func (c *checker) byJob() map[string][]*resv {
	m := map[string][]*resv{}
	for _, r := range c.h.resvs {
		m[r.id] = append(m[r.id], r)
	}
	return m
}

// checkAcks: a job whose ack was answered OK ends succeeded and was never
// handed out again after that reply.
func (c *checker) checkAcks() {
	byJob := c.byJob()
	for _, o := range c.h.ops {
		if o.kind != "JOBACK" || !o.ok {
			continue
		}
		c.check(c.final[o.id]["state"] == "succeeded", "job %s acked OK at %v ends %q", o.id, o.got.Format(tf), c.final[o.id]["state"])
		for _, r := range byJob[o.id] {
			if r.sent.After(o.got) {
				c.check(false, "job %s acked OK at %v was reserved again by a request sent at %v (token %s)",
					o.id, o.got.Format(tf), r.sent.Format(tf), r.token)
			}
		}
	}
}

const tf = "15:04:05.000"

// checkTokens: a token is honoured only while it is its job's current
// reservation: never by a command sent after its lease ended, nor after a
// later reservation of the job was answered.
func (c *checker) checkTokens() {
	byJob := c.byJob()
	for _, o := range c.h.ops {
		if !o.ok {
			continue
		}
		r := c.h.byToken[o.token]
		c.check(o.sent.UnixMilli() <= r.expiresAt+1, "%s %s (job %s) sent at %v was honoured after the lease ended at %v",
			o.kind, o.token, o.id, o.sent.Format(tf), time.UnixMilli(r.expiresAt).Format(tf))
		for _, r2 := range byJob[o.id] {
			if r2 != r && r2.start() > r.start() && r2.got.Before(o.sent) {
				c.check(false, "%s %s (job %s) sent at %v was honoured after the job was reserved again (token %s, answered at %v)",
					o.kind, o.token, o.id, o.sent.Format(tf), r2.token, r2.got.Format(tf))
			}
		}
	}
}

// held is when a reservation surely held its job: from its start to its
// lease's end or the first command that could end it, whichever is first.
func (c *checker) held() map[*resv]int64 {
	end := map[*resv]int64{}
	for _, r := range c.h.resvs {
		end[r] = r.expiresAt
	}
	for _, o := range c.h.ops {
		if o.kind == "JOBSTART" {
			continue
		}
		r := c.h.byToken[o.token]
		if ms := o.sent.UnixMilli(); ms < end[r] {
			end[r] = ms
		}
	}
	return end
}

// checkCap: at no moment did more jobs of the capped key hold a
// reservation than its limit.
func (c *checker) checkCap() {
	end := c.held()
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, r := range c.h.resvs {
		if r.queue == capQueue && end[r] > r.start() {
			evs = append(evs, ev{r.start(), 1}, ev{end[r], -1})
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta // an end before a start at the same time
	})
	n, worst, at := 0, 0, int64(0)
	for _, e := range evs {
		n += e.delta
		if n > worst {
			worst, at = n, e.at
		}
	}
	c.t.Logf("concurrency %s: at most %d jobs held at once (limit %d)", capKey, worst, capLimit)
	c.check(worst <= capLimit, "concurrency %s: %d jobs held at once at %v, limit %d", capKey, worst,
		time.UnixMilli(at).Format(tf), capLimit)
}

// checkWindow: no window of the rate limit's period held more
// reservations of its key than the limit.
func (c *checker) checkWindow() {
	var starts []int64
	for _, r := range c.h.resvs {
		if r.queue == rateQueue {
			starts = append(starts, r.start())
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	worst, at := 0, int64(0)
	for i, j := 0, 0; i < len(starts); i++ {
		for starts[j] <= starts[i]-ratePeriod {
			j++
		}
		if n := i - j + 1; n > worst {
			worst, at = n, starts[i]
		}
	}
	c.t.Logf("rate limit %s: at most %d reservations in one window (limit %d per %d ms)", rateKey, worst, rateLimit, ratePeriod)
	c.check(worst <= rateLimit, "rate limit %s: %d reservations in the window ending %v, limit %d per %d ms",
		rateKey, worst, time.UnixMilli(at).Format(tf), rateLimit, ratePeriod)
}
