"""The admin server (connector/io/dl_admin.c) under abuse, /readyz, and the metrics exact against a
fixture room.

Every abuse test runs a worker that is writing a paced fixture room into a real Redis while a
hostile client works on its admin port, and checks that the room keeps arriving, that RSS stays
flat, that the worker does not spin, and what /healthz does — including what a kubelet with the
probe settings of deploy/k8s/deployment.yaml would conclude.

Tests whose docstring starts with "BUG" show a defect of the C side: they fail until it is fixed
(the docstring says where and what). The figures of deploy/PRODUCTION.md come from the
test_admin_sizing_* tests."""
import json
import math
import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (BUILD, Env, check, check_eq, default_room_id, free_port, proc_cpu_s, proc_nfds,
                     rss_kb, run, skip, wait_until)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
LIVE = "818000111"
QUIET = "818000222"
SANITIZED = bool(os.environ.get("DYLIVE_SANITIZED") or os.environ.get("DYLIVE_WORKER_WRAPPER"))
RSS_SLACK_KB = 4 * 1024  # "flat within a few MiB"
CPU_BUSY = 0.25          # cores: a spinning accept loop costs ~1.0; an idle worker with a 50 fps room ~0.02


def _limits():
    """The admin server's limits, read from connector/io/dl_limits.h so the test follows them."""
    with open(os.path.join(ROOT, "connector", "io", "dl_limits.h")) as f:
        text = f.read()
    out = {}
    for name in ("DL_ADMIN_CONNS_MAX", "DL_ADMIN_HEADER_MAX", "DL_ADMIN_READ_TIMEOUT_MS", "DL_ADMIN_ACCEPT_PAUSE_MS"):
        m = re.search(r"#define %s (\d+)" % name, text)
        check(m, "dl_limits.h has no %s", name)
        out[name] = int(m.group(1))
    return out


LIM = _limits()
CONNS_MAX = LIM["DL_ADMIN_CONNS_MAX"]
HEADER_MAX = LIM["DL_ADMIN_HEADER_MAX"]
READ_TIMEOUT_S = LIM["DL_ADMIN_READ_TIMEOUT_MS"] / 1000.0


def kubelet_probe():
    """(periodSeconds, timeoutSeconds, failureThreshold) of the livenessProbe in deploy/k8s/deployment.yaml."""
    with open(os.path.join(ROOT, "deploy", "k8s", "deployment.yaml")) as f:
        text = f.read()
    block = text.split("livenessProbe:", 1)[1].split("Probe:", 1)[0]
    vals = []
    for key in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
        m = re.search(r"%s:\s*(\d+)" % key, block)
        check(m, "livenessProbe has no %s", key)
        vals.append(int(m.group(1)))
    return tuple(vals)


# ---------------------------------------------------------------- HTTP by hand

def http(port, path="/healthz", method="GET", raw=None, timeout=5.0):
    """One request on a fresh connection, read to EOF (the server says Connection: close).
    Returns (status or None, headers {lower-case name: value}, body bytes, seconds, error or None)."""
    t0 = time.monotonic()
    data, err = b"", None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return None, {}, b"", time.monotonic() - t0, e
    try:
        s.settimeout(max(0.05, timeout - (time.monotonic() - t0)))
        s.sendall(raw if raw is not None else ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (method, path)).encode())
        while True:
            s.settimeout(max(0.05, timeout - (time.monotonic() - t0)))
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        err = e
    finally:
        s.close()
    dt = time.monotonic() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ") if lines and lines[0] else None
    if not m:
        return None, {}, b"", dt, err or "no status line in %r" % data[:80]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), headers, body, dt, err


def healthz_time(port, timeout):
    """Seconds until /healthz answered 200, or None if it did not within timeout."""
    st, _, body, dt, _ = http(port, "/healthz", timeout=timeout)
    return dt if st == 200 and body == b"ok\n" else None


def scrape(port, timeout=5.0):
    st, hd, body, _, err = http(port, "/metrics", timeout=timeout)
    check(st == 200, "/metrics answered %r (%r)", st, err)
    return body.decode()


def samples(text):
    """{'name{labels}': value} of a metrics page; labelled families also under their bare name (sum)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val)
        if "{" in key:
            fam = key.split("{", 1)[0]
            out[fam] = out.get(fam, 0.0) + float(val)
    return out


def nonblocking_connects(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


def closed_by_server(s):
    """True when the server closed this (non-blocking) socket: EOF, or a reset."""
    try:
        r, _, _ = select.select([s], [], [], 0)
        if not r:
            return False
        return s.recv(65536) == b"" or closed_by_server(s)
    except BlockingIOError:
        return False
    except OSError:
        return True


class Kubelet(threading.Thread):
    """Probes /healthz like a kubelet: every period seconds, failing a probe that takes longer than
    timeout. Records (start offset, ok) per probe."""

    def __init__(self, port, period, timeout):
        super().__init__(daemon=True)
        self.port, self.period, self.timeout = port, period, timeout
        self.results = []
        self.stop = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            start = time.monotonic()
            ok = healthz_time(self.port, self.timeout) is not None
            self.results.append((round(start - t0, 1), ok))
            self.stop.wait(max(0.0, self.period - (time.monotonic() - start)))

    def max_consecutive_failures(self):
        worst = cur = 0
        for _, ok in self.results:
            cur = 0 if ok else cur + 1
            worst = max(worst, cur)
        return worst

    def close(self):
        self.stop.set()
        self.join(self.timeout + 5)


# ---------------------------------------------------------------- a worker writing a room

class World:
    """Redis + the simulator playing a paced chat room (no end) + one worker with its admin port."""

    def __init__(self, env, fps=50, worker_args=(), redis_extra=()):
        self.env = env
        self.r = env.start_redis(redis_extra)
        frames, _ = env.fixture("long", LIVE, default_room_id(LIVE), "--frames", "30000", "--kinds", "chat",
                                "--per-frame", "1", "--seed", "11", "--no-end")
        env.start_sim(["%s:%s,fps=%d" % (LIVE, frames, fps), QUIET])
        self.admin = free_port()
        self.w = env.worker(*worker_args, admin="127.0.0.1:%d" % self.admin)
        self.pid = self.w.pid
        self.r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: self.xlen() >= 20, 30, "the room's first events in Redis")
        for _ in range(3):  # warm the admin path's allocations before RSS is taken
            scrape(self.admin)
        self.rss0 = rss_kb(self.pid)
        self.fds0 = proc_nfds(self.pid)

    def xlen(self):
        return self.r("XLEN", "dylive:{%s}:events" % LIVE)

    def assert_writing(self, what, n=25, timeout=10):
        """The room's events keep arriving in Redis (at 50 fps, 25 events take half a second)."""
        x0 = self.xlen()
        wait_until(lambda: self.xlen() >= x0 + n, timeout, "events to keep arriving in Redis %s" % what)

    def cpu_rate(self, seconds):
        c0, t0 = proc_cpu_s(self.pid), time.monotonic()
        time.sleep(seconds)  # a measurement window, not a wait for a condition
        return (proc_cpu_s(self.pid) - c0) / (time.monotonic() - t0)

    def assert_not_spinning(self, what, seconds=3.0):
        rate = self.cpu_rate(seconds)
        print("worker CPU %s: %.3f cores" % (what, rate))
        check(rate < CPU_BUSY, "worker CPU %.2f cores %s: a busy loop", rate, what)

    def assert_rss_flat(self, what):
        now = rss_kb(self.pid)
        print("worker RSS %s: %d KiB (baseline %d KiB)" % (what, now, self.rss0))
        if not SANITIZED:
            check(now - self.rss0 < RSS_SLACK_KB, "RSS grew by %d KiB %s", now - self.rss0, what)

    def assert_alive(self):
        check(self.w.poll() is None, "the worker exited (status %r)", self.w.poll())

    def kill_redis(self):
        self.env.kill_redis()
        wait_until(lambda: http(self.admin, "/readyz", timeout=2)[:3:2] == (503, b"redis not connected\n"), 10,
                   "/readyz 503 once Redis is gone")

    def restart_redis(self):
        self.r = self.env.restart_redis()
        wait_until(lambda: http(self.admin, "/readyz", timeout=2)[:3:2] == (200, b"ready\n"), 40,
                   "/readyz 200 after Redis returned")


# ---------------------------------------------------------------- abuse

def big_header_request(size):
    return b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def send_big_header(port, chunk, pause, size=1 << 20, timeout=20.0):
    """Sends a request with a `size`-byte header in `chunk`-byte pieces, `pause` s apart, until the
    server answers or closes. Returns (bytes sent, response head, seconds)."""
    req = big_header_request(size)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent, resp, t0 = 0, b"", time.monotonic()
    try:
        while sent < len(req) and time.monotonic() - t0 < timeout:
            try:
                sent += s.send(req[sent:sent + chunk])
            except OSError:  # reset after the server's answer: read what it said
                break
            r, _, _ = select.select([s], [], [], pause)
            if r:
                break
        s.settimeout(5)
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                resp += d
        except OSError:
            pass
    finally:
        s.close()
    return sent, resp, time.monotonic() - t0


def test_admin_header_1mib():
    """1 MiB of request header, fast and slowly and 300 times at once: 431 after the 8 KiB cap,
    the connection closed, RSS flat; the room keeps arriving; /healthz answers within 1 s."""
    with Env("adm-hdr") as env:
        wd = World(env)
        # fast: the whole MiB in one go
        sent, resp, dt = send_big_header(wd.admin, 1 << 21, 0.0)
        check(resp.startswith(b"HTTP/1.1 431 "), "fast 1 MiB header: %r", resp[:60])
        check(dt < 2, "fast 1 MiB header answered after %.1fs", dt)
        # slowly: 1 KiB every 50 ms; the answer must come once the cap is crossed, not at the end
        sent, resp, dt = send_big_header(wd.admin, 1024, 0.05)
        check(resp.startswith(b"HTTP/1.1 431 "), "slow 1 MiB header: %r", resp[:60])
        check(sent <= HEADER_MAX + 4096, "the server took %d bytes of a slow oversized header", sent)
        print("slow 1 MiB header: 431 after %d bytes, %.2fs" % (sent, dt))
        # at once: 5 rounds of 60 connections each pushing 1 MiB without reading
        for rnd in range(5):
            socks = [socket.create_connection(("127.0.0.1", wd.admin)) for _ in range(60)]
            for s in socks:
                s.setblocking(False)
                try:
                    s.send(big_header_request(1 << 20))
                except OSError:
                    pass
            wait_until(lambda: all(closed_by_server(s) for s in socks), 10,
                       "every oversized request of round %d answered and closed" % rnd)
            for s in socks:
                s.close()
            wd.assert_writing("during round %d of 60 x 1 MiB headers" % rnd)
        wd.assert_rss_flat("after 302 requests with 1 MiB headers")
        wd.assert_alive()
        dt = healthz_time(wd.admin, 1.0)
        check(dt is not None, "/healthz did not answer within 1 s after the oversized headers")
        # just under the cap is still a request
        pad = HEADER_MAX - 200
        st, _, body, _, _ = http(wd.admin, raw=b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"p" * pad + b"\r\n\r\n")
        check_eq((st, body), (200, b"ok\n"), "a request just under the header cap")


def test_admin_idle_connections_300():
    """300 connections opened and left idle: at most the cap is accepted (fds bounded), each is
    dropped at the read deadline, no busy loop, the room keeps arriving, RSS flat. While they wait,
    /healthz is answered within the cap's rules (the queue ahead drains 64 per read deadline) and a
    kubelet with deployment.yaml's liveness settings never reaches its failure threshold; once they
    are gone /healthz answers within 1 s."""
    with Env("adm-idle") as env:
        wd = World(env)
        period, timeout, threshold = kubelet_probe()
        socks = nonblocking_connects(wd.admin, 300)
        t_open = time.monotonic()
        kube = Kubelet(wd.admin, period, timeout)
        kube.start()
        mine = {}
        t = threading.Thread(target=lambda: mine.update(dt=healthz_time(wd.admin, 60)), daemon=True)
        t.start()
        try:
            wait_until(lambda: proc_nfds(wd.pid) >= wd.fds0 + CONNS_MAX - 2, 10, "the admin server to take the cap")
            peak = proc_nfds(wd.pid)
            check(peak <= wd.fds0 + CONNS_MAX + 2, "worker fds %d with %d idle clients (baseline %d, cap %d)", peak,
                  300, wd.fds0, CONNS_MAX)
            wd.assert_writing("while 300 idle connections wait")
            wd.assert_not_spinning("while 300 idle connections wait")
            # the first batch is dropped at the read deadline
            wait_until(lambda: sum(closed_by_server(s) for s in socks) >= CONNS_MAX - 2,
                       READ_TIMEOUT_S + 3, "the first %d idle connections to be dropped at the %.0f s read deadline"
                       % (CONNS_MAX, READ_TIMEOUT_S))
            check(time.monotonic() - t_open >= READ_TIMEOUT_S - 1, "idle connections dropped before the deadline")
            t.join(70)
            rounds = math.ceil(301 / CONNS_MAX)
            print("/healthz queued behind 300 idle connections answered after %s s (cap rule: <= %d x %.0f s)" %
                  (mine.get("dt"), rounds, READ_TIMEOUT_S))
            check(mine.get("dt") is not None, "/healthz never answered while 300 idle connections were queued")
            check(mine["dt"] <= rounds * READ_TIMEOUT_S + 3, "/healthz took %.1fs behind 300 idle connections",
                  mine["dt"])
            # let the kubelet see at least `threshold` probes from the start of the burst
            wait_until(lambda: len(kube.results) >= threshold, threshold * period + timeout + 5,
                       "%d kubelet probes" % threshold)
        finally:
            kube.close()
        print("kubelet (period %ds, timeout %ds, threshold %d) saw: %r" % (period, timeout, threshold, kube.results))
        check(kube.max_consecutive_failures() < threshold,
              "a kubelet would restart the worker: %d liveness failures in a row after 300 idle connections (%r)",
              kube.max_consecutive_failures(), kube.results)
        wd.assert_writing("after the idle connections")
        wd.assert_rss_flat("after 300 idle connections")
        for s in socks:
            s.close()
        dt = healthz_time(wd.admin, 1.0)
        check(dt is not None, "/healthz did not answer within 1 s once the idle clients were gone")
        wait_until(lambda: proc_nfds(wd.pid) <= wd.fds0 + 1, 10, "the worker's descriptors back to baseline")
        wd.assert_alive()


def test_admin_slowloris():
    """Regression (a bug the first version of this test found, now fixed): (connector/io/dl_admin.c, on_accept): DL_ADMIN_READ_TIMEOUT_MS is meant as "a whole
    request must arrive within this", but bufferevent_set_timeouts() sets libevent's *idle* read
    timeout, which restarts on every byte read. A client that trickles one header byte every second
    keeps its connection for up to DL_ADMIN_HEADER_MAX seconds (8 KiB -> over 2 hours); 64 of them
    hold every slot of the cap, so /healthz and /readyz queue forever: a kubelet restarts the pod
    and Prometheus loses the worker. Expected: each connection closed at the deadline counted from
    its accept (e.g. a per-connection evtimer armed in on_accept), so a probe waits at most one
    read deadline. The worker itself is fine meanwhile (checked first)."""
    with Env("adm-slow") as env:
        wd = World(env)
        _, timeout, _ = kubelet_probe()
        n = CONNS_MAX + 8
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", wd.admin))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            s.setblocking(False)
            socks.append(s)
        t0 = time.monotonic()
        stop = threading.Event()
        closed_at = {}

        def trickle():  # one byte per connection per second: far below the header cap and the deadline
            while not stop.is_set():
                for i, s in enumerate(socks):
                    if i in closed_at:
                        continue
                    if closed_by_server(s):
                        closed_at[i] = time.monotonic() - t0
                        continue
                    try:
                        s.send(b"x")
                    except OSError:
                        closed_at[i] = time.monotonic() - t0
                stop.wait(1.0)

        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        probes = []
        try:
            wd.assert_writing("while %d clients trickle their headers" % n)
            wd.assert_not_spinning("while %d clients trickle their headers" % n)
            wd.assert_rss_flat("while %d clients trickle their headers" % n)
            # keep trickling past the deadline, probing as a kubelet does
            deadline = READ_TIMEOUT_S + 2 * timeout + 2
            while time.monotonic() - t0 < deadline:
                start = time.monotonic()
                dt = healthz_time(wd.admin, timeout)
                probes.append((round(start - t0, 1), None if dt is None else round(dt, 3)))
                stop.wait(max(0.0, 1.0 - (time.monotonic() - start)))  # a probe a second at most
            still_open = n - len(closed_at)
        finally:
            stop.set()
            th.join(5)
            for s in socks:
                s.close()
        print("after %.0fs of trickling: %d of %d slow connections still open; kubelet probes %r"
              % (deadline, still_open, n, probes))
        wd.assert_alive()
        check(still_open == 0, "%d of %d connections sending one header byte per second were still open after %.0f s "
              "(read deadline %.0f s): the deadline restarts on every byte (libevent idle timeout)",
              still_open, n, deadline, READ_TIMEOUT_S)
        check(any(dt is not None for t, dt in probes if t >= READ_TIMEOUT_S),
              "no /healthz probe (timeout %ds) succeeded while slow clients held the connection cap: %r",
              timeout, probes)


def test_admin_methods():
    """GET and HEAD only: every other method 405 and closed without reading a body; HEAD has
    headers and no body; unknown path 404; a broken request line 400; the room keeps arriving,
    RSS flat, /healthz within 1 s."""
    with Env("adm-meth") as env:
        wd = World(env)
        for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "get", "GETX", "G" * 300):
            st, hd, body, dt, _ = http(wd.admin, "/healthz", method=m)
            check_eq(st, 405, "status of %s /healthz" % m[:20])
            check_eq(hd.get("connection"), "close", "Connection header of a 405")
            check(dt < 1, "%s answered after %.1fs", m[:20], dt)
        st, _, _, _, _ = http(wd.admin, raw=b"CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n")
        check_eq(st, 405, "CONNECT (the admin port is no proxy)")
        # POST /metrics with a 1 MiB body, 40 at once, not reading the answers
        body = b"z" * (1 << 20)
        req = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        socks = [socket.create_connection(("127.0.0.1", wd.admin)) for _ in range(40)]
        for s in socks:
            s.setblocking(False)
            try:
                s.send(req)
            except OSError:
                pass
        wait_until(lambda: all(closed_by_server(s) for s in socks), 10, "every POST with a 1 MiB body answered, closed")
        for s in socks:
            s.close()
        st, hd, body, _, _ = http(wd.admin, raw=req)
        check_eq(st, 405, "POST /metrics with a body")
        # HEAD: the headers of GET, no body
        st, hd, body, _, _ = http(wd.admin, "/healthz", method="HEAD")
        check_eq((st, hd.get("content-length"), body), (200, "3", b""), "HEAD /healthz")
        st, hd, body, _, _ = http(wd.admin, "/metrics", method="HEAD")
        check(st == 200 and int(hd.get("content-length", "0")) > 1000 and body == b"", "HEAD /metrics: %r %r %r",
              st, hd, body[:40])
        # paths, queries, broken lines
        check_eq(http(wd.admin, "/nope")[0], 404, "unknown path")
        check_eq(http(wd.admin, "/healthz?probe=1")[:3:2], (200, b"ok\n"), "a query string is ignored")
        check_eq(http(wd.admin, raw=b"\r\n\r\n")[0], 400, "an empty request line")
        check_eq(http(wd.admin, raw=b"GET\r\n\r\n")[0], 400, "a request line without a path")
        st, hd, _, _, _ = http(wd.admin, "/metrics")
        check_eq(hd.get("content-type"), "text/plain; version=0.0.4", "metrics content type")
        check_eq(hd.get("cache-control"), "no-store", "Cache-Control")
        wd.assert_writing("after the method tests")
        wd.assert_rss_flat("after 40 POSTs with 1 MiB bodies")
        check(healthz_time(wd.admin, 1.0) is not None, "/healthz within 1 s after the method tests")
        wd.assert_alive()


def accept_queue(port):
    """Connections waiting in the kernel's accept queue of the listener on port (/proc/net/tcp:
    rx_queue of a LISTEN socket is its accept backlog)."""
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(fn) as f:
            for line in f.readlines()[1:]:
                col = line.split()
                if col[3] == "0A" and int(col[1].rsplit(":", 1)[1], 16) == port:
                    return int(col[4].split(":")[1], 16)
    return None


def squeeze(wd, headroom):
    """Lowers the worker's soft RLIMIT_NOFILE to its open descriptors + headroom; returns the old limits."""
    old = resource.prlimit(wd.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(wd.pid, resource.RLIMIT_NOFILE, (proc_nfds(wd.pid) + headroom, old[1]))
    return old


class Flood(threading.Thread):
    """Keeps `n` connections open or queued on the admin port, replacing those the server drops."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.port, self.n = port, n
        self.socks = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            alive = []
            for s in self.socks:
                if closed_by_server(s):
                    s.close()
                else:
                    alive.append(s)
            self.socks = alive
            self.socks += nonblocking_connects(self.port, self.n - len(self.socks))
            self.stop.wait(0.1)

    def close(self):
        self.stop.set()
        self.join(5)
        for s in self.socks:
            s.close()


def test_admin_fd_squeeze():
    """The worker runs out of descriptors (soft RLIMIT_NOFILE lowered to what it uses + 24) when a
    client opens 150 connections and leaves them idle: the accept loop pauses instead of spinning,
    one log line a second at most, descriptors stay at the limit, the room keeps arriving, RSS flat;
    /healthz queued behind them is answered within the cap's rules with the descriptors left as
    the cap (each round of idle connections ends at the read deadline), process_max_fds reports
    the new limit, and once the clients are gone everything is back."""
    with Env("adm-fds") as env:
        wd = World(env)
        headroom, n = 24, 150
        old = squeeze(wd, headroom)
        limit = resource.prlimit(wd.pid, resource.RLIMIT_NOFILE)[0]
        socks = nonblocking_connects(wd.admin, n)
        t0 = time.monotonic()
        try:
            wait_until(lambda: proc_nfds(wd.pid) >= limit - 1, 10, "the worker to run out of descriptors")
            wd.assert_writing("while out of descriptors")
            wd.assert_not_spinning("while out of descriptors", 4.0)
            check(proc_nfds(wd.pid) <= limit, "%d descriptors over a limit of %d", proc_nfds(wd.pid), limit)
            wd.assert_rss_flat("while out of descriptors")
            rule = math.ceil((n + 1) / (headroom - 1)) * READ_TIMEOUT_S
            dt = healthz_time(wd.admin, rule + 5)
            print("/healthz behind %d idle connections, out of descriptors: %s s (cap rule <= %.0f s)" % (n, dt, rule))
            check(dt is not None, "/healthz not answered within %.0f s while out of descriptors", rule + 5)
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: proc_nfds(wd.pid) <= wd.fds0 + 1, 20, "descriptors back to baseline after the flood")
        elapsed = time.monotonic() - t0
        with open(os.path.join(env.tmp, "worker0.log")) as f:
            lines = sum('"admin_fds"' in line for line in f)
        print("admin_fds log lines: %d in %.1fs" % (lines, elapsed))
        check(1 <= lines <= elapsed / (LIM["DL_ADMIN_ACCEPT_PAUSE_MS"] / 1000.0) + 2,
              "%d admin_fds log lines in %.1fs", lines, elapsed)
        m = samples(scrape(wd.admin))
        check_eq(m["process_max_fds"], limit, "process_max_fds after the limit was lowered")
        resource.prlimit(wd.pid, resource.RLIMIT_NOFILE, old)
        check_eq(samples(scrape(wd.admin))["process_max_fds"], old[0], "process_max_fds after it was restored")
        wd.assert_writing("after the flood")
        check(healthz_time(wd.admin, 1.0) is not None, "/healthz within 1 s after the flood")
        wd.assert_alive()


def test_admin_fd_squeeze_recovers_within_a_second():
    """Regression (a bug the first version of this test found, now fixed): (connector/io/dl_admin.c, on_accept_error + conn_free): after EMFILE the listener pauses
    for DL_ADMIN_ACCEPT_PAUSE_MS and conn_free() does not resume it while that timer is pending, so
    once a flood ends, the backlog it left (up to 128 connections whose clients are gone) is
    accepted only ~(free descriptors) per second, each second's EMFILE also accept-and-closes one
    waiting client with the spare descriptor. For ~10 s the accept queue stays full (new SYNs are
    dropped) and the first probe is either answered after several seconds or is the client the
    spare descriptor drops (seen: reset after 9.5 s). Expected: a descriptor freed by a closing
    admin connection ends the pause at once (conn_free re-enables the listener even while the
    timer is pending), so the dead backlog drains in milliseconds and /healthz answers < 1 s."""
    with Env("adm-fds2") as env:
        wd = World(env)
        squeeze(wd, 12)
        flood = Flood(wd.admin, 150)
        flood.start()
        try:
            wait_until(lambda: proc_nfds(wd.pid) >= wd.fds0 + 10, 10, "the worker to run out of descriptors")
            wd.assert_writing("while out of descriptors")
            check(accept_queue(wd.admin) > 50, "the flood filled the accept queue (%r)", accept_queue(wd.admin))
        finally:
            flood.close()
        t0 = time.monotonic()
        drained = True
        try:  # the clients are gone: a server that notices drains their leftovers at once
            wait_until(lambda: accept_queue(wd.admin) == 0, 1.0, "the accept queue to drain after the flood")
        except AssertionError:
            drained = False
        left = accept_queue(wd.admin)
        st, _, _, dt, err = http(wd.admin, "/healthz", timeout=15)
        print("after the flood: accept queue %s after %.2f s; /healthz status %r after %.2f s (%r)"
              % ("empty" if drained else "still %d" % left, time.monotonic() - t0 - dt, st, dt, err))
        check(drained, "the admin server still had %d dead connections queued 1 s after the flood ended "
              "(/healthz then: status %r after %.1f s, %r)", left, st, dt, err)
        check(st == 200 and dt < 1.0, "/healthz once the flood was gone: status %r after %.1f s (%r); want 200 "
              "within 1 s", st, dt, err)


def test_admin_redis_reconnects_after_emfile():
    """Regression (a bug the first version of this test found, now fixed): (connector/io/dl_rconn.c dl_rconn_open + dl_redis.c link_connect/on_down): when a Redis
    reconnect finds no free descriptor, libevent reports the failure synchronously (for a numeric
    host bufferevent_socket_connect_hostname resolves at once, bufferevent_socket_connect fails and
    BEV_EVENT_ERROR runs inside the call), so on_event -> go_down -> on_down runs *inside*
    dl_rconn_open: on_down frees l->c (still NULL) and schedules the retry, then link_connect stores
    the dead connection in l->c, and every later link_connect returns at `if (l->c ...)`. The link
    never reconnects: no writes (spool, then paused reads), /readyz 503 for good while /healthz
    stays 200, so nothing restarts the worker. Shown here by lowering the soft RLIMIT_NOFILE below
    the open descriptors for 3 s while Redis drops the worker's connections."""
    with Env("adm-emfile") as env:
        wd = World(env, worker_args=("--log-level", "debug"))  # the failed attempts are debug lines
        log = os.path.join(env.tmp, "worker0.log")

        def emfile_attempts():
            with open(log) as f:
                return sum('"redis_down"' in line and "Too many open files" in line for line in f)
        old = resource.prlimit(wd.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(wd.pid, resource.RLIMIT_NOFILE, (3, old[1]))  # every new descriptor fails
        try:
            killed = wd.r("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            check(killed >= 1, "the worker's Redis connections were not found")
            # both links (writes, claims) try to reconnect about 1 s later and meet EMFILE
            wait_until(lambda: emfile_attempts() >= 2, 10, "reconnect attempts failing with EMFILE")
        finally:
            resource.prlimit(wd.pid, resource.RLIMIT_NOFILE, old)
        # descriptors are back: the next attempt (backoff at most 30 s) must reconnect
        t0 = time.monotonic()
        ok = False
        try:
            wait_until(lambda: http(wd.admin, "/readyz", timeout=2)[0] == 200, 40, "/readyz 200 after Redis reconnects")
            ok = True
        except AssertionError:
            pass
        print("Redis reconnected %s after descriptors came back" % ("%.1fs" % (time.monotonic() - t0) if ok else "never"))
        print("reconnect attempts that met EMFILE: %d; later attempts logged: %d" % (emfile_attempts(), sum(
            '"redis_down"' in line and "retry in" in line and "Too many" not in line for line in open(log))))
        check(ok, "the worker never reconnected to Redis after a reconnect attempt met EMFILE (40 s with "
              "descriptors free; the retry backoff is at most 30 s)")
        wd.assert_writing("after Redis reconnected")


# ---------------------------------------------------------------- /readyz

def test_admin_readyz_redis_and_drain():
    """/readyz: 200 with Redis, 503 while Redis is down (killed) and 200 again when it returns
    (AOF: the room's lease survives and it goes on); dylive_redis_connected follows; /healthz stays
    200 throughout; 503 "draining" during a drain (SIGTERM with the room held, its writes held up
    by CLIENT PAUSE WRITE), exit 0 within 10 s, the room handed back."""
    with Env("adm-ready") as env:
        wd = World(env, redis_extra=["--appendonly", "yes", "--appendfsync", "always"])
        st, _, body, _, _ = http(wd.admin, "/readyz")
        check_eq((st, body), (200, b"ready\n"), "/readyz with Redis")
        check_eq(samples(scrape(wd.admin))["dylive_redis_connected"], 1, "dylive_redis_connected with Redis")
        wd.kill_redis()
        check_eq(samples(scrape(wd.admin))["dylive_redis_connected"], 0, "dylive_redis_connected without Redis")
        check(healthz_time(wd.admin, 1.0) is not None, "/healthz without Redis")
        wd.restart_redis()
        check_eq(samples(scrape(wd.admin))["dylive_redis_connected"], 1, "dylive_redis_connected after Redis returned")
        wd.assert_writing("after Redis returned")
        wd.r("CLIENT", "PAUSE", "3000", "WRITE")
        t0 = time.monotonic()
        wd.w.send_signal(signal.SIGTERM)
        wait_until(lambda: http(wd.admin, "/readyz", timeout=2)[:3:2] == (503, b"draining\n"), 2,
                   "/readyz 503 draining once SIGTERM arrived")
        check(wd.w.poll() is None, "the drain waits for the paused writes")
        check(healthz_time(wd.admin, 1.0) is not None, "/healthz during the drain")
        check_eq(wd.w.wait(timeout=12), 0, "exit status after the drain")
        check(time.monotonic() - t0 < 10, "drained in %.1fs", time.monotonic() - t0)
        check_eq(wd.r("LRANGE", "dylive:assign", 0, -1), [LIVE], "the held room handed back")


def test_admin_ready_means_writing_after_redis_restarts_empty():
    """/readyz 200 means the worker writes, also after Redis came back without its data (a restart
    without persistence, a failover to an empty replica): writes in flight when the connection
    dropped put the outbox in probing mode, the head is a write of a room whose lease is gone
    (answered FENCED, the room is given up), and the writes behind it must still go out. Found
    stalling here before main's c52f9d2 (the writer sends again after completions): a room
    assigned afterwards was live in the worker but its status never reached Redis, with
    dylive_redis_pending stuck at ~50."""
    with Env("adm-empty") as env:
        wd = World(env)
        wd.r("CLIENT", "PAUSE", "10000", "WRITE")  # writes in flight when Redis dies
        wait_until(lambda: samples(scrape(wd.admin))["dylive_redis_pending"] >= 3, 10, "room writes in flight")
        wd.kill_redis()
        wd.restart_redis()  # without persistence: empty
        wd.r("LPUSH", "dylive:assign", QUIET)
        ok = True
        try:
            wait_until(lambda: wd.r.hgetall("dylive:{%s}:status" % QUIET).get("state") == "live", 15,
                       "the room assigned after the restart to be live in Redis")
            wait_until(lambda: samples(scrape(wd.admin))["dylive_redis_pending"] == 0, 10, "no write pending")
        except AssertionError:
            ok = False
        m = samples(scrape(wd.admin))
        print("after an empty Redis came back: /readyz %r, pending %d, commands done %d, leases lost %d, "
              "status of the new room %r" % (http(wd.admin, "/readyz")[0], m["dylive_redis_pending"],
                                            m["dylive_redis_commands_total"], m["dylive_leases_lost_total"],
                                            wd.r.hgetall("dylive:{%s}:status" % QUIET)))
        check(ok, "writes stalled after Redis came back empty while /readyz said 200: %d pending, the new room's "
              "status %r", m["dylive_redis_pending"], wd.r.hgetall("dylive:{%s}:status" % QUIET))


def test_admin_pending_returns_to_zero_on_a_quiet_room():
    """A status write carries its P:rooms lifecycle entry as a follow-up; on a quiet room (no
    later write to push it out) the entry for "live" must still be written and
    dylive_redis_pending must return to 0 on the idle worker. Failed before main's c52f9d2
    (follow-ups queued by dl_outbox_pop after dl_writer_pump's send loop waited for the next
    write)."""
    with Env("adm-quiet") as env:
        r = env.start_redis()
        env.start_sim([QUIET])
        admin = free_port()
        env.worker(admin="127.0.0.1:%d" % admin)
        wait_until(lambda: http(admin, "/readyz", timeout=2)[0] == 200, 20, "the worker ready")
        r("LPUSH", "dylive:assign", QUIET)
        wait_until(lambda: r.hgetall("dylive:{%s}:status" % QUIET).get("state") == "live", 20, "the quiet room live")

        def lifecycle():
            return [dict(zip(f[0::2], f[1::2])).get("state") for _, f in r("XRANGE", "dylive:rooms", "-", "+")
                    if dict(zip(f[0::2], f[1::2])).get("live_id") == QUIET]
        ok = True
        try:
            wait_until(lambda: "live" in lifecycle() and samples(scrape(admin))["dylive_redis_pending"] == 0, 3,
                       "the P:rooms entry for live written and nothing pending")
        except AssertionError:
            ok = False
        pending = samples(scrape(admin))["dylive_redis_pending"]
        print("3 s after the room went live: P:rooms states %r, dylive_redis_pending %d" % (lifecycle(), pending))
        check(ok, "a quiet room's lifecycle entry is stuck in the outbox: P:rooms has %r for the room (no 'live'), "
              "dylive_redis_pending %d on an idle worker", lifecycle(), pending)


# ---------------------------------------------------------------- metrics, exact

def test_admin_metrics_exact_fixture_room():
    """After a fixture room ends, every metric about it equals the manifest: events written per
    type (and their sum = XLEN), duplicates = the re-sent copies, messages, frames, acks; rooms by
    state before, during and after; capacity = --max-rooms; the histograms count every event."""
    with Env("adm-exact") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "400", "--seed", "7")
        env.start_sim(["%s:%s,fps=100" % (LIVE, frames)])
        admin = free_port()
        env.worker("--max-rooms", "3", admin="127.0.0.1:%d" % admin)
        wait_until(lambda: http(admin, "/readyz", timeout=2)[0] == 200, 20, "the worker ready")
        text = scrape(admin)
        m0 = samples(text)
        states = re.findall(r'^dylive_rooms\{state="([a-z_]+)"\}', text, re.M)
        check(set(("starting", "live", "reconnecting", "error", "ended", "stopped")) <= set(states),
              "dylive_rooms states: %r", states)
        check(all(m0['dylive_rooms{state="%s"}' % s] == 0 for s in states), "rooms before any assignment")
        check_eq(m0["dylive_rooms_capacity"], 3, "dylive_rooms_capacity = --max-rooms")
        check_eq(m0["dylive_assign_backlog"], 0, "backlog before")
        check_eq(m0["dylive_redis_connected"], 1, "dylive_redis_connected")
        check_eq(m0["dylive_events_written_total"], 0, "events before")
        check_eq(m0["dylive_write_latency_seconds_count"], 0, "write latency count before")
        version = subprocess.run([os.path.join(BUILD, "dylive-connector"), "--version"], capture_output=True,
                                 text=True).stdout.split()[-1]
        check_eq(m0.get('dylive_build_info{version="%s"}' % version), 1, "dylive_build_info{version=%s}" % version)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: samples(scrape(admin)).get('dylive_rooms{state="live"}') == 1, 20, "rooms{live} 1")
        m1 = samples(scrape(admin))
        check_eq(m1["dylive_rooms"], 1, "one room held while live, in one state")
        wait_until(lambda: r.hgetall("dylive:{%s}:status" % LIVE).get("state") == "ended", 60, "the room ended")
        wait_until(lambda: samples(scrape(admin))["dylive_rooms"] == 0 and
                   samples(scrape(admin))["dylive_redis_pending"] == 0, 10, "the ended room released, writes done")
        text = scrape(admin)
        m = samples(text)
        xlen = r("XLEN", "dylive:{%s}:events" % LIVE)
        check_eq(xlen, man["unique_msg_ids"], "XLEN")
        written = {k: int(v) for k, v in re.findall(r'^dylive_events_written_total\{type="([a-z_]+)"\} (\d+)$', text,
                                                     re.M)}
        check_eq({k: v for k, v in written.items() if v}, man["by_type"], "dylive_events_written_total by type")
        check_eq(sum(written.values()), xlen, "sum of dylive_events_written_total = XLEN")
        check_eq(m["dylive_events_duplicate_total"], man["duplicates"], "dylive_events_duplicate_total")
        check_eq(env.sim_stats(LIVE)["connections"], 1, "one connection (no re-push copies beyond the fixture's)")
        check_eq(m["dylive_messages_total"], man["messages_total"], "dylive_messages_total")
        check_eq(m["dylive_frames_total"], man["frames"], "dylive_frames_total")
        check_eq(m["dylive_acks_sent_total"], man["need_ack_frames"], "dylive_acks_sent_total")
        check_eq(m["dylive_bad_frames_total"], 0, "bad frames")
        check_eq(m["dylive_claims_total"], 1, "claims")
        check_eq(m["dylive_write_latency_seconds_count"], xlen, "write latency _count = events written")
        check_eq(m["dylive_event_delay_seconds_count"], xlen, "event delay _count = events (all have ts_ms)")
        for h in ("dylive_write_latency_seconds", "dylive_event_delay_seconds"):
            b = [(float("inf") if le == "+Inf" else float(le), float(v)) for le, v in
                 re.findall(r'^%s_bucket\{le="([^"]+)"\} (\S+)$' % h, text, re.M)]
            check(b == sorted(b) and b[-1][0] == float("inf") and b[-1][1] == m[h + "_count"],
                  "%s buckets cumulative, ending in +Inf = _count: %r", h, b)
        # the delay is Redis's write time minus ts_ms: compare with the stream's own ids
        delay = sum(int(eid.split("-")[0]) - json.loads(f["json"])["ts_ms"]
                    for eid, f in r.xrange_all("dylive:{%s}:events" % LIVE)) / 1000.0
        # per event the two differ by the time between Redis's XADD and the worker seeing the reply
        check(abs(m["dylive_event_delay_seconds_sum"] - delay) <= xlen * 0.05,
              "event delay sum %.1f vs stream ids - ts_ms %.1f", m["dylive_event_delay_seconds_sum"], delay)
        # a local Redis acknowledges a fixture room's writes in milliseconds: 0.5 s on average is lax
        check(0 < m["dylive_write_latency_seconds_sum"] <= xlen * 0.5, "write latency sum %r for %d events",
              m["dylive_write_latency_seconds_sum"], xlen)
        for k in ("dylive_write_gaps_total", "dylive_fatal_writes_total", "dylive_redis_pending", "dylive_spool_bytes"):
            check_eq(m[k], 0, k)


def test_admin_assign_backlog_and_capacity():
    """dylive_assign_backlog follows LLEN P:assign while the worker is at --max-rooms (it cannot
    claim), and when a seat frees the claimed room leaves the backlog and appears as held."""
    with Env("adm-backlog") as env:
        r = env.start_redis()
        env.start_sim([QUIET, "818000301", "818000302", "818000303", "818000304"])
        admin = free_port()
        env.worker("--max-rooms", "1", admin="127.0.0.1:%d" % admin)
        wait_until(lambda: http(admin, "/readyz", timeout=2)[0] == 200, 20, "the worker ready")
        r("LPUSH", "dylive:assign", QUIET)
        wait_until(lambda: samples(scrape(admin)).get('dylive_rooms{state="live"}') == 1, 20, "one room live")

        def backlog():
            return samples(scrape(admin))["dylive_assign_backlog"], r("LLEN", "dylive:assign")
        r("LPUSH", "dylive:assign", "818000301", "818000302", "818000303")
        wait_until(lambda: backlog() == (3, 3), 5, "backlog 3 = LLEN")
        m = samples(scrape(admin))
        check_eq((m["dylive_rooms"], m["dylive_rooms_capacity"]), (1, 1), "held and capacity at the cap")
        r("RPUSH", "dylive:assign", "818000304")
        wait_until(lambda: backlog() == (4, 4), 5, "backlog 4 = LLEN")
        r("LREM", "dylive:assign", 0, "818000302")
        wait_until(lambda: backlog() == (3, 3), 5, "backlog 3 after LREM")
        # free the seat: the worker claims the next room (one leaves the list)
        subprocess.run([os.path.join(BUILD, "dylivectl"), "--redis", "redis://127.0.0.1:%d/0" % env.redis_port,
                        "unassign", QUIET], check=True, stdout=subprocess.DEVNULL)
        wait_until(lambda: backlog() == (2, 2), 10, "backlog 2 once a room was claimed")
        wait_until(lambda: samples(scrape(admin)).get('dylive_rooms{state="live"}') == 1, 20, "the next room live")
        r("DEL", "dylive:assign")
        wait_until(lambda: backlog() == (0, 0), 5, "backlog 0")


def test_admin_process_metrics():
    """process_* from /proc agree with /proc: RSS within 10 %, open fds = /proc/<pid>/fd (plus the
    scrape's own connection), max fds = the soft limit, start time, CPU between two readings."""
    with Env("adm-proc") as env:
        wd = World(env)
        pid = wd.pid
        for attempt in range(20):  # the worker opens and closes descriptors now and then: want a still moment
            n0, rss0, cpu0 = proc_nfds(pid), rss_kb(pid), proc_cpu_s(pid)
            m = samples(scrape(wd.admin))
            n1, rss1, cpu1 = proc_nfds(pid), rss_kb(pid), proc_cpu_s(pid)
            if n0 == n1:
                break
        check_eq(n0, n1, "descriptors stable around a scrape")
        check_eq(m["process_open_fds"], n0 + 1, "process_open_fds = /proc/<pid>/fd entries + the scrape's socket")
        rss = m["process_resident_memory_bytes"] / 1024
        check(min(rss0, rss1) * 0.9 <= rss <= max(rss0, rss1) * 1.1, "process_resident_memory_bytes %d KiB vs "
              "/proc %d..%d KiB", rss, rss0, rss1)
        check(cpu0 - 0.01 <= m["process_cpu_seconds_total"] <= cpu1 + 0.01, "process_cpu_seconds_total %r vs %r..%r",
              m["process_cpu_seconds_total"], cpu0, cpu1)
        check_eq(m["process_max_fds"], resource.prlimit(pid, resource.RLIMIT_NOFILE)[0], "process_max_fds")
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            btime = int([l for l in f if l.startswith("btime ")][0].split()[1])
        start = btime + int(rest[19]) / os.sysconf("SC_CLK_TCK")
        check(abs(m["process_start_time_seconds"] - start) < 1, "process_start_time_seconds %r vs %r",
              m["process_start_time_seconds"], start)
        check(abs(m["process_virtual_memory_bytes"] - int(rest[20])) <= int(rest[20]) * 0.1,
              "process_virtual_memory_bytes %r vs %r", m["process_virtual_memory_bytes"], rest[20])


# ---------------------------------------------------------------- sizing (deploy/PRODUCTION.md)

def test_admin_sizing_100_quiet_rooms():
    """The figures of deploy/PRODUCTION.md "Sizing" for rooms per worker: RSS and descriptors per
    held room (100 quiet rooms on the simulator), idle CPU, Redis keys per room, the drain of 100
    rooms (SIGTERM: exit 0 within 10 s, all handed back) and how long another worker with the
    default --connect-rate/--http-rate takes to have them all live again. Prints the figures;
    fails when a room costs more than 128 KiB or more than one descriptor."""
    n = 100
    rooms = [str(818100000 + i) for i in range(n)]
    with Env("adm-size") as env:
        r = env.start_redis()
        env.start_sim(rooms)
        admin = free_port()
        fast = ["--connect-rate", "200", "--connect-burst", "200", "--http-rate", "200", "--http-burst", "200"]
        w = env.worker(*fast, admin="127.0.0.1:%d" % admin)
        wait_until(lambda: http(admin, "/readyz", timeout=2)[0] == 200, 20, "the worker ready")
        for _ in range(3):
            scrape(admin)
        rss0, fds0 = rss_kb(w.pid), proc_nfds(w.pid)
        mem0 = int(re.search(r"used_memory:(\d+)", r("INFO", "memory")).group(1))
        r("LPUSH", "dylive:assign", *rooms)
        wait_until(lambda: samples(scrape(admin)).get('dylive_rooms{state="live"}') == n, 60, "%d rooms live" % n)
        c0, t0 = proc_cpu_s(w.pid), time.monotonic()
        time.sleep(10.0)  # a measurement window: heartbeats (10 s) and the simulator's pings (5 s) happen in it
        cpu = (proc_cpu_s(w.pid) - c0) / (time.monotonic() - t0)
        for _ in range(3):
            scrape(admin)
        rss1, fds1 = rss_kb(w.pid), proc_nfds(w.pid)
        mem1 = int(re.search(r"used_memory:(\d+)", r("INFO", "memory")).group(1))
        per_room_keys = sum(r("MEMORY", "USAGE", k, "SAMPLES", "0") or 0 for k in r("KEYS", "dylive:{%s}:*" % rooms[0]))
        per_rss = (rss1 - rss0) / n
        print("SIZING worker RSS %d KiB with 0 rooms, %d KiB with %d quiet rooms: %.1f KiB per room" %
              (rss0, rss1, n, per_rss))
        print("SIZING descriptors %d with 0 rooms, %d with %d rooms: %.2f per room" % (fds0, fds1, n,
                                                                                      (fds1 - fds0) / n))
        print("SIZING worker CPU with %d quiet rooms: %.4f cores" % (n, cpu))
        print("SIZING Redis used_memory +%d bytes for %d quiet rooms (%d per room); keys of one room: %r = %d bytes"
              % (mem1 - mem0, n, (mem1 - mem0) // n, sorted(r("KEYS", "dylive:{%s}:*" % rooms[0])), per_room_keys))
        lifecycle = r("XLEN", "dylive:rooms")
        print("SIZING P:rooms: %d entries, MEMORY USAGE %d bytes" % (
            lifecycle, r("MEMORY", "USAGE", "dylive:rooms", "SAMPLES", "0")))
        if not SANITIZED:
            check(per_rss < 128, "%.1f KiB of RSS per quiet room", per_rss)
        check(0.9 <= (fds1 - fds0) / n <= 1.1, "%.2f descriptors per room", (fds1 - fds0) / n)
        t0 = time.monotonic()
        w.send_signal(signal.SIGTERM)
        check_eq(w.wait(timeout=12), 0, "exit status of the drain")
        drain = time.monotonic() - t0
        print("SIZING drain with %d rooms held: exit 0 after %.2f s" % (n, drain))
        check(drain < 10, "drain of %d rooms took %.1fs", n, drain)
        check_eq(r("LLEN", "dylive:assign"), n, "every room handed back")
        admin2 = free_port()
        t0 = time.monotonic()
        env.worker(admin="127.0.0.1:%d" % admin2)  # default connect and HTTP rates: ~20 s for 100 rooms
        # (the waits of this test add up to less than its ctest TIMEOUT of 180 s, so a failure shows its logs)
        wait_until(lambda: (http(admin2, "/metrics", timeout=2)[0] == 200 and
                            samples(scrape(admin2)).get('dylive_rooms{state="live"}') == n), 75,
                   "another worker (default rates) to have all %d rooms live" % n)
        print("SIZING another worker with the default --connect-rate/--http-rate had all %d rooms live after %.1f s"
              % (n, time.monotonic() - t0))


COPY_SCRIPT = """
local src = redis.call('XRANGE', KEYS[1], '-', '+')
local n, want = 0, tonumber(ARGV[1])
while n < want do
  for _, e in ipairs(src) do
    if n == want then break end
    redis.call('XADD', KEYS[2], '*', unpack(e[2]))
    n = n + 1
  end
end
return n"""


def test_admin_sizing_redis_memory_per_entry():
    """The figures of deploy/PRODUCTION.md "Redis memory": MEMORY USAGE (SAMPLES 0, exact) of a
    rich fixture room's stream and of a chat-only one, per entry, at --stream-maxlen 5000 (the
    approximate MAXLEN keeps 5000 to 5000 + one 100-entry node). Prints the figures; fails if
    trimming does not hold the stream near MAXLEN."""
    maxlen = 5000
    with Env("adm-mem") as env:
        r = env.start_redis()
        rich, chat = "818200001", "818200003"
        f_rich, man_rich = env.fixture("rich", rich, default_room_id(rich), "--frames", "4000", "--seed", "21")
        f_chat, man_chat = env.fixture("chat", chat, default_room_id(chat), "--frames", "10000", "--kinds", "chat",
                                       "--per-frame", "1", "--seed", "22")
        env.start_sim(["%s:%s" % (rich, f_rich), "%s:%s" % (chat, f_chat)])
        env.worker("--stream-maxlen", str(maxlen))
        r("LPUSH", "dylive:assign", rich, chat)
        for live in (rich, chat):
            wait_until(lambda: r.hgetall("dylive:{%s}:status" % live).get("state") == "ended", 120, "%s ended" % live)
        for live, man, kind in ((rich, man_rich, "rich (every event type)"), (chat, man_chat, "chat only")):
            key = "dylive:{%s}:events" % live
            xlen = r("XLEN", key)
            usage = r("MEMORY", "USAGE", key, "SAMPLES", "0")
            json_bytes = sum(len(f["json"].encode()) for _, f in r.xrange_all(key))
            status = r("MEMORY", "USAGE", "dylive:{%s}:status" % live, "SAMPLES", "0")
            print("SIZING %s: %d events written, XLEN %d at --stream-maxlen %d; MEMORY USAGE %d bytes = %.0f bytes "
                  "per entry (JSON %.0f bytes per entry); status hash %d bytes" % (
                      kind, man["unique_msg_ids"], xlen, maxlen, usage, usage / xlen, json_bytes / xlen, status))
            check(maxlen <= xlen < maxlen + 200, "XLEN %d at --stream-maxlen %d", xlen, maxlen)
            # the default MAXLEN: the same entries copied (in Redis) into a 100,000-entry stream
            big = "scratch:%s:100k" % live
            r("EVAL", COPY_SCRIPT, 2, key, big, 100000)
            check_eq(r("XLEN", big), 100000, "copied stream length")
            usage = r("MEMORY", "USAGE", big, "SAMPLES", "0")
            print("SIZING %s at 100,000 entries (the default --stream-maxlen): MEMORY USAGE %d bytes = %.0f bytes per "
                  "entry, %.1f MB per room" % (kind, usage, usage / 100000, usage / 1e6))
            r("DEL", big)


# ---------------------------------------------------------------- the text format

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    return name


def parse_exposition(text):
    """Checks the Prometheus text format 0.0.4 strictly; returns {family: type}."""
    check(text.endswith("\n"), "the page must end with a newline")
    helps, types, done, seen = {}, {}, set(), set()
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        check(line != "", "line %d is empty", n)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = parts[2]
                check(NAME.match(fam), "line %d: bad metric name %r", n, fam)
                check(fam not in done, "line %d: %s %s after its family ended", n, parts[1], fam)
                d = helps if parts[1] == "HELP" else types
                check(fam not in d, "line %d: second %s for %s", n, parts[1], fam)
                if parts[1] == "TYPE":
                    check(len(parts) == 4 and parts[3] in TYPES, "line %d: bad TYPE %r", n, line)
                    check(not any(family_of(s[0], types) == fam for s in seen), "line %d: TYPE after samples", n)
                    types[fam] = parts[3]
                else:
                    check(len(parts) == 4 and parts[3].strip(), "line %d: empty HELP", n)
                    check(not re.search(r"\\[^\\n]", parts[3]), "line %d: bad escape in HELP", n)
                    helps[fam] = parts[3]
                if current != fam:
                    if current:
                        done.add(current)
                    current = fam
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$", line)
        check(m, "line %d: not a sample: %r", n, line)
        name, labels_s, value = m.group(1), m.group(3), m.group(4)
        fam = family_of(name, types)
        check(fam not in done, "line %d: %s after its family ended (samples not contiguous)", n, name)
        if current != fam:
            if current:
                done.add(current)
            current = fam
        labels = []
        if labels_s:
            rest = labels_s
            while rest:
                lm = LABEL.match(rest)
                check(lm, "line %d: bad label set %r", n, labels_s)
                labels.append((lm.group(1), lm.group(2)))
                rest = rest[lm.end():]
            check(len(set(k for k, _ in labels)) == len(labels), "line %d: a label twice", n)
        try:
            float(value)
        except ValueError:
            check(False, "line %d: bad value %r", n, value)
        key = (name, tuple(sorted(labels)))
        check(key not in seen, "line %d: duplicate series %r", n, key)
        seen.add(key)
    for fam, t in types.items():
        check(fam in helps, "%s has TYPE but no HELP", fam)
        if t == "counter":
            check(fam.endswith("_total"), "counter %s does not end in _total", fam)
    for name, labels in seen:
        check(family_of(name, types) in types, "%s has no TYPE", name)
        for k, v in labels:
            check(k in ("state", "type", "kind", "le", "version"), "unbounded label %s=%r on %s", k, v, name)
            check(v not in (LIVE, QUIET, default_room_id(LIVE)), "a room id as a label value on %s", name)
    return types


def test_admin_metrics_wellformed():
    """Every line of /metrics parses (HELP/TYPE once per family, a family's samples contiguous,
    label values escaped, no duplicate series, counters end in _total, bounded labels only, every
    issue-12 metric present) and `promtool check metrics` finds nothing."""
    with Env("adm-text") as env:
        wd = World(env)
        r = wd.r
        r("LPUSH", "dylive:assign", QUIET, "not-a-room")
        wait_until(lambda: samples(scrape(wd.admin)).get('dylive_rooms{state="live"}') == 2, 20, "two rooms live")
        text = scrape(wd.admin)
        types = parse_exposition(text)
        for fam, t in (("dylive_rooms", "gauge"), ("dylive_events_written_total", "counter"),
                       ("dylive_build_info", "gauge"), ("dylive_rooms_capacity", "gauge"),
                       ("dylive_assign_backlog", "gauge"), ("dylive_redis_connected", "gauge"),
                       ("dylive_write_latency_seconds", "histogram"), ("dylive_event_delay_seconds", "histogram"),
                       ("process_cpu_seconds_total", "counter"), ("process_resident_memory_bytes", "gauge"),
                       ("process_open_fds", "gauge"), ("process_max_fds", "gauge"),
                       ("process_start_time_seconds", "gauge"), ("process_virtual_memory_bytes", "gauge")):
            check_eq(types.get(fam), t, "TYPE of %s" % fam)
        promtool = shutil.which("promtool")
        if not promtool:
            skip("promtool is not installed (scripts/deps.sh installs prometheus): `promtool check metrics` not run")
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
              "promtool check metrics: status %d\n%s%s", p.returncode, p.stdout, p.stderr)


if __name__ == "__main__":
    run()
