package store

import "sluice/backpressure"

// Op is the kind of a Record.
type Op uint8

// The record kinds. Values are stored on disk: never renumber.
const (
	OpPush Op = iota + 1
	OpReserve
	OpStart
	OpTouch
	OpAck
	OpFail
	OpRelease
	OpCancel
	OpRetry
	OpPause
	OpResume
	OpPurge
	OpPolicySet
	OpPolicyDel
	OpFlush
	// Outcomes of maintenance, logged when they happen: replay never runs
	// maintenance itself, so it cannot order them differently.
	OpExpire // a lease ran out: the job is queued again
	OpDue    // a scheduled or retry_pending job became queued
	OpDrop   // a terminal job left retention
	// Snapshot records (see Dump).
	OpSnapQueue
	OpSnapJob
	OpSnapPolicy
	OpSnapAdmissions
	OpSnapExpired
	OpSnapRetained
	OpSnapEnd
	OpIdemExpire // maintenance forgot the idempotency keys expired at Now
	OpSnapIdem   // snapshot: idempotency key IdemKey first pushed at Now as job ID
	opMax
)

// Valid reports whether o is a known record kind.
func (o Op) Valid() bool { return o >= OpPush && o < opMax }

// Record is one state change as the log keeps it: an outcome, not a request.
// A reservation is logged as "job X reserved by W with token T until E", so
// replay never re-runs selection; a lease that ran out is logged as such, so
// replay never runs maintenance. Records about one queue are logged under
// its shard lock, in the order they were applied. Only the fields an Op uses
// are set.
type Record struct {
	Op       Op
	Now      int64
	ID       string
	Queue    string
	Handler  string
	Payload  []byte
	Priority int64
	CKey     string
	RKey     string
	RunAt    int64 // push, fail, release: when the job is due; reserve: the admission's time
	Attempt  int64 // snapshot: attempt; push: max attempts in MaxAtt
	MaxAtt   int64
	Backoff  int64
	Token    string
	Worker   string
	Expires  int64
	Error    string
	HasError bool
	State    State // fail: the outcome; snapshot: the job's state
	Admitted bool  // reserve: an admission was recorded on RKey
	Kind     backpressure.Kind
	Limit    int64
	Period   int64
	IdemKey  string // push: its idempotency key; snapshot: a remembered key
	// Snapshot-only fields.
	Seq, Created, TSeq   uint64 // job: entry, push and timer order; queue: counters
	CreatedAt, UpdatedAt int64
	Paused               bool
	Pushed, Succ, Failed int64
	Times                []int64  // admissions of a rate key
	Strings              []string // expired tokens; retained job ids
}

// Journal receives every state change. The store calls Append while holding
// the lock that orders the change (a shard lock, or the policy lock), so the
// log order agrees with the order changes were applied in; Append must only
// buffer. After releasing its locks, the operation calls Wait with the
// sequence number Append returned and replies only when Wait does, which is
// how appendfsync always delays replies until their record is synced.
type Journal interface {
	Append(r Record) uint64 // by value: the record is encoded, not kept
	Wait(seq uint64) error
	// Err is non-nil while the log cannot be written; the store then
	// refuses every change with an error wrapping ErrMisconf.
	Err() error
}

// ErrMisconf is returned for changes refused because the log cannot be
// written (Redis's MISCONF).
var ErrMisconf = coded("MISCONF")

type misconfError struct{ cause error }

func (e *misconfError) Error() string {
	return "MISCONF the append-only log cannot be written, so changes are refused: " + e.cause.Error()
}
func (e *misconfError) Is(target error) bool { return target == ErrMisconf }
func (e *misconfError) Unwrap() error        { return e.cause }
func (e *misconfError) Code() string         { return "MISCONF" }

// SetJournal installs j. Call it before serving; nil means no log.
func (s *Store) SetJournal(j Journal) { s.journal = j }

// writable refuses changes while the journal is failing.
func (s *Store) writable() error {
	if s.journal == nil {
		return nil
	}
	if err := s.journal.Err(); err != nil {
		return &misconfError{cause: err}
	}
	return nil
}

// log appends r when a journal is installed. Lock must be held. Records
// travel by value so that none is allocated on the heap.
func (s *Store) log(r Record, fx *effects) {
	if r.Op == OpDrop {
		s.dropping(r.ID) // the memory shares' count (shares.go)
	}
	if s.journal != nil && !s.replaying {
		fx.seq = s.journal.Append(r)
	}
}

// durable waits for the operation's last record, if any.
func (s *Store) durable(fx *effects) error {
	if fx.seq == 0 || s.journal == nil {
		return nil
	}
	if err := s.journal.Wait(fx.seq); err != nil {
		return &misconfError{cause: err}
	}
	return nil
}
