"""Production Redis (CONTRACT §2.1): TLS with a private CA and mutual TLS, Sentinel with a failover
mid-room (--redis-wait-replicas), and Cluster with a live room's slot migrated (ASK, then MOVED)
and a primary restarted. Real redis-server/redis-sentinel processes on loopback; every case ends
with the exact stream: the fixture's msg_ids, in order, once."""
import os
import subprocess
import time

from harness import BUILD, Env, Redis, check, check_eq, default_room_id, free_port, metric, redis_ready, run, wait_until
from topology import (cluster_get, cluster_node_args, make_pki, node_id, node_of, q, start_cluster, start_sentinel_set,
                      start_tls_redis, tls_cli)

LIVE = "666000111"


def status(r, live_id=LIVE):
    return r.hgetall("dylive:{%s}:status" % live_id)


def stream_ids(r, live_id=LIVE):
    return [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % live_id)]


# ---------------------------------------------------------------- retention

def test_stream_max_age_trims_by_time():
    """--stream-max-age S: beside the length bound, entries older than S seconds are trimmed
    (XTRIM MINID ~, whole stream nodes at a time)."""
    with Env("maxage") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "1200", "--seed", "25",
                                  "--kinds", "chat")
        env.start_sim(["%s:%s,fps=200" % (LIVE, frames)])
        env.worker("--stream-max-age", "2", "--poll-ms", "100")
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "ended", 60, "room ended")
        entries = r.xrange_all("dylive:{%s}:events" % LIVE)
        first_ms, last_ms = (int(entries[i][0].split("-")[0]) for i in (0, -1))
        written = int(status(r)["events"])
        print("max-age: %d written, %d kept, %.1f s between the first and last kept" %
              (written, len(entries), (last_ms - first_ms) / 1000), flush=True)
        check(written == len(man["msg_ids"]), "every event was written (%d)", written)
        check(len(entries) < written, "old entries trimmed: %d of %d kept", len(entries), written)
        # "~" keeps up to one stream node (100 entries) beyond the bound; at 200+ entries/s that is < 1 s
        check(last_ms - first_ms <= 3000, "nothing much older than 2 s kept (%d ms)", last_ms - first_ms)


# ---------------------------------------------------------------- TLS

def test_tls_redis_exact_and_fails_closed():
    with Env("tls") as env:
        pki = make_pki(env.tmp)
        port = start_tls_redis(env, pki, auth_clients=False)
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "200", "--seed", "21")
        env.start_sim(["%s:%s,fps=100" % (LIVE, frames)])
        url = "rediss://127.0.0.1:%d/0" % port
        # without the CA: no connection, and the log says why; never plain text
        bad = env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", url, "--admin", "off",
                         "--douyin-http", "http://127.0.0.1:%d" % env.sim_port], "untrusted.log")
        wait_until(lambda: "certificate verification failed" in env.log("untrusted.log"), 15,
                   "the untrusted certificate named in the log")
        bad.kill()
        admin = free_port()
        env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", url, "--redis-ca-file", pki["ca.pem"],
                   "--douyin-http", "http://127.0.0.1:%d" % env.sim_port, "--douyin-ws", "ws://127.0.0.1:%d" % env.sim_port,
                   "--admin", "127.0.0.1:%d" % admin, "--poll-ms", "200"], "worker.log")
        wait_until(lambda: metric(admin, "dylive_redis_connected") == 1, 15, "connected over TLS")
        tls_cli(port, pki, "LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: "ended" in tls_cli(port, pki, "HGET", "dylive:{%s}:status" % LIVE, "state"), 30, "room ended")
        n = int(tls_cli(port, pki, "XLEN", "dylive:{%s}:events" % LIVE).split()[-1])
        check_eq(n, len(man["msg_ids"]), "every event over TLS, once")
        # dylivectl speaks it too
        p = subprocess.run([os.path.join(BUILD, "dylivectl"), "--redis", url, "--redis-ca-file", pki["ca.pem"], "rooms"],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 0 and LIVE in p.stdout and "ended" in p.stdout, "dylivectl over TLS: %r %r", p.stdout,
              p.stderr)


def test_tls_mutual_client_certificate():
    with Env("mtls") as env:
        pki = make_pki(env.tmp)
        port = start_tls_redis(env, pki, auth_clients=True)
        env.start_sim([LIVE])
        base = [os.path.join(BUILD, "dylive-connector"), "--redis", "rediss://127.0.0.1:%d/0" % port, "--redis-ca-file",
                pki["ca.pem"], "--douyin-http", "http://127.0.0.1:%d" % env.sim_port]
        a1, a2 = free_port(), free_port()
        env.spawn(base + ["--admin", "127.0.0.1:%d" % a1], "nocert.log")
        env.spawn(base + ["--admin", "127.0.0.1:%d" % a2, "--redis-cert", pki["client.pem"], "--redis-key",
                          pki["client.key"]], "cert.log")
        wait_until(lambda: metric(a2, "dylive_redis_connected") == 1, 15, "the worker with a client certificate")
        wait_until(lambda: "redis_down" in env.log("nocert.log"), 15, "the one without is refused")
        check_eq(metric(a1, "dylive_redis_connected"), 0, "no certificate, no connection")


# ---------------------------------------------------------------- Sentinel

def qstatus(port, live_id=LIVE):
    h = q(port, "HGETALL", "dylive:{%s}:status" % live_id) or []
    return dict(zip(h[0::2], h[1::2]))


def test_sentinel_failover_mid_room_exact():
    with Env("sentinel") as env:
        p1, p2, sentinels = start_sentinel_set(env)
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "1500", "--seed", "23")
        env.start_sim(["%s:%s,fps=100" % (LIVE, frames)])
        url = "redis-sentinel://%s/0#mymaster" % ",".join("127.0.0.1:%d" % s for s in sentinels)
        admin = free_port()
        env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", url, "--redis-wait-replicas", "1",
                   "--douyin-http", "http://127.0.0.1:%d" % env.sim_port, "--douyin-ws", "ws://127.0.0.1:%d" % env.sim_port,
                   "--admin", "127.0.0.1:%d" % admin, "--poll-ms", "200"], "worker.log")
        q(p1, "LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: int(qstatus(p1).get("events", "0")) >= 300, 30, "events flowing on the first primary")
        t0 = time.monotonic()
        q(sentinels[0], "SENTINEL", "FAILOVER", "mymaster")
        wait_until(lambda: "role:master" in (q(p2, "INFO", "replication") or ""), 30, "the replica promoted")
        before = int(qstatus(p2).get("events", "0"))
        wait_until(lambda: int(qstatus(p2).get("events", "0")) > before, 30, "writes on the new primary")
        pause = time.monotonic() - t0
        wait_until(lambda: qstatus(p2).get("state") == "ended", 60, "room ended on the new primary")
        wait_until(lambda: metric(admin, "dylive_redis_pending") == 0, 20, "nothing pending")
        ids = stream_ids(Redis(p2))
        if os.environ.get("DYLIVE_TEST_VERBOSE"):
            print(env.log("worker.log")[-6000:])
        print("sentinel failover: writes resumed %.2f s after SENTINEL FAILOVER; %d events" % (pause, len(ids)),
              flush=True)
        check_eq(len(ids), len(set(ids)), "no duplicates across the failover")
        check_eq(ids, man["msg_ids"], "every event once, in order, on the new primary")


# ---------------------------------------------------------------- Cluster

def test_cluster_rooms_spread_migration_and_restart_exact():
    with Env("cluster") as env:
        ports = start_cluster(env)
        # three rooms whose slots live on three different primaries
        rooms, seen_nodes, lid = [], set(), 666000100
        while len(rooms) < 3:
            lid += 1
            node, _ = node_of(ports, "{%d}" % lid)
            if node not in seen_nodes:
                seen_nodes.add(node)
                rooms.append(str(lid))
        mans, specs = {}, []
        for i, live in enumerate(rooms):
            frames, mans[live] = env.fixture("room%d" % i, live, default_room_id(live), "--frames", "1200", "--seed",
                                             str(30 + i))
            specs.append("%s:%s,fps=60" % (live, frames))
        env.start_sim(specs)
        dead_seed = free_port()  # any seed may be down at start
        url = "redis-cluster://127.0.0.1:%d,%s" % (dead_seed, ",".join("127.0.0.1:%d" % p for p in ports))
        admin = free_port()
        env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", url, "--douyin-http",
                   "http://127.0.0.1:%d" % env.sim_port, "--douyin-ws", "ws://127.0.0.1:%d" % env.sim_port,
                   "--admin", "127.0.0.1:%d" % admin, "--poll-ms", "200"], "worker.log")
        cluster_get(ports, "LPUSH", "dylive:assign", *rooms)

        def events(live):
            return int(cluster_get(ports, "HGET", "dylive:{%s}:status" % live, "events") or 0)
        wait_until(lambda: all(events(l) >= 100 for l in rooms), 30, "every room writing on its own primary")
        # migrate the first room's slot to another primary mid-room: while the slot is MIGRATING and
        # its keys already moved, writes get ASK (sent with ASKING to the importing node); once the
        # slot is assigned, writes sent by the old map get MOVED
        live = rooms[0]
        src, slot = node_of(ports, "{%s}" % live)
        dst = next(p for p in ports if p != src)
        Redis(dst)("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(src))
        Redis(src)("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(dst))
        keys = Redis(src)("CLUSTER", "GETKEYSINSLOT", slot, 100)
        Redis(src)("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
        wait_until(lambda: int(_labelled(admin, "ask") or 0) > 0, 10, "writes redirected with ASK")
        for p in (dst, src) + tuple(p for p in ports if p not in (src, dst)):
            Redis(p)("CLUSTER", "SETSLOT", slot, "NODE", node_id(dst))
        wait_until(lambda: int(_labelled(admin, "moved") or 0) > 0, 10, "writes redirected with MOVED")
        # restart the primary of the second room (AOF keeps its data)
        victim, _ = node_of(ports, "{%s}" % rooms[1])
        proc = next(p for p in env.procs if p.args[:3] == ["redis-server", "--port", str(victim)])
        proc.kill()
        proc.wait(timeout=10)
        env.spawn(cluster_node_args(env, victim), "cluster-%d-restart.log" % victim)
        wait_until(lambda: redis_ready(victim), 20, "the primary back")
        wait_until(lambda: all(cluster_get(ports, "HGET", "dylive:{%s}:status" % l, "state") == "ended" for l in rooms),
                   90, "every room ended")
        for l in rooms:
            port, _ = node_of(ports, "{%s}" % l)
            ids = stream_ids(Redis(port), l)
            check_eq(ids, mans[l]["msg_ids"], "room %s exact across migration and restart" % l)
        wait_until(lambda: metric(admin, "dylive_redis_pending") == 0, 10, "every write done, none left behind")
        rp, _ = node_of(ports, "dylive:rooms")
        ended = {f["live_id"] for _, f in Redis(rp).xrange_all("dylive:rooms") if f["state"] == "ended"}
        check_eq(ended, set(rooms), "P:rooms says every room ended")
        print("cluster: redirections/errors %s (moved %s ask %s)" % (
            metric(admin, "dylive_redis_errors_total"), _labelled(admin, "moved"), _labelled(admin, "ask")), flush=True)
        # dylivectl scans every primary
        p = subprocess.run([os.path.join(BUILD, "dylivectl"), "--redis", url, "rooms"], capture_output=True, text=True,
                           timeout=20)
        check(p.returncode == 0 and all(l in p.stdout for l in rooms), "dylivectl rooms on a cluster: %r %r", p.stdout,
              p.stderr)


def _labelled(admin, kind):
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith('dylive_redis_errors_total{kind="%s"}' % kind):
            return line.rsplit(" ", 1)[1]
    return None


if __name__ == "__main__":
    run()
