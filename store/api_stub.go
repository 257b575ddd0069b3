package store

import "sluice/backpressure"

// Generator makes job ids and reservation tokens. Injected so that the same
// operations always give the same state (tests, log replay).
type Generator interface {
	// JobID returns a new job id; roughly time-ordered for production use.
	JobID(now int64) string
	// Token returns a string never returned before by this generator.
	Token(now int64) string
}

// Config tunes a Store. DefaultConfig gives the documented defaults.
type Config struct {
	Shards        int   // queue shards (power of two); default 32
	Retention     int64 // ms a terminal job stays readable; default 1 h
	MaxRetained   int   // terminal jobs kept at most, oldest dropped first; default 100,000
	ExpiredTokens int   // expired tokens remembered at least; default 100,000
	MaxJobs       int64 // jobs held at most (FULL beyond); 0: no limit
}

type Store struct{}

func New(cfg Config, gen Generator) (*Store, error) { panic("x") }

// SetNotify installs fn, called (outside every lock, possibly from several
// goroutines at once) with a queue name whenever work in that queue may have
// become eligible: a push, a release, a lease expiry, a due timer, a freed
// concurrency slot, a rate window opening, a policy change or a resume.
func (s *Store) SetNotify(fn func(queue string)) {}

// SetTimerHook installs fn, called when a timer earlier than the last
// NextDeadline may have been armed.
func (s *Store) SetTimerHook(fn func()) {}

// NextDeadline is the earliest instant at which maintenance has work (a
// lease, a scheduled job, a retry, a rate window, a retention drop); 0 if none.
func (s *Store) NextDeadline() int64 { return 0 }

// Tick applies everything due at now and notifies the affected queues.
func (s *Store) Tick(now int64) {}

func (s *Store) Push(now int64, p PushOptions) (string, error)                   { return "", nil }
func (s *Store) Reserve(now int64, r ReserveOptions) ([]Reservation, error)      { return nil, nil }
func (s *Store) Start(now int64, token string) (int64, error)                    { return 0, nil }
func (s *Store) Touch(now int64, token string, lease int64) (int64, error)       { return 0, nil }
func (s *Store) Ack(now int64, token string) error                               { return nil }
func (s *Store) Fail(now int64, token string, o FailOptions) (State, error)      { return 0, nil }
func (s *Store) Release(now int64, token string, delay int64) error              { return nil }
func (s *Store) Cancel(now int64, id string) (bool, error)                       { return false, nil }
func (s *Store) Retry(now int64, id string) error                                { return nil }
func (s *Store) Get(now int64, id string) (Job, bool)                            { return Job{}, false }
func (s *Store) QueueLen(now int64, queue string) int64                          { return 0 }
func (s *Store) QueueStats(now int64, queue string) QueueStats                   { return QueueStats{} }
func (s *Store) Queues(now int64) []string                                       { return nil }
func (s *Store) Pause(now int64, queue string) error                             { return nil }
func (s *Store) Resume(now int64, queue string) error                            { return nil }
func (s *Store) Peek(now int64, queue string, n int) []Job                       { return nil }
func (s *Store) Purge(now int64, queue string) int64                             { return 0 }
func (s *Store) SetConcurrency(now int64, key string, limit int64) error         { return nil }
func (s *Store) SetRateLimit(now int64, key string, limit, period int64) error   { return nil }
func (s *Store) DeletePolicy(now int64, kind backpressure.Kind, key string) bool { return false }
func (s *Store) GetPolicy(now int64, kind backpressure.Kind, key string) (PolicyInfo, bool) {
	return PolicyInfo{}, false
}
func (s *Store) Policies(now int64) []PolicyInfo { return nil }
func (s *Store) Flush(now int64)                 {}
func (s *Store) Len() int64                      { return 0 }
