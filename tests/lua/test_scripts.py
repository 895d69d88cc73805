"""The write path's Lua scripts (connector/lua/*.lua) against a real redis-server, one by one:
fencing, order, atomicity on a key of the wrong type, release and expiry, requeue, orphan replay.
Return codes are read from connector/lua/dl_lua.h so the test and the C side cannot drift apart."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Env, RespError, check, check_eq  # noqa: E402

LUA_DIR = os.environ.get("DYLIVE_LUA_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "connector", "lua")
HDR = open(os.path.join(LUA_DIR, "dl_lua.h")).read()
CODE = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define DL_LUA_(OK|APPLIED|GAP|FENCED) (\d+)", HDR)}
assert set(CODE) == {"OK", "APPLIED", "GAP", "FENCED"}, CODE

R = "d:{42}:"


def load(r):
    sha = {}
    for name in ("acquire", "room", "renew", "requeue", "orphan"):
        with open(os.path.join(LUA_DIR, name + ".lua")) as f:
            sha[name] = r("SCRIPT", "LOAD", f.read())
    return sha


def acquire(r, sha, worker):
    return r("EVALSHA", sha["acquire"], 4, R + "lease", R + "epoch", R + "status", R + "events", worker, 3500)


def room_args(tok, seq, events=(), pairs=(), force=0, release=0, expire=0, maxlen=1000, minid="", ttl=3500):
    args = [tok, ttl, seq, force, maxlen, minid, release, expire, len(pairs), len(events)] + list(pairs)
    for e in events:
        args += list(e)
    return args


def rooms(r, sha, writes):
    """One room.lua call for several rooms: writes = [(key prefix, room_args(…)), …]."""
    keys, args = [], []
    for prefix, a in writes:
        keys += [prefix + "lease", prefix + "status", prefix + "events"]
        args += a
    return r("EVALSHA", sha["room"], len(keys), *keys, *args)


def room(r, sha, tok, seq, events=(), **kw):
    """One room's write, alone in its call; its error reply raises."""
    got = rooms(r, sha, [(R, room_args(tok, seq, events, **kw))])
    check_eq(len(got), 1, "one reply per room")
    if isinstance(got[0], RespError):
        raise got[0]
    return got[0]


def renew(r, sha, tok):
    """One room's renewal, alone in its call."""
    got = r("EVALSHA", sha["renew"], 2, R + "lease", R + "status", 3500, tok)
    check_eq(len(got), 1, "one reply per room")
    return got[0]


def ev(i):
    return ("chat", str(1000 + i), str(1700000000000 + i), '{"v":1,"n":%d}' % i)


def test_scripts():
    with Env("lua") as env:
        r = env.start_redis()
        sha = load(r)
        # acquire: a token, wseq "<token>|0"
        took = acquire(r, sha, "w1")
        check_eq(took[0], 1, "acquire taken")
        tok = took[1]
        check(re.match(r"^w1 \d+$", tok), "token shape %r", tok)
        check_eq(r("HGET", R + "status", "wseq"), tok + "|0", "wseq after acquire")
        check_eq(acquire(r, sha, "w2"), [0, tok], "held by w1")
        # in order: 1 then 2; 2 again = applied before; 4 = gap; 4 forced = applied
        check_eq(room(r, sha, tok, 1, [ev(1), ev(2)], pairs=["state", "live"]), [CODE["OK"], 2, ""], "seq 1")
        check_eq(room(r, sha, tok, 2, [ev(3)]), [CODE["OK"], 1, ""], "seq 2")
        check_eq(room(r, sha, tok, 2, [ev(3)]), [CODE["APPLIED"], 0], "seq 2 again")
        check_eq(room(r, sha, tok, 4, [ev(5)]), [CODE["GAP"], 0], "seq 4 before 3")
        check_eq(r("XLEN", R + "events"), 3, "gap wrote nothing")
        check_eq(room(r, sha, tok, 4, [ev(5)], force=1), [CODE["OK"], 1, ""], "seq 4 forced")
        st = r.hgetall(R + "status")
        check_eq((st["events"], st["state"], st["wseq"]), ("4", "live", tok + "|4"), "status after writes")
        fields = dict(zip(*[iter(r("XRANGE", R + "events", "-", "+")[0][1])] * 2))
        check_eq(fields, {"type": "chat", "msg_id": "1001", "ts_ms": "1700000000001", "json": '{"v":1,"n":1}'},
                 "entry fields")
        # a write renews the lease
        r("PEXPIRE", R + "lease", 50)
        room(r, sha, tok, 5, [], pairs=["x", "1"])
        check(int(r("PTTL", R + "lease")) > 1000, "lease renewed by a write")
        # renew
        check_eq(renew(r, sha, tok), [1, ""], "renew")
        r("HSET", R + "status", "desired", "stopped")
        check_eq(renew(r, sha, tok), [1, "stopped"],
                 "renew reports the operator's wish")
        r("HDEL", R + "status", "desired")
        # a lease that expired while nobody took the room is taken back by a write or a renewal
        r("DEL", R + "lease")
        check_eq(renew(r, sha, tok), [1, ""], "renew after expiry")
        check_eq(r("GET", R + "lease"), tok, "lease back")
        # another worker takes the room once the lease is gone: the old token is fenced everywhere
        r("DEL", R + "lease")
        took2 = acquire(r, sha, "w2")
        check_eq(took2[0], 1, "w2 takes it")
        check_eq(len(took2), 2, "acquire answers {1, token}")
        check_eq(room(r, sha, tok, 6, [ev(6)]), [CODE["FENCED"], 0], "old owner fenced")
        check_eq(renew(r, sha, tok), [0, ""], "old renew fenced")
        check_eq(r("GET", R + "lease"), took2[1], "the new lease untouched")
        check_eq(r("XLEN", R + "events"), 4, "fenced wrote nothing")
        tok2 = took2[1]
        # a key of the wrong type: the script fails before its commit, so the retry is not
        # "applied before" once the key is fixed
        r("DEL", R + "events")
        r("SET", R + "events", "x")
        try:
            room(r, sha, tok2, 1, [ev(7)])
            raise AssertionError("write into a string key succeeded")
        except RespError as e:
            check("WRONGTYPE" in str(e), "wrong type reported: %s", e)
        check_eq(r("HGET", R + "status", "wseq"), tok2 + "|0", "no commit after the failure")
        r("DEL", R + "events")
        check_eq(room(r, sha, tok2, 1, [ev(7)]), [CODE["OK"], 1, ""], "the retry applies")
        # status deleted by hand: the lease still proves ownership
        r("DEL", R + "status")
        check_eq(room(r, sha, tok2, 2, [ev(8)], pairs=["state", "live"]), [CODE["OK"], 1, ""], "write after status deleted")
        # release with expiry: lease gone, wseq names nobody, keys expire; later writes fenced
        check_eq(room(r, sha, tok2, 3, [], pairs=["state", "ended"], release=1, expire=100), [CODE["OK"], 0, ""], "release")
        check_eq(r("EXISTS", R + "lease"), 0, "lease released")
        check(0 < int(r("TTL", R + "status")) <= 100 and 0 < int(r("TTL", R + "events")) <= 100, "keys expire")
        check_eq(room(r, sha, tok2, 4, [ev(9)]), [CODE["FENCED"], 0], "after release")
        # captured again: expiry cancelled
        took3 = acquire(r, sha, "w3")
        check_eq(took3[0], 1, "w3")
        check(int(r("TTL", R + "status")) == -1 and int(r("TTL", R + "events")) == -1, "persisted again")
        # MINID trims by time
        r("DEL", R + "events")
        for i in range(300):  # "~" trims whole stream nodes (100 entries each): make several
            r("XADD", R + "events", "1000-%d" % (i + 1), "type", "old", "msg_id", "1", "ts_ms", "1", "json", "{}")
        room(r, sha, took3[1], 1, [ev(10)], minid="2000")
        kinds = [e[1][1] for e in r("XRANGE", R + "events", "-", "+")]
        check(kinds[-1] == "chat" and kinds.count("old") < 100, "MINID trimmed the old nodes: %d old left",
              kinds.count("old"))
        # orphan replay: msg_ids in the tail are skipped, the rest appended with replayed=1
        n0 = int(r("XLEN", R + "events"))
        got = r("EVALSHA", sha["orphan"], 2, R + "events", R + "status", 100, 1000, *(ev(10) + ev(11) + ev(11)))
        check_eq(got, [1, 2], "orphan: one new, two duplicates")
        last = r("XREVRANGE", R + "events", "+", "-", "COUNT", 1)[0][1]
        check_eq(dict(zip(last[0::2], last[1::2]))["replayed"], "1", "replayed flag")
        check_eq(int(r("XLEN", R + "events")), n0 + 1, "orphan wrote one")
        # requeue moves a dead worker's claims to the head (the right end) in order
        r("RPUSH", "d:claims:dead:{d:assign}", "a", "b")
        r("LPUSH", "d:assign", "z")
        check_eq(r("EVALSHA", sha["requeue"], 2, "d:claims:dead:{d:assign}", "d:assign"), 2, "requeued")
        check_eq(r("LRANGE", "d:assign", 0, -1), ["z", "b", "a"], "claims at the head")
        # OOM: scripts with a shebang are refused up front, never half-run
        r("SET", "filler", "x" * 200000)
        r("CONFIG", "SET", "maxmemory", "1")
        try:
            room(r, sha, took3[1], 2, [ev(12)])
            raise AssertionError("write under OOM succeeded")
        except RespError as e:
            check(str(e).startswith("OOM"), "OOM error code first: %s", e)
        r("CONFIG", "SET", "maxmemory", "0")
        check_eq(room(r, sha, took3[1], 2, [ev(12)]), [CODE["OK"], 1, ""], "after OOM the same write applies")
        r("HSET", R + "status", "desired", "stopped")
        check_eq(room(r, sha, took3[1], 3, [ev(13)]), [CODE["OK"], 1, "stopped"], "a write reports the operator's wish")
        # the events count rides in the commit: every digit (no %.14g float formatting; exact to
        # 2^53), and a count that is no number starts again from the write's (HINCRBY failed the write)
        r("HSET", R + "status", "events", "1000000000000000")
        check_eq(room(r, sha, took3[1], 4, [ev(14), ev(15)]), [CODE["OK"], 2, "stopped"], "a count past %.14g")
        check_eq(r("HGET", R + "status", "events"), "1000000000000002", "counted on, every digit")
        for k, bad in enumerate(("lots", "inf", "nan", "-5", "2.5", "1e300")):
            r("HSET", R + "status", "events", bad)
            check_eq(room(r, sha, took3[1], 5 + k, [ev(16 + k)]), [CODE["OK"], 1, "stopped"], "a count of %r" % bad)
            check_eq(r("HGET", R + "status", "events"), "1", "counted again from this write after %r" % bad)
        # a status key that is no hash: acquire fails before it writes anything (no epoch, no lease)
        r("DEL", R + "lease", R + "status")
        r("SET", R + "status", "a string")
        epoch = r("GET", R + "epoch")
        try:
            acquire(r, sha, "w4")
            raise AssertionError("acquire over a string status key succeeded")
        except RespError as e:
            check("WRONGTYPE" in str(e), "wrong type reported: %s", e)
        check_eq((r("GET", R + "epoch"), r("EXISTS", R + "lease")), (epoch, 0), "acquire wrote nothing")


def test_room_groups():
    """Several rooms in one call: each gets its own reply, in order; a key of the wrong type fails
    its own room only; a write with lease TTL 0 leaves the lease's expiry alone."""
    with Env("luagroups") as env:
        r = env.start_redis()
        sha = load(r)
        A, B, C = "d:{a}:", "d:{b}:", "d:{c}:"
        toks = {}
        for p in (A, B, C):
            got = r("EVALSHA", sha["acquire"], 4, p + "lease", p + "epoch", p + "status", p + "events", "w1", 3500)
            check_eq(got[0], 1, "acquire %s" % p)
            toks[p] = got[1]
        r("SET", B + "events", "not a stream")
        r("HSET", C + "status", "desired", "stopped")
        got = rooms(r, sha, [(A, room_args(toks[A], 1, [ev(1), ev(2)], pairs=["state", "live"])),
                             (B, room_args(toks[B], 1, [ev(3)])),
                             (C, room_args(toks[C], 1, [ev(4)], ttl=0))])
        check_eq(len(got), 3, "one reply per room")
        check_eq(got[0], [CODE["OK"], 2, ""], "room a applied")
        check(isinstance(got[1], RespError) and "WRONGTYPE" in str(got[1]), "room b refused alone: %r", got[1])
        check_eq(got[2], [CODE["OK"], 1, "stopped"], "room c applied, with its desired")
        check_eq((r("XLEN", A + "events"), r("XLEN", C + "events")), (2, 1), "a's and c's events written")
        check_eq(r("HGET", B + "status", "wseq"), toks[B] + "|0", "b committed nothing")
        check_eq(r("HGET", A + "status", "state"), "live", "a's status fields")
        check_eq((r("HGET", A + "status", "events"), r("HGET", C + "status", "events")), ("2", "1"), "events counted")
        # MAXLEN 0: this write does not trim (a recent one did); the next one with a MAXLEN does
        for i in range(300):  # "~" trims whole stream nodes (100 entries each): make several
            r("XADD", A + "events", "*", "type", "old", "msg_id", "1", "ts_ms", "1", "json", "{}")
        rooms(r, sha, [(A, room_args(toks[A], 2, [ev(20)], maxlen=0))])
        check_eq(r("XLEN", A + "events"), 303, "MAXLEN 0 trimmed nothing")
        rooms(r, sha, [(A, room_args(toks[A], 3, [ev(21)], maxlen=10))])
        check(r("XLEN", A + "events") <= 110, "the next write trimmed: %r left", r("XLEN", A + "events"))
        # TTL 0: the lease keeps the expiry it had; a write with a TTL sets it
        r("PEXPIRE", C + "lease", 100000)
        rooms(r, sha, [(C, room_args(toks[C], 2, [ev(5)], ttl=0))])
        check(int(r("PTTL", C + "lease")) > 50000, "TTL 0 left the lease alone")
        rooms(r, sha, [(C, room_args(toks[C], 3, [ev(6)], ttl=3500))])
        check(int(r("PTTL", C + "lease")) <= 3500, "a TTL renews the lease")
        # order and fencing stay per room inside one call: a's seq 1 again is applied before, a gap
        # in c does not stop b's retry
        r("DEL", B + "events")
        got = rooms(r, sha, [(A, room_args(toks[A], 1, [ev(1)])), (C, room_args(toks[C], 9, [ev(9)])),
                             (B, room_args(toks[B], 1, [ev(3)]))])
        check_eq(got, [[CODE["APPLIED"], 0], [CODE["GAP"], 0], [CODE["OK"], 1, ""]], "per-room outcomes")
        check_eq(r("XLEN", C + "events"), 3, "the gap wrote nothing")
        # renewals of several rooms in one call: each its own answer; a wrong-typed status fails its
        # room only; a fenced room's lease is left alone
        r("HSET", A + "status", "wseq", "w9 1|0")
        r("DEL", C + "status")
        r("SET", C + "status", "x")
        r("PEXPIRE", B + "lease", 100)
        got = r("EVALSHA", sha["renew"], 6, A + "lease", A + "status", B + "lease", B + "status", C + "lease",
                C + "status", 3500, toks[A], toks[B], toks[C])
        check_eq(got[:2], [[0, ""], [1, ""]], "a fenced, b renewed")
        check(isinstance(got[2], RespError) and "WRONGTYPE" in str(got[2]), "c refused alone: %r", got[2])
        check(int(r("PTTL", B + "lease")) > 1000, "b's lease renewed")
        check_eq(r("GET", A + "lease"), toks[A], "a's lease key untouched by the fenced renewal")


if __name__ == "__main__":
    from harness import run
    run()
