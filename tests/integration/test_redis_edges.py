"""Edges of the Redis side: dylivectl following a Cluster's slot as it moves (MOVED/ASK), dylivectl's
credentials from the same places as the worker's, the worker's view after a Sentinel switch, a
Cluster's node table across many address changes. Real redis-server/redis-sentinel processes."""
import os
import signal
import socket
import subprocess
import threading

from harness import BUILD, Env, Redis, check, check_eq, command_stats, free_port, metric, run, wait_until
from topology import node_id, node_of, q, start_cluster, start_sentinel_set

LIVE = "666000222"


class Reader(threading.Thread):
    """Collects a process's stdout lines as they come (no sleeps: tests wait on what was read)."""

    def __init__(self, proc):
        super().__init__(daemon=True)
        self.proc, self.lines = proc, []
        self.start()

    def run(self):
        for line in self.proc.stdout:
            self.lines.append(line.decode("utf-8", "replace"))

    def text(self):
        return "".join(self.lines)


def chat(r, key, text):
    r("XADD", key, "*", "type", "chat", "msg_id", text,
      "json", '{"type":"chat","ts_ms":0,"content":"%s","user":{"nickname":"n"}}' % text)


def test_dylivectl_tail_follows_a_moved_slot():
    """dylivectl tail keeps following a room whose slot moves to another primary mid-tail: the
    blocked XREAD comes back with ASK/MOVED and dylivectl follows it (it used to read the slot
    number as part of the host name and exit)."""
    with Env("ctl-moved") as env:
        ports = start_cluster(env)
        key = "dylive:{%s}:events" % LIVE
        src, slot = node_of(ports, key)
        dst = next(p for p in ports if p != src)
        chat(Redis(src), key, "before-move")
        url = "redis-cluster://" + ",".join("127.0.0.1:%d" % p for p in ports)
        ctl = env.spawn([os.path.join(BUILD, "dylivectl"), "--redis", url, "tail", LIVE, "--from-start", "--count", "4"],
                        "ctl.log", stdout=subprocess.PIPE)
        out = Reader(ctl)
        wait_until(lambda: "before-move" in out.text(), 15, "the first event tailed")
        # migrate the slot while dylivectl sits in XREAD BLOCK on the source
        Redis(dst)("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(src))
        Redis(src)("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(dst))
        keys = Redis(src)("CLUSTER", "GETKEYSINSLOT", slot, 100)
        Redis(src)("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
        # the key is now on dst while the slot is still the source's: the source answers ASK
        r = Redis(dst)
        r("ASKING")
        chat(r, key, "during-move")
        wait_until(lambda: "during-move" in out.text() or ctl.poll() is not None, 15, "the event written mid-migration")
        for p in (dst, src) + tuple(p for p in ports if p not in (src, dst)):
            Redis(p)("CLUSTER", "SETSLOT", slot, "NODE", node_id(dst))
        chat(Redis(dst), key, "after-move")
        wait_until(lambda: "after-move" in out.text() or ctl.poll() is not None, 15, "the event after the move")
        # dylivectl's slot map still names the source: its next read there is answered MOVED
        chat(Redis(dst), key, "after-moved-reply")
        wait_until(lambda: ctl.poll() is not None, 15, "dylivectl done after --count 4")
        out.join(5)
        with open(os.path.join(env.tmp, "ctl.log"), "rb") as f:
            err = f.read().decode("utf-8", "replace")
        check(ctl.returncode == 0 and "after-moved-reply" in out.text(), "dylivectl followed the slot: rc %r out %r err %r",
              ctl.returncode, out.text(), err)
        check("during-move" in out.text(), "the ASK-redirected read too: %r", out.text())


def test_sentinel_switch_then_clean_exit():
    """A Sentinel failover moves node 0 to the new primary. It used to forget node 0's reconnect
    timer (a leak per failover: ASan's leak check fails the exit status in build-san) and to close
    a ready write link without telling the writer. Now the worker follows, is connected again, and
    exits 0 on SIGTERM."""
    with Env("sentinel-switch") as env:
        p1, p2, sentinels = start_sentinel_set(env)
        url = "redis-sentinel://%s/0#mymaster" % ",".join("127.0.0.1:%d" % s for s in sentinels)
        admin = free_port()
        w = env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", url, "--douyin-http",
                       "http://127.0.0.1:%d" % free_port(), "--admin", "127.0.0.1:%d" % admin, "--poll-ms", "200"],
                      "worker.log")
        wait_until(lambda: metric(admin, "dylive_redis_connected") == 1, 20, "connected to the first primary")
        q(sentinels[0], "SENTINEL", "FAILOVER", "mymaster")
        wait_until(lambda: "the primary of mymaster is now 127.0.0.1:%d" % p2 in env.log("worker.log"), 30,
                   "the worker told of the new primary")
        wait_until(lambda: metric(admin, "dylive_redis_connected") == 1 and
                   any(c.startswith("dylive:") for c in (q(p2, "CLIENT", "LIST") or "").split("name=")[1:]), 30,
                   "connected to the new primary")
        w.send_signal(signal.SIGTERM)
        rc = w.wait(timeout=30)
        check_eq(rc, 0, "worker exit status after a failover (ASan: no leak)")


class FakeClusterNode(threading.Thread):
    """One listener on every loopback address that plays a whole Redis Cluster whose primaries get
    new addresses on every CLUSTER SLOTS (pods rescheduled): ranges per map, each on a fresh
    127.0.x.y. A write connection is closed once it has loaded the scripts, so the worker asks
    for the topology again and again. Counts the distinct addresses it was reached at."""

    def __init__(self, ranges=16):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("0.0.0.0", 0))
        self.ls.listen(512)
        self.port = self.ls.getsockname()[1]
        self.ranges, self.next_ip, self.reached, self.maps = ranges, 2, set(), 0
        self.lock = threading.Lock()
        self.start()

    def run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.reached.add(s.getsockname()[0])
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def new_map(self):
        with self.lock:
            self.maps += 1
            ips = []
            for _ in range(self.ranges):
                n = self.next_ip
                self.next_ip += 1
                ips.append("127.0.%d.%d" % (n // 250, n % 250 + 2))
        step = 16384 // self.ranges
        out = [b"*%d\r\n" % self.ranges]
        for i, ip in enumerate(ips):
            lo, hi = i * step, 16383 if i == self.ranges - 1 else (i + 1) * step - 1
            out.append(b"*3\r\n:%d\r\n:%d\r\n*2\r\n$%d\r\n%s\r\n:%d\r\n" % (lo, hi, len(ip), ip.encode(), self.port))
        return b"".join(out)

    def serve(self, s):
        buf, loads = b"", 0
        try:
            while True:
                while True:
                    cmd, buf = self.parse(buf)
                    if cmd is None:
                        break
                    name = cmd[0].upper()
                    if name == b"CLUSTER":
                        s.sendall(self.new_map())
                    elif name == b"SCRIPT":
                        loads += 1
                        s.sendall(b"$40\r\n%s\r\n" % (b"0" * 40))
                        if loads == 5:  # every script loaded: the link is ready, now lose it
                            s.close()
                            return
                    elif name == b"PING":
                        s.sendall(b"+PONG\r\n")
                    elif name == b"BLMOVE":
                        s.sendall(b"$-1\r\n")
                    elif name in (b"AUTH", b"SELECT", b"CLIENT", b"ASKING"):
                        s.sendall(b"+OK\r\n")
                    else:
                        s.sendall(b"-ERR fake node\r\n")
                data = s.recv(65536)
                if not data:
                    return
                buf += data
        except OSError:
            return
        finally:
            s.close()

    @staticmethod
    def parse(buf):
        """One RESP command off the front of buf: ([args], rest) or (None, buf)."""
        if not buf.startswith(b"*") or b"\r\n" not in buf:
            return None, buf
        head, rest = buf.split(b"\r\n", 1)
        args = []
        for _ in range(int(head[1:])):
            if b"\r\n" not in rest:
                return None, buf
            ln, rest2 = rest.split(b"\r\n", 1)
            n = int(ln[1:])
            if len(rest2) < n + 2:
                return None, buf
            args.append(rest2[:n])
            rest = rest2[n + 2:]
        return args, rest


def test_cluster_node_table_survives_address_churn():
    """Primaries that come back at new addresses (a rolling restart moves every pod) must not fill
    the node table for good: it holds 128 nodes, and those no map or connection uses any more are
    taken again. Before, once 128 addresses had been seen every slot map was refused."""
    with Env("cluster-churn") as env:
        fake = FakeClusterNode(ranges=16)
        w = env.spawn([os.path.join(BUILD, "dylive-connector"), "--redis", "redis-cluster://127.0.0.1:%d" % fake.port,
                       "--douyin-http", "http://127.0.0.1:%d" % free_port(), "--admin", "off", "--poll-ms", "200"],
                      "worker.log")
        # 16 fresh addresses per map: 300 distinct ones is well past the table's 128
        wait_until(lambda: len(fake.reached) >= 300, 30, "the worker following maps past 128 addresses",
                   interval=0.2)
        check("slot map loaded" in env.log("worker.log"), "the worker loaded the maps")
        w.send_signal(signal.SIGTERM)
        check_eq(w.wait(timeout=30), 0, "worker exit status (ASan: the reused nodes' timers not leaked)")


def test_dylivectl_credentials_like_the_worker():
    """dylivectl reads passwords from the same places as the worker: DYLIVE_REDIS_PASSWORD_FILE for
    the data nodes, DYLIVE_SENTINEL_PASSWORD for sentinels that require one. It used to read only
    DYLIVE_REDIS_PASSWORD and to talk to sentinels without AUTH."""
    with Env("ctl-auth") as env:
        r = env.start_redis(["--requirepass", "data-pw"])
        r("AUTH", "data-pw")
        r("HSET", "dylive:{%s}:status" % LIVE, "state", "live", "worker", "w1")
        pwfile = os.path.join(env.tmp, "redis.pw")
        with open(pwfile, "w") as f:
            f.write("data-pw\n")
        ctl = os.path.join(BUILD, "dylivectl")
        e = dict(os.environ, DYLIVE_REDIS_PASSWORD_FILE=pwfile)
        e.pop("DYLIVE_REDIS_PASSWORD", None)
        p = subprocess.run([ctl, "--redis", "redis://127.0.0.1:%d/0" % env.redis_port, "rooms"], capture_output=True,
                           text=True, timeout=20, env=e)
        check(p.returncode == 0 and LIVE in p.stdout, "dylivectl with DYLIVE_REDIS_PASSWORD_FILE: %r %r", p.stdout,
              p.stderr)
        # a sentinel with its own password in front of the same node
        sp = free_port()
        conf = os.path.join(env.tmp, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nrequirepass sentinel-pw\n"
                    "sentinel monitor m 127.0.0.1 %d 1\nsentinel auth-pass m data-pw\n" % (sp, env.tmp, env.redis_port))
        env.spawn(["redis-sentinel", conf], "sentinel.log")
        def sentinel_knows():
            try:
                s = Redis(sp)
                s("AUTH", "sentinel-pw")
                return s("SENTINEL", "get-master-addr-by-name", "m")
            except Exception:  # noqa: BLE001 - not up yet
                return None
        wait_until(sentinel_knows, 15, "the sentinel up")
        url = "redis-sentinel://127.0.0.1:%d/0#m" % sp
        p = subprocess.run([ctl, "--redis", url, "rooms"], capture_output=True, text=True, timeout=20,
                           env=dict(e, DYLIVE_SENTINEL_PASSWORD="sentinel-pw"))
        check(p.returncode == 0 and LIVE in p.stdout, "dylivectl through a sentinel with a password: %r %r", p.stdout,
              p.stderr)
        p = subprocess.run([ctl, "--redis", url, "rooms"], capture_output=True, text=True, timeout=20, env=e)
        check(p.returncode != 0, "without the sentinel password dylivectl cannot ask: %r", p.stdout)
        # an unreadable password file is said, not ignored
        p = subprocess.run([ctl, "--redis", "redis://127.0.0.1:%d/0" % env.redis_port, "rooms"], capture_output=True,
                           text=True, timeout=20, env=dict(e, DYLIVE_REDIS_PASSWORD_FILE=pwfile + ".missing"))
        check(p.returncode != 0 and "DYLIVE_REDIS_PASSWORD_FILE" in p.stderr, "missing file named: %r", p.stderr)


def script_loads(r):
    return int(command_stats(r, "script|load")["calls"])


def test_noscript_reloads_once_per_node():
    """SCRIPT FLUSH under a busy pipeline: every EVALSHA in flight comes back NOSCRIPT. The scripts
    are loaded again once for all of them (they used to be loaded again once per NOSCRIPT reply),
    and every event still lands once."""
    with Env("noscript") as env:
        r = env.start_redis()
        rooms, specs, mans = env.chat_rooms(666000300, 8, 3000, 400, 40)
        env.start_sim(specs)
        env.worker("--flush-ms", "1")
        r("LPUSH", "dylive:assign", *rooms)

        def events():
            return sum(int(r.hgetall("dylive:{%s}:status" % l).get("events", 0)) for l in rooms)
        wait_until(lambda: events() >= 2000, 60, "every room writing")
        loads = script_loads(r)
        r("SCRIPT", "FLUSH")
        after = events()
        wait_until(lambda: events() > after + 500, 30, "writes going on after the flush")
        reloads = script_loads(r) - loads
        print("noscript: %d SCRIPT LOAD after one SCRIPT FLUSH" % reloads, flush=True)
        wait_until(lambda: all(r.hgetall("dylive:{%s}:status" % l).get("state") == "ended" for l in rooms), 90,
                   "every room ended")
        for l in rooms:
            ids = [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % l)]
            check_eq(ids, mans[l]["msg_ids"], "room %s exact across the flush" % l)
        check(reloads <= 10, "the scripts loaded again once (5 scripts), not per reply: %d loads", reloads)


def test_metrics_scrape_syscalls_bounded():
    """A /metrics scrape counts descriptors by listing /proc/self/fd, not by access() on every
    number up to 4x the count + 1024 (about 1100 syscalls per scrape with a few fds, 13000 with
    3000), and reads /proc/stat's btime once, not per scrape."""
    import shutil
    import urllib.request
    strace = shutil.which("strace")
    if not strace:
        print("strace not installed: skipped", flush=True)
        return
    with Env("scrape-syscalls") as env:
        env.start_redis()
        env.sim_port = free_port()
        admin = free_port()
        w = env.worker(admin="127.0.0.1:%d" % admin)
        wait_until(lambda: metric(admin, "dylive_redis_connected") == 1, 15, "worker up")
        out = os.path.join(env.tmp, "strace.out")
        st = subprocess.Popen([strace, "-f", "-e", "trace=access,openat", "-o", out, "-p", str(w.pid)],
                              stderr=subprocess.PIPE)
        st.stderr.readline()  # "strace: Process N attached"
        for _ in range(3):
            urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10).read()
        st.send_signal(signal.SIGINT)
        st.wait(timeout=10)
        st.stderr.close()
        with open(out) as f:
            calls = f.read().splitlines()
        access = sum(1 for c in calls if "access(" in c)
        stat = sum(1 for c in calls if '"/proc/stat"' in c)
        print("3 scrapes: %d access(), %d opens of /proc/stat" % (access, stat), flush=True)
        check(access == 0, "no access() per descriptor number: %d", access)
        check(stat <= 1, "/proc/stat read at most once: %d", stat)


if __name__ == "__main__":
    run()
