"""Integration harness: a real redis-server, the Douyin simulator and real worker processes,
each on a free port in a private temp dir, all cleaned up. Python stdlib only (/usr/bin/python3).

Waits are event-driven (poll with a deadline), never fixed sleeps."""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.environ.get("DYLIVE_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


_ports_given = set()


def free_port():
    """A loopback port nobody listens on now, and one this process has not handed out before: the
    kernel gives the same free port again often (~3 % of 1000 calls), and two workers of one test
    given the same admin port lost one of them (test_zombie_is_fenced failed on it)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


class RespError(Exception):
    pass


class Redis:
    """A tiny RESP2 client: enough for tests, no dependency."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(65536, n))
            if not chunk:
                raise ConnectionError("redis closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self, nested=False):
        """An error reply raises RespError; inside an array it is returned as one (the rest of the
        array is still read: Lua scripts may answer one error per element)."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            if nested:
                return RespError(rest.decode())
            raise RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "surrogateescape")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply(True) for _ in range(n)]
        raise RespError("bad reply %r" % line)

    def __call__(self, *args):
        self.sock.sendall(encode_command(*args))
        return self._reply()

    def hgetall(self, key):
        r = self(("HGETALL"), key) or []
        return dict(zip(r[0::2], r[1::2]))

    def xrange_all(self, key):
        """Every entry of a stream as (id, {field: value})."""
        out, start = [], "-"
        while True:
            batch = self("XRANGE", key, start, "+", "COUNT", 5000)
            if not batch:
                return out
            for eid, fields in batch:
                out.append((eid, dict(zip(fields[0::2], fields[1::2]))))
            ms, seq = batch[-1][0].split("-")
            start = "%s-%d" % (ms, int(seq) + 1)


class Env:
    """One test's world. Use as a context manager."""

    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="dylive-%s-" % name)
        self.procs = []
        self.redis_port = None
        self.sim_port = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        if exc[0] is not None:
            self.dump_logs()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def dump_logs(self):
        for fn in sorted(os.listdir(self.tmp)):
            if fn.endswith(".log"):
                path = os.path.join(self.tmp, fn)
                with open(path, "rb") as f:
                    data = f.read()[-6000:]
                sys.stderr.write("---- %s (tail) ----\n%s\n" % (fn, data.decode("utf-8", "replace")))

    def spawn(self, args, log, env=None, stdout=None):
        logf = open(os.path.join(self.tmp, log), "ab")
        e = dict(os.environ)
        e.setdefault("DYLIVE_SPOOL_DIR", self.tmp)  # a killed worker's spool stays in the test's temp dir
        if env:
            e.update(env)
        p = subprocess.Popen(args, stdout=stdout or logf, stderr=logf, env=e, cwd=self.tmp)
        logf.close()
        self.procs.append(p)
        return p

    def _redis_args(self):
        return ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                "no", "--dir", os.path.join(self.tmp, "redis")] + self.redis_extra

    def start_redis(self, extra=()):
        self.redis_port = free_port()
        self.redis_extra = list(extra)
        self.redis_restarts = 0
        os.makedirs(os.path.join(self.tmp, "redis"), exist_ok=True)
        self.redis_proc = self.spawn(self._redis_args(), "redis.log")
        wait_until(self._redis_up, 10, "redis-server to accept connections")
        return Redis(self.redis_port)

    def log(self, name):
        """The text of a log file this environment's processes wrote (bytes that are not UTF-8 replaced)."""
        with open(os.path.join(self.tmp, name), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill_redis(self):
        """SIGKILL redis-server; returns the monotonic time it was gone."""
        self.redis_proc.send_signal(signal.SIGKILL)
        self.redis_proc.wait(timeout=10)
        return time.monotonic()

    def restart_redis(self):
        """redis-server again on the same port, directory and options (an AOF given to start_redis is
        loaded again)."""
        self.redis_restarts += 1
        self.redis_proc = self.spawn(self._redis_args(), "redis-restart%d.log" % self.redis_restarts)
        wait_until(self._redis_up, 20, "redis-server restarted (and its AOF loaded)")
        return Redis(self.redis_port)

    def _redis_up(self):
        try:
            r = Redis(self.redis_port)
            try:
                ok = r("PING") == "PONG"
            except RespError as e:  # a server with requirepass is up too
                ok = str(e).startswith("NOAUTH")
            r.close()
            return ok
        except OSError:
            return False

    def start_sim(self, rooms, extra=()):
        args = [os.path.join(BUILD, "dylive-sim"), "--port", "0"]
        for spec in rooms:
            args += ["--room", spec]
        args += list(extra)
        p = self.spawn(args, "sim.log", stdout=subprocess.PIPE)
        line = p.stdout.readline().decode()
        assert line.startswith("listening "), "simulator did not start: %r" % line
        self.sim_port = int(line.split()[1])
        return p

    def sim_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.sim_port, path)

    def sim_stats(self, live_id):
        with urllib.request.urlopen(self.sim_url("/_sim/stats?live_id=%s" % live_id), timeout=10) as r:
            return json.loads(r.read())

    def sim_post(self, path):
        req = urllib.request.Request(self.sim_url(path), data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def worker(self, *extra, worker_id=None, admin="off", env=None):
        args = [os.path.join(BUILD, "dylive-connector"),
                "--redis", "redis://127.0.0.1:%d/0" % self.redis_port,
                "--douyin-http", "http://127.0.0.1:%d" % self.sim_port,
                "--douyin-ws", "ws://127.0.0.1:%d" % self.sim_port,
                "--admin", admin, "--log-format", "json", "--poll-ms", "200"]
        if worker_id:
            args += ["--worker-id", worker_id]
        args += list(extra)
        wrapper = os.environ.get("DYLIVE_WORKER_WRAPPER")  # e.g. valgrind for the memcheck run
        if wrapper:
            args = wrapper.split() + args
        n = sum(1 for p in self.procs if p.args and any(str(a).endswith("dylive-connector") for a in p.args))
        return self.spawn(args, "worker%d.log" % n, env=env)

    def fixture(self, name, live_id, room_id, *extra):
        out = os.path.join(self.tmp, name + ".frames")
        man = os.path.join(self.tmp, name + ".json")
        subprocess.run([os.path.join(BUILD, "dylive-fixture"), "--out", out, "--live-id", str(live_id),
                        "--room-id", str(room_id), "--manifest", man] + list(extra), check=True)
        with open(man) as f:
            return out, json.load(f)

    def chat_rooms(self, first_live, n, frames, fps, seed):
        """n rooms of chat-only fixtures (live ids first_live, first_live + 1, …), each with its
        manifest: returns (live ids, sim specs at fps, {live id: manifest})."""
        rooms, specs, mans = [str(first_live + i) for i in range(n)], [], {}
        for i, live in enumerate(rooms):
            path, mans[live] = self.fixture("chat%d" % i, live, default_room_id(live), "--frames", str(frames),
                                            "--seed", str(seed + i), "--kinds", "chat")
            specs.append("%s:%s,fps=%d" % (live, path, fps))
        return rooms, specs, mans


def _commandstats(r):
    """INFO commandstats: {command: {"calls": …, "usec": …, …}} (numbers as floats)."""
    out = {}
    for line in r("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, kv = line[len("cmdstat_"):].split(":", 1)
            out[name] = {k: float(v) for k, v in (x.split("=") for x in kv.split(","))}
    return out


def command_stats(r, cmd):
    """INFO commandstats of one command (e.g. "evalsha", "script|load"): {"calls": …, …}, all 0
    when it never ran."""
    return _commandstats(r).get(cmd, {"calls": 0, "usec": 0, "failed_calls": 0, "rejected_calls": 0})


def all_command_stats(r):
    """INFO commandstats as {command: (calls, usec)} (scripts include the commands they call)."""
    return {name: (int(v["calls"]), int(v["usec"])) for name, v in _commandstats(r).items()}


def default_room_id(live_id):
    return str(7000000000000000000 + int(live_id) % 10 ** 18)


STREAM_DUP_SCRIPT = """
local seen, dups, n, start = {}, 0, 0, '-'
while true do
  local b = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 10000)
  if #b == 0 then break end
  for _, e in ipairs(b) do
    local f = e[2]
    n = n + 1
    for i = 1, #f, 2 do
      if f[i] == 'msg_id' then
        if seen[f[i+1]] then dups = dups + 1 else seen[f[i+1]] = true end
      end
    end
  end
  start = '(' .. b[#b][1]
end
return {n, dups}"""


def stream_dups(r, live_id, prefix="dylive"):
    """(entries, entries whose msg_id appeared earlier in the stream), counted inside Redis so that
    million-entry streams need not cross the socket."""
    n, dups = r("EVAL", STREAM_DUP_SCRIPT, 1, "%s:{%s}:events" % (prefix, live_id))
    return n, dups


def proc_status_kb(pid, field):
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM, …), 0 when absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kb(pid):
    return proc_status_kb(pid, "VmRSS")


def blasted_room_rss(env, live, nframes, *worker_args):
    """A fresh Redis, the simulator sending a fixture room of nframes (seed 42) flat out, and one
    worker (worker_args) capturing it: the worker's RSS in KiB before, at its peak and when the room
    has ended. Returns a dict: r, w (the worker), man (the manifest), base, peak, end, seconds."""
    r = env.start_redis()
    frames, man = env.fixture("room", live, default_room_id(live), "--frames", str(nframes), "--seed", "42")
    env.start_sim(["%s:%s,fps=0" % (live, frames)])
    w = env.worker(*worker_args)
    wait_until(lambda: r("ZCARD", "dylive:workers") >= 1, 15, "the worker registered")
    out = {"r": r, "w": w, "man": man, "base": rss_kb(w.pid), "peak": 0}

    def ended():
        out["peak"] = max(out["peak"], rss_kb(w.pid))
        return r.hgetall("dylive:{%s}:status" % live).get("state") == "ended"
    t0 = time.monotonic()
    r("LPUSH", "dylive:assign", live)
    wait_until(ended, 300, "the room ended", interval=0.05)
    out["seconds"], out["end"] = time.monotonic() - t0, rss_kb(w.pid)
    return out


def proc_cpu_s(pid):
    """utime + stime of the whole process (all threads), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def proc_nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def spool_files(d):
    """Every spool file under a --spool-dir (they live in its private dylive-<uid> subdirectory)."""
    return sorted(glob.glob(os.path.join(d, "**", "*.spool"), recursive=True))


def metric(port, name):
    """A metric's value; for a labelled family (name{…}) the sum of its samples; None if absent or
    if the endpoint does not answer (so `metric(…) == 0` never holds for a dead worker)."""
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    except OSError:  # not listening yet (or any more): no value
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(values) if values else None


def check(cond, msg, *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)


def check_eq(a, b, what):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


class Skip(Exception):
    """Raised by skip(): the test could not check what it promises here (a tool is missing)."""


def skip(why):
    raise Skip(why)


def run(tests=None):
    """Runs the named test functions (default: every test_* function of the __main__ module, in
    file order); prints 'N passed, N failed'. CMake registers one ctest entry per test_* def. A run
    in which every test skipped exits 77, which ctest reports as skipped, never as passed."""
    if tests is None:
        main = sys.modules["__main__"]
        tests = [v for k, v in vars(main).items() if k.startswith("test_") and callable(v)]
    only = sys.argv[1:]
    passed = failed = skipped = 0
    for fn in tests:
        if only and fn.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print("ok   %s (%.1fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (fn.__name__, e), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, e), flush=True)
            import traceback
            traceback.print_exc()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if failed:
        sys.exit(1)
    sys.exit(0 if passed else 77 if skipped else 1)


# ---- appended helpers (outage tests) ----

def metrics(port):
    """Every sample of a worker's /metrics as {name: value} (None when the endpoint does not answer)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, val = line.rpartition(" ")
            try:
                v = float(val)
            except ValueError:
                continue
            out[name] = v
            if "{" in name:  # a labelled family also counts as its bare name: the sum of its samples
                fam = name.split("{", 1)[0]
                out[fam] = out.get(fam, 0.0) + v
    return out


def redis_ready(port):
    """True once a redis-server on port answers PING (False while down or still loading its AOF)."""
    try:
        r = Redis(port)
    except OSError:
        return False
    try:
        return r("PING") == "PONG"
    except (OSError, RespError):
        return False
    finally:
        r.close()


def encode_command(*args):
    """One RESP command, for sending without waiting for the reply (Redis.sock.sendall, then ._reply())."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class ConnectProxy:
    """A small HTTP CONNECT proxy on loopback that counts its tunnels and their targets."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.targets = []
        self.auth = []
        self.socks = []  # every client and upstream socket, for kill()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        import socket
        import threading
        with self.lock:
            self.socks.append(c)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                c.close()
                return
            head += chunk
        line = head.split(b"\r\n")[0].decode()
        parts = line.split()
        if len(parts) < 2 or parts[0] != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            c.close()
            return
        host, port = parts[1].rsplit(":", 1)
        with self.lock:
            self.targets.append(parts[1])
            self.auth.append(b"proxy-authorization" in head.lower())
        try:
            u = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            c.close()
            return
        with self.lock:
            self.socks.append(u)
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            u.sendall(rest)

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for s_ in (a, b):
                try:
                    s_.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        pump(u, c)

    def close(self):
        import socket
        try:  # wakes the accept() blocked in the other thread (close alone would not, on Linux)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def kill(self):
        """Stop listening and cut every tunnel, as a proxy that dies does."""
        import socket
        self.close()
        with self.lock:
            for s_ in self.socks:
                try:
                    s_.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
