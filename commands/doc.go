// Package commands is sluice's command table: one row per command of
// PROTOCOL.md, one file per family (jobs, queues, policies, server). A
// handler parses its arguments, calls the store once, and returns a reply
// value; it holds no locks and makes no decisions the store should make.
// Errors are returned, never written: protocol.ErrorText turns them into
// RESP errors in one place.
package commands
