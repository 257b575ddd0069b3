// Package chaos checks a replicated group of sluice processes under
// faults, as shared/REPLICATION.md ("How it is tested") describes. Its
// tests build the sluice binary once, run three nodes on 127.0.0.1, each
// raft link (i to j) through its own fault proxy (--cluster-dial-via), and
// inject faults from the test itself: kill -9 and restart on the same
// --dir, SIGSTOP and SIGCONT, a node cut off both ways, a link cut one
// way.
//
// TestChaos is the checker: producers (JOBPUSH with IDEMPOTENCY keys,
// alone, in pipelines and in MULTI/EXEC, retried against whichever node
// leads) and workers (short leases,
// JOBRESERVE, JOBSTART, JOBACK, JOBFAIL, JOBRELEASE, and acks sent on
// purpose after the lease ended) run while a fault comes every second or
// so; every reply is recorded with its times; then it checks that every
// acknowledged push is on the final leader, no job acknowledged as done was
// handed out again, no token was honoured once it was no longer its job's
// reservation, the concurrency cap and the rate window were never
// exceeded, and every node ends with the same state (read through JOBGET,
// QUEUESTATS and POLICYLIST: there is no digest command yet).
// TestCheckerFindsViolations shows the checks a made-up history with one
// violation of each kind. TestChaos runs for about a minute in
// `go test ./chaos`; a long run:
//
//	SLUICE_CHAOS_SECONDS=600 go test ./chaos -run TestChaos -v -timeout 0
//
// TestFailover kills the leader under load and measures the time from the
// kill to the first write the new leader acknowledges; it prints the
// distribution (it asserts no time). Twenty kills:
//
//	SLUICE_FAILOVER_KILLS=20 go test ./chaos -run TestFailover -v
//
// TestBadPeer sends garbage and a peer holding the wrong key to every
// node's raft port and checks that the group's state does not change and
// that it goes on serving.
//
// The nodes' logs are kept in the test's temporary folders; a failing test
// prints where. SLUICE_CHAOS_KEEP=1 keeps them after a passing run too.
package chaos
