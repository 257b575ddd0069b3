// Package dashboard is sluice's web dashboard: pages rendered on the
// server with html/template (they read without JavaScript), a few lines of
// script that refresh the overview every second, and charts drawn on the
// server as inline SVG. Everything it serves is embedded in the binary.
//
// Reads go through the store's read APIs, each of which holds a queue's
// lock for a bounded slice: QueueStats per queue, PeekPage for queued jobs
// in reservation order, ScanIDs and Get for jobs in other states (a
// bounded scan per page until a job search exists). The event rates the
// charts show come from a ring of per-second samples of the metrics'
// totals, kept here for the last hour.
//
// Every change is a POST carrying a CSRF token, and runs as a command
// through the protocol server's own table on a detached client logged in
// as the dashboard's user (protocol.Client.Run): the same handler, rights,
// log record and, on a node of a replicated group, the same proposal as a
// client's command. A follower answers as it answers a client.
//
// Sign-in: when the default user has no password the dashboard is open (it
// listens on loopback unless told otherwise); else a request carries HTTP
// basic auth or a session cookie from /login, checked against the server's
// users (requirepass is the default user's password).
package dashboard
