#!/usr/bin/python3
"""A worker's memory around a burst: RSS before, at the peak and at the end of one blasted room of
the rich fixture, then its lowest over the next 2.5 --pool-keep-ms periods (what the pools kept and
nobody took is freed each period, and the heap gives the pages back).

Usage: scripts/measure_burst_memory.py [BUILD_DIR] [FRAMES] [POOL_KEEP_MS]   (default build-rel 80000
30000; POOL_KEEP_MS 0: kept for good, the "after" figure is then the end level)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("DYLIVE_BUILD", os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-rel"))
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]
frames_n = sys.argv[2] if len(sys.argv) > 2 else "80000"
keep_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 30000
LIVE = "600700"
with harness.Env("burst") as env:
    r = env.start_redis()
    frames, man = env.fixture("room", LIVE, harness.default_room_id(LIVE), "--frames", frames_n, "--seed", "42")
    env.start_sim(["%s:%s,fps=0" % (LIVE, frames)])
    w = env.worker("--pool-keep-ms", str(keep_ms))
    harness.wait_until(lambda: r("ZCARD", "dylive:workers") >= 1, 15, "the worker registered")
    base, peak = harness.rss_kb(w.pid), [0]

    def ended():
        peak[0] = max(peak[0], harness.rss_kb(w.pid))
        return r.hgetall("dylive:{%s}:status" % LIVE).get("state") == "ended"
    r("LPUSH", "dylive:assign", LIVE)
    t0 = time.monotonic()
    harness.wait_until(ended, 300, "the room ended", interval=0.05)
    run_s, end = time.monotonic() - t0, harness.rss_kb(w.pid)
    low, t1 = end, time.monotonic()
    while keep_ms and time.monotonic() - t1 < 2.5 * keep_ms / 1000:
        low = min(low, harness.rss_kb(w.pid))
        time.sleep(0.2)
    print("burst: %d events in %.1f s; RSS %.1f MiB before, peak %.1f, %.1f at the end, %.1f after (--pool-keep-ms %d)"
          % (man["unique_msg_ids"], run_s, base / 1024, peak[0] / 1024, end / 1024, low / 1024, keep_ms))
