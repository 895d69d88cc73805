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
    for f, wt, v, _, _ in pb_spans(data):
        yield f, wt, v


def pb_spans(data):
    """(field, wire type, value, start, end): data[start:end] is the field's raw bytes"""
    i = 0
    while i < len(data):
        start = i
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
        yield field, wt, v, start, i


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
GIFT = "WebcastGiftMessage"


def pb_key(field, wt):
    return varint(field << 3 | wt)


def pb_rebuild(data, fn):
    """data re-encoded field by field: fn(field, wt, value, raw) gives the bytes that replace raw"""
    return b"".join(fn(f, wt, v, data[a:b]) for f, wt, v, a, b in pb_spans(data))


def message_method(msg):
    return next((v.decode() for f, wt, v in pb_fields(msg) if f == 1 and wt == 2), "")


def with_log_id(frame, log_id):
    return pb_rebuild(frame, lambda f, wt, v, raw: pb_key(2, 0) + varint(log_id) if f == 2 else raw)


def keep_messages(frame, keep):
    """-> (the PushFrame with only the Response messages for which keep(message) holds, that Response);
    every other field of both kept byte for byte, the payload re-gzipped if it was gzipped"""
    fr = decode_pushframe(frame)
    gz = fr["headers"].get("compress_type") == "gzip"
    resp = gzip.decompress(fr["payload"]) if gz else fr["payload"]
    new = pb_rebuild(resp, lambda f, wt, v, raw: raw if f != 1 or keep(v) else b"")
    payload = gzip.compress(new) if gz else new
    return pb_rebuild(frame, lambda f, wt, v, raw: pb_key(8, 2) + varint(len(payload)) + payload if f == 8 else raw), new


def without_payload(frame):
    return pb_rebuild(frame, lambda f, wt, v, raw: b"" if f == 8 else raw)


def frames_file(path, frames):
    with open(path, "wb") as fp:
        for c in frames:
            fp.write(struct.pack(">I", len(c)) + c)


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
            self.proc.wait(5)
            err = self.stderr()
            self.stop()
            raise RuntimeError("sim did not start: %r %s" % (line, err))
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


# ---------------------------------------------------------------- a_bogus (PROTOCOL §9.2), a reference signer

def sm3(data):
    """SM3 (GB/T 32905-2016), from the standard; independent of OpenSSL and of the sim's C code"""
    M = 0xFFFFFFFF

    def rotl(x, n):
        n %= 32
        return ((x << n) | (x >> (32 - n))) & M

    def p0(x):
        return x ^ rotl(x, 9) ^ rotl(x, 17)

    def p1(x):
        return x ^ rotl(x, 15) ^ rotl(x, 23)

    v = [0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600, 0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E]
    msg = bytes(data) + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack(">Q", len(data) * 8)
    for off in range(0, len(msg), 64):
        w = list(struct.unpack(">16I", msg[off:off + 64]))
        for j in range(16, 68):
            w.append(p1(w[j - 16] ^ w[j - 9] ^ rotl(w[j - 3], 15)) ^ rotl(w[j - 13], 7) ^ w[j - 6])
        a, b, c, d, e, f, g, h = v
        for j in range(64):
            t = 0x79CC4519 if j < 16 else 0x7A879D8A
            ss1 = rotl((rotl(a, 12) + e + rotl(t, j)) & M, 7)
            ss2 = ss1 ^ rotl(a, 12)
            ff = a ^ b ^ c if j < 16 else (a & b) | (a & c) | (b & c)
            gg = e ^ f ^ g if j < 16 else (e & f) | (~e & M & g)
            tt1 = (ff + d + ss2 + (w[j] ^ w[j + 4])) & M
            tt2 = (gg + h + ss1 + w[j]) & M
            a, b, c, d, e, f, g, h = tt1, a, rotl(b, 9), c, p0(tt2), e, rotl(f, 19), g
        v = [x ^ y for x, y in zip(v, (a, b, c, d, e, f, g, h))]
    return struct.pack(">8I", *v)


AB_A3 = "ckdp1h4ZKsUB80/Mfvw36XIgR25+WQAlEi7NLboqYTOPuzmFjJnryx9HVGDaStCe"
AB_A4 = "Dkdpgh2ZmsQB80/MfvV36XI1R45-WUAlEixNLwoqYTOPuzKFjJnry79HbGcaStCe"
AB_ENV = "1920|1080|1920|1040|0|30|0|0|1872|92|1920|1040|1857|92|1|24|Win32"


def b64_alpha(alpha, data, pad):
    out = ""
    for i in range(0, len(data), 3):
        chunk = data[i:i + 3]
        n = int.from_bytes(chunk + bytes(3 - len(chunk)), "big")
        out += "".join(alpha[(n >> sh) & 63] for sh in (18, 12, 6, 0))[:len(chunk) + 1]
    return out + "=" * (-len(out) % 4 if pad else 0)


def ab_hashes(query, ua, body="", pad_ua=False):
    """h1, h2, h3 of §9.2 steps 1-3"""
    h1 = sm3(sm3((query + "cus").encode()))
    h2 = sm3(sm3((body + "cus").encode()))
    return h1, h2, sm3(b64_alpha(AB_A3, rc4(bytes([0, 1, 14]), ua.encode()), pad_ua).encode())


def a_bogus(query, ua, t0, body="", pad_ua=False, t32=False, page_id=110624, r=(1234, 9876, 5555),
            opts=((3, 45), (1, 0), (1, 5)), env=AB_ENV):
    """a_bogus of the "cus" family as H/J make it (defaults), with the variants §9.2 lists as options"""
    h1, h2, h3 = ab_hashes(query, ua, body, pad_ua)
    if t32:
        t0 &= 0xFFFFFFFF
    t1, aid, a0, a1, a2 = t0 + 100, 6383, 0, 1, 14
    e = env.encode()

    def b(v, sh):
        return (v >> sh) & 0xFF

    y = [44, b(t0, 24), b(page_id, 24), b(a0, 24), b(a1, 8), b(a2, 24), b(aid, 8), h1[21], h2[21], b(page_id, 16),
         h3[23], b(t0, 16), b(a0, 16), b(page_id, 8), b(page_id, 0), b(a1, 0), b(a2, 16), b(aid, 0), h1[22], h2[22],
         h3[24], b(t0, 8), b(a0, 8), b(a1, 24), b(aid, 24), b(a2, 8), b(t0, 0), b(a0, 0), b(a1, 16), b(a2, 0),
         b(t1, 24), b(t1, 16), b(aid, 16), b(t1, 8), b(t1, 0), 3, b(t1, 32), b(t1, 40), b(t0, 32), b(t0, 40),
         b(len(e), 0), b(len(e), 8), 0, 0]
    c = 0
    for v in y:
        c ^= v
    x = rc4(b"y", bytes(y) + e + bytes([c]))
    prefix = b""
    for rv, (o0, o1) in zip(r, opts):
        lo, hi = rv & 0xFF, (rv >> 8) & 0xFF
        prefix += bytes([(lo & 0xAA) | (o0 & 0x55), (lo & 0x55) | (o0 & 0xAA), (hi & 0xAA) | (o1 & 0x55),
                         (hi & 0x55) | (o1 & 0xAA)])
    return b64_alpha(AB_A4, prefix + x, True)


# the worked example of PROTOCOL §9.2
AB_Q = ("aid=6383&app_name=douyin_web&live_id=1&device_platform=web&language=zh-CN&enter_from=link_share"
        "&cookie_enabled=true&screen_width=1920&screen_height=1080&browser_language=zh-CN&browser_platform=Win32"
        "&browser_name=Chrome&browser_version=136.0.0.0&os_name=Windows&os_version=10&web_rid=261378947940"
        "&room_id_str=7392091211001140287&enter_source=&is_need_double_stream=false&insert_task_id=&live_reason="
        "&msToken=")
AB_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 "
         "Safari/537.36")
AB_T0 = 1760000000000
AB_EX = ("E7mhBmg6mEVNgf6X56nLfY3q6-Z3Ylsl0HViMD2fCn3M0L39HMYD9exo1HUveKWji4/sIeYjy4hbO3xprQAjM36UHWwEUdQ2mgWkKl5Q5I0j5"
         "3iruyRDntmF4vj3SFlm5XNAEOk0y75rKb70Woqe-vIlO62-zo0/94D=")


def enter_query(web_rid, room_id=""):
    """J's web/enter query (§9.3) for another room, without a_bogus"""
    return AB_Q.replace("web_rid=261378947940", "web_rid=" + web_rid).replace(
        "room_id_str=7392091211001140287", "room_id_str=" + room_id)


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
        frames_file(os.path.join(self.tmp, "caps.frames"), self.caps)
        for name, frames in self.frames_files().items():
            frames_file(os.path.join(self.tmp, name), frames)
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

    def frames_files(self):
        """more frames files for ROOMS: {name: [PushFrame bytes]}, written before the sim starts"""
        return {}

    def other_sim(self, rooms, extra=("--ping-ms", "60000")):
        """one more simulator for this test, in its own temp dir; stopped and removed afterwards"""
        tmp = tempfile.mkdtemp(prefix="dylive-sim-test-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        sim = Sim(rooms, list(extra), tmp)
        self.addCleanup(sim.stop)
        return sim

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


class TestPacingMicro(SimCase):
    """--pace-us: paced frames leave at their own time to the microsecond, still at the room's rate
    and in order (the cost bench's rooms phase with frames spread as the real service sends them)."""
    ROOMS = ["123:caps.frames,fps=50", "124:caps.frames,fps=400,loop"]
    EXTRA = ["--ping-ms", "60000", "--pace-us"]

    def test_fps(self):
        t0 = time.monotonic()
        w = self.ws(default_room_id(123))
        got = [w.recv_data()[1] for _ in range(5)]
        self.assertEqual(got, self.caps)
        self.assertGreaterEqual(time.monotonic() - t0, 0.07)  # >= 4 intervals of 20 ms

    def test_sub_millisecond_period(self):
        w = self.ws(default_room_id(124))
        w.recv_data()
        t0 = time.monotonic()
        got = [w.recv_data()[1] for _ in range(40)]
        dt = time.monotonic() - t0
        self.assertEqual(got, (self.caps * 9)[1:41])
        self.assertGreaterEqual(dt, 0.09)  # 40 intervals of 2.5 ms, not 2 ms ticks
        self.assertLess(dt, 2.0)


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


class TestQuery(SimCase):
    """Standard query parsing: '+' is a space, %2B is '+', names are decoded, bad escapes stay literal."""
    ROOMS = ["123:caps.frames,sdk=a b+c", "124"]
    EXTRA = ["--ping-ms", "60000"]

    def upgrade(self, live_id, query):
        w = WS(self.sim.port, query)
        self.socks.append(w)
        return w.status, self.sim.stats(live_id)["upgrades"][-1]

    def test_plus_is_space(self):
        rid = default_room_id(123)
        for sdk, want in (("a+b%2Bc", 101), ("a%20b%2Bc", 101), ("a+b+c", 200), ("a%2Bb%2Bc", 200), ("a%20b+c", 200)):
            status, up = self.upgrade("123", ws_query(rid, sdk=sdk))
            self.assertEqual(status, want, (sdk, up))
        st = self.sim.stats("123")
        self.assertEqual([u["webcast_sdk_version"] for u in st["upgrades"]], ["a b+c", "a b+c", "a b c", "a+b+c", "a b c"])
        self.assertEqual((st["connections"], st["sdk_bad"]), (2, 3))

    def test_names_decoded_first_wins_bad_escapes_literal(self):
        rid = default_room_id(124)
        q = ws_query(rid).replace("update_version_code=" + SDK, "update_%76ersion_code=%41%zz%4+x%2")
        status, up = self.upgrade("124", q + "&update_version_code=second")
        self.assertEqual(status, 101)
        self.assertEqual(up["update_version_code"], "A%zz%4 x%2")
        # a name written with escapes finds the room in /_sim too
        self.assertEqual(self.sim.stats("124")["live_id"], "124")
        st, _, body = self.sim.http("GET", "/_sim/stats?live%5Fid=12%34")
        self.assertEqual((st, json.loads(body)["live_id"]), (200, "124"))
        # room_id decoded: %37 is '7'
        w = WS(self.sim.port, ws_query("%37" + rid[1:]))
        self.socks.append(w)
        self.assertEqual(w.status, 101)


class TestABogus(SimCase):
    """a_bogus on web/enter (PROTOCOL §9.2 "Checking one"); the sim's clock is the worked example's t0."""
    ROOMS = ["261378947940,room_id=7392091211001140287", "123,abogus=off", "124,abogus=check"]
    EXTRA = ["--ping-ms", "60000", "--check-abogus", "--clock-ms", str(AB_T0)]

    def enter(self, query, ua=AB_UA):
        st, _, body = self.sim.http("GET", "/webcast/room/web/enter/?" + query, {"User-Agent": ua} if ua else {})
        self.assertEqual(st, 200)
        return json.loads(body) if body else None

    def verdict(self, query, ua=AB_UA, live="261378947940"):
        """-> "ok" (JSON answer) or the reason of the refusal (empty body)"""
        d = self.enter(query, ua)
        st = self.sim.stats(live)
        if d is None:
            self.assertNotEqual(st["last_abogus"], "ok")
            return st["last_abogus"]
        self.assertEqual(st["last_abogus"], "ok", st)
        return "ok"

    def test_reference_signer(self):
        self.assertEqual(sm3(b"abc").hex(), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
        if "sm3" in hashlib.algorithms_available:
            for n in (0, 55, 56, 64, 119, 300):
                self.assertEqual(sm3(b"x" * n), hashlib.new("sm3", b"x" * n).digest())
        h1, h2, h3 = ab_hashes(AB_Q, AB_UA)
        self.assertEqual(len(AB_Q), 407)
        self.assertEqual(h1.hex(), "6e454d9efb26370ec7f4de8ea0441917292fc6f618848e70944ee818504aa38e")
        self.assertEqual(h2.hex(), "886572933a4dcfc9d7a29a5df80d8ea06949d7f1533a332bff26a88dd8c223ec")
        self.assertEqual(h3.hex(), "33233c6cc49399552390c87c3d73428cb14b32a19b1fe358d46cbb9ce098bedb")
        self.assertEqual(ab_hashes(AB_Q, AB_UA, "GET")[1][21:23].hex(), "fba7")
        self.assertEqual(a_bogus(AB_Q, AB_UA, AB_T0), AB_EX)
        j = a_bogus(AB_Q, AB_UA, AB_T0, t32=True)
        self.assertEqual([i + 1 for i in range(len(j)) if j[i] != AB_EX[i]], [65, 66, 67, 68, 70])
        self.assertIn("KWjZsmfIFYjy4hbO3x", j)

    def test_worked_example_accepted(self):
        for ab in (AB_EX, a_bogus(AB_Q, AB_UA, AB_T0, t32=True), AB_EX.replace("/", "%2F").replace("=", "%3D")):
            d = self.enter(AB_Q + "&a_bogus=" + ab)
            self.assertIsNotNone(d, self.sim.stats("261378947940")["last_abogus_detail"])
            self.assertEqual((d["status_code"], d["data"]["enter_room_id"]), (0, "7392091211001140287"))
        st = self.sim.stats("261378947940")
        self.assertEqual((st["abogus_check"], st["abogus_ok"], st["abogus_bad"], st["abogus_missing"]), (True, 3, 0, 0))

    def test_single_character_mutations_rejected(self):
        # every character that carries bits of Y (bytes 12..55 of prefix+payload) or of the checksum (byte 121),
        # changed in those bits, and the '=' (the prefix and E carry nothing a server can check)
        def checked_bits(k):  # the bits of character k's sextet (MSB first) that land in Y or the checksum
            return sum(32 >> i for i in range(6) if 12 <= (6 * k + i) // 8 <= 55 or (6 * k + i) // 8 == 121)
        pos = [k for k in range(163) if checked_bits(k)]
        self.assertEqual(len(pos), 61)
        n = 0
        reasons = set()
        for k in pos + [163]:
            v, mask = AB_A4.find(AB_EX[k]), checked_bits(k) if k < 163 else 63
            for repl in {AB_A4[v ^ mask], AB_A4[v ^ (mask & -mask)], "+"}:
                m = AB_EX[:k] + repl + AB_EX[k + 1:]
                why = self.verdict(AB_Q + "&a_bogus=" + m)
                self.assertNotEqual(why, "ok", (k, m))
                reasons.add(why)
                n += 1
        for m in (AB_EX[:-1], AB_EX + "D", AB_EX[:80] + AB_EX[81:], AB_EX[:-2] + "="):  # length changes
            self.assertNotEqual(self.verdict(AB_Q + "&a_bogus=" + m), "ok", m)
            n += 1
        self.assertTrue(reasons <= {"decode", "length", "const", "aid", "args", "checksum"}, reasons)
        self.assertIn("checksum", reasons)
        st = self.sim.stats("261378947940")
        self.assertEqual((st["abogus_ok"], st["abogus_bad"]), (0, n))
        self.assertEqual(sum(st["abogus_bad_reasons"].values()), n)

    def test_what_is_signed(self):
        q = AB_Q
        ok = [
            a_bogus(q, AB_UA, AB_T0 + 4 * 60000),
            a_bogus(q, AB_UA, AB_T0 - 4 * 60000),
            a_bogus(q, AB_UA, AB_T0 + 4 * 60000, t32=True),
            a_bogus(q, AB_UA, AB_T0, body="GET"),  # TD hashes the method
            a_bogus(q, AB_UA, AB_T0, page_id=0, opts=((3, 45),) * 3, r=(9999, 0, 42)),  # F2 / RS
            a_bogus(q, AB_UA, AB_T0, env="1536|864|1536|824|0|0|0|0|1536|824|1536|824|1536|824|1|24|MacIntel"),
            # 12 + 44 + 66 + 1 bytes, a multiple of 3: no '=' (F2, RS, TD) or exactly one (H, J)
            a_bogus(q, AB_UA, AB_T0, env=AB_ENV.replace("|30|", "|300|")),
            a_bogus(q, AB_UA, AB_T0, env=AB_ENV.replace("|30|", "|300|")) + "=",
        ]
        self.assertEqual(len(ok[-2]), 164)
        for ab in ok:
            self.assertEqual(self.verdict(q + "&a_bogus=" + ab), "ok", ab)
        # a UA whose length is not a multiple of 3: the text T with (F2) or without (H, J) '=' padding
        ua = AB_UA + "x"
        for pad in (False, True):
            self.assertEqual(self.verdict(q + "&a_bogus=" + a_bogus(q, ua, AB_T0, pad_ua=pad), ua), "ok")
        # the parameter may sit anywhere: what is signed is the rest, as sent
        ab = a_bogus(q, AB_UA, AB_T0)
        cut = q.index("&", 40)
        head, tail = q[:cut], q[cut + 1:]
        self.assertEqual(self.verdict(head + "&a_bogus=" + ab + "&" + tail), "ok")
        self.assertEqual(self.verdict("a_bogus=" + ab + "&" + q), "ok")
        bad = [
            (q.replace("language=zh-CN", "language=en-US", 1) + "&a_bogus=" + ab, AB_UA, "query"),
            (q + "&x=1&a_bogus=" + ab, AB_UA, "query"),
            (q + "&a_bogus=" + ab, AB_UA.replace("136", "137"), "ua"),
            (q + "&a_bogus=" + ab, None, "ua"),
            (q + "&a_bogus=" + a_bogus(q, AB_UA, AB_T0, body="POST"), AB_UA, "body"),
            (q + "&a_bogus=" + a_bogus(q, AB_UA, AB_T0 + 6 * 60000), AB_UA, "time"),
            (q + "&a_bogus=" + a_bogus(q, AB_UA, AB_T0 - 6 * 60000), AB_UA, "time"),
            (q + "&a_bogus=" + a_bogus(q, AB_UA, AB_T0 - 6 * 60000, t32=True), AB_UA, "time"),
            (q + "&a_bogus=" + a_bogus(q, AB_UA, AB_T0 + 86400000 * 365), AB_UA, "time"),
            (q + "&a_bogus=" + "D" * 2000, AB_UA, "decode"),
            (q + "&a_bogus=" + AB_EX[:60], AB_UA, "short"),
            (q + "&a_bogus=" + AB_EX[:-1], AB_UA, "decode"),  # 163 characters need their '='
            (q + "&a_bogus=" + ok[-1] + "=", AB_UA, "decode"),
        ]
        for query, ua, why in bad:
            self.assertEqual(self.verdict(query, ua), why, query[-40:])
        # the exact bytes sent are signed: %20 and '+' read the same, but they are not the same query
        qs = q.replace("browser_version=136.0.0.0", "browser_version=136.0.0.0%20x")
        ab = a_bogus(qs, AB_UA, AB_T0)
        self.assertEqual(self.verdict(qs + "&a_bogus=" + ab), "ok")
        self.assertEqual(self.verdict(qs.replace("%20", "+") + "&a_bogus=" + ab), "query")
        for query in (q, q + "&a_bogus=", q + "&a_bogus"):
            self.assertEqual(self.verdict(query), "missing")
        st = self.sim.stats("261378947940")
        self.assertEqual((st["abogus_ok"], st["abogus_bad"], st["abogus_missing"]), (len(ok) + 5, len(bad) + 1, 3))
        r = st["abogus_bad_reasons"]
        self.assertEqual((r["query"], r["ua"], r["body"], r["time"], r["decode"], r["short"]), (3, 2, 1, 4, 3, 1))

    def test_room_options(self):
        # abogus=off: anything goes; abogus=check; an unknown web_rid follows --check-abogus
        d = self.enter(enter_query("123") + "&a_bogus=a+b/c")
        self.assertEqual(d["status_code"], 0)
        st = self.sim.stats("123")
        self.assertEqual((st["abogus_check"], st["abogus_ok"], st["abogus_bad"], st["abogus_missing"]), (False, 0, 0, 0))
        self.assertIsNone(self.enter(enter_query("124")))
        q = enter_query("124", default_room_id(124))
        self.assertEqual(self.enter(q + "&a_bogus=" + a_bogus(q, AB_UA, AB_T0))["data"]["enter_room_id"],
                         default_room_id(124))
        st = self.sim.stats("124")
        self.assertEqual((st["abogus_check"], st["abogus_ok"], st["abogus_missing"], st["last_abogus"]), (True, 1, 1, "ok"))
        self.assertIsNone(self.enter(enter_query("31337")))
        q = enter_query("31337")
        self.assertEqual(self.enter(q + "&a_bogus=" + a_bogus(q, AB_UA, AB_T0))["status_code"], 30003)

    def test_default_off_and_real_clock(self):
        sim = self.other_sim(["55", "66,abogus=check"])
        st, _, body = sim.http("GET", "/webcast/room/web/enter/?" + enter_query("55") + "&a_bogus=x")
        self.assertEqual(json.loads(body)["status_code"], 0)
        self.assertFalse(sim.stats("55")["abogus_check"])
        q = enter_query("66")
        for t0, want in ((AB_T0, b""), (int(time.time() * 1000), b"{")):  # the sim's clock is the real one
            _, _, body = sim.http("GET", "/webcast/room/web/enter/?" + q + "&a_bogus=" + a_bogus(q, AB_UA, t0),
                                  {"User-Agent": AB_UA})
            self.assertEqual(body[:1], want, sim.stats("66")["last_abogus_detail"])
        self.assertEqual(sim.stats("66")["abogus_bad_reasons"]["time"], 1)


class TestPageControl(SimCase):
    ROOMS = ["123:caps.frames", "789,page=challenge"]
    EXTRA = ["--ping-ms", "60000"]

    def page(self, live):
        st, hdrs, body = self.sim.http("GET", "/" + live)
        return "gone" if st == 404 else "normal" if b"roomStore" in body else "challenge"

    def test_flip_at_runtime(self):
        rid = default_room_id(123)
        self.assertEqual((self.page("123"), self.sim.stats("123")["page"]), ("normal", "normal"))
        self.sim.post("/_sim/page?live_id=123&page=challenge")
        st, hdrs, body = self.sim.http("GET", "/123")
        self.assertEqual(st, 200)
        self.assertNotIn(b"roomStore", body)
        self.assertTrue(any(k == "set-cookie" and v.startswith("__ac_nonce=") for k, v in hdrs))
        self.assertEqual(self.sim.stats("123")["page"], "challenge")
        enter = "/webcast/room/web/enter/?aid=6383&web_rid=123"
        self.assertEqual(json.loads(self.sim.http("GET", enter)[2])["status_code"], 0)  # web/enter still answers
        self.sim.post("/_sim/page?live_id=123&page=gone")
        self.assertEqual(self.page("123"), "gone")
        self.assertEqual(json.loads(self.sim.http("GET", enter)[2])["status_code"], 30003)
        self.assertEqual(self.ws(rid).status, 404)
        self.sim.post("/_sim/page?live_id=123&page=normal")
        self.assertEqual(self.page("123"), "normal")
        self.assertEqual(self.ws(rid).status, 101)
        # the spec's page=challenge can be lifted the same way
        self.assertEqual(self.page("789"), "challenge")
        self.sim.post("/_sim/page?live_id=789&page=normal")
        self.assertEqual(self.page("789"), "normal")

    def test_bad_requests(self):
        for q in ("live_id=123&page=nope", "live_id=123", "live_id=123&page="):
            self.assertEqual(self.sim.http("POST", "/_sim/page?" + q)[0], 400, q)
        self.assertEqual(self.sim.http("POST", "/_sim/page?live_id=999&page=gone")[0], 404)
        self.assertEqual(self.page("123"), "normal")


class TestGifts(SimCase):
    """§9.5: a connection without a sessionid cookie gets every frame without its WebcastGiftMessage messages."""
    ROOMS = ["123:caps.frames,gifts=login", "124:gift.frames,gifts=login", "125:caps.frames"]
    EXTRA = ["--ping-ms", "60000"]

    def frames_files(self):
        gift_only, _ = keep_messages(self.caps[3], lambda m: message_method(m) == GIFT)
        return {"gift.frames": [gift_only, self.caps[4]]}

    def connect(self, live, cookie):
        return self.ws(default_room_id(live), headers={"Cookie": cookie} if cookie is not None else None)

    def check_guest_frame(self, got, orig):
        want_frame, want_resp = keep_messages(orig, lambda m: message_method(m) != GIFT)
        self.assertEqual(without_payload(got), without_payload(orig))  # log_id, headers, type: byte for byte
        fr = decode_pushframe(got)
        self.assertEqual(gzip.decompress(fr["payload"]), want_resp)
        return fr, decode_response(fr)

    def test_guest_gets_no_gifts(self):
        for n, cookie in enumerate((None, "ttwid=1%7Cabc", "ttwid=x; sessionid=; sessionid_ss=abc; sid_tt=abc")):
            w = self.connect("123", cookie)
            got = [w.recv_data()[1] for _ in range(5)]
            for i in (0, 1, 2, 4):
                self.assertEqual(got[i], self.caps[i])
            fr, resp = self.check_guest_frame(got[3], self.caps[3])
            self.assertEqual((resp["messages"], resp["need_ack"]), (3, True))
            self.assertEqual(resp["internal_ext"], decode_response(decode_pushframe(self.caps[3]))["internal_ext"])
            for p in got:
                f = decode_pushframe(p)
                w.send(2, ack_frame(f["log_id"], decode_response(f)["internal_ext"]))
            self.sim.wait_stats("123", lambda s: s["acks_ok"] == 5 * (n + 1))
            if n == 0:
                self.sim.post("/_sim/drop?live_id=123")
        st = self.sim.stats("123")
        self.assertTrue(st["gifts_need_login"])
        self.assertEqual((st["guest_connections"], st["logged_in_connections"], st["acks_bad"]), (3, 0, 0))
        # the 2nd and 3rd connections got the gift frame as a re-push too: it counts like the others
        self.assertEqual(st["gifts_withheld"], st["frames_sent"] // 5)
        self.assertEqual(st["messages_sent"], 9 * (st["frames_sent"] // 5))
        self.assertEqual([c["logged_in"] for c in st["conns"]], [False, False])
        self.assertTrue(all(c["gifts_withheld"] for c in st["conns"]))
        self.assertEqual([u["logged_in"] for u in st["upgrades"]], [False, False, False])

    def test_logged_in_gets_everything(self):
        for cookie in ("ttwid=1%7Cabc; sessionid=0123abcd", 'sessionid = "x" ;odin_tt=y'):
            w = self.connect("123", cookie)
            self.assertEqual([w.recv_data()[1] for _ in range(5)], self.caps)
            self.sim.post("/_sim/drop?live_id=123")
        st = self.sim.stats("123")
        self.assertEqual((st["logged_in_connections"], st["guest_connections"], st["gifts_withheld"]), (2, 0, 0))
        self.assertEqual(st["messages_sent"], 20)

    def test_frame_left_empty_is_still_sent(self):
        w = self.connect("124", "ttwid=x")
        got = [w.recv_data()[1] for _ in range(2)]
        fr, resp = self.check_guest_frame(got[0], self.frames_files()["gift.frames"][0])
        self.assertEqual((resp["messages"], resp["need_ack"]), (0, True))
        self.assertEqual(got[1], self.caps[4])
        w.send(2, ack_frame(fr["log_id"], resp["internal_ext"]))
        st = self.sim.wait_stats("124", lambda s: s["acks_ok"] == 1)
        self.assertEqual((st["messages_sent"], st["gifts_withheld"], st["done"]), (1, 1, True))

    def test_default_and_global_flag(self):
        w = self.connect("125", None)  # no option, no flag: everyone gets gifts
        self.assertEqual([w.recv_data()[1] for _ in range(5)], self.caps)
        self.assertFalse(self.sim.stats("125")["gifts_need_login"])
        frames_file(os.path.join(self.tmp, "caps2.frames"), self.caps)
        sim = self.other_sim(["223:%s" % os.path.join(self.tmp, "caps2.frames"),
                              "224:%s,gifts=all" % os.path.join(self.tmp, "caps2.frames")],
                             ["--ping-ms", "60000", "--gifts-need-login"])
        for live, want in (("223", 3), ("224", 4)):
            w = WS(sim.port, ws_query(default_room_id(live)))
            self.socks.append(w)
            got = [w.recv_data()[1] for _ in range(5)]
            self.assertEqual(decode_response(decode_pushframe(got[3]))["messages"], want)
            self.assertEqual(sim.stats(live)["gifts_need_login"], want == 3)


class TestSilent(SimCase):
    """§9.6: a silent connection stays open and pinged but gets no frames; the room's timeline waits."""
    ROOMS = ["123:seq.frames,fps=20", "124:seq.frames,silent=1", "125:seq.frames"]
    EXTRA = ["--ping-ms", "50", "--repush", "3"]
    N = 30

    def frames_files(self):
        self.seq = [with_log_id(self.caps[i % 5], 1000 + i) for i in range(self.N)]
        return {"seq.frames": self.seq}

    def data_until_pings(self, w, pings=3):
        """the data frames that arrive before the next `pings` pings (answered); pings are the clock"""
        got = []
        while pings:
            fin, op, p = w.recv_frame()
            if op == 9:
                w.send(10, p)
                pings -= 1
            elif op in (1, 2):
                got.append(p)
        return got

    def repush_start(self, pos):
        start, m = pos, 0
        while start > 0 and m < 3:
            start -= 1
            m += MSGS_PER_CAPTURE[start % 5]
        return start

    def test_current_connection_goes_silent(self):
        w1 = self.ws(default_room_id(123))
        got1 = [w1.recv_data()[1] for _ in range(3)]
        self.assertEqual(self.sim.post("/_sim/silent?live_id=123")["connections"], 1)
        pos = self.sim.stats("123")["position"]
        self.assertLess(pos, self.N)
        got1 += self.data_until_pings(w1)
        w1.send(2, HB)  # heartbeats still go in
        self.assertEqual(got1, self.seq[:pos])  # what was queued before the silence, nothing after
        st = self.sim.wait_stats("123", lambda s: s["hb"] == 1)
        self.assertEqual((st["position"], st["silenced"], st["silent_open"], st["open"]), (pos, 1, 1, 1))
        self.assertEqual([c["silent"] for c in st["conns"]], [True])
        self.assertGreaterEqual(st["pongs"], 3)
        # a new connection: the usual re-push, then the room goes on where it was
        w2 = self.ws(default_room_id(123))
        start = self.repush_start(pos)
        got2 = [w2.recv_data()[1] for _ in range(pos - start + self.N - pos)]
        self.assertEqual(got2, self.seq[start:pos] + self.seq[pos:])
        self.assertEqual(self.data_until_pings(w1), [])
        st = self.sim.stats("123")
        self.assertEqual((st["done"], st["silenced"], st["silent_open"]), (True, 1, 1))
        self.assertEqual(self.sim.post("/_sim/silent?live_id=123")["connections"], 1)  # w2; w1 already was

    def test_next_connection_silent_from_the_start(self):
        self.sim.post("/_sim/silent?live_id=125&which=next")
        self.assertEqual(self.sim.stats("125")["silent_pending"], 1)
        w1 = self.ws(default_room_id(125))
        self.assertEqual(w1.status, 101)
        self.assertEqual(self.data_until_pings(w1), [])
        st = self.sim.stats("125")
        self.assertEqual((st["position"], st["silenced"], st["silent_open"], st["silent_pending"]), (0, 1, 1, 0))
        w2 = self.ws(default_room_id(125))
        self.assertEqual([w2.recv_data()[1] for _ in range(self.N)], self.seq)
        self.assertEqual(self.data_until_pings(w1), [])
        self.assertEqual(self.sim.http("POST", "/_sim/silent?live_id=125&which=later")[0], 400)

    def test_silent_first_n_after_first_frame(self):
        w1 = self.ws(default_room_id(124))
        got = self.data_until_pings(w1)
        self.assertEqual(got, self.seq[:1])
        st = self.sim.stats("124")
        self.assertEqual((st["position"], st["silenced"], st["silent_first"]), (1, 1, 1))
        w1.close()
        self.sim.wait_stats("124", lambda s: s["open"] == 0)
        w2 = self.ws(default_room_id(124))
        self.assertEqual([w2.recv_data()[1] for _ in range(self.N)], self.seq)  # frame 0 re-pushed, then the rest
        st = self.sim.stats("124")
        self.assertEqual((st["connections"], st["silenced"], st["done"]), (2, 1, True))


class TestHandshakeOptions(SimCase):
    ROOMS = ["123,handshake_options=ping-interval=7", "124", "125,handshake_options=ping-interval=10;reconnect-interval=5;"]
    EXTRA = ["--ping-ms", "60000", "--handshake-options", "ping-interval=3"]

    def test_header(self):
        for live, want in (("123", "ping-interval=7;"), ("124", "ping-interval=3;"),
                           ("125", "ping-interval=10;reconnect-interval=5;")):
            w = self.ws(default_room_id(live))
            self.assertEqual((w.status, w.headers.get("handshake-options")), (101, want))
            self.assertEqual(self.sim.stats(live)["handshake_options"] + ("" if live == "125" else ";"), want)
        sim = self.other_sim(["126"])
        w = WS(sim.port, ws_query(default_room_id(126)))
        self.socks.append(w)
        self.assertEqual(w.status, 101)
        self.assertNotIn("handshake-options", w.headers)

    def test_bad_values_refused_at_start(self):
        for rooms, extra in ((["1,handshake_options=ping-interval=x"], []), (["1,handshake_options=ping-interval"], []),
                             (["1"], ["--handshake-options", "ping-interval=3\r\nX-Evil: 1"]),
                             (["1"], ["--handshake-options", ""])):
            with self.assertRaises(RuntimeError):
                self.other_sim(rooms, extra)


class TestIdentity(SimCase):
    """§9.4: webcast_sdk_version, update_version_code and Origin of each upgrade; sdk= refuses other versions."""
    ROOMS = ["123:caps.frames,sdk=1.0.15,sig=check", "124"]
    EXTRA = ["--ping-ms", "60000"]

    def connect(self, live, query, origin=None):
        w = WS(self.sim.port, query, headers={"Origin": origin} if origin else None)
        self.socks.append(w)
        return w

    def test_sdk_required(self):
        rid = default_room_id(123)
        w = self.connect("123", ws_query(rid, q_sig(sign(x_ms_stub(rid, sdk="1.0.15"))), sdk="1.0.15"))
        self.assertEqual(w.status, 101)
        old = "1.0.14-beta.0"
        w = self.connect("123", ws_query(rid, q_sig(sign(x_ms_stub(rid, sdk=old))), sdk=old))
        self.assertEqual((w.status, w.headers.get("handshake-status"), w.headers.get("handshake-msg")),
                         (200, "415", "DEVICE_BLOCKED"))
        st = self.sim.stats("123")
        self.assertEqual((st["last_reject"], st["sdk_bad"], st["sig_ok"], st["sig_bad"]), ("sdk_mismatch", 1, 1, 0))
        self.assertIn(old, st["last_reject_detail"])
        # the X-MS-STUB takes webcast_sdk_version from the URL: 1.0.15 in the URL, signed for another sdk
        w = self.connect("123", ws_query(rid, q_sig(sign(x_ms_stub(rid, sdk=old))), sdk="1.0.15"))
        self.assertEqual(w.status, 200)
        self.assertEqual(self.sim.stats("123")["last_reject"], "sig_bad")
        q = ws_query(rid, q_sig(sign(x_ms_stub(rid)))).replace("webcast_sdk_version=1.0.15&", "")
        self.assertEqual(self.connect("123", q).status, 200)
        st = self.sim.stats("123")
        self.assertEqual((st["last_reject"], st["sdk_bad"], st["ws_rejected"], st["sdk_required"]),
                         ("sdk_mismatch", 2, 3, "1.0.15"))
        self.assertEqual([u["result"] for u in st["upgrades"]], ["accepted", "sdk_mismatch", "sig_bad", "sdk_mismatch"])
        self.assertEqual(st["upgrades"][-1]["webcast_sdk_version"], "")

    def test_identity_recorded(self):
        rid = default_room_id(124)
        self.connect("124", ws_query(rid), origin="https://live.douyin.com")
        self.connect("124", ws_query(rid, sdk="1.0.14-beta.0"))
        st = self.sim.stats("124")
        self.assertEqual(st["sdk_required"], "")
        u1, u2 = st["upgrades"]
        self.assertEqual((u1["n"], u1["webcast_sdk_version"], u1["update_version_code"], u1["origin"], u1["result"]),
                         (1, "1.0.15", "1.0.15", "https://live.douyin.com", "accepted"))
        self.assertEqual((u2["n"], u2["webcast_sdk_version"], u2["update_version_code"], u2["origin"]),
                         (2, "1.0.14-beta.0", "1.0.14-beta.0", None))
        # bytes outside printable ASCII are shown as '?': the stats stay valid JSON and UTF-8
        self.connect("124", ws_query(rid, sdk="%FF%E4%B8%AD%0A"), origin="https://直播.com")
        u3 = self.sim.stats("124")["upgrades"][-1]
        self.assertEqual((u3["webcast_sdk_version"], u3["origin"], u3["result"]), ("?????", "https://??????.com", "accepted"))
        for _ in range(17):  # the last 16 are kept, oldest first; long values are cut
            self.connect("124", ws_query(rid, sdk="9" * 300), origin="o" * 300)
        st = self.sim.stats("124")
        self.assertEqual([u["n"] for u in st["upgrades"]], list(range(5, 21)))
        self.assertEqual((len(st["upgrades"][-1]["webcast_sdk_version"]), len(st["upgrades"][-1]["origin"])), (63, 127))


if __name__ == "__main__":
    SIM = os.path.abspath(sys.argv[1])
    CAPTURES = os.path.abspath(sys.argv[2])
    if shutil.which("openssl") is None:
        del TestTls
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
