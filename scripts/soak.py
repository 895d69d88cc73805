#!/usr/bin/python3
"""Soak: one dylive-connector worker holding ROOMS simulated rooms, each pushing RATE events/s, for
MINUTES minutes. Checks that nothing is lost or duplicated and that memory and fds stay flat.
Python stdlib only; uses tests/integration/harness.py (private redis-server + dylive-sim).

Usage: scripts/soak.py [BUILD_DIR] [--rooms 50] [--rate 40] [--minutes 30] [--fps 5]
                       [--sample 30] [--drift-max 5]

Each room gets its own `dylive-fixture --kinds chat --no-end` file with RATE/FPS chats per frame
and enough frames for the whole soak plus a margin, so the sim's `loop` never has to restart it
(a restart would repeat msg_ids past the worker's --seen-max window and could not be counted
exactly). Every msg_id is unique, so the ground truth per room is `position x per_frame` from
/_sim/stats once the timeline is paused.

Every --sample seconds a table row: worker RSS, open fds, threads, worker CPU %, events written
(sum of the status hashes' `events`), the sim's messages sent, redis used memory. At the end the
rooms are paused, the worker drains, and per room: expected = unique messages the sim pushed,
written = status `events` (= XLEN, checked), lost = expected - written, duplicated = msg_ids
that occur twice in the stream (counted server-side with a Lua scan). RSS first/last/max and
drift % (last sample vs the first after --warmup: the rooms' dedupe windows fill during the first
minutes, bounded by --seen-max; the target is within --drift-max %), fds first/last/max.

Exit 0 when lost == 0, duplicated == 0, every room stayed live, |drift| <= --drift-max and the fd
count did not grow; 1 otherwise. The last line is one JSON object with every figure."""
import argparse
import json
import os
import signal
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--rooms", type=int, default=50)
    ap.add_argument("--rate", type=int, default=40, help="events/s per room")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--fps", type=int, default=5, help="frames/s per room (rate/fps chats per frame)")
    ap.add_argument("--sample", type=float, default=30, help="seconds between samples")
    ap.add_argument("--drift-max", type=float, default=5.0, help="allowed RSS drift, %%")
    ap.add_argument("--warmup", type=float, default=180,
                    help="seconds before the RSS baseline: the rooms' dedupe windows fill first (bounded by "
                         "--seen-max); drift and trend are measured after it (the first sample is reported too)")
    ap.add_argument("--margin", type=float, default=180, help="extra seconds of fixture beyond the soak")
    a = ap.parse_args()
    if a.rooms < 1 or a.rate < 1 or a.fps < 1 or a.minutes <= 0 or a.sample <= 0:
        ap.error("--rooms, --rate, --fps, --minutes and --sample must be positive")
    if a.rate % a.fps:
        ap.error("--rate must be a multiple of --fps (whole chats per frame)")
    return a


ARGS = parse()
os.environ["DYLIVE_BUILD"] = os.path.abspath(ARGS.build)
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]


def on_signal(signum, _frame):
    raise SystemExit("interrupted by signal %d" % signum)  # unwinds through Env.__exit__: cleanup


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)


cpu_s = harness.proc_cpu_s
status_kb = harness.proc_status_kb
nfds = harness.proc_nfds


def metrics(port):
    return harness.metrics(port) or {}


def sim_all(env):
    with urllib.request.urlopen(env.sim_url("/_sim/stats"), timeout=30) as r:
        return json.loads(r.read())


def redis_used_mb(r):
    for line in r("INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1]) / 1048576.0
    return 0.0


def main():
    n, rate, fps = ARGS.rooms, ARGS.rate, ARGS.fps
    per_frame = rate // fps
    secs = ARGS.minutes * 60
    nframes = int(fps * (secs + ARGS.margin))
    per_room_msgs = nframes * per_frame
    hard_deadline = time.monotonic() + secs + 600  # the script bounds itself whatever happens
    maxlen = max(100000, 2 * per_room_msgs)
    res = {"rooms": n, "rate": rate, "fps": fps, "per_frame": per_frame, "minutes": ARGS.minutes,
           "fixture_frames": nframes, "fixture_messages_per_room": per_room_msgs}
    print("soak: %d rooms x %d events/s (fps %d x %d chats) for %.1f min; fixtures %d frames = %d msgs/room"
          % (n, rate, fps, per_frame, ARGS.minutes, nframes, per_room_msgs), flush=True)
    ok = False
    with harness.Env("soak") as env:
        t = time.monotonic()
        lives, specs, size = [], [], 0
        for i in range(n):
            live = str(7770000 + i)
            frames, man = env.fixture("r%d" % i, live, harness.default_room_id(live), "--kinds", "chat",
                                      "--per-frame", str(per_frame), "--frames", str(nframes), "--no-end",
                                      "--seed", str(1000 + i), "--quiet")
            if man["duplicates"] != 0 or man["unique_msg_ids"] != per_room_msgs:
                raise AssertionError("fixture %s: %d unique, %d duplicates" % (live, man["unique_msg_ids"],
                                                                               man["duplicates"]))
            os.remove(os.path.join(env.tmp, "r%d.json" % i))  # the manifest's msg_ids list is big
            size += os.path.getsize(frames)
            lives.append(live)
            specs.append("%s:%s,fps=%d,loop" % (live, frames, fps))
        res["fixture_gen_s"] = round(time.monotonic() - t, 1)
        res["fixture_mb"] = round(size / 1e6, 1)
        print("fixtures: %d files, %.1f MB, generated in %.1f s" % (n, size / 1e6, res["fixture_gen_s"]), flush=True)

        r = env.start_redis()
        env.start_sim(specs)
        admin = harness.free_port()
        w = env.worker("--stream-maxlen", str(maxlen), "--max-rooms", str(max(200, n)), "--log-level", "warn",
                       worker_id="soak", admin="127.0.0.1:%d" % admin)
        harness.wait_until(lambda: r("ZSCORE", "dylive:workers", "soak") is not None, 15, "worker registered")
        rss_idle, fds_idle = status_kb(w.pid, "VmRSS"), nfds(w.pid)
        for live in lives:
            r("LPUSH", "dylive:assign", live)

        def n_live():
            return sum(r("HGET", "dylive:{%s}:status" % x, "state") == "live" for x in lives)

        harness.wait_until(lambda: n_live() == n, 120, "%d rooms live" % n, interval=0.2)
        t0 = time.monotonic()
        print("all %d rooms live; worker pid %d, idle RSS %d KiB, %d fds" % (n, w.pid, rss_idle, fds_idle), flush=True)

        def written():
            return sum(int(r("HGET", "dylive:{%s}:status" % x, "events") or 0) for x in lives)

        hdr = "%7s %9s %9s %5s %4s %6s %10s %10s %8s %7s %6s %5s" % (
            "t_s", "rss_kb", "hwm_kb", "fds", "thr", "cpu%", "written", "sim_sent", "ev/s", "redisMB", "queue",
            "live")
        print(hdr, flush=True)
        samples = []
        c_prev, t_prev, e_prev = cpu_s(w.pid), t0, written()
        k = 1
        while True:
            nxt = t0 + k * ARGS.sample
            if nxt > t0 + secs + 0.5:
                break
            time.sleep(max(0.0, nxt - time.monotonic()))
            if w.poll() is not None:
                raise AssertionError("worker exited with %s" % w.returncode)
            now, c, e = time.monotonic(), cpu_s(w.pid), written()
            sim_sent = sum(s["messages_sent"] for s in sim_all(env).values())
            m = metrics(admin)
            row = {"t": round(now - t0, 1), "rss_kb": status_kb(w.pid, "VmRSS"), "hwm_kb": status_kb(w.pid, "VmHWM"),
                   "fds": nfds(w.pid), "threads": status_kb(w.pid, "Threads"),
                   "cpu_pct": round((c - c_prev) / (now - t_prev) * 100, 2), "written": e, "sim_sent": sim_sent,
                   "ev_s": round((e - e_prev) / (now - t_prev)), "redis_mb": round(redis_used_mb(r), 1),
                   "queue": int(m.get("dylive_queue_depth", 0)), "live": int(m.get("dylive_rooms_live", -1))}
            samples.append(row)
            print("%7.0f %9d %9d %5d %4d %6.2f %10d %10d %8d %7.1f %6d %5d" % (
                row["t"], row["rss_kb"], row["hwm_kb"], row["fds"], row["threads"], row["cpu_pct"], row["written"],
                row["sim_sent"], row["ev_s"], row["redis_mb"], row["queue"], row["live"]), flush=True)
            c_prev, t_prev, e_prev = c, now, e
            k += 1
            if time.monotonic() > hard_deadline:
                break
        res["soak_s"] = round(time.monotonic() - t0, 1)

        # stop the timelines, let the worker drain, then count
        for live in lives:
            env.sim_post("/_sim/pause?live_id=%s" % live)
        sims = {}

        def settled():
            a = sim_all(env)
            sims.update(a)
            exp = sum(min(a[x]["position"], a[x]["total_frames"]) * per_frame for x in lives)
            return written() == exp and sum(a[x]["frames_sent"] for x in lives) >= 0

        try:
            harness.wait_until(settled, 60, "the worker to write every pushed message", interval=0.5)
        except AssertionError as e:
            print("drain: %s" % e, flush=True)
        time.sleep(2)  # a late duplicate or extra write would show up here
        sims = sim_all(env)
        m = metrics(admin)
        lost = dup = xlen_mismatch = looped = extra = 0
        expected_total = written_total = dropped_dups = 0
        reconnects = 0
        not_live = []
        for x in lives:
            s = sims[x]
            if s["done"] or s["position"] > s["total_frames"]:
                looped += 1
            exp = min(s["position"], s["total_frames"]) * per_frame
            h = r.hgetall("dylive:{%s}:status" % x)
            wr = int(h.get("events", 0))
            dropped_dups += int(h.get("duplicates", 0))
            if h.get("state") != "live":
                not_live.append("%s:%s" % (x, h.get("state")))
            reconnects += s["connections"] - 1
            xl, d = harness.stream_dups(r, x)
            if xl != wr:
                xlen_mismatch += 1
            lost += max(0, exp - wr)
            extra += max(0, wr - exp)
            dup += d
            expected_total += exp
            written_total += wr
        rss = [s["rss_kb"] for s in samples] or [status_kb(w.pid, "VmRSS")]
        fds = [s["fds"] for s in samples] or [nfds(w.pid)]
        # steady state: after the warm-up (the dedupe windows fill to --seen-max ids per room in the
        # first minutes; growth after that is what a leak would look like)
        steady = [s for s in samples if s["t"] >= ARGS.warmup] or samples
        srss = [s["rss_kb"] for s in steady] or rss
        drift = (srss[-1] - srss[0]) / srss[0] * 100.0
        slope = 0.0  # least-squares RSS growth after the warm-up, KiB per minute
        if len(steady) >= 2:
            ts = [s["t"] / 60.0 for s in steady]
            mt, mr = sum(ts) / len(ts), sum(srss) / len(srss)
            den = sum((x - mt) ** 2 for x in ts)
            slope = sum((x - mt) * (y - mr) for x, y in zip(ts, srss)) / den if den else 0.0
        res.update({
            "expected": expected_total, "written": written_total, "lost": lost, "extra": extra, "duplicated": dup,
            "duplicates_dropped": dropped_dups, "sim_messages_sent": sum(sims[x]["messages_sent"] for x in lives),
            "ws_reconnects": reconnects, "looped_rooms": looped, "xlen_mismatch_rooms": xlen_mismatch,
            "not_live": not_live, "rss_idle_kb": rss_idle, "rss_first_kb": rss[0], "rss_last_kb": rss[-1],
            "rss_max_kb": max(rss), "rss_min_kb": min(rss), "rss_drift_pct": round(drift, 2),
            "rss_after_warmup_kb": srss[0], "warmup_s": ARGS.warmup,
            "rss_slope_kb_per_min": round(slope, 1),
            "vmhwm_kb": status_kb(w.pid, "VmHWM"), "fds_idle": fds_idle, "fds_first": fds[0], "fds_last": fds[-1],
            "fds_max": max(fds), "avg_cpu_pct": round(sum(s["cpu_pct"] for s in samples) / max(1, len(samples)), 2),
            "avg_events_per_s": round(written_total / res["soak_s"]) if res["soak_s"] else 0,
            "redis_used_mb": round(redis_used_mb(r), 1), "samples": len(samples),
            "metrics": {k2.replace("dylive_", ""): v for k2, v in m.items() if k2 in (
                "dylive_ws_disconnects_total", "dylive_bad_frames_total", "dylive_acks_dropped_total",
                "dylive_ingest_pauses_total", "dylive_redis_errors_total", "dylive_redis_reconnects_total",
                "dylive_leases_lost_total", "dylive_messages_total", "dylive_events_written_total",
                "dylive_events_duplicate_total")},
        })
        # a drift needs two samples after the warm-up to mean anything: fewer is a failed measurement
        steady_ok = len([s for s in samples if s["t"] >= ARGS.warmup]) >= 2
        if not steady_ok:
            print("  too few samples after the %d s warm-up to measure a drift: run longer or sample more often"
                  % ARGS.warmup)
        ok = (lost == 0 and dup == 0 and extra == 0 and not not_live and xlen_mismatch == 0 and steady_ok
              and abs(drift) <= ARGS.drift_max and fds[-1] <= fds[0])
        res["ok"] = ok
        print("")
        print("== soak result: %d rooms x %d events/s, %.1f min ==" % (n, rate, res["soak_s"] / 60))
        print("  events      expected %d, written %d, lost %d, extra %d, duplicated in streams %d "
              "(copies dropped by dedupe %d; ws reconnects %d; looped rooms %d; XLEN mismatches %d)"
              % (expected_total, written_total, lost, extra, dup, dropped_dups, reconnects, looped, xlen_mismatch))
        print("  rate        %d events/s average; worker CPU %.2f%% of one core on average"
              % (res["avg_events_per_s"], res["avg_cpu_pct"]))
        print("  worker RSS  idle %d KiB; first %d, after %.0f s warm-up %d, last %d, min %d, max %d KiB; drift after the "
              "warm-up %+.2f%% (target +-%.0f%%); trend %+.1f KiB/min" % (rss_idle, rss[0], ARGS.warmup, srss[0], rss[-1],
                                                                        min(rss), max(rss), drift, ARGS.drift_max, slope))
        print("  fds         idle %d; first %d, last %d, max %d" % (fds_idle, fds[0], fds[-1], max(fds)))
        print("  rooms       %s" % ("all live" if not not_live else "NOT live: " + ", ".join(not_live[:10])))
        print("  redis       %.1f MB used at the end" % res["redis_used_mb"])
        print("  verdict     %s" % ("PASS" if ok else "FAIL"))
        res["rows"] = samples
    print(json.dumps(res, sort_keys=True), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
