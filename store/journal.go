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
	OpDrop   // a terminal job left retention (its time or count ran out, or JOBDELETE)
	// Snapshot records (see Dump).
	OpSnapQueue
	OpSnapJob
	OpSnapPolicy
	OpSnapAdmissions
	OpSnapExpired
	OpSnapRetained
	OpSnapEnd
	OpIdemExpire   // maintenance forgot the idempotency keys expired at Now
	OpSnapIdem     // snapshot: idempotency key IdemKey first pushed at Now as job ID
	OpWeight       // fair group PolicyKey's weight set to Limit (0: back to the default), also in snapshots
	OpSnapGroup    // snapshot: fair group Group of Queue, at turn Turn
	OpSnapRotation // snapshot: round-robin reserves of Worker start after Queue; oldest first
	OpThrottle     // no admissions under PolicyKey until Until (also a snapshot record)
	OpSnapFloor    // snapshot: no admission under a key happens before Until (throttles forgotten)
	OpCronSet      // a periodic entry was created or replaced (cron.go)
	OpCronDel      // a periodic entry was deleted
	OpCronFire     // maintenance reached an entry's tick: its job (when ID is set) and its next tick
	OpSnapCron     // snapshot: a periodic entry
	OpBreaker      // circuit breaker PolicyKey set anew (Limit failures in Period, Cooldown, Probes), or deleted (Limit 0)
	OpSnapBreaker  // snapshot: a breaker with its state (Times failures, Until end of open, ProbesOK, ProbeIDs)
	OpProgress     // a running job reported Progress (JOBPROGRESS)
	OpLapse        // maintenance: job ID's deadline (Now) came before a reservation: it is expired
	OpTimeout      // maintenance: job ID's reservation timed out at Now: a failed attempt, State and RunAt as in fail
	// Unique keys (idem.go).
	OpUniqueRelease // job ID left the scope of unique key IdemKey, which is forgotten (Now unset: the record follows the change that made it)
	OpReplace       // a duplicate push replaced waiting job ID's Payload, MaxAtt, Backoff and run time (RunAt)
	// Dependencies (deps.go).
	OpAfter // dependency DepID of waiting job ID ended in State at Now: met (succeeded, or ANYWAY), else the job is cancelled
	// Batches (batch.go).
	OpBatchOpen   // batch Batch opened, its callback in the job's fields (none without Queue), ON always when Anyway
	OpBatchClose  // batch Batch closed at Now
	OpBatchForget // complete batch Batch forgotten by maintenance at Now
	OpSnapBatch   // snapshot: a batch with its state (BatchClosed, BatchDone at Now, BatchCounts, callback job ID)
	OpBatchDone   // batch Batch completed at Now: closed, none of its jobs pending (its callback's push follows)
	opMax
)

// Valid reports whether o is a known record kind.
func (o Op) Valid() bool { return o >= OpPush && o < opMax }

// Record is one state change as the log keeps it: an outcome, not a request.
// A reservation is logged as "job X reserved by W with token T until E", so
// replay never re-runs selection; a lease that ran out is logged as such, so
// replay never runs maintenance. Records about one queue are logged under
// its shard lock, in the order they were applied. Only the fields an Op uses
// are set, and each field means one thing whatever the Op.
//
// The struct is also the log's schema: each field's `log` tag is its field
// number on disk (never renumber, never reuse), optionally followed by the
// record kinds that own it. Two fields share a number only when no kind
// uses both: the decoder gives the number to the field that names the
// record's kind, else to the one that names none. Adding a field is adding
// it here with a new number; persistence encodes it, and its round-trip test
// covers it, from this declaration alone.
type Record struct {
	Op  Op
	Now int64 `log:"1"` // when it happened (due, expire, drop: the timer's instant; snapidem: the key's first push)

	// The job, in push, snapjob and the records of one job's life.
	ID       string `log:"2"`
	Queue    string `log:"3"`
	Handler  string `log:"4"`
	Payload  []byte `log:"5"` // nil and empty differ: an empty payload is kept
	Priority int64  `log:"6"`
	CKey     string `log:"7"`  // the job's concurrency key
	RKey     string `log:"8"`  // the job's rate-limit key
	RunAt    int64  `log:"9"`  // when the job is due (push, fail, release, snapjob)
	Attempt  int64  `log:"10"` // attempts made so far (snapjob)
	MaxAtt   int64  `log:"11"` // max attempts
	Backoff  int64  `log:"12"`
	Token    string `log:"13"` // the lease's token
	Worker   string `log:"14"`
	Expires  int64  `log:"15"` // when the lease ends
	Error    string `log:"16"` // the last failure's message
	IdemKey  string `log:"34"` // push: the job's idempotency or unique key; snapidem: a remembered key; uniquerelease: the key released
	HasError bool   `log:"17"` // Error is set, even when empty
	State    State  `log:"18"` // the job's state after the change (fail: retry_pending or failed)
	Group    string `log:"35"` // the job's fair group (push, snapjob, snapgroup)
	// A job's further keys of several (push, snapjob): its first keys of
	// each kind are CKey and RKey, these follow (multikey.go).
	CKeys []string `log:"50"`
	RKeys []string `log:"51"`

	// A reservation's admission on the job's rate-limit key. (The small
	// fields sit together, so that padding does not grow the record.)
	Admitted   bool  `log:"19"`        // an admission was recorded on RKey
	AdmittedAt int64 `log:"9,reserve"` // the admission's time, when not Now
	RoundRobin bool  `log:"37"`        // reserve: asked for ROUNDROBIN (rotation.go)

	// Policies (policyset, policydel, snappolicy, snapadmissions).
	PolicyKey string            `log:"7,policyset,policydel,snappolicy,snapadmissions,weight,throttle,breaker,snapbreaker"`
	Limit     int64             `log:"21"`
	Period    int64             `log:"22"`
	Kind      backpressure.Kind `log:"20"`
	Existed   bool              `log:"19,policydel,weight"` // the deleted policy existed (always so when logged)
	Until     int64             `log:"38"`                  // throttle: when admissions under PolicyKey resume (<= Now: lifted); snapbreaker: its open end
	// Circuit breakers (breaker, snapbreaker): Limit failures within
	// Period open the breaker for Cooldown; then Probes jobs may go.
	Cooldown int64    `log:"46"`
	Probes   int64    `log:"47"`
	ProbesOK int64    `log:"48"` // snapbreaker: probes that succeeded in this half-open spell
	ProbeIDs []string `log:"49"` // snapbreaker: the jobs reserved as probes, unresolved

	// Snapshot order: a job's entry, push and timer order (snapjob), or a
	// queue's counters of them (snapqueue).
	Seq     uint64 `log:"23"`
	Created uint64 `log:"24"`
	TSeq    uint64 `log:"25"`
	// Snapshot of a job's times and a queue's state.
	CreatedAt int64 `log:"26"`
	UpdatedAt int64 `log:"27"`
	Paused    bool  `log:"28"`
	Pushed    int64 `log:"29"`
	Succ      int64 `log:"30"`
	Failed    int64 `log:"31"`
	// Turn is a fair turn (fair.go): a queue's last (snapqueue), a
	// group's next (snapgroup).
	Turn uint64 `log:"36"`

	// Snapshot lists, Times pairing with the list of the same record.
	Times         []int64  `log:"32"`             // admissions of PolicyKey; retention filings; token expiries
	RetainedIDs   []string `log:"33"`             // snapretained: the retained jobs, oldest first
	ExpiredTokens []string `log:"33,snapexpired"` // snapexpired: remembered tokens, in forgetting order

	// Periodic entries (cronset, crondel, cronfire, snapcron). A cronset
	// or snapcron record carries the entry's job in the job's fields
	// (Queue, Handler, Payload, Priority, CKey, RKey, MaxAtt, Backoff); a
	// cronfire record with an ID is that job's push, at Now, the tick.
	CronName   string `log:"39"`
	CronSpec   string `log:"40"` // the schedule as given (cron syntax or a descriptor)
	CronZone   string `log:"41"` // the time zone the schedule is read in
	CronNext   int64  `log:"42"` // the entry's next tick after the change; 0: none
	CronLast   int64  `log:"43"` // snapcron: the tick of the last job pushed; 0: none yet
	CronFired  int64  `log:"44"` // snapcron: jobs pushed so far
	CronMissed int64  `log:"45"` // snapcron: misfires and refused ticks (CronEntry.Missed)

	// Results and progress (ack, progress, snapjob). nil: none; an empty
	// value is kept as empty.
	Result   []byte `log:"65"` // ack: the job's result (JOBACK ... RESULT)
	Progress []byte `log:"66"` // progress: the value reported; snapjob: the last one
	// Expiry and execution timeout (deadline.go). Deadline is the job's
	// (push, cronfire, snapjob); ExpiresIn the relative one of a periodic
	// entry's jobs (cronset, snapcron); Timeout each reservation's bound
	// (push, cronset, cronfire, snapjob, snapcron). A snapjob record also
	// carries its current reservation's timeout instant and its timer.
	Deadline  int64 `log:"55"`
	Timeout   int64 `log:"56"`
	ExpiresIn int64 `log:"57"`
	TimeoutAt int64 `log:"58"`
	DueAt     int64 `log:"59"`
	// Unique keys (push, snapidem): a key with a scope is a unique key
	// (UNIQUE), held until its job leaves the scope or until KeyUntil;
	// ScopeNone is an idempotency key (IDEMPOTENCY), so logs from before
	// unique keys read the same. In snapjob, KeyScope is the scope of the
	// unique key the job holds (ScopeNone: none).
	KeyScope UniqueScope `log:"75"`
	KeyUntil int64       `log:"76"` // when the key is forgotten at the latest; 0: when its job leaves the scope
	// Dependencies (deps.go). After lists the jobs a waiting job waits
	// for (push: those not succeeded at the push; snapjob: those not met
	// yet); Anyway makes one that ends without success count as met.
	// DepID is the dependency an after record resolves, and Timed tells
	// that a timer (a deadline, a timeout) ended it, or the dependency
	// whose end cancelled it in turn.
	After  []string `log:"85"`
	Anyway bool     `log:"86"`
	DepID  string   `log:"87"`
	Timed  bool     `log:"88"`
	// Batches (batch.go). Batch names the batch (push: the one the job
	// joins); BatchCB marks a push as that batch's callback. A snapshot's
	// batch carries BatchCounts: total, pending, succeeded, failed,
	// cancelled, expired.
	Batch       string  `log:"89"`
	BatchCB     string  `log:"90"`
	BatchCounts []int64 `log:"91"`
	BatchClosed bool    `log:"92"`
	BatchDone   bool    `log:"93"`
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
