"""Edges of the Redis side: dylivectl following a Cluster's slot as it moves (MOVED/ASK), dylivectl's
credentials from the same places as the worker's, the worker's view after a Sentinel switch, a
Cluster's node table across many address changes. Real redis-server/redis-sentinel processes."""
import os
import subprocess
import threading

from harness import BUILD, Env, Redis, check, check_eq, free_port, metric, run, wait_until
from test_topologies import node_id, node_of, q, start_cluster, start_sentinel_set

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


if __name__ == "__main__":
    run()
