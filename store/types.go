package store

import (
	"fmt"
	"strings"

	"sluice/backpressure"
)

// State is a job's lifecycle state.
type State uint8

// The lifecycle states (PROTOCOL.md "Job lifecycle").
const (
	Scheduled State = iota + 1
	Queued
	Reserved
	Running
	Succeeded
	Failed
	RetryPending
	Cancelled
	// Expired: the job's deadline (JOBPUSH EXPIRES or DEADLINE) came
	// while it waited for a reservation.
	Expired
	// Waiting: the job waits for the jobs it was pushed AFTER to succeed
	// (deps.go); it is in no lane and reserve never sees it.
	Waiting
	numStates
)

var stateNames = [...]string{
	Scheduled:    "scheduled",
	Queued:       "queued",
	Reserved:     "reserved",
	Running:      "running",
	Succeeded:    "succeeded",
	Failed:       "failed",
	RetryPending: "retry_pending",
	Cancelled:    "cancelled",
	Expired:      "expired",
	Waiting:      "waiting",
}

func (s State) String() string {
	if s >= Scheduled && s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Terminal reports whether no operation but JOBRETRY or JOBCANCEL (from
// failed) moves a job out of s.
func (s State) Terminal() bool {
	return s == Succeeded || s == Failed || s == Cancelled || s == Expired
}

// transitions is the lifecycle table of PROTOCOL.md. Every state change goes
// through it (see (*Store).move), so an illegal one is refused before
// anything changes.
var transitions = map[State][]State{
	Scheduled:    {Queued, Cancelled, Expired},
	Queued:       {Reserved, Cancelled, Expired},
	Reserved:     {Running, Queued, Scheduled, Succeeded, RetryPending, Failed, Cancelled},
	Running:      {Queued, Succeeded, RetryPending, Failed, Cancelled},
	RetryPending: {Queued, Cancelled, Expired},
	Failed:       {Queued, Cancelled},
	Succeeded:    nil,
	Cancelled:    nil,
	Expired:      nil,
	Waiting:      {Queued, Scheduled, Cancelled, Expired},
}

var allowed [numStates][numStates]bool

func init() {
	for from, tos := range transitions {
		for _, to := range tos {
			allowed[from][to] = true
		}
	}
}

// Errors. Each message starts with its wire code (PROTOCOL.md "Errors") and
// Code returns that code, so the server recognises a refusal by the Code
// method anywhere in an error's chain, not by a list of these variables
// kept elsewhere. Every error the store returns to a client carries a code:
// one without would reach the client as "ERR internal error".
var (
	ErrNoJob         = coded("NOJOB no such job")
	ErrNoReservation = coded("NORESERVATION no such reservation")
	ErrExpired       = coded("EXPIRED the reservation's lease has expired")
	ErrDupJob        = coded("DUPJOB a job with this id already exists")
	ErrDupKey        = coded("DUPKEY the unique key is held by another job")
	ErrWrongState    = coded("WRONGSTATE operation not allowed in the job's state")
	ErrFull          = coded("FULL the server is at its job limit")
	ErrInvalid       = coded("ERR invalid argument")
)

// codedError is a sentinel whose text starts with its wire code. It is a
// pointer so that errors.Is compares identity, as with errors.New.
type codedError struct{ text, code string }

// coded makes a sentinel of text, whose first word is its code. The code is
// cut once here, so Code allocates nothing.
func coded(text string) error {
	code, _, _ := strings.Cut(text, " ")
	return &codedError{text: text, code: code}
}

func (e *codedError) Error() string { return e.text }
func (e *codedError) Code() string  { return e.code }

// StateError is a refused lifecycle transition. It matches ErrWrongState
// with errors.Is.
type StateError struct {
	ID       string
	From, To State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("WRONGSTATE job %s cannot go from %s to %s", e.ID, e.From, e.To)
}

// Is makes errors.Is(err, ErrWrongState) true.
func (e *StateError) Is(target error) bool { return target == ErrWrongState }
func (e *StateError) Code() string         { return "WRONGSTATE" }

// DupKeyError refuses a push whose unique key is held (ON-DUPLICATE
// reject). It matches ErrDupKey with errors.Is.
type DupKeyError struct{ Key, ID string }

func (e *DupKeyError) Error() string {
	return "DUPKEY key " + e.Key + " is held by job " + e.ID
}
func (e *DupKeyError) Is(target error) bool { return target == ErrDupKey }
func (e *DupKeyError) Code() string         { return "DUPKEY" }

// ErrKeysFull refuses a unique key past the keys' bound: unique keys are
// never forgotten early.
var ErrKeysFull = coded("FULL the server holds as many unique keys as it may (idempotency-max-keys)")

// invalid wraps ErrInvalid with a message a user can act on.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return "ERR " + e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }
func (e *invalidError) Code() string         { return "ERR" }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// Defaults of PROTOCOL.md.
const (
	DefaultMaxAttempts = 1
	DefaultBackoff     = 1000           // ms
	MaxBackoff         = 60 * 60 * 1000 // the retry delay is capped at one hour
	MaxIdentifier      = 1024           // bytes, for queue, handler, id, worker and key names
	DefaultPeekCount   = 10
)

// PushOptions describe a new job.
type PushOptions struct {
	Queue, Handler string
	Payload        []byte // copied: Push does not keep it, so the caller may reuse it
	ID             string // empty: generated
	Priority       int64
	ConcurrencyKey string
	RateLimitKey   string
	// ExtraConcurrencyKeys and ExtraRateLimitKeys are further keys after
	// ConcurrencyKey and RateLimitKey (at most MaxKeys of a kind in all,
	// none twice): the job is admitted only when every key admits.
	ExtraConcurrencyKeys []string
	ExtraRateLimitKeys   []string
	Group                string // the fair group; "" for the default one
	RunAt                int64  // 0: now; a time after now creates the job scheduled
	MaxAttempts          int64  // 0: DefaultMaxAttempts
	Backoff              int64  // ms; 0: DefaultBackoff
	// IdempotencyKey, when set, makes a repeat of the push within the
	// window create nothing and answer the first push's id (idem.go).
	IdempotencyKey string
	// A job still waiting for a reservation (scheduled, queued or
	// retry_pending) at its deadline ends expired: Deadline is that
	// instant (unix ms), or ExpiresIn ms after the push; at most one is
	// set, 0 for none.
	Deadline  int64
	ExpiresIn int64
	// Timeout, when set, bounds each reservation: Timeout ms after it
	// the attempt fails with error "timeout", whatever its lease.
	Timeout int64
	// UniqueKey, when set, makes the job the key's holder while it is in
	// UniqueScope (or until UniqueTTL ms have passed, when > 0): a push of
	// the key meanwhile does what OnDuplicate says (idem.go).
	UniqueKey   string
	UniqueScope UniqueScope // ScopeNone: ScopeTerminal
	UniqueTTL   int64
	OnDuplicate OnDuplicate
	// After names jobs (at most MaxAfter, none twice) that must succeed
	// before this one is queued: until then it is waiting (deps.go).
	// AfterAnyway makes a dependency that ends without success count as
	// met instead of cancelling the job.
	After       []string
	AfterAnyway bool
	// Batch, when set, makes the job one of that open batch's (batch.go).
	Batch string
}

// UniqueScope is how long a unique key stays held by its job.
type UniqueScope uint8

const (
	ScopeNone     UniqueScope = iota // not a unique key: an idempotency key, held for the window
	ScopeQueued                      // until the job is first reserved (or ends without running)
	ScopeActive                      // until a run of the job ends (acked, failed, or retry_pending), or it is cancelled
	ScopeTerminal                    // until the job is terminal
	numScopes
)

// ScopeNames are the wire names of the scopes, by value.
var ScopeNames = [numScopes]string{"", "queued", "active", "until-terminal"}

func (sc UniqueScope) String() string {
	if sc < numScopes {
		return ScopeNames[sc]
	}
	return "unknown"
}

// leftBy reports whether a job moving from state from to state to leaves
// scope sc.
func (sc UniqueScope) leftBy(from, to State) bool {
	switch sc {
	case ScopeQueued:
		return to != Queued && to != Scheduled
	case ScopeActive:
		return to == RetryPending || to.Terminal()
	case ScopeTerminal:
		return to.Terminal()
	}
	return false
}

// OnDuplicate is what a push does when its unique key is held.
type OnDuplicate uint8

const (
	DupKeep    OnDuplicate = iota // answer the holder's id, change nothing
	DupReject                     // refuse with ErrDupKey naming the holder
	DupReplace                    // replace a waiting holder's payload and options; else keep
	DupExtend                     // replace, and move a waiting holder's run time to the push's
)

// ReserveOptions describe a reservation request.
type ReserveOptions struct {
	Worker   string
	Lease    int64    // ms, > 0
	Count    int      // 0: 1
	Handlers []string // nil: any handler
	Queues   []string // in order of preference
	// RoundRobin starts with the queue after the one that last gave this
	// worker a job under RoundRobin, and takes one job from each queue in
	// turn (see rotation.go).
	RoundRobin bool
}

// Reservation is one reserved job, as JOBRESERVE returns it.
type Reservation struct {
	Token     string
	ID        string
	Queue     string
	Handler   string
	Payload   []byte
	Priority  int64
	Attempt   int64
	ExpiresAt int64
}

// FailOptions qualify JOBFAIL.
type FailOptions struct {
	Error    string
	HasError bool  // Error was given (an empty message is kept as empty)
	RetryIn  int64 // ms; used when HasRetry
	HasRetry bool
	NoRetry  bool
}

// Job is a copy of a job's record, as JOBGET shows it. Empty strings and zero
// times stand for absent values.
type Job struct {
	ID, Queue, Handler string
	Payload            []byte
	State              State
	Priority           int64
	ConcurrencyKey     string
	RateLimitKey       string
	// Every key of a kind, the first included, when the job has several
	// of that kind; nil otherwise.
	ConcurrencyKeys []string
	RateLimitKeys   []string
	Group           string
	Attempt         int64
	MaxAttempts     int64
	Backoff         int64
	CreatedAt       int64
	UpdatedAt       int64
	RunAt           int64
	Worker          string // while reserved or running
	ExpiresAt       int64  // while reserved or running
	LastError       string
	HasLastError    bool
	BlockedBy       string // why a queued job is not reservable now (every key that refuses, joined by ", "); "" if it is
	Result          []byte // JOBACK's RESULT; nil: none
	Progress        []byte // the last JOBPROGRESS; nil: none
	Deadline        int64  // JOBPUSH EXPIRES or DEADLINE: unix ms; 0 if none
	Timeout         int64  // JOBPUSH TIMEOUT: ms; 0 if none
	// After lists the dependencies a waiting job still waits for, in the
	// order they were named; nil when none.
	After []string
}

// QueueStats is QUEUESTATS's answer.
type QueueStats struct {
	Queue              string
	Status             string // paused, throttled, active or idle
	Queued             int64
	Scheduled          int64
	Reserved           int64
	Running            int64
	RetryPending       int64
	Failed             int64
	Expired            int64
	BlockedConcurrency int64
	BlockedRateLimit   int64
	Paused             bool
	PushedTotal        int64
	SucceededTotal     int64
	FailedTotal        int64
}

// PolicyInfo is a policy with its live usage (POLICYGET).
type PolicyInfo struct {
	backpressure.Info
	Waiting int64 // queued jobs with this key that the policy blocks now
}
