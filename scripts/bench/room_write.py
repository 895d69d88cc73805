#!/usr/bin/python3
"""What one room write costs inside Redis, by part (issue 11: Redis CPU per event at many rooms).

Usage: scripts/bench/room_write.py [--rooms N] [--per-call K] [--writes W] [--rounds R]

A private redis-server (tests/integration/harness.py) gets the worker's own connector/lua/room.lua
and two cut-down scripts with the same KEYS and ARGV: `argv` (only answers: what carrying a room's
three keys and sixteen strings into Lua costs) and `xadd` (the arguments and the XADD, no fence,
order or status). W room writes of one chat event each (a 250-byte JSON, the bench's shape) go to N
rooms in random order, K rooms per call, 50 calls pipelined; every other write of a room renews
its lease (as the worker's rooms phase does: 0.42 SET per event); none trims. Redis's own INFO
commandstats give the time inside EVALSHA per room write, and the commands the script ran. The
scripts take turns in a shuffled order, R rounds; the medians are printed, then one JSON line.
These are calls arriving 50 at a time into a warm Redis: the rooms phase's calls come one at a time
into caches the worker and the simulator share (22-31 us per write inside EVALSHA there), and Redis
CPU outside the call (its socket, its event loop) is in neither: cost.py's rooms phase measures the
whole of it.
"""
import argparse
import json
import os
import random
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

ARGV_ONLY = """
local out = {}
for k = 1, #KEYS, 3 do out[#out + 1] = {0, 1, ''} end
return out
"""
XADD_ONLY = """
local out, a = {}, 1
for k = 1, #KEYS, 3 do
  local i = a + 10 + tonumber(ARGV[a + 8])
  redis.call('XADD', KEYS[k + 2], '*', 'type', ARGV[i], 'msg_id', ARGV[i + 1], 'ts_ms', ARGV[i + 2], 'json', ARGV[i + 3])
  out[#out + 1] = {0, 1, ''}
  a = a + 10 + tonumber(ARGV[a + 8]) + 4 * tonumber(ARGV[a + 9])
end
return out
"""
JSON = ('{"type":"chat","msg_id":"7400000000000000000","ts_ms":1764000000000,"room_id":"7000000000000000000",'
        '"user":{"id":"1234567890","nickname":"someone here","display_id":"abc123","level":12},'
        '"content":"hello, this is a chat message of a typical length","emotes":[]}')
TOKEN = "bench-worker 1"


def pipeline(r, calls):
    r.sock.sendall(b"".join(harness.encode_command(*c) for c in calls))
    return [r._reply() for _ in calls]


def keys_of(live):
    return ["dylive:{%s}:lease" % live, "dylive:{%s}:status" % live, "dylive:{%s}:events" % live]


def run_script(r, sha, lives, seq, args, ordered):
    """W writes over the rooms; returns (usec in EVALSHA per room write, {command: calls per write}).
    ordered: the script keeps the rooms' order (room.lua), so each write takes the next number."""
    r("CONFIG", "RESETSTAT")
    n, batch = 0, []
    while n < args.writes:
        random.shuffle(lives)
        for k in range(0, len(lives), args.per_call):
            keys, argv = [], []
            for live in lives[k:k + args.per_call]:
                seq[live] += ordered
                keys += keys_of(live)
                # token, lease TTL ('0': left alone), seq, force, MAXLEN ('0': no trim), MINID, release,
                # expire, np, ne; one status pair; one event (room.lua's header)
                lease_ttl = "3500" if seq[live] % 2 == 0 else "0"
                argv += [TOKEN, lease_ttl, seq[live], "0", "0", "", "0", "0", "2", "1", "last_event_ms",
                         "1764000000000", "chat", random.getrandbits(62), "1764000000000", JSON]
            batch.append(["EVALSHA", sha, len(keys)] + keys + argv)
            n += len(keys) // 3
            if len(batch) == 50 or n >= args.writes:
                for rep in pipeline(r, batch):
                    if any(not isinstance(x, list) or x[0] != 0 for x in rep):
                        raise SystemExit("a write was not applied: %r" % rep[:2])
                batch = []
            if n >= args.writes:
                break
    st = harness.all_command_stats(r)
    calls, usec = st.pop("evalsha")
    st.pop("config", None)
    return usec / n, {c: round(v[0] / n, 2) for c, v in sorted(st.items()) if v[0] >= n // 10}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", type=int, default=1000)
    ap.add_argument("--per-call", type=int, default=8, help="rooms per EVALSHA (the rooms phase: ~9)")
    ap.add_argument("--writes", type=int, default=40000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with open(os.path.join(ROOT, "connector", "lua", "room.lua")) as f:
        room_lua = f.read()
    res = {"rooms": args.rooms, "per_call": args.per_call, "writes": args.writes, "rounds": args.rounds}
    with harness.Env("room-write") as env:
        r = env.start_redis()
        shas = {name: r("SCRIPT", "LOAD", src) for name, src in
                (("room", room_lua), ("argv", ARGV_ONLY), ("xadd", XADD_ONLY))}
        lives = [str(900000000 + i) for i in range(args.rooms)]
        seq = dict.fromkeys(lives, 0)
        for live in lives:  # each room owned, as after a take: the lease and the status hash's wseq
            pipeline(r, [["SET", keys_of(live)[0], TOKEN, "PX", 3600000],
                         ["HSET", keys_of(live)[1], "wseq", "%s|0" % TOKEN, "state", "live", "events", 0]])
        got = {name: [] for name in shas}
        cmds = {}
        for _ in range(args.rounds):
            for name, sha in random.sample(list(shas.items()), len(shas)):
                us, c = run_script(r, sha, lives, seq, args, name == "room")
                got[name].append(us)
                cmds[name] = c
    for name in shas:
        res[name + "_us_per_write"] = round(statistics.median(got[name]), 2)
        res[name + "_runs"] = [round(x, 2) for x in got[name]]
        res[name + "_commands_per_write"] = cmds[name]
    print("inside EVALSHA, per room write (median of %d; %d rooms, %d a call):" % (args.rounds, args.rooms,
                                                                                   args.per_call))
    print("  room.lua          %6.2f us  %s" % (res["room_us_per_write"], res["room_commands_per_write"]))
    print("  arguments + XADD  %6.2f us" % res["xadd_us_per_write"])
    print("  arguments alone   %6.2f us" % res["argv_us_per_write"])
    print("  fence, order, status: %.2f us (room.lua - arguments + XADD)" % (res["room_us_per_write"]
                                                                      - res["xadd_us_per_write"]))
    print(json.dumps(res, sort_keys=True))


if __name__ == "__main__":
    main()
