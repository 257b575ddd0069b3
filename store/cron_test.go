package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// cronJobs lists the jobs of queue as "payload@created_at", in queue order.
func cronJobs(t *testing.T, s *Store, now int64, queue string) []string {
	t.Helper()
	js, err := s.Peek(now, queue, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range js {
		out = append(out, fmt.Sprintf("%s@%d", j.Payload, j.CreatedAt))
	}
	return out
}

func cronEntry1(t *testing.T, s *Store, now int64, name string) CronEntry {
	t.Helper()
	for _, e := range s.CronList(now) {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no entry %q", name)
	return CronEntry{}
}

// @every 1s pushes one job per tick, created at the tick, whatever the
// timer's lateness within the grace; the entry says what it did.
func TestCronEverySecondOncePerTick(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	const t0 = 1_000_000_500
	created, err := s.CronSet(t0, CronOptions{Name: "beat", Spec: "@every 1s", Queue: "q", Handler: "h", Payload: []byte("b")})
	must(t, err)
	if !created {
		t.Fatal("a new entry should be reported created")
	}
	if d := s.NextDeadline(); d != 1_000_001_000 {
		t.Fatalf("NextDeadline = %d, want the first whole second after the set", d)
	}
	var want []string
	for now := int64(t0); now <= t0+10_000; now += 37 { // ticks reached 0-36 ms late
		s.Tick(now)
	}
	for tick := int64(1_000_001_000); tick <= t0+10_000; tick += 1000 {
		want = append(want, fmt.Sprintf("b@%d", tick))
	}
	if got := cronJobs(t, s, t0+10_000, "q"); !slices.Equal(got, want) {
		t.Fatalf("jobs:\n got %v\nwant %v", got, want)
	}
	e := cronEntry1(t, s, t0+10_000, "beat")
	if e.Fired != 10 || e.Missed != 0 || e.Last != 1_000_010_000 || e.Next != 1_000_011_000 || e.Zone != "UTC" {
		t.Fatalf("entry %+v", e)
	}
	if s.CronFired() != 10 {
		t.Fatalf("CronFired = %d", s.CronFired())
	}
	must(t, s.CheckInvariants())
}

// A tick reached within the grace fires late, created at its own time; one
// reached later is skipped, and no burst makes up for the ticks missed.
func TestCronMisfireSkips(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	_, err := s.CronSet(0, CronOptions{Name: "beat", Spec: "@every 1s", Queue: "q", Handler: "h", Payload: []byte("b")})
	must(t, err)
	s.Tick(1999)   // tick 1000, 999 ms late: fires
	s.Tick(5300)   // ticks 2000..4000 more than the grace old, 5000 within it: 5000 alone fires
	s.Tick(9000)   // 6000..8000 missed, and 9000 is due now
	s.Tick(12_000) // 10000 and 11000 missed, 12000 due now
	want := []string{"b@1000", "b@5000", "b@9000", "b@12000"}
	if got := cronJobs(t, s, 12_000, "q"); !slices.Equal(got, want) {
		t.Fatalf("jobs:\n got %v\nwant %v", got, want)
	}
	e := cronEntry1(t, s, 12_000, "beat")
	if e.Fired != 4 || e.Missed != 3 || e.Next != 13_000 {
		t.Fatalf("entry %+v", e)
	}
	// A cron schedule after a long pause: nothing fires, the next tick is
	// the schedule's first after now.
	_, err = s.CronSet(12_000, CronOptions{Name: "min", Spec: "* * * * *", Queue: "m", Handler: "h"})
	must(t, err)
	s.Tick(60_000 + 999)      // minute 1, 999 ms late
	s.Tick(10*60_000 + 1_000) // minute 10, exactly the grace late: skipped
	if got := cronJobs(t, s, 10*60_000+1_000, "m"); !slices.Equal(got, []string{"@60000"}) {
		t.Fatalf("jobs %v", got)
	}
	e = cronEntry1(t, s, 10*60_000+1_000, "min")
	if e.Fired != 1 || e.Missed != 1 || e.Next != 11*60_000 || e.Last != 60_000 {
		t.Fatalf("entry %+v", e)
	}
}

// Bad input is refused with a clear error, and nothing changes or is
// logged.
func TestCronBadInput(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	j := &memJournal{}
	s.SetJournal(j)
	ok := CronOptions{Name: "n", Spec: "* * * * *", Queue: "q", Handler: "h"}
	for _, c := range []struct {
		what string
		edit func(*CronOptions)
		want string
	}{
		{"empty name", func(o *CronOptions) { o.Name = " " }, "cron name must not be empty"},
		{"long name", func(o *CronOptions) { o.Name = strings.Repeat("n", MaxIdentifier+1) }, "cron name is longer"},
		{"empty spec", func(o *CronOptions) { o.Spec = "" }, "schedule must not be empty"},
		{"long spec", func(o *CronOptions) { o.Spec = strings.Repeat("*", MaxCronSpec+1) }, "schedule is longer"},
		{"bad spec", func(o *CronOptions) { o.Spec = "61 * * * *" }, `schedule "61 * * * *"`},
		{"six fields", func(o *CronOptions) { o.Spec = "0 * * * * *" }, "schedule"},
		{"zone in spec", func(o *CronOptions) { o.Spec = "TZ=UTC * * * * *" }, "give it with TZ"},
		{"sub-second", func(o *CronOptions) { o.Spec = "@every 500ms" }, "whole number of seconds"},
		{"fraction", func(o *CronOptions) { o.Spec = "@every 1500ms" }, "whole number of seconds"},
		{"bad duration", func(o *CronOptions) { o.Spec = "@every soon" }, "schedule"},
		{"never", func(o *CronOptions) { o.Spec = "0 0 30 2 *" }, "never fires"},
		{"unknown zone", func(o *CronOptions) { o.Zone = "Mars/Olympus" }, `unknown time zone "Mars/Olympus"`},
		{"local zone", func(o *CronOptions) { o.Zone = "Local" }, `"Local" is not allowed`},
		{"machine's zone file", func(o *CronOptions) { o.Zone = "localtime" }, `"localtime" is not allowed`},
		{"posix rules", func(o *CronOptions) { o.Zone = "posixrules" }, `"posixrules" is not allowed`},
		{"right zone", func(o *CronOptions) { o.Zone = "right/UTC" }, `"right/UTC" is not allowed`},
		{"posix zone", func(o *CronOptions) { o.Zone = "posix/Asia/Tokyo" }, `"posix/Asia/Tokyo" is not allowed`},
		{"long zone", func(o *CronOptions) { o.Zone = strings.Repeat("z", MaxCronZone+1) }, "time zone is longer"},
		{"no queue", func(o *CronOptions) { o.Queue = "" }, "queue must not be empty"},
		{"no handler", func(o *CronOptions) { o.Handler = "" }, "handler must not be empty"},
		{"attempts", func(o *CronOptions) { o.MaxAttempts = -1 }, "max attempts"},
		{"backoff", func(o *CronOptions) { o.Backoff = -1 }, "backoff"},
	} {
		o := ok
		c.edit(&o)
		_, err := s.CronSet(1000, o)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an invalid-argument error with %q", c.what, err, c.want)
		}
	}
	if _, err := s.CronDel(1000, ""); err == nil {
		t.Error("CronDel of an empty name should be refused")
	}
	if n := len(s.CronList(1000)); n != 0 || len(j.recs) != 0 || s.NextDeadline() != 0 {
		t.Fatalf("refusals changed something: %d entries, %d records, deadline %d", n, len(j.recs), s.NextDeadline())
	}
	// A failing log refuses the change too.
	j.err = errors.New("disk full")
	if _, err := s.CronSet(1000, ok); !errors.Is(err, ErrMisconf) {
		t.Fatalf("CronSet while the log fails: %v", err)
	}
	if n := len(s.CronList(1000)); n != 0 {
		t.Fatal("a refused CronSet left an entry")
	}
}

// The schedule is read in the entry's zone, across a change of daylight
// saving time.
func TestCronZoneAndDST(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	// Berlin leaves winter time on 2026-03-29 at 02:00 (UTC+1 → UTC+2).
	at := func(v string) int64 {
		tm, err := time.Parse(time.RFC3339, v)
		must(t, err)
		return tm.UnixMilli()
	}
	now := at("2026-03-28T00:00:00Z")
	_, err := s.CronSet(now, CronOptions{Name: "nine", Spec: "0 9 * * *", Zone: "Europe/Berlin", Queue: "q", Handler: "h"})
	must(t, err)
	e := cronEntry1(t, s, now, "nine")
	if e.Next != at("2026-03-28T08:00:00Z") || e.Zone != "Europe/Berlin" {
		t.Fatalf("first tick %s in %s, want 09:00 Berlin winter time", time.UnixMilli(e.Next).UTC(), e.Zone)
	}
	s.Tick(e.Next)
	if e = cronEntry1(t, s, e.Next, "nine"); e.Next != at("2026-03-29T07:00:00Z") {
		t.Fatalf("second tick %s, want 09:00 Berlin summer time", time.UnixMilli(e.Next).UTC())
	}
	// Without a zone, UTC.
	_, err = s.CronSet(now, CronOptions{Name: "utc", Spec: "0 9 * * *", Queue: "q", Handler: "h"})
	must(t, err)
	if e = cronEntry1(t, s, now, "utc"); e.Next != at("2026-03-28T09:00:00Z") || e.Zone != "UTC" {
		t.Fatalf("UTC entry %+v", e)
	}
}

// CRONSET of an existing name replaces it (keeping its history); CRONDEL
// deletes; the count and memory bounds refuse new entries only.
func TestCronReplaceDeleteAndBounds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxCron = 2
	s, _ := New(cfg, NewSeqGenerator())
	o := CronOptions{Name: "a", Spec: "@every 1s", Queue: "q", Handler: "h"}
	_, err := s.CronSet(0, o)
	must(t, err)
	s.Tick(1000)
	o.Spec, o.Queue = "@every 5s", "q2"
	created, err := s.CronSet(1500, o)
	must(t, err)
	if created {
		t.Fatal("replacing should not report a new entry")
	}
	e := cronEntry1(t, s, 1500, "a")
	if e.Spec != "@every 5s" || e.Queue != "q2" || e.Next != 6000 || e.Fired != 1 || e.Last != 1000 {
		t.Fatalf("replaced entry %+v", e)
	}
	o.Name = "b"
	_, err = s.CronSet(1500, o)
	must(t, err)
	o.Name = "c"
	if _, err := s.CronSet(1500, o); !errors.Is(err, ErrCronFull) {
		t.Fatalf("a third entry past MaxCron 2: %v", err)
	}
	o.Name = "b"
	_, err = s.CronSet(1500, o) // replacing at the bound is allowed
	must(t, err)
	if ok, err := s.CronDel(1500, "a"); !ok || err != nil {
		t.Fatalf("CronDel a: %v %v", ok, err)
	}
	if ok, err := s.CronDel(1500, "a"); ok || err != nil {
		t.Fatalf("CronDel a again: %v %v", ok, err)
	}
	if names := s.CronList(1500); len(names) != 1 || names[0].Name != "b" {
		t.Fatalf("entries %v", names)
	}
	must(t, s.CheckInvariants())

	// Memory: entries count toward MaxBytes.
	cfg = DefaultConfig()
	cfg.MaxBytes = 4000
	s, _ = New(cfg, NewSeqGenerator())
	big := CronOptions{Name: "x", Spec: "@every 1s", Queue: "q", Handler: "h", Payload: make([]byte, 1500)}
	_, err = s.CronSet(0, big)
	must(t, err)
	big.Name = "y"
	_, err = s.CronSet(0, big)
	must(t, err)
	big.Name = "z"
	if _, err := s.CronSet(0, big); !errors.Is(err, ErrFull) {
		t.Fatalf("an entry past maxmemory: %v", err)
	}
	if m := s.Memory(); m.Cron != int64(2*(CronOverhead+1500+len("x@every 1sUTCqh"))) {
		t.Fatalf("Memory().Cron = %d", m.Cron)
	}
	// A tick whose job does not fit passes without one.
	s.Tick(1000)
	e = cronEntry1(t, s, 1000, "x")
	if e.Fired+e.Missed != 1 || e.Next != 2000 {
		t.Fatalf("entry after a full tick %+v", e)
	}
}

// FLUSHALL forgets the entries with everything else.
func TestCronFlush(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	_, err := s.CronSet(0, CronOptions{Name: "a", Spec: "@every 1s", Queue: "q", Handler: "h"})
	must(t, err)
	must(t, s.Flush(10))
	if n := len(s.CronList(10)); n != 0 || s.NextDeadline() != 0 {
		t.Fatalf("after FLUSHALL: %d entries, deadline %d", n, s.NextDeadline())
	}
	must(t, s.CheckInvariants())
}

// Replaying the log of firings, or loading a dump, rebuilds the entries
// and their jobs exactly; a replay fires nothing itself.
func TestCronReplay(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shards = 4
	live, _ := New(cfg, NewSeqGenerator())
	j := &memJournal{}
	live.SetJournal(j)
	_, err := live.CronSet(0, CronOptions{Name: "a", Spec: "@every 1s", Queue: "q", Handler: "h", Payload: []byte("p"),
		Priority: 3, ConcurrencyKey: "c", RateLimitKey: "r", MaxAttempts: 4, Backoff: 70})
	must(t, err)
	_, err = live.CronSet(0, CronOptions{Name: "b", Spec: "*/2 * * * *", Zone: "Asia/Kolkata", Queue: "q2", Handler: "h"})
	must(t, err)
	for now := int64(0); now < 300_000; now += 450 {
		live.Tick(now)
		if now == 100_350 {
			live.Tick(now + 5000) // a gap: misses
			now += 5000
		}
	}
	_, err = live.CronDel(300_000, "b")
	must(t, err)
	want := dump(t, live, 300_000)
	if !slices.ContainsFunc(want, func(r Record) bool { return r.Op == OpSnapCron }) {
		t.Fatal("the dump holds no periodic entry")
	}
	replayed := replayAll(t, cfg, j.recs, "replay")
	if d := sameDump(dump(t, replayed, 300_000), want); d != "" {
		t.Fatalf("replayed: %s", d)
	}
	if replayed.CronFired() != 0 {
		t.Fatal("a replay fired jobs itself")
	}
	loaded := replayAll(t, cfg, want, "load")
	if d := sameDump(dump(t, loaded, 300_000), want); d != "" {
		t.Fatalf("loaded: %s", d)
	}
	must(t, loaded.CheckInvariants())
	// Both go on firing as the live store does.
	for _, s := range []*Store{live, replayed, loaded} {
		s.gen = NewSeqGenerator()
		s.Tick(301_000)
	}
	if d := sameDump(dump(t, loaded, 301_000), dump(t, live, 301_000)); d != "" {
		t.Fatalf("loaded store fires differently: %s", d)
	}
}

// cronModel is a naive model of periodic entries: schedules are integer
// arithmetic on Unix ms (no cron package), firings a plain loop over
// entries by name.
type cronModel struct {
	entries map[string]*modelEntry
	jobs    []string // "name@tick", in push order
}

type modelEntry struct {
	period             int64 // ms; ticks are multiples of it (cron) or chained (every)
	every              bool
	next, last         int64
	fired, missed      int64
	spec, queue, label string
}

// after is the entry's first tick after t.
func (e *modelEntry) after(t int64) int64 {
	if e.every {
		return t - t%1000 + e.period
	}
	return (t/e.period + 1) * e.period
}

func (m *cronModel) maintain(now int64) {
	for {
		// The earliest due entry, by tick then name.
		var best *modelEntry
		for _, e := range m.entries {
			if e.next <= now && (best == nil || e.next < best.next || (e.next == best.next && e.label < best.label)) {
				best = e
			}
		}
		if best == nil {
			return
		}
		e := best
		tick := e.next
		if now-tick >= CronGrace {
			tick = e.after(now - CronGrace)
			e.next, e.missed = tick, e.missed+1
			if tick > now {
				continue
			}
		}
		m.jobs = append(m.jobs, fmt.Sprintf("%s@%d", e.label, tick))
		e.last, e.fired, e.next = tick, e.fired+1, e.after(tick)
	}
}

// Random sequences of sets, deletes, ticks and pauses of every length
// leave the same jobs and entries as the naive model.
func TestCronAgainstModel(t *testing.T) {
	specs := []struct {
		spec   string
		period int64
		every  bool
	}{
		{"@every 1s", 1000, true}, {"@every 3s", 3000, true}, {"@every 1m", 60_000, true},
		{"* * * * *", 60_000, false}, {"*/2 * * * *", 120_000, false}, {"@hourly", 3_600_000, false},
	}
	names := []string{"a", "b", "c", "d"}
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		s, _ := New(DefaultConfig(), NewSeqGenerator())
		m := &cronModel{entries: map[string]*modelEntry{}}
		now := int64(rng.IntN(1_000_000))
		for step := 0; step < 200; step++ {
			switch op := rng.IntN(10); {
			case op < 2:
				sp := specs[rng.IntN(len(specs))]
				name := names[rng.IntN(len(names))]
				_, err := s.CronSet(now, CronOptions{Name: name, Spec: sp.spec, Queue: "q", Handler: "h", Payload: []byte(name)})
				must(t, err)
				m.maintain(now)
				e := &modelEntry{period: sp.period, every: sp.every, spec: sp.spec, label: name}
				if old := m.entries[name]; old != nil {
					e.last, e.fired, e.missed = old.last, old.fired, old.missed
				}
				e.next = e.after(now)
				m.entries[name] = e
			case op == 2:
				name := names[rng.IntN(len(names))]
				ok, err := s.CronDel(now, name)
				must(t, err)
				m.maintain(now)
				if _, had := m.entries[name]; had != ok {
					t.Fatalf("seed %d step %d: CronDel %s = %v, model had it: %v", seed, step, name, ok, had)
				}
				delete(m.entries, name)
			case op < 8:
				now += int64(rng.IntN(1500)) // prompt or late ticks
				s.Tick(now)
				m.maintain(now)
			default:
				now += int64(rng.IntN(400_000)) // a pause of up to minutes
			}
		}
		s.Tick(now)
		m.maintain(now)
		if got := cronJobs(t, s, now, "q"); !slices.Equal(got, m.jobs) {
			t.Fatalf("seed %d: jobs\n got %v\nwant %v", seed, got, m.jobs)
		}
		list := s.CronList(now)
		if len(list) != len(m.entries) {
			t.Fatalf("seed %d: %d entries, model %d", seed, len(list), len(m.entries))
		}
		for _, e := range list {
			me := m.entries[e.Name]
			if me == nil || e.Spec != me.spec || e.Next != me.next || e.Last != me.last || e.Fired != me.fired || e.Missed != me.missed {
				t.Fatalf("seed %d: entry %+v, model %+v", seed, e, me)
			}
		}
		must(t, s.CheckInvariants())
	}
}

// waitJournal is a memJournal that remembers the last Wait.
type waitJournal struct {
	memJournal
	waited uint64
}

func (w *waitJournal) Wait(seq uint64) error { w.waited = seq; return nil }

// The timer's Tick waits for the log to hold what a periodic entry
// pushed: nothing else may write it before a crash (appendfsync always
// writes on a command's wait).
func TestCronTickWaitsForTheLog(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	j := &waitJournal{}
	s.SetJournal(j)
	_, err := s.CronSet(0, CronOptions{Name: "a", Spec: "@every 1s", Queue: "q", Handler: "h"})
	must(t, err)
	j.waited = 0
	s.Tick(1000)
	if n := uint64(len(j.recs)); n != 2 || j.recs[1].Op != OpCronFire || j.waited != n {
		t.Fatalf("after the tick: %d records, waited for %d", n, j.waited)
	}
}

// Any schedule and zone is either refused with an invalid-argument error
// or accepted with a next tick after now; none panics.
func FuzzCronSpec(f *testing.F) {
	for _, s := range []string{"* * * * *", "@every 1s", "@every", "@every -1s", "*/0 * * * *", "5-3 * * * *",
		"0 0 30 2 *", "0 0 29 2 *", "TZ=UTC", "CRON_TZ=x * * * * *", "@hourly", "@reboot", "1,2,3 4-5 */2 JAN-DEC SUN-SAT",
		"? ? ? ? ?", "0 9 * * 1-5", "@every 9999999h"} {
		f.Add(s, "")
		f.Add(s, "America/New_York")
	}
	f.Fuzz(func(t *testing.T, spec, zone string) {
		s, _ := New(DefaultConfig(), NewSeqGenerator())
		const now = 1_800_000_000_123
		_, err := s.CronSet(now, CronOptions{Name: "n", Spec: spec, Zone: zone, Queue: "q", Handler: "h"})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q in %q: %v is no invalid-argument error", spec, zone, err)
			}
			return
		}
		e, _ := s.CronGet(now, "n")
		if e.Next <= now {
			t.Fatalf("%q in %q: next tick %d is not after %d", spec, zone, e.Next, now)
		}
		s.Tick(e.Next)
		if e2, _ := s.CronGet(e.Next, "n"); e2.Fired != 1 || (e2.Next != 0 && e2.Next <= e.Next) {
			t.Fatalf("%q in %q: after its tick %+v", spec, zone, e2)
		}
	})
}

// A tick's job wakes the queue's blocked reservations, as a push does.
func TestCronTickNotifies(t *testing.T) {
	s, _ := New(DefaultConfig(), NewSeqGenerator())
	var woken []string
	s.SetNotify(func(q string) { woken = append(woken, q) })
	_, err := s.CronSet(0, CronOptions{Name: "a", Spec: "@every 1s", Queue: "q", Handler: "h"})
	must(t, err)
	woken = nil
	s.Tick(1000)
	if !slices.Equal(woken, []string{"q"}) {
		t.Fatalf("notified %v, want q", woken)
	}
}
