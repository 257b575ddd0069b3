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
// A node is a store, what makes it durable, a command table over it and
// the listeners. The parts meet at two seams, so that a replicated node
// changes them and keeps the rest: what makes the
// store durable is chosen in openStore (today the append-only log, a
// store.Journal; a raft log would take its place), and the command table
// passes through Options.Commands on its way to the protocol server (where
// write commands could be sent through a log before they run).
package server
