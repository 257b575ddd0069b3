// Package metrics keeps the counters an operator watches and serves them as
// Prometheus metrics.
//
// Most figures are read when they are asked for: a scrape (or INFO) reads
// the store's per-queue state counts and policy usage, the server's
// connection and per-command counters, and the log's sizes, so keeping them
// costs the hot path nothing. The job events the store does not count —
// pushes, reservations with their wait, acks with their run time, failures,
// retries, expiries and cancellations — arrive through store.Observer:
// Metrics hands the store one QueueObserver per queue, a few atomic counters
// and two histograms, so an event costs an interface call and one or two
// atomic adds, under the queue's shard lock (a reservation is counted by its
// wait histogram, and a histogram's count is the sum of its buckets).
//
// Label cardinality is bounded: the first MaxLabels queue names (and,
// separately, policy keys) seen get their own label; every other one is
// added up under "other" (a queue or key actually named "other" counts
// there too). A name keeps its label for the life of the process, so event
// counters never go backwards even when a queue empties and vanishes from
// the store.
//
// Lock order: Metrics.mu is a leaf. Queue is called by the store with a
// shard lock held; Collect calls the store without holding Metrics.mu.
package metrics
