#!/usr/bin/python3
"""Throughput and cost of ONE dylive-connector worker, against a private redis-server and the
bundled simulator (tests/integration/harness.py). Python stdlib only.

Usage: scripts/bench_connector.py [BUILD_DIR] [options]          (BUILD_DIR default: build)

  --messages N     phase A: chats in the single-room fixture (default 500000; 50 per frame)
  --rooms N        phase B: rooms held at once (default 100)
  --room-rate R    phase B: events/s per room (default 20; fps 4, R/4 chats per frame)
  --seconds S      phase B: measuring window (default 30)
  --rich-frames N  phase C: frames of the default rich (--kinds all) fixture (default 80000; 0 skips)
  --connect-rate N, --connect-burst N, --http-rate N
                   phase B: the worker's connect and HTTP pacing (default: the worker's own, 5/s with
                   bursts of 20 and 10); raise them for hundreds of rooms, e.g. --rooms 1000 --room-rate 4
                   --connect-rate 200 --connect-burst 100 --http-rate 1000 (the open-files limit is
                   raised to what the rooms need)
  --perf           sample the worker with `perf record -g` during phases A and C; print the top symbols
  (the fuller cost bench, with the peers and the XADD ceiling, is scripts/bench/cost.py)
  --only A,B,C     run only these phases

Phases (each in its own fresh redis + simulator + worker, all cleaned up):
  A  one room, chat fixture, fps=0: wall time from LPUSH assign until the room's status `events`
     holds every message; events/s, worker CPU s (utime+stime from /proc/<pid>/stat), CPU us per
     event, redis-server CPU, peak RSS (VmHWM); XLEN and duplicates are checked.
  B  N rooms each paced at R events/s for S seconds once all are live: total events/s, worker
     CPU %, RSS idle/loaded, RSS per room, open fds, threads.
  C  like A with the rich fixture (gifts, likes, members, 4000-byte chats, traps, duplicates).

Prints a human-readable block per phase and, last, one JSON line with every figure."""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--messages", type=int, default=500000)
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--room-rate", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rich-frames", type=int, default=80000)
    ap.add_argument("--connect-rate", type=int)
    ap.add_argument("--connect-burst", type=int)
    ap.add_argument("--http-rate", type=int)
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--only", default="A,B,C")
    return ap.parse_args()


ARGS = parse()
os.environ["DYLIVE_BUILD"] = os.path.abspath(ARGS.build)
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]


# ---------------------------------------------------------------- /proc helpers
cpu_s = harness.proc_cpu_s
status_kb = harness.proc_status_kb
nfds = harness.proc_nfds


def fmt_kb(kb):
    return "%.1f MiB" % (kb / 1024.0)


def worker_up(r, wid):
    return r("ZSCORE", "dylive:workers", wid) is not None


def st(r, live):
    return r.hgetall("dylive:{%s}:status" % live)


def events_of(r, live):
    v = r("HGET", "dylive:{%s}:status" % live, "events")
    return int(v) if v else 0


def start_world(env, rooms_specs, worker_extra=(), wid="bench"):
    r = env.start_redis()
    sim = env.start_sim(rooms_specs)
    w = env.worker("--stream-maxlen", "10000000", "--log-level", "warn", *worker_extra, worker_id=wid)
    harness.wait_until(lambda: worker_up(r, wid), 15, "worker registered")
    return r, sim, w


# ---------------------------------------------------------------- phase A / C: one room, flat out
def one_room(label, fixture_args, expect_key, perf=False):
    live = "5550001"
    with harness.Env("bench" + label) as env:
        t_gen = time.monotonic()
        frames, man = env.fixture("room", live, harness.default_room_id(live), *fixture_args)
        t_gen = time.monotonic() - t_gen
        expect = man[expect_key]
        fsize = os.path.getsize(frames)
        r, sim, w = start_world(env, ["%s:%s,fps=0" % (live, frames)])
        perf_proc = None
        perf_data = os.path.join(env.tmp, "perf.data")
        if perf:
            perf_proc = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(w.pid), "-o", perf_data],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        c0, rc0, sc0 = cpu_s(w.pid), cpu_s(env.redis_proc.pid), cpu_s(sim.pid)
        rss_idle = status_kb(w.pid, "VmRSS")
        t0 = time.monotonic()
        r("LPUSH", "dylive:assign", live)
        first = [None]

        def done():
            n = events_of(r, live)
            if n and first[0] is None:
                first[0] = (time.monotonic(), n)
            return n >= expect

        harness.wait_until(done, 600, "all %d events" % expect, interval=0.01)
        t1 = time.monotonic()
        c1, rc1, sc1 = cpu_s(w.pid), cpu_s(env.redis_proc.pid), cpu_s(sim.pid)
        hwm, rss_end, fds = status_kb(w.pid, "VmHWM"), status_kb(w.pid, "VmRSS"), nfds(w.pid)
        if perf_proc:
            perf_proc.send_signal(2)
            perf_proc.wait(timeout=60)
        time.sleep(0.3)  # anything beyond `expect` would be a bug: give it a moment to show up
        s = st(r, live)
        xlen = r("XLEN", "dylive:{%s}:events" % live)
        dups = harness.stream_dups(r, live)[1]
        wall = t1 - t0
        steady = (expect - first[0][1]) / (t1 - first[0][0]) if first[0] and t1 > first[0][0] else None
        res = {
            "messages": expect, "fixture_bytes": fsize, "fixture_gen_s": round(t_gen, 2),
            "wall_s": round(wall, 3), "events_per_s": round(expect / wall),
            "steady_events_per_s": round(steady) if steady else None,
            "worker_cpu_s": round(c1 - c0, 2), "worker_cpu_us_per_event": round((c1 - c0) / expect * 1e6, 2),
            "worker_cpu_pct": round((c1 - c0) / wall * 100, 1),
            "redis_cpu_s": round(rc1 - rc0, 2), "redis_cpu_us_per_event": round((rc1 - rc0) / expect * 1e6, 2),
            "sim_cpu_s": round(sc1 - sc0, 2),
            "rss_idle_kb": rss_idle, "rss_end_kb": rss_end, "peak_rss_kb": hwm, "fds": fds,
            "xlen": xlen, "status_events": int(s.get("events", 0)), "status_duplicates": int(s.get("duplicates", 0)),
            "stream_dups": dups, "state": s.get("state"),
        }
        ok = xlen == expect and dups == 0 and res["status_events"] == expect
        res["ok"] = ok
        print("== phase %s: one room, %s, fps=0 ==" % (label, " ".join(fixture_args)))
        print("  fixture          %d unique messages, %.1f MB, generated in %.2f s"
              % (expect, fsize / 1e6, t_gen))
        print("  wall             %.2f s assign -> last event  =>  %d events/s (steady %s events/s)"
              % (wall, res["events_per_s"], res["steady_events_per_s"]))
        print("  worker CPU       %.2f s = %.2f us/event (%.0f%% of one core)"
              % (res["worker_cpu_s"], res["worker_cpu_us_per_event"], res["worker_cpu_pct"]))
        print("  redis CPU        %.2f s = %.2f us/event;  sim CPU %.2f s"
              % (res["redis_cpu_s"], res["redis_cpu_us_per_event"], res["sim_cpu_s"]))
        print("  worker memory    RSS idle %s, end %s, peak (VmHWM) %s; %d fds"
              % (fmt_kb(rss_idle), fmt_kb(rss_end), fmt_kb(hwm), fds))
        print("  check            XLEN %d, status events %d, duplicates dropped %d, dup msg_ids in stream %d, "
              "state %s -> %s" % (xlen, res["status_events"], res["status_duplicates"], dups, res["state"],
                                  "OK" if ok else "MISMATCH"))
        if perf_proc:
            res["perf_top"] = perf_report(perf_data)
        return res


def perf_report(data):
    try:
        out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "--stdio",
                              "-g", "none", "--percent-limit", "1.5"], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        print("  perf report failed: %s" % e)
        return []
    top = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line.split()[0]:
            continue
        parts = line.split()  # "12.3%  dso  [.]  symbol  -  -"
        if len(parts) < 4:
            continue
        top.append("%-7s %-22s %s" % (parts[0], parts[1], parts[3]))
    print("  perf (worker, self time, >=1.5%):")
    for t in top[:25]:
        print("    " + t)
    return top[:25]


# ---------------------------------------------------------------- phase B: many paced rooms
def many_rooms():
    n, rate, secs = ARGS.rooms, ARGS.room_rate, ARGS.seconds
    fps = 4
    per_frame = max(1, rate // fps)
    real_rate = per_frame * fps
    # enough frames for warm-up + window + margin, so no room loops or ends while measured
    nframes = int(fps * (secs + 60))
    with harness.Env("benchB") as env:
        t_gen = time.monotonic()
        specs, lives = [], []
        for i in range(n):
            live = str(6660000 + i)
            frames, man = env.fixture("r%d" % i, live, harness.default_room_id(live), "--kinds", "chat",
                                      "--per-frame", str(per_frame), "--frames", str(nframes), "--no-end",
                                      "--seed", str(i + 1), "--quiet")
            specs.append("%s:%s,fps=%d,loop" % (live, frames, fps))
            lives.append(live)
        t_gen = time.monotonic() - t_gen
        pacing = []
        for flag, v in (("--connect-rate", ARGS.connect_rate), ("--connect-burst", ARGS.connect_burst),
                        ("--http-rate", ARGS.http_rate), ("--http-burst", ARGS.http_rate)):
            if v:
                pacing += [flag, str(v)]
        r, sim, w = start_world(env, specs, ["--max-rooms", str(max(200, n))] + pacing)
        rss_idle, fds_idle = status_kb(w.pid, "VmRSS"), nfds(w.pid)
        t_a = time.monotonic()
        for live in lives:
            r("LPUSH", "dylive:assign", live)
        harness.wait_until(lambda: sum(st(r, x).get("state") == "live" for x in lives) == n, max(120, n / 5 + 30),
                           "%d rooms live" % n, interval=0.2)
        t_live = time.monotonic() - t_a
        time.sleep(3)  # past the re-push burst of each connection
        e0 = sum(events_of(r, x) for x in lives)
        c0, rc0, sc0 = cpu_s(w.pid), cpu_s(env.redis_proc.pid), cpu_s(sim.pid)
        t0 = time.monotonic()
        rss_max = 0
        while time.monotonic() - t0 < secs:
            time.sleep(1)
            rss_max = max(rss_max, status_kb(w.pid, "VmRSS"))
        e1 = sum(events_of(r, x) for x in lives)
        c1, rc1, sc1 = cpu_s(w.pid), cpu_s(env.redis_proc.pid), cpu_s(sim.pid)
        t1 = time.monotonic()
        wall = t1 - t0
        rss = status_kb(w.pid, "VmRSS")
        fds = nfds(w.pid)
        threads = status_kb(w.pid, "Threads")
        states = {}
        for x in lives:
            states[st(r, x).get("state")] = states.get(st(r, x).get("state"), 0) + 1
        sim_conns = sum(env.sim_stats(x)["connections"] for x in lives)
        ev = e1 - e0
        res = {
            "rooms": n, "per_room_rate": real_rate, "offered_events_per_s": real_rate * n,
            "fixture_gen_s": round(t_gen, 2), "all_live_s": round(t_live, 2), "window_s": round(wall, 1),
            "events": ev, "events_per_s": round(ev / wall), "worker_cpu_pct": round((c1 - c0) / wall * 100, 1),
            "worker_cpu_us_per_event": round((c1 - c0) / ev * 1e6, 2) if ev else None,
            "redis_cpu_pct": round((rc1 - rc0) / wall * 100, 1), "sim_cpu_pct": round((sc1 - sc0) / wall * 100, 1),
            "rss_idle_kb": rss_idle, "rss_kb": rss, "rss_max_kb": rss_max,
            "rss_per_room_kb": round((rss - rss_idle) / n, 1), "peak_rss_kb": status_kb(w.pid, "VmHWM"),
            "fds_idle": fds_idle, "fds": fds, "threads": threads, "states": states, "ws_connections": sim_conns,
        }
        print("== phase B: %d rooms x %d events/s (fps %d x %d chats), %.0f s window ==" % (n, real_rate, fps,
                                                                                        per_frame, wall))
        print("  setup            %d fixtures in %.1f s; all %d rooms live %.2f s after assign"
              % (n, t_gen, n, t_live))
        print("  throughput       %d events in %.1f s = %d events/s (offered %d)"
              % (ev, wall, res["events_per_s"], res["offered_events_per_s"]))
        print("  worker CPU       %.1f%% of one core = %s us/event;  redis %.1f%%, sim %.1f%%"
              % (res["worker_cpu_pct"], res["worker_cpu_us_per_event"], res["redis_cpu_pct"], res["sim_cpu_pct"]))
        print("  worker memory    RSS idle %s -> %s (max %s) = %.1f KiB per room; VmHWM %s"
              % (fmt_kb(rss_idle), fmt_kb(rss), fmt_kb(rss_max), res["rss_per_room_kb"], fmt_kb(res["peak_rss_kb"])))
        print("  fds / threads    %d fds idle -> %d with %d rooms; %d threads; ws connections %d; states %s"
              % (fds_idle, fds, n, threads, sim_conns, states))
        return res


def main():
    only = set(ARGS.only.upper().split(","))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if "B" in only and soft < 2 * ARGS.rooms + 1024:  # the worker and the sim each hold one socket per room
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * ARGS.rooms + 1024), hard))
    out = {"build": harness.BUILD, "cpus": os.cpu_count()}
    t = time.monotonic()
    if "A" in only:
        per = 50
        frames = max(1, ARGS.messages // per)
        out["A"] = one_room("A", ["--kinds", "chat", "--per-frame", str(per), "--frames", str(frames), "--quiet"],
                            "unique_msg_ids", perf=ARGS.perf)
    if "B" in only:
        out["B"] = many_rooms()
    if "C" in only and ARGS.rich_frames > 0:
        out["C"] = one_room("C", ["--frames", str(ARGS.rich_frames), "--seed", "42", "--quiet"], "unique_msg_ids",
                            perf=ARGS.perf)
    out["total_s"] = round(time.monotonic() - t, 1)
    print(json.dumps(out, sort_keys=True))
    ok = all(out[k].get("ok", True) for k in ("A", "C") if k in out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
