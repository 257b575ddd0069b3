#!/usr/bin/env bash
# Runs sluice's benchmarks side by side with redis-server and beanstalkd and
# writes benchmarks/RESULTS.md, results.json and throughput.svg.
#
#   benchmarks/run.sh              full run: 3 rounds, medians (about 20 minutes)
#   benchmarks/run.sh --long       also measure at 10,000,000 queued jobs
#   benchmarks/run.sh --rounds 5   more rounds
#   benchmarks/run.sh --smoke      tiny workloads, one round, into a temporary
#                                  folder: checks the harness, measures nothing
#   benchmarks/run.sh --only cycle only the measures whose id contains "cycle"
#   benchmarks/run.sh --no-profile skip the CPU profiles of sluice
#   benchmarks/run.sh --report     measure nothing: rewrite RESULTS.md from
#                                  results.json (after editing FINDINGS.md)
#
# benchmarks/FINDINGS.md, hand-written about the latest full run (what
# missed a bar and why), is included in RESULTS.md.
#
# Installs redis-server, redis-tools and beanstalkd with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v beanstalkd >/dev/null || need+=(beanstalkd)
if ((${#need[@]})); then
	echo "run.sh: installing ${need[*]}"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian package starts a redis-server on 6379 as a service; the
# benchmarks start their own on free ports and leave that one alone.

smoke=0 profile=1 report=0 out=benchmarks
args=()
while (($#)); do
	case "$1" in
	--smoke) smoke=1 ;;
	--no-profile) profile=0 ;;
	--report) report=1 ;;
	--out) out="$2"; shift ;;
	--long | --rounds | --only)
		if [ "$1" = --long ]; then args+=(-long); else args+=("-${1#--}" "$2"); shift; fi ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

bin=benchmarks/bin
mkdir -p "$bin"
go build -o "$bin/sluice" .
go build -o "$bin/loadgen" ./benchmarks/cmd/loadgen
go build -o "$bin/benchrun" ./benchmarks/cmd/benchrun

notes=()
[ -f benchmarks/FINDINGS.md ] && notes=(-notes benchmarks/FINDINGS.md)
if ((report)); then
	exec "$bin/benchrun" -report benchmarks/results.json -out "$out" "${notes[@]}"
fi

if ((smoke)); then
	[ "$out" != benchmarks ] || out=$(mktemp -d -t sluice-bench-smoke-XXXX)
	exec "$bin/benchrun" -smoke -sluice "$bin/sluice" -loadgen "$bin/loadgen" -out "$out" "${args[@]}"
fi

if ((profile)); then
	# A sluice that also serves net/http/pprof: the hook file is added to
	# the root package for this build only, the source tree is untouched.
	overlay="$bin/pprof-overlay.json"
	printf '{"Replace":{"%s/zz_bench_pprof.go":"%s/benchmarks/testdata/pprof_hook.go"}}\n' "$PWD" "$PWD" >"$overlay"
	go build -overlay "$overlay" -o "$bin/sluice-pprof" .
	args+=(-sluice-pprof "$bin/sluice-pprof")
fi
exec "$bin/benchrun" -sluice "$bin/sluice" -loadgen "$bin/loadgen" -out "$out" "${notes[@]}" "${args[@]}"
