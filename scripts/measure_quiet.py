#!/usr/bin/python3
"""A quiet room (no frames at all) over a long window: one connection, heartbeats on time.

Usage: scripts/measure_quiet.py [BUILD_DIR] [SECONDS]   (default build 65)
Default worker options (10 s heartbeat). Prints the connection count, heartbeats received by the
simulator, and the longest gap between heartbeats it saw (from /_sim/stats polled every 100 ms)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("DYLIVE_BUILD", os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build"))
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 65
LIVE = "600600"
with harness.Env("quiet") as env:
    r = env.start_redis()
    env.start_sim([LIVE])
    env.worker()
    r("LPUSH", "dylive:assign", LIVE)
    harness.wait_until(lambda: r.hgetall("dylive:{%s}:status" % LIVE).get("state") == "live", 15, "live")
    t0 = time.monotonic()
    last_hb, last_change, max_gap = None, t0, 0.0
    while time.monotonic() - t0 < secs:
        st = env.sim_stats(LIVE)
        now = time.monotonic()
        if st["hb"] != last_hb:
            if last_hb is not None:
                max_gap = max(max_gap, now - last_change)
            last_hb, last_change = st["hb"], now
        time.sleep(0.1)
    st = env.sim_stats(LIVE)
    print("quiet room for %.0f s: connections %d, open %d, heartbeats %d, longest gap between heartbeats %.1f s, "
          "pongs %d, state %s" % (secs, st["connections"], st["open"], st["hb"], max_gap, st["pongs"],
                                  r.hgetall("dylive:{%s}:status" % LIVE).get("state")))
