// Package backpressure holds sluice's policies and their live counters:
// per-key concurrency caps and exact rolling-window rate limits.
//
// A Registry answers one question atomically: may a job with concurrency key
// C and rate-limit key R be admitted now? If yes, it counts the job active on
// C and records an admission on R (only when R has a policy). If no, it names
// the blocking key and registers the caller's Waiter on that key, so the
// caller learns when the key may admit again (a slot is released, the policy
// changes). A rate limit's reopening time is returned so the caller can arm a
// timer of its own; the registry arms no timers. A caller that admits the
// same keys over and over (a store lane) keeps a Keys, which caches where
// their state lives.
//
// A policy key ending in '*' is a template (template.go): each key under
// its prefix gets a cap or a window of its own, made when first used and,
// for a rate limit, forgotten once its window is empty. A throttle
// (throttle.go) refuses every admission under a key until an instant.
//
// Concurrency counts are kept for every key in use, with or without a policy,
// so that a policy set later sees the true number of active jobs. Rate
// admissions are kept only while a policy exists: deleting the policy forgets
// them.
//
// The registry is sharded by a fixed hash of the key; each shard has its
// own mutex, which is a leaf lock: nothing else is locked while it is held.
// (Setting a throttle takes the registry's throttle lock, then shards one
// at a time; templates have a read-write lock taken under a shard's.) A call that touches two
// keys takes their shards one after the other, never together, except
// for the calls on a job's several keys (multi.go), which take all of
// their shards at once, in shard order.
package backpressure
