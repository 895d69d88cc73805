"""The worker pool: capacity-aware claims, leases with fencing, failover, drain, stop."""
import json
import os
import signal
import subprocess
import time

from harness import (BUILD, Env, check, check_eq, default_room_id, free_port, metric, run, wait_until)

LIVE = "888000222"


def status(r, live_id):
    return r.hgetall("dylive:{%s}:status" % live_id)


def stream_ids(r, live_id):
    return [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % live_id)]


def owner_is(r, live_id, worker):
    st = status(r, live_id)
    return st.get("worker") == worker and st.get("state") == "live"


def start_pool(env, n, *extra):
    names = ["w%d" % i for i in range(n)]
    admins = {}
    procs = {}
    for name in names:
        admins[name] = free_port()
        procs[name] = env.worker(*extra, worker_id=name, admin="127.0.0.1:%d" % admins[name])
    return procs, admins


def failover_once(env, r, procs, live_id):
    """kill -9 the owner; returns (seconds to live on another worker, new owner)."""
    owner = status(r, live_id)["worker"]
    procs[owner].send_signal(signal.SIGKILL)
    procs[owner].wait()
    t0 = time.monotonic()
    others = [w for w in procs if w != owner and procs[w].poll() is None]
    new = wait_until(lambda: next((w for w in others if owner_is(r, live_id, w)), None), 20,
                     "another worker owning the room")
    return time.monotonic() - t0, owner, new


def test_failover_after_kill9():
    with Env("failover") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "300", "--seed", "11")
        env.start_sim(["%s:%s,fps=15" % (LIVE, frames)])
        procs, _ = start_pool(env, 2)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r, LIVE).get("state") == "live", 15, "live")
        wait_until(lambda: int(status(r, LIVE).get("events", "0")) >= 30, 20, "events flowing")
        dt, old, new = failover_once(env, r, procs, LIVE)
        print("takeover after kill -9 of %s: %.2f s (by %s)" % (old, dt, new))
        check(dt < 15, "takeover took %.1f s", dt)
        wait_until(lambda: status(r, LIVE).get("state") == "ended", 60, "state ended")
        ids = stream_ids(r, LIVE)
        check_eq(len(ids), len(set(ids)), "no duplicates across the failover")
        missing = [i for i in man["msg_ids"] if i not in set(ids)]
        check(len(missing) <= 15, "gap of %d messages (Douyin re-pushes 15): %r", len(missing), missing[:20])
        check_eq([i for i in man["msg_ids"] if i in set(ids)], ids, "in order")
        check_eq(r("LLEN", "dylive:claims:%s:{dylive:assign}" % old), 0, "dead worker's claims requeued")


def test_drain_handover():
    with Env("handover") as env:
        r = env.start_redis()
        env.start_sim([LIVE])
        procs, _ = start_pool(env, 2)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r, LIVE).get("state") == "live", 15, "live")
        owner = status(r, LIVE)["worker"]
        other = [w for w in procs if w != owner][0]
        t0 = time.monotonic()
        procs[owner].send_signal(signal.SIGTERM)
        wait_until(lambda: owner_is(r, LIVE, other), 3, "the other worker owning the room within 3 s")
        dt = time.monotonic() - t0
        print("handover after SIGTERM: %.2f s" % dt)
        check_eq(procs[owner].wait(timeout=10), 0, "drained worker exit status")
        wait_until(lambda: env.sim_stats(LIVE)["open"] == 1, 5, "exactly one connection")


def test_gift_streaks_survive_handover():
    """A room handed over mid-room (drain) continues its gift streaks: summing gift.delta over the
    stream still counts every gift exactly once, and every message arrives once."""
    with Env("giftover") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "400", "--seed", "61",
                                  "--long-streak")
        # no re-push: the new owner's decoder learns nothing from Douyin's replay, only from Redis
        env.start_sim(["%s:%s,fps=50" % (LIVE, frames)], extra=["--repush", "0"])
        procs, _ = start_pool(env, 2)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: int(status(r, LIVE).get("events", "0")) >= man["unique_msg_ids"] // 2, 30, "half the room")
        env.sim_post("/_sim/pause?live_id=%s" % LIVE)  # nothing in flight during the handover

        def all_written():
            st = status(r, LIVE)
            return int(st.get("events", "0")) + int(st.get("duplicates", "0")) == env.sim_stats(LIVE)["messages_sent"]
        wait_until(all_written, 10, "everything sent so far written")
        owner = status(r, LIVE)["worker"]
        other = [w for w in procs if w != owner][0]
        procs[owner].send_signal(signal.SIGTERM)
        check_eq(procs[owner].wait(timeout=10), 0, "drained")
        wait_until(lambda: owner_is(r, LIVE, other), 10, "the other worker owning the room")
        env.sim_post("/_sim/resume?live_id=%s" % LIVE)
        wait_until(lambda: status(r, LIVE).get("state") == "ended", 60, "state ended")
        entries = r.xrange_all("dylive:{%s}:events" % LIVE)
        ids = [f["msg_id"] for _, f in entries]
        check_eq(ids, man["msg_ids"], "every message once, in order, across the handover")
        delta = sum(json.loads(f["json"])["gift"]["delta"] for _, f in entries if f["type"] == "gift")
        check_eq(delta, man["gift_units_total"], "sum of gift.delta across the handover")


def test_zombie_is_fenced():
    """SIGSTOP the owner until its lease moves; after SIGCONT it writes nothing and gives the room up."""
    with Env("zombie") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "400", "--seed", "13")
        env.start_sim(["%s:%s,fps=20" % (LIVE, frames)])
        procs, admins = start_pool(env, 2)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r, LIVE).get("state") == "live", 15, "live")
        wait_until(lambda: int(status(r, LIVE).get("events", "0")) >= 10, 20, "events flowing")
        zombie = status(r, LIVE)["worker"]
        other = [w for w in procs if w != zombie][0]
        procs[zombie].send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: owner_is(r, LIVE, other), 20, "the room moving to %s" % other)
            token = r("GET", "dylive:{%s}:lease" % LIVE)
        finally:
            procs[zombie].send_signal(signal.SIGCONT)
        wait_until(lambda: (metric(admins[zombie], "dylive_leases_lost_total") or 0) >= 1, 10,
                   "the zombie noticing its lease moved")
        wait_until(lambda: metric(admins[zombie], "dylive_rooms") == 0, 10, "the zombie giving the room up")
        check_eq(r("GET", "dylive:{%s}:lease" % LIVE), token, "lease untouched by the zombie")
        check_eq(status(r, LIVE)["worker"], other, "status still names the new owner")
        wait_until(lambda: status(r, LIVE).get("state") == "ended", 60, "state ended")
        ids = stream_ids(r, LIVE)
        check_eq(len(ids), len(set(ids)), "no duplicates")
        check_eq(status(r, LIVE)["worker"], other, "the zombie never wrote the status again")
        fenced = metric(admins[zombie], "dylive_fenced_writes_total")
        print("zombie: fenced writes %s, leases lost %s" % (fenced, metric(admins[zombie], "dylive_leases_lost_total")))


def test_capacity_and_backlog():
    with Env("capacity") as env:
        r = env.start_redis()
        rooms = [str(9100 + i) for i in range(7)]
        env.start_sim(rooms)
        start_pool(env, 3, "--max-rooms", "2")
        r("LPUSH", "dylive:assign", *rooms)
        wait_until(lambda: sum(status(r, x).get("state") == "live" for x in rooms) == 6, 20, "6 rooms live")
        check_eq(r("LLEN", "dylive:assign"), 1, "the 7th waits in the backlog")
        waiting = r("LRANGE", "dylive:assign", 0, -1)[0]
        per_worker = {}
        for x in rooms:
            st = status(r, x)
            if st.get("state") == "live":
                per_worker[st["worker"]] = per_worker.get(st["worker"], 0) + 1
        check_eq(sorted(per_worker.values()), [2, 2, 2], "two rooms per worker")
        victim = next(x for x in rooms if x != waiting and status(r, x).get("state") == "live")
        subprocess.run([os.path.join(BUILD, "dylivectl"), "--redis", "redis://127.0.0.1:%d/0" % env.redis_port,
                        "unassign", victim], check=True, stdout=subprocess.DEVNULL)
        wait_until(lambda: status(r, victim).get("state") == "stopped", 5, "unassigned room stopped")
        wait_until(lambda: status(r, waiting).get("state") == "live", 10, "the 7th room starting")
        check_eq(r("LLEN", "dylive:assign"), 0, "backlog empty")
        check_eq(r("EXISTS", "dylive:{%s}:lease" % victim), 0, "lease of the stopped room released")


def test_assign_twice_one_connection():
    with Env("twice") as env:
        r = env.start_redis()
        env.start_sim([LIVE])
        start_pool(env, 2)
        r("LPUSH", "dylive:assign", LIVE, LIVE, "https://live.douyin.com/%s" % LIVE)
        wait_until(lambda: status(r, LIVE).get("state") == "live", 15, "live")
        wait_until(lambda: r("LLEN", "dylive:assign") == 0, 10, "every assignment taken")
        owner = status(r, LIVE)["worker"]
        for w in ("w0", "w1"):
            wait_until(lambda: r("LLEN", "dylive:claims:%s:{dylive:assign}" % w) == (1 if w == owner else 0), 10,
                       "claims of %s" % w)
        check_eq(env.sim_stats(LIVE)["connections"], 1, "one connection for three assignments")


def test_watch_ended_recaptures():
    """--watch-ended: an off-air room is kept and checked; when the anchor goes live it is captured."""
    with Env("watch") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "30", "--seed", "17")
        env.start_sim(["7001,status=4", "%s:%s" % (LIVE, frames)])
        env.worker("--watch-ended", "1")
        r("LPUSH", "dylive:assign", "7001", LIVE)
        wait_until(lambda: "checking again" in status(r, "7001").get("error", ""), 10, "off-air room watched")
        check_eq(status(r, "7001")["state"], "ended", "state while off the air")
        check_eq(env.sim_stats("7001")["connections"], 0, "no WebSocket while off the air")
        env.sim_post("/_sim/status?live_id=7001&status=2")
        wait_until(lambda: status(r, "7001").get("state") == "live", 10, "captured once live again")
        # a live that ends (ControlMessage 3) stays claimed and leased while watched
        wait_until(lambda: status(r, LIVE).get("state") == "ended", 30, "fixture room ended")
        env.sim_post("/_sim/status?live_id=%s&status=4" % LIVE)
        check(r("EXISTS", "dylive:{%s}:lease" % LIVE) == 1, "a watched room keeps its lease")
        ids = [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]
        check_eq(ids, man["msg_ids"], "the ended room's events, once")
        subprocess.run([os.path.join(BUILD, "dylivectl"), "--redis", "redis://127.0.0.1:%d/0" % env.redis_port,
                        "unassign", LIVE], check=True, stdout=subprocess.DEVNULL)
        wait_until(lambda: status(r, LIVE).get("state") == "stopped", 5, "a watched room can be unassigned")


def test_free_port_never_repeats():
    """The harness's ports: two workers of one test never share an admin port (a repeat made one
    exit on 'Address already in use' and test_zombie_is_fenced wait for it in vain)."""
    ports = [free_port() for _ in range(1000)]
    check_eq(len(set(ports)), len(ports), "distinct ports")


if __name__ == "__main__":
    run()
