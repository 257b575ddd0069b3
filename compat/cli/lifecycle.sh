#!/usr/bin/env bash
# The client lifecycle of compat/doc.go with `redis-cli -3`.
# Usage: bash lifecycle.sh PORT (TLS and a user: see conn below)
#
# Every call is `redis-cli -3 -p PORT`; structured replies are read with
# --no-raw, redis-cli's own rendering, where a RESP3 map shows as
# `1# "field" => value` and a RESP2 list as `1) "field"`. A flat list is
# still read, so the steps after it run, and the step "[RESP3] every map
# reply was a map" fails at the end. Steps marked [RESP3], [MULTI],
# [IDEMPOTENCY] need those features of issue 17. Every step runs even when
# one before it failed; the exit status is 1 if any step failed.
set -u
PORT=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shapes=$work/flat      # names of the replies that came as flat lists
errs=$work/stderr      # what redis-cli printed on stderr (HELLO 3 failing)
: >"$shapes"
: >"$errs"

# With SLUICE_TLS_DIR (ca.crt, client.crt, client.key) every call is over
# TLS with that client certificate; with SLUICE_USER, as that user
# (password in SLUICE_PASS, given through REDISCLI_AUTH).
conn=()
if [ -n "${SLUICE_TLS_DIR:-}" ]; then
	conn+=(--tls --cacert "$SLUICE_TLS_DIR/ca.crt" --cert "$SLUICE_TLS_DIR/client.crt" --key "$SLUICE_TLS_DIR/client.key")
fi
if [ -n "${SLUICE_USER:-}" ]; then
	conn+=(--user "$SLUICE_USER")
	export REDISCLI_AUTH=${SLUICE_PASS:-}
fi
cli() { redis-cli -3 ${conn[@]+"${conn[@]}"} -p "$PORT" "$@" 2>>"$errs"; }
tty() { redis-cli -3 ${conn[@]+"${conn[@]}"} --no-raw -p "$PORT" "$@" 2>>"$errs"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# kv WHAT reads redis-cli --no-raw output of one map (or of an array
# holding one map) on stdin and prints `field<TAB>value` lines: strings
# unquoted, `(integer) n` as n, `(nil)` as is.
kv() {
	sed -E 's/^[[:space:]]*([0-9]+[)#][[:space:]]*)+//' | awk -v what="$1" -v shapes="$shapes" '
		function unq(s) {
			if (s ~ /^".*"$/) return substr(s, 2, length(s) - 2)
			sub(/^\(integer\) /, "", s)
			return s
		}
		/^".*" => / { i = index($0, " => "); print unq(substr($0, 1, i - 1)) "\t" unq(substr($0, i + 4)); next }
		{ if (n % 2 == 0) k = $0; else { print unq(k) "\t" unq($0); flat = 1 }; n++ }
		END { if (flat) print what >> shapes }'
}

# fields KV WHAT field=value ... checks fields of kv's output.
fields() {
	local m=$1 what=$2 bad=0
	shift 2
	for fv in "$@"; do
		local f=${fv%%=*} want=${fv#*=} got
		if ! got=$(printf '%s\n' "$m" | awk -F'\t' -v k="$f" '$1 == k { print $2; found = 1; exit } END { exit !found }'); then
			echo "$what: no field $f in: $(printf '%s' "$m" | tr '\t\n' '= ')"
			bad=1
		elif [ "$got" != "$want" ]; then
			echo "$what: $f = $got, want $want"
			bad=1
		fi
	done
	return $bad
}

get() { printf '%s\n' "$1" | awk -F'\t' -v k="$2" '$1 == k { print $2; exit }'; }

want() { # want GOT WANT WHAT
	[ "$1" = "$2" ] && return 0
	echo "$3: got '$1', want '$2'"
	return 1
}

failures=()
steps=0
step() {
	local name=$1 out
	shift
	steps=$((steps + 1))
	if out=$("$@" 2>&1); then
		echo "ok   $name"
	else
		failures+=("$name")
		echo "FAIL $name: $(printf '%s' "$out" | tr '\n' ' ')"
	fi
}

hello() {
	local m
	m=$(tty HELLO | kv HELLO)
	fields "$m" HELLO server=sluice proto=3 || return 1
	# redis-cli -3 prints "HELLO 3 failed: ..." and goes on in RESP2 when
	# the server refuses RESP3.
	if [ -s "$errs" ]; then
		echo "redis-cli: $(head -1 "$errs")"
		return 1
	fi
}
step "[RESP3] HELLO answers proto 3" hello

policies() {
	want "$(cli POLICYSET CONCURRENCY tenant:a 2)" OK "POLICYSET CONCURRENCY" &&
		want "$(cli POLICYSET RATELIMIT api:x 100 60000)" OK "POLICYSET RATELIMIT"
}
step "POLICYSET CONCURRENCY and RATELIMIT" policies

blocking() {
	tty JOBRESERVE w1 30000 BLOCK 10000 QUEUES mail:out >"$work/reserve" &
	local pid=$! i
	for i in $(seq 250); do
		cli INFO clients | grep -q '^blocked_clients:1' && break
		sleep 0.02
	done
	cli INFO clients | grep -q '^blocked_clients:1' || {
		echo "the reserve never blocked"
		kill $pid
		return 1
	}
	want "$(cli JOBPUSH mail:out send hello ID job:a PRIORITY 5 CONCURRENCY tenant:a RATELIMIT api:x MAXATTEMPTS 3 BACKOFF 10)" job:a JOBPUSH || return 1
	wait $pid || return 1
	local m
	m=$(kv reservation <"$work/reserve")
	fields "$m" reservation id=job:a queue=mail:out handler=send payload=hello priority=5 attempt=0 || return 1
	get "$m" token >"$work/token"
	[ -s "$work/token" ] || {
		echo "no token in the reservation"
		return 1
	}
}
step "JOBRESERVE BLOCK is woken by a push from another connection" blocking

scheduled() {
	local b c at
	b=$(cli JOBPUSH mail:out send later DELAY 600000)
	at=$(($(now_ms) + 600000))
	c=$(cli JOBPUSH mail:out send at AT $at)
	fields "$(tty JOBGET "$b" | kv JOBGET)" "JOBGET delayed" state=scheduled payload=later &&
		fields "$(tty JOBGET "$c" | kv JOBGET)" "JOBGET at" state=scheduled run_at=$at
}
step "JOBPUSH DELAY and AT create scheduled jobs" scheduled

lifecycle() {
	local token exp
	token=$(cat "$work/token" 2>/dev/null)
	[ -n "$token" ] || {
		echo "no reservation from the blocking step"
		return 1
	}
	want "$(cli JOBSTART "$token")" 1 JOBSTART || return 1
	exp=$(cli JOBTOUCH "$token" 60000)
	[ "$exp" -ge $(($(now_ms) + 50000)) ] 2>/dev/null || {
		echo "JOBTOUCH: $exp"
		return 1
	}
	fields "$(tty JOBGET job:a | kv JOBGET)" "JOBGET job:a" id=job:a queue=mail:out handler=send state=running \
		priority=5 concurrency_key=tenant:a rate_limit_key=api:x attempt=1 max_attempts=3 worker=w1 \
		expires_at="$exp" last_error='(nil)' blocked_by='(nil)' || return 1
	want "$(cli JOBACK "$token")" OK JOBACK || return 1
	fields "$(tty JOBGET job:a | kv JOBGET)" "JOBGET job:a" state=succeeded worker='(nil)'
}
step "JOBSTART, JOBTOUCH, JOBGET, JOBACK" lifecycle

failretry() {
	local d m
	d=$(cli JOBPUSH mail:out send fails)
	m=$(tty JOBRESERVE w2 30000 QUEUES mail:out | kv reservation)
	fields "$m" reservation id="$d" || return 1
	want "$(cli JOBFAIL "$(get "$m" token)" ERROR boom NORETRY)" failed JOBFAIL || return 1
	fields "$(tty JOBGET "$d" | kv JOBGET)" "JOBGET failed" state=failed last_error=boom attempt=1 || return 1
	want "$(cli JOBRETRY "$d")" OK JOBRETRY || return 1
	fields "$(tty JOBGET "$d" | kv JOBGET)" "JOBGET retried" state=queued attempt=0
}
step "JOBFAIL NORETRY, then JOBRETRY" failretry

nulls() {
	want "$(tty JOBGET no:such:job)" '(nil)' "JOBGET of an unknown id" &&
		want "$(tty JOBRESERVE w3 1000 QUEUES empty:q)" '(nil)' "JOBRESERVE of an empty queue" &&
		want "$(tty POLICYGET CONCURRENCY no:such:key)" '(nil)' "POLICYGET of no policy"
}
step "nulls: JOBGET of an unknown id, JOBRESERVE of an empty queue, POLICYGET of no policy" nulls

stats() {
	local m
	m=$(tty QUEUESTATS mail:out | kv QUEUESTATS)
	fields "$m" "QUEUESTATS mail:out" queue=mail:out status=active queued=1 scheduled=2 reserved=0 running=0 \
		retry_pending=0 failed=0 pushed_total=4 succeeded_total=1 failed_total=1 || return 1
	case $(get "$m" paused) in
	0 | '(false)') ;;
	*)
		echo "QUEUESTATS paused = $(get "$m" paused)"
		return 1
		;;
	esac
}
step "QUEUESTATS" stats

policyread() {
	fields "$(tty POLICYGET CONCURRENCY tenant:a | kv POLICYGET)" "POLICYGET CONCURRENCY tenant:a" kind=concurrency \
		key=tenant:a limit=2 period='(nil)' active=0 waiting=0 next_free_at='(nil)' || return 1
	fields "$(tty POLICYGET RATELIMIT api:x | kv POLICYGET)" "POLICYGET RATELIMIT api:x" kind=ratelimit \
		key=api:x limit=100 period=60000 active=1 waiting=0 next_free_at='(nil)' || return 1
	# In order: concurrency, then ratelimit.
	local kinds
	kinds=$(tty POLICYLIST | kv POLICYLIST | awk -F'\t' '$1 == "kind" { printf "%s ", $2 }')
	want "$kinds" "concurrency ratelimit " "POLICYLIST kinds"
}
step "POLICYGET and POLICYLIST" policyread

transaction() {
	local out
	out=$(printf '%s\n' MULTI "JOBPUSH batch:q h one" "JOBPUSH batch:q h two PRIORITY 1" "JOBPUSH batch:q h three ID batch:3" EXEC |
		redis-cli -3 ${conn[@]+"${conn[@]}"} -p "$PORT" 2>>"$errs")
	local lines
	lines=$(printf '%s\n' "$out" | tr '\n' ' ')
	# raw output: OK, three QUEUED, then the three ids of EXEC's array
	printf '%s\n' "$out" | sed -n 1,4p | tr '\n' ' ' | grep -qx 'OK QUEUED QUEUED QUEUED ' || {
		echo "MULTI: $lines"
		return 1
	}
	local ids
	ids=$(printf '%s\n' "$out" | sed -n '5,$p')
	[ "$(printf '%s\n' "$ids" | sort -u | wc -l)" = 3 ] && [ "$(printf '%s\n' "$ids" | tail -1)" = batch:3 ] || {
		echo "EXEC: $lines"
		return 1
	}
	want "$(cli QUEUELEN batch:q)" 3 "QUEUELEN batch:q"
}
step "[MULTI] MULTI, three JOBPUSHes, EXEC" transaction

idempotency() {
	local at e f e2 f2
	at=$(($(now_ms) + 600000))
	e=$(cli JOBPUSH idem:q send p1 ID job:e PRIORITY -3 CONCURRENCY tenant:a RATELIMIT api:x DELAY 600000 MAXATTEMPTS 2 BACKOFF 50 IDEMPOTENCY order:1)
	want "$e" job:e "JOBPUSH with every option" || return 1
	f=$(cli JOBPUSH idem:q send p2 PRIORITY 7 CONCURRENCY tenant:a RATELIMIT api:x AT $at MAXATTEMPTS 4 BACKOFF 60 IDEMPOTENCY order:2)
	e2=$(cli JOBPUSH idem:q send p1 ID job:e PRIORITY -3 CONCURRENCY tenant:a RATELIMIT api:x DELAY 600000 MAXATTEMPTS 2 BACKOFF 50 IDEMPOTENCY order:1)
	want "$e2" "$e" "the retry of the push with ID" || return 1
	f2=$(cli JOBPUSH idem:q send p2 PRIORITY 7 CONCURRENCY tenant:a RATELIMIT api:x AT $at MAXATTEMPTS 4 BACKOFF 60 IDEMPOTENCY order:2)
	want "$f2" "$f" "the retry of the push without ID" || return 1
	fields "$(tty JOBGET job:e | kv JOBGET)" "JOBGET job:e" state=scheduled priority=-3 concurrency_key=tenant:a \
		rate_limit_key=api:x max_attempts=2 || return 1
	fields "$(tty JOBGET "$f" | kv JOBGET)" "JOBGET $f" state=scheduled priority=7 run_at=$at max_attempts=4 || return 1
	fields "$(tty QUEUESTATS idem:q | kv QUEUESTATS)" "QUEUESTATS idem:q" scheduled=2 pushed_total=2
}
step "[IDEMPOTENCY] a push with every option, and its retry, answer the same id" idempotency

info() {
	local q p line
	q=$(cli INFO queues | tr -d '\r')
	line=$(printf '%s\n' "$q" | grep '^queue_mail%3Aout:') || {
		echo "no queue_mail%3Aout in INFO queues: $(printf '%s' "$q" | tr '\n' ' ')"
		return 1
	}
	case ",${line#*:}," in
	*,status=active,*queued=1,scheduled=2,*) ;;
	*)
		echo "INFO: $line"
		return 1
		;;
	esac
	want "$(printf '%s\n' "$q" | sed -n 's/^queues://p')" "$(printf '%s\n' "$q" | grep -c '^queue_')" "queues:N against the queue_ lines" || return 1
	p=$(cli INFO policies | tr -d '\r')
	printf '%s\n' "$p" | grep -qx 'policies:2' &&
		printf '%s\n' "$p" | grep -q '^policy_concurrency_tenant%3Aa:limit=2,active=0,' &&
		printf '%s\n' "$p" | grep -q '^policy_ratelimit_api%3Ax:limit=100,.*period=60000' || {
		echo "INFO policies: $(printf '%s' "$p" | tr '\n' ' ')"
		return 1
	}
}
step "INFO queues and policies, names with ':'" info

shape() {
	[ -s "$shapes" ] || return 0
	echo "flat lists, not maps: $(sort -u "$shapes" | tr '\n' ' ')"
	return 1
}
step "[RESP3] every map reply was a map" shape

if [ ${#failures[@]} -gt 0 ]; then
	printf 'redis-cli -3 (%s): %d of %d steps failed:' "$(redis-cli --version)" ${#failures[@]} $steps
	printf ' %s;' "${failures[@]}"
	echo
	exit 1
fi
echo "redis-cli -3 ($(redis-cli --version)): all $steps steps ok"
