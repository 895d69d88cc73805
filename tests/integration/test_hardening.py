"""The holes a review of the write path found, each reproduced against a real worker (and each
failing on the code before the fix): hostile spool files, a corrupted spool record, a room key of
the wrong type, a crashed worker's spool, dylivectl on a hostile keyspace, a configuration error
that held a room slot, secrets in messages, forged log lines, error rooms that never expired, and
a worker started without Redis. Plus the P:rooms lifecycle stream."""
import os
import signal
import struct
import subprocess
import time

from harness import (BUILD, Env, check, check_eq, default_room_id, free_port, metric, metrics, run, spool_files,
                     wait_until)

LIVE = "888000111"
OTHER = "888000222"


def status(r, live_id=LIVE):
    return r.hgetall("dylive:{%s}:status" % live_id)


def stream(r, live_id=LIVE):
    return r.xrange_all("dylive:{%s}:events" % live_id)


def test_spool_planted_symlink_untouched():
    """A symlink planted where the old worker put its spool (<dir>/<worker>.spool) pointed at a file
    the worker could write: the old worker truncated it. Spools now live in a private 0700 directory
    <dir>/dylive-<uid> (the planted link is never opened; test_spool_planted_private_dir_refused
    covers a link planted in the new place)."""
    with Env("spool-link") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "60", "--seed", "3")
        env.start_sim(["%s:%s" % (LIVE, frames)])
        d = os.path.join(env.tmp, "spool")
        os.makedirs(d)
        victim = os.path.join(env.tmp, "victim.txt")
        with open(victim, "w") as f:
            f.write("precious data")
        os.symlink(victim, os.path.join(d, "wlink.spool"))
        env.worker("--spool-dir", d, worker_id="wlink")
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "ended", 30, "room captured and ended")
        with open(victim) as f:
            check_eq(f.read(), "precious data", "the symlink's target is untouched")
        priv = os.path.join(d, "dylive-%d" % os.getuid())
        check_eq(os.stat(priv).st_mode & 0o777, 0o700, "private spool directory")
        mine = [f for f in os.listdir(priv) if f.startswith("wlink.")]
        check_eq(len(mine), 1, "the worker's own spool file in it: %r" % os.listdir(priv))
        check_eq(os.stat(os.path.join(priv, mine[0])).st_mode & 0o777, 0o600, "spool file mode")


def test_spool_planted_private_dir_refused():
    """A local user who plants <dir>/dylive-<uid> (a link to a directory of theirs, or a directory
    open to all) before the worker starts would read every spooled event and could plant records:
    the worker refuses to start, names the path, and writes nothing there."""
    with Env("spool-plant") as env:
        env.start_redis()
        env.start_sim([LIVE])
        d = os.path.join(env.tmp, "spool")
        evil = os.path.join(env.tmp, "evil")
        os.makedirs(d)
        os.makedirs(evil)
        priv = os.path.join(d, "dylive-%d" % os.getuid())
        os.symlink(evil, priv)
        w = env.worker("--spool-dir", d, worker_id="wplant")
        check_eq(w.wait(timeout=20), 2, "exit status with a planted link")
        check("not a directory" in env.log("worker0.log"), "the reason logged: %r", env.log("worker0.log"))
        check_eq(os.listdir(evil), [], "nothing written through the link")
        os.unlink(priv)
        os.mkdir(priv)
        os.chmod(priv, 0o777)
        w = env.worker("--spool-dir", d, worker_id="wopen")
        check_eq(w.wait(timeout=20), 2, "exit status with a directory open to all")
        check("open to other users" in env.log("worker1.log"), "the reason logged: %r", env.log("worker1.log"))
        check_eq(os.listdir(priv), [], "nothing written in the open directory")


def first_record_length_offset(path):
    with open(path, "rb") as f:
        head = f.read(8)
    # new layout: "DLSPOOL1", then [magic][length][crc]; the old one began with a big-endian length
    return 12 if head == b"DLSPOOL1" else 0


def spooling_room(env, seed, spool_bytes, worker_id=None):
    """A 3000-frame room at 1000 frames/s, one worker with a 1 MiB memory tier and a spool, and
    Redis refusing every write (maxmemory 1) until the spool holds spool_bytes.
    Returns (redis, manifest, spool dir, admin port, worker)."""
    r = env.start_redis(["--maxmemory-policy", "noeviction"])
    frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "3000", "--seed", str(seed))
    env.start_sim(["%s:%s,fps=1000" % (LIVE, frames)])
    d = os.path.join(env.tmp, "spool")
    os.makedirs(d)
    admin = free_port()
    w = env.worker("--spool-dir", d, "--buffer-max-bytes", "1048576", worker_id=worker_id, admin="127.0.0.1:%d" % admin)
    r("LPUSH", "dylive:assign", LIVE)
    wait_until(lambda: int(status(r).get("events", "0")) >= 200, 30, "events flowing")
    r("CONFIG", "SET", "maxmemory", "1")  # every write refused: memory fills, then the spool
    wait_until(lambda: (metric(admin, "dylive_spool_bytes") or 0) > spool_bytes, 30, "writes in the spool")
    return r, man, d, admin, w


def test_corrupt_spool_record_is_skipped():
    """One corrupted record length made the old control thread spin at 100 % for ever (/metrics dead,
    SIGTERM ignored). Now the record is counted and skipped, the gap it leaves is repaired, the rest
    is written once, and the worker answers and drains."""
    with Env("spool-corrupt") as env:
        r, man, d, admin, w = spooling_room(env, 5, 300000)
        path = spool_files(d)[0]
        with open(path, "r+b") as f:
            f.seek(first_record_length_offset(path))
            f.write(struct.pack("<I", 0x7FFFFFF0) if first_record_length_offset(path) else struct.pack(">I", 0x7FFFFFF0))
        r("CONFIG", "SET", "maxmemory", "0")
        wait_until(lambda: (metrics(admin) or {}).get("dylive_spool_bad_records_total", 0) >= 1, 20,
                   "the bad record counted (and /metrics answering)")
        wait_until(lambda: status(r).get("state") == "ended", 60, "the room ends")
        wait_until(lambda: metric(admin, "dylive_redis_pending") == 0, 20, "everything written")
        ids = [f["msg_id"] for _, f in stream(r)]
        check_eq(len(ids), len(set(ids)), "no duplicates")
        lost = len(man["msg_ids"]) - len(ids)
        check(0 < lost <= 512, "only the events of the bad record are missing (%d)", lost)
        check((metric(admin, "dylive_write_gaps_total") or 0) >= 1, "the gap after the lost write was repaired")
        check(set(ids) <= set(man["msg_ids"]), "nothing invented")
        w.send_signal(signal.SIGTERM)
        check_eq(w.wait(timeout=10), 0, "the worker drains and exits 0")


def test_wrong_type_key_errors_only_that_room():
    """A room key of the wrong type: the old write script committed its sequence before failing, so
    the retry was "applied before" and every event was silently lost (the room even ended 'ended').
    Now the room shows error with the reason, the failure is counted and the other room is exact."""
    with Env("wrongtype") as env:
        r = env.start_redis()
        fa, _ = env.fixture("a", LIVE, default_room_id(LIVE), "--frames", "60", "--seed", "7")
        fb, manb = env.fixture("b", OTHER, default_room_id(OTHER), "--frames", "60", "--seed", "8")
        env.start_sim(["%s:%s,fps=50" % (LIVE, fa), "%s:%s,fps=50" % (OTHER, fb)])
        r("SET", "dylive:{%s}:events" % LIVE, "not a stream")
        admin = free_port()
        env.worker(admin="127.0.0.1:%d" % admin)
        r("LPUSH", "dylive:assign", LIVE, OTHER)
        wait_until(lambda: status(r).get("state") == "error", 30, "the broken room in error")
        check("WRONGTYPE" in status(r).get("error", ""), "the reason says what is wrong: %r", status(r).get("error"))
        check((metric(admin, "dylive_fatal_writes_total") or 0) >= 1, "the failure is counted")
        wait_until(lambda: status(r, OTHER).get("state") == "ended", 30, "the other room ends normally")
        check_eq([f["msg_id"] for _, f in stream(r, OTHER)], manb["msg_ids"], "the other room is exact")
        entries = [f for _, f in r.xrange_all("dylive:rooms")]
        check(any(e["live_id"] == LIVE and e["state"] == "error" and "WRONGTYPE" in e.get("error", "") for e in entries),
              "P:rooms tells consumers: %r", entries)
        check_eq(r("EXISTS", "dylive:{%s}:lease" % LIVE), 0, "the broken room is not held")


def test_crashed_worker_spool_replayed():
    """A worker killed with writes in its spool: the old successor never looked at it (the file was
    per process and truncated). A worker started on the same --spool-dir replays it: each event
    once (dedupe by msg_id against the stream's tail), marked replayed=1, and removes the file."""
    with Env("spool-orphan") as env:
        r, man, d, a1, w1 = spooling_room(env, 9, 200000, worker_id="first")
        w1.send_signal(signal.SIGKILL)
        w1.wait(timeout=10)
        check_eq(len(spool_files(d)), 1, "the dead worker's spool is on disk")
        r("CONFIG", "SET", "maxmemory", "0")
        a2 = free_port()
        env.worker("--spool-dir", d, worker_id="second", admin="127.0.0.1:%d" % a2)
        wait_until(lambda: (metric(a2, "dylive_orphan_events_total") or 0) > 0, 30, "the orphan replayed")
        wait_until(lambda: len([p for p in spool_files(d) if "/first." in p]) == 0, 30, "the orphan removed")
        wait_until(lambda: status(r).get("state") == "ended" and status(r).get("worker") == "second", 60,
                   "the room taken over and ended")
        entries = stream(r)
        ids = [f["msg_id"] for _, f in entries]
        check_eq(len(ids), len(set(ids)), "every event once across the replay and the takeover")
        replayed = sum(1 for _, f in entries if f.get("replayed") == "1")
        check(replayed > 0, "replayed entries are marked")
        check_eq(replayed, int(metric(a2, "dylive_orphan_events_total")), "the metric counts them")


def test_dylivectl_read_only_and_safe():
    """dylivectl workers removed dead workers from the registry without requeueing their claims (their
    rooms were never captured again); rooms printed escape sequences and stopped at a key of the
    wrong type."""
    with Env("ctl-hostile") as env:
        r = env.start_redis()
        r("ZADD", "dylive:workers", 1, "ghost")
        r("RPUSH", "dylive:claims:ghost:{dylive:assign}", "123")
        r("HSET", "dylive:{1}:status", "state", "live\x1b[31m", "worker", "w\x1b]0;owned\x07", "events", "5")
        r("SET", "dylive:{2}:status", "a string, not a hash")
        r("HSET", "dylive:{3}:status", "state", "ended", "worker", "w3\u2028FAKE ROW")
        ctl = [os.path.join(BUILD, "dylivectl"), "--redis", "redis://127.0.0.1:%d/0" % env.redis_port]
        p = subprocess.run(ctl + ["workers"], capture_output=True, text=True, timeout=20)
        check_eq(p.returncode, 0, "workers exit status")
        check("ghost" in p.stdout and "dead" in p.stdout, "the dead worker is shown as dead: %r", p.stdout)
        check(r("ZSCORE", "dylive:workers", "ghost") is not None, "and left for the live workers to requeue")
        check_eq(r("LLEN", "dylive:claims:ghost:{dylive:assign}"), 1, "its claims untouched")
        p = subprocess.run(ctl + ["rooms"], capture_output=True, timeout=20)
        out = p.stdout.decode("utf-8", "replace")
        check_eq(p.returncode, 0, "rooms exit status (stderr %r)" % p.stderr)
        check("\x1b" not in out and "\x07" not in out and "\u2028" not in out, "no control characters: %r", out)
        rows = [l for l in out.split("\n") if l.startswith(("1 ", "3 "))]
        check_eq(len(rows), 2, "both readable rooms listed: %r" % out)


def test_unknown_cookie_profile_is_final():
    """An unknown cookie profile was retried for ever and held a room slot: now it is final, like a
    missing room (state error, released), and the slot goes to the next assignment."""
    with Env("profile") as env:
        r = env.start_redis()
        frames, _ = env.fixture("room", OTHER, default_room_id(OTHER), "--frames", "40", "--seed", "11")
        env.start_sim(["%s" % LIVE, "%s:%s" % (OTHER, frames)])
        cookies = os.path.join(env.tmp, "cookies")
        os.makedirs(cookies)
        env.worker("--cookie-dir", cookies, "--max-rooms", "1")
        r("RPUSH", "dylive:assign", OTHER, '{"live_id":"%s","cookie":"nope"}' % LIVE)  # LIVE is claimed first
        wait_until(lambda: status(r).get("state") == "error", 20, "the room in error")
        check("cookie profile" in status(r).get("error", ""), "the reason: %r", status(r).get("error"))
        wait_until(lambda: status(r, OTHER).get("state") in ("live", "ended"), 20, "the slot taken by the next room")
        check_eq(r("EXISTS", "dylive:{%s}:lease" % LIVE), 0, "released")


def test_secrets_never_logged():
    """Passwords in Redis URLs and proxy URLs appeared in error messages and logs."""
    with Env("secrets") as env:
        p = subprocess.run([os.path.join(BUILD, "dylive-connector"), "--redis",
                            "redis://u:S3cretPW@127.0.0.1:notaport/0"], capture_output=True, text=True, timeout=20)
        check_eq(p.returncode, 2, "a bad URL exits 2")
        check("S3cretPW" not in p.stderr + p.stdout and "--redis" in p.stderr, "no password in: %r", p.stderr)
        r = env.start_redis(["--requirepass", "right"])
        env.start_sim([LIVE])
        w = env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis",
                       "redis://:WrongS3cret@127.0.0.1:%d/0" % env.redis_port,
                       "--douyin-http", "http://127.0.0.1:%d" % env.sim_port,
                       "--douyin-ws", "ws://127.0.0.1:%d" % env.sim_port, "--admin", "off",
                       "--proxy", "http://user:Pr0xyS3cret@127.0.0.1:1"], "w.log")
        wait_until(lambda: "AUTH" in env.log("w.log"), 20, "the AUTH failure logged")
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=10)
        text = env.log("w.log")
        check("WrongS3cret" not in text and "Pr0xyS3cret" not in text, "no secret in the log: %r", text[-2000:])
        r.close()


def test_text_logs_cannot_be_forged():
    """Text logs wrote strangers' bytes raw: a newline in a room title (Douyin's text, logged when
    the room resolves) forged a log line. Control characters are now written as \\xNN."""
    forged = "2026-01-01T00:00:00.000Z error FORGED line"
    with Env("forge") as env:
        r = env.start_redis()
        env.start_sim([LIVE + ",title=pwned\n" + forged])
        w = env.worker("--log-format", "text")
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: "room_resolved" in env.log("worker0.log"), 30, "the room resolved and logged")
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=10)
        text = env.log("worker0.log")
        lines = text.splitlines()
        check(not any(l.startswith(forged) for l in lines), "a forged line: %r", lines)
        check("pwned\\x0a" + forged in text, "the title logged with its newline escaped: %r", text[-2000:])


def test_error_and_stopped_room_keys_expire():
    """Keys of rooms that ended in error never expired; now error, ended and stopped rooms all keep
    their stream and status for --ended-ttl seconds, and a room captured again keeps them for good."""
    with Env("expire") as env:
        r = env.start_redis()
        frames, _ = env.fixture("room", OTHER, default_room_id(OTHER), "--frames", "20", "--seed", "12", "--no-end")
        env.start_sim(["%s:%s" % (OTHER, frames)])  # LIVE is unknown to the simulator: 404
        env.worker("--ended-ttl", "300")
        r("LPUSH", "dylive:assign", LIVE, OTHER)
        wait_until(lambda: status(r).get("state") == "error", 20, "the missing room in error")
        wait_until(lambda: int(status(r, OTHER).get("events", "0")) >= 20, 20, "the other room live, events in")
        r("LREM", "dylive:assign", 0, OTHER)  # unassign (README: the commands of dylivectl unassign)
        r("HSET", "dylive:{%s}:status" % OTHER, "desired", "stopped")
        wait_until(lambda: status(r, OTHER).get("state") == "stopped", 20, "the other room stopped")
        for key in ("dylive:{%s}:status" % LIVE, "dylive:{%s}:status" % OTHER, "dylive:{%s}:events" % OTHER):
            ttl = r("TTL", key)
            check(0 < ttl <= 300, "%s expires (TTL %r)", key, ttl)
        r("HDEL", "dylive:{%s}:status" % OTHER, "desired")
        r("LPUSH", "dylive:assign", OTHER)  # captured again: the expiry is cancelled
        wait_until(lambda: status(r, OTHER).get("state") == "live", 20, "captured again")
        check_eq((r("TTL", "dylive:{%s}:events" % OTHER), r("TTL", "dylive:{%s}:status" % OTHER)), (-1, -1),
                 "no expiry while captured")


def test_no_redis_quiet_and_quick_exit():
    """Started without Redis the worker logged a failure every second for ever, and Ctrl-C waited the
    whole drain deadline and logged an error although it held nothing. Now: a growing pause, one
    line (then a summary a minute), and Ctrl-C exits at once, cleanly."""
    with Env("noredis") as env:
        w = env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", "redis://127.0.0.1:%d/0" % free_port(),
                       "--admin", "off", "--log-format", "json"], "w.log")
        wait_until(lambda: "redis_down" in env.log("w.log"), 10, "the first failure logged")
        time.sleep(4)  # a window in which nothing should happen: the absence of log lines is the point
        lines = [l for l in env.log("w.log").splitlines() if "redis" in l and '"level":"warn"' in l]
        check(len(lines) <= 2, "at most a line or two in five seconds, not one a second: %r", lines)
        t1 = time.monotonic()
        w.send_signal(signal.SIGINT)
        check_eq(w.wait(timeout=5), 0, "exit status")
        took = time.monotonic() - t1
        check(took < 1.5, "Ctrl-C took %.2f s", took)
        check("drain_timeout" not in env.log("w.log"), "no drain error when nothing was held")


def test_rooms_lifecycle_stream():
    """P:rooms (CONTRACT §3): one entry per room state change, so consumers find rooms without
    scanning: starting, live, then ended, with the worker and the time."""
    with Env("lifecycle") as env:
        r = env.start_redis()
        frames, _ = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "30", "--seed", "13")
        env.start_sim(["%s:%s" % (LIVE, frames)])
        env.worker(worker_id="lc")
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "ended", 20, "room ended")
        wait_until(lambda: any(f["state"] == "ended" for _, f in r.xrange_all("dylive:rooms")), 10, "ended in P:rooms")
        entries = [f for _, f in r.xrange_all("dylive:rooms") if f["live_id"] == LIVE]
        states = [e["state"] for e in entries]
        check(states[0] == "starting" and "live" in states and states[-1] == "ended", "states in order: %r", states)
        check(all(e["worker"] == "lc" and e["ts_ms"].isdigit() for e in entries), "worker and time: %r", entries)


if __name__ == "__main__":
    run()
