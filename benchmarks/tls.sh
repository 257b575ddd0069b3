#!/usr/bin/env bash
# Paired measure of TLS against plaintext on one sluice (issue 25's bar:
# TLS push throughput >= 0.7x plaintext at P1, >= 0.8x at P16).
#
#   benchmarks/tls.sh              7 rounds at P1 and P16
#   benchmarks/tls.sh 11           more rounds
#
# Builds sluice, makes a CA and certificates with openssl in a temporary
# folder, serves plaintext and TLS from one process, and runs redis-benchmark
# (50 connections, JOBPUSH of 100 bytes) against each port in turn, TLS and
# plaintext alternating which goes first. Prints each round, then the
# medians of the throughputs and of the paired ratios. The client's own
# encryption shares the machine's CPUs with the server: run it on an
# otherwise idle machine, and compare with redis-server --tls-port if it
# was built with TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
for t in redis-benchmark redis-cli openssl; do
	command -v $t >/dev/null || { echo "tls.sh: needs $t (apt-get install redis-tools openssl)" >&2; exit 2; }
done
tmp=$(mktemp -d -t sluice-tls-XXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" .

c="$tmp/certs"
mkdir "$c"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$c/ca.key" -out "$c/ca.crt" -days 1 -subj /CN=bench-ca 2>/dev/null
for who in server client; do
	openssl req "${ec[@]}" -keyout "$c/$who.key" -out "$c/$who.csr" -subj /CN=$who 2>/dev/null
	openssl x509 -req -in "$c/$who.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -out "$c/$who.crt" -days 1 \
		-extfile <(printf 'subjectAltName=IP:127.0.0.1\n') 2>/dev/null
done

port=$((20000 + RANDOM % 20000))
tport=$((port + 1))
"$tmp/sluice" --port $port --tls-port $tport --tls-cert-file "$c/server.crt" --tls-key-file "$c/server.key" \
	--tls-ca-cert-file "$c/ca.crt" --dir "$tmp/data" --appendonly no --loglevel warn >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 50); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done

payload=$(printf 'x%.0s' $(seq 100))
tls=(--tls --cacert "$c/ca.crt" --cert "$c/client.crt" --key "$c/client.key")
rps() { # port P n [tls flags]
	local p=$1 P=$2 n=$3
	shift 3
	redis-cli -p $port FLUSHALL >/dev/null
	redis-benchmark -p $p -c 50 -n $n -P $P --csv "$@" JOBPUSH bench h "$payload" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

for P in 1 16; do
	n=50000
	((P == 1)) || n=300000
	: >"$tmp/plain" && : >"$tmp/tls" && : >"$tmp/ratio"
	for r in $(seq "$rounds"); do
		if ((r % 2)); then
			a=$(rps $port $P $n)
			b=$(rps $tport $P $n "${tls[@]}")
		else
			b=$(rps $tport $P $n "${tls[@]}")
			a=$(rps $port $P $n)
		fi
		echo "$a" >>"$tmp/plain"
		echo "$b" >>"$tmp/tls"
		awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f\n", b/a}' >>"$tmp/ratio"
		echo "P=$P round $r: plaintext $a/s, TLS $b/s"
	done
	echo "P=$P medians over $rounds rounds: plaintext $(median <"$tmp/plain")/s, TLS $(median <"$tmp/tls")/s, paired TLS/plaintext $(median <"$tmp/ratio")"
done
