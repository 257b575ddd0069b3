#!/usr/bin/env bash
# Every check CI runs: formatting, vet, all tests with the race detector
# (including redis-cli and redis-benchmark against a built sluice, and the
# client compatibility tests of compat/, which their build tag turns on),
# and short fuzz runs of the hostile-input defences.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests run besides Go: redis-cli and redis-benchmark (compatibility
# tests), Debian's python3 with redis-py (its INFO parser), redis-server and
# beanstalkd (the benchmark harness's smoke run, side by side), node and npm
# (the Node.js example worker), ruby with Debian's redis-rb (the client
# compatibility tests in compat/), openssl (compat's TLS tests make their
# certificates with the commands of docs/securing.md), chromium (the web
# dashboard's browser tests in dashboard/, driven headless).
need=()
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || need+=(redis-tools)
/usr/bin/python3 -c 'import redis' 2>/dev/null || need+=(python3-redis)
command -v redis-server >/dev/null || need+=(redis-server)
command -v beanstalkd >/dev/null || need+=(beanstalkd)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
ruby -e 'require "redis"' 2>/dev/null || need+=(ruby-redis)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	echo "test.sh: installing ${need[*]}"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The pinned node-redis and ioredis of compat/, again only when the lock
# file is newer than what npm ci last installed.
if [ compat/node/package-lock.json -nt compat/node/node_modules/.package-lock.json ]; then
	echo "test.sh: npm ci in compat/node"
	(cd compat/node && npm ci --no-audit --no-fund --silent)
fi

if git rev-parse --git-dir >/dev/null 2>&1; then
	gofiles=$(git ls-files '*.go')
else
	gofiles=$(find . -name '*.go' -not -path './.git/*')
fi
unformatted=$(gofmt -l $gofiles)
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change:"
	echo "$unformatted"
	exit 1
fi

go vet -tags compat ./...
go test -race -count=1 -tags compat ./...
# Fuzz runs are bounded by input counts, not time: a time-bounded run can
# fail with 'context deadline exceeded' when its deadline lands mid-input.
# They do not minimize the new inputs they find (-fuzzminimizetime 0s): a
# worker minimizing an input against a live server was once reported as
# 'hung or terminated unexpectedly while minimizing' (Go's fuzzing engine,
# golang/go#52569), failing a run that had found no failure.
go test -run '^$' -fuzz '^FuzzGuard$' -fuzztime 200000x -fuzzminimizetime 0s ./protocol/
go test -run '^$' -fuzz '^FuzzACLRules$' -fuzztime 20000x -fuzzminimizetime 0s ./protocol/
go test -run '^$' -fuzz '^FuzzServer$' -fuzztime 10000x -fuzzminimizetime 0s ./commands/
go test -run '^$' -fuzz '^FuzzCommands$' -fuzztime 20000x -fuzzminimizetime 0s ./commands/
go test -run '^$' -fuzz '^FuzzDifferential$' -fuzztime 5000x -fuzzminimizetime 0s ./store/
go test -run '^$' -fuzz '^FuzzCronSpec$' -fuzztime 20000x -fuzzminimizetime 0s ./store/
go test -run '^$' -fuzz '^FuzzReadRecord$' -fuzztime 200000x -fuzzminimizetime 0s ./persistence/
go test -run '^$' -fuzz '^FuzzDecodeEntry$' -fuzztime 50000x -fuzzminimizetime 0s ./cluster/
