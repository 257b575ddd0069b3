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

func (j *job) bytes() int64 { return JobBytes(len(j.payload), len(j.id), len(j.xr().lastError)) }

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

// errFullMemory is ErrFull for the memory limit.
var errFullMemory error = &fullError{"FULL job memory is at its limit (maxmemory)"}

type fullError struct{ msg string }

func (e *fullError) Error() string        { return e.msg }
func (e *fullError) Is(target error) bool { return target == ErrFull }
