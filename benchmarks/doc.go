// Package benchmarks holds sluice's end-to-end benchmarks: a load generator
// (cmd/loadgen) that drives sluice, redis-server and beanstalkd with the
// same workloads, and a runner (cmd/benchrun, called by run.sh) that starts
// each server, runs every workload for several rounds, and writes
// RESULTS.md with sluice's figures as ratios to its peers from the same
// round. The package itself has only the smoke test, which runs the whole
// harness on tiny workloads. See README.md.
package benchmarks
