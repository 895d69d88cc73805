"""Edges of the Douyin side against the simulator: proxy credentials that need percent-encoding
reach the proxy the same way from the pages (libcurl) and the WebSocket (libwebsockets)."""
import base64
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


if __name__ == "__main__":
    run()
