"""Edges of the write path found by a review, each reproduced against a real worker (and each
failing on the code before its fix): the exit of a worker whose drain times out with writes still
in flight, a room key of the wrong type (one P:rooms error entry), and the outbox's bound while
Redis refuses writes (frames are taken only while the write path can hold them).

Real redis-server, the simulator and real worker processes (harness.py). Run the first one in the
sanitizer build: a use-after-free there is an ASan report and a non-zero exit."""
import os
import signal
import time

from harness import (Env, check, check_eq, default_room_id, free_port, metrics, run, spool_files, wait_until)

LIVE = "777000111"


def status(r, live_id=LIVE):
    return r.hgetall("dylive:{%s}:status" % live_id)


def no_sanitizer_report(text, who):
    for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        check(mark not in text, "%s: sanitizer report (%s): %s", who, mark, text[text.find(mark) - 200:][:3000])


def test_drain_timeout_with_writes_in_flight():
    """SIGTERM while Redis is frozen (SIGSTOP): the drain deadline (8 s) passes before the command
    timeout (10 s), so writes are still in flight at exit. The worker freed the outbox (and those
    commands) before closing the Redis connections, whose pending callbacks then wrote into the
    freed commands: a use-after-free (ASan). Now it exits cleanly, spools every pending write, and
    a worker started on the same --spool-dir replays them: the stream is a prefix of the room's
    msg_ids, in order, each once. Redis is killed while frozen and restarted from its AOF, so what
    sat unread in its socket is never applied: those events reach the stream only by the replay."""
    aof = ["--appendonly", "yes", "--appendfsync", "always"]
    with Env("edge-freeze") as env:
        r = env.start_redis(aof)
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "6000", "--seed", "31", "--no-end")
        env.start_sim(["%s:%s,fps=200" % (LIVE, frames)])
        d = os.path.join(env.tmp, "spool")
        os.makedirs(d)
        a1 = free_port()
        w1 = env.worker("--spool-dir", d, worker_id="first", admin="127.0.0.1:%d" % a1)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "live" and int(status(r).get("events", "0")) >= 200, 30,
                   "the room live, events flowing")
        os.kill(env.redis_proc.pid, signal.SIGSTOP)
        try:
            # writes sent to the frozen server and not answered; SIGTERM well within the command timeout
            wait_until(lambda: ((metrics(a1) or {}).get("dylive_redis_pending", 0)) >= 5, 5, "writes in flight")
            t0 = time.monotonic()
            w1.send_signal(signal.SIGTERM)
            rc = w1.wait(timeout=15)
            took = time.monotonic() - t0
        finally:
            env.kill_redis()
        r.close()
        r = env.restart_redis()  # from its AOF
        text = env.log("worker0.log")
        no_sanitizer_report(text, "the first worker")
        check_eq(rc, 0, "exit status of the worker whose drain timed out")
        check(took < 10, "exited within the drain deadline (%.1f s)", took)
        check("drain_timeout" in text and "spool_kept" in text, "drain timed out and the writes were kept: %r",
              text[-3000:])
        check_eq(len(spool_files(d)), 1, "the stopped worker's spool is on disk")
        # nobody takes the room again: the stream then holds exactly what the first worker read
        r("DEL", "dylive:assign", "dylive:claims:first:{dylive:assign}")
        a2 = free_port()
        env.worker("--spool-dir", d, worker_id="second", admin="127.0.0.1:%d" % a2)
        wait_until(lambda: not [p for p in spool_files(d) if "/first." in p], 30, "the spool replayed and removed")
        wait_until(lambda: ((metrics(a2) or {}).get("dylive_redis_pending", 1)) == 0, 20, "replay writes done")
        entries = r.xrange_all("dylive:{%s}:events" % LIVE)
        ids = [f["msg_id"] for _, f in entries]
        replayed = sum(1 for _, f in entries if f.get("replayed") == "1")
        expected = man["msg_ids"]
        print("stream %d entries, %d of them replayed from the spool; exit %.1f s after SIGTERM" %
              (len(ids), replayed, took), flush=True)
        check_eq(len(ids), len(set(ids)), "every msg_id once")
        check(replayed > 0, "the writes in flight at exit reached the stream through the spool")
        check_eq(replayed, int((metrics(a2) or {}).get("dylive_orphan_events_total", -1)), "replayed entries counted")
        check_eq(ids, expected[:len(ids)], "the stream: the room's msg_ids in order, none missing before the last")


def test_wrong_type_room_one_error_entry():
    """The events key of the wrong type: the refused write pushed an error entry to P:rooms at once,
    and the room's final status write (which Redis takes: it does not touch the stream) added a
    second one. Now the final status write carries the only entry, sent whatever its outcome."""
    with Env("edge-wrongtype") as env:
        r = env.start_redis()
        frames, _ = env.fixture("a", LIVE, default_room_id(LIVE), "--frames", "60", "--seed", "32")
        env.start_sim(["%s:%s,fps=50" % (LIVE, frames)])
        r("SET", "dylive:{%s}:events" % LIVE, "not a stream")
        admin = free_port()
        env.worker(admin="127.0.0.1:%d" % admin)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "error", 30, "the broken room in error")
        wait_until(lambda: r("EXISTS", "dylive:{%s}:lease" % LIVE) == 0 and
                   (metrics(admin) or {}).get("dylive_redis_pending") == 0, 20, "the room released, writes done")
        entries = [f for _, f in r.xrange_all("dylive:rooms") if f["live_id"] == LIVE]
        errors = [e for e in entries if e["state"] == "error"]
        check_eq(len(errors), 1, "error entries of the room in P:rooms (%r)" % entries)
        check("WRONGTYPE" in errors[0].get("error", ""), "the entry says why: %r", errors[0])
        check_eq(status(r).get("state"), "error", "the status hash says error")


if __name__ == "__main__":
    run()
