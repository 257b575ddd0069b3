// Package compat runs sluice's job lifecycle with the Redis clients people
// use, each with its default settings, against a built sluice: node-redis
// (RESP3 by default), ioredis, go-redis with Protocol 3 and with Protocol 2,
// Debian's python3-redis, redis-cli -3 and Debian's ruby-redis. One test per
// client starts its own server and runs that client's script; a failing
// script fails the test with the script's output.
//
// The tests carry the build tag compat, so `go test ./...` leaves them out
// until the features they check are all on main:
//
//	go test -race -count=1 -tags compat ./compat/
//
// They need node and npm, redis-cli, /usr/bin/python3 with Debian's redis
// module and ruby with Debian's redis gem (./test.sh installs them all, and
// `npm ci` in compat/node); a missing one fails the test rather than
// skipping it. The npm packages are pinned in compat/node/package-lock.json;
// the test runs `npm ci` there when compat/node/node_modules is missing.
//
// Every script runs the same lifecycle, step by step, and goes on after a
// failed step so one run shows every step that fails:
//
//   - HELLO on the library's own connection answers the protocol the library
//     asks for by default ([RESP3] for node-redis, ioredis, go-redis
//     Protocol 3 and redis-cli -3).
//   - POLICYSET CONCURRENCY tenant:a 2 and RATELIMIT api:x 100 60000.
//   - JOBRESERVE ... BLOCK on mail:out from a second connection, woken by a
//     JOBPUSH with ID, PRIORITY, CONCURRENCY, RATELIMIT, MAXATTEMPTS and
//     BACKOFF from the first; the reservation's fields are checked.
//   - JOBPUSH with DELAY and with AT: both scheduled.
//   - JOBSTART, JOBTOUCH, JOBGET (every field that matters at that point),
//     JOBACK.
//   - JOBFAIL ... NORETRY, then JOBRETRY.
//   - Null replies: JOBGET of an unknown id, a JOBRESERVE that finds nothing,
//     POLICYGET of no policy.
//   - QUEUESTATS, POLICYGET, POLICYLIST.
//   - [MULTI] three JOBPUSHes in one transaction, through the library's own
//     transaction API.
//   - [IDEMPOTENCY] a JOBPUSH with every option (ID, PRIORITY, CONCURRENCY,
//     RATELIMIT, DELAY or AT, MAXATTEMPTS, BACKOFF, IDEMPOTENCY), and its
//     retry, which answers the same id and creates nothing.
//   - INFO queues and policies read with the library's own INFO call (and
//     its parser where it has one), with queue names and policy keys
//     containing ':'.
//
// The TLS tests (tls_test.go) run the same lifecycle with redis-cli --tls,
// go-redis, ioredis and node-redis over TLS only, with a client
// certificate, logged in as a named user from an --aclfile while the
// default user has a password of its own; the certificates are made by the
// openssl commands of docs/securing.md, run as written there. A client
// without a valid certificate must be refused (--tls-auth-clients yes).
// They need openssl too.
//
// The Sentinel tests (sentinel_test.go) give each library's own Sentinel
// support one standalone node as its only sentinel and "sluice" as the
// master name: go-redis NewFailoverClient (RESP3 and RESP2), ioredis with
// sentinels, node-redis createSentinel and python3-redis's Sentinel find
// the node through SENTINEL, connect to it and push, reserve and ack.
//
// Map replies (JOBGET, reservations, QUEUESTATS, POLICYGET, HELLO) are
// checked in the shape each library gives for its protocol: a map (an
// object, a dict) over RESP3, a flat field/value list over RESP2 or where
// the library flattens RESP3 maps itself (ioredis's default reply mapping).
// Steps marked [RESP3], [MULTI] and [IDEMPOTENCY] need those features of
// issue 17.
package compat
