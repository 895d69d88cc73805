"""Proxies at their edges, against the simulator: credentials that need percent-encoding reach the
proxy the same way from the pages (libcurl) and the WebSocket (libwebsockets); a room whose own
assignment proxy cannot be used is never captured another way, and its status says why."""
import base64
import json
import os
import socket

from harness import ConnectProxy, Env, check, check_eq, run, wait_until

LIVE = "7700300"


class AuthProxy(ConnectProxy):
    """A ConnectProxy that also keeps the decoded Proxy-Authorization of every CONNECT (None
    when a request had none)."""

    def __init__(self):
        self.creds = []
        super().__init__()

    def _serve(self, c):
        head = b""
        while b"\r\n\r\n" not in head:  # look without taking: the parent reads the request
            head = c.recv(65536, socket.MSG_PEEK)
            if not head or len(head) >= 65536:
                break
        cred = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"proxy-authorization":
                scheme, _, token = value.strip().partition(b" ")
                cred = base64.b64decode(token).decode("utf-8", "replace") if scheme.lower() == b"basic" else value
        with self.lock:
            self.creds.append(cred)
        super()._serve(c)


def status(r, live_id=LIVE):
    return r.hgetall("dylive:{%s}:status" % live_id)


def test_proxy_credentials_percent_encoded():
    """--proxy http://user:p%40ss%2Fw@host:port: the page requests and the WebSocket's CONNECT both
    carry user:p@ss/w (curl decodes the userinfo; libwebsockets was handed it raw, p%40ss%2Fw cut
    at the '/')."""
    with Env("proxy-cred") as env:
        r = env.start_redis()
        env.start_sim([LIVE])
        proxy = AuthProxy()
        try:
            env.worker("--proxy", "http://user:p%%40ss%%2Fw@127.0.0.1:%d" % proxy.port)
            r("LPUSH", "dylive:assign", LIVE)
            wait_until(lambda: status(r).get("state") == "live", 30, "live through the proxy")
            check(proxy.targets.count("127.0.0.1:%d" % env.sim_port) >= 2, "pages and WebSocket: %r", proxy.targets)
            check_eq(set(proxy.creds), {"user:p@ss/w"}, "the same decoded credentials on every CONNECT")
        finally:
            proxy.close()


def test_unusable_assignment_proxy_is_a_room_error():
    """The pool is full (--proxy-file holds the maximum, 256): an assignment naming a proxy of its own
    cannot get a slot. The room is not captured through the rotation or directly; its status and
    P:rooms say error with the reason, and the claim is let go."""
    with Env("proxy-full") as env:
        r = env.start_redis()
        env.start_sim([LIVE])
        pf = os.path.join(env.tmp, "proxies.txt")
        with open(pf, "w") as f:
            f.write("".join("http://127.0.0.1:%d\n" % (20000 + i) for i in range(256)))
        env.worker("--proxy-file", pf, worker_id="wproxy")
        r("LPUSH", "dylive:assign", json.dumps({"live_id": LIVE, "proxy": "http://127.0.0.1:9"}))
        wait_until(lambda: status(r).get("state") == "error", 20, "the room in error")
        check("proxy" in status(r).get("error", ""), "the reason names the proxy: %r", status(r).get("error"))
        check_eq(env.sim_stats(LIVE)["connections"], 0, "never connected another way")
        wait_until(lambda: r("LLEN", "dylive:claims:wproxy:{dylive:assign}") == 0, 10, "the claim let go")
        entries = [f for _, f in r.xrange_all("dylive:rooms")]
        check(any(e["live_id"] == LIVE and e["state"] == "error" for e in entries), "P:rooms says error: %r", entries)
        check_eq(r("EXISTS", "dylive:{%s}:lease" % LIVE), 0, "the room is not held")


if __name__ == "__main__":
    run()
