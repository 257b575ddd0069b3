// Package client is the Go client and worker runtime for sluice.
//
// A Client is a typed front for sluice's commands (PROTOCOL.md), built on
// go-redis speaking RESP2. Every job, queue and policy command has a method;
// error replies come back as *Error values that match the package's
// sentinels with errors.Is (errors.Is(err, client.ErrExpired)), and the
// map-shaped replies are decoded into Reservation, Job, QueueStats and
// Policy values.
//
// A Worker runs handlers registered by name. One fetcher goroutine holds a
// blocking JOBRESERVE over the worker's ordered queue list, asking only for
// the registered handlers and only for as many jobs as it has free
// executors; each job is started, handed to its handler with a context, and
// acknowledged or failed with the handler's error. While a handler runs its
// lease is extended at a third of the lease; the handler's context is
// cancelled when the job is cancelled on the server or the lease is lost, and
// context.Cause tells which (ErrJobCancelled, ErrLeaseLost). Shutdown stops
// reserving, gives back jobs that were reserved but not started, and waits
// for running handlers up to a deadline.
//
// Delivery is at least once: a job whose worker dies is reserved again when
// its lease runs out, so handlers should be safe to run twice.
//
// Across machines, give Options a TLSConfig (a client certificate in it
// when the server asks for one) and a Username and Password of an ACL user
// with only the rights the program needs (docs/securing.md); ParseURL
// reads both from a rediss://user:password@host:port URL.
//
// The package depends only on go-redis and the standard library; it never
// imports the server's packages.
package client
