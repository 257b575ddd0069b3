#!/usr/bin/env bash
# Every check CI runs: formatting, vet, all tests with the race detector
# (including redis-cli and redis-benchmark against a built sluice), and a
# short fuzz run of the hostile-input defences.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests run besides Go: redis-cli and redis-benchmark (compatibility
# tests), Debian's python3 with redis-py (its INFO parser), redis-server and
# beanstalkd (the benchmark harness's smoke run, side by side), node and npm
# (the Node.js example worker).
need=()
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || need+=(redis-tools)
/usr/bin/python3 -c 'import redis' 2>/dev/null || need+=(python3-redis)
command -v redis-server >/dev/null || need+=(redis-server)
command -v beanstalkd >/dev/null || need+=(beanstalkd)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
	echo "test.sh: installing ${need[*]}"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
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

go vet ./...
go test -race -count=1 ./...
# Fuzz runs are bounded by input counts, not time: a time-bounded run can
# fail with 'context deadline exceeded' when its deadline lands mid-input.
go test -run '^$' -fuzz '^FuzzGuard$' -fuzztime 200000x ./protocol/
go test -run '^$' -fuzz '^FuzzServer$' -fuzztime 10000x ./commands/
go test -run '^$' -fuzz '^FuzzCommands$' -fuzztime 20000x ./commands/
go test -run '^$' -fuzz '^FuzzDifferential$' -fuzztime 5000x ./store/
go test -run '^$' -fuzz '^FuzzReadRecord$' -fuzztime 200000x ./persistence/
