"""The WebSocket thread's event loop (--ws-event-loop): libev (epoll, through lws's plugin from
Debian's libwebsockets-evlib-ev) whenever the plugin is installed, never a silent fall-back to lws's
poll loop; poll on request; without the plugin, auto falls back with one warning and libev exits."""
import glob
import json
import os
import shutil
import signal
import subprocess

from harness import BUILD, Env, check, check_eq, default_room_id, free_port, metric, run, skip, wait_until

LIVE = "777000333"
OTHER = "777000334"
PLUGIN_GLOB = "/usr/lib/*/libwebsockets-evlib_ev.so"


def plugin_path():
    found = sorted(glob.glob(PLUGIN_GLOB))
    return found[0] if found else None


def plugin_installed():
    """The package's own word when dpkg is there, else the plugin file."""
    if shutil.which("dpkg-query"):
        p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "libwebsockets-evlib-ev"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return p.returncode == 0 and "install ok installed" in p.stdout
    return plugin_path() is not None


def log_lines(env, event, log="worker0.log"):
    """The worker's JSON log records of one event."""
    out = []
    for line in env.log(log).splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == event:
            out.append(rec)
    return out


def loop_lines(env, log="worker0.log"):
    return log_lines(env, "ws_event_loop", log)


def capture_one_room(env, r, *worker_args, frames="60"):
    """A worker captures a finite room to its end: connect, frames, acks, heartbeats, the end."""
    path, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", frames, "--seed", "5")
    env.start_sim(["%s:%s,fps=40" % (LIVE, path)])
    env.worker("--heartbeat-ms", "1000", *worker_args)
    r("LPUSH", "dylive:assign", LIVE)
    wait_until(lambda: r.hgetall("dylive:{%s}:status" % LIVE).get("state") == "ended", 30, "state ended")
    n = len(r.xrange_all("dylive:{%s}:events" % LIVE))
    check_eq(n, len(man["msg_ids"]), "every event of the room")
    check(env.sim_stats(LIVE)["hb"] >= 1, "heartbeats sent")


def test_libev_when_the_plugin_is_installed():
    """auto (the default) runs on libev/epoll whenever libwebsockets-evlib-ev is installed: a worker
    that fell back to poll there would cost O(all sockets) per wake-up without anyone noticing."""
    with Env("evloop-auto") as env:
        r = env.start_redis()
        capture_one_room(env, r)
        lines = loop_lines(env)
        check_eq(len(lines), 1, "one ws_event_loop line at start")
        rec = lines[0]
        if plugin_installed():
            check_eq(rec["level"], "info", "level of %r" % rec["msg"])
            check("libev (epoll)" in rec["msg"], "the plugin is installed but the worker says: %r", rec["msg"])
        else:
            check_eq(rec["level"], "warn", "level of %r" % rec["msg"])
            check("poll" in rec["msg"] and "libwebsockets-evlib-ev" in rec["msg"], "warning %r", rec["msg"])


def test_poll_on_request():
    """--ws-event-loop poll keeps lws's own loop, and it still works."""
    with Env("evloop-poll") as env:
        r = env.start_redis()
        capture_one_room(env, r, "--ws-event-loop", "poll")
        lines = loop_lines(env)
        check(len(lines) == 1 and lines[0]["level"] == "info" and "poll" in lines[0]["msg"], "lines %r", lines)


def thread_names(pid):
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def test_one_thread():
    """--threads 1: the WebSockets run on the worker's own loop (no WebSocket thread, no hand-off).
    A room pushed flat out, with reads pausing every 16 frames for back-pressure, arrives exact,
    once, in order, with every ack; lws's timers run (a second room's heartbeats every second);
    SIGTERM drains with that room still live (handed back, exit 0). The same with the default's
    WebSocket thread, which is there exactly then."""
    if not plugin_installed():
        skip("--threads 1 shares lws's libev loop: libwebsockets-evlib-ev is not installed")
    for threads in ("1", "2"):
        with Env("threads" + threads) as env:
            r = env.start_redis()
            path, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "1500", "--seed", "9")
            env.start_sim(["%s:%s,fps=0" % (LIVE, path), OTHER])  # OTHER: the simulator's endless room
            admin = free_port()
            w = env.worker("--threads", threads, "--queue-max", "16", "--heartbeat-ms", "1000",
                           admin="127.0.0.1:%d" % admin)
            r("LPUSH", "dylive:assign", OTHER)
            wait_until(lambda: r.hgetall("dylive:{%s}:status" % OTHER).get("state") == "live", 30, "the endless room live")
            r("LPUSH", "dylive:assign", LIVE)
            if not os.environ.get("DYLIVE_WORKER_WRAPPER"):  # a wrapper's pid is not the worker's
                names = thread_names(w.pid)
                check_eq("dylive-ws" in names, threads == "2", "a WebSocket thread with --threads %s: %r" % (threads, names))
            wait_until(lambda: r.hgetall("dylive:{%s}:status" % LIVE).get("state") == "ended", 60, "state ended")
            ids = [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]
            check_eq(ids, man["msg_ids"], "every message once, in arrival order (--threads %s)" % threads)
            check((metric(admin, "dylive_ingest_pauses_total") or 0) > 0, "reads paused for back-pressure")
            wait_until(lambda: env.sim_stats(LIVE)["acks_ok"] == man["need_ack_frames"], 10,
                       "one correct ack per need_ack frame (--threads %s)" % threads)
            check_eq(env.sim_stats(LIVE)["acks_bad"], 0, "bad acks")
            hb = env.sim_stats(OTHER)["hb"]
            wait_until(lambda: env.sim_stats(OTHER)["hb"] >= hb + 3, 10, "three more heartbeats, one a second")
            lines = log_lines(env, "threads")
            if threads == "1":
                check(len(lines) == 1 and lines[0]["level"] == "info", "one info line: %r", lines)
            else:
                check_eq(lines, [], "no threads line by default")
            check_eq(r.hgetall("dylive:{%s}:status" % OTHER).get("state"), "live", "the endless room still live")
            w.send_signal(signal.SIGTERM)
            check_eq(w.wait(timeout=10), 0, "exit status after SIGTERM (--threads %s)" % threads)
            check_eq(r("LRANGE", "dylive:assign", 0, -1), [OTHER], "the live room handed back")
            check_eq(r("EXISTS", "dylive:{%s}:lease" % OTHER), 0, "its lease released")


def test_one_thread_needs_libev():
    """--threads 1 with lws's poll loop: one warning, the WebSocket thread as by default, and it
    captures."""
    with Env("threads-poll") as env:
        r = env.start_redis()
        path, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "200", "--seed", "5")
        env.start_sim(["%s:%s,fps=40" % (LIVE, path)])
        w = env.worker("--threads", "1", "--ws-event-loop", "poll")
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: r.hgetall("dylive:{%s}:status" % LIVE).get("state") == "live", 30, "state live")
        if not os.environ.get("DYLIVE_WORKER_WRAPPER"):
            check("dylive-ws" in thread_names(w.pid), "the WebSocket thread: %r", thread_names(w.pid))
        wait_until(lambda: r.hgetall("dylive:{%s}:status" % LIVE).get("state") == "ended", 30, "state ended")
        check_eq(len(r.xrange_all("dylive:{%s}:events" % LIVE)), len(man["msg_ids"]), "every event of the room")
        lines = log_lines(env, "threads")
        check(len(lines) == 1 and lines[0]["level"] == "warn" and "libev" in lines[0]["msg"], "lines %r", lines)


def test_bad_value_exits_2():
    with Env("evloop-bad") as env:
        env.start_redis()
        env.start_sim([LIVE])
        p = env.worker("--ws-event-loop", "epoll")
        check_eq(p.wait(timeout=20), 2, "exit status")
        check("--ws-event-loop" in env.log("worker0.log"), "the option named")


def test_without_the_plugin():
    """In a private mount namespace where the plugin cannot load (root and unshare needed): auto
    falls back to poll with one warning and captures; libev refuses to start."""
    plugin = plugin_path()
    if not plugin or os.geteuid() != 0 or not shutil.which("unshare"):
        skip("needs root, unshare and the plugin file to hide")
    probe = subprocess.run(["unshare", "-m", "true"], stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        skip("unshare -m is not allowed here")
    with Env("evloop-none") as env:
        wrapper = os.path.join(env.tmp, "noplugin.sh")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nmount --bind /dev/null %s || exit 77\nexec "$@"\n' % plugin)
        os.chmod(wrapper, 0o755)
        old = os.environ.get("DYLIVE_WORKER_WRAPPER")
        os.environ["DYLIVE_WORKER_WRAPPER"] = "unshare -m " + wrapper + ((" " + old) if old else "")
        try:
            r = env.start_redis()
            capture_one_room(env, r)
            lines = loop_lines(env)
            check_eq(len(lines), 1, "one ws_event_loop line")
            check_eq(lines[0]["level"], "warn", "level of %r" % lines[0]["msg"])
            check("poll" in lines[0]["msg"] and "libwebsockets-evlib-ev" in lines[0]["msg"], "warning %r", lines[0]["msg"])
            p = env.worker("--ws-event-loop", "libev")
            rc = p.wait(timeout=20)
            check(rc not in (0, 77), "--ws-event-loop libev without the plugin exits non-zero (rc %r)", rc)
            err = [x for x in loop_lines(env, "worker1.log") if x["level"] == "error"]
            check(err, "an error names the loop: %r", env.log("worker1.log")[-2000:])
        finally:
            if old is None:
                os.environ.pop("DYLIVE_WORKER_WRAPPER", None)
            else:
                os.environ["DYLIVE_WORKER_WRAPPER"] = old


def test_floor_lws_counts_every_frame():
    """The bench's WebSocket floor (scripts/bench/floor_lws.c, under cost.py's worker figures)
    receives every frame its sender pushes, at the rate asked, with and without acks; bad arguments
    exit 2."""
    if not plugin_installed():
        skip("libwebsockets-evlib-ev is not installed")
    exe = os.path.join(BUILD, "dylive-floor-lws")
    # the short header (< 126 bytes) without acks; the 16-bit one with acks, on ticks and spread
    for extra in (("--ack-bytes", "0", "--frame-bytes", "100"), ("--frame-bytes", "943"),
                  ("--sender-tick-ms", "0", "--ack-bytes", "200")):
        p = subprocess.run([exe, "--rooms", "20", "--rate", "50", "--seconds", "3"] + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        check_eq(p.returncode, 0, "exit status of %r (stderr %r)" % (extra, p.stderr))
        res = json.loads(p.stdout.strip().splitlines()[-1])
        check(950 <= res["frames_per_s"] <= 1050, "20 rooms x 50 frames/s %r: %r", extra, res)
        check(res["cpu_us_per_frame"] > 0, "a CPU figure: %r", res)
    p = subprocess.run([exe, "--frame-bytes", "70000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=20)
    check_eq(p.returncode, 2, "exit status of a frame over 65535 bytes")


def test_floor_lws_redis_writes_every_frame():
    """With --redis-port, the floor writes each whole message as one XADD to its room's stream (the
    worker's least Redis write, under cost.py's 1000-room figure), at each pass's end or after a
    --flush-ms linger; a Redis error makes it fail without a figure."""
    if not plugin_installed():
        skip("libwebsockets-evlib-ev is not installed")
    exe = os.path.join(BUILD, "dylive-floor-lws")
    with Env("floor-redis") as env:
        r = env.start_redis()
        for flush in ("0", "2"):
            r("FLUSHALL")
            p = subprocess.run([exe, "--rooms", "20", "--rate", "50", "--seconds", "3", "--redis-port",
                                str(env.redis_port), "--flush-ms", flush, "--entry-bytes", "300"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
            check_eq(p.returncode, 0, "exit status with --flush-ms %s (stderr %r)" % (flush, p.stderr))
            res = json.loads(p.stdout.strip().splitlines()[-1])
            check(950 <= res["frames_per_s"] <= 1050, "20 rooms x 50 frames/s: %r", res)
            check(abs(res["xadds_per_s"] - res["frames_per_s"]) <= 25, "an XADD a frame: %r", res)
            lens = [r("XLEN", "floor:%d" % i) for i in range(20)]
            check(all(n > 0 for n in lens), "every room's stream written: %r", lens)
            check(sum(lens) >= res["xadds"], "what was answered is in the streams: %r vs %r", lens, res)
            entry = r("XRANGE", "floor:7", "-", "+", "COUNT", "1")[0][1]
            fields = dict(zip(entry[::2], entry[1::2]))
            check_eq(sorted(fields), ["json", "msg_id", "ts_ms", "type"], "an entry's fields")
            check_eq(len(fields["json"]), 300, "--entry-bytes")
        r("FLUSHALL")
        r("SET", "floor:3", "not a stream")
        p = subprocess.run([exe, "--rooms", "20", "--rate", "50", "--seconds", "3", "--redis-port",
                            str(env.redis_port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        check_eq(p.returncode, 1, "exit status when an XADD fails")
        check("WRONGTYPE" in p.stderr and "no figure" in p.stderr, "Redis's error said: %r", p.stderr)
        check_eq(p.stdout.strip(), "", "no figure printed")


if __name__ == "__main__":
    run()
