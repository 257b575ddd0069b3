package store

// Periodic entries (CRONSET, CRONDEL, CRONLIST): a named schedule that
// pushes one job on each of its ticks.
//
// Schedules are parsed by github.com/robfig/cron/v3 (standard five-field
// syntax and its descriptors: @every 30s, @hourly, @daily ...) and read in
// the entry's time zone, with daylight saving time as that package handles
// it. Ticks fall on whole seconds.
//
// Firing is maintenance: NextDeadline includes the earliest tick, and Tick
// (or any operation, which first maintains) fires what is due. Each firing
// is logged as an outcome, OpCronFire, which carries the job's push and the
// entry's next tick in one record: a replay or a group's follower learns
// from it what fired, never fires itself, and cannot fire a tick twice,
// since the tick a record fired is behind the next tick it stores.
//
// Misfires: a tick is fired only by maintenance that runs within CronGrace
// after it; its job is created at the tick's instant, not at maintenance's.
// Ticks that passed while the server was down (or stopped ticking) longer
// than that are skipped, never caught up: after a restart the entry fires
// at its next tick. So @every 1s pushes one job for each second of Unix
// time during which the server was up.
//
// Determinism: the entries are a slice sorted by name; due entries fire in
// order of tick, then name; their ids come from the store's generator in
// that order. Nothing depends on map order or on the wall clock.

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // zones work on a machine without a zone database

	"github.com/robfig/cron/v3"
)

// CronGrace is how late, in ms, maintenance may reach a tick and still
// fire it. It is no longer than the shortest period a schedule can have
// (one second), so one firing never covers two ticks of an entry.
const CronGrace = 1000

// Bounds of a periodic entry's strings.
const (
	MaxCronSpec = 256 // bytes of a schedule
	MaxCronZone = 64  // bytes of a time zone name
)

// CronOverhead is the memory an entry costs besides its strings and
// payload: the entry, its parsed schedule and its slot, rounded up.
const CronOverhead = 400

// DefaultMaxCron is the default bound on the number of entries.
const DefaultMaxCron = 10_000

// ErrCronFull refuses a new entry past Config.MaxCron.
var ErrCronFull = coded("FULL the server holds as many periodic entries as it may (max-cron)")

// CronOptions describe a periodic entry (CRONSET).
type CronOptions struct {
	Name string
	Spec string // cron syntax (five fields) or a descriptor (@every 30s, @hourly ...)
	Zone string // IANA time zone; empty: UTC
	// The job each tick pushes, as PushOptions describe one.
	Queue, Handler string
	Payload        []byte // copied
	Priority       int64
	ConcurrencyKey string
	RateLimitKey   string
	MaxAttempts    int64 // 0: DefaultMaxAttempts
	Backoff        int64 // ms; 0: DefaultBackoff
	ExpiresIn      int64 // ms after its tick that a job still waiting expires; 0: never
	Timeout        int64 // ms each reservation of a job may last; 0: no bound
}

// CronEntry is a periodic entry as CRONLIST shows it.
type CronEntry struct {
	CronOptions
	Next  int64 // the next tick (Unix ms); 0: the schedule has no more
	Last  int64 // the tick of the last job pushed; 0: none yet
	Fired int64 // jobs pushed
	// Missed counts misfires (maintenance found ticks older than the
	// grace: skipped, one count however many) and ticks whose job was
	// refused (FULL).
	Missed int64
}

type cronEntry struct {
	CronEntry
	sched cron.Schedule
	loc   *time.Location
}

func (e *cronEntry) bytes() int64 {
	return CronOverhead + int64(len(e.Name)+len(e.Spec)+len(e.Zone)+len(e.Queue)+len(e.Handler)+
		len(e.Payload)+len(e.ConcurrencyKey)+len(e.RateLimitKey))
}

// next is the first tick after t (Unix ms), 0 if none.
func (e *cronEntry) next(t int64) int64 {
	n := e.sched.Next(time.UnixMilli(t).In(e.loc))
	if n.IsZero() {
		return 0
	}
	return n.UnixMilli()
}

// cronTable holds the periodic entries.
type cronTable struct {
	// mu protects entries. It is taken after idemKeys.mu and before any
	// shard lock (doc.go): a firing holds it across its job's push.
	mu      sync.Mutex
	entries []*cronEntry // by name
	max     int
	bytes   atomic.Int64 // the estimate of the entries (cronEntry.bytes each)
	fired   atomic.Int64 // jobs pushed by firings since the store was made, replay aside
	// nextDue is the earliest tick of any entry; MaxInt64 when none.
	_       [64]byte
	nextDue atomic.Int64
	_       [56]byte
}

func (c *cronTable) init(max int) {
	c.mu.Lock()
	c.max = max
	c.resetLocked()
	c.mu.Unlock()
}

// Lock must be held.
func (c *cronTable) resetLocked() {
	c.entries = nil
	c.bytes.Store(0)
	c.nextDue.Store(1<<63 - 1)
}

// find returns the index of name's entry, or where it would go. Lock must
// be held.
func (c *cronTable) find(name string) (int, bool) {
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].Name >= name })
	return i, i < len(c.entries) && c.entries[i].Name == name
}

// put adds or replaces e. Lock must be held.
func (c *cronTable) put(e *cronEntry) {
	i, ok := c.find(e.Name)
	if ok {
		c.bytes.Add(-c.entries[i].bytes())
		c.entries[i] = e
	} else {
		c.entries = slices.Insert(c.entries, i, e)
	}
	c.bytes.Add(e.bytes())
	c.updateDue()
}

// Lock must be held.
func (c *cronTable) updateDue() {
	due := int64(1<<63 - 1)
	for _, e := range c.entries {
		if e.Next != 0 && e.Next < due {
			due = e.Next
		}
	}
	c.nextDue.Store(due)
}

// parseCron reads a schedule in a zone. The same spec and zone give the
// same schedule on every node.
func parseCron(spec, zone string) (cron.Schedule, *time.Location, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, nil, invalid("schedule must not be empty")
	case len(spec) > MaxCronSpec:
		return nil, nil, invalid("schedule is longer than %d bytes", MaxCronSpec)
	case len(zone) > MaxCronZone:
		return nil, nil, invalid("time zone is longer than %d bytes", MaxCronZone)
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, nil, invalid("schedule names a time zone: give it with TZ instead")
	case zone == "Local" || strings.EqualFold(zone, "local") || zone == "localtime" || zone == "posixrules" ||
		strings.HasPrefix(zone, "posix/") || strings.HasPrefix(zone, "right/"):
		// The machine's own zone, and names only some machines' zone
		// files have, differ from node to node.
		return nil, nil, invalid("time zone %q is not allowed: name an IANA zone such as Europe/Berlin", zone)
	}
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		switch {
		case err != nil:
			return nil, nil, invalid("schedule %q: %v", spec, err)
		case d < time.Second || d%time.Second != 0:
			return nil, nil, invalid("schedule %q: @every takes a whole number of seconds, at least 1s", spec)
		}
	}
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, nil, invalid("unknown time zone %q", zone)
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, nil, invalid("schedule %q: %v", spec, err)
	}
	return sched, loc, nil
}

// cronRecord checks o and fills rec with the OpCronSet record of it at now,
// the entry's first tick included.
func (s *Store) cronRecord(now int64, o CronOptions, rec *Record) (*cronEntry, error) {
	name, err := ident("cron name", o.Name)
	if err != nil {
		return nil, err
	}
	sched, loc, err := parseCron(o.Spec, o.Zone)
	if err != nil {
		return nil, err
	}
	var p Record
	if err := s.pushRecord(now, PushOptions{Queue: o.Queue, Handler: o.Handler, Payload: o.Payload,
		Priority: o.Priority, ConcurrencyKey: o.ConcurrencyKey, RateLimitKey: o.RateLimitKey,
		MaxAttempts: o.MaxAttempts, Backoff: o.Backoff, ExpiresIn: o.ExpiresIn, Timeout: o.Timeout}, &p); err != nil {
		return nil, err
	}
	e := &cronEntry{sched: sched, loc: loc}
	e.CronOptions = CronOptions{Name: name, Spec: strings.TrimSpace(o.Spec), Zone: loc.String(),
		Queue: p.Queue, Handler: p.Handler, Payload: append([]byte{}, o.Payload...), Priority: p.Priority,
		ConcurrencyKey: p.CKey, RateLimitKey: p.RKey, MaxAttempts: p.MaxAtt, Backoff: p.Backoff,
		ExpiresIn: o.ExpiresIn, Timeout: p.Timeout}
	if e.Next = e.next(now); e.Next == 0 {
		return nil, invalid("schedule %q never fires", e.Spec)
	}
	*rec = e.record(OpCronSet)
	rec.Now = now
	return e, nil
}

// record describes e as a record of kind op.
func (e *cronEntry) record(op Op) Record {
	return Record{Op: op, CronName: e.Name, CronSpec: e.Spec, CronZone: e.Zone, CronNext: e.Next,
		Queue: e.Queue, Handler: e.Handler, Payload: e.Payload, Priority: e.Priority,
		CKey: e.ConcurrencyKey, RKey: e.RateLimitKey, MaxAtt: e.MaxAttempts, Backoff: e.Backoff,
		ExpiresIn: e.ExpiresIn, Timeout: e.Timeout}
}

// entryOf rebuilds an entry from a cronset or snapcron record.
func entryOf(r *Record) (*cronEntry, error) {
	if r.CronName == "" {
		return nil, replayErr(r, "periodic entry without a name")
	}
	sched, loc, err := parseCron(r.CronSpec, r.CronZone)
	if err != nil {
		return nil, replayErr(r, "periodic entry %q: %v", r.CronName, err)
	}
	e := &cronEntry{sched: sched, loc: loc}
	e.CronOptions = CronOptions{Name: r.CronName, Spec: r.CronSpec, Zone: r.CronZone,
		Queue: r.Queue, Handler: r.Handler, Payload: append([]byte{}, r.Payload...), Priority: r.Priority,
		ConcurrencyKey: r.CKey, RateLimitKey: r.RKey, MaxAttempts: r.MaxAtt, Backoff: r.Backoff,
		ExpiresIn: r.ExpiresIn, Timeout: r.Timeout}
	e.Next = r.CronNext
	return e, nil
}

// CronSet creates the periodic entry o names, or replaces it (CRONSET),
// and reports whether it is new. A replaced entry keeps its counts and its
// last tick; its next tick is the new schedule's first after now.
func (s *Store) CronSet(now int64, o CronOptions) (bool, error) {
	var rec Record
	e, err := s.cronRecord(now, o, &rec)
	if err != nil {
		return false, err
	}
	var fx effects
	s.maintain(now, &fx)
	created, err := s.cronSet(e, &rec, &fx)
	s.finish(&fx)
	if err != nil {
		return false, err
	}
	return created, s.durable(&fx)
}

func (s *Store) cronSet(e *cronEntry, rec *Record, fx *effects) (bool, error) {
	c := &s.cron
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.find(e.Name)
	grow := e.bytes()
	if ok {
		old := c.entries[i]
		e.Last, e.Fired, e.Missed = old.Last, old.Fired, old.Missed
		grow -= old.bytes()
	} else if len(c.entries) >= c.max {
		return false, ErrCronFull
	}
	if grow > 0 {
		if err := s.admitState(grow); err != nil {
			return false, err
		}
	}
	s.log(*rec, fx)
	c.put(e)
	fx.timers = true
	return !ok, nil
}

// CronDel deletes a periodic entry (CRONDEL) and reports whether it
// existed.
func (s *Store) CronDel(now int64, name string) (bool, error) {
	name, err := ident("cron name", name)
	if err != nil {
		return false, err
	}
	if err := s.writable(); err != nil {
		return false, err
	}
	var fx effects
	s.maintain(now, &fx)
	c := &s.cron
	c.mu.Lock()
	ok := c.del(name)
	if ok {
		s.log(Record{Op: OpCronDel, Now: now, CronName: name}, &fx)
	}
	c.mu.Unlock()
	s.finish(&fx)
	if !ok {
		return false, nil
	}
	return true, s.durable(&fx)
}

// del removes name's entry and reports whether there was one. Lock must be
// held.
func (c *cronTable) del(name string) bool {
	i, ok := c.find(name)
	if !ok {
		return false
	}
	c.bytes.Add(-c.entries[i].bytes())
	c.entries = slices.Delete(c.entries, i, i+1)
	c.updateDue()
	return true
}

// CronList lists the periodic entries by name (CRONLIST), after firing
// what is due at now.
func (s *Store) CronList(now int64) []CronEntry {
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
	c := &s.cron
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]CronEntry, len(c.entries))
	for i, e := range c.entries {
		out[i] = e.CronEntry
		out[i].Payload = append([]byte{}, e.Payload...)
	}
	return out
}

// CronGet returns name's periodic entry (CRONGET), after firing what is
// due at now.
func (s *Store) CronGet(now int64, name string) (CronEntry, bool) {
	var fx effects
	s.maintain(now, &fx)
	s.finish(&fx)
	c := &s.cron
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.find(name)
	if !ok {
		return CronEntry{}, false
	}
	out := c.entries[i].CronEntry
	out.Payload = append([]byte{}, out.Payload...)
	return out, true
}

// CronEntries is the number of periodic entries.
func (s *Store) CronEntries() int {
	s.cron.mu.Lock()
	defer s.cron.mu.Unlock()
	return len(s.cron.entries)
}

// CronFired is the number of jobs firings pushed since the store was made,
// those of a replayed log aside.
func (s *Store) CronFired() int64 { return s.cron.fired.Load() }

// fireCron fires every entry due at now, in order of tick, then name. No
// lock may be held.
func (s *Store) fireCron(now int64, fx *effects) {
	c := &s.cron
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nextDue.Load() > now {
		return // another operation fired meanwhile
	}
	var due []*cronEntry
	for _, e := range c.entries {
		if e.Next != 0 && e.Next <= now {
			due = append(due, e)
		}
	}
	sort.SliceStable(due, func(i, k int) bool { return due[i].Next < due[k].Next }) // names sorted already
	for _, e := range due {
		s.fireEntry(e, now, fx)
	}
	c.updateDue()
}

// fireEntry fires e, due at now: the job of the latest tick within the
// grace, or nothing when every tick passed is older. Lock must be held.
func (s *Store) fireEntry(e *cronEntry, now int64, fx *effects) {
	tick := e.Next
	if now-tick >= CronGrace {
		// A misfire: the ticks older than the grace are skipped (one
		// record, however many), and the latest tick within it, if there
		// is one, fires next.
		tick = e.next(now - CronGrace)
		e.Next, e.Missed = tick, e.Missed+1
		s.log(Record{Op: OpCronFire, Now: now, CronName: e.Name, CronNext: tick}, fx)
		if tick == 0 || tick > now {
			return
		}
	}
	next := e.next(tick)
	rec := e.record(OpCronFire)
	rec.Now, rec.CronNext = tick, next
	rec.CronSpec, rec.CronZone = "", "" // the entry's, not the push's
	if rec.ExpiresIn != 0 {
		rec.Deadline, rec.ExpiresIn = tick+rec.ExpiresIn, 0
	}
	if _, err := s.insert(&rec, fx); err != nil {
		// Refused (FULL): the tick passes without a job.
		e.Missed++
		s.log(Record{Op: OpCronFire, Now: tick, CronName: e.Name, CronNext: next}, fx)
	} else {
		e.Last, e.Fired = tick, e.Fired+1
		s.cron.fired.Add(1)
		fx.notify = append(fx.notify, rec.Queue) // wake its blocked reservations
	}
	e.Next = next
}

// replayCron applies a logged cronset, crondel or cronfire record.
func (s *Store) replayCron(r *Record, fx *effects) error {
	c := &s.cron
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.Op {
	case OpCronSet:
		e, err := entryOf(r)
		if err != nil {
			return err
		}
		if i, ok := c.find(e.Name); ok {
			old := c.entries[i]
			e.Last, e.Fired, e.Missed = old.Last, old.Fired, old.Missed
		}
		c.put(e)
	case OpCronDel:
		if !c.del(r.CronName) {
			return replayErr(r, "no periodic entry %q", r.CronName)
		}
	case OpCronFire:
		i, ok := c.find(r.CronName)
		if !ok {
			return replayErr(r, "no periodic entry %q", r.CronName)
		}
		e := c.entries[i]
		if r.ID == "" {
			e.Missed++
		} else {
			if _, err := s.insert(r, fx); err != nil {
				return replayErr(r, "%v", err)
			}
			e.Last, e.Fired = r.Now, e.Fired+1
		}
		e.Next = r.CronNext
		c.updateDue()
	}
	return nil
}

// dumpCron emits a snapcron record of each entry, by name.
func (s *Store) dumpCron(emit func(*Record) error) error {
	c := &s.cron
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		r := e.record(OpSnapCron)
		r.CronLast, r.CronFired, r.CronMissed = e.Last, e.Fired, e.Missed
		if err := emit(&r); err != nil {
			return err
		}
	}
	return nil
}

// loadCron restores an entry from a snapcron record.
func (s *Store) loadCron(r *Record) error {
	e, err := entryOf(r)
	if err != nil {
		return err
	}
	e.Last, e.Fired, e.Missed = r.CronLast, r.CronFired, r.CronMissed
	s.cron.mu.Lock()
	s.cron.put(e)
	s.cron.mu.Unlock()
	return nil
}

// checkCron verifies the table's order and counts (CheckInvariants).
func (s *Store) checkCron() error {
	c := &s.cron
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	due := int64(1<<63 - 1)
	for i, e := range c.entries {
		if i > 0 && c.entries[i-1].Name >= e.Name {
			return invalid("periodic entries out of order at %q", e.Name)
		}
		n += e.bytes()
		if e.Next != 0 {
			due = min(due, e.Next)
		}
	}
	if got := c.bytes.Load(); got != n {
		return invalid("periodic entries count %d bytes, recount %d", got, n)
	}
	if got := c.nextDue.Load(); got != due {
		return invalid("periodic entries due at %d, recount %d", got, due)
	}
	return nil
}
