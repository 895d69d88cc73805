#!/usr/bin/python3
"""Redis down for a minute under a steady room: the issue's aim, measured.

Usage: scripts/measure_outage.py [BUILD_DIR] [SECONDS_DOWN] [EVENTS_PER_S]   (default build 60 1000)
One room pushed by the simulator at ~EVENTS_PER_S; redis-server (AOF, fsync always) is killed with
SIGKILL, kept down SECONDS_DOWN, restarted from its AOF; the worker keeps the room connected, buffers
in memory, then spools to disk; at the end the stream is compared with the fixture's ground truth."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("DYLIVE_BUILD", os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build"))
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]
import test_outage as t  # noqa: E402

down = float(sys.argv[2]) if len(sys.argv) > 2 else 60
rate = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
# the rich fixture averages ~2.5 messages per frame
fps = max(1, rate * 2 // 5)
frames = int(fps * (down + 40))

with harness.Env("measure-outage") as env:
    r = env.start_redis(t.AOF)
    w, s, man = t.start_room(env, r, frames, fps, 99, "--buffer-max-bytes", str(8 << 20))
    try:
        harness.wait_until(lambda: int(t.status(r).get("events", "0")) >= 2000, 60, "events flowing")
        t_down = env.kill_redis()
        r.close()
        while time.monotonic() - t_down < down:  # the outage length is the point here
            time.sleep(0.5)
        r = env.restart_redis()
        outage = time.monotonic() - t_down
        t.finish_and_check(env, r, w, s, man, "Redis down %.0f s at ~%d events/s" % (down, rate), outage)
        print("spool peak %d bytes, memory buffer peak %d bytes, reads paused %d times, worker RSS peak %d KiB" %
              (s.max("spool_bytes"), s.max("buffer_bytes"), s.last("ingest_pauses_total"),
               harness.rss_kb(w.pid)))
        print("RESULT: 0 lost, 0 duplicated")
    finally:
        s.close()
