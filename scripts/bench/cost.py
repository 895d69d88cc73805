#!/usr/bin/python3
"""Cost per event of dylive, side by side with a Python and a Node peer, against the XADD ceiling
(issue 11). Every figure and every ratio of one run ends up on ONE final JSON line.

Usage: scripts/bench/cost.py [BUILD_DIR] [options]             (BUILD_DIR default: build)
       scripts/bench/cost.py [BUILD_DIR] --check              (only list what is missing)

Each world is a private redis-server + the bundled simulator (dylive-sim) on free ports in a temp
dir (tests/integration/harness.py), everything stopped and removed at the end, on Ctrl-C too.

Phases (--phases, default all, in this order):
  rich     one room, the rich fixture (dylive-fixture --frames --rich-frames --seed 42: every
           event type, traps, duplicates), fps=0 (flat out), each of dylive / python peer / node
           peer on its own fresh redis + sim: events/s (start -> last event written), worker CPU
           us/event, Redis CPU us/event, peak RSS (VmHWM), mean JSON bytes; the stream is checked
           (XLEN, duplicates, msg_id order against the manifest). Redis INFO commandstats per event
           for dylive.
  ceiling  redis-benchmark pipelined XADD (fields type/msg_id/ts_ms/json, json of the mean size of
           dylive's rich events) into a fresh redis: Redis CPU us/entry and entries/s.
  rooms    --rooms rooms x --room-rate events/s in one worker (connect pacing raised with
           --connect-rate/--connect-burst): worker and Redis CPU us/event over --rooms-seconds at
           steady state, Redis commands per event.
  latency  one room paced by the sim (fps, chats per frame) at each of --lat-rates: frame received
           -> XADD, exact per event (stream entry id ms - the event's recv_ms; 1 ms resolution) and
           from the worker's dylive_write_latency_seconds histogram (interpolated): p50/p99/p99.9.
  malloc   allocation calls (malloc+calloc+realloc) of the worker per event: two short rich runs,
           counted with perf uprobes on libc (or ltrace -c, --malloc-tool), idle rate subtracted;
           the marginal count between the two runs is the per-event hot-path figure.
  tls      --tls-rooms rooms over TLS (sim --tls-cert; worker wss:// + https:// + --ca-file, a
           self-signed certificate made with openssl): connection set-up time against the
           configured --tls-connect-rate/--tls-connect-burst, RSS per idle room (rooms paused at
           the sim), then CPU % at --tls-rate events/s per room.
  floors   what this machine cannot go below, without dylive's pipeline: decode_dump --bench (the
           connector's decoder alone over the rich fixture in memory: us/event of CPU, and libdeflate's
           inflate alone) under the rich worker figure; dylive-floor-sock (--rooms loopback TCP sockets at
           --room-rate frames/s each, the receiver doing only epoll_wait + one recv + one 40-byte
           ack send per frame; without the ack; with dylive's two-thread hand-off and 1 ms linger
           but no work) under the 1000-room worker figure; dylive-floor-lws (the same with dylive's
           WebSocket library: lws clients on one libev loop fed on 1 ms ticks as the simulator
           feeds the worker, one ack per frame written as dylive writes acks, nothing else, with the
           rooms phase's frame size — and decode_dump on such a frame —; and one room flat out with
           the rich fixture's mean frame size) under both worker figures; and the 1000-room one
           + the least write to Redis (one plain XADD per frame, a 1 ms linger's in one write, no
           script, fence, status or dedupe: the worker's CPU and Redis's per XADD) under both
           1000-room figures.
  --profile adds a `perf record` run of dylive on the rich fixture and prints the worker's top
           symbols (self time) and its share per DSO; with the tls phase, also 5 s of the worker
           holding its idle rooms.

--repeat N runs the rich phase (interleaved) and the ceiling N times and keeps the fastest run of
each (all runs are listed in "all_runs"): the machine is shared, and "others_cpu_pct" of every
window says how much CPU everything else on it took meanwhile (in % of one core).

Ratios (in "ratios" and "targets" of the JSON line): dylive Redis CPU / ceiling Redis CPU,
dylive events/s / ceiling entries/s, dylive events/s / the faster peer's.

Needs (checked first; nothing is installed): redis-server, redis-tools (redis-benchmark),
python3-websocket python3-protobuf python3-redis protobuf-compiler (python peer), nodejs >= 20 and
`npm ci` in scripts/bench/peers (node peer), linux-perf or ltrace (malloc, --profile), openssl (tls).
"""
import argparse
import json
import os
import re
import resource
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

ALL_PHASES = ["rich", "ceiling", "rooms", "latency", "malloc", "tls", "floors"]
LIVE = "5550001"


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--phases", default=",".join(ALL_PHASES), help="comma list of %s" % ",".join(ALL_PHASES))
    ap.add_argument("--peers", default="python,node", help="peers in the rich phase (python,node; '' for none)")
    ap.add_argument("--check", action="store_true", help="only check the prerequisites")
    ap.add_argument("--profile", action="store_true", help="perf record dylive on the rich fixture; top symbols")
    ap.add_argument("--rich-frames", type=int, default=80000)
    ap.add_argument("--repeat", type=int, default=1, help="rich phase: run each implementation N times, "
                    "interleaved; the figures are those of its fastest run (all runs are kept)")
    ap.add_argument("--ceiling-entries", type=int, default=300000)
    ap.add_argument("--ceiling-clients", type=int, default=2)
    ap.add_argument("--ceiling-pipeline", type=int, default=64)
    ap.add_argument("--ceiling-json-bytes", type=int, default=0, help="json size of the ceiling entries "
                    "(default: the mean of dylive's rich events, else 530)")
    ap.add_argument("--rooms", type=int, default=1000)
    ap.add_argument("--room-rate", type=int, default=4, help="events/s per room (--room-per-frame chats per frame)")
    ap.add_argument("--room-per-frame", type=int, default=1,
                    help="rooms and tls phases: chats per frame (frames/s = the rate / this; real rooms' frames "
                         "often carry a few messages, and a linger that coalesces one-chat frames may not "
                         "coalesce those)")
    ap.add_argument("--rooms-seconds", type=float, default=30)
    ap.add_argument("--rooms-pace-us", action="store_true",
                    help="rooms phase: the simulator sends each frame at its own time, to the us (dylive-sim "
                         "--pace-us), as frames come from the real service, not on millisecond ticks")
    ap.add_argument("--connect-rate", type=int, default=200)
    ap.add_argument("--connect-burst", type=int, default=100)
    ap.add_argument("--http-rate", type=int, default=1000, help="worker --http-rate (and burst) in the rooms/tls phases")
    ap.add_argument("--poll-ms", type=int, default=1000, help="worker --poll-ms (the default of the worker)")
    ap.add_argument("--worker-args", default="", help="more flags for every dylive worker, e.g. '--flush-ms 100' "
                    "(they come last, so they win)")
    ap.add_argument("--lat-rates", default="1000,10000", help="events/s of the latency runs")
    ap.add_argument("--lat-fps", type=int, default=200, help="frames/s of the latency runs (rate/fps chats a frame)")
    ap.add_argument("--lat-seconds", type=float, default=15)
    ap.add_argument("--malloc-warm-frames", type=int, default=30000,
                    help="malloc: frames of each of the two rooms of the warm run (0: no warm run)")
    ap.add_argument("--malloc-frames", default="300,1500", help="frames of the two malloc runs (the first is also "
                    "recorded with call graphs)")
    ap.add_argument("--malloc-tool", default="auto", choices=["auto", "perf", "ltrace"])
    ap.add_argument("--tls-rooms", type=int, default=1000)
    ap.add_argument("--tls-rate", type=int, default=2, help="events/s per room once resumed")
    ap.add_argument("--tls-connect-rate", type=int, default=100)
    ap.add_argument("--tls-connect-burst", type=int, default=50)
    ap.add_argument("--tls-idle-seconds", type=float, default=10)
    ap.add_argument("--tls-seconds", type=float, default=20)
    a = ap.parse_args()
    a.phases = [p for p in a.phases.split(",") if p]
    bad = [p for p in a.phases if p not in ALL_PHASES]
    if bad:
        ap.error("unknown phase(s): %s" % ",".join(bad))
    a.peers = [p for p in a.peers.split(",") if p]
    if any(p not in ("python", "node") for p in a.peers):
        ap.error("--peers: python and/or node")
    k = a.room_per_frame
    rates = [a.room_rate] + ([a.tls_rate] if "tls" in a.phases else [])
    if k < 1 or any(r % k or r < k for r in rates):
        ap.error("--room-per-frame: at least 1, and --room-rate (and --tls-rate) must be multiples of it")
    return a


ARGS = parse()
os.environ["DYLIVE_BUILD"] = os.path.abspath(ARGS.build)
import harness  # noqa: E402

harness.BUILD = os.environ["DYLIVE_BUILD"]
PY = "/usr/bin/python3"  # the Debian packages of the python peer are installed for it


# ---------------------------------------------------------------- prerequisites
def prerequisites():
    """(missing Debian packages, other steps) for the phases asked."""
    pk, steps = [], []

    def need(ok, pkg):
        if not ok and pkg not in pk:
            pk.append(pkg)

    for b in ("dylive-connector", "dylive-sim", "dylive-fixture") + \
            (("tests/fixtures/decode_dump", "dylive-floor-sock", "dylive-floor-lws") if "floors" in ARGS.phases else ()):
        if not os.access(os.path.join(harness.BUILD, b), os.X_OK):
            steps.append("build %s: cmake -S . -B %s -DCMAKE_BUILD_TYPE=Release && cmake --build %s -j2"
                         % (b, ARGS.build, ARGS.build))
            break
    need(shutil.which("redis-server"), "redis-server")
    ph = set(ARGS.phases)
    if "ceiling" in ph:
        need(shutil.which("redis-benchmark"), "redis-tools")
    if "rich" in ph and "python" in ARGS.peers:
        for mod, pkg in (("websocket", "python3-websocket"), ("google.protobuf", "python3-protobuf"),
                         ("redis", "python3-redis")):
            ok = os.path.exists(PY) and subprocess.run([PY, "-c", "import " + mod], capture_output=True).returncode == 0
            need(ok, pkg)
        need(shutil.which("protoc"), "protobuf-compiler")
    if "rich" in ph and "node" in ARGS.peers:
        node = shutil.which("node")
        need(node, "nodejs")
        if node:
            v = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
            if int(v.lstrip("v").split(".")[0] or 0) < 20:
                steps.append("node >= 20 is needed (found %s)" % v)
        if not all(os.path.isdir(os.path.join(PEERS, "node_modules", m)) for m in ("ws", "protobufjs", "ioredis")):
            need(shutil.which("npm"), "npm")
            steps.append("cd %s && npm ci" % os.path.relpath(PEERS))
    if "malloc" in ph:
        if ARGS.malloc_tool == "ltrace":
            need(shutil.which("ltrace"), "ltrace")
        elif ARGS.malloc_tool == "perf":
            need(shutil.which("perf"), "linux-perf")
        elif not shutil.which("perf") and not shutil.which("ltrace"):
            need(False, "linux-perf")
    if ARGS.profile:
        need(shutil.which("perf"), "linux-perf")
    if "tls" in ph:
        need(shutil.which("openssl"), "openssl")
    return pk, steps


# ---------------------------------------------------------------- /proc helpers
def cpu_s(pid):
    """CPU seconds of a process: the sum over its threads of /proc/…/schedstat (ns precision),
    else utime+stime (clock ticks)."""
    try:
        tot = 0
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                tot += int(f.read().split()[0])
        return tot / 1e9
    except (OSError, ValueError, IndexError):
        return harness.proc_cpu_s(pid)


def machine_busy_s():
    """CPU seconds all processes of this machine spent (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


class Window:
    """CPU seconds of some processes over a window, and of everything else on the machine (the
    noise: other engineers' builds, tests, a soak)."""

    def __init__(self, **pids):
        self.pids = pids
        self.c0 = {k: cpu_s(p) for k, p in pids.items()}
        self.m0, self.t0 = machine_busy_s(), time.monotonic()

    def stop(self):
        self.cpu = {k: cpu_s(p) - self.c0[k] for k, p in self.pids.items()}
        self.wall = time.monotonic() - self.t0
        self.others_pct = r2(max(0.0, machine_busy_s() - self.m0 - sum(self.cpu.values())) / self.wall * 100, 1)
        return self


def kb(pid, field):
    try:
        return harness.proc_status_kb(pid, field)
    except OSError:
        return 0


def mib(k):
    return round(k / 1024.0, 1)


def r2(x, n=2):
    return None if x is None else round(x, n)


prom = harness.metrics  # {sample name with labels: value}, a labelled family also under its bare name


def prom_sum(m, family):
    return (m or {}).get(family, 0.0)


def hist_buckets(m, family):
    """[(le, cumulative count)] of a Prometheus histogram, +Inf last."""
    out = []
    for k, v in (m or {}).items():
        mm = re.match(r'%s_bucket\{le="([^"]+)"\}$' % re.escape(family), k)
        if mm:
            out.append((float("inf") if mm.group(1) == "+Inf" else float(mm.group(1)), v))
    return sorted(out)


def hist_quantile(buckets, q):
    """Prometheus histogram_quantile: linear interpolation inside the bucket holding the rank."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lo_b, lo_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return lo_b
            if c == lo_c:
                return le
            return lo_b + (le - lo_b) * (rank - lo_c) / (c - lo_c)
        lo_b, lo_c = le, c
    return buckets[-2][0] if len(buckets) > 1 else None


def cmdstats_per_event(before, after, events, top=8):
    """Per event: calls and Redis usec of each command (scripts include the commands they call,
    which are also listed on their own)."""
    rows = []
    for c, (calls, usec) in after.items():
        c0, u0 = before.get(c, (0, 0))
        if calls - c0 > 0:
            rows.append((c, (calls - c0) / events, (usec - u0) / events))
    rows.sort(key=lambda x: -x[2])
    return {c: {"calls": round(n, 3), "usec": round(u, 2)} for c, n, u in rows[:top]}


def redis_time_ms(r):
    s, us = r("TIME")
    return int(s) * 1000 + int(us) // 1000


def stream_scan(init, on_entry, result):
    """A Lua script that pages through the stream KEYS[1] from ARGV[1] to ARGV[2] (exclusive
    cursor), running on_entry with `id` and `f` (the field list) for each entry."""
    return """%s
local start = ARGV[1]
while true do
  local b = redis.call('XRANGE', KEYS[1], start, ARGV[2], 'COUNT', 10000)
  if #b == 0 then break end
  for _, e in ipairs(b) do
    local id, f = e[1], e[2]
    %s
  end
  start = '(' .. b[#b][1]
end
%s""" % (init, on_entry, result)


# entries, duplicated msg_ids, json bytes, sha1 of the first-seen msg_ids in stream order
STREAM_CHECK = stream_scan("local ids, seen, n, dups, bytes = {}, {}, 0, 0, 0", """n = n + 1
    for i = 1, #f, 2 do
      if f[i] == 'msg_id' then
        if seen[f[i+1]] then dups = dups + 1 else seen[f[i+1]] = true; ids[#ids + 1] = f[i+1] end
      elseif f[i] == 'json' then bytes = bytes + #f[i+1] end
    end""", "return {n, dups, bytes, redis.sha1hex(table.concat(ids, '\\n'))}")

# {entry id ms - the event's recv_ms: count, …} flattened
LATENCY_HIST = stream_scan("local h = {}", """local ms = tonumber(string.match(id, '^(%d+)'))
    for i = 1, #f, 2 do
      if f[i] == 'json' then
        local rv = tonumber(string.match(f[i+1], '"recv_ms":(%-?%d+)'))
        if rv then local d = ms - rv; h[d] = (h[d] or 0) + 1 end
      end
    end""", """local out = {}
for k, v in pairs(h) do out[#out + 1] = k; out[#out + 1] = v end
return out""")


def sha1_ids(ids):
    import hashlib
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()


def check_stream(r, man, live=LIVE):
    n, dups, jbytes, digest = r("EVAL", STREAM_CHECK, 1, "dylive:{%s}:events" % live, "-", "+")
    expect = man["unique_msg_ids"]
    order_ok = digest == sha1_ids(man["msg_ids"]) if "msg_ids" in man else None
    return {"xlen": n, "expected": expect, "stream_dups": dups, "order_ok": order_ok,
            "json_bytes_mean": round(jbytes / n, 1) if n else None,
            "ok": n == expect and dups == 0 and order_ok is not False}


# ---------------------------------------------------------------- worlds
def start_worker(env, r, wid="bench", extra=(), admin=True):
    """A worker on env's redis + sim (later flags win over the harness's); waits until it is
    registered (and its /metrics answers). Returns (process, admin port or None)."""
    port = harness.free_port() if admin else None
    w = env.worker("--stream-maxlen", "10000000", "--log-level", "warn", "--poll-ms", str(ARGS.poll_ms), *extra,
                   *shlex.split(ARGS.worker_args), worker_id=wid, admin="127.0.0.1:%d" % port if admin else "off")
    harness.wait_until(lambda: r("ZSCORE", "dylive:workers", wid) is not None, 30, "worker registered")
    if admin:
        harness.wait_until(lambda: prom(port) is not None, 10, "worker /metrics")
    return w, port


def events_of(r, live):
    v = r("HGET", "dylive:{%s}:status" % live, "events")
    return int(v) if v else 0


def read_line(p, timeout, buf):
    """One line of p.stdout within timeout (buf: a list holding leftover bytes)."""
    deadline = time.monotonic() + timeout
    fd = p.stdout.fileno()
    while b"\n" not in buf[0]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no line from %s within %.0f s" % (p.args[:2], timeout))
        rd, _, _ = select.select([fd], [], [], left)
        if rd:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("%s exited (%s) without a line" % (p.args[:2], p.poll()))
            buf[0] += chunk
    line, buf[0] = buf[0].split(b"\n", 1)
    return line.decode()


def fixture(out_dir, name, live, *extra):
    out = os.path.join(out_dir, name + ".frames")
    man = os.path.join(out_dir, name + ".json")
    subprocess.run([os.path.join(harness.BUILD, "dylive-fixture"), "--out", out, "--live-id", str(live),
                    "--room-id", harness.default_room_id(live), "--manifest", man, "--quiet"] + list(extra), check=True)
    with open(man) as f:
        return out, json.load(f)


def room_fixtures(out_dir, n, frames, base=6660000):
    """n chat-only rooms, --room-per-frame chats per frame, no end, distinct msg_ids; 2 at a time."""
    os.makedirs(out_dir, exist_ok=True)

    def one(i):
        live = str(base + i)
        path = os.path.join(out_dir, "r%d.frames" % i)
        subprocess.run([os.path.join(harness.BUILD, "dylive-fixture"), "--out", path, "--live-id", live,
                        "--room-id", harness.default_room_id(live), "--kinds", "chat", "--per-frame", str(ARGS.room_per_frame),
                        "--frames", str(frames), "--no-end", "--seed", str(i + 1), "--quiet"], check=True)
        return live, path

    with ThreadPoolExecutor(2) as ex:
        return list(ex.map(one, range(n)))


# ---------------------------------------------------------------- rich: one room flat out
def rich_dylive(frames, man, profile=False):
    with harness.Env("cost-rich-dylive") as env:
        r = env.start_redis()
        sim = env.start_sim(["%s:%s,fps=0" % (LIVE, frames)])
        w, port = start_worker(env, r)
        perf = None
        pdata = os.path.join(env.tmp, "perf.data")
        if profile:
            perf = env.spawn(["perf", "record", "-F", "999", "-g", "-p", str(w.pid), "-o", pdata], "perf.log")
            time.sleep(1.0)
        cs0 = harness.all_command_stats(r)
        win = Window(me=w.pid, redis=env.redis_proc.pid, sim=sim.pid)
        r("LPUSH", "dylive:assign", LIVE)
        expect = man["unique_msg_ids"]
        harness.wait_until(lambda: events_of(r, LIVE) >= expect, 900, "all %d events" % expect, interval=0.01)
        win.stop()
        hwm = kb(w.pid, "VmHWM")
        cs1 = harness.all_command_stats(r)
        top = None
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=120)
            top = perf_top(pdata)
        time.sleep(0.3)
        res = measure(expect, win, hwm)
        res.update(check_stream(r, man))
        res["redis_per_event"] = cmdstats_per_event(cs0, cs1, expect)
        res["bad"] = int(prom_sum(prom(port), "dylive_bad_frames_total"))
        if top is not None:
            res["perf_top"] = top
        return res


def measure(events, win, hwm):
    wall, cpu, rcpu = win.wall, win.cpu["me"], win.cpu["redis"]
    return {"events": events, "wall_s": r2(wall, 3), "events_per_s": round(events / wall) if wall > 0 else None,
            "cpu_us_per_event": r2(cpu / events * 1e6), "cpu_pct": r2(cpu / wall * 100, 1),
            "redis_cpu_us_per_event": r2(rcpu / events * 1e6), "redis_cpu_pct": r2(rcpu / wall * 100, 1),
            "sim_cpu_s": r2(win.cpu["sim"]), "others_cpu_pct": win.others_pct, "peak_rss_kb": hwm}


def rich_peer(kind, frames, man, pb_dir):
    with harness.Env("cost-rich-" + kind) as env:
        r = env.start_redis()
        sim = env.start_sim(["%s:%s,fps=0,sig=off" % (LIVE, frames)])
        base = "127.0.0.1:%d" % env.sim_port
        common = ["--http", "http://" + base, "--ws", "ws://" + base, "--live-id", LIVE,
                  "--redis", "redis://127.0.0.1:%d/0" % env.redis_port, "--maxlen", "10000000", "--wait-go", "--linger"]
        if kind == "python":
            cmd = [PY, os.path.join(PEERS, "python_peer.py"), "--pb-dir", pb_dir] + common
        else:
            cmd = [shutil.which("node"), os.path.join(PEERS, "node_peer.js")] + common
        logf = open(os.path.join(env.tmp, kind + ".log"), "ab")
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, cwd=env.tmp)
        logf.close()
        env.procs.append(p)
        buf = [b""]
        line = read_line(p, 60, buf)
        assert line == "ready", "%s peer: %r" % (kind, line)
        cs0 = harness.all_command_stats(r)
        win = Window(me=p.pid, redis=env.redis_proc.pid, sim=sim.pid)
        p.stdin.write(b"go\n")
        p.stdin.flush()
        out = json.loads(read_line(p, 900, buf))
        win.stop()
        hwm = kb(p.pid, "VmHWM")
        cs1 = harness.all_command_stats(r)
        p.stdin.close()
        p.wait(timeout=30)
        expect = man["unique_msg_ids"]
        res = measure(expect, win, hwm)
        res.update(check_stream(r, man))
        res["redis_per_event"] = cmdstats_per_event(cs0, cs1, expect, top=3)
        res["peer"] = {k: out.get(k) for k in ("frames", "messages", "events", "duplicates", "acks", "raw", "error",
                                               "protobuf_impl", "node")}
        res["ok"] = res["ok"] and out.get("error") is None and out.get("events") == expect
        return res


def perf_report(data, sort, limit):
    try:
        return subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none",
                               "--percent-limit", str(limit)], capture_output=True, text=True, timeout=300).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return "# perf report failed: %s" % e


def perf_top(data, n=25):
    """(top symbols by self time, share of each DSO) of a perf.data."""
    top, dsos = [], []
    for line in perf_report(data, "dso,symbol", 0.7).splitlines():
        parts = line.strip().split(None, 3)
        if len(parts) == 4 and parts[0].endswith("%") and not line.startswith("#"):
            top.append("%-7s %-26s %s" % (parts[0], parts[1], parts[3].split("  ")[0].strip()))
    for line in perf_report(data, "dso", 0.5).splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].endswith("%") and not line.startswith("#"):
            dsos.append("%s %s" % (parts[0], parts[1].strip()))
    return top[:n], dsos


def phase_rich(tmp, out):
    frames, man = fixture(tmp, "rich", LIVE, "--frames", str(ARGS.rich_frames), "--seed", "42")
    pb_dir = None
    if "python" in ARGS.peers:
        pb_dir = os.path.join(tmp, "pb")
        os.makedirs(pb_dir)
        proto = os.path.join(ROOT, "schema", "webcast.proto")
        subprocess.run(["protoc", "-I", os.path.dirname(proto), "--python_out", pb_dir, proto], check=True)
    rich = {"fixture": {"frames": man["frames"], "messages": man["messages_total"], "unique": man["unique_msg_ids"],
                        "bytes": os.path.getsize(frames)}}
    print("== rich: one room, dylive-fixture --frames %d --seed 42 (%d unique events, %.1f MB), fps=0 =="
          % (ARGS.rich_frames, man["unique_msg_ids"], os.path.getsize(frames) / 1e6), flush=True)
    impls = [("dylive", lambda: rich_dylive(frames, man))]
    for k in ARGS.peers:
        impls.append((k, lambda k=k: rich_peer(k, frames, man, pb_dir)))
    runs = {name: [] for name, _ in impls}
    for i in range(max(1, ARGS.repeat)):
        for name, fn in impls:
            res = fn()
            runs[name].append(res)
            print("  %-7s %7s events/s  worker %6.2f us/event (%5.1f%% core)  redis %5.2f us/event  peak RSS %6.1f MiB"
                  "  json %s B  others %5.1f%%  %s"
                  % (name, res["events_per_s"], res["cpu_us_per_event"], res["cpu_pct"], res["redis_cpu_us_per_event"],
                     mib(res["peak_rss_kb"]), res["json_bytes_mean"], res["others_cpu_pct"],
                     "OK" if res["ok"] else "MISMATCH (xlen %s dups %s order %s)"
                     % (res["xlen"], res["stream_dups"], res["order_ok"])), flush=True)
    for name, rs in runs.items():
        best = dict(max(rs, key=lambda x: x["events_per_s"] or 0))
        best["ok"] = all(x["ok"] for x in rs)
        best["peak_rss_kb_max"] = max(x["peak_rss_kb"] for x in rs)
        if len(rs) > 1:
            best["all_runs"] = [{k: x[k] for k in ("events_per_s", "cpu_us_per_event", "redis_cpu_us_per_event",
                                                   "peak_rss_kb", "others_cpu_pct")} for x in rs]
        rich[name] = best
    if "redis_per_event" in rich["dylive"]:
        print("  dylive Redis per event: " + ", ".join("%s %.2f calls %.2f us" % (c, v["calls"], v["usec"])
                                                      for c, v in rich["dylive"]["redis_per_event"].items()))
    out["rich"] = rich
    if ARGS.profile:
        print("== profile: perf record -F 999 -g on dylive, the same rich room ==", flush=True)
        res = rich_dylive(frames, man, profile=True)
        top, dsos = res.get("perf_top", ([], []))
        out["profile"] = {"events_per_s_under_perf": res["events_per_s"], "top": top, "dsos": dsos}
        print("  by DSO: " + ", ".join(dsos))
        print("  self time, worker (all threads):")
        for t in top:
            print("    " + t)


# ---------------------------------------------------------------- ceiling: redis-benchmark XADD
def ceiling_once(n, payload, jb, streams=1):
    """redis-benchmark's pipelined XADD: into one stream, or spread at random over `streams` streams
    (the many-rooms shape: every entry lands in another room's stream, as dylive's 1000 rooms do)."""
    c_streams = 1
    with harness.Env("cost-ceiling") as env:
        r = env.start_redis()
        pid = env.redis_proc.pid
        key = "bench:{ceiling}:events" if streams == 1 else "bench:{__rand_int__}:events"
        cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(env.redis_port), "-n", str(n),
               "-c", str(ARGS.ceiling_clients), "-P", str(ARGS.ceiling_pipeline), "-r",
               str(1000000000 if streams == 1 else streams), "--csv",
               "XADD", key, "MAXLEN", "~", "10000000", "*", "type", "chat",
               "msg_id", "7630491__rand_int__", "ts_ms", "1776683299000", "json", payload]
        win = Window(redis=pid)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        win.stop()
        if streams == 1:
            xlen = r("XLEN", key)
        else:
            # redis-benchmark writes __rand_int__ as 12 zero-padded digits
            keys = r("KEYS", "bench:{*}:events")
            c_streams = len(keys)
            xlen = sum(r("XLEN", k) for k in keys)
    rps = None
    for line in res.stdout.splitlines():
        cells = [c.strip('"') for c in line.split('","')]
        if len(cells) > 1 and cells[0].startswith("XADD"):
            try:
                rps = float(cells[1])
            except ValueError:
                pass
    c = {"entries": xlen, "json_bytes": jb, "streams": c_streams, "clients": ARGS.ceiling_clients,
         "pipeline": ARGS.ceiling_pipeline,
         "wall_s": r2(win.wall, 3), "redis_cpu_us_per_entry": r2(win.cpu["redis"] / xlen * 1e6),
         "redis_cpu_pct": r2(win.cpu["redis"] / win.wall * 100, 1), "others_cpu_pct": win.others_pct,
         "entries_per_s": round(rps) if rps else round(xlen / win.wall), "ok": xlen >= n}
    return c


def entry_json_bytes(out):
    """The json field's size of the ceiling's (and the Redis floor's) entries: --ceiling-json-bytes,
    else the rich phase's mean, else 530."""
    return ARGS.ceiling_json_bytes or int(round((out.get("rich", {}).get("dylive", {}) or {}).get("json_bytes_mean")
                                                or 530))


def phase_ceiling(out):
    jb = entry_json_bytes(out)
    n = ARGS.ceiling_entries
    payload = "x" * jb
    runs = [ceiling_once(n, payload, jb) for _ in range(max(1, ARGS.repeat))]
    c = dict(max(runs, key=lambda x: x["entries_per_s"]))
    c["ok"] = all(x["ok"] for x in runs)
    if len(runs) > 1:
        c["all_runs"] = [{k: x[k] for k in ("entries_per_s", "redis_cpu_us_per_entry", "others_cpu_pct")} for x in runs]
    out["ceiling"] = c
    print("== ceiling: redis-benchmark -n %d -c %d -P %d XADD … MAXLEN ~ 10000000 * type/msg_id/ts_ms/json (%d B) =="
          % (n, ARGS.ceiling_clients, ARGS.ceiling_pipeline, jb))
    print("  %d entries/s;  Redis CPU %.2f us/entry (%.0f%% of a core);  others %.1f%%"
          % (c["entries_per_s"], c["redis_cpu_us_per_entry"], c["redis_cpu_pct"], c["others_cpu_pct"]), flush=True)
    if "rooms" in ARGS.phases:
        # the same, spread over as many streams as the rooms phase has rooms: its floor per event
        runs = [ceiling_once(n, payload, jb, ARGS.rooms) for _ in range(max(1, ARGS.repeat))]
        c = dict(max(runs, key=lambda x: x["entries_per_s"]))
        c["ok"] = all(x["ok"] for x in runs)
        out["ceiling_rooms"] = c
        print("  spread over %d streams (-r %d, key bench:{__rand_int__}:events): %d entries/s;  Redis CPU %.2f us/entry"
              % (ARGS.rooms, ARGS.rooms, c["entries_per_s"], c["redis_cpu_us_per_entry"]), flush=True)


# ---------------------------------------------------------------- many rooms (plain or TLS)
def assign_all(r, lives):
    for i in range(0, len(lives), 500):
        r("LPUSH", "dylive:assign", *lives[i:i + 500])


def wait_live(port, n, timeout):
    return harness.wait_until(lambda: prom_sum(prom(port), "dylive_rooms_live") >= n, timeout,
                              "%d rooms live" % n, interval=0.2)


def phase_rooms(tmp, out, fx):
    n, rate = ARGS.rooms, ARGS.room_rate
    secs = ARGS.rooms_seconds
    with harness.Env("cost-rooms") as env:
        r = env.start_redis()
        specs = ["%s:%s,fps=%d,sig=off" % (live, path, rate // ARGS.room_per_frame) for live, path in fx[:n]]
        sim = env.start_sim(specs, ("--pace-us",) if ARGS.rooms_pace_us else ())
        w, port = start_worker(env, r, extra=("--max-rooms", str(n), "--connect-rate", str(ARGS.connect_rate),
                                           "--connect-burst", str(ARGS.connect_burst), "--http-rate",
                                           str(ARGS.http_rate), "--http-burst", str(ARGS.http_rate)))
        rss0 = kb(w.pid, "VmRSS")
        lives = [live for live, _ in fx[:n]]
        t_a = time.monotonic()
        assign_all(r, lives)
        wait_live(port, n, 300)
        t_live = time.monotonic() - t_a
        time.sleep(5)  # past each connection's re-push and the connect burst
        m0, cs0 = prom(port), harness.all_command_stats(r)
        win = Window(w=w.pid, redis=env.redis_proc.pid, sim=sim.pid)
        time.sleep(secs)
        win.stop()
        m1, cs1 = prom(port), harness.all_command_stats(r)
        wall, cw, cr_, cs_ = win.wall, win.cpu["w"], win.cpu["redis"], win.cpu["sim"]
        ev = prom_sum(m1, "dylive_events_written_total") - prom_sum(m0, "dylive_events_written_total")
        res = {"rooms": n, "per_room_rate": rate, "per_frame": ARGS.room_per_frame, "offered_events_per_s": n * rate,
               "sim_pace_us": ARGS.rooms_pace_us, "poll_ms": ARGS.poll_ms,
               "connect_rate": ARGS.connect_rate, "connect_burst": ARGS.connect_burst, "all_live_s": r2(t_live),
               "window_s": r2(wall, 1), "events": int(ev), "events_per_s": round(ev / wall),
               "worker_cpu_pct": r2(cw / wall * 100, 1), "redis_cpu_pct": r2(cr_ / wall * 100, 1),
               "sim_cpu_pct": r2(cs_ / wall * 100, 1), "others_cpu_pct": win.others_pct,
               "worker_cpu_us_per_event": r2(cw / ev * 1e6) if ev else None,
               "redis_cpu_us_per_event": r2(cr_ / ev * 1e6) if ev else None,
               "redis_per_event": cmdstats_per_event(cs0, cs1, ev) if ev else None,
               "rss_idle_kb": rss0, "rss_kb": kb(w.pid, "VmRSS"), "peak_rss_kb": kb(w.pid, "VmHWM"),
               "fds": harness.proc_nfds(w.pid), "batches_per_s": r2((prom_sum(m1, "dylive_redis_batches_total")
                                                                     - prom_sum(m0, "dylive_redis_batches_total")) / wall, 1),
               "ws_connects": int(prom_sum(m1, "dylive_ws_connects_total")),
               "rooms_live": int(prom_sum(m1, "dylive_rooms_live"))}
    out["rooms"] = res
    print("== rooms: %d rooms x %d events/s in one worker (--connect-rate %d --connect-burst %d, --poll-ms %d) =="
          % (n, rate, ARGS.connect_rate, ARGS.connect_burst, ARGS.poll_ms))
    print("  all live %.1f s after assign; %d events in %.0f s = %d events/s (offered %d)"
          % (t_live, ev, wall, res["events_per_s"], n * rate))
    print("  worker %.1f%% of a core = %s us/event;  redis %.1f%% = %s us/event;  %s Redis writes/s;  others %.1f%%"
          % (res["worker_cpu_pct"], res["worker_cpu_us_per_event"], res["redis_cpu_pct"],
             res["redis_cpu_us_per_event"], res["batches_per_s"], res["others_cpu_pct"]))
    if res["redis_per_event"]:
        print("  Redis per event: " + ", ".join("%s %.2f calls %.2f us" % (c, v["calls"], v["usec"])
                                               for c, v in res["redis_per_event"].items()))
    print("  RSS %.1f -> %.1f MiB; %d fds; ws connects %d" % (mib(rss0), mib(res["rss_kb"]), res["fds"],
                                                             res["ws_connects"]), flush=True)


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def sim_post_all(env, path, lives):
    def one(live):
        env.sim_post("%s?live_id=%s" % (path, live))
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(one, lives))


def phase_tls(tmp, out, fx):
    n, rate = ARGS.tls_rooms, ARGS.tls_rate
    cr, cb = ARGS.tls_connect_rate, ARGS.tls_connect_burst
    cert, key = make_cert(tmp)
    with harness.Env("cost-tls") as env:
        r = env.start_redis()
        specs = ["%s:%s,fps=%d,sig=off" % (live, path, rate // ARGS.room_per_frame) for live, path in fx[:n]]
        sim = env.start_sim(specs, ("--tls-cert", cert, "--tls-key", key))
        lives = [live for live, _ in fx[:n]]
        sim_post_all(env, "/_sim/pause", lives)
        base = "127.0.0.1:%d" % env.sim_port
        w, port = start_worker(env, r, extra=("--douyin-http", "https://" + base, "--douyin-ws", "wss://" + base,
                                           "--ca-file", cert, "--max-rooms", str(n), "--connect-rate", str(cr),
                                           "--connect-burst", str(cb), "--http-rate", str(ARGS.http_rate),
                                           "--http-burst", str(ARGS.http_rate), "--silence-timeout", "0"))
        time.sleep(1)
        rss_base = kb(w.pid, "VmRSS")
        t_wall0 = time.time() * 1000
        t_a = time.monotonic()
        assign_all(r, lives)
        wait_live(port, n, 600)
        t_live = time.monotonic() - t_a
        # connection set-up timeline from P:rooms (the worker's clock, ms)
        live_at = {}
        for eid, f in r.xrange_all("dylive:rooms"):
            if f.get("state") == "live" and f.get("live_id") not in live_at:
                live_at[f["live_id"]] = int(f["ts_ms"])
        ts = sorted((t - t_wall0) / 1000.0 for t in live_at.values())
        paced = ts[min(cb, len(ts) - 1):]
        fit = (len(paced) - 1) / (paced[-1] - paced[0]) if len(paced) > 1 and paced[-1] > paced[0] else None
        time.sleep(5)  # heartbeats, first pings
        cs0 = harness.all_command_stats(r)
        iw = Window(w=w.pid, redis=env.redis_proc.pid)
        rss_samples = []
        while time.monotonic() - iw.t0 < ARGS.tls_idle_seconds:
            time.sleep(1)
            rss_samples.append(kb(w.pid, "VmRSS"))
        iw.stop()
        idle_s = iw.wall
        idle_cpu = iw.cpu["w"] / idle_s * 100
        idle_redis = iw.cpu["redis"] / idle_s * 100
        cs1 = harness.all_command_stats(r)
        idle_cmds = {c: v["calls"] for c, v in cmdstats_per_event(cs0, cs1, idle_s, top=5).items()}
        rss_idle = max(rss_samples)
        idle_top = None
        if ARGS.profile:  # after the idle measurement, so that perf does not weigh on it
            pdata = os.path.join(env.tmp, "idle.perf.data")
            subprocess.run(["perf", "record", "-q", "-F", "999", "-g", "-p", str(w.pid), "-o", pdata, "--", "sleep",
                            "5"], capture_output=True, timeout=120)
            idle_top = perf_top(pdata, 12)
        sim_post_all(env, "/_sim/resume", lives)
        time.sleep(5)
        m0 = prom(port)
        win = Window(w=w.pid, redis=env.redis_proc.pid, sim=sim.pid)
        time.sleep(ARGS.tls_seconds)
        win.stop()
        m1 = prom(port)
        wall, cw, cr_, cs_ = win.wall, win.cpu["w"], win.cpu["redis"], win.cpu["sim"]
        ev = prom_sum(m1, "dylive_events_written_total") - prom_sum(m0, "dylive_events_written_total")
        res = {"rooms": n, "per_room_rate": rate, "connect_rate": cr, "connect_burst": cb,
               "all_live_s": r2(t_live), "expected_setup_s": r2(max(0, n - cb) / cr),
               "first_live_s": r2(ts[0]) if ts else None, "last_live_s": r2(ts[-1]) if ts else None,
               "connect_rate_measured": r2(fit, 1),
               "rss_baseline_kb": rss_base, "rss_idle_rooms_kb": rss_idle,
               "rss_per_idle_room_kb": r2((rss_idle - rss_base) / n, 1), "idle_cpu_pct": r2(idle_cpu, 1),
               "idle_redis_cpu_pct": r2(idle_redis, 1), "idle_redis_calls_per_s": idle_cmds,
               "idle_others_cpu_pct": iw.others_pct,
               "window_s": r2(wall, 1), "events_per_s": round(ev / wall), "offered_events_per_s": n * rate,
               "worker_cpu_pct": r2(cw / wall * 100, 1), "redis_cpu_pct": r2(cr_ / wall * 100, 1),
               "sim_cpu_pct": r2(cs_ / wall * 100, 1), "others_cpu_pct": win.others_pct,
               "worker_cpu_us_per_event": r2(cw / ev * 1e6) if ev else None,
               "rss_kb": kb(w.pid, "VmRSS"), "peak_rss_kb": kb(w.pid, "VmHWM"), "fds": harness.proc_nfds(w.pid),
               "ws_connects": int(prom_sum(m1, "dylive_ws_connects_total")),
               "rooms_live": int(prom_sum(m1, "dylive_rooms_live"))}
    if idle_top:
        res["idle_profile"] = {"top": idle_top[0], "dsos": idle_top[1]}
    out["tls"] = res
    print("== tls: %d rooms over wss:// + https:// (--connect-rate %d --connect-burst %d) ==" % (n, cr, cb))
    print("  set-up: first live %.2f s, all live %.1f s after assign (expected (N-burst)/rate = %.1f s); "
          "measured %s connects/s past the burst" % (res["first_live_s"] or 0, t_live, res["expected_setup_s"],
                                                     res["connect_rate_measured"]))
    print("  idle: RSS %.1f -> %.1f MiB = %.1f KiB per room; worker %.1f%% of a core (pings, pongs, heartbeats, "
          "lease renewals), redis %.1f%% (calls/s: %s)" % (mib(rss_base), mib(rss_idle), res["rss_per_idle_room_kb"],
                                                           idle_cpu, idle_redis, idle_cmds))
    if idle_top:
        print("  idle profile (perf, 5 s): " + ", ".join(idle_top[1]))
        for t in idle_top[0]:
            print("    " + t)
    print("  %d events/s/room: %d events/s; worker %.1f%% of a core (%s us/event); redis %.1f%%; RSS %.1f MiB;"
          "  others %.1f%%" % (rate, res["events_per_s"], res["worker_cpu_pct"], res["worker_cpu_us_per_event"],
                               res["redis_cpu_pct"], mib(res["rss_kb"]), res["others_cpu_pct"]), flush=True)


# ---------------------------------------------------------------- latency
def phase_latency(tmp, out):
    res_all = {}
    for rate in [int(x) for x in ARGS.lat_rates.split(",") if x]:
        fps = min(ARGS.lat_fps, rate)
        per = max(1, rate // fps)
        secs = ARGS.lat_seconds
        frames, _ = fixture(tmp, "lat%d" % rate, LIVE, "--kinds", "chat", "--per-frame", str(per), "--frames",
                            str(int(fps * (secs + 30))), "--no-end", "--seed", "7")
        with harness.Env("cost-lat") as env:
            r = env.start_redis()
            sim = env.start_sim(["%s:%s,fps=%d" % (LIVE, frames, fps)])
            w, port = start_worker(env, r)
            r("LPUSH", "dylive:assign", LIVE)
            harness.wait_until(lambda: events_of(r, LIVE) > 0, 30, "events flowing")
            time.sleep(3)
            m0 = prom(port)
            win = Window(w=w.pid, redis=env.redis_proc.pid, sim=sim.pid)
            ta = redis_time_ms(r)
            time.sleep(secs)
            tb = redis_time_ms(r)
            win.stop()
            m1 = prom(port)
            flat = r("EVAL", LATENCY_HIST, 1, "dylive:{%s}:events" % LIVE, "%d-0" % ta, "%d-0" % tb)
        hist = sorted((int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2))
        total = sum(c for _, c in hist)

        def q_exact(q):
            want, acc = q * total, 0
            for d, c in hist:
                acc += c
                if acc >= want:
                    return d
            return hist[-1][0] if hist else None

        b0 = dict(hist_buckets(m0, "dylive_write_latency_seconds"))
        bk = [(le, c - b0.get(le, 0)) for le, c in hist_buckets(m1, "dylive_write_latency_seconds")]
        wall = win.wall
        ev = prom_sum(m1, "dylive_events_written_total") - prom_sum(m0, "dylive_events_written_total")
        res = {"rate": rate, "fps": fps, "per_frame": per, "window_s": r2(wall, 1), "events": total,
               "others_cpu_pct": win.others_pct,
               "events_per_s": round(total / wall) if wall else None,
               "exact_ms": {"p50": q_exact(0.5), "p99": q_exact(0.99), "p999": q_exact(0.999),
                            "max": hist[-1][0] if hist else None, "min": hist[0][0] if hist else None},
               "histogram_ms": {k: r2(hist_quantile(bk, q) * 1000 if hist_quantile(bk, q) is not None else None, 3)
                                for k, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))},
               "worker_cpu_us_per_event": r2(win.cpu["w"] / ev * 1e6) if ev else None,
               "redis_cpu_us_per_event": r2(win.cpu["redis"] / ev * 1e6) if ev else None}
        res_all[str(rate)] = res
        print("== latency at %d events/s (one room, fps %d x %d chats): frame received -> XADD ==" % (rate, fps, per))
        print("  exact (entry id ms - recv_ms, %d events): p50 %s ms, p99 %s ms, p99.9 %s ms, max %s ms"
              % (total, res["exact_ms"]["p50"], res["exact_ms"]["p99"], res["exact_ms"]["p999"], res["exact_ms"]["max"]))
        print("  /metrics histogram (interpolated): p50 %s ms, p99 %s ms, p99.9 %s ms;  worker %s us/event, redis %s;"
              "  others %.1f%%" % (res["histogram_ms"]["p50"], res["histogram_ms"]["p99"], res["histogram_ms"]["p999"],
                                   res["worker_cpu_us_per_event"], res["redis_cpu_us_per_event"],
                                   res["others_cpu_pct"]), flush=True)
    out["latency"] = res_all


# ---------------------------------------------------------------- malloc count
class Counter:
    """Counts malloc+calloc+realloc calls of one process between start() and stop()."""

    def __init__(self, env, tool, libc):
        self.env, self.tool, self.libc = env, tool, libc
        self.created = []

    def open(self):
        if self.tool == "perf":
            have = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
            for fn in ("malloc", "calloc", "realloc"):
                if "dlbench:%s " % fn not in have and "dlbench:%s\t" % fn not in have:
                    rc = subprocess.run(["perf", "probe", "-q", "-x", self.libc, "-a", "dlbench:%s=%s" % (fn, fn)],
                                        capture_output=True, text=True)
                    if rc.returncode:
                        raise RuntimeError("perf probe %s: %s" % (fn, rc.stderr.strip()))
                    self.created.append("dlbench:%s" % fn)

    def close(self):
        for p in (getattr(self, "p", None), getattr(self, "rec", None)):  # a probe in use cannot be deleted
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        for ev in self.created:
            subprocess.run(["perf", "probe", "-q", "-d", ev], capture_output=True)

    def start(self, pid, name):
        self.out = os.path.join(self.env.tmp, name + ".count")
        if self.tool == "perf":
            self.p = self.env.spawn(["perf", "stat", "-x", ",", "-o", self.out, "-e",
                                     "dlbench:malloc,dlbench:calloc,dlbench:realloc,raw_syscalls:sys_enter", "-p", str(pid)],
                                    name + ".log")
        else:
            self.p = self.env.spawn(["ltrace", "-f", "-c", "-e", "malloc+calloc+realloc", "-o", self.out,
                                     "-p", str(pid)], name + ".log")
        time.sleep(1.0)  # attached

    def record_callers(self, pid, period=17):
        """perf record of every period-th allocation call with DWARF call graphs (runs until stop)."""
        data = os.path.join(self.env.tmp, "callers.data")
        # -k CLOCK_MONOTONIC: sample times on Python's time.monotonic() clock (callers' window)
        self.rec = self.env.spawn(["perf", "record", "-q", "-e", "dlbench:malloc,dlbench:calloc,dlbench:realloc",
                                   "-k", "CLOCK_MONOTONIC", "-c", str(period), "--call-graph", "dwarf,4096",
                                   "-p", str(pid), "-o", data],
                                  "callers.log")
        time.sleep(1.0)
        return data

    def callers(self, data, n=12, windows=None):
        """Shares of the immediate callers of malloc/calloc/realloc and of the first dylive function
        on each sampled stack. windows {name: (t0, t1)}, time.monotonic() seconds: also the calls
        inside each alone (res[name]: their count and chains)."""
        self.rec.send_signal(signal.SIGINT)
        self.rec.wait(timeout=120)
        txt = subprocess.run(["perf", "script", "-i", data, "-F", "time,event,ip,sym,dso"], capture_output=True,
                             text=True, timeout=600).stdout
        imm, own, chain, total = {}, {}, {}, 0
        windows = windows or {}
        win_chain, win_total = {k: {} for k in windows}, dict.fromkeys(windows, 0)
        for block in txt.split("\n\n"):
            lines = block.strip().splitlines()
            frames = []
            for line in lines[1:]:
                mm = re.match(r"\s*[0-9a-f]+ (.+?) \((.+)\)$", line)
                if mm:
                    frames.append((mm.group(1), os.path.basename(mm.group(2))))
            if len(frames) < 2:
                continue
            total += 1
            tm = re.match(r"\s*(\d+\.\d+):", lines[0])
            t = float(tm.group(1)) if tm else None
            a = "%s %s" % (frames[1][1], frames[1][0])
            mine = [f[0] for f in frames[1:] if f[1] == "dylive-connector"]
            b = mine[0] if mine else "(no dylive frame)"
            c = " < ".join(mine[:3]) if mine else b
            imm[a] = imm.get(a, 0) + 1
            own[b] = own.get(b, 0) + 1
            chain[c] = chain.get(c, 0) + 1
            for k, (t0, t1) in windows.items():
                if t is not None and t0 <= t <= t1:
                    win_total[k] += 1
                    win_chain[k][c] = win_chain[k].get(c, 0) + 1

        def top(d, of=None):
            return [(k, round(100.0 * v / (of or total), 1)) for k, v in sorted(d.items(), key=lambda x: -x[1])[:n]]
        if not total:
            return None
        res = {"samples": total, "immediate": top(imm), "dylive": top(own), "chains": top(chain)}
        for k in windows:
            res[k] = {"samples": win_total[k], "chains": top(win_chain[k], win_total[k]) if win_total[k] else []}
        return res

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=120)
        counts = {}
        with open(self.out) as f:
            for line in f:
                if self.tool == "perf":
                    cells = line.strip().split(",")
                    if len(cells) > 2 and cells[2].startswith(("dlbench:", "raw_syscalls:")):
                        name = "syscalls" if cells[2].startswith("raw_") else cells[2].split(":")[1]
                        counts[name] = int(cells[0]) if cells[0].isdigit() else 0
                else:
                    mm = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\w+)", line)
                    if mm:
                        counts[mm.group(2)] = counts.get(mm.group(2), 0) + int(mm.group(1))
        return counts


def counted_room(tool, libc, frames, expect, record=None, warm=False):
    """One worker, a fresh redis and sim; the worker's allocation calls while it captures a room of
    `frames` flat out (and, first, over 3 idle seconds). warm: it captures another room of the same
    frames before (its pools, queues and buffers grow to what a blasted room needs). record: also a
    perf record of every record-th call, and their callers. Returns (idle counts, idle s, run counts,
    run s, callers)."""
    lives = [str(int(LIVE) + 1), LIVE] if warm else [LIVE]
    callers = None
    with harness.Env("cost-malloc") as env:
        cnt = Counter(env, tool, libc)
        try:
            cnt.open()
            r = env.start_redis()
            env.start_sim(["%s:%s,fps=0" % (live, frames) for live in lives])
            w, port = start_worker(env, r, admin=False)
            if warm:
                r("LPUSH", "dylive:assign", lives[0])
                harness.wait_until(lambda: events_of(r, lives[0]) >= expect, 600, "warm-up events", interval=0.05)
            time.sleep(0.5)
            cnt.start(w.pid, "idle")
            ti = time.monotonic()
            time.sleep(3)
            idle = cnt.stop()
            idle_s = time.monotonic() - ti
            cnt.start(w.pid, "run")
            rec = cnt.record_callers(w.pid, period=record) if record and tool == "perf" else None
            t0 = time.monotonic()
            r("LPUSH", "dylive:assign", LIVE)
            marks = {}  # the steady part of the run: from 10 % of the room's events written to 90 %; its late half

            def all_written():
                got, now = events_of(r, LIVE), time.monotonic()
                for q in (0.1, 0.5, 0.9):
                    if got >= q * expect and q not in marks:
                        marks[q] = (now, got)
                return got >= expect
            harness.wait_until(all_written, 600, "all events", interval=0.05)
            time.sleep(0.2)
            run = cnt.stop()
            run_s = time.monotonic() - t0
            if rec:
                # the steady part, and its late half alone: growth of pools and buffers that warm up once
                # (a deeper queue than ever before) shows in the first half; a call per event in both
                windows = {"window": (0.1, 0.9), "late": (0.5, 0.9)} if warm else {}
                callers = cnt.callers(rec, n=16, windows={k: (marks[a][0], marks[b][0]) for k, (a, b) in windows.items()})
                for k, (a, b) in windows.items() if callers else ():
                    callers[k].update(seconds=r2(marks[b][0] - marks[a][0]), events=marks[b][1] - marks[a][1])
        finally:
            cnt.close()
    return idle, idle_s, run, run_s, callers


def malloc_warm(tmp, tool, libc, nf):
    """A room of nf rich frames captured by a warm worker (counted_room warm=True): its allocation
    calls per event, idle subtracted, are the hot path's in steady state plus that room's own set-up
    (resolve, page, connect) spread over its events."""
    frames, man = fixture(tmp, "w%d" % nf, LIVE, "--frames", str(nf), "--seed", "42")
    expect = man["unique_msg_ids"]
    idle, idle_s, run, run_s, callers = counted_room(tool, libc, frames, expect, record=1, warm=True)
    run.pop("syscalls", None)
    idle.pop("syscalls", None)
    idle_rate = sum(idle.values()) / idle_s
    res = {"frames": nf, "events": expect, "mallocs": sum(run.values()), "by_fn": run, "seconds": r2(run_s),
           "idle_per_s": r2(idle_rate, 1),
           "per_event": round(max(0.0, sum(run.values()) - idle_rate * run_s) / expect, 4)}
    if callers:
        res["callers"] = callers
    return res


def phase_malloc(tmp, out):
    tool = ARGS.malloc_tool
    if tool == "auto":
        tool = "perf" if shutil.which("perf") else "ltrace"
    ldd = subprocess.run(["ldd", os.path.join(harness.BUILD, "dylive-connector")], capture_output=True, text=True).stdout
    mm = re.search(r"libc\.so\.6 => (\S+)", ldd)
    libc = os.path.realpath(mm.group(1)) if mm else "/lib/x86_64-linux-gnu/libc.so.6"
    runs, callers, runs_sc = [], None, []
    for nf in [int(x) for x in ARGS.malloc_frames.split(",")][:2]:
        frames, man = fixture(tmp, "m%d" % nf, LIVE, "--frames", str(nf), "--seed", "42")
        expect = man["unique_msg_ids"]
        idle, idle_s, run, run_s, c = counted_room(tool, libc, frames, expect, record=None if runs else 17)
        callers = callers or c
        sc_idle, sc_run = idle.pop("syscalls", None), run.pop("syscalls", None)
        tot_idle = sum(idle.values())
        tot_run = sum(run.values())
        if sc_run is not None:
            runs_sc.append((expect, sc_run - sc_idle / idle_s * run_s))
        runs.append({"frames": nf, "events": expect, "mallocs": tot_run, "by_fn": run, "seconds": r2(run_s),
                     "idle_per_s": r2(tot_idle / idle_s, 1),
                     "per_event": r2((tot_run - tot_idle / idle_s * run_s) / expect)})
    res = {"tool": tool, "runs": runs}
    if len(runs_sc) == 2 and runs_sc[1][0] != runs_sc[0][0]:
        res["syscalls_per_event"] = r2((runs_sc[1][1] - runs_sc[0][1]) / (runs_sc[1][0] - runs_sc[0][0]))
    if tool == "ltrace":
        res["note"] = "ltrace -e counts only calls from the worker binary's own PLT, not those made inside " \
                      "shared libraries (cJSON, protobuf-c, libdeflate, hiredis, lws, libevent): an undercount"
    if callers:
        res["callers"] = callers
    if len(runs) == 2 and runs[1]["events"] != runs[0]["events"]:
        a, b = runs
        # marginal: what the extra events cost, setup (resolve, connect, tables) cancelled out; idle
        # activity over the longer run subtracted
        res["marginal_per_event"] = r2(((b["mallocs"] - b["idle_per_s"] * b["seconds"])
                                        - (a["mallocs"] - a["idle_per_s"] * a["seconds"])) / (b["events"] - a["events"]))
    if ARGS.malloc_warm_frames:
        res["warm"] = malloc_warm(tmp, tool, libc, ARGS.malloc_warm_frames)
    out["malloc"] = res
    print("== malloc: allocation calls of the worker (%s), rich fixture ==" % tool)
    for x in runs:
        print("  %5d frames, %6d events: %d calls (%s) in %.1f s; idle %.0f/s; %.2f per event"
              % (x["frames"], x["events"], x["mallocs"], x["by_fn"], x["seconds"], x["idle_per_s"], x["per_event"]))
    if "marginal_per_event" in res:
        print("  marginal (hot path): %.2f allocation calls per event; %s system calls per event (all threads)"
              % (res["marginal_per_event"], res.get("syscalls_per_event")), flush=True)
    if callers:
        print("  where they come from (sampled call graphs, %d samples): immediate caller | dylive function"
              % callers["samples"])
        for (a, pa), (b, pb) in zip(callers["immediate"], callers["dylive"]):
            print("    %5.1f%% %-44s %5.1f%% %s" % (pa, a, pb, b))
        print("  the same by their first three dylive functions (innermost first):")
        for c, pc in callers["chains"]:
            print("    %5.1f%% %s" % (pc, c))
    wm = res.get("warm")
    if wm:
        print("  warm worker (a second room of %d frames after a first one): %d calls (%s) for %d events, idle %.0f/s "
              "subtracted: %.4f per event, the room's set-up included"
              % (wm["frames"], wm["mallocs"], wm["by_fn"], wm["events"], wm["idle_per_s"], wm["per_event"]))
        for c, pc in (wm.get("callers") or {}).get("chains", []):
            print("    %5.1f%% %s" % (pc, c))
        for key, what in (("window", "steady part (from 10 %"), ("late", "late half (from 50 %")):
            win = (wm.get("callers") or {}).get(key)
            if win and "events" in win:
                print("  its %s of its events written to 90 %%: %d events in %.2f s): %d allocation calls = %.4f "
                      "per event" % (what, win["events"], win["seconds"], win["samples"],
                                     win["samples"] / max(1, win["events"])))
                for c, pc in win["chains"]:
                    print("    %5.1f%% %s" % (pc, c))


# ---------------------------------------------------------------- floors
def phase_floors(tmp, out):
    try:
        floors(tmp, out)
    except (subprocess.SubprocessError, OSError, RuntimeError, ValueError, KeyError) as e:
        out["floors"] = {"error": str(e)[:500]}
        print("== floors: failed: %s" % str(e)[:500], flush=True)


def floors(tmp, out):
    res = {}
    frames = os.path.join(tmp, "rich.frames")
    if not os.path.exists(frames):
        frames, _ = fixture(tmp, "rich", LIVE, "--frames", str(ARGS.rich_frames), "--seed", "42")

    def decode_bench(path):
        p = subprocess.run([os.path.join(harness.BUILD, "tests", "fixtures", "decode_dump"), "--bench", "4", "--into",
                            path], capture_output=True, text=True, timeout=600, check=True)
        m1 = re.search(r"(\d+) frames, (\d+) events in [\d.]+ s of CPU.*?([\d.]+) us/event", p.stderr)
        m2 = re.search(r"inflate alone: ([\d.]+) us/event", p.stderr)
        m3 = re.search(r"(\d+) in the steady state", p.stderr)
        if not (m1 and m2):
            raise RuntimeError("decode_dump --bench said: %s" % p.stderr.strip())
        us = float(m1.group(3))
        return {"frames": int(m1.group(1)), "events": int(m1.group(2)), "decode_us_per_event": us,
                "decode_events_per_s": round(1e6 / us) if us else None, "inflate_us_per_event": float(m2.group(1)),
                "steady_state_allocations": int(m3.group(1)) if m3 else None}
    res["decode"] = decode_bench(frames)
    # one room of the rooms phase (room_fixtures' frames): its frame size, and what decoding one costs
    room_dir = os.path.join(tmp, "floor-room")
    os.makedirs(room_dir, exist_ok=True)
    _, room = room_fixtures(room_dir, 1, 2000)[0]
    room_frame = int(round(os.path.getsize(room) / 2000))
    res["decode_room"] = decode_bench(room)
    res["decode_room"]["frame_bytes"] = room_frame
    secs = max(5, int(ARGS.rooms_seconds // 3))
    for name, extra in (("sockets_ack", ()), ("sockets_no_ack", ("--ack-bytes", "0")),
                        ("sockets_handoff", ("--handoff", "1", "--flush-ms", "1"))):
        p = subprocess.run([os.path.join(harness.BUILD, "dylive-floor-sock"), "--rooms", str(ARGS.rooms), "--rate",
                            str(ARGS.room_rate), "--seconds", str(secs)] + list(extra),
                           capture_output=True, text=True, timeout=120 + secs, check=True)
        res[name] = json.loads(p.stdout.strip().splitlines()[-1])
    # dylive's WebSocket library alone (dylive-floor-lws: lws clients on one libev loop, one ack per
    # frame written as dylive writes its acks, nothing else): the many-rooms shape with frames sent
    # on millisecond ticks as the simulator sends them (and, for comparison, each at its own time),
    # and one room flat out with the rich fixture's mean frame size
    rich_json = os.path.join(tmp, "rich.json")
    with open(rich_json) as f:
        rman = json.load(f)
    mean_frame = int(round(os.path.getsize(frames) / rman["frames"]))
    per_frame = rman["unique_msg_ids"] / rman["frames"]
    rooms_args = ("--rooms", str(ARGS.rooms), "--rate", str(ARGS.room_rate // ARGS.room_per_frame), "--seconds",
                  str(secs), "--frame-bytes", str(room_frame))
    rich_args = ("--rooms", "1", "--rate", "1000000", "--seconds", "5", "--frame-bytes", str(mean_frame))
    for name, extra in (("lws_rooms", rooms_args), ("lws_rooms_no_ack", rooms_args + ("--ack-bytes", "0")),
                        ("lws_rooms_spread", rooms_args + ("--sender-tick-ms", "0")),
                        ("lws_rich", rich_args), ("lws_rich_no_ack", rich_args + ("--ack-bytes", "0"))):
        p = subprocess.run([os.path.join(harness.BUILD, "dylive-floor-lws")] + list(extra),
                           capture_output=True, text=True, timeout=120 + secs, check=True)
        res[name] = json.loads(p.stdout.strip().splitlines()[-1])
        epf = per_frame if name.startswith("lws_rich") else ARGS.room_per_frame
        res[name]["events_per_frame"] = r2(epf)
        res[name]["cpu_us_per_event"] = r2(res[name]["cpu_us_per_frame"] / epf)
    # the same many-rooms floor + the least a write to Redis can cost: one plain XADD per frame to its
    # room's stream (a json field of the ceiling's entry size), a 1 ms linger's XADDs in one write as
    # dylive's --flush-ms, replies read on the same loop; no script, fence, status or dedupe
    with harness.Env("cost-floor-redis") as env:
        env.start_redis()
        win = Window(redis=env.redis_proc.pid)
        p = subprocess.run([os.path.join(harness.BUILD, "dylive-floor-lws")] + list(rooms_args) +
                           ["--redis-port", str(env.redis_port), "--flush-ms", "1", "--entry-bytes",
                            str(entry_json_bytes(out))],
                           capture_output=True, text=True, timeout=120 + secs, check=True)
        win.stop()
    lx = res["lws_rooms_redis"] = json.loads(p.stdout.strip().splitlines()[-1])
    lx["cpu_us_per_event"] = r2(lx["cpu_us_per_frame"] / ARGS.room_per_frame)
    lx["redis_cpu_us_per_xadd"] = r2(win.cpu["redis"] / lx["xadds"] * 1e6) if lx.get("xadds") else None
    out["floors"] = res
    dec, sa, sn = res["decode"], res["sockets_ack"], res["sockets_no_ack"]
    print("== floors: what dylive's pipeline is measured against ==")
    print("  decode alone (decode_dump --bench --into, rich fixture in memory): %.2f us/event (%d events/s on one core); "
          "libdeflate inflate alone %.2f us/event" % (dec["decode_us_per_event"], dec["decode_events_per_s"],
                                                dec["inflate_us_per_event"]))
    print("  %d sockets x %d frames/s, epoll_wait + recv + ack send per frame (dylive-floor-sock): %.2f us/frame, "
          "%.2f system calls/frame; without the ack %.2f us, %.2f" % (sa["rooms"], sa["rate"], sa["cpu_us_per_frame"],
                                                                     sa["syscalls_per_frame"], sn["cpu_us_per_frame"],
                                                                     sn["syscalls_per_frame"]))
    sh = res["sockets_handoff"]
    print("  the same + dylive's hand-off (each frame queued for a second thread, woken on the empty -> non-empty "
          "edge, 1 ms linger on a timerfd, one 64-byte write + answer per linger): %.2f us/frame"
          % sh["cpu_us_per_frame"], flush=True)
    lr, ln, xr, xn = res["lws_rooms"], res["lws_rooms_no_ack"], res["lws_rich"], res["lws_rich_no_ack"]
    dr = res["decode_room"]
    print("  dylive's WebSocket library alone (dylive-floor-lws: lws on libev, frames on 1 ms ticks as the simulator "
          "sends them): %d rooms x %d frames/s of %d bytes (a rooms-phase frame), one ack per frame: %.2f us/event "
          "(each frame at its own time: %.2f); without the ack %.2f; + decoding such a frame (decode_dump, in "
          "memory): %.2f us/event"
          % (lr["rooms"], lr["rate"], lr["frame_bytes"], lr["cpu_us_per_event"],
             res["lws_rooms_spread"]["cpu_us_per_event"], ln["cpu_us_per_event"],
             lr["cpu_us_per_event"] + dr["decode_us_per_event"]))
    print("  the same + the least write to Redis (one plain XADD per frame, a 1 ms linger's in one write, replies on "
          "the same loop; no script): %.2f us/event (+ decoding: %.2f); Redis %.2f us per XADD"
          % (lx["cpu_us_per_event"], lx["cpu_us_per_event"] + dr["decode_us_per_event"],
             lx["redis_cpu_us_per_xadd"] or 0))
    print("  the same, one room flat out, %d-byte frames (the rich fixture's mean, %.2f events each): %.2f us/event "
          "(%d frames/s, %.0f%% of a core) with an ack per frame; without acks %.2f us/event (%d frames/s); "
          "+ libdeflate's inflate alone: %.2f; + the decoder alone (inflate included): %.2f us/event"
          % (xr["frame_bytes"], xr["events_per_frame"], xr["cpu_us_per_event"], xr["frames_per_s"], xr["cpu_pct"],
             xn["cpu_us_per_event"], xn["frames_per_s"], xn["cpu_us_per_event"] + dec["inflate_us_per_event"],
             xn["cpu_us_per_event"] + dec["decode_us_per_event"]), flush=True)


# ---------------------------------------------------------------- summary
def summarize(out):
    ratios, targets = {}, {}
    rich, ceil = out.get("rich", {}), out.get("ceiling")
    d = rich.get("dylive")
    peers = [rich[k] for k in ("python", "node") if k in rich]
    if d and ceil:
        ratios["dylive_redis_cpu_vs_ceiling"] = r2(d["redis_cpu_us_per_event"] / ceil["redis_cpu_us_per_entry"])
        ratios["dylive_eps_vs_ceiling"] = r2(d["events_per_s"] / ceil["entries_per_s"], 3)
    if d and peers:
        best = max(peers, key=lambda p: p["events_per_s"])
        ratios["dylive_eps_vs_faster_peer"] = r2(d["events_per_s"] / best["events_per_s"])
        ratios["faster_peer"] = [k for k in ("python", "node") if rich.get(k) is best][0]
        for k in ("python", "node"):
            if k in rich:
                ratios["%s_worker_cpu_vs_dylive" % k] = r2(rich[k]["cpu_us_per_event"] / d["cpu_us_per_event"])
                ratios["%s_redis_cpu_vs_dylive" % k] = r2(rich[k]["redis_cpu_us_per_event"] / d["redis_cpu_us_per_event"])

    def t(name, value, op, target):
        if value is None:
            return
        met = value <= target if op == "<=" else value >= target
        targets[name] = {"value": value, "target": "%s %s" % (op, target), "met": met}

    rm = out.get("rooms")
    if rm and out.get("ceiling_rooms"):
        ratios["rooms_redis_cpu_vs_spread_ceiling"] = r2(rm["redis_cpu_us_per_event"]
                                                         / out["ceiling_rooms"]["redis_cpu_us_per_entry"])
    if rm:
        t("rooms_worker_cpu_us_per_event", rm["worker_cpu_us_per_event"], "<=", 20)
        t("rooms_redis_cpu_us_per_event", rm["redis_cpu_us_per_event"], "<=", 5)
    t("redis_cpu_vs_xadd_ceiling", ratios.get("dylive_redis_cpu_vs_ceiling"), "<=", 1.5)
    t("eps_vs_xadd_ceiling", ratios.get("dylive_eps_vs_ceiling"), ">=", 0.5)
    t("eps_vs_faster_peer", ratios.get("dylive_eps_vs_faster_peer"), ">=", 5)
    if d:
        t("rich_worker_cpu_us_per_event", d["cpu_us_per_event"], "<=", 4)
        t("peak_rss_mib_blasted_room", mib(d["peak_rss_kb_max"]), "<=", 64)
    fl = out.get("floors")
    if fl and "error" in fl:
        fl = None
    if fl and d:
        ratios["rich_worker_cpu_vs_decode_floor"] = r2(d["cpu_us_per_event"] / fl["decode"]["decode_us_per_event"])
    if fl and rm:
        ratios["rooms_worker_cpu_vs_socket_floor"] = r2(rm["worker_cpu_us_per_event"]
                                                        / fl["sockets_ack"]["cpu_us_per_frame"])
        ratios["rooms_worker_cpu_vs_handoff_floor"] = r2(rm["worker_cpu_us_per_event"]
                                                         / fl["sockets_handoff"]["cpu_us_per_frame"])
        ratios["rooms_worker_cpu_vs_lws_floor"] = r2(rm["worker_cpu_us_per_event"] / fl["lws_rooms"]["cpu_us_per_event"])
        lx = fl.get("lws_rooms_redis") or {}
        if lx.get("cpu_us_per_event"):
            ratios["rooms_worker_cpu_vs_lws_redis_floor"] = r2(rm["worker_cpu_us_per_event"] / lx["cpu_us_per_event"])
        if lx.get("redis_cpu_us_per_xadd"):
            ratios["rooms_redis_cpu_vs_xadd_floor"] = r2(rm["redis_cpu_us_per_event"] / lx["redis_cpu_us_per_xadd"])
    if fl and d:
        # against the lower floor: dylive sends a loop pass's acks together, not one send per frame
        ratios["rich_worker_cpu_vs_lws_floor"] = r2(d["cpu_us_per_event"] / fl["lws_rich_no_ack"]["cpu_us_per_event"])
    ml = out.get("malloc")
    if ml:
        t("mallocs_per_event_hot_path", ml.get("marginal_per_event", ml["runs"][-1]["per_event"]), "<=", 0)
        win = ((ml.get("warm") or {}).get("callers") or {}).get("window")
        if win and win.get("events"):
            # two significant digits, never rounded to a 0 that is not one
            t("mallocs_per_event_warm_steady", float("%.2g" % (win["samples"] / win["events"])), "<=", 0)
        late = ((ml.get("warm") or {}).get("callers") or {}).get("late")
        if late and late.get("events"):
            t("mallocs_per_event_warm_late", float("%.2g" % (late["samples"] / late["events"])), "<=", 0)

    lat = out.get("latency", {})
    if "10000" in lat:
        t("p99_ms_at_10k", lat["10000"]["exact_ms"]["p99"], "<=", 5)  # frame received -> XADD ran (1 ms steps)
        t("p99_ms_at_10k_histogram", lat["10000"]["histogram_ms"]["p99"], "<=", 5)  # -> ack seen by the worker
    tl = out.get("tls")
    if tl:
        t("tls_rss_kib_per_idle_room", tl["rss_per_idle_room_kb"], "<=", 64)
    out["ratios"] = ratios
    out["targets"] = targets
    if ratios or targets:
        print("== ratios and the targets of issue 11 ==")
        for k, v in ratios.items():
            print("  %-34s %s" % (k, v))
        for k, v in targets.items():
            print("  %-34s %-10s target %-8s %s" % (k, v["value"], v["target"], "met" if v["met"] else "NOT met"))


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(ARGS.rooms, ARGS.tls_rooms) * 2 + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def on_signal(*_):
    raise KeyboardInterrupt


def main():
    missing, steps = prerequisites()
    if missing or steps:
        print("cost.py: missing prerequisites for phases %s%s:" % (",".join(ARGS.phases),
                                                                  " +profile" if ARGS.profile else ""))
        if missing:
            print("  Debian packages: apt-get install %s" % " ".join(missing))
        for s in steps:
            print("  " + s)
        return 2
    if ARGS.check:
        print("cost.py: everything needed is there")
        return 0
    signal.signal(signal.SIGINT, on_signal)  # even when started with SIGINT ignored (a background job)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    nofile = raise_nofile()
    out = {"build": harness.BUILD, "cpus": os.cpu_count(), "nofile": nofile,
           "load_avg_start": [round(x, 2) for x in os.getloadavg()],
           "argv": " ".join(sys.argv[1:])}
    t = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="dylive-cost-")
    try:
        if "rich" in ARGS.phases:
            phase_rich(tmp, out)
        if "ceiling" in ARGS.phases:
            phase_ceiling(out)
        fx = None
        if "rooms" in ARGS.phases or "tls" in ARGS.phases:
            n = max(ARGS.rooms if "rooms" in ARGS.phases else 0, ARGS.tls_rooms if "tls" in ARGS.phases else 0)
            frames = int(max(ARGS.room_rate * (ARGS.rooms_seconds + 90),
                             ARGS.tls_rate * (ARGS.tls_seconds + 60)))
            t_fx = time.monotonic()
            fx = room_fixtures(os.path.join(tmp, "rooms"), n, frames)
            out["room_fixtures_s"] = r2(time.monotonic() - t_fx, 1)
        if "rooms" in ARGS.phases:
            phase_rooms(tmp, out, fx)
        if "latency" in ARGS.phases:
            phase_latency(tmp, out)
        if "malloc" in ARGS.phases:
            phase_malloc(tmp, out)
        if "tls" in ARGS.phases:
            phase_tls(tmp, out, fx)
        if "floors" in ARGS.phases:
            phase_floors(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summarize(out)
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["total_s"] = round(time.monotonic() - t, 1)
    print(json.dumps(out, sort_keys=True, ensure_ascii=False))
    ok = all(v.get("ok", True) for v in out.get("rich", {}).values() if isinstance(v, dict)) and \
        out.get("ceiling", {}).get("ok", True)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("cost.py: interrupted; everything it started is stopped", file=sys.stderr)
        sys.exit(130)
