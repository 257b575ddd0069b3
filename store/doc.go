// Package store is sluice's job store: jobs, queues, leases, the lifecycle,
// the reservation algorithm, timers and blocked-reserve wake-ups. It has no
// network code and depends on the standard library, package backpressure
// and, to read periodic schedules, github.com/robfig/cron/v3 only.
//
// # Determinism
//
// Every operation takes now (Unix ms) and first applies everything due at
// now, in every queue: expired leases, due scheduled and retry_pending jobs,
// retention drops. Ids and tokens come from an injected Generator. The same
// operations on the same state therefore give the same replies and state,
// which the tests, the log replay and, later, replication rely on.
//
// # Reservation without scans
//
// A queue's queued jobs are grouped into lanes by (handler, concurrency key,
// rate-limit key); see queue.go. A lane whose key refuses admissions is
// parked and registered with the policy registry; it comes back when the key
// frees (a registry wake-up delivered to the owning shard's inbox) or, for a
// rate limit or a throttle, when the window opens or the throttle ends (a
// lane timer). Reserve costs O(log) in
// the number of lanes and jobs whatever is blocked behind them. Leases,
// scheduled jobs and retries are an indexed min-heap of job timers per
// shard; maintenance touches only what is due, and each shard publishes its
// next deadline in an atomic so an operation skips idle shards without
// locking them.
//
// # Memory
//
// Most jobs wait in queued without being touched, so a job pushed straight
// into queued has no record of its own: it is an entry of a few varints,
// its id and its payload in a small noscan byte chunk of its lane's
// priority bucket, about 120 bytes for a 100-byte payload, plus a 16-byte
// slot of the id index that points at the chunk (packed.go). Once it
// leaves queued (reserve, cancel, purge) it becomes a job record with its
// own copy of the payload, for good: jobs that re-enter queued wait in a
// ring of records beside the chunks, merged with them by entry order. Push
// therefore copies every payload and keeps none given to it.
//
// # Locking
//
// Outermost is the gate (unit.go): every command holds it shared (the
// server's dispatcher takes it) and so does Tick; a transaction (MULTI/EXEC)
// holds it alone between BeginUnit and EndUnit, so that no other command,
// maintenance or blocked reservation interleaves with it.
//
// Queues are sharded by a hash of their name; each shard has a mutex that
// guards its queues, lanes, jobs and timers. The gate, outermost, is held
// shared by every command and alone by a transaction. policyMu, next,
// orders policy changes with the log; FLUSHALL takes it, then idemKeys.mu,
// then cronTable.mu, then every shard lock in index order. A push with an
// idempotency key holds idemKeys.mu around its shard lock (idem.go), so
// that the key's check and the job's insert are one step for every queue;
// a periodic entry's firing holds cronTable.mu around its job's push
// (cron.go), so that the job and the entry's next tick are one record. A
// push with dependencies holds deps.mu while it checks them, inserts its
// job and registers it on them, and the resolution of a dependency's end
// holds it around its waiters' shard locks (deps.go). The other locks
// are leaves, taken while policyMu, idemKeys.mu or a shard lock may be held
// but never while another leaf is held:
//
//	gate  →  policyMu  →  idemKeys.mu  →  cronTable.mu  →  deps.mu  →  shard.mu  →  backpressure registry shard |
//	             id index shard | shard.inboxMu (of any shard) | deps.listMu |
//	             expiredTokens.mu | retention.mu | batches.mu | the Journal's own lock |
//	             idemKeys.pendMu | queueNames.mu | the end hook's (JOBWAIT's) lock
//
// (batches.mu is the one leaf held around another: a batch's open, close
// and completion are logged under it, so the Journal's lock comes after
// it.)
//
// One exception among the leaves: a job of several keys is admitted under
// the registry shards of all its keys at once (backpressure.AdmitAll),
// taken in shard order, with nothing else taken under them.
// Apart from FLUSHALL (and its replay), no goroutine holds two shard locks.
// An operation that frees a
// concurrency key may unblock lanes in other shards: it appends a wake-up to
// those shards' inboxes (a leaf lock) and each shard drains its inbox at the
// start of its next locked section. A reserve over several queues locks their
// shards one after the other. Drops from retention and notifications run
// after the operation's locks are released (type effects); a drop then
// takes its job's shard lock, alone. Each
// check-then-act (admission, duplicate id, job limit, token fencing) happens
// inside one critical section.
//
// An Observer (metrics) is called with a shard lock held, through a
// per-queue handle asked for once per queue; it must only count, never
// block or call back into the store, so it is a leaf like the others.
//
// # Notifications
//
// SetNotify's callback learns of every queue in which work may have become
// eligible; SetTimerHook's of every earlier deadline. A server uses them to
// wake blocked reservations without polling: Tick(now) at NextDeadline()
// runs due maintenance and fires the notifications.
package store
