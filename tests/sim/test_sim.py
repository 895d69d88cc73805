#!/usr/bin/env python3
"""Tests for dylive-sim (python3 stdlib only).

usage: test_sim.py SIM_BINARY CAPTURES_DIR [unittest args, e.g. a TestCase name]
Each test case starts its own simulator on a random port in a temp dir and stops it afterwards.
No sleeps where an event can be awaited: everything polls with deadlines.
"""
import base64
import gzip
import hashlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import zlib

SIM = None
CAPTURES = None
CAPTURE_FILES = [
    "pushframe_2022-12-27_chat.bin",
    "pushframe_2022-12-28_chat.bin",
    "pushframe_2024-02-26_member_like_like.bin",
    "pushframe_2026-04-13_gift_banner_linker_ranklist.bin",
    "pushframe_2026-04-13_member.bin",
]
MSGS_PER_CAPTURE = [1, 1, 3, 4, 1]
LOG_IDS = [8726349535470258530, 3235896444036125441, 6163826846294803948, 803741752050424480, 644990964668164662]


# ---------------------------------------------------------------- protobuf helpers

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_fields(data):
    i = 0
    while i < len(data):
        key, i = read_varint(data, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(data, i)
        elif wt == 2:
            n, i = read_varint(data, i)
            v = data[i:i + n]
            if len(v) != n:
                raise ValueError("truncated")
            i += n
        elif wt == 1:
            v = data[i:i + 8]
            i += 8
        elif wt == 5:
            v = data[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        yield field, wt, v


def read_varint(data, i):
    shift = 0
    v = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, i
        shift += 7


def decode_pushframe(data):
    out = {"headers": {}}
    for f, wt, v in pb_fields(data):
        if f == 2 and wt == 0:
            out["log_id"] = v
        elif f == 5 and wt == 2:
            kv = {ff: vv for ff, _, vv in pb_fields(v)}
            out["headers"][kv.get(1, b"").decode()] = kv.get(2, b"").decode()
        elif f == 7 and wt == 2:
            out["payload_type"] = v.decode()
        elif f == 8 and wt == 2:
            out["payload"] = v
    return out


def decode_response(frame):
    payload = frame["payload"]
    if frame["headers"].get("compress_type") == "gzip":
        payload = gzip.decompress(payload)
    out = {"messages": 0, "need_ack": False, "internal_ext": ""}
    for f, wt, v in pb_fields(payload):
        if f == 1:
            out["messages"] += 1
        elif f == 5:
            out["internal_ext"] = v.decode()
        elif f == 9:
            out["need_ack"] = bool(v)
    return out


def ack_frame(log_id, ext):
    ext = ext.encode() if isinstance(ext, str) else ext
    return b"\x10" + varint(log_id) + b"\x3a\x03ack" + b"\x42" + varint(len(ext)) + ext


HB = bytes([0x3A, 0x02, 0x68, 0x62])


# ---------------------------------------------------------------- sim process + clients

class Sim:
    def __init__(self, rooms, extra=(), tmp=None):
        self.tmp = tmp
        args = [SIM]
        for r in rooms:
            args += ["--room", r]
        args += list(extra)
        self.errlog = open(os.path.join(tmp, "sim.err"), "w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.errlog, cwd=tmp)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError("sim did not start: %r %s" % (line, self.stderr()))
        self.port = int(line.split()[1])

    def stderr(self):
        self.errlog.flush()
        self.errlog.seek(0)
        return self.errlog.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.errlog.close()

    def http(self, method, target, headers=None, timeout=10):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            req = "%s %s HTTP/1.1\r\nHost: live.douyin.com\r\nConnection: close\r\n" % (method, target)
            for k, v in (headers or {}).items():
                req += "%s: %s\r\n" % (k, v)
            req += "Content-Length: 0\r\n\r\n" if method == "POST" else "\r\n"
            s.sendall(req.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs.append((k.strip().lower(), v.strip()))
        return status, hdrs, body

    def stats(self, live_id):
        st, _, body = self.http("GET", "/_sim/stats?live_id=%s" % live_id)
        assert st == 200, st
        return json.loads(body)

    def post(self, path):
        st, _, body = self.http("POST", path)
        assert st == 200, (st, body)
        return json.loads(body)

    def wait_stats(self, live_id, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats(live_id)
            if pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError("stats condition not met: %s" % s)
            time.sleep(0.01)


class WS:
    """Minimal RFC 6455 client (masked frames)."""

    def __init__(self, port, query, headers=None, tls=False, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /webcast/im/push/v2/?%s HTTP/1.1\r\nHost: webcast100-ws-web-lq.douyin.com\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (query, key))
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and lines[0] else 0
        self.headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status == 101:
            expect = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            assert self.headers.get("sec-websocket-accept") == expect.decode(), self.headers

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_frame(self):
        """-> (fin, opcode, payload); raises EOFError on TCP close."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frames must not be masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack(">H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_data(self, auto_pong=True):
        """next data message (binary/text); answers pings; returns (opcode, payload)"""
        while True:
            fin, op, p = self.recv_frame()
            if op == 9:
                if auto_pong:
                    self.send(10, p)
                continue
            if op == 10:
                continue
            assert fin, "server data frames are not fragmented"
            return op, p

    def send(self, op, payload, fin=True, mask=True):
        hdr = bytes([(0x80 if fin else 0) | op])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr += bytes([mbit | n])
        elif n < 65536:
            hdr += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([mbit | 127]) + struct.pack(">Q", n)
        if mask:
            m = os.urandom(4)
            hdr += m
            payload = bytes(b ^ m[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(hdr + payload)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


UID = "7319483754668557238"
SDK = "1.0.15"


def ws_query(room_id, signature="aB+c/dE+fG/hI+jK", sdk=SDK, uid=UID):
    # browser-like order (PROTOCOL §2.1), signature last and raw; signature=None leaves it out
    return ("app_name=douyin_web&version_code=180800&webcast_sdk_version=" + sdk + "&update_version_code=" + sdk +
            "&compress=gzip&device_platform=web&cookie_enabled=true&screen_width=1920&screen_height=1080"
            "&browser_language=zh-CN&browser_platform=Win32&browser_name=Mozilla"
            "&browser_version=5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)&browser_online=true&tz_name=Asia/Shanghai"
            "&cursor=d-1_u-1&internal_ext=internal_src:dim|wss_push_room_id:" + room_id +
            "&host=https://live.douyin.com&aid=6383&live_id=1&did_rule=3&endpoint=live_pc&support_wrds=1"
            "&user_unique_id=" + uid + "&im_path=/webcast/im/fetch/&identity=audience"
            "&need_persist_msg_count=15&insert_task_id=&live_reason=&room_id=" + room_id +
            "&heartbeatDuration=0" + ("" if signature is None else "&signature=" + signature))


# ---------------------------------------------------------------- WS signature (PROTOCOL §2.3-2.4)

SIG_ALPHA = "Dkdpgh4ZKsQB80/Mfvw36XI1R25+WUAlEi7NLboqYTOPuzmFjJnryx9HVGcaStCe"


def rc4(key, data):
    S = list(range(256))
    j = 0
    for i in range(256):
        j = (j + S[i] + key[i % len(key)]) & 255
        S[i], S[j] = S[j], S[i]
    i = j = 0
    out = bytearray()
    for b in data:
        i = (i + 1) & 255
        j = (j + S[i]) & 255
        S[i], S[j] = S[j], S[i]
        out.append(b ^ S[(S[i] + S[j]) & 255])
    return bytes(out)


def x_ms_stub(room_id, uid=UID, sdk=SDK):
    s = ("live_id=1,aid=6383,version_code=180800,webcast_sdk_version=%s,room_id=%s,sub_room_id=,sub_channel_id=,"
         "did_rule=3,user_unique_id=%s,device_platform=web,device_type=,ac=,identity=audience" % (sdk, room_id, uid))
    return hashlib.md5(s.encode()).hexdigest()


def sign(stub_hex, counter=1, flag=0, r1=None, key=None, flags_byte=None):
    """frontierSign X-Bogus of the stub, as J's native signer computes it (random key/r1 by default)."""
    r1 = os.urandom(1)[0] % 255 if r1 is None else r1
    key = os.urandom(1)[0] % 255 if key is None else key
    sd = hashlib.md5(bytes.fromhex(stub_hex)).digest()
    ed = hashlib.md5(hashlib.md5(b"").digest()).digest()
    p = [counter & 0x3F, 0, 1, 14, ed[14], ed[15], sd[14], sd[15], r1]
    x = 0
    for v in p:
        x ^= v
    raw = bytes([0x40 | (0x10 if flag else 0) if flags_byte is None else flags_byte, key]) + rc4(bytes([key]), bytes(p + [x]))
    out = ""
    for k in range(0, 12, 3):
        n = (raw[k] << 16) | (raw[k + 1] << 8) | raw[k + 2]
        out += "".join(SIG_ALPHA[(n >> sh) & 63] for sh in (18, 12, 6, 0))
    return out


def q_sig(sig):
    """A signature as a query value: '+' must be %2B, a raw '+' is a space to a standard parser."""
    return None if sig is None else sig.replace("+", "%2B")


def default_room_id(live_id):
    return str(7000000000000000000 + int(live_id) % 10**18)


class SimCase(unittest.TestCase):
    ROOMS = []
    EXTRA = []

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dylive-sim-test-")
        self.caps = []
        for f in CAPTURE_FILES:
            with open(os.path.join(CAPTURES, f), "rb") as fp:
                self.caps.append(fp.read())
        with open(os.path.join(self.tmp, "caps.frames"), "wb") as fp:
            for c in self.caps:
                fp.write(struct.pack(">I", len(c)) + c)
        self.sim = Sim(self.ROOMS, self.EXTRA, self.tmp)
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        err = self.sim.stderr()
        self.sim.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if any(e for e in self._outcome_errors()):
            sys.stderr.write("---- sim stderr ----\n" + err)

    def _outcome_errors(self):
        res = getattr(self._outcome, "result", None)
        if res is None:
            return []
        return [e for e in res.errors + res.failures if e[0] is self]

    def ws(self, room_id, **kw):
        w = WS(self.sim.port, ws_query(room_id), **kw)
        self.socks.append(w)
        return w


# ---------------------------------------------------------------- tests

class TestHttp(SimCase):
    ROOMS = ["123:caps.frames", "456,status=4,title=ended", "789,page=challenge", "999,page=gone",
             "555,room_id=7392091211001140287,enter=empty"]
    EXTRA = ["--ping-ms", "60000"]

    def test_ttwid(self):
        st, hdrs, body = self.sim.http("GET", "/")
        self.assertEqual(st, 200)
        cookies = [v for k, v in hdrs if k == "set-cookie"]
        tt = [c for c in cookies if c.startswith("ttwid=")]
        self.assertEqual(len(tt), 1, cookies)
        val = tt[0].split(";")[0][len("ttwid="):]
        parts = val.split("%7C")
        self.assertEqual(parts[0], "1")
        self.assertEqual(len(parts), 4)
        self.assertTrue(parts[2].isdigit())
        self.assertRegex(parts[3], r"^[0-9a-f]{64}$")
        self.assertIn("Path=/", tt[0])
        self.assertIn("Domain=douyin.com", tt[0])
        self.assertIn("HttpOnly", tt[0])
        self.assertIn(b"<html", body)

    def test_live_page(self):
        rid = default_room_id(123)
        st, hdrs, body = self.sim.http("GET", "/123?enter_from_merge=link_share&x=1",
                                       {"Cookie": "ttwid=abc", "User-Agent": "Mozilla/5.0"})
        self.assertEqual(st, 200)
        text = body.decode()
        self.assertIn('self.__pace_f.push([1,"', text)
        self.assertIn('roomId\\":\\"%s\\"' % rid, text)  # S regex form
        self.assertIn('\\"id_str\\":\\"%s\\",\\"status\\":2,\\"status_str\\":\\"2\\"' % rid, text)
        self.assertIn('\\"roomStore\\":{\\"roomInfo\\":{\\"room\\":{', text)
        self.assertIn('user_unique_id\\":\\"', text)
        self.assertNotIn("直播已结束", text)
        # J-style extraction: un-escape once, find the roomInfo object and parse it as JSON
        un = text.replace('\\"', '"')
        i = un.index('"roomStore":{"roomInfo":') + len('"roomStore":{"roomInfo":')
        obj, _ = json.JSONDecoder().raw_decode(un[i:])
        self.assertEqual(obj["room"]["id_str"], rid)
        self.assertEqual(obj["room"]["status"], 2)
        self.assertEqual(obj["roomId"], rid)
        self.assertEqual(obj["anchor"]["nickname"], "sim-anchor-123")
        self.assertEqual(obj["room"]["owner"]["nickname"], "sim-anchor-123")

    def test_ended_page(self):
        st, _, body = self.sim.http("GET", "/456")
        self.assertEqual(st, 200)
        text = body.decode()
        self.assertIn('\\"status\\":4,\\"status_str\\":\\"4\\"', text)
        self.assertIn("直播已结束", text)
        self.assertIn('\\"title\\":\\"ended\\"', text)

    def test_challenge_and_404(self):
        st, hdrs, body = self.sim.http("GET", "/789")
        self.assertEqual(st, 200)
        self.assertNotIn(b"roomId", body)
        self.assertNotIn(b"id_str", body)
        self.assertNotIn(b"roomStore", body)
        self.assertIn(b"<script", body)
        self.assertEqual(self.sim.http("GET", "/999")[0], 404)
        self.assertEqual(self.sim.http("GET", "/424242")[0], 404)
        self.assertEqual(self.sim.http("GET", "/_nope/x")[0], 404)

    def test_web_enter(self):
        q = ("/webcast/room/web/enter/?aid=6383&app_name=douyin_web&live_id=1&device_platform=web"
             "&web_rid=123&room_id_str=&msToken=x&a_bogus=a+b/c")
        st, hdrs, body = self.sim.http("GET", q)
        self.assertEqual(st, 200)
        d = json.loads(body)
        rid = default_room_id(123)
        self.assertEqual(d["status_code"], 0)
        self.assertEqual(d["data"]["room_status"], 0)
        self.assertEqual(d["data"]["enter_room_id"], rid)
        r0 = d["data"]["data"][0]
        self.assertEqual((r0["id_str"], r0["status"], r0["status_str"]), (rid, 2, "2"))
        for k in ("title", "user_count_str", "like_count", "room_view_stats"):
            self.assertIn(k, r0)
        self.assertIn("total_user_str", r0["stats"])
        self.assertEqual(r0["owner"]["nickname"], d["data"]["user"]["nickname"])
        for k in ("nickname", "id_str", "sec_uid"):
            self.assertIn(k, d["data"]["user"])
        self.assertIsInstance(d["extra"]["now"], int)
        d4 = json.loads(self.sim.http("GET", "/webcast/room/web/enter/?aid=6383&web_rid=456")[2])
        self.assertEqual((d4["data"]["room_status"], d4["data"]["data"][0]["status"]), (2, 4))
        dx = json.loads(self.sim.http("GET", "/webcast/room/web/enter/?aid=6383&web_rid=31337")[2])
        self.assertNotEqual(dx["status_code"], 0)
        st, _, body = self.sim.http("GET", "/webcast/room/web/enter/?aid=6383&web_rid=555")
        self.assertEqual((st, body), (200, b""))

    def test_ws_unknown_room_404(self):
        w = self.ws("1234567890123456789")
        self.assertEqual(w.status, 404)

    def test_keepalive(self):
        s = socket.create_connection(("127.0.0.1", self.sim.port), timeout=5)
        self.socks.append(WSWrap(s))
        s.sendall(b"GET /123 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 2)


class WSWrap:
    def __init__(self, s):
        self.s = s

    def close(self):
        self.s.close()


class TestWs(SimCase):
    ROOMS = ["123:caps.frames", "77:caps.frames,room_id=7392091211001140287", "88,ws=reject"]
    EXTRA = ["--ping-ms", "60000", "--repush", "3"]

    def test_frames_acks_hb(self):
        rid = default_room_id(123)
        w = self.ws(rid, headers={"Cookie": "ttwid=1%7Cabc", "User-Agent": "UA/1", "Origin": "https://live.douyin.com",
                                  "Referer": "https://live.douyin.com/123"})
        self.assertEqual(w.status, 101)
        w.send(2, HB)  # binary hb
        got = []
        for i in range(5):
            op, p = w.recv_data()
            self.assertEqual(op, 2)
            got.append(p)
        self.assertEqual(got, self.caps)  # byte-exact, in order
        for p in got:
            fr = decode_pushframe(p)
            resp = decode_response(fr)
            self.assertTrue(resp["need_ack"])
            w.send(2, ack_frame(fr["log_id"], resp["internal_ext"]))
        # ack with the header's internal_ext (2022 frames differ) also counts as ok
        fr0 = decode_pushframe(got[0])
        w.send(2, ack_frame(fr0["log_id"], fr0["headers"]["im-internal_ext"]))
        w.send(2, ack_frame(fr0["log_id"], "wrong"))
        w.send(2, ack_frame(12345, "x"))
        w.send(1, HB)  # text hb
        w.send(2, b"\x3a\x03msg")  # other
        s = self.sim.wait_stats("123", lambda s: s["hb"] == 2 and s["acks_ok"] + s["acks_bad"] == 8
                                and s["other_client_frames"] == 1)
        self.assertEqual((s["acks_ok"], s["acks_bad"]), (6, 2))
        self.assertEqual((s["frames_sent"], s["messages_sent"], s["acks_expected"]), (5, 10, 5))
        self.assertEqual((s["position"], s["total_frames"], s["done"]), (5, 5, True))
        self.assertEqual((s["connections"], s["open"]), (1, 1))
        self.assertEqual(s["last_query"], ws_query(rid))
        self.assertTrue(s["last_query"].endswith("&signature=aB+c/dE+fG/hI+jK"))
        h = s["last_headers"]
        self.assertEqual((h["cookie"], h["user-agent"], h["origin"], h["referer"]),
                         ("ttwid=1%7Cabc", "UA/1", "https://live.douyin.com", "https://live.douyin.com/123"))
        self.assertEqual(LOG_IDS, [decode_pushframe(p)["log_id"] for p in got])

    def test_repush_on_reconnect_and_drop(self):
        w = self.ws("7392091211001140287")
        got = [w.recv_data()[1] for _ in range(5)]
        self.assertEqual(got, self.caps)
        self.sim.wait_stats("77", lambda s: s["done"])
        r = self.sim.post("/_sim/drop?live_id=77")
        self.assertEqual(r["connections"], 1)
        # abrupt TCP close: EOF with no close frame before it
        with self.assertRaises((EOFError, ConnectionResetError)):
            while True:
                fin, op, p = w.recv_frame()
                self.assertNotEqual(op, 8, "drop must not send a close frame")
        # reconnect: the frames holding the last 3 messages (member frame=1 msg, gift frame=4) are re-pushed
        w2 = self.ws("7392091211001140287")
        self.assertEqual(w2.recv_data()[1], self.caps[3])
        self.assertEqual(w2.recv_data()[1], self.caps[4])
        s = self.sim.wait_stats("77", lambda s: s["frames_sent"] == 7)
        self.assertEqual((s["connections"], s["open"], s["position"]), (2, 1, 5))
        # nothing more arrives: the quiet room only pings; use a close handshake to end
        w2.send(8, struct.pack(">H", 1000))
        fin, op, p = w2.recv_frame()
        self.assertEqual((op, p[:2]), (8, struct.pack(">H", 1000)))
        self.sim.wait_stats("77", lambda s: s["open"] == 0 and s["client_closes"] == 1)

    def test_server_close_code(self):
        w = self.ws(default_room_id(123))
        for _ in range(5):
            w.recv_data()
        self.sim.post("/_sim/close?live_id=123&code=1013")
        op, p = None, b""
        while op != 8:
            fin, op, p = w.recv_frame()
        self.assertEqual(struct.unpack(">H", p[:2])[0], 1013)
        w.send(8, p[:2])
        with self.assertRaises(EOFError):
            w.recv_frame()

    def test_reject_and_protocol_errors(self):
        w = self.ws(default_room_id(88))
        self.assertEqual(w.status, 200)
        self.assertEqual(w.headers.get("handshake-status"), "415")
        self.assertEqual(w.headers.get("handshake-msg"), "DEVICE_BLOCKED")
        self.assertEqual(self.sim.stats("88")["ws_rejected"], 1)
        # unmasked client frame -> close 1002
        w = self.ws(default_room_id(123))
        for _ in range(5):
            w.recv_data()
        w.send(2, HB, mask=False)
        op = None
        while op != 8:
            fin, op, p = w.recv_frame()
        self.assertEqual(struct.unpack(">H", p[:2])[0], 1002)

    def test_fragmented_and_lengths(self):
        w = self.ws(default_room_id(123))
        for _ in range(5):
            w.recv_data()
        # hb in three fragments with a ping in between
        w.send(2, HB[:1], fin=False)
        w.send(9, b"pp")
        w.send(0, HB[1:3], fin=False)
        w.send(0, HB[3:], fin=True)
        fin, op, p = w.recv_frame()
        self.assertEqual((op, p), (10, b"pp"))
        # 16-bit and 64-bit length client messages (not PushFrames of a known type -> other)
        w.send(2, b"\x3a\x03zzz" + b"\x42" + varint(300) + b"a" * 300)
        w.send(2, b"\x3a\x03zzz" + b"\x42" + varint(70000) + b"a" * 70000)
        self.sim.wait_stats("123", lambda s: s["hb"] == 1 and s["other_client_frames"] == 2)


class TestPingInject(SimCase):
    ROOMS = ["123:caps.frames", "321"]
    EXTRA = ["--ping-ms", "100"]

    def test_ping_pong(self):
        w = self.ws(default_room_id(321))  # quiet room: no frames, still pings
        pings = 0
        while pings < 2:
            fin, op, p = w.recv_frame()
            self.assertIn(op, (9,))
            pings += 1
            w.send(10, p)
        s = self.sim.wait_stats("321", lambda s: s["pongs"] == 2)
        self.assertGreaterEqual(s["pings_sent"], 2)
        self.assertEqual(s["frames_sent"], 0)

    def test_inject(self):
        w = self.ws(default_room_id(123))
        for _ in range(5):
            w.recv_data()
        for kind in ("garbage", "truncated", "badgzip", "badwire", "bomb"):
            r = self.sim.post("/_sim/inject?live_id=123&kind=" + kind)
            self.assertEqual(r["connections"], 1)
            op, p = w.recv_data()
            self.assertEqual(op, 2)
            if kind == "garbage":
                with self.assertRaises(ValueError):
                    list(pb_fields(p))
            elif kind == "truncated":
                with self.assertRaises(ValueError):
                    list(pb_fields(p))
            elif kind == "badgzip":
                fr = decode_pushframe(p)
                with self.assertRaises(Exception):
                    gzip.decompress(fr["payload"])
            elif kind == "badwire":
                fr = decode_pushframe(p)
                resp = gzip.decompress(fr["payload"])
                msg = [v for f, wt, v in pb_fields(resp) if f == 1][0]
                wts = {f: wt for f, wt, v in pb_fields(msg)}
                self.assertEqual(wts[3], 2)  # msg_id is a varint field; sent length-delimited
            elif kind == "bomb":
                fr = decode_pushframe(p)
                self.assertLess(len(p), 2 << 20)
                d = zlib.decompressobj(16 + 15)
                total = 0
                data = fr["payload"]
                while data and total < (256 << 20):
                    total += len(d.decompress(data, 64 << 20))
                    data = d.unconsumed_tail
                self.assertGreaterEqual(total, 256 << 20)
        self.assertEqual(self.sim.stats("123")["injected"], 5)
        self.assertEqual(self.sim.http("POST", "/_sim/inject?live_id=123&kind=nope")[0], 400)


class TestPacingLoop(SimCase):
    ROOMS = ["123:caps.frames,fps=50", "124:caps.frames,loop", "125:caps.frames"]
    EXTRA = ["--ping-ms", "60000"]

    def test_fps(self):
        t0 = time.monotonic()
        w = self.ws(default_room_id(123))
        got = [w.recv_data()[1] for _ in range(5)]
        dt = time.monotonic() - t0
        self.assertEqual(got, self.caps)
        self.assertGreaterEqual(dt, 0.07)  # 5 frames at 50/s: >= 4 intervals of 20 ms

    def test_loop(self):
        w = self.ws(default_room_id(124))
        got = [w.recv_data()[1] for _ in range(12)]
        self.assertEqual(got, self.caps + self.caps + self.caps[:2])

    def test_pause_resume(self):
        self.sim.post("/_sim/pause?live_id=125")
        w = self.ws(default_room_id(125))
        w.sock.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            w.recv_data()
        self.assertEqual(self.sim.stats("125")["position"], 0)
        self.sim.post("/_sim/resume?live_id=125")
        w.sock.settimeout(5)
        self.assertEqual([w.recv_data()[1] for _ in range(5)], self.caps)


class TestSignature(SimCase):
    ROOMS = ["123:caps.frames", "77:caps.frames,room_id=7392091211001140287", "88,sig=off"]
    EXTRA = ["--ping-ms", "60000", "--check-signature"]

    def test_vectors(self):
        stub = "704f436b2558b0d7a1c7e758527dd8f1"
        self.assertEqual(sign(stub, counter=1, flag=1, r1=63, key=63), "6pt0VC0aRZDP7n07")
        self.assertEqual(sign(stub, counter=0, flag=0, r1=0, key=6), "fD+evFuzasjOC8Uu")
        self.assertEqual(x_ms_stub("7392091211001140287", sdk="1.0.14-beta.0"), "9b52de5b7772a58cf9bc09a17a06db92")

    def connect(self, room_id, sig, raw=False, **kw):
        w = WS(self.sim.port, ws_query(room_id, sig if raw else q_sig(sig), **kw))
        self.socks.append(w)
        return w

    def assert_rejected(self, w):
        self.assertEqual(w.status, 200)
        self.assertEqual(w.headers.get("content-length"), "0")
        self.assertEqual(w.headers.get("handshake-status"), "415")
        self.assertEqual(w.headers.get("handshake-msg"), "DEVICE_BLOCKED")
        self.assertEqual(w.headers.get("server"), "Tengine")
        self.assertRegex(w.headers.get("x-tt-logid", ""), "^[0-9a-f]{16,}$")
        self.assertNotIn("upgrade", w.headers)
        self.assertEqual(w.buf, b"")
        self.assertEqual(w.sock.recv(100), b"")  # closed, nothing after the head

    def sig_with(self, stub, ch):
        while True:  # a random signature holding the character ch
            s = sign(stub, counter=1 + os.urandom(1)[0] % 63, flag=os.urandom(1)[0] & 1)
            if ch in s:
                return s

    def test_good_signatures(self):
        rid = default_room_id(123)
        stub = x_ms_stub(rid)
        # a literal '/' passes ('+' as %2B)
        w = self.connect(rid, self.sig_with(stub, "/"))
        self.assertEqual(w.status, 101)
        w.close()
        # a literal '+' is a space to a standard query parser: refused
        s = self.sig_with(stub, "+")
        self.assert_rejected(self.connect(rid, s, raw=True))
        st = self.sim.stats("123")
        self.assertEqual(st["last_reject"], "sig_bad")
        self.assertIn("outside the signature alphabet", st["last_reject_detail"])
        # %2B / %2F percent-encoded forms
        w = self.connect(rid, s.replace("+", "%2B").replace("/", "%2F"), raw=True)
        self.assertEqual(w.status, 101)
        self.assertEqual([w.recv_data()[1] for _ in range(5)], self.caps)
        st = self.sim.stats("123")
        self.assertEqual((st["sig_ok"], st["sig_bad"], st["sig_missing"], st["sig_reused"], st["ws_rejected"]),
                         (2, 1, 0, 0, 1))
        self.assertTrue(st["sig_check"])
        # PROTOCOL §2.3 worked example: sdk 1.0.14-beta.0, room 7392091211001140287
        stub = "9b52de5b7772a58cf9bc09a17a06db92"
        w = self.connect("7392091211001140287", sign(stub), sdk="1.0.14-beta.0")
        self.assertEqual(w.status, 101)
        self.assertEqual(self.sim.stats("77")["sig_ok"], 1)

    def test_bad_signatures(self):
        rid = default_room_id(123)
        stub = x_ms_stub(rid)
        cases = [
            (None, "sig_missing"),
            ("", "sig_missing"),
            ("aB+c/dE+fG/hI+jK", "sig_bad"),  # garbage
            ("00000000", "sig_bad"),
            (sign(stub)[:15], "sig_bad"),
            (sign(stub) + "x", "sig_bad"),
            ("!" + sign(stub)[1:], "sig_bad"),  # outside the alphabet
            (sign(x_ms_stub(rid, uid="7319483754668557239")), "sig_bad"),  # another uid
            (sign(x_ms_stub(default_room_id(124))), "sig_bad"),  # another room
            (sign(x_ms_stub(rid, sdk="1.0.14-beta.0")), "sig_bad"),  # another sdk
            (sign(stub, flags_byte=0x10), "sig_bad"),  # flag 0x40 missing
        ]
        for i, (sig, why) in enumerate(cases):
            self.assert_rejected(self.connect(rid, sig))
            st = self.sim.stats("123")
            self.assertEqual(st["last_reject"], why, (sig, st["last_reject_detail"]))
            self.assertEqual(st["ws_rejected"], i + 1)
        # the sdk in the URL is what is hashed: signing with the URL's own sdk passes
        self.assertEqual(self.connect(rid, sign(x_ms_stub(rid, sdk="1.0.14-beta.0")), sdk="1.0.14-beta.0").status, 101)
        # reuse, raw and percent-encoded
        s = self.sig_with(stub, "/")
        self.assertEqual(self.connect(rid, s).status, 101)
        self.assert_rejected(self.connect(rid, s))
        self.assert_rejected(self.connect(rid, s.replace("+", "%2B").replace("/", "%2F")))
        st = self.sim.stats("123")
        self.assertEqual(st["last_reject"], "sig_reused")
        self.assertEqual((st["sig_ok"], st["sig_bad"], st["sig_missing"], st["sig_reused"], st["ws_rejected"]),
                         (2, 9, 2, 2, 13))
        self.assertEqual(st["connections"], 2)
        # the last 64 are remembered; older ones fall out
        first = sign(stub, counter=5, r1=1, key=1)
        self.assertEqual(self.connect(rid, first).status, 101)
        seen = {first, s}
        n = 0
        while n < 64:
            t = sign(stub)
            if t in seen:
                continue
            seen.add(t)
            w = self.connect(rid, t)
            self.assertEqual(w.status, 101)
            w.close()
            n += 1
        self.assertEqual(self.connect(rid, first).status, 101)

    def test_sig_off_room(self):
        rid = default_room_id(88)
        for sig in ("aB+c/dE+fG/hI+jK", None, "", "aB+c/dE+fG/hI+jK"):
            self.assertEqual(self.connect(rid, sig, raw=True).status, 101)
        st = self.sim.stats("88")
        self.assertFalse(st["sig_check"])
        self.assertEqual((st["connections"], st["ws_rejected"], st["sig_ok"]), (4, 0, 0))

    def test_per_room_option_without_flag(self):
        tmp = tempfile.mkdtemp(prefix="dylive-sim-test-")
        sim = Sim(["55,sig=check", "66"], ["--ping-ms", "60000"], tmp)
        try:
            for live, expect in (("55", 200), ("66", 101)):
                w = WS(sim.port, ws_query(default_room_id(live)))
                self.assertEqual(w.status, expect)
                w.close()
            w = WS(sim.port, ws_query(default_room_id(55), q_sig(sign(x_ms_stub(default_room_id(55))))))
            self.assertEqual(w.status, 101)
            w.close()
            self.assertEqual(sim.stats("55")["last_reject"], "sig_bad")
            self.assertEqual(sim.stats("66")["ws_rejected"], 0)
        finally:
            sim.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class TestTls(SimCase):
    ROOMS = ["123:caps.frames"]

    def setUp(self):
        self.tmp0 = tempfile.mkdtemp(prefix="dylive-sim-tls-")
        cert, key = os.path.join(self.tmp0, "c.pem"), os.path.join(self.tmp0, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
        self.EXTRA = ["--tls-cert", cert, "--tls-key", key, "--ping-ms", "60000"]
        super().setUp()

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.tmp0, ignore_errors=True)

    def test_tls_and_plain_same_port(self):
        w = self.ws(default_room_id(123), tls=True)
        self.assertEqual(w.status, 101)
        self.assertEqual([w.recv_data()[1] for _ in range(5)], self.caps)
        w.send(2, HB)
        self.sim.wait_stats("123", lambda s: s["hb"] == 1)
        st, _, _ = self.sim.http("GET", "/123")  # plain HTTP on the same port
        self.assertEqual(st, 200)


if __name__ == "__main__":
    SIM = os.path.abspath(sys.argv[1])
    CAPTURES = os.path.abspath(sys.argv[2])
    if shutil.which("openssl") is None:
        del TestTls
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
