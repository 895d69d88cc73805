#!/usr/bin/python3
"""A worker's memory around a burst: RSS before, at the peak and at the end of one blasted room of
the rich fixture, then the lowest RSS seen over the next WATCH seconds (with --pool-keep-ms, what
the pools kept and nobody took through a whole period is freed and the heap gives the pages back;
with 0 they keep it for good).

Usage: scripts/measure_burst_memory.py [BUILD_DIR] [FRAMES] [POOL_KEEP_MS] [WATCH_S]
(default build-rel 80000 30000 75: two and a half periods of the default)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("DYLIVE_BUILD", os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-rel"))
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]
frames_n = int(sys.argv[2]) if len(sys.argv) > 2 else 80000
keep_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 30000
watch_s = float(sys.argv[4]) if len(sys.argv) > 4 else 75
with harness.Env("burst") as env:
    b = harness.blasted_room_rss(env, "600700", frames_n, "--pool-keep-ms", str(keep_ms))
    low, low_at, t1 = b["end"], 0.0, time.monotonic()
    while time.monotonic() - t1 < watch_s:
        rss = harness.rss_kb(b["w"].pid)
        if rss < low:
            low, low_at = rss, time.monotonic() - t1
        time.sleep(0.2)
    print("burst: %d events in %.1f s; RSS %.1f MiB before, peak %.1f, %.1f at the end; lowest over the next %.0f s "
          "%.1f (%.0f s after the end; --pool-keep-ms %d)"
          % (b["man"]["unique_msg_ids"], b["seconds"], b["base"] / 1024, b["peak"] / 1024, b["end"] / 1024, watch_s,
             low / 1024, low_at, keep_ms))
