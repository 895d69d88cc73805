"""Redis misbehaving under a live room: killed and restarted from its AOF, paused, asleep, out of
memory, and down long enough to fill the worker's outbox. Every case ends with the exact stream:
the fixture's msg_ids, in order, once (nothing lost, nothing doubled).

Real redis-server, the simulator and a real worker process, as the other integration tests."""
import os
import threading
import time

from harness import (Env, Redis, check, check_eq, command_stats, default_room_id, encode_command, free_port, metrics,
                     run, wait_until)

LIVE = "555000333"
AOF = ["--appendonly", "yes", "--appendfsync", "always"]


def status(r):
    return r.hgetall("dylive:{%s}:status" % LIVE)


def stream_ids(r):
    return [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]


class Sampler(threading.Thread):
    """Polls the worker's /metrics every 50 ms and keeps the last and the largest value of each sample,
    so that waits can key on what the worker reports even while Redis itself does not answer."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.cur = {}
        self.peak = {}

    def run(self):
        while not self.stop.is_set():
            m = metrics(self.port)
            if m:
                with self.lock:
                    self.cur = m
                    for k, v in m.items():
                        if v > self.peak.get(k, float("-inf")):
                            self.peak[k] = v
            self.stop.wait(0.05)

    def last(self, name):
        with self.lock:
            return self.cur.get("dylive_" + name, 0)

    def max(self, name):
        with self.lock:
            return self.peak.get("dylive_" + name, 0)

    def close(self):
        self.stop.set()
        self.join(5)


def start_room(env, r, frames, fps, seed, *worker_args, redis_extra=None):
    """Fixture room of `frames` frames on the simulator at `fps`; one worker with /metrics; assigned."""
    room_id = default_room_id(LIVE)
    path, man = env.fixture("room", LIVE, room_id, "--frames", str(frames), "--seed", str(seed))
    env.start_sim(["%s:%s,fps=%d" % (LIVE, path, fps)])
    admin = free_port()
    w = env.worker(*worker_args, admin="127.0.0.1:%d" % admin)
    s = Sampler(admin)
    s.start()
    r("LPUSH", "dylive:assign", LIVE)
    wait_until(lambda: status(r).get("state") == "live", 20, "state live")
    return w, s, man


def finish_and_check(env, r, w, s, man, label, outage_s, require_ws_single=True):
    """Waits for the end of the room and a drained outbox, prints the figures, then asserts the stream."""
    wait_until(lambda: status(r).get("state") == "ended", 60, "state ended")
    wait_until(lambda: s.last("redis_pending") == 0 and s.last("queue_depth") == 0, 20, "outbox and queue empty")
    ids = stream_ids(r)
    expected = man["msg_ids"]
    dup = len(ids) - len(set(ids))
    st = status(r)
    sim = env.sim_stats(LIVE)
    print("%s: outage %.2f s; events expected %d, written %d, duplicated %d, missing %d; status events %s "
          "duplicates %s; worker: written_total %d dup_total %d redis_errors %d reconnects %d pending_peak %d "
          "queue_peak %d ingest_pauses %d; ws connections %d" %
          (label, outage_s, len(expected), len(ids), dup, len(set(expected) - set(ids)), st.get("events"),
           st.get("duplicates", "0"), s.last("events_written_total"), s.last("events_duplicate_total"),
           s.last("redis_errors_total"), s.last("redis_reconnects_total"), s.max("redis_pending"),
           s.max("queue_depth"), s.last("ingest_pauses_total"), sim["connections"]), flush=True)
    check(w.poll() is None, "worker exited (status %r) during the outage", w.poll())
    compare_stream(ids, expected)
    check_eq(int(st.get("events", "-1")), len(expected), "status events (entries written)")
    check_eq(int(s.last("events_written_total")), len(expected),
             "dylive_events_written_total (every type) counts every event, spooled ones too")
    if require_ws_single:
        check_eq(sim["connections"], 1, "the room's WebSocket stayed connected through the outage")


def compare_stream(ids, expected):
    """Exact: the stream's msg_ids are the manifest's, in order, once. Says precisely how it differs."""
    if ids == expected:
        return
    seen, dups = set(), []
    for i in ids:
        if i in seen:
            dups.append(i)
        seen.add(i)
    exp = set(expected)
    missing = [i for i in expected if i not in seen]
    extra = [i for i in seen if i not in exp]
    first = next((k for k in range(min(len(ids), len(expected))) if ids[k] != expected[k]), min(len(ids), len(expected)))
    where = {m: k for k, m in enumerate(ids)}
    moved = ""
    if first < len(expected) and expected[first] in where:
        # a block written out of order: how long it is and where it landed
        k, n = where[expected[first]], 0
        while first + n < len(expected) and k + n < len(ids) and ids[k + n] == expected[first + n]:
            n += 1
        moved = "; expected[%d:%d] (%d entries) sits at stream[%d:%d]" % (first, first + n, n, k, k + n)
    raise AssertionError("stream not exact: expected %d, written %d, duplicated %d, missing %d (first %r), "
                         "unexpected %d; first divergence at index %d: stream %r vs expected %r%s" %
                         (len(expected), len(ids), len(dups), len(missing), missing[:10], len(extra), first,
                          ids[first:first + 3], expected[first:first + 3], moved))


def test_redis_kill9_aof_restart():
    """SIGKILL redis-server mid-room at a steady rate, keep it down ~3.5 s, restart it from its AOF on
    the same port: what was written survives, the worker buffers and re-sends, the stream is exact."""
    with Env("outage-kill") as env:
        r = env.start_redis(AOF)
        w, s, man = start_room(env, r, 2400, 200, 21)
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 400, 30, "events flowing")
            before = stream_ids(r)
            t_down = env.kill_redis()
            r.close()
            # down until the outbox holds ~3.5 s of frames at 200 frames/s
            wait_until(lambda: s.last("redis_pending") >= 700, 20, "the outbox filling while Redis is down")
            check(w.poll() is None, "worker exited while Redis was down")
            r = env.restart_redis()
            outage = time.monotonic() - t_down
            after = stream_ids(r)
            check(len(after) >= len(before), "AOF lost entries: %d before the kill, %d after", len(before), len(after))
            check_eq(after[:len(before)], before, "entries written before the kill, as reloaded from the AOF")
            check(s.max("redis_pending") >= 700, "pending peak %r", s.max("redis_pending"))
            finish_and_check(env, r, w, s, man, "kill -9 + AOF restart", outage)
            check(s.last("redis_reconnects_total") >= 1, "the lost connection was counted")
        finally:
            s.close()


def test_redis_client_pause_write():
    """CLIENT PAUSE 3000 WRITE mid-room: writes wait, nothing is lost or doubled."""
    with Env("outage-pause") as env:
        r = env.start_redis()
        w, s, man = start_room(env, r, 1600, 200, 22)
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 300, 30, "events flowing")
            t0 = time.monotonic()
            check_eq(r("CLIENT", "PAUSE", 3000, "WRITE"), "OK", "CLIENT PAUSE")
            wait_until(lambda: s.last("redis_pending") >= 200, 10, "writes held by the pause")
            wait_until(lambda: s.last("redis_pending") < 50 and time.monotonic() - t0 > 3, 15,
                       "writes flowing again after the pause")
            outage = time.monotonic() - t0
            finish_and_check(env, r, w, s, man, "CLIENT PAUSE 3000 WRITE", outage)
            check_eq(s.last("redis_errors_total"), 0, "redis errors during a write pause")
        finally:
            s.close()


def test_redis_debug_sleep():
    """DEBUG SLEEP 2 mid-room (the whole server stalls): nothing is lost or doubled."""
    with Env("outage-sleep") as env:
        r = env.start_redis(["--enable-debug-command", "yes"])
        w, s, man = start_room(env, r, 1600, 200, 23)
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 300, 30, "events flowing")
            sleeper = Redis(env.redis_port)
            t0 = time.monotonic()
            sleeper.sock.sendall(encode_command("DEBUG", "SLEEP", 2))
            wait_until(lambda: s.last("redis_pending") >= 150, 10, "writes held while Redis sleeps")
            check_eq(sleeper._reply(), "OK", "DEBUG SLEEP")
            slept = time.monotonic() - t0
            sleeper.close()
            check(slept >= 1.9, "DEBUG SLEEP returned after %.2f s", slept)
            finish_and_check(env, r, w, s, man, "DEBUG SLEEP 2", slept)
            check_eq(s.last("redis_errors_total"), 0, "redis errors during DEBUG SLEEP")
        finally:
            s.close()


def test_redis_oom_then_recovers():
    """maxmemory 1 + noeviction mid-room: the room's writes get OOM errors (counted); raised again,
    everything buffered is written, the stream is exact."""
    with Env("outage-oom") as env:
        r = env.start_redis(["--maxmemory-policy", "noeviction"])
        w, s, man = start_room(env, r, 1600, 200, 24)
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 300, 30, "events flowing")
            t0 = time.monotonic()
            check_eq(r("CONFIG", "SET", "maxmemory", "1"), "OK", "CONFIG SET maxmemory 1")
            # a few rounds of the worker's paced retries (a probe with the oldest write) under OOM
            wait_until(lambda: s.last("redis_errors_total") >= 3 and s.last("redis_pending") >= 300, 20,
                       "OOM errors and writes held")
            errors_in_oom = s.last("redis_errors_total")
            oom_s = time.monotonic() - t0
            check_eq(r("CONFIG", "SET", "maxmemory", "0"), "OK", "CONFIG SET maxmemory 0")
            print("OOM for %.2f s: %d redis errors counted by the worker (%.0f/s)" %
                  (oom_s, errors_in_oom, errors_in_oom / oom_s), flush=True)
            check(errors_in_oom > 0, "OOM errors counted: dylive_redis_errors_total %r", errors_in_oom)
            finish_and_check(env, r, w, s, man, "maxmemory OOM", oom_s)
            # an out-of-memory Redis gets a retry per period, not a tight loop of refused commands
            check(errors_in_oom / oom_s < 100, "the worker hammered an OOM Redis: %d errors in %.2f s (%.0f/s)",
                  errors_in_oom, oom_s, errors_in_oom / oom_s)
        finally:
            s.close()


def evalsha_failures(r):
    """EVALSHA calls Redis refused: before running (rejected_calls: OOM for a script with flags) or
    while running (failed_calls)."""
    f = command_stats(r, "evalsha")
    return int(f.get("failed_calls", 0)) + int(f.get("rejected_calls", 0))


def test_redis_oom_lifted_mid_resend():
    """OOM ends while the worker is re-sending its outbox: the first re-sent batch is refused, the
    ones pipelined behind it are accepted. The stream must still be exact and in order."""
    with Env("outage-oom-resend") as env:
        r = env.start_redis(["--maxmemory-policy", "noeviction"])
        w, s, man = start_room(env, r, 2400, 400, 26)
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 300, 30, "events flowing")
            t0 = time.monotonic()
            check_eq(r("CONFIG", "SET", "maxmemory", "1"), "OK", "CONFIG SET maxmemory 1")
            wait_until(lambda: s.last("redis_errors_total") >= 2 and s.last("redis_pending") >= 600, 20,
                       "OOM errors and writes held")
            base = evalsha_failures(r)
            # the next re-send starts with a refused batch: lift the limit at once, mid-pipeline
            wait_until(lambda: evalsha_failures(r) > base, 5, "the next re-send of the outbox", interval=0)
            check_eq(r("CONFIG", "SET", "maxmemory", "0"), "OK", "CONFIG SET maxmemory 0")
            oom_s = time.monotonic() - t0
            finish_and_check(env, r, w, s, man, "maxmemory lifted mid-resend", oom_s)
        finally:
            s.close()


def test_redis_long_outage_backpressure():
    """Spool disabled: Redis down (SIGKILL) long enough at 1000 frames/s that the outbox reaches its
    bound: socket reads pause instead of memory growing; after the AOF restart the stream is exact."""
    with Env("outage-long") as env:
        r = env.start_redis(AOF)
        w, s, man = start_room(env, r, 9000, 1000, 25, "--queue-max", "512", "--spool-max-bytes", "0",
                               "--buffer-max-bytes", "1048576")
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 1000, 30, "events flowing")
            before = len(stream_ids(r))
            t_down = env.kill_redis()
            r.close()
            # the outbox's bound (4096 commands or 1 MiB, whichever comes first; with several frames per
            # room write the bytes come first) stops the control thread from taking frames, and then the
            # ingest queue's high-water mark pauses the sockets
            wait_until(lambda: s.last("ingest_paused") == 1, 30, "socket reads paused at the outbox's bound")
            paused_pos = env.sim_stats(LIVE)["position"]
            # stay down, paused, for 3 s more (the length of the outage is the point here)
            t_p = time.monotonic()
            wait_until(lambda: time.monotonic() - t_p >= 3, 5, "3 s of paused reads", interval=0.1)
            check_eq(s.last("ingest_paused"), 1, "reads still paused while Redis is down")
            held_pos = env.sim_stats(LIVE)["position"]
            r = env.restart_redis()
            outage = time.monotonic() - t_down
            check(len(stream_ids(r)) >= before, "AOF kept the %d entries written before the kill", before)
            print("outbox peak %d commands, %d bytes; queue peak %d; sim position %d of %d when reads paused, %d 3 s "
                  "later" % (s.max("redis_pending"), s.max("buffer_bytes"), s.max("queue_depth"), paused_pos,
                             env.sim_stats(LIVE)["total_frames"], held_pos), flush=True)
            finish_and_check(env, r, w, s, man, "long outage (outbox bound)", outage)
            check(s.last("ingest_pauses_total") >= 1, "reads paused: dylive_ingest_pauses_total %r",
                  s.last("ingest_pauses_total"))
            # 4096 commands / 1 MiB: the control thread takes a frame only while the memory tier has room
            # for it, so the tier passes its cap by at most one frame's write (this fixture's frames encode
            # to far less than 128 KiB) and a few status writes
            check(s.max("redis_pending") <= 4096 + 64, "outbox bounded: peak %r", s.max("redis_pending"))
            check(s.max("buffer_bytes") <= (1 << 20) + (128 << 10), "outbox bounded in bytes: peak %r",
                  s.max("buffer_bytes"))
            check(s.max("queue_depth") <= 512, "ingest queue bounded by --queue-max: peak %r", s.max("queue_depth"))
        finally:
            s.close()


def test_ingest_queue_bounded_in_bytes():
    """--queue-max-bytes: with Redis down and the spool off, the frames waiting between the
    WebSocket thread and Redis stop at the byte bound (not at --queue-max frames, set far above it):
    reads pause, memory stays flat, and after Redis returns the stream is exact."""
    with Env("queue-bytes") as env:
        r = env.start_redis(AOF)
        w, s, man = start_room(env, r, 9000, 1000, 25, "--queue-max", "100000", "--queue-max-bytes", "1048576",
                               "--spool-max-bytes", "0", "--buffer-max-bytes", "1048576")
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 1000, 30, "events flowing")
            t_down = env.kill_redis()
            r.close()
            wait_until(lambda: s.last("ingest_paused") == 1, 30, "socket reads paused at the byte bound")
            paused_pos, total = env.sim_stats(LIVE)["position"], env.sim_stats(LIVE)["total_frames"]
            t_p = time.monotonic()
            wait_until(lambda: time.monotonic() - t_p >= 2, 5, "2 s of paused reads", interval=0.1)
            r = env.restart_redis()
            print("queue peak %d frames, %d bytes" % (s.max("queue_depth"), s.max("queue_bytes")), flush=True)
            # the bound is checked after each frame is queued: it passes by one frame at most
            check(s.max("queue_bytes") <= (1 << 20) + (256 << 10), "queue bounded in bytes: peak %r",
                  s.max("queue_bytes"))
            # the pause came from the bytes: far fewer frames were queued than the room had left
            check(paused_pos < total and s.max("queue_depth") < total - paused_pos,
                  "reads paused by the byte bound (%d of %d frames read, queue peak %r)", paused_pos, total,
                  s.max("queue_depth"))
            finish_and_check(env, r, w, s, man, "queue bounded in bytes", time.monotonic() - t_down)
        finally:
            s.close()


def test_redis_outage_spools_to_disk():
    """Memory bound small (1 MiB): past it writes go to the spool file, reads never pause, and
    after the AOF restart the spooled writes are replayed in order: the stream is exact."""
    with Env("outage-spool") as env:
        r = env.start_redis(AOF)
        spool = os.path.join(env.tmp, "spool")
        os.makedirs(spool)
        w, s, man = start_room(env, r, 6000, 1000, 27, "--buffer-max-bytes", "1048576", "--spool-dir", spool)
        try:
            wait_until(lambda: int(status(r).get("events", "0")) >= 1000, 30, "events flowing")
            t_down = env.kill_redis()
            r.close()
            wait_until(lambda: s.last("spool_bytes") > 1 << 20, 30, "writes spooling to disk")
            check_eq(os.listdir(spool), ["dylive-%d" % os.getuid()], "a private directory inside --spool-dir")
            priv = os.path.join(spool, "dylive-%d" % os.getuid())
            check_eq(os.stat(priv).st_mode & 0o777, 0o700, "the private directory is the worker's alone")
            spool_files = os.listdir(priv)
            check_eq(len(spool_files), 1, "one spool file for the worker: %r" % spool_files)
            r = env.restart_redis()
            outage = time.monotonic() - t_down
            print("spool peak %d bytes, buffer peak %d bytes, spooled writes %d" %
                  (s.max("spool_bytes"), s.max("buffer_bytes"), s.last("spooled_total")), flush=True)
            finish_and_check(env, r, w, s, man, "outage through the spool", outage)
            check_eq(s.max("ingest_paused"), 0, "reads never paused: the spool took the writes")
            check(s.max("buffer_bytes") <= (1 << 20) + (4 << 20), "memory bounded: peak %r", s.max("buffer_bytes"))
            check_eq(s.last("spool_bytes"), 0, "spool drained")
            check_eq(s.last("spool_errors_total"), 0, "spool errors")
        finally:
            s.close()


if __name__ == "__main__":
    run()
