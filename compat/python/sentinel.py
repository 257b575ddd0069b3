"""Sentinel discovery against one sluice node with redis-py's Sentinel.

Usage: /usr/bin/python3 sentinel.py PORT

Sentinel([("127.0.0.1", PORT)]).master_for("sluice"), nothing else: redis-py
asks the node for SENTINEL MASTERS, checks the entry's flags, connects to
the address there and runs a push, a reservation and an ack. The exit
status is 1 if any of it failed.
"""

import sys

import redis
from redis.sentinel import Sentinel

port = int(sys.argv[1])


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def field(m, name):
    if isinstance(m, dict):
        return text({text(k): v for k, v in m.items()}.get(name))
    for i in range(0, len(m) - 1, 2):
        if text(m[i]) == name:
            return text(m[i + 1])
    return None


try:
    sentinel = Sentinel([("127.0.0.1", port)], socket_timeout=5)
    host, mport = sentinel.discover_master("sluice")
    assert (host, int(mport)) == ("127.0.0.1", port), "discover_master: %r" % ((host, mport),)
    master = sentinel.master_for("sluice", socket_timeout=5)
    job = text(master.execute_command("JOBPUSH", "sentinel:q", "send", "hello"))
    res = master.execute_command("JOBRESERVE", "w1", "30000", "QUEUES", "sentinel:q")
    assert isinstance(res, list) and len(res) == 1, "JOBRESERVE: %r" % (res,)
    assert field(res[0], "id") == job, "reserved %r, pushed %s" % (res[0], job)
    ack = master.execute_command("JOBACK", field(res[0], "token"))
    assert text(ack) in ("OK", True), "JOBACK: %r" % (ack,)
    state = field(master.execute_command("JOBGET", job), "state")
    assert state == "succeeded", "job %s is %s" % (job, state)
    assert sentinel.discover_slaves("sluice") == [], "a standalone node has no replicas"
    print("ok   redis-py %s: found the master through SENTINEL, pushed, reserved and acked %s" % (redis.__version__, job))
except Exception as e:
    print("FAIL redis-py %s: %s: %s" % (redis.__version__, type(e).__name__, e))
    sys.exit(1)
