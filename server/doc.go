// Package server turns settings into a running node: the store, its
// append-only log, the blocking registry and its timer, the command table,
// the protocol server, the plaintext and TLS listeners and the metrics
// endpoint, wired one way for the program, its tests and its harnesses.
//
// A node's life is New (the store, the log replayed into it, the table),
// Start (listeners open, connections served), then Shutdown: stop
// accepting, let connections finish what they sent, stop the metrics
// endpoint and the timer, write and fsync the log. Signals, the process's
// memory settings and the "ready" line belong to the caller (main.go).
//
// The seams are where a replicated node differs: the log is the one
// store.Journal behind the store, and the command table is built from
// commands.Env over that store, so a node that applies a replicated log
// swaps the journal, not the wiring.
package server
