#!/usr/bin/python3
"""reply_bot.py — answers chat and thanks gifters in dylive rooms with an OpenAI-compatible model.

Reads each room's events with a consumer group, asks the model for a short reply, and writes the
reply to the stream P:{<live_id>}:replies (fields: msg_id of the event answered, type, user_id,
nickname, text, reply, ts_ms) for whatever posts replies to the room. It never posts to Douyin.

  OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-… OPENAI_MODEL=gpt-4o-mini \\
      reply_bot.py --redis redis://127.0.0.1:6379/0 --keywords 价格,多少钱 --block-file words.txt

Delivery: at least once from Redis, exactly once into the replies stream. A reply and its marker
key P:{<live_id>}:replied:<msg_id> (SET NX, expiring after --mark-ttl) are written by one script,
so a bot killed at any point, restarted, and handed the same event again (its own pending entries,
or another consumer's through XAUTOCLAIM) finds the marker and does not reply twice.
"""
import argparse
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

import dylive_streams as ds

# Writes the reply only when none was written for this msg_id and the room's rate allows it; both
# checks and both writes in one script, so two bots (or a bot and its restarted self) cannot race.
# KEYS: marker, replies stream. ARGV: ttl s, max replies, window ms, maxlen, field/value pairs…
REPLY_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'dup' end
local n = tonumber(ARGV[2])
if n > 0 then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
  if #last >= n then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if tonumber(string.match(last[n][1], '^(%d+)')) > now - tonumber(ARGV[3]) then return 'limited' end
  end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
local args = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*'}
for i = 5, #ARGV do args[#args + 1] = ARGV[i] end
redis.call(unpack(args))
return 'ok'
"""

MAX_MODEL_RESPONSE = 1 << 20  # bytes read from the model endpoint, whatever it sends
MAX_PROMPT_TEXT = 500         # characters of a stranger's chat passed to the model
REPLIES_MAXLEN = 10000        # approximate length of each replies stream


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ds.add_common_args(p)
    p.add_argument("--group", default="reply-bot", help="consumer group name (default: reply-bot)")
    p.add_argument("--consumer", default="bot-" + socket.gethostname(),
                   help="this bot's name in the group; keep it across restarts to resume its own "
                        "pending events at once (default: bot-<hostname>)")
    p.add_argument("--from-start", action="store_true",
                   help="a new group starts at the oldest event still in the stream (default: new events only)")
    p.add_argument("--keywords", default="", help="comma-separated: answer only chats containing one of them")
    p.add_argument("--block", default="", help="comma-separated words: chats containing any get no reply")
    p.add_argument("--block-file", help="more blocked words, one per line")
    p.add_argument("--no-gifts", action="store_true", help="do not thank gifters")
    p.add_argument("--max-replies", type=int, default=6, help="per room, at most N replies … (default 6; 0: no limit)")
    p.add_argument("--window", type=float, default=60, help="… in any WINDOW seconds (default 60)")
    p.add_argument("--max-age", type=float, default=300,
                   help="skip events received more than S seconds ago: a late answer is noise (default 300; 0: off)")
    p.add_argument("--claim-idle-ms", type=int, default=60000,
                   help="take over events another consumer left pending this long (XAUTOCLAIM; default 60000)")
    p.add_argument("--mark-ttl", type=int, default=7 * 86400, help="seconds a replied-to msg_id is remembered (default 7 days)")
    p.add_argument("--system", default="You are the live host's friendly assistant in a Douyin live room. "
                                       "Answer in one short sentence, in the viewer's language.",
                   help="system prompt")
    p.add_argument("--template", help="reply with this text ({nickname}, {text}, {gift}) instead of asking a model")
    p.add_argument("--idle-exit", type=float, default=0,
                   help="exit after S seconds with nothing to do (batch runs, tests; default: run forever)")
    a = p.parse_args()
    a.keywords = [w.strip().casefold() for w in a.keywords.split(",") if w.strip()]
    a.blocked = [w.strip().casefold() for w in a.block.split(",") if w.strip()]
    if a.block_file:
        with open(a.block_file, encoding="utf-8") as f:
            a.blocked += [w.strip().casefold() for w in f if w.strip()]
    a.base_url = os.environ.get("OPENAI_BASE_URL", "").rstrip("/")
    a.api_key = os.environ.get("OPENAI_API_KEY", "")
    a.model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    if not a.template and not a.base_url:
        p.error("set OPENAI_BASE_URL (and OPENAI_API_KEY, OPENAI_MODEL) or give --template")
    return a


class ModelError(Exception):
    pass


def ask_model(a, user_text):
    """One chat completion (OpenAI-compatible POST {base}/chat/completions), a few tries with backoff
    on errors worth retrying (network, 429, 5xx)."""
    body = json.dumps({"model": a.model, "max_tokens": 120, "temperature": 0.7,
                       "messages": [{"role": "system", "content": a.system},
                                    {"role": "user", "content": user_text}]}).encode()
    headers = {"Content-Type": "application/json"}
    if a.api_key:
        headers["Authorization"] = "Bearer " + a.api_key
    delay = 1.0
    for attempt in range(3):
        try:
            req = urllib.request.Request(a.base_url + "/chat/completions", data=body, headers=headers)
            with urllib.request.urlopen(req, timeout=30) as resp:
                data = json.loads(resp.read(MAX_MODEL_RESPONSE))
            text = data["choices"][0]["message"]["content"]
            if not isinstance(text, str) or not text.strip():
                raise ModelError("empty reply")
            return text.strip()[:500]
        except urllib.error.HTTPError as e:
            if e.code != 429 and e.code < 500:
                raise ModelError("model endpoint: HTTP %d" % e.code)
            err = "HTTP %d" % e.code
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
            err = str(e)
        if attempt < 2:
            time.sleep(delay)
            delay *= 2
    raise ModelError("model endpoint: " + err)


class Bot(ds.GroupConsumer):
    def __init__(self, a):
        super().__init__(a)
        self.first_id = "0" if a.from_start else "$"
        self.reply = self.r.register_script(REPLY_SCRIPT)
        self.counts = {"replied": 0, "dup": 0, "limited": 0, "filtered": 0, "old": 0, "model_error": 0}
        self.replies_done = 0
        # Fault injection for the test suite only: exit hard right after the Nth reply is written
        # and before its XACK, the worst moment for a crash.
        self.crash_after = int(os.environ.get("DYLIVE_BOT_CRASH_AFTER_REPLY", "0"))

    def wanted(self, ev):
        """The text to answer (None: no reply), after the filters."""
        t = ev.get("type")
        if t == "chat":
            text = str(ev.get("content", ""))
            low = text.casefold()
            if any(w in low for w in self.a.blocked):
                return None
            if self.a.keywords and not any(w in low for w in self.a.keywords):
                return None
            return text
        if t == "gift" and not self.a.no_gifts:
            g = ev.get("gift") if isinstance(ev.get("gift"), dict) else {}
            # a combo streak is many events: thank once, at its end (repeat_end; presets and single
            # taps end at once). The end often repeats the last count, so its delta may be 0.
            if g.get("repeat_end"):
                return "(sent the gift %s ×%s: thank them)" % (g.get("name", "?"), g.get("repeat_count", 1))
        return None

    def handle(self, live_id, eid, fields):
        """Handles one entry; True when it may be acknowledged."""
        ev = ds.event_of(fields) if fields else None
        text = self.wanted(ev) if ev else None
        if text is None:
            self.counts["filtered"] += 1
            return True
        if any(w in ds.nickname(ev).casefold() for w in self.a.blocked):
            self.counts["filtered"] += 1
            return True
        recv = ev.get("recv_ms")
        if self.a.max_age and isinstance(recv, int) and time.time() * 1000 - recv > self.a.max_age * 1000:
            self.counts["old"] += 1
            return True
        msg_id = str(ev.get("msg_id", fields.get("msg_id", "")))
        marker = self.keys.replied(live_id, msg_id)
        if self.r.exists(marker):  # answered before a crash: do not pay the model again
            self.counts["dup"] += 1
            return True
        nick = ds.nickname(ev)[:64]
        if self.a.template:
            answer = self.a.template.format(nickname=nick, text=text[:MAX_PROMPT_TEXT],
                                            gift=text if ev.get("type") == "gift" else "")
        else:
            try:
                answer = ask_model(self.a, "%s: %s" % (nick, text[:MAX_PROMPT_TEXT]))
            except ModelError as e:
                # left pending: XAUTOCLAIM hands it to a bot again after --claim-idle-ms
                self.counts["model_error"] += 1
                print("reply_bot: %s: %s" % (live_id, e), file=sys.stderr, flush=True)
                return False
        a = self.a
        res = self.reply(keys=[marker, self.keys.replies(live_id)],
                         args=[a.mark_ttl, a.max_replies, int(a.window * 1000), REPLIES_MAXLEN,
                               "msg_id", msg_id, "type", ev.get("type", ""), "user_id", ds.user_id(ev),
                               "nickname", nick, "text", text[:MAX_PROMPT_TEXT], "reply", answer,
                               "ts_ms", int(time.time() * 1000)])
        self.counts["replied" if res == "ok" else res] += 1
        if res == "ok":
            self.replies_done += 1
            if self.crash_after and self.replies_done >= self.crash_after:
                os._exit(137)
        return True

    def process(self, live_id, entries):
        key = self.keys.events(live_id)
        done = [eid for eid, fields in entries if self.handle(live_id, eid, fields)]
        if done:
            self.r.xack(key, self.a.group, *done)
        return len(entries)

    def own_pending(self):
        """What this consumer was handed before it stopped (read with id 0, not '>')."""
        n = 0
        for live_id in sorted(self.rooms):
            start = "0"
            while True:  # pages of pending entries after `start`; one that fails again stays pending
                resp = self.r.xreadgroup(self.a.group, self.a.consumer, {self.keys.events(live_id): start}, count=100)
                entries = resp[0][1] if resp else []
                n += self.process(live_id, entries)
                if len(entries) < 100:
                    break
                start = entries[-1][0]
        return n

    def claim(self):
        """XAUTOCLAIM: entries another consumer (a crashed bot) has held for --claim-idle-ms."""
        n = 0
        for live_id in sorted(self.rooms):
            start = "0-0"
            while True:
                nxt, entries = self.r.xautoclaim(self.keys.events(live_id), self.a.group, self.a.consumer,
                                                 self.a.claim_idle_ms, start_id=start, count=100)[:2]
                n += self.process(live_id, entries)
                if nxt in ("0-0", start) or not entries:
                    break
                start = nxt
        return n

    def run(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        self.discover()
        self.own_pending()
        last_discover = last_claim = time.monotonic()
        idle_since = time.monotonic()
        while not stop:
            now = time.monotonic()
            if now - last_discover > 10:
                self.discover()
                last_discover = now
            busy = 0
            if now - last_claim > max(1.0, self.a.claim_idle_ms / 2000):
                busy += self.claim()
                last_claim = now
            if self.rooms:
                # one blocking read over every room; on Redis Cluster run one bot per room (--rooms)
                streams = {self.keys.events(x): ">" for x in sorted(self.rooms)}
                try:
                    resp = self.r.xreadgroup(self.a.group, self.a.consumer, streams, count=50, block=1000)
                except ds.redis.ResponseError as e:
                    if "NOGROUP" not in str(e):
                        raise
                    self.rooms.clear()  # a stream expired with its group: find rooms again
                    self.discover()
                    resp = []
                for key, entries in resp:
                    busy += self.process(key[len(self.a.prefix) + 2:-len("}:events")], entries)
            else:
                time.sleep(1)
            if busy:
                idle_since = time.monotonic()
            elif self.a.idle_exit and time.monotonic() - idle_since > self.a.idle_exit:
                break
        print("reply_bot: %s" % json.dumps(self.counts), file=sys.stderr, flush=True)


if __name__ == "__main__":
    ds.run_main("reply_bot", parse_args, lambda a: Bot(a).run())
