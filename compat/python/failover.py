"""Failover of a three-node sluice group with redis-py's Sentinel.

Usage: /usr/bin/python3 failover.py PORT,PORT,PORT

Sentinel([the three nodes]).master_for("sluice"), nothing else: the script
runs a lifecycle on the leader and prints READY; the test kills the leader
and writes GO; the script pushes again, retrying on errors for up to 30 s
as an application would, prints "WROTE id" once a push is answered,
reserves and acks that job on the new leader, checks the jobs pushed
before the kill and prints "ok ..." or "FAIL ..." (exit status 1).
"""

import sys
import time

import redis
from redis.sentinel import Sentinel

ports = [int(p) for p in sys.argv[1].split(",")]


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def field(m, name):
    if isinstance(m, dict):
        return text({text(k): v for k, v in m.items()}.get(name))
    for i in range(0, len(m) - 1, 2):
        if text(m[i]) == name:
            return text(m[i + 1])
    return None


def push(master, queue, key):
    return text(master.execute_command("JOBPUSH", queue, "send", "hello", "IDEMPOTENCY", key))


def reserve_ack(master, queue, job):
    res = master.execute_command("JOBRESERVE", "w1", "30000", "QUEUES", queue)
    assert isinstance(res, list) and len(res) == 1, "JOBRESERVE: %r" % (res,)
    assert field(res[0], "id") == job, "reserved %r, pushed %s" % (res[0], job)
    ack = master.execute_command("JOBACK", field(res[0], "token"))
    assert text(ack) in ("OK", True), "JOBACK: %r" % (ack,)


def state(master, job):
    return field(master.execute_command("JOBGET", job), "state")


name = "redis-py %s" % redis.__version__
try:
    sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=5)
    master = sentinel.master_for("sluice", socket_timeout=5)
    before = push(master, "failover:before", "failover-before")
    reserve_ack(master, "failover:before", before)
    kept = push(master, "failover:kept", "failover-kept")
    print("READY", flush=True)
    line = sys.stdin.readline()
    assert line.strip() == "GO", "wanted GO, read %r" % (line,)

    start = time.monotonic()
    after, tries, last, seen = None, 0, None, []
    while time.monotonic() - start < 30:
        tries += 1
        try:
            after = push(master, "failover:after", "failover-after")
            break
        except redis.RedisError as e:
            last = e
            msg = "%s: %s" % (type(e).__name__, e)
            if msg not in seen:
                seen.append(msg)
            time.sleep(0.1)
    assert after is not None, "no write within 30 s of GO (%d tries): %s: %s" % (tries, type(last).__name__, last)
    took = time.monotonic() - start
    print("WROTE %s" % after, flush=True)
    for msg in seen:
        print("retried on %s" % msg, flush=True)
    reserve_ack(master, "failover:after", after)
    for job, want in ((before, "succeeded"), (kept, "queued"), (after, "succeeded")):
        got = state(master, job)
        assert got == want, "job %s is %s, want %s" % (job, got, want)
    again = push(master, "failover:kept", "failover-kept")
    assert again == kept, "pushing again with the key pushed before the kill answered %s, want %s" % (again, kept)
    print("ok   %s: followed the failover in %d ms (%d tries), reserved and acked %s on the new leader, %s and %s still there"
          % (name, took * 1000, tries, after, before, kept), flush=True)
except Exception as e:
    print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
    sys.exit(1)
