package store

// Observer learns of the events the store does not count itself, for a
// server's metrics. Queue is asked once per queue, the first time an event
// happens in it (again if the queue vanished and came back); the
// QueueObserver it returns receives that queue's events. Both are called
// with the queue's shard lock held, so they must be quick, must not block
// and must not call the store: increments and histogram observations, no
// more. Nothing is observed while a log replays. Observers see outcomes
// only; they never change what the store does.
type Observer interface {
	Queue(name string) QueueObserver
}

// QueueObserver receives one queue's events. Durations are milliseconds.
type QueueObserver interface {
	Pushed()
	// Reserved: waited is the time since the job last entered queued (its
	// push, release, due time or lease expiry).
	Reserved(waited int64)
	// Acked: ran is the time since JOBSTART (or since the reservation, for
	// a job acked without JOBSTART); negative when unknown (a job running
	// across a restart from a rewritten log).
	Acked(ran int64)
	// Failed: an attempt failed and the job is now failed.
	Failed()
	// Retried: an attempt failed and the job will run again
	// (retry_pending), or JOBRETRY queued a failed job again.
	Retried()
	Expired()
	Cancelled()
}

// SetObserver installs o. Call it before serving (after a log is loaded, so
// that replayed history is not counted); nil removes it.
func (s *Store) SetObserver(o Observer) {
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, q := range sh.queues {
			q.obs = nil
		}
		sh.mu.Unlock()
	}
	s.observer = o
}

// obs is q's observer, or nil. Lock must be held.
func (s *Store) obs(q *queue) QueueObserver {
	if s.observer == nil || s.replaying {
		return nil
	}
	if q.obs == nil {
		q.obs = s.observer.Queue(q.name)
	}
	return q.obs
}

// JobOverhead is the memory a held job costs besides its payload, id and
// last error, as the job-memory estimate counts it: the job record, its
// queue and index entries and the allocator's rounding. BenchmarkQueuedJobMemory
// measures 346 bytes for a queued job with a 100-byte payload (234 besides
// it; an id of up to 32 bytes and the first token are kept in the job
// record); a job that has been reserved also keeps its worker and the
// record of its reservation (about 100 bytes more). 300 lies between the
// two. Since queued jobs are packed (see doc.go), one that was never
// reserved costs about 150 bytes with such a payload, so the estimate
// overstates them; it is kept as it was so that a job limit in bytes
// admits the same jobs as before.
const JobOverhead = 300

// JobBytes is the job-memory estimate of one job: what Bytes adds up and
// Config.MaxBytes limits.
func JobBytes(payload, id, lastError int) int64 {
	return int64(payload+id+lastError) + JobOverhead
}

func (j *job) bytes() int64 {
	return JobBytes(len(j.payload), len(j.id), len(j.xr().lastError)) + j.xr().resultBytes()
}

// Bytes is the estimated memory of the jobs held, terminal ones still
// retained included (INFO memory, --maxmemory). Each shard keeps its part
// as jobs come and go; reading it adds them up.
func (s *Store) Bytes() int64 {
	var n int64
	for _, sh := range s.shards {
		n += sh.bytes.Load()
	}
	return n
}

// Estimates of the memory held besides jobs, which --maxmemory counts as
// well. BenchmarkStateMemory measures 547 bytes for an empty queue that is
// only paused (10-byte name), 1,010 for a lane of a queue (each distinct
// handler, concurrency key and rate-limit key its jobs carry: the lane,
// its group's share and its places in the key lists), and 110 for an
// expired token remembered (33 bytes long); the figures below round them
// up, and a queue's and a token's estimates add their name's or token's
// own length. Policies and keys in use are counted by the backpressure
// registry (Registry.Bytes); retained terminal jobs are jobs (JobBytes).
const (
	QueueOverhead        = 560
	LaneOverhead         = 1024
	ExpiredTokenOverhead = 80
)

// QueueBytes is the estimate of a queue named name, lanes aside.
func QueueBytes(name string) int64 { return QueueOverhead + int64(len(name)) }

// Memory is the estimated memory the store holds, by part; --maxmemory
// limits their sum (Used).
type Memory struct {
	Jobs     int64 // jobs held, terminal ones still retained included (Bytes)
	Queues   int64 // queues and their lanes
	Policies int64 // policies, keys in use, rate-limit admissions and breakers
	Tokens   int64 // expired tokens remembered
	Keys     int64 // idempotency keys remembered
	Cron     int64 // periodic entries
	Scan     int64 // the tables of jobs by queue and state that JOBSCAN reads (jobscan.go)
	Deps     int64 // dependencies: what waiting jobs wait for, and who waits for each job (deps.go)
	Batches  int64 // batches (batch.go)
}

// Used is the figure --maxmemory is checked against.
func (m Memory) Used() int64 {
	return m.Jobs + m.Queues + m.Policies + m.Tokens + m.Keys + m.Cron + m.Scan + m.Deps + m.Batches
}

// Memory reports the estimated memory held, by part.
func (s *Store) Memory() Memory {
	return Memory{Jobs: s.Bytes(), Queues: s.state.Load(), Policies: s.reg.Bytes() + s.brk.bytes.Load(), Tokens: s.expired.bytes.Load(),
		Keys: s.idem.bytes.Load(), Cron: s.cron.bytes.Load(), Scan: s.scanBytes.Load(),
		Deps: s.deps.bytes.Load(), Batches: s.batches.bytes.Load()}
}

// otherBytes is the estimate of everything but jobs. Any lock may be held.
func (s *Store) otherBytes() int64 {
	return s.state.Load() + s.reg.Bytes() + s.brk.bytes.Load() + s.expired.bytes.Load() + s.idem.bytes.Load() + s.cron.bytes.Load() + s.scanBytes.Load() +
		s.deps.bytes.Load() + s.batches.bytes.Load()
}

// admitState reports whether size more bytes of state besides jobs fit
// under MaxBytes (always, while replaying: the log holds what was
// admitted). The caller adds them if they do.
func (s *Store) admitState(size int64) error {
	if s.cfg.MaxBytes == 0 || s.replaying {
		return nil
	}
	if s.bytes.Load()+s.otherBytes()+size > s.cfg.MaxBytes {
		return errFullState
	}
	return nil
}

// errFullMemory is ErrFull for the memory limit; errFullState for a
// command that would add state other than a job.
var (
	errFullMemory error = &fullError{"FULL job memory is at its limit (maxmemory)"}
	errFullState  error = &fullError{"FULL memory is at its limit (maxmemory)"}
)

type fullError struct{ msg string }

func (e *fullError) Error() string        { return e.msg }
func (e *fullError) Is(target error) bool { return target == ErrFull }
func (e *fullError) Code() string         { return "FULL" }
