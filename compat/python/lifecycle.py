"""The client lifecycle of compat/doc.go with redis-py and its defaults.

Usage: /usr/bin/python3 lifecycle.py PORT

redis.Redis(port=PORT), nothing else: Debian's python3-redis (4.x) speaks
RESP2; redis-py 8 asks for RESP3. Map replies are checked in the shape of
the protocol the library chose: a dict over RESP3, a flat list over RESP2.
Steps marked [RESP3], [MULTI], [IDEMPOTENCY] need those features of issue
17. Every step runs even when one before it failed; the exit status is 1 if
any step failed.
"""

import sys
import threading
import time
import urllib.parse

import redis

port = int(sys.argv[1])
r = redis.Redis(port=port)
proto = int(r.connection_pool.connection_kwargs.get("protocol") or 2)
lib = "redis-py " + redis.__version__ + " (RESP%d)" % proto

failures = []
steps = 0


def step(name):
    def run(fn):
        global steps
        steps += 1
        try:
            fn()
            print("ok   " + name, flush=True)
        except Exception as e:  # every failure is reported, then the next step
            failures.append(name)
            print("FAIL %s: %s: %s" % (name, type(e).__name__, str(e).splitlines()[0] if str(e) else ""), flush=True)
        return fn

    return run


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def as_map(v, what):
    if proto == 3:
        assert isinstance(v, dict), "[RESP3] %s: %r, want a map" % (what, v)
        return {text(k): text(x) for k, x in v.items()}
    assert isinstance(v, list) and len(v) % 2 == 0, "%s: %r, want a flat field/value list" % (what, v)
    return {text(v[i]): text(v[i + 1]) for i in range(0, len(v), 2)}


def fields(m, want, what):
    for k, w in want.items():
        assert k in m, "%s: no field %s in %r" % (what, k, m)
        if callable(w):
            assert w(m[k]), "%s: %s = %r" % (what, k, m[k])
        else:
            assert m[k] == w, "%s: %s = %r, want %r" % (what, k, m[k], w)


def call(*args):
    return r.execute_command(*args)


def now_ms():
    return int(time.time() * 1000)


hello = "[RESP3] HELLO answers proto 3" if proto == 3 else "HELLO answers proto 2"


@step(hello)
def _():
    fields(as_map(call("HELLO"), "HELLO"), {"server": "sluice", "proto": proto}, "HELLO")


@step("POLICYSET CONCURRENCY and RATELIMIT")
def _():
    assert call("POLICYSET", "CONCURRENCY", "tenant:a", 2) in (True, b"OK")
    assert call("POLICYSET", "RATELIMIT", "api:x", 100, 60000) in (True, b"OK")


state = {}


@step("JOBRESERVE BLOCK is woken by a push from another connection")
def _():
    other = redis.Redis(port=port)
    got = {}

    def reserve():
        try:
            got["reply"] = other.execute_command("JOBRESERVE", "w1", 30000, "BLOCK", 10000, "QUEUES", "mail:out")
        except Exception as e:
            got["error"] = e

    th = threading.Thread(target=reserve)
    th.start()
    deadline = time.time() + 5
    while r.info("clients")["blocked_clients"] != 1:
        assert time.time() < deadline, "the reserve never blocked"
        time.sleep(0.02)
    jid = call("JOBPUSH", "mail:out", "send", '{"to":"a@example.com"}', "ID", "job:a", "PRIORITY", 5,
               "CONCURRENCY", "tenant:a", "RATELIMIT", "api:x", "MAXATTEMPTS", 3, "BACKOFF", 10)
    assert jid == b"job:a", jid
    th.join(10)
    other.close()
    assert "error" not in got, got.get("error")
    reply = got.get("reply")
    assert isinstance(reply, list) and len(reply) == 1, reply
    m = as_map(reply[0], "reservation")
    fields(m, {"id": "job:a", "queue": "mail:out", "handler": "send", "payload": '{"to":"a@example.com"}',
               "priority": 5, "attempt": 0, "expires_at": lambda v: v > now_ms(),
               "token": lambda v: isinstance(v, str) and v}, "reservation")
    state["token"] = m["token"]


@step("JOBPUSH DELAY and AT create scheduled jobs")
def _():
    b = text(call("JOBPUSH", "mail:out", "send", "later", "DELAY", 600000))
    at = now_ms() + 600000
    c = text(call("JOBPUSH", "mail:out", "send", "at", "AT", at))
    fields(as_map(call("JOBGET", b), "JOBGET"), {"state": "scheduled", "payload": "later"}, "JOBGET delayed")
    fields(as_map(call("JOBGET", c), "JOBGET"), {"state": "scheduled", "run_at": at}, "JOBGET at")


@step("JOBSTART, JOBTOUCH, JOBGET, JOBACK")
def _():
    token = state.get("token")
    assert token, "no reservation from the blocking step"
    assert call("JOBSTART", token) == 1
    exp = call("JOBTOUCH", token, 60000)
    assert isinstance(exp, int) and exp >= now_ms() + 50000, exp
    fields(as_map(call("JOBGET", "job:a"), "JOBGET"), {
        "id": "job:a", "queue": "mail:out", "handler": "send", "state": "running", "priority": 5,
        "concurrency_key": "tenant:a", "rate_limit_key": "api:x", "attempt": 1, "max_attempts": 3,
        "worker": "w1", "expires_at": exp, "last_error": None, "blocked_by": None}, "JOBGET job:a")
    assert call("JOBACK", token) in (True, b"OK")
    fields(as_map(call("JOBGET", "job:a"), "JOBGET"), {"state": "succeeded", "worker": None}, "JOBGET job:a")


@step("JOBFAIL NORETRY, then JOBRETRY")
def _():
    d = text(call("JOBPUSH", "mail:out", "send", "fails"))
    reply = call("JOBRESERVE", "w2", 30000, "QUEUES", "mail:out")
    assert isinstance(reply, list) and len(reply) == 1, reply
    m = as_map(reply[0], "reservation")
    fields(m, {"id": d}, "reservation")
    assert text(call("JOBFAIL", m["token"], "ERROR", "boom", "NORETRY")) == "failed"
    fields(as_map(call("JOBGET", d), "JOBGET"), {"state": "failed", "last_error": "boom", "attempt": 1}, "JOBGET failed")
    assert call("JOBRETRY", d) in (True, b"OK")
    fields(as_map(call("JOBGET", d), "JOBGET"), {"state": "queued", "attempt": 0}, "JOBGET retried")


@step("nulls: JOBGET of an unknown id, JOBRESERVE of an empty queue, POLICYGET of no policy")
def _():
    assert call("JOBGET", "no:such:job") is None
    assert call("JOBRESERVE", "w3", 1000, "QUEUES", "empty:q") is None
    assert call("POLICYGET", "CONCURRENCY", "no:such:key") is None


@step("QUEUESTATS")
def _():
    fields(as_map(call("QUEUESTATS", "mail:out"), "QUEUESTATS"), {
        "queue": "mail:out", "status": "active", "queued": 1, "scheduled": 2, "reserved": 0, "running": 0,
        "retry_pending": 0, "failed": 0, "paused": lambda v: v in (0, False), "pushed_total": 4,
        "succeeded_total": 1, "failed_total": 1}, "QUEUESTATS mail:out")


@step("POLICYGET and POLICYLIST")
def _():
    fields(as_map(call("POLICYGET", "CONCURRENCY", "tenant:a"), "POLICYGET"), {
        "kind": "concurrency", "key": "tenant:a", "limit": 2, "period": None, "active": 0, "waiting": 0,
        "next_free_at": None}, "POLICYGET CONCURRENCY tenant:a")
    fields(as_map(call("POLICYGET", "RATELIMIT", "api:x"), "POLICYGET"), {
        "kind": "ratelimit", "key": "api:x", "limit": 100, "period": 60000, "active": 1, "waiting": 0,
        "next_free_at": None}, "POLICYGET RATELIMIT api:x")
    lst = call("POLICYLIST")
    assert isinstance(lst, list) and len(lst) == 2, lst
    fields(as_map(lst[0], "POLICYLIST[0]"), {"kind": "concurrency", "key": "tenant:a"}, "POLICYLIST[0]")
    fields(as_map(lst[1], "POLICYLIST[1]"), {"kind": "ratelimit", "key": "api:x"}, "POLICYLIST[1]")


@step("[MULTI] pipeline(transaction=True) of three pushes")
def _():
    p = r.pipeline(transaction=True)
    p.execute_command("JOBPUSH", "batch:q", "h", "one")
    p.execute_command("JOBPUSH", "batch:q", "h", "two", "PRIORITY", 1)
    p.execute_command("JOBPUSH", "batch:q", "h", "three", "ID", "batch:3")
    ids = [text(x) for x in p.execute()]
    assert len(ids) == 3 and ids[2] == "batch:3" and len(set(ids)) == 3, ids
    assert call("QUEUELEN", "batch:q") == 3


@step("[IDEMPOTENCY] a push with every option, and its retry, answer the same id")
def _():
    at = now_ms() + 600000
    e = ("JOBPUSH", "idem:q", "send", "p1", "ID", "job:e", "PRIORITY", -3, "CONCURRENCY", "tenant:a",
         "RATELIMIT", "api:x", "DELAY", 600000, "MAXATTEMPTS", 2, "BACKOFF", 50, "IDEMPOTENCY", "order:1")
    f = ("JOBPUSH", "idem:q", "send", "p2", "PRIORITY", 7, "CONCURRENCY", "tenant:a",
         "RATELIMIT", "api:x", "AT", at, "MAXATTEMPTS", 4, "BACKOFF", 60, "IDEMPOTENCY", "order:2")
    ide = call(*e)
    assert ide == b"job:e", ide
    idf = call(*f)
    assert call(*e) == ide, "the retry of the push with ID"
    assert call(*f) == idf, "the retry of the push without ID"
    fields(as_map(call("JOBGET", ide), "JOBGET"), {"state": "scheduled", "priority": -3, "concurrency_key": "tenant:a",
                                                   "rate_limit_key": "api:x", "max_attempts": 2}, "JOBGET job:e")
    fields(as_map(call("JOBGET", idf), "JOBGET"), {"state": "scheduled", "priority": 7, "run_at": at,
                                                   "max_attempts": 4}, "JOBGET second")
    fields(as_map(call("QUEUESTATS", "idem:q"), "QUEUESTATS"), {"scheduled": 2, "pushed_total": 2}, "QUEUESTATS idem:q")


@step("[WORKFLOWS] a unique key, a dependency, a result and JOBWAIT, a batch, JOBSCAN and JOBBULK")
def _():
    jid = text(call("JOBPUSH", "wf:q", "h", "p", "UNIQUE", "wf:k", "ON-DUPLICATE", "reject"))
    try:
        call("JOBPUSH", "wf:q", "h", "p", "UNIQUE", "wf:k", "ON-DUPLICATE", "reject")
        raise AssertionError("a duplicate push was taken")
    except redis.ResponseError as e:
        assert str(e).startswith("DUPKEY key wf:k is held by job " + jid), str(e)
    dep = text(call("JOBPUSH", "wf:q", "h", "then", "AFTER", 1, jid))
    fields(as_map(call("JOBGET", dep), "JOBGET"), {"state": "waiting"}, "JOBGET of a dependent")
    assert call("JOBWAIT", jid, 50) is None, "JOBWAIT that times out"
    reply = call("JOBRESERVE", "w9", 30000, "QUEUES", "wf:q")
    m = as_map(reply[0], "reservation")
    fields(m, {"id": jid}, "reservation")
    assert call("JOBACK", m["token"], "RESULT", '{"n":1}') in (True, b"OK")
    fields(as_map(call("JOBWAIT", jid), "JOBWAIT"),
           {"id": jid, "state": "succeeded", "result": '{"n":1}', "last_error": None}, "JOBWAIT")
    fields(as_map(call("JOBGET", dep), "JOBGET"), {"state": "queued"}, "JOBGET of the released dependent")
    assert call("BATCHOPEN", "wf:b") in (True, b"OK")
    b1 = text(call("JOBPUSH", "wf:bq", "h", "x", "BATCH", "wf:b"))
    assert call("BATCHCLOSE", "wf:b") in (True, b"OK")
    fields(as_map(call("BATCHGET", "wf:b"), "BATCHGET"), {"id": "wf:b", "state": "closed", "total": 1, "pending": 1}, "BATCHGET")
    t = as_map(call("JOBRESERVE", "w9", 30000, "QUEUES", "wf:bq")[0], "reservation")["token"]
    assert text(call("JOBFAIL", t, "ERROR", "wf boom", "NORETRY")) == "failed"
    fields(as_map(call("BATCHGET", "wf:b"), "BATCHGET"), {"state": "done", "failed": 1, "pending": 0}, "BATCHGET done")
    cursor, found = "0", []
    while True:
        cursor, ids = call("JOBSCAN", cursor, "QUEUE", "wf:bq", "STATE", "failed")
        cursor = text(cursor)
        found += [text(i) for i in ids]
        if cursor == "0":
            break
    assert found == [b1], found
    bulk = as_map(call("JOBBULK", "RETRY", "QUEUE", "wf:bq"), "JOBBULK")
    assert bulk["changed"] == 1, bulk
    fields(as_map(call("JOBGET", b1), "JOBGET"), {"state": "queued"}, "JOBGET after JOBBULK RETRY")


@step("info() with ':' in queue names and policy keys")
def _():
    q = r.info("queues")
    names = {urllib.parse.unquote(k[len("queue_"):]): v for k, v in q.items() if k.startswith("queue_")}
    assert "mail:out" in names, q
    fields(names["mail:out"], {"status": "active", "queued": 1, "scheduled": 2}, "info queue_mail%3Aout")
    assert q["queues"] == len(names), q
    p = r.info("policies")
    assert p["policies"] == 2, p
    fields(p["policy_concurrency_tenant%3Aa"], {"limit": 2, "active": 0}, "info policy_concurrency_tenant%3Aa")
    fields(p["policy_ratelimit_api%3Ax"], {"limit": 100, "period": 60000}, "info policy_ratelimit_api%3Ax")


r.close()
if failures:
    print("%s: %d of %d steps failed: %s" % (lib, len(failures), steps, "; ".join(failures)))
    sys.exit(1)
print("%s: all %d steps ok" % (lib, steps))
