"""Douyin-side branches against the simulator: signatures, refused handshakes, TLS, challenge pages."""
import os
import sys
import subprocess
import time

import harness
from harness import ConnectProxy, Env, check, check_eq, default_room_id, free_port, metric, run, wait_until

LIVE = "555000333"


def status(r, live_id=LIVE):
    return r.hgetall("dylive:{%s}:status" % live_id)


def make_ca(env):
    """A private CA and a server certificate for 127.0.0.1 / localhost, made with openssl."""
    d = env.tmp

    def ossl(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=d, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dylive test CA",
         "-keyout", "ca.key", "-out", "ca.pem")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "srv.key", "-out", "srv.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", "ext.cnf", "-out", "srv.pem")
    return [os.path.join(d, x) for x in ("ca.pem", "srv.pem", "srv.key")]


def test_builtin_signature_accepted():
    """Defaults (--signer builtin) against the signature-checking simulator: zero refused handshakes."""
    with Env("sign") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "200", "--seed", "21")
        env.start_sim(["%s:%s" % (LIVE, frames)], extra=["--check-signature"])
        env.worker()
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "ended", 60, "state ended")
        sim = env.sim_stats(LIVE)
        check_eq(sim["ws_rejected"], 0, "refused handshakes")
        check(sim["sig_ok"] >= 1, "signature checked and accepted: %r", sim)
        ids = [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]
        check_eq(ids, man["msg_ids"], "the whole room, once")


def test_builtin_signature_fresh_on_reconnect():
    """Every reconnect signs again (a reused signature is refused by Douyin)."""
    with Env("resign") as env:
        r = env.start_redis()
        env.start_sim([LIVE], extra=["--check-signature"])
        env.worker()
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "live", 15, "live")
        for n in (2, 3):
            env.sim_post("/_sim/drop?live_id=%s" % LIVE)
            wait_until(lambda: env.sim_stats(LIVE)["connections"] >= n and status(r).get("state") == "live", 20,
                       "reconnect %d" % n)
        sim = env.sim_stats(LIVE)
        check_eq(sim["ws_rejected"], 0, "refused handshakes across reconnects")
        check_eq(sim["sig_ok"], 3, "three distinct valid signatures")


def test_refused_handshake_reported_and_paced():
    """--signer none: Douyin answers 200 + handshake-status 415; the status says so and we back off."""
    with Env("refused") as env:
        r = env.start_redis()
        env.start_sim([LIVE], extra=["--check-signature"])
        admin = free_port()
        env.worker("--signer", "none", admin="127.0.0.1:%d" % admin)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: "DEVICE_BLOCKED" in status(r).get("error", ""), 15, "the refusal in the status hash")
        st = status(r)
        check_eq(st["state"], "error", "state")
        check("415" in st["error"], "handshake-status in the error: %r", st["error"])
        check(metric(admin, "dylive_ws_rejected_total") >= 1, "metric counts the refusal")
        first = env.sim_stats(LIVE)["ws_rejected"]
        ua0 = env.sim_stats(LIVE)["last_headers"].get("user-agent")
        time.sleep(5)  # what is measured is that nothing happens for a while: no hammering
        check_eq(env.sim_stats(LIVE)["ws_rejected"], first, "no new attempt within 5 s of a refusal")
        check_eq(r("XLEN", "dylive:{%s}:events" % LIVE), 0, "no events")
        # refused twice: a fresh ttwid and another User-Agent for the next attempt
        wait_until(lambda: env.sim_stats(LIVE)["ws_rejected"] >= first + 2, 20, "two more refusals")
        ua = env.sim_stats(LIVE)["last_headers"].get("user-agent")
        check(ua and ua != ua0, "User-Agent rotated after repeated refusals: %r then %r", ua0, ua)


def test_tls_private_ca():
    """https + wss verified against --ca-file; without it the room fails closed with a clear error."""
    with Env("tls") as env:
        ca, cert, key = make_ca(env)
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "50", "--seed", "9")
        env.start_sim(["%s:%s" % (LIVE, frames), "5150", "5151"], extra=["--tls-cert", cert, "--tls-key", key])
        base = ["--douyin-http", "https://localhost:%d" % env.sim_port, "--douyin-ws", "wss://localhost:%d" % env.sim_port]
        trusting = env.worker(*(base + ["--ca-file", ca]), worker_id="trusting")
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("state") == "ended", 60, "TLS room ended")
        ids = [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]
        check_eq(ids, man["msg_ids"], "the whole room over TLS")

        trusting.terminate()
        check_eq(trusting.wait(timeout=10), 0, "trusting worker drained")
        env.worker(*base, worker_id="untrusting")
        r("LPUSH", "dylive:assign", "5150")
        wait_until(lambda: status(r, "5150").get("state") == "error", 20, "untrusted certificate fails closed")
        err = status(r, "5150").get("error", "")
        check("certificate" in err.lower() or "ssl" in err.lower() or "tls" in err.lower(), "clear error: %r", err)
        check_eq(r("XLEN", "dylive:{5150}:events"), 0, "no events without trust")
        check_eq(env.sim_stats("5150")["connections"], 0, "never a WebSocket without trust")

        # the page over plain http, the WebSocket over TLS without trust: wss itself fails closed
        env.procs[-1].terminate()
        env.procs[-1].wait(timeout=10)
        env.worker("--douyin-http", "http://127.0.0.1:%d" % env.sim_port, "--douyin-ws",
                   "wss://localhost:%d" % env.sim_port, worker_id="ws-untrusting")
        r("LPUSH", "dylive:assign", "5151")
        wait_until(lambda: "certificate" in status(r, "5151").get("error", "").lower(), 20,
                   "wss refused for an untrusted certificate")
        check_eq(status(r, "5151")["state"], "error", "state")
        check_eq(env.sim_stats("5151")["connections"], 0, "no WebSocket session without trust")
        check_eq(r("XLEN", "dylive:{5151}:events"), 0, "no events without trust")


def test_challenge_page_is_not_not_found():
    """A 200 page without room state is a challenge, not "not found": the JSON room API is asked
    instead; when that is refused too (empty body: risk control) the room is retried, not dropped."""
    with Env("challenge") as env:
        r = env.start_redis()
        env.start_sim(["6100,page=challenge,enter=empty", "6101,page=challenge,title=via-enter"])
        env.worker()
        r("LPUSH", "dylive:assign", "6100", "6101")
        wait_until(lambda: "challenge" in status(r, "6100").get("error", ""), 15, "challenge reported")
        st = status(r, "6100")
        check_eq(st["state"], "error", "state while retrying")
        check("retrying" in st["error"] and "empty body" in st["error"], "it says why and retries: %r", st["error"])
        wait_until(lambda: status(r, "6101").get("state") == "live", 15, "resolved through web/enter")
        check_eq(status(r, "6101").get("title"), "via-enter", "title from web/enter")


def test_cookies_global_and_per_room():
    """--cookie-file for the worker, {"live_id","cookie":"<profile>"} assignments for one room;
    the cookies reach the page and the WebSocket, never the log; a world-readable file is refused."""
    with Env("cookies") as env:
        r = env.start_redis()
        env.start_sim(["7301", "7302"])
        cdir = os.path.join(env.tmp, "cookies")
        os.makedirs(cdir)
        glob = os.path.join(env.tmp, "global.cookies")
        with open(glob, "w") as f:  # Netscape format
            f.write("# Netscape HTTP Cookie File\n.douyin.com\tTRUE\t/\tFALSE\t0\tsessionid\tGLOBALSECRET\n")
        os.chmod(glob, 0o600)
        with open(os.path.join(cdir, "shop.cookies"), "w") as f:
            f.write("sessionid=SHOPSECRET; odin_tt=x")
        os.chmod(os.path.join(cdir, "shop.cookies"), 0o600)
        w = env.worker("--cookie-file", glob, "--cookie-dir", cdir, "--log-level", "debug")
        r("LPUSH", "dylive:assign", "7301", '{"live_id": "7302", "cookie": "shop"}')
        wait_until(lambda: status(r, "7301").get("state") == "live" and status(r, "7302").get("state") == "live", 15,
                   "both rooms live")
        h1 = env.sim_stats("7301")["last_headers"].get("cookie", "")
        h2 = env.sim_stats("7302")["last_headers"].get("cookie", "")
        check("sessionid=GLOBALSECRET" in h1 and "ttwid=" in h1, "worker cookies on the WebSocket: %r", h1)
        check("sessionid=SHOPSECRET" in h2 and "GLOBALSECRET" not in h2, "the room's profile wins: %r", h2)
        w.terminate()
        w.wait(timeout=10)
        with open(os.path.join(env.tmp, "worker0.log")) as f:
            log = f.read()
        check("SECRET" not in log, "cookies never logged")
        os.chmod(glob, 0o644)
        p = subprocess.run([os.path.join(harness.BUILD, "dylive-connector"), "--cookie-file", glob, "--admin", "off"],
                           capture_output=True, text=True, timeout=10)
        check_eq(p.returncode, 2, "world-readable cookie file refused")
        check("world-readable" in p.stderr and "SECRET" not in p.stderr, "clear reason: %r", p.stderr)


def test_http_connect_proxy():
    """--proxy http://…: the live page and the WebSocket both go through the proxy (CONNECT)."""
    with Env("proxy") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "40", "--seed", "31")
        env.start_sim(["%s:%s" % (LIVE, frames)])
        proxy = ConnectProxy()
        try:
            env.worker("--proxy", "http://127.0.0.1:%d" % proxy.port)
            r("LPUSH", "dylive:assign", LIVE)
            wait_until(lambda: status(r).get("state") == "ended", 30, "room through the proxy")
            ids = [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]
            check_eq(ids, man["msg_ids"], "the whole room through the proxy")
            target = "127.0.0.1:%d" % env.sim_port
            check(proxy.targets.count(target) >= 2, "page and WebSocket tunnelled: %r", proxy.targets)
        finally:
            proxy.close()
        p = subprocess.run([os.path.join(harness.BUILD, "dylive-connector"), "--proxy", "socks5h://127.0.0.1:1",
                            "--admin", "off", "--redis", "redis://127.0.0.1:%d/0" % env.redis_port],
                           capture_output=True, text=True, timeout=10)
        check_eq(p.returncode, 2, "a SOCKS proxy the WebSocket cannot use is refused, not bypassed")
        check("--proxy" in p.stderr, "names the option: %r", p.stderr)


def test_connect_pacing():
    """30 rooms at once with --connect-rate 10 --connect-burst 5: connections are spread out."""
    with Env("pacing") as env:
        r = env.start_redis()
        rooms = [str(8800 + i) for i in range(30)]
        env.start_sim(rooms)
        env.worker("--connect-rate", "10", "--connect-burst", "5", "--http-rate", "1000", "--http-burst", "1000")
        t0 = time.monotonic()
        r("LPUSH", "dylive:assign", *rooms)
        wait_until(lambda: sum(status(r, x).get("state") == "live" for x in rooms) >= 5, 10, "the burst")
        wait_until(lambda: sum(status(r, x).get("state") == "live" for x in rooms) == 30, 20, "all rooms live")
        dt = time.monotonic() - t0
        print("30 rooms live in %.2f s at 10 connections/s after a burst of 5" % dt)
        check(dt >= 2.2, "connections were not paced: all 30 live in %.2f s" % dt)


class ExternalSigner:
    """An HTTP signer (the --signer http://… contract): GET ?stub=…&room_id=…&user_unique_id=…;
    answers the signature as plain text (or HTTP 500 when told to fail)."""

    def __init__(self, fail=False):
        import http.server
        import threading
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
        from test_sim import sign  # the simulator's own Python signer
        owner = self
        self.requests = []
        self.counter = 0

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                import urllib.parse
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                owner.requests.append(q)
                if fail or "stub" not in q:
                    self.send_response(500)
                    self.end_headers()
                    return
                owner.counter += 1
                body = sign(q["stub"][0], counter=owner.counter).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_external_signer():
    """--signer http://…: every connection asks the external signer; the simulator accepts its
    signatures; a failing signer is an error in the status hash, retried with backoff."""
    with Env("xsign") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "40", "--seed", "51")
        env.start_sim(["%s:%s" % (LIVE, frames), "7700"], extra=["--check-signature"])
        good, bad = ExternalSigner(), ExternalSigner(fail=True)
        try:
            env.worker("--signer", "http://127.0.0.1:%d/sign?app=dylive" % good.port, worker_id="good")
            r("LPUSH", "dylive:assign", LIVE)
            wait_until(lambda: status(r).get("state") == "ended", 30, "room signed externally")
            ids = [f["msg_id"] for _, f in r.xrange_all("dylive:{%s}:events" % LIVE)]
            check_eq(ids, man["msg_ids"], "the whole room")
            check(good.requests and good.requests[0].get("room_id") == [default_room_id(LIVE)] and
                  good.requests[0].get("app") == ["dylive"], "the signer got the room: %r", good.requests[:1])
            check_eq(env.sim_stats(LIVE)["ws_rejected"], 0, "refused handshakes")
            env.procs[-1].terminate()
            env.procs[-1].wait(timeout=10)
            env.worker("--signer", "http://127.0.0.1:%d/sign" % bad.port, worker_id="bad")
            r("LPUSH", "dylive:assign", "7700")
            wait_until(lambda: "external signer" in status(r, "7700").get("error", ""), 15, "signer failure reported")
            check_eq(env.sim_stats("7700")["connections"], 0, "no unsigned connection attempt")
        finally:
            good.close()
            bad.close()


if __name__ == "__main__":
    run()
