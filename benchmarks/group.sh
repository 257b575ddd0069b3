#!/usr/bin/env bash
# Paired measures of a replicated group of three (issue 18's bars):
#
#   push, redis-benchmark -c 50 at P1 and P16: the group's JOBPUSH (replies
#     after commit) against redis-server --appendonly yes --appendfsync
#     always doing LPUSH (bar >= 0.5x each);
#   reserve+ack, loadgen cycle with 50 workers: the group against a
#     standalone sluice with --appendfsync always, taking turns (loadgen
#     -addr2; bar >= 0.5x);
#   memory: each follower's RSS against the leader's after 1,000,000 pushes
#     of 100 bytes (bar <= 1.2x), with DEBUG DIGEST of every node.
#
#   benchmarks/group.sh          5 rounds
#   benchmarks/group.sh 9        more rounds
#
# Everything runs on loopback in a temporary folder: the three nodes, the
# peers and the load generators share the machine's cores and one disk.
# Prints each round, then the medians of the throughputs and of the paired
# ratios. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
for t in redis-benchmark redis-cli redis-server; do
	command -v $t >/dev/null || { echo "group.sh: needs $t (apt-get install redis-server redis-tools)" >&2; exit 2; }
done
tmp=$(mktemp -d -t sluice-group-XXXX)
pids=()
trap 'kill ${pids[@]} 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" .
go build -o "$tmp/loadgen" ./benchmarks/cmd/loadgen

base=$((20000 + RANDOM % 20000))
key='the secret the three nodes of the benchmark share'
boot="n1=127.0.0.1:$((base + 11)) n2=127.0.0.1:$((base + 12)) n3=127.0.0.1:$((base + 13))"
for i in 1 2 3; do
	"$tmp/sluice" --port $((base + i)) --dir "$tmp/n$i" --loglevel warn --cluster-id n$i \
		--cluster-addr 127.0.0.1:$((base + 10 + i)) --cluster-bootstrap "$boot" --cluster-key "$key" >"$tmp/n$i.log" 2>&1 &
	pids+=($!)
	echo $! >"$tmp/n$i.pid"
done
sa=$((base + 5)) rd=$((base + 6))
"$tmp/sluice" --port $sa --dir "$tmp/sa" --loglevel warn --appendonly yes --appendfsync always >"$tmp/sa.log" 2>&1 &
pids+=($!)
redis-server --port $rd --dir "$tmp" --appendonly yes --appendfsync always --save '' >"$tmp/redis.log" 2>&1 &
pids+=($!)

leader=
for _ in $(seq 100); do
	for i in 1 2 3; do
		[ "$(redis-cli -p $((base + i)) ROLE 2>/dev/null | head -1)" = master ] && leader=$i
	done
	[ -n "$leader" ] && break
	sleep 0.1
done
[ -n "$leader" ] || { echo "group.sh: the group elected no leader" >&2; exit 1; }
lp=$((base + leader))
echo "leader n$leader (client port $lp)"

payload=$(printf 'x%.0s' $(seq 100))
rps() { # port P n command...
	local p=$1 P=$2 n=$3
	shift 3
	redis-cli -p $p FLUSHALL >/dev/null
	redis-benchmark -p $p -c 50 -n $n -P $P --csv "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", b/a}'; }

for P in 1 16; do
	n=30000
	((P == 1)) || n=300000
	: >"$tmp/redis" && : >"$tmp/group" && : >"$tmp/ratio"
	for r in $(seq "$rounds"); do
		if ((r % 2)); then
			a=$(rps $rd $P $n LPUSH bench "$payload")
			b=$(rps $lp $P $n JOBPUSH bench h "$payload")
		else
			b=$(rps $lp $P $n JOBPUSH bench h "$payload")
			a=$(rps $rd $P $n LPUSH bench "$payload")
		fi
		echo "$a" >>"$tmp/redis" && echo "$b" >>"$tmp/group" && ratio "$a" "$b" >>"$tmp/ratio"
		echo "push P=$P round $r: redis always $a/s, group $b/s"
	done
	echo "push P=$P medians over $rounds rounds: redis always $(median <"$tmp/redis")/s, group $(median <"$tmp/group")/s, paired group/redis $(median <"$tmp/ratio")"
done

: >"$tmp/sa-ops" && : >"$tmp/group" && : >"$tmp/ratio"
for r in $(seq "$rounds"); do
	redis-cli -p $sa FLUSHALL >/dev/null && redis-cli -p $lp FLUSHALL >/dev/null
	out=$("$tmp/loadgen" -workload cycle -conns 50 -n 20000 -addr 127.0.0.1:$sa -addr2 127.0.0.1:$lp -blocks 10 2>&1 | grep ops/s | awk '{print $6}')
	a=$(echo "$out" | sed -n 1p) b=$(echo "$out" | sed -n 2p)
	echo "$a" >>"$tmp/sa-ops" && echo "$b" >>"$tmp/group" && ratio "$a" "$b" >>"$tmp/ratio"
	echo "reserve+ack round $r: standalone always $a/s, group $b/s"
done
echo "reserve+ack medians over $rounds rounds: standalone always $(median <"$tmp/sa-ops")/s, group $(median <"$tmp/group")/s, paired group/standalone $(median <"$tmp/ratio")"

redis-cli -p $lp FLUSHALL >/dev/null
"$tmp/loadgen" -workload push -conns 50 -pipeline 16 -n 1000000 -size 100 -addr 127.0.0.1:$lp >/dev/null 2>&1
sleep 2
rss() { awk '/VmRSS/ {print $2}' /proc/"$(cat "$tmp/n$1.pid")"/status; }
lr=$(rss $leader)
for i in 1 2 3; do
	echo "n$i: RSS $(rss $i) kB$([ $i = "$leader" ] && echo ' (leader)' || echo ", $(ratio "$lr" "$(rss $i)")x the leader's"), DEBUG DIGEST $(redis-cli -p $((base + i)) DEBUG DIGEST)"
done
