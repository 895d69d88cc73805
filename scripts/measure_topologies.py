#!/usr/bin/python3
"""Redis CPU per event and the write pause on each Redis topology (README "Production Redis").

Usage: scripts/measure_topologies.py [BUILD_DIR] [--frames N] [--only single,tls,sentinel,cluster,...]

For one node, one node over TLS, Sentinel (--redis-wait-replicas 1) and a 3-primary Cluster:
one worker writes one rich fixture room flat out (the simulator at full speed) and the script
reports events/s and the CPU every redis-server spent (utime+stime from /proc) per event. Then:
Sentinel — SENTINEL FAILOVER mid-room, the time until writes land on the new primary; Cluster — a
primary killed and restarted from its AOF mid-room, the time from its return until the room's
writes land again. Both runs end with the stream checked against the fixture (0 lost, 0 doubled).
Uses the integration tests' harness and topology helpers; Python stdlib only. The last line is one
JSON object with every figure."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "build")
os.environ["DYLIVE_BUILD"] = BUILD
FRAMES = int(sys.argv[sys.argv.index("--frames") + 1]) if "--frames" in sys.argv else 20000
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None

import harness  # noqa: E402
import topology as topo  # noqa: E402

harness.BUILD = BUILD
LIVE = "666000111"


def status(r):
    return r.hgetall("dylive:{%s}:status" % LIVE)


def qstatus(port):
    h = topo.q(port, "HGETALL", "dylive:{%s}:status" % LIVE) or []
    return dict(zip(h[0::2], h[1::2]))


def stream_ids(r):
    return [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]


def redis_cpu(env):
    return sum(harness.proc_cpu_s(p.pid) for p in env.procs
               if p.poll() is None and p.args and os.path.basename(str(p.args[0])) in ("redis-server",))


def worker(env, url, *extra):
    admin = harness.free_port()
    env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", url, "--douyin-http",
               "http://127.0.0.1:%d" % env.sim_port, "--douyin-ws", "ws://127.0.0.1:%d" % env.sim_port,
               "--admin", "127.0.0.1:%d" % admin, "--poll-ms", "200"] + list(extra), "worker.log")
    return admin


def run_room(env, url, status_fn, assign_fn, fps, *extra):
    frames, man = env.fixture("room", LIVE, harness.default_room_id(LIVE), "--frames", str(FRAMES), "--seed", "77")
    env.start_sim(["%s:%s,fps=%d" % (LIVE, frames, fps)])
    admin = worker(env, url, *extra)
    harness.wait_until(lambda: harness.metric(admin, "dylive_redis_connected") == 1, 20, "connected")
    cpu0, t0 = redis_cpu(env), time.monotonic()
    assign_fn()
    harness.wait_until(lambda: status_fn().get("state") == "ended", 300, "room ended")
    harness.wait_until(lambda: harness.metric(admin, "dylive_redis_pending") == 0, 60, "written")
    dt, cpu = time.monotonic() - t0, redis_cpu(env) - cpu0
    n = int(status_fn().get("events", "0"))
    return {"events": n, "expected": len(man["msg_ids"]), "events_per_s": round(n / dt),
            "redis_cpu_us_per_event": round(cpu * 1e6 / max(n, 1), 2)}, man, admin


def single(tls=False):
    with harness.Env("m-single") as env:
        if tls:
            pki = topo.make_pki(env.tmp)
            port = topo.start_tls_redis(env, pki, auth_clients=False)
            url, extra = "rediss://127.0.0.1:%d/0" % port, ["--redis-ca-file", pki["ca.pem"]]

            def st():
                out = topo.tls_cli(port, pki, "HGETALL", "dylive:{%s}:status" % LIVE).split("\n")
                vals = [l.split(") ", 1)[1].strip('"') for l in out if ") " in l]
                return dict(zip(vals[0::2], vals[1::2]))
            return run_room(env, url, st, lambda: topo.tls_cli(port, pki, "LPUSH", "dylive:assign", LIVE), 0, *extra)[0]
        r = env.start_redis()
        return run_room(env, "redis://127.0.0.1:%d/0" % env.redis_port, lambda: status(r),
                        lambda: r("LPUSH", "dylive:assign", LIVE), 0)[0]


def sentinel():
    """Primary + replica (both counted: replication is part of the cost) and --redis-wait-replicas 1."""
    with harness.Env("m-sentinel") as env:
        p1, p2, sentinels = topo.start_sentinel_set(env)
        url = "redis-sentinel://%s/0#mymaster" % ",".join("127.0.0.1:%d" % s for s in sentinels)
        return run_room(env, url, lambda: qstatus(p1), lambda: topo.q(p1, "LPUSH", "dylive:assign", LIVE), 0,
                        "--redis-wait-replicas", "1")[0]


def sentinel_failover():
    with harness.Env("m-failover") as env:
        p1, p2, sentinels = topo.start_sentinel_set(env)
        frames, man = env.fixture("room", LIVE, harness.default_room_id(LIVE), "--frames", "1500", "--seed", "79")
        env.start_sim(["%s:%s,fps=100" % (LIVE, frames)])
        url = "redis-sentinel://%s/0#mymaster" % ",".join("127.0.0.1:%d" % s for s in sentinels)
        worker(env, url, "--redis-wait-replicas", "1")
        topo.q(p1, "LPUSH", "dylive:assign", LIVE)
        harness.wait_until(lambda: int(qstatus(p1).get("events", "0")) >= 300, 30, "events")
        t0 = time.monotonic()
        topo.q(sentinels[0], "SENTINEL", "FAILOVER", "mymaster")
        harness.wait_until(lambda: "role:master" in (topo.q(p2, "INFO", "replication") or ""), 30, "promoted")
        before = int(qstatus(p2).get("events", "0"))
        harness.wait_until(lambda: int(qstatus(p2).get("events", "0")) > before, 30, "writes on the new primary")
        pause = time.monotonic() - t0
        harness.wait_until(lambda: qstatus(p2).get("state") == "ended", 60, "ended")
        ids = stream_ids(harness.Redis(p2))
        return {"pause_s": round(pause, 2), "lost": len(set(man["msg_ids"]) - set(ids)), "doubled": len(ids) - len(set(ids))}


def cluster():
    with harness.Env("m-cluster") as env:
        ports = topo.start_cluster(env)
        url = "redis-cluster://" + ",".join("127.0.0.1:%d" % p for p in ports)
        res, _, _ = run_room(env, url, lambda: qstatus(topo.node_of(ports, "{%s}" % LIVE)[0]),
                             lambda: topo.cluster_get(ports, "LPUSH", "dylive:assign", LIVE), 0)
        return res


def cluster_restart():
    with harness.Env("m-cl-restart") as env:
        ports = topo.start_cluster(env)
        frames, man = env.fixture("room", LIVE, harness.default_room_id(LIVE), "--frames", "1500", "--seed", "80")
        env.start_sim(["%s:%s,fps=100" % (LIVE, frames)])
        url = "redis-cluster://" + ",".join("127.0.0.1:%d" % p for p in ports)
        worker(env, url)
        port, _ = topo.node_of(ports, "{%s}" % LIVE)
        topo.cluster_get(ports, "LPUSH", "dylive:assign", LIVE)
        harness.wait_until(lambda: int(qstatus(port).get("events", "0")) >= 300, 30, "events")
        proc = next(p for p in env.procs if p.args[:3] == ["redis-server", "--port", str(port)])
        proc.kill()
        proc.wait(timeout=10)
        env.spawn(topo.cluster_node_args(env, port), "restart.log")
        harness.wait_until(lambda: harness.redis_ready(port), 30, "back")
        t0 = time.monotonic()
        before = int(qstatus(port).get("events", "0"))
        harness.wait_until(lambda: int(qstatus(port).get("events", "0")) > before, 60, "writes again")
        pause = time.monotonic() - t0
        harness.wait_until(lambda: qstatus(port).get("state") == "ended", 90, "ended")
        ids = stream_ids(harness.Redis(port))
        return {"resume_after_restart_s": round(pause, 2), "lost": len(set(man["msg_ids"]) - set(ids)),
                "doubled": len(ids) - len(set(ids))}


def main():
    out = {"frames": FRAMES}
    for name, fn in (("single", single), ("tls", lambda: single(True)), ("sentinel", sentinel), ("cluster", cluster),
                     ("sentinel_failover", sentinel_failover), ("cluster_restart", cluster_restart)):
        if ONLY and name not in ONLY:
            continue
        out[name] = fn()
        print(name, out[name], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
