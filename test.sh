#!/usr/bin/env bash
# Every check CI runs: formatting, vet, all tests with the race detector
# (including redis-cli and redis-benchmark against a built sluice), and a
# short fuzz run of the hostile-input defences.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
	echo "test.sh: installing redis-tools (redis-cli, redis-benchmark)"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-tools >/dev/null
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
go test -run '^$' -fuzz '^FuzzGuard$' -fuzztime 10s ./protocol/
go test -run '^$' -fuzz '^FuzzServer$' -fuzztime 10s ./commands/
