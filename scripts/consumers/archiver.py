#!/usr/bin/python3
"""archiver.py — keeps every room's events in SQLite and in raw JSONL files, one per room and day.

  archiver.py --redis redis://127.0.0.1:6379/0 --out /var/lib/dylive-archive     # follows forever
  archiver.py --out ./archive --once                                              # drain and exit

Writes OUT/archive.sqlite with the tables a comment store of live sessions usually has:
  live_sessions  one row per broadcast (live_id, room_id): title, anchor, first/last event time,
                 ended, events, chats, gifts, diamonds
  comment_data   one row per chat (chat, emoji_chat, screen_chat): user, nickname, content, time
  gifts          one row per gift event: gift, price, delta (units this event adds), value
and OUT/jsonl/<live_id>/<YYYY-MM-DD>.jsonl (UTC day of the event): every event's JSON as stored.

Resumable and idempotent: one consumer group per archive (--group), and the last stream id
archived per room is kept in SQLite with the rows. Each batch is appended to the JSONL files and
fsync'd, then the rows, the cursor and the JSONL files' lengths are committed in one transaction,
and only then acknowledged (XACK). A crash anywhere means at most a redelivery: JSONL tails past
the committed length are cut on start, entries at or before the cursor are skipped, and rows are
UNIQUE(live_id, msg_id) with INSERT OR IGNORE besides. Run one archiver per group.
"""
import argparse
import datetime
import json
import os
import signal
import sqlite3
import time

import dylive_streams as ds

SCHEMA = """
CREATE TABLE IF NOT EXISTS live_sessions (
  live_id TEXT NOT NULL, room_id TEXT NOT NULL, title TEXT, anchor TEXT,
  first_ts_ms INTEGER, last_ts_ms INTEGER, ended INTEGER NOT NULL DEFAULT 0,
  events INTEGER NOT NULL DEFAULT 0, chats INTEGER NOT NULL DEFAULT 0,
  gifts INTEGER NOT NULL DEFAULT 0, diamonds INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (live_id, room_id));
CREATE TABLE IF NOT EXISTS comment_data (
  id INTEGER PRIMARY KEY, live_id TEXT NOT NULL, room_id TEXT, msg_id TEXT NOT NULL,
  stream_id TEXT NOT NULL, type TEXT NOT NULL, ts_ms INTEGER, user_id TEXT, nickname TEXT, content TEXT,
  UNIQUE (live_id, msg_id));
CREATE TABLE IF NOT EXISTS gifts (
  id INTEGER PRIMARY KEY, live_id TEXT NOT NULL, room_id TEXT, msg_id TEXT NOT NULL,
  stream_id TEXT NOT NULL, ts_ms INTEGER, user_id TEXT, nickname TEXT, gift_id TEXT, gift_name TEXT,
  diamonds INTEGER, repeat_count INTEGER, combo_count INTEGER, group_id TEXT, repeat_end INTEGER,
  delta INTEGER, value INTEGER,
  UNIQUE (live_id, msg_id));
CREATE INDEX IF NOT EXISTS comment_data_room_ts ON comment_data (live_id, ts_ms);
CREATE INDEX IF NOT EXISTS gifts_room_ts ON gifts (live_id, ts_ms);
CREATE TABLE IF NOT EXISTS cursors (live_id TEXT PRIMARY KEY, last_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jsonl_files (path TEXT PRIMARY KEY, size INTEGER NOT NULL);
"""
CHAT_TYPES = ("chat", "emoji_chat", "screen_chat")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ds.add_common_args(p)
    p.add_argument("--out", required=True, help="archive directory (created): archive.sqlite and jsonl/")
    p.add_argument("--group", default="archiver", help="consumer group (default: archiver)")
    p.add_argument("--consumer", default="archiver", help="name in the group (default: archiver)")
    p.add_argument("--batch", type=int, default=500, help="entries per read and per transaction (default 500)")
    p.add_argument("--pause-ms", type=int, default=0, help="pause between batches, to spare a busy Redis (default 0)")
    p.add_argument("--once", action="store_true", help="archive what is there now, then exit")
    return p.parse_args()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Archiver(ds.GroupConsumer):
    first_id = "0"  # an archive wants the whole backlog

    def __init__(self, a):
        super().__init__(a)
        os.makedirs(os.path.join(a.out, "jsonl"), exist_ok=True)
        self.db = sqlite3.connect(os.path.join(a.out, "archive.sqlite"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")    # readers (reports, tests) do not block the archiver
        self.db.execute("PRAGMA synchronous=FULL")    # a commit is on disk before we XACK
        self.db.executescript(SCHEMA)
        self.cut_uncommitted_tails()
        # Fault injection for the test suite only: exit hard before the Nth commit, after that
        # batch's JSONL lines were written and fsync'd: the worst moment for a crash.
        self.crash_before_commit = int(os.environ.get("DYLIVE_ARCHIVER_CRASH_BEFORE_COMMIT", "0"))

    def cut_uncommitted_tails(self):
        """A crash between the JSONL fsync and the SQLite commit leaves lines that the redelivery
        will write again: cut every file back to its committed length."""
        for path, size in self.db.execute("SELECT path, size FROM jsonl_files"):
            full = os.path.join(self.a.out, path)
            if os.path.exists(full) and os.path.getsize(full) > size:
                with open(full, "r+b") as f:
                    f.truncate(size)
                    os.fsync(f.fileno())

    def jsonl_path(self, live_id, ev):
        ts = ev.get("ts_ms") if isinstance(ev.get("ts_ms"), int) else int(time.time() * 1000)
        day = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
        return os.path.join("jsonl", live_id, day + ".jsonl")

    def archive(self, live_id, entries):
        """One batch of one room: JSONL (fsync) → SQLite (commit) → XACK."""
        row = self.db.execute("SELECT last_id FROM cursors WHERE live_id = ?", (live_id,)).fetchone()
        cursor = row[0] if row else "0-0"
        fresh = [(eid, f) for eid, f in entries if f is not None and ds.id_after(eid, cursor)]
        lines = {}  # jsonl path -> [line, …]
        events = []
        for eid, f in fresh:
            ev = ds.event_of(f) or {}
            events.append((eid, f, ev))
            raw = f.get("json", "")
            if "\n" in raw or "\r" in raw:  # keep one event per line whatever the stream holds
                raw = json.dumps(ev, ensure_ascii=False)
            lines.setdefault(self.jsonl_path(live_id, ev), []).append(raw + "\n")
        sizes = {}
        for path, ls in lines.items():
            full = os.path.join(self.a.out, path)
            new_dir = not os.path.isdir(os.path.dirname(full))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            known = self.db.execute("SELECT size FROM jsonl_files WHERE path = ?", (path,)).fetchone()
            with open(full, "ab") as fh:
                if known is None:
                    fh.truncate(0)  # nothing of this file was committed: whatever is there is a crash's
                fh.write("".join(ls).encode("utf-8", "replace"))
                fh.flush()
                os.fsync(fh.fileno())
                sizes[path] = fh.tell()
            if known is None or new_dir:
                fsync_dir(os.path.dirname(full))  # the new file's name is durable too
        if self.crash_before_commit and fresh:
            self.crash_before_commit -= 1
            if self.crash_before_commit == 0:
                os._exit(137)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for eid, f, ev in events:
                self.rows(live_id, eid, f, ev)
            for path, size in sizes.items():
                db.execute("INSERT INTO jsonl_files (path, size) VALUES (?, ?) "
                           "ON CONFLICT (path) DO UPDATE SET size = excluded.size", (path, size))
            if fresh:
                db.execute("INSERT INTO cursors (live_id, last_id) VALUES (?, ?) "
                           "ON CONFLICT (live_id) DO UPDATE SET last_id = excluded.last_id", (live_id, fresh[-1][0]))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if entries:  # skipped ones too: they were archived before a crash
            self.r.xack(self.keys.events(live_id), self.a.group, *[eid for eid, _ in entries])
        return len(entries)

    def rows(self, live_id, eid, f, ev):
        db = self.db
        t = ev.get("type", f.get("type", ""))
        msg_id = str(ev.get("msg_id", f.get("msg_id", eid)))
        room_id = str(ev.get("room_id", ""))
        ts = ev.get("ts_ms") if isinstance(ev.get("ts_ms"), int) else None
        chats = gifts = diamonds = 0
        if t in CHAT_TYPES:
            cur = db.execute("INSERT OR IGNORE INTO comment_data (live_id, room_id, msg_id, stream_id, type, ts_ms, "
                             "user_id, nickname, content) VALUES (?,?,?,?,?,?,?,?,?)",
                             (live_id, room_id, msg_id, eid, t, ts, ds.user_id(ev), ds.nickname(ev),
                              str(ev.get("content", ""))))
            chats = cur.rowcount
        elif t == "gift":
            g = ev.get("gift") if isinstance(ev.get("gift"), dict) else {}
            units, value = ds.gift_value(ev)
            cur = db.execute("INSERT OR IGNORE INTO gifts (live_id, room_id, msg_id, stream_id, ts_ms, user_id, "
                             "nickname, gift_id, gift_name, diamonds, repeat_count, combo_count, group_id, "
                             "repeat_end, delta, value) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             (live_id, room_id, msg_id, eid, ts, ds.user_id(ev), ds.nickname(ev),
                              str(g.get("id", "")), str(g.get("name", "")), g.get("diamonds"),
                              g.get("repeat_count"), g.get("combo_count"), str(g.get("group_id", "")),
                              g.get("repeat_end"), units, value))
            gifts, diamonds = cur.rowcount, value * cur.rowcount
        if not room_id:
            return
        ended = 1 if t == "control" and ev.get("status") == 3 else 0
        db.execute("INSERT INTO live_sessions (live_id, room_id, first_ts_ms, last_ts_ms, ended, events, chats, "
                   "gifts, diamonds) VALUES (?,?,?,?,?,1,?,?,?) ON CONFLICT (live_id, room_id) DO UPDATE SET "
                   "first_ts_ms = min(coalesce(first_ts_ms, excluded.first_ts_ms), coalesce(excluded.first_ts_ms, first_ts_ms)), "
                   "last_ts_ms = max(coalesce(last_ts_ms, 0), coalesce(excluded.last_ts_ms, 0)), "
                   "ended = max(ended, excluded.ended), events = events + 1, chats = chats + excluded.chats, "
                   "gifts = gifts + excluded.gifts, diamonds = diamonds + excluded.diamonds",
                   (live_id, room_id, ts, ts, ended, chats, gifts, diamonds))

    def session_titles(self):
        """Title and anchor come from the status hash (the live page), not from events."""
        for live_id in self.rooms:
            st = self.r.hgetall(self.keys.status(live_id))
            if st.get("room_id"):
                self.db.execute("UPDATE live_sessions SET title = ?, anchor = ? WHERE live_id = ? AND room_id = ?",
                                (st.get("title"), st.get("anchor"), live_id, st["room_id"]))

    def read(self, live_id, start):
        resp = self.r.xreadgroup(self.a.group, self.a.consumer, {self.keys.events(live_id): start}, count=self.a.batch)
        return resp[0][1] if resp else []

    def run(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        self.discover()
        for live_id in sorted(self.rooms):  # what this consumer held when it stopped, first
            start = "0"
            while not stop:
                entries = self.read(live_id, start)
                self.archive(live_id, entries)
                if len(entries) < self.a.batch:
                    break
                start = entries[-1][0]
        last_discover = time.monotonic()
        while not stop:
            if time.monotonic() - last_discover > 10:
                self.discover()
                last_discover = time.monotonic()
            busy = 0
            for live_id in sorted(self.rooms):
                busy += self.archive(live_id, self.read(live_id, ">"))
                if self.a.pause_ms:
                    time.sleep(self.a.pause_ms / 1000)
            self.session_titles()
            if not busy:
                if self.a.once:
                    break
                time.sleep(1)  # per-room reads are non-blocking so one quiet room does not hold up the rest
        self.db.close()


if __name__ == "__main__":
    ds.run_main("archiver", parse_args, lambda a: Archiver(a).run())
