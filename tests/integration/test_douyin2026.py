"""Douyin as it is in 2026 (PROTOCOL §9, CONTRACT §7) against the simulator: signed web/enter while
the page is a challenge, a refused a_bogus reported as risk control, gifts behind a login, silent
connections, Handshake-Options, percent-encoded signatures, proxy pools, staggered resolutions."""
import json
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.parse

import harness
from harness import (ConnectProxy, Env, check, check_eq, default_room_id, free_port, metric, metrics, run,
                     wait_until)

LIVE = "7700100"


def status(r, live_id=LIVE):
    return r.hgetall("dylive:{%s}:status" % live_id)


def events(r, live_id=LIVE):
    return [f for _, f in r.xrange_all("dylive:{%s}:events" % live_id)]


def test_web_enter_only_while_page_is_a_challenge():
    """The page is a challenge: room id, status, title and anchor come from signed web/enter (the sim
    verifies a_bogus), and the room is captured whole, once."""
    with Env("enter") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "60", "--seed", "41")
        env.start_sim(["%s:%s,page=challenge,title=enter-title,nick=enter-nick,fps=20,sdk=1.0.15" % (LIVE, frames)],
                      extra=["--check-abogus", "--check-signature"])
        env.worker()
        t0 = time.monotonic()
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("resolved_by") == "web/enter", 15, "resolved through web/enter")
        took = time.monotonic() - t0
        st = status(r)
        check_eq(st.get("room_id"), default_room_id(LIVE), "room id from web/enter")
        check_eq(st.get("title"), "enter-title", "title from web/enter")
        check_eq(st.get("anchor"), "enter-nick", "anchor from web/enter")
        wait_until(lambda: status(r).get("state") == "ended", 30, "the whole room")
        sim = env.sim_stats(LIVE)
        check(sim["abogus_ok"] >= 1 and sim["abogus_bad"] == 0 and sim["abogus_missing"] == 0,
              "a_bogus accepted by the verifier: %r", {k: sim[k] for k in sim if k.startswith("abogus")})
        check_eq(sim["ws_rejected"], 0, "refused handshakes (signature, sdk 1.0.15)")
        up = sim["upgrades"][-1]
        check(up["webcast_sdk_version"] == up["update_version_code"] == "1.0.15", "client identity: %r", up)
        check_eq([e["msg_id"] for e in events(r)], man["msg_ids"], "every event once, in order")
        print("FIGURE resolve through web/enter (challenge page first): %.0f ms" % (took * 1000))


def test_refused_a_bogus_is_risk_control_not_ended():
    """A wrong a_bogus (the sim's clock is a year off, so t0 fails) gets Douyin's empty body: the
    room's status says risk control and it keeps retrying; it is never 'ended' or dropped. When the
    page comes back (runtime toggle), the room is captured."""
    with Env("abogus-bad") as env:
        r = env.start_redis()
        env.start_sim(["%s,page=challenge" % LIVE], extra=["--check-abogus", "--clock-ms", "1700000000000"])
        env.worker()
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("error", "").startswith("risk control"), 20, "risk control reported")
        st = status(r)
        check_eq(st["state"], "error", "state")
        check("web/enter empty" in st["error"] and "retrying" in st["error"], "says why and retries: %r", st["error"])
        sim = env.sim_stats(LIVE)
        check_eq(sim["last_abogus"], "time", "the verifier refused the signature's time")
        # it keeps polling: a second round of three signed tries, still not ended
        wait_until(lambda: env.sim_stats(LIVE)["abogus_bad"] >= 6, 30, "a second round of web/enter tries")
        check(status(r)["state"] not in ("ended", "stopped"), "never ended for an empty body: %r", status(r))
        env.sim_post("/_sim/page?live_id=%s&page=normal" % LIVE)
        wait_until(lambda: status(r).get("state") == "live", 90, "captured once the page is back")
        check_eq(status(r).get("resolved_by"), "page", "source")


def test_gifts_need_login():
    """--gifts-need-login: a guest connection gets no gift and logged_in 0; a room whose cookie
    profile has a sessionid gets every gift and logged_in 1 (CONTRACT §3)."""
    with Env("gifts") as env:
        r = env.start_redis()
        guest, member = "7700201", "7700202"
        fg, mg = env.fixture("guest", guest, default_room_id(guest), "--frames", "80", "--seed", "51")
        expect = os.path.join(env.tmp, "member.expect")
        fm, mm = env.fixture("member", member, default_room_id(member), "--frames", "80", "--seed", "51",
                             "--expect", expect)
        with open(expect) as f:
            unique_gifts = sum(json.loads(line)["type"] == "gift" for line in f if line.strip())
        env.start_sim(["%s:%s" % (guest, fg), "%s:%s" % (member, fm)], extra=["--gifts-need-login"])
        cdir = os.path.join(env.tmp, "cookies")
        os.makedirs(cdir)
        with open(os.path.join(cdir, "acct1.cookies"), "w") as f:
            f.write("sessionid=MEMBERSECRET; sid_tt=x")
        os.chmod(os.path.join(cdir, "acct1.cookies"), 0o600)
        env.worker("--cookie-dir", cdir)
        r("LPUSH", "dylive:assign", guest, json.dumps({"live_id": member, "cookie": "acct1"}))
        wait_until(lambda: status(r, guest).get("state") == "ended" and status(r, member).get("state") == "ended",
                   30, "both rooms to the end")
        check_eq(status(r, guest).get("logged_in"), "0", "guest logged_in")
        check_eq(status(r, member).get("logged_in"), "1", "member logged_in")
        g_gifts = sum(e["type"] == "gift" for e in events(r, guest))
        m_gifts = sum(e["type"] == "gift" for e in events(r, member))
        check(unique_gifts > 0, "the fixture has gifts")
        check_eq(g_gifts, 0, "gifts a guest sees")
        check_eq(m_gifts, unique_gifts, "gifts a logged-in session sees")
        check(env.sim_stats(guest)["gifts_withheld"] > 0, "the sim withheld gifts from the guest")
        check_eq(env.sim_stats(member)["gifts_withheld"], 0, "nothing withheld from the member")


def test_silenced_connection_recovers_exactly_once():
    """A live connection goes silent mid-room (pings still answered): after --silence-timeout the
    worker reconnects with a fresh ttwid and user_unique_id, resumes, and the stream holds every
    event of the room exactly once."""
    with Env("silent") as env:
        r = env.start_redis()
        frames, man = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "150", "--seed", "61")
        env.start_sim(["%s:%s,fps=25" % (LIVE, frames)], extra=["--ping-ms", "1000"])
        admin = free_port()
        w = env.worker("--silence-timeout", "3", admin="127.0.0.1:%d" % admin)
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: env.sim_stats(LIVE)["position"] >= 30, 15, "the room under way")
        before = env.sim_stats(LIVE)
        q1 = before["last_query"]
        c1 = before["last_headers"].get("cookie", "")
        env.sim_post("/_sim/silent?live_id=%s" % LIVE)
        t_silent = time.monotonic()
        wait_until(lambda: env.sim_stats(LIVE)["connections"] >= 2, 15, "a new connection after the silence")
        wait_until(lambda: env.sim_stats(LIVE)["position"] > before["position"], 10, "the room moving again")
        recovery = time.monotonic() - t_silent
        after = env.sim_stats(LIVE)
        uid = lambda q: re.search(r"user_unique_id=(\d+)", q).group(1)  # noqa: E731
        ttwid = lambda c: re.search(r"ttwid=([^;]+)", c).group(1)  # noqa: E731
        check(uid(after["last_query"]) != uid(q1), "a new user_unique_id")
        check(ttwid(after["last_headers"].get("cookie", "")) != ttwid(c1), "a new ttwid")
        cursor = urllib.parse.parse_qs(after["last_query"])["cursor"][0]
        check(cursor.startswith("t-") and cursor.endswith("_d-1_u-1"),
              "resumed from the silenced connection's cursor, not a fresh default: %r", cursor)
        wait_until(lambda: status(r).get("state") == "ended", 40, "the whole room")
        ids = [e["msg_id"] for e in events(r)]
        check_eq(ids, man["msg_ids"], "every event exactly once, in order")
        check_eq(metric(admin, "dylive_ws_silent_total"), 1.0, "one silent connection")
        check(recovery < 3 + 5, "recovered within the timeout and a resolve: %.1f s" % recovery)
        w.terminate()
        check_eq(w.wait(timeout=15), 0, "clean drain and exit (leak-free under ASan)")
        print("FIGURE recovery from a silent connection: %.1f s after the silence began (timeout 3 s); "
              "events lost 0, doubled 0 of %d" % (recovery, len(ids)))


def test_three_silent_connections_is_risk_control():
    """Three connections in a row that deliver nothing: the room is in error ("risk control …") and
    retries after a growing pause; the next good connection makes it live again."""
    with Env("silent3") as env:
        r = env.start_redis()
        frames, _ = env.fixture("room", LIVE, default_room_id(LIVE), "--frames", "400", "--seed", "71",
                                "--no-end")
        env.start_sim(["%s:%s,fps=5,loop" % (LIVE, frames)])
        for _ in range(3):
            env.sim_post("/_sim/silent?live_id=%s&which=next" % LIVE)
        env.worker("--silence-timeout", "2")
        r("LPUSH", "dylive:assign", LIVE)
        wait_until(lambda: status(r).get("error", "").startswith("risk control"), 30, "risk control")
        st = status(r)
        check_eq(st["state"], "error", "state")
        check("3 silent connections in a row" in st["error"] and "retrying in" in st["error"],
              "the reason: %r", st["error"])
        check_eq(env.sim_stats(LIVE)["connections"], 3, "three connections so far")
        wait_until(lambda: status(r).get("state") == "live" and env.sim_stats(LIVE)["connections"] == 4, 30,
                   "live again after the pause")
        wait_until(lambda: len(events(r)) > 0, 10, "events again")


def test_handshake_options_ping_interval():
    """A 101 with Handshake-Options: ping-interval=1 sets the heartbeat to 1 s; a room without it
    keeps the 10 s default."""
    with Env("hsopt") as env:
        r = env.start_redis()
        fast, slow = "7700301", "7700302"
        env.start_sim(["%s,handshake_options=ping-interval=1" % fast, slow])
        env.worker()
        r("LPUSH", "dylive:assign", fast, slow)
        wait_until(lambda: status(r, fast).get("state") == "live" and status(r, slow).get("state") == "live", 15,
                   "both live")
        wait_until(lambda: env.sim_stats(fast)["hb"] >= 5, 10, "a heartbeat a second")
        check(env.sim_stats(slow)["hb"] <= 2, "the other room keeps 10 s: %r" % env.sim_stats(slow)["hb"])


def test_signature_plus_and_slash_never_refused():
    """Over many reconnects the signature holds '+' and '/' (one in five connections); with the
    sim's standard query parsing not one handshake is refused."""
    with Env("sigenc") as env:
        r = env.start_redis()
        rooms = [str(7700400 + i) for i in range(10)]
        # rooms that keep talking, so that each reconnect starts from the base backoff
        frames, _ = env.fixture("room", rooms[0], default_room_id(rooms[0]), "--frames", "50", "--no-end")
        env.start_sim(["%s:%s,fps=10,loop,sdk=1.0.15" % (x, frames) for x in rooms], extra=["--check-signature"])
        env.worker("--connect-rate", "100", "--connect-burst", "100")
        r("LPUSH", "dylive:assign", *rooms)
        wait_until(lambda: all(status(r, x).get("state") == "live" for x in rooms), 20, "all live")
        plus = 0
        for n in range(2, 7):
            for x in rooms:
                env.sim_post("/_sim/drop?live_id=%s" % x)
            wait_until(lambda: all(env.sim_stats(x)["connections"] >= n for x in rooms), 30, "reconnect %d" % n)
            plus += sum("%2B" in env.sim_stats(x)["last_query"].split("signature=")[1] for x in rooms)
        total = sum(env.sim_stats(x)["connections"] for x in rooms)
        check_eq(sum(env.sim_stats(x)["ws_rejected"] for x in rooms), 0, "refused handshakes")
        check_eq(sum(env.sim_stats(x)["sig_ok"] for x in rooms), total, "every signature accepted")
        check(plus >= 1, "some signatures carried a '+' (sent as %%2B): %d" % plus)
        print("FIGURE %d connections, %d signatures with '+' (as %%2B), 0 refused" % (total, plus))


def proxy_rooms(admin):
    m = metrics(admin) or {}
    return {k[len('dylive_proxy_rooms{proxy="'):-2]: v for k, v in m.items() if k.startswith("dylive_proxy_rooms{")}


def test_proxy_pool_spread_sticky_and_failover():
    """--proxy-file with two CONNECT proxies: rooms spread over both, pages and WebSocket through the
    same one, the same proxy again after a restart (sticky); one proxy dies → its rooms move."""
    with Env("pool") as env:
        r = env.start_redis()
        rooms = [str(7700500 + i) for i in range(16)]
        env.start_sim(rooms)
        a, b = ConnectProxy(), ConnectProxy()
        try:
            la, lb = "127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port
            pf = os.path.join(env.tmp, "proxies")
            with open(pf, "w") as f:
                f.write("# two egress addresses\nhttp://user:PROXYSECRET@%s\n\nhttp://%s\n" % (la, lb))
            admin = free_port()
            w = env.worker("--proxy-file", pf, "--connect-rate", "100", "--connect-burst", "100",
                           admin="127.0.0.1:%d" % admin)
            r("LPUSH", "dylive:assign", *rooms)
            wait_until(lambda: all(status(r, x).get("state") == "live" for x in rooms), 30, "all live")
            first = {x: status(r, x).get("proxy") for x in rooms}
            per = {la: sum(v == la for v in first.values()), lb: sum(v == lb for v in first.values())}
            check(per[la] > 0 and per[lb] > 0 and per[la] + per[lb] == 16, "spread over both: %r", per)
            wait_until(lambda: proxy_rooms(admin) == {la: per[la], lb: per[lb]}, 10, "WebSockets on the pages' proxy")
            check(a.auth and all(a.auth), "credentials sent to the proxy that has them")
            w.terminate()
            check_eq(w.wait(timeout=15), 0, "clean drain and exit (leak-free under ASan)")
            with open(os.path.join(env.tmp, "worker0.log")) as f:
                check("PROXYSECRET" not in f.read(), "proxy credentials never logged")
            env.worker("--proxy-file", pf, "--connect-rate", "100", "--connect-burst", "100",
                       admin="127.0.0.1:%d" % admin)
            wait_until(lambda: all(status(r, x).get("state") == "live" and status(r, x).get("worker") for x in rooms)
                       and proxy_rooms(admin) == {la: per[la], lb: per[lb]}, 30, "all live again")
            check_eq({x: status(r, x).get("proxy") for x in rooms}, first, "the same proxy per room (sticky)")
            t0 = time.monotonic()
            a.kill()
            wait_until(lambda: proxy_rooms(admin) == {la: 0, lb: 16}, 60, "proxy A's rooms moved to B")
            moved = time.monotonic() - t0
            wait_until(lambda: all(status(r, x).get("state") == "live" for x in rooms), 30, "all live via B")
            m = metrics(admin)
            check_eq(m.get('dylive_proxy_set_aside{proxy="%s"}' % la), 1.0, "A set aside")
            check(m.get('dylive_proxy_failures_total{proxy="%s"}' % la, 0) >= 3, "A's failures counted")
            print("FIGURE rooms of a dead proxy moved in %.1f s" % moved)
        finally:
            a.close()
            b.close()
        with open(pf, "w") as f:
            f.write("http://%s\nsocks5h://bob:PROXYSECRET@127.0.0.1:1080\n" % lb)
        p = subprocess.run([os.path.join(harness.BUILD, "dylive-connector"), "--proxy-file", pf, "--admin", "off",
                            "--redis", "redis://127.0.0.1:%d/0" % env.redis_port],
                           capture_output=True, text=True, timeout=10)
        check_eq(p.returncode, 2, "a bad proxy line refuses the start")
        check(p.stderr.count("\n") == 1 and "--proxy-file" in p.stderr and "line 2" in p.stderr,
              "one line naming the option and the line: %r", p.stderr)
        check("PROXYSECRET" not in p.stderr and "bob" not in p.stderr, "credentials not echoed: %r", p.stderr)


class SimLogTail:
    """Timestamps the sim's --verbose request lines as they appear in its log."""

    def __init__(self, path, pattern):
        self.path, self.pattern = path, re.compile(pattern)
        self.hits = []
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        pos = 0
        while not self.stop:
            with open(self.path, "rb") as f:
                f.seek(pos)
                data = f.read()
            now = time.monotonic()
            if data:
                cut = data.rfind(b"\n") + 1
                pos += cut
                for line in data[:cut].decode("utf-8", "replace").splitlines():
                    if self.pattern.search(line):
                        self.hits.append(now)
            time.sleep(0.005)


def test_burst_of_assignments_is_staggered():
    """Twelve rooms assigned at once: their page requests are spread over time (a jittered 1/rate
    apart) rather than sent in one burst, although the token bucket would allow 10 at once."""
    with Env("stagger") as env:
        r = env.start_redis()
        rooms = [str(7700600 + i) for i in range(12)]
        env.start_sim(rooms, extra=["--verbose"])
        tail = SimLogTail(os.path.join(env.tmp, "sim.log"), r"GET /77006\d\d( |$)")
        env.worker("--http-rate", "5", "--http-burst", "10")
        r("LPUSH", "dylive:assign", *rooms)
        wait_until(lambda: len(tail.hits) >= 12, 30, "twelve page requests")
        tail.stop = True
        gaps = [b - a for a, b in zip(tail.hits, tail.hits[1:])]
        span = tail.hits[-1] - tail.hits[0]
        print("FIGURE 12 page requests over %.2f s, median gap %.0f ms" % (span, statistics.median(gaps) * 1000))
        check(span >= 1.2, "spread: 12 page requests within %.2f s" % span)
        check(statistics.median(gaps) >= 0.1, "median gap %.3f s" % statistics.median(gaps))


if __name__ == "__main__":
    run()
