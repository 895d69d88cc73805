"""The other side of the streams: `dylivectl dashboard` and the reference consumers in
scripts/consumers/, against a real redis-server, the simulator and a worker (harness.py).

The page is checked in headless Chromium through the DevTools protocol (a small stdlib WebSocket
client below): what a person sees, after the page's own JavaScript ran. A screenshot is kept in
<build>/test-output/dashboard.png."""
import base64
import http.server
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from harness import BUILD, Env, check, check_eq, default_room_id, run, skip, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONSUMERS = os.path.join(ROOT, "scripts", "consumers")
PYTHON = "/usr/bin/python3"  # Debian's, where python3-redis lives
LIVE = "777000333"


# ---- a fixture room captured to the end by a real worker ----

def status(r, live_id):
    return r.hgetall("dylive:{%s}:status" % live_id)


def captured_room(env, frames=150, seed=42, fps=None, wait_end=True):
    """redis + simulator + worker; the fixture room assigned (and captured to its end)."""
    r = env.start_redis()
    path, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", str(frames), "--seed", str(seed))
    env.start_sim(["%s:%s%s" % (LIVE, path, ",fps=%d" % fps if fps else "")])
    env.worker(worker_id="w-consumers")
    r("LPUSH", "dylive:assign", LIVE)
    if wait_end:
        wait_until(lambda: status(r, LIVE).get("state") == "ended", 60, "the fixture room captured to its end")
    return r, man


def events_of(r, live_id=LIVE):
    """[(stream id, fields, event dict)] of the room's stream."""
    return [(eid, f, json.loads(f["json"])) for eid, f in r.xrange_all("dylive:{%s}:events" % live_id)]


def diamonds_of(evs):
    return sum(e["gift"]["delta"] * e["gift"]["diamonds"] for _, _, e in evs if e["type"] == "gift")


def redis_url(env):
    return "redis://127.0.0.1:%d/0" % env.redis_port


def consumer(env, name, *args, log=None, extra_env=None):
    return env.spawn([PYTHON, os.path.join(CONSUMERS, name), "--redis", redis_url(env)] + list(args),
                     log or name.replace(".py", ".log"), env=extra_env)


# ---- the dashboard process and plain HTTP ----

def start_dashboard(env):
    p = env.spawn([os.path.join(BUILD, "dylivectl"), "--redis", redis_url(env), "dashboard", "--listen",
                   "127.0.0.1:0"], "dashboard.log", stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    check(line.startswith("dashboard listening on http://127.0.0.1:"), "dashboard did not start: %r", line)
    env.dashboard = p
    return line.split()[-1].rstrip("/")


def get(url, headers=None):
    """(status, headers, body) of a GET; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw_request(base, data):
    """Sends raw bytes, returns the status line of the answer."""
    host, port = base[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode()


class SSE:
    """Reads a text/event-stream in a thread; .events gets (id, data) per message."""

    def __init__(self, url, last_event_id=None):
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30)
        check_eq(self.resp.headers.get_content_type(), "text/event-stream", "SSE content type")
        self.events, self.comments = [], []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        eid, data = None, []
        try:
            for raw in self.resp:
                line = raw.decode("utf-8").rstrip("\n")
                if line == "":
                    if data:
                        self.events.append((eid, "\n".join(data)))
                    eid, data = None, []
                elif line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("id: "):
                    eid = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        except (OSError, ValueError):
            pass

    def close(self):
        """Hangs up (the reader sees EOF and ends), then releases the response in this thread."""
        try:
            self.resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self.t.join(10)
        self.resp.close()


# ---- headless Chromium through the DevTools protocol ----

def chromium_path():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


class DevTools:
    """The DevTools protocol over a minimal RFC 6455 client: handshake, masked text frames out,
    (possibly fragmented) frames in."""

    def __init__(self, ws_url):
        hostport, path = ws_url[len("ws://"):].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            check(chunk, "DevTools closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        check(b" 101 " in head.split(b"\r\n")[0], "DevTools handshake: %r", head[:200])
        self.next_id = 0

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            check(chunk, "DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _message(self):
        parts = []
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            data = self._exact(n)  # a server never masks
            op = b0 & 0x0f
            check(op != 8, "DevTools sent a close frame")
            if op in (9, 10):
                continue
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts)

    def call(self, method, **params):
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        n, mask = len(payload), os.urandom(4)
        if n < 126:
            head = struct.pack(">BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack(">BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
        while True:
            msg = json.loads(self._message())
            if msg.get("id") == self.next_id:
                check("error" not in msg, "%s: %r", method, msg.get("error"))
                return msg.get("result", {})

    def eval(self, expr):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        check("exceptionDetails" not in res, "page script failed: %r", res.get("exceptionDetails"))
        return res["result"].get("value")


class Browser:
    def __init__(self, env, exe):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=env.tmp)
        self.proc = env.spawn([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                               "--no-first-run", "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
                               "about:blank"], "chromium.log")
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        wait_until(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 30, "chromium's DevTools port")
        port = int(open(port_file).read().split()[0])
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as resp:
            page = [t for t in json.load(resp) if t["type"] == "page"][0]
        self.dt = DevTools(page["webSocketDebuggerUrl"])
        self.dt.call("Emulation.setDeviceMetricsOverride", width=1440, height=1000, deviceScaleFactor=1, mobile=False)

    def open(self, url):
        self.dt.call("Page.navigate", url=url)

    def screenshot(self, path):
        shot = self.dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


# ---- a stub of an OpenAI-compatible chat-completions endpoint ----

class ModelStub:
    def __init__(self, delay=0.0):
        self.calls = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.calls.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                time.sleep(delay)
                out = json.dumps({"choices": [{"message": {"role": "assistant",
                                                           "content": "reply #%d" % len(stub.calls)}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.env = {"OPENAI_BASE_URL": "http://127.0.0.1:%d/v1" % self.server.server_address[1],
                    "OPENAI_API_KEY": "test-key", "OPENAI_MODEL": "stub-model"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def replies_of(r, live_id=LIVE):
    return [f for _, f in r.xrange_all("dylive:{%s}:replies" % live_id)]


def common_chat_word(evs):
    """The most frequent chat text of the fixture (a short plain word): the filters' test word."""
    counts = {}
    for _, _, e in evs:
        c = e.get("content", "")
        if e["type"] == "chat" and 0 < len(c) <= 4 and c.isprintable() and c.strip() == c:
            counts[c] = counts.get(c, 0) + 1
    word = max(sorted(counts), key=lambda w: counts[w])
    check(counts[word] >= 4, "the fixture has a repeated chat text: %r", counts)
    return word


def nick(e):
    return (e.get("user") or {}).get("nickname", "")


# ---- the dashboard ----

def test_dashboard_api_and_sse():
    """/api/rooms and /api/workers from Redis; SSE delivers new events byte for byte, resumes after
    Last-Event-ID; hostile requests are refused."""
    with Env("dash-api") as env:
        r, man = captured_room(env, frames=300, seed=11, fps=20, wait_end=False)
        base = start_dashboard(env)
        key = "dylive:{%s}:events" % LIVE

        def room_row():
            code, _, body = get(base + "/api/rooms")
            check_eq(code, 200, "/api/rooms status")
            rows = [x for x in json.loads(body) if x["live_id"] == LIVE]
            return rows[0] if rows and rows[0]["state"] == "live" and rows[0]["events"] > 0 else None

        row = wait_until(room_row, 30, "the room live in /api/rooms")
        check_eq(row["worker"], "w-consumers", "worker")
        check(isinstance(row["viewers"], (int, type(None))) and isinstance(row["events"], int), "types: %r", row)
        row = wait_until(lambda: (lambda x: x if x and x["events_per_s"] > 0 else None)(room_row()), 20,
                         "events_per_s from two samples")
        check(len(row["eps_history"]) >= 1, "sparkline history: %r", row)
        code, _, body = get(base + "/api/workers")
        workers = json.loads(body)
        check(any(w["id"] == "w-consumers" and w["capacity"] == 200 and w["state"] == "running" for w in workers),
              "/api/workers: %r", workers)

        # new events only, from the moment of subscription, exactly as stored
        before = r("XREVRANGE", key, "+", "-", "COUNT", 1)[0][0]
        sse = SSE(base + "/api/rooms/%s/events" % LIVE)
        wait_until(lambda: any('"type":"chat"' in d for _, d in sse.events), 30, "a chat event over SSE")
        first_id = sse.events[0][0]
        ms, seq = (int(x) for x in first_id.split("-"))
        bms, bseq = (int(x) for x in before.split("-"))
        check((ms, seq) > (bms, bseq), "only events after the subscription: %s after %s", first_id, before)
        for eid, data in sse.events:
            stored = r("XRANGE", key, eid, eid)
            check_eq(data, dict(zip(stored[0][1][0::2], stored[0][1][1::2]))["json"], "SSE data of %s" % eid)
        ids = [eid for eid, _ in sse.events]
        check_eq(ids, sorted(ids, key=lambda x: tuple(int(p) for p in x.split("-"))), "SSE in stream order")
        sse.close()

        # Last-Event-ID resumes right after that id (a reconnecting EventSource)
        entries = r("XRANGE", key, "-", "+", "COUNT", 10)
        resume = SSE(base + "/api/rooms/%s/events" % LIVE, last_event_id=entries[4][0])
        wait_until(lambda: len(resume.events) >= 3, 10, "resumed events")
        check_eq([e[0] for e in resume.events[:3]], [e[0] for e in entries[5:8]], "resumed after Last-Event-ID")
        resume.close()

        # rooms known only from P:rooms, hostile data in Redis
        r("XADD", "dylive:rooms", "*", "live_id", "4242", "state", "ended", "worker", "w9", "ts_ms", "17", "error", "gone")
        r("XADD", "dylive:rooms", "*", "live_id", "../x", "state", "live", "worker", "w9", "ts_ms", "18")
        r("HSET", "dylive:{5151}:status", "state", "live", "title", b"\xff\x01<b>\xe2\x80\xa8", "events", "lots")

        def odd_rooms():
            rows = {x["live_id"]: x for x in json.loads(get(base + "/api/rooms")[2].decode("utf-8"))}
            return rows if "4242" in rows and "5151" in rows else None

        rows = wait_until(odd_rooms, 15, "rooms from P:rooms and from a SCAN of status hashes")
        check_eq((rows["4242"]["state"], rows["4242"]["worker"], rows["4242"]["error"], rows["4242"]["updated_ms"]),
                 ("ended", "w9", "gone", 17), "a room only P:rooms knows")
        check_eq((rows["5151"]["title"], rows["5151"]["events"]), ("\ufffd\x01<b>\u2028", None),
                 "invalid UTF-8 replaced, control characters escaped, a non-number is null")
        check(all(k.isdigit() for k in rows), "a live_id that is not digits is ignored: %r", sorted(rows))

        # hostile requests
        check_eq(get(base + "/api/rooms/12ab/events")[0], 404, "a live_id is digits")
        check_eq(get(base + "/api/rooms/%s/events" % ("1" * 40))[0], 404, "a live_id is short")
        check_eq(get(base + "/api/rooms", headers={"Host": "evil.example:80"})[0], 403, "DNS rebinding refused")
        check("405" in raw_request(base, b"POST /api/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"),
              "GET only")
        check("431" in raw_request(base, b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"), "header size cap")
        check("400" in raw_request(base, b"GARBAGE\r\n\r\n"), "bad request line")
        streams = [SSE(base + "/api/rooms/%s/events" % LIVE) for _ in range(16)]
        check_eq(get(base + "/api/rooms/%s/events" % LIVE)[0], 503, "SSE clients are capped")
        for s in streams:
            s.close()
        sse_req = ("GET /api/rooms/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % LIVE).encode()
        wait_until(lambda: "200" in raw_request(base, sse_req), 10, "SSE slots freed when clients hang up")
        status_code, hdrs, page = get(base + "/")
        check(status_code == 200 and b"/app.js" in page and "script-src 'self'" in hdrs["Content-Security-Policy"],
              "the page, with a CSP that forbids inline script")
        check(r("DBSIZE") > 0 and r("EXISTS", "dylive:workers") == 1, "nothing was deleted")
        for bad in ("nope", "127.0.0.1:99999", "[::1:80"):
            p = subprocess.run([os.path.join(BUILD, "dylivectl"), "--redis", redis_url(env), "dashboard", "--listen",
                                bad], capture_output=True, text=True, timeout=10)
            check(p.returncode == 2 and "--listen" in p.stderr, "bad --listen %r: %r", bad, p)
        env.dashboard.send_signal(signal.SIGTERM)  # under ASan this also checks for leaks
        check_eq(env.dashboard.wait(timeout=10), 0, "dashboard exit status after SIGTERM")


def test_dashboard_page_in_chromium():
    """What a person sees: the room, its chats, the diamond total; strangers' markup stays text."""
    exe = chromium_path()
    if not exe:
        skip("chromium is not installed (scripts/deps.sh installs it)")
    with Env("dash-page") as env:
        r, man = captured_room(env, frames=150, seed=42)
        evs = events_of(r)
        expected = diamonds_of(evs)
        check_eq(expected, man["gift_diamonds_total"], "diamonds in the stream vs the fixture manifest")
        # hostile markup where a careless page would render it: the room title and a chat
        evil = '<img src=x onerror="document.title=\'pwned\'">'
        r("HSET", "dylive:{%s}:status" % LIVE, "title", "Title " + evil)
        bad = dict(evs[-2][2], type="chat", msg_id="999999999999", content="hello " + evil,
                   user={"id": "1", "nickname": "<b>" + evil + "</b>"})
        bad.pop("gift", None)
        r("XADD", "dylive:{%s}:events" % LIVE, "*", "type", "chat", "msg_id", "999999999999",
          "ts_ms", str(bad["ts_ms"]), "json", json.dumps(bad, ensure_ascii=False))
        chat = [e for _, _, e in evs if e["type"] == "chat" and e["content"].isalnum()][-1]["content"]

        base = start_dashboard(env)
        b = Browser(env, exe)
        b.open(base + "/#room=" + LIVE)
        want = "{:,}".format(expected)

        def seen():
            v = b.dt.eval("document.readyState === 'complete' && document.getElementById('diamond-total') ? "
                          "JSON.stringify({text: document.body.innerText, "
                          "dia: document.getElementById('diamond-total').textContent, "
                          "imgs: document.querySelectorAll('img').length, title: document.title, "
                          "rows: document.querySelectorAll('#rooms tbody tr').length}) : null")
            v = json.loads(v) if v else None  # null while the page is still loading
            return v if v and v["dia"] == want and "hello " + evil in v["text"] and v["rows"] >= 1 else None

        try:
            v = wait_until(seen, 30, "the page showing the room's diamond total %s and the chats" % want)
        finally:
            shot = os.path.join(BUILD, "test-output", "dashboard.png")
            b.screenshot(shot)
            print("screenshot: %s" % os.path.abspath(shot))
        check(LIVE in v["text"], "the room id is on the page")
        check(chat in v["text"], "a chat text of the room is on the page: %r", chat)
        check("Title " + evil in v["text"], "the title's markup shown as text")
        check_eq(v["imgs"], 0, "no <img> element was created from strangers' text")
        check(v["title"] != "pwned", "no stranger's script ran")
        check(b.dt.eval("document.querySelectorAll('#chats b, #rooms img').length") == 0, "no markup from data")


# ---- the reply bot ----

def test_bot_one_reply_per_chat_across_kill9():
    """One reply per chat and per finished gift, none twice across a crash right after a reply was
    written (before XACK), a kill -9 midway and restarts; blocked words get none."""
    with Env("bot") as env:
        r, man = captured_room(env, frames=150, seed=42)
        evs = events_of(r)
        word = common_chat_word(evs)
        chats = [e for _, _, e in evs if e["type"] == "chat"]
        want_chats = {e["msg_id"] for e in chats
                      if word.casefold() not in e["content"].casefold() and word.casefold() not in nick(e).casefold()}
        blocked = {e["msg_id"] for e in chats} - want_chats
        want_gifts = {e["msg_id"] for _, _, e in evs if e["type"] == "gift" and e["gift"].get("repeat_end")
                      and word.casefold() not in nick(e).casefold()}
        check(blocked and want_chats and want_gifts, "fixture has blocked, allowed chats and gifts")
        stub = ModelStub(delay=0.02)
        try:
            args = ["--from-start", "--block", word, "--max-replies", "0", "--claim-idle-ms", "300"]
            env_a = dict(stub.env, DYLIVE_BOT_CRASH_AFTER_REPLY="10")
            a = consumer(env, "reply_bot.py", *args, "--consumer", "bot-a", log="bot-a.log", extra_env=env_a)
            check_eq(a.wait(timeout=60), 137, "bot-a crashed after its 10th reply, before XACK")
            check_eq(len(replies_of(r)), 10, "10 replies written before the crash")
            b = consumer(env, "reply_bot.py", *args, "--consumer", "bot-b", log="bot-b.log", extra_env=stub.env)
            wait_until(lambda: len(replies_of(r)) >= 40, 60, "bot-b halfway")
            b.send_signal(signal.SIGKILL)
            b.wait(timeout=10)
            check(len(replies_of(r)) < len(want_chats) + len(want_gifts), "killed midway")
            c = consumer(env, "reply_bot.py", *args, "--consumer", "bot-c", "--idle-exit", "2", log="bot-c.log",
                         extra_env=stub.env)
            check_eq(c.wait(timeout=90), 0, "bot-c finished")
        finally:
            stub.close()
        reps = replies_of(r)
        ids = [x["msg_id"] for x in reps]
        check_eq(len(ids), len(set(ids)), "no msg_id replied twice")
        check_eq({x["msg_id"] for x in reps if x["type"] == "chat"}, want_chats, "one reply per allowed chat")
        check_eq({x["msg_id"] for x in reps if x["type"] == "gift"}, want_gifts, "one thanks per finished gift")
        check(not blocked & set(ids), "blocked words got no reply")
        check(all(x["reply"].startswith("reply #") for x in reps), "replies come from the model")
        check(all(c["auth"] == "Bearer test-key" and c["path"] == "/v1/chat/completions" and
                  c["body"]["model"] == "stub-model" for c in stub.calls), "OpenAI-compatible calls")
        pending = r("XPENDING", "dylive:{%s}:events" % LIVE, "reply-bot")
        check_eq(pending[0], 0, "nothing left pending")


def test_bot_keywords_and_rate_limit():
    """--keywords narrows the chats answered; --max-replies/--window caps each room's replies."""
    with Env("bot-rate") as env:
        r, man = captured_room(env, frames=150, seed=42)
        evs = events_of(r)
        word = common_chat_word(evs)
        matching = [e for _, _, e in evs if e["type"] == "chat" and word.casefold() in e["content"].casefold()]
        check(len(matching) > 3, "more matching chats than the limit")
        stub = ModelStub()
        try:
            p = consumer(env, "reply_bot.py", "--from-start", "--keywords", word, "--no-gifts", "--max-replies", "3",
                         "--window", "3600", "--idle-exit", "2", extra_env=stub.env)
            check_eq(p.wait(timeout=60), 0, "bot exit")
        finally:
            stub.close()
        reps = replies_of(r)
        check_eq(len(reps), 3, "at most 3 replies per hour")
        check(all(word in x["text"] for x in reps), "only chats with the keyword: %r", reps)
        summary = json.loads(env.log("reply_bot.log").strip().splitlines()[-1].split("reply_bot: ", 1)[1])
        check_eq(summary["limited"], len(matching) - 3, "the rest was rate-limited")


# ---- the archiver ----

def test_archiver_counts_after_kill_and_crash():
    """SQLite and JSONL hold the stream exactly once after a crash between fsync and commit, a
    kill -9 midway and restarts."""
    with Env("archiver") as env:
        r, man = captured_room(env, frames=500, seed=9)
        evs = events_of(r)
        out = os.path.join(env.tmp, "archive")
        db_path = os.path.join(out, "archive.sqlite")
        args = ["--out", out, "--batch", "20", "--once"]
        a = consumer(env, "archiver.py", *args, log="arch-a.log",
                     extra_env={"DYLIVE_ARCHIVER_CRASH_BEFORE_COMMIT": "3"})
        check_eq(a.wait(timeout=60), 137, "crashed before its 3rd commit")

        def count(sql):
            db = sqlite3.connect(db_path)
            try:
                return db.execute(sql).fetchone()[0]
            except sqlite3.OperationalError:
                return 0
            finally:
                db.close()

        b = consumer(env, "archiver.py", *(args + ["--pause-ms", "30"]), log="arch-b.log")
        wait_until(lambda: count("SELECT count(*) FROM comment_data") >= 20, 60, "archiver midway")
        b.send_signal(signal.SIGKILL)
        b.wait(timeout=10)
        n_chat_types = sum(1 for _, _, e in evs if e["type"] in ("chat", "emoji_chat", "screen_chat"))
        check(count("SELECT count(*) FROM comment_data") < n_chat_types, "killed midway")
        c = consumer(env, "archiver.py", *args, log="arch-c.log")
        check_eq(c.wait(timeout=120), 0, "archiver finished")

        n_gifts = sum(1 for _, _, e in evs if e["type"] == "gift")
        check_eq(count("SELECT count(*) FROM comment_data"), n_chat_types, "comment_data rows")
        check_eq(count("SELECT count(DISTINCT msg_id) FROM comment_data"), n_chat_types, "no duplicate comments")
        check_eq(count("SELECT count(*) FROM gifts"), n_gifts, "gift rows")
        check_eq(count("SELECT sum(value) FROM gifts"), man["gift_diamonds_total"], "gift value")
        check_eq(count("SELECT sum(delta) FROM gifts"), man["gift_units_total"], "gift units")
        check_eq(count("SELECT sum(events) FROM live_sessions"), len(evs), "session event count")
        check_eq(count("SELECT ended FROM live_sessions WHERE live_id = '%s'" % LIVE), 1, "session ended")
        check_eq(count("SELECT last_id FROM cursors WHERE live_id = '%s'" % LIVE), evs[-1][0], "cursor at the end")
        lines = []
        for root, _, files in os.walk(os.path.join(out, "jsonl")):
            for fn in files:
                with open(os.path.join(root, fn), encoding="utf-8", newline="") as f:
                    text = f.read()  # not splitlines(): events may hold U+2028, a line break to Python
                check(text.endswith("\n"), "%s ends with a whole line", fn)
                lines += text[:-1].split("\n")
        check_eq(len(lines), len(evs), "JSONL lines")
        check_eq(sorted(json.loads(l)["msg_id"] for l in lines), sorted(e["msg_id"] for _, _, e in evs),
                 "every event once in the JSONL files")
        check_eq(r("XPENDING", "dylive:{%s}:events" % LIVE, "archiver")[0], 0, "everything acknowledged")


# ---- stats ----

def test_stats_match_manifest():
    with Env("stats") as env:
        r, man = captured_room(env, frames=150, seed=42)
        evs = events_of(r)
        p = subprocess.run([PYTHON, os.path.join(CONSUMERS, "stats.py"), "--redis", redis_url(env), "--json",
                            "--top", "3"], capture_output=True, text=True, timeout=60)
        check_eq(p.returncode, 0, "stats exit: %s" % p.stderr)
        s = json.loads(p.stdout)[LIVE]
        check_eq(s["gift_diamonds"], man["gift_diamonds_total"], "gift value")
        check_eq(s["gift_units"], man["gift_units_total"], "gift units")
        check_eq(s["gift_events"], man["by_type"]["gift"], "gift events")
        check_eq(s["events"], man["unique_msg_ids"], "events")
        check_eq(s["chats"], sum(man["by_type"].get(t, 0) for t in ("chat", "emoji_chat", "screen_chat")), "chats")
        check_eq(s["peak_viewers"], max(e["online"] for _, _, e in evs if e["type"] == "viewers"), "peak viewers")
        by_user = {}
        for _, _, e in evs:
            if e["type"] == "gift":
                uid = e["user"]["id"]
                by_user[uid] = by_user.get(uid, 0) + e["gift"]["delta"] * e["gift"]["diamonds"]
        top = sorted(by_user.values(), reverse=True)[:3]
        check_eq([g["diamonds"] for g in s["top_gifters"]], top, "top gifters")
        check(s["chats_per_min"] > 0, "chat rate")
        table = subprocess.run([PYTHON, os.path.join(CONSUMERS, "stats.py"), "--redis", redis_url(env)],
                               capture_output=True, text=True, timeout=60).stdout
        row = [l for l in table.splitlines() if l.startswith(LIVE)]
        check(row and str(man["gift_diamonds_total"]) in row[0], "table row: %r", table)
        check(not any(ch < " " and ch != "\n" for ch in table), "no control characters reach the terminal")


def test_consumers_help():
    for name in ("reply_bot.py", "archiver.py", "stats.py"):
        p = subprocess.run([PYTHON, os.path.join(CONSUMERS, name), "--help"], capture_output=True, text=True,
                           timeout=30)
        check(p.returncode == 0 and "--redis" in p.stdout and "--prefix" in p.stdout, "%s --help: %r", name, p)


if __name__ == "__main__":
    run()
