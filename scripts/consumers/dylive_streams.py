"""What the reference consumers share: connecting, key names, finding rooms, reading streams.

dylive's whole interface is Redis (schema/KEYS.md): every room has a stream
`P:{<live_id>}:events` (fields type, msg_id, ts_ms, json) and a status hash `P:{<live_id>}:status`;
`P:rooms` is a stream of room state changes. Copy this file along with the consumer you use.
Needs Debian's python3-redis (redis-py 4.3+) and nothing else."""
import argparse
import json
import os
import re
import sys

try:
    import redis
except ImportError:  # say what to install rather than print a traceback
    sys.exit("this consumer needs redis-py: on Debian `apt-get install python3-redis` and run it with "
             "/usr/bin/python3 (the scripts' #! line), not another Python")

LIVE_ID_RE = re.compile(r"^[0-9]{1,32}$")
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def add_common_args(p: argparse.ArgumentParser):
    p.add_argument("--redis", default=os.environ.get("DYLIVE_REDIS_URL", DEFAULT_URL), metavar="URL",
                   help="redis://[user[:password]@]host[:port][/db], rediss://… or unix:///path "
                        "(default: $DYLIVE_REDIS_URL or %s)" % DEFAULT_URL)
    p.add_argument("--prefix", default=os.environ.get("DYLIVE_PREFIX", "dylive"),
                   help="key prefix the workers use (default: $DYLIVE_PREFIX or dylive)")
    p.add_argument("--rooms", nargs="+", metavar="LIVE_ID",
                   help="only these rooms (default: every room the pool knows, rediscovered as it goes)")


def _entries(raw):
    """[(id, {field: value} or None)]. None stands for an entry that was trimmed away while still
    pending: redis-py 4.3 would raise on it, so stream replies are parsed here."""
    out = []
    for e in raw or []:
        if not e:
            continue
        fields = e[1]
        out.append((e[0], None if fields is None else dict(zip(fields[0::2], fields[1::2]))))
    return out


def connect(url):
    """A client that decodes to str (invalid UTF-8 becomes U+FFFD instead of an exception) and
    parses XREADGROUP/XAUTOCLAIM replies tolerantly (see _entries)."""
    r = redis.Redis.from_url(url, decode_responses=True, encoding_errors="replace",
                             socket_timeout=30, health_check_interval=30)
    r.set_response_callback("XREADGROUP", lambda resp, **kw: [[k, _entries(v)] for k, v in resp or []])
    r.set_response_callback("XAUTOCLAIM", lambda resp, **kw: [resp[0], _entries(resp[1])])
    return r


class Keys:
    """Key names of CONTRACT §3; `{live_id}` is the Redis Cluster hash tag of the room."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.rooms = "%s:rooms" % prefix

    def events(self, live_id):
        return "%s:{%s}:events" % (self.prefix, live_id)

    def status(self, live_id):
        return "%s:{%s}:status" % (self.prefix, live_id)

    def replies(self, live_id):
        return "%s:{%s}:replies" % (self.prefix, live_id)

    def replied(self, live_id, msg_id):
        return "%s:{%s}:replied:%s" % (self.prefix, live_id, msg_id)

    def status_pattern(self):
        # SCAN MATCH is a glob: a prefix holding glob characters must match literally
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + ":{*}:status"


class RoomFinder:
    """Rooms the pool knows: P:rooms (read incrementally, so a long-running consumer only reads
    what is new) and, for workers that do not write P:rooms, a SCAN of the status hashes."""

    def __init__(self, r, keys, only=None):
        self.r, self.keys, self.only = r, keys, only
        self.pos = "-"
        self.known = set()

    def find(self):
        if self.only:
            return {x for x in self.only if LIVE_ID_RE.match(x)}
        while True:
            batch = self.r.xrange(self.keys.rooms, self.pos, "+", count=1000)
            for eid, f in batch:
                self.pos = "(" + eid
                if LIVE_ID_RE.match(f.get("live_id", "")):
                    self.known.add(f["live_id"])
            if len(batch) < 1000:
                break
        head = self.keys.prefix + ":{"
        for key in self.r.scan_iter(match=self.keys.status_pattern(), count=1000):
            live_id = key[len(head):-len("}:status")]
            if LIVE_ID_RE.match(live_id):
                self.known.add(live_id)
        return set(self.known)


class GroupConsumer:
    """A consumer group over every room's events: the rooms it reads and how it joins a new one."""
    first_id = "$"  # where a new group starts: "$" new events only, "0" the whole backlog

    def __init__(self, a):
        self.a = a
        self.r = connect(a.redis)
        self.keys = Keys(a.prefix)
        self.finder = RoomFinder(self.r, self.keys, a.rooms)
        self.rooms = set()

    def discover(self):
        for live_id in self.finder.find() - self.rooms:
            try:  # idempotent: the group may exist already (another consumer, an earlier run)
                self.r.xgroup_create(self.keys.events(live_id), self.a.group, id=self.first_id, mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            self.rooms.add(live_id)


def stream_pages(r, key, start="-", page=1000):
    """Every entry of a stream from start on, oldest first, in pages (XRANGE … COUNT): the backlog
    without loading it whole."""
    while True:
        batch = r.xrange(key, start, "+", count=page)
        yield from batch
        if len(batch) < page:
            return
        start = "(" + batch[-1][0]


def event_of(fields):
    """The event dict of an entry (CONTRACT §4), or None when the entry has no valid JSON."""
    try:
        ev = json.loads(fields.get("json", ""))
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None


def id_after(a, b):
    """True when stream id a comes after stream id b ("ms-seq")."""
    am, _, aseq = a.partition("-")
    bm, _, bseq = b.partition("-")
    return (int(am), int(aseq or 0)) > (int(bm), int(bseq or 0))


def nickname(ev):
    u = ev.get("user")
    return str(u.get("nickname", "")) if isinstance(u, dict) else ""


def user_id(ev):
    u = ev.get("user")
    return str(u.get("id", "")) if isinstance(u, dict) else ""


def gift_value(ev):
    """(units, diamonds) this gift event adds: gift.delta counts each gift exactly once across
    combo streaks (CONTRACT §4), gift.diamonds is the price of one unit."""
    g = ev.get("gift")
    if not isinstance(g, dict):
        return 0, 0
    delta = g.get("delta") if isinstance(g.get("delta"), int) else 0
    price = g.get("diamonds") if isinstance(g.get("diamonds"), int) else 0
    return delta, delta * price


def run_main(name, parse_args, body):
    """Runs body(args): Ctrl-C ends quietly, an unreachable Redis ends with one line, not a traceback."""
    a = parse_args()
    try:
        body(a)
    except KeyboardInterrupt:
        pass
    except redis.ConnectionError as e:
        sys.exit("%s: cannot reach Redis at %s: %s" % (name, a.redis, e))
