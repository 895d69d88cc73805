#!/usr/bin/python3
"""stats.py — per-room figures from the backlog still in Redis: gift value, top gifters, chat rate,
peak viewers.

  stats.py --redis redis://127.0.0.1:6379/0                 # every room, as a table
  stats.py --rooms 261378947940 --top 10 --json             # one room, machine-readable

Reads each room's stream oldest first in pages (XRANGE … COUNT), so a 100k-entry stream is never
held whole; it writes nothing. Gift value is Σ gift.delta × gift.diamonds: delta counts each gift
exactly once across combo streaks (summing repeat_count would count a streak many times).
"""
import argparse
import json

import dylive_streams as ds

CHAT_TYPES = ("chat", "emoji_chat", "screen_chat")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ds.add_common_args(p)
    p.add_argument("--top", type=int, default=5, help="top gifters shown per room (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object: {live_id: figures}")
    return p.parse_args()


def room_stats(r, keys, live_id, top):
    s = {"live_id": live_id, "events": 0, "chats": 0, "gift_events": 0, "gift_units": 0, "gift_diamonds": 0,
         "peak_viewers": None, "first_ts_ms": None, "last_ts_ms": None, "chats_per_min": 0.0, "top_gifters": []}
    gifters = {}  # user id -> [nickname, diamonds, units]
    chat_ts = []
    for _, fields in ds.stream_pages(r, keys.events(live_id)):
        ev = ds.event_of(fields)
        if ev is None:
            continue
        s["events"] += 1
        ts = ev.get("ts_ms") if isinstance(ev.get("ts_ms"), int) else None
        if ts is not None:
            s["first_ts_ms"] = ts if s["first_ts_ms"] is None else min(s["first_ts_ms"], ts)
            s["last_ts_ms"] = ts if s["last_ts_ms"] is None else max(s["last_ts_ms"], ts)
        t = ev.get("type")
        if t in CHAT_TYPES:
            s["chats"] += 1
            if ts is not None:
                chat_ts.append(ts)
        elif t == "gift":
            units, value = ds.gift_value(ev)
            s["gift_events"] += 1
            s["gift_units"] += units
            s["gift_diamonds"] += value
            g = gifters.setdefault(ds.user_id(ev) or "?", [ds.nickname(ev), 0, 0])
            g[0] = ds.nickname(ev) or g[0]
            g[1] += value
            g[2] += units
        elif t == "viewers" and isinstance(ev.get("online"), int):
            s["peak_viewers"] = max(s["peak_viewers"] or 0, ev["online"])
    if len(chat_ts) >= 2 and max(chat_ts) > min(chat_ts):
        s["chats_per_min"] = round(len(chat_ts) * 60000 / (max(chat_ts) - min(chat_ts)), 2)
    ranked = sorted(gifters.items(), key=lambda kv: (-kv[1][1], -kv[1][2], kv[0]))[:top]
    s["top_gifters"] = [{"user_id": uid, "nickname": nick, "diamonds": dia, "units": units}
                        for uid, (nick, dia, units) in ranked]
    return s


def printable(text, width):
    """A stranger's name, safe for a terminal: control characters shown as '?', cut to width."""
    clean = "".join("?" if (ord(c) < 32 or 0x7f <= ord(c) < 0xa0) else c for c in text)
    return clean if len(clean) <= width else clean[:width - 1] + "…"


def print_table(all_stats):
    print("%-16s %8s %7s %9s %10s %12s %8s" % ("LIVE_ID", "EVENTS", "CHATS", "CHAT/MIN", "GIFT UNITS",
                                             "DIAMONDS", "PEAK"))
    for s in all_stats:
        print("%-16s %8d %7d %9.1f %10d %12d %8s" % (s["live_id"], s["events"], s["chats"], s["chats_per_min"],
                                                   s["gift_units"], s["gift_diamonds"],
                                                   "-" if s["peak_viewers"] is None else s["peak_viewers"]))
        for i, g in enumerate(s["top_gifters"], 1):
            print("    %d. %-24s %10d diamonds %6d units" % (i, printable(g["nickname"] or g["user_id"], 24),
                                                            g["diamonds"], g["units"]))


def report(a):
    r = ds.connect(a.redis)
    keys = ds.Keys(a.prefix)
    rooms = sorted(ds.RoomFinder(r, keys, a.rooms).find(), key=lambda x: (len(x), x))
    all_stats = [room_stats(r, keys, x, a.top) for x in rooms]
    if a.json:
        print(json.dumps({s["live_id"]: s for s in all_stats}, ensure_ascii=False, indent=1))
    else:
        print_table(all_stats)


if __name__ == "__main__":
    ds.run_main("stats", parse_args, report)
