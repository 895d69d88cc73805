#!/usr/bin/python3
"""Measures failover (kill -9 of the owner) and drain (SIGTERM) handover times, median of N.

Usage: scripts/measure_pool.py [BUILD_DIR] [N]   (default build, 5)
Each run: a private redis-server, the simulator with one quiet room, a pool of workers with the
default --poll-ms (1000); the owner is killed (or drained) and the time until another worker's
status says live is measured."""
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("DYLIVE_BUILD", os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build"))
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 5
LIVE = "424242"


def status(r):
    return r.hgetall("dylive:{%s}:status" % LIVE)


def one(kind):
    with harness.Env("measure") as env:
        r = env.start_redis()
        env.start_sim([LIVE])
        procs = {}
        for i in range(2):
            w = "m%d" % i
            procs[w] = env.worker("--poll-ms", "1000", worker_id=w)
        r("LPUSH", "dylive:assign", LIVE)
        harness.wait_until(lambda: status(r).get("state") == "live", 15, "live")
        owner = status(r)["worker"]
        other = [w for w in procs if w != owner][0]
        procs[owner].send_signal(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
        t0 = time.monotonic()
        harness.wait_until(lambda: status(r).get("worker") == other and status(r).get("state") == "live", 30,
                           "takeover", interval=0.01)
        return time.monotonic() - t0


for kind, label in (("kill", "failover after kill -9"), ("term", "handover after SIGTERM")):
    times = [one(kind) for _ in range(N)]
    print("%s: median %.2f s over %d runs (%s)" % (label, statistics.median(times), N,
                                                   ", ".join("%.2f" % t for t in times)))
