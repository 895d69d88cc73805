#include "dl_worker.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/buffer.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dl_ingest.h"
#include "dl_log.h"
#include "dl_resolve.h"
#include "dl_proxy.h"
#include "dl_proxypool.h" /* 2026: --proxy-file and assignment proxies */
#include "dl_spool.h"

#ifndef DYLIVE_VERSION
#define DYLIVE_VERSION "0.1.0"
#endif

/* Commands waiting for Redis (writes are retried until acknowledged, in order). Past this many,
 * the control thread stops taking frames from ingest, whose queue then fills and pauses the
 * sockets: back-pressure instead of memory growth. */
#define DL_OUTBOX_MAX 4096
/* Frames are taken from ingest while the spool has this many --max-frame-bytes left. */
#define DL_SPOOL_HEADROOM 4
/* Redis reconnect period after a failure; after error replies it doubles up to the max. */
#define DL_REDIS_RETRY_MS 1000
#define DL_REDIS_BACKOFF_MAX_MS 8000
/* Frames taken from the ingest queue per wake-up (keeps the loop responsive). */
#define DL_DRAIN_BATCH 256
/* A room whose HTTP resolution failed is retried with this backoff (doubling, capped). */
#define DL_RESOLVE_RETRY_MS 2000
#define DL_RESOLVE_RETRY_MAX_MS 60000
/* After this many refused handshakes in a row the room is resolved again with a fresh ttwid and,
 * unless the user gave cookies (a logged-in session should keep its browser), another UA. */
#define DL_REFRESH_AFTER_REFUSALS 2
/* 2026: silent risk control (PROTOCOL §9.6, CONTRACT §7). After this many silent connections in a
 * row (each re-resolved at once with a fresh ttwid and user_unique_id) the room is in "error"
 * ("risk control: …") and waits a growing pause before the next identity: 10 s doubling to
 * 10 min, ±20 % jitter, so a banned egress address is not hammered. */
#define DL_SILENT_RUNS_MAX 3
#define DL_RISK_PAUSE_MS 10000
#define DL_RISK_PAUSE_MAX_MS 600000
/* 2026: ±this percent on --watch-ended checks and risk pauses: rooms checked together drift apart. */
#define DL_JITTER_PCT 20
/* Drain must end within CONTRACT's 10 s; we give ourselves 8. */
#define DL_DRAIN_DEADLINE_MS 8000
/* Liveness (DESIGN §3). A worker refreshes its registry key and its room leases every
 * --poll-ms; the lease outlives two missed refreshes, and the worker key outlives the lease, so
 * by the time a dead worker's rooms are requeued their leases have expired and the next owner
 * takes them at once. */
#define DL_LEASE_MS 3500
#define DL_WORKER_TTL_MS 4500
/* How often a worker looks for dead workers' claims to requeue. */
#define DL_RECONCILE_MS 1000
/* Retry period while a dead worker's lease still blocks a claimed room. */
#define DL_ACQUIRE_RETRY_MS 250

/* Fencing (DESIGN §3): the lease value is "<worker> <epoch>"; the epoch comes from INCR on a
 * per-room key, so it only grows. Every write checks the lease inside Redis. A lease that
 * expired while Redis was unreachable is taken back only if nobody else took the room since
 * (the epoch is still ours). Release deletes the lease and bumps the epoch, so nothing sent
 * after a release can re-take it. */
#define FENCE_FN                                                                              \
  "local function owns(kl, ke, tok, ttl)\n"                                                   \
  "  local cur = redis.call('GET', kl)\n"                                                     \
  "  if cur == tok then return true end\n"                                                    \
  "  if not cur and redis.call('GET', ke) == string.match(tok, ' (%d+)$') then\n"             \
  "    redis.call('SET', kl, tok, 'PX', ttl)\n"                                               \
  "    return true\n"                                                                         \
  "  end\n"                                                                                   \
  "  return false\n"                                                                          \
  "end\n"

/* Order (found by the outage tests): Redis runs every pipelined command even after one of them
 * failed, so a later batch could land before an earlier refused one. Each fenced room write
 * carries a per-lease sequence number; a write whose predecessor is missing is refused (and
 * re-sent in order), one already applied is acknowledged without effect. */
#define SEQ_FN                                                                                \
  "local function seqcheck(k, tok, seq)\n"                                                   \
  "  local cur = redis.call('GET', k)\n"                                                     \
  "  local last = 0\n"                                                                       \
  "  if cur then\n"                                                                          \
  "    local t, n = string.match(cur, '^(.*)|(%d+)$')\n"                                     \
  "    if t == tok then last = tonumber(n) end\n"                                            \
  "  end\n"                                                                                  \
  "  local force = string.sub(seq, 1, 1) == '!'\n"                                          \
  "  if force then seq = string.sub(seq, 2) end\n"                                           \
  "  seq = tonumber(seq)\n"                                                                  \
  "  if seq <= last then return 1 end\n"                                                     \
  "  if seq ~= last + 1 and not force then return 2 end\n"                                   \
  "  redis.call('SET', k, tok .. '|' .. seq)\n"                                              \
  "  return 0\n"                                                                             \
  "end\n"

/* KEYS lease, epoch; ARGV worker, ttl → {1, token} taken (or already ours), {0, holder} */
static const char acquire_script[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  if string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then\n"
    "    redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "    return {1, cur}\n"
    "  end\n"
    "  return {0, cur}\n"
    "end\n"
    "local tok = ARGV[1] .. ' ' .. redis.call('INCR', KEYS[2])\n"
    "redis.call('SET', KEYS[1], tok, 'PX', ARGV[2])\n"
    "return {1, tok}\n";

/* KEYS lease, epoch; ARGV token, ttl → 1 renewed, 0 lost */
static const char renew_script[] = FENCE_FN
    "if not owns(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then return 0 end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n";

/* Every fenced room script starts with KEYS lease, epoch, wseq and ARGV token, ttl, seq, and this
 * check; F, A and G are what it returns when fenced, applied before, or out of order. */
#define ROOM_PROLOGUE(F, A, G)                                                                \
  FENCE_FN SEQ_FN                                                                             \
  "if not owns(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then return " F " end\n"                  \
  "local sq = seqcheck(KEYS[3], ARGV[1], ARGV[3])\n"                                         \
  "if sq == 1 then return " A " end\n"                                                       \
  "if sq == 2 then return " G " end\n"

/* + KEYS status; ARGV release, then field, value, … → 1 written, 0 applied before, -1 fenced,
 * -2 out of order */
static const char status_script[] = ROOM_PROLOGUE("-1", "0", "-2")
    "if #ARGV > 4 then redis.call('HSET', KEYS[4], unpack(ARGV, 5)) end\n"
    "if ARGV[4] == '1' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('INCR', KEYS[2])\n"
    "end\n"
    "return 1\n";

/* KEYS claims of a dead worker, assign → rooms moved back to the head of the queue */
static const char requeue_script[] =
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT') do n = n + 1 end\n"
    "return n\n";

/* The room write: fence, dedupe by msg_id against a bounded recent set, then XADD. One call
 * per batch; KEYS share the {live_id} hash tag.
 * Streak counts of combo gifts go to KEYS[7] (a HASH "<user>:<gift>:<group>" → running count, kept
 * 10 minutes) so that a new owner after a handover continues each streak's delta where it was.
 * + KEYS events, status, seen, gifts; ARGV maxlen, seen_max, now, then (type, msg_id, ts_ms, json)
 * per event → {written, duplicates}; {-1, 0} fenced; {-2, 0} out of order; {0, 0} applied before. */
static const char write_script[] = ROOM_PROLOGUE("{-1, 0}", "{0, 0}", "{-2, 0}")
    "local written, dups = 0, 0\n"
    "local now = tonumber(ARGV[6])\n"
    "for i = 7, #ARGV, 4 do\n"
    "  local id = ARGV[i+1]\n"
    "  local fresh = 1\n"
    "  if id ~= '0' then fresh = redis.call('ZADD', KEYS[6], 'NX', now, id) end\n"
    "  if fresh == 1 then\n"
    "    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'type', ARGV[i], 'msg_id', id,\n"
    "               'ts_ms', ARGV[i+2], 'json', ARGV[i+3])\n"
    "    written = written + 1\n"
    "    if ARGV[i] == 'gift' then\n"
    "      local ok, e = pcall(cjson.decode, ARGV[i+3])\n"
    "      if ok and type(e) == 'table' and type(e.gift) == 'table' and e.gift.combo == true then\n"
    "        local g = e.gift\n"
    "        local uid = type(e.user) == 'table' and tostring(e.user.id) or '0'\n"
    "        local k = uid .. ':' .. string.format('%d', tonumber(g.id) or 0) .. ':' .. tostring(g.group_id)\n"
    "        local run = math.max(tonumber(g.repeat_count) or 0, tonumber(g.combo_count) or 0)\n"
    "        local cur = tonumber(redis.call('HGET', KEYS[7], k) or '0') or 0\n"
    "        if run > cur then redis.call('HSET', KEYS[7], k, string.format('%d', run)) end\n"
    "        redis.call('PEXPIRE', KEYS[7], 600000)\n"
    "      end\n"
    "    end\n"
    "    if ARGV[i] == 'viewers' then\n"
    "      local ok, e = pcall(cjson.decode, ARGV[i+3])\n"
    "      if ok and type(e) == 'table' and type(e.online) == 'number' then\n"
    "        redis.call('HSET', KEYS[5], 'viewers', string.format('%d', e.online))\n"
    "      end\n"
    "    end\n"
    "  else\n"
    "    dups = dups + 1\n"
    "  end\n"
    "end\n"
    "if written > 0 then\n"
    "  redis.call('HINCRBY', KEYS[5], 'events', written)\n"
    "  redis.call('HSET', KEYS[5], 'last_event_ms', ARGV[6])\n"
    "end\n"
    "if dups > 0 then redis.call('HINCRBY', KEYS[5], 'duplicates', dups) end\n"
    "local n = redis.call('ZCARD', KEYS[6])\n"
    "local max = tonumber(ARGV[5])\n"
    "if n > max then redis.call('ZREMRANGEBYRANK', KEYS[6], 0, n - max - 1) end\n"
    "return {written, dups}\n";

/* Desktop Chrome User-Agents to rotate through after refusals (J rotates on some reconnects). */
static const char *const rotation_uas[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36",
};

enum { S_ACQUIRE, S_RENEW, S_STATUS, S_REQUEUE, S_WRITE, S__COUNT };
static const char *const scripts[S__COUNT] = {acquire_script, renew_script, status_script, requeue_script,
                                              write_script};

typedef enum { C_CLAIMING, C_RESOLVING, C_CONNECTING, C_LIVE, C_RECONNECTING, C_WATCHING, C_CLOSING } croom_state;

typedef struct croom {
  struct croom *next;
  char live_id[DL_LIVE_ID_MAX];
  char room_id[DL_ROOM_ID_MAX];
  croom_state st;
  int stop_requested;   /* unassigned: state stopped once closed */
  int handing_back;     /* drain: back to the assignment list once closed */
  int resolve_failures;
  int lost;             /* the lease moved to another worker: give up without writing */
  char token[160];      /* "<worker> <epoch>": the fencing token of our lease */
  uint64_t wseq;        /* sequence of the last fenced write issued under this token */
  char *claim_raw;      /* the assignment exactly as it sits in our claims list */
  size_t claim_len;
  char profile[72];     /* cookie profile from a JSON assignment, or "" */
  int refusals;         /* refused handshakes in a row */
  int64_t last_bad_write_ms;
  int reopen;           /* closing in ingest to resolve again (fresh ttwid, next UA) */
  unsigned ua_turn;     /* which of the rotation UAs this room uses (0: the configured one) */
  struct event *retry_ev;
  /* 2026: silent risk control: silent connections in a row, the current pause, the identity to
   * never reuse, and where the silenced connection stopped (resumed by the next one) */
  int silent_runs;
  int conn_msg_frames;  /* frames with messages on the current connection */
  int64_t risk_pause_ms;
  char last_uid[DL_ROOM_ID_MAX];
  char cursor[DL_CURSOR_MAX], internal_ext[DL_INTERNAL_EXT_MAX];
} croom;

enum { K_PLAIN, K_BATCH, K_STATUS };

typedef struct cmd {
  struct cmd *next;
  int argc;
  char **argv;
  size_t *argvlen;
  int sent;
  size_t bytes;         /* payload size, for the memory bound */
  int seq_idx;          /* argv index of the room write sequence (0: none) */
  int kind;             /* what the reply means: K_PLAIN, K_BATCH, K_STATUS */
  char live_id[DL_LIVE_ID_MAX];
} cmd;

typedef struct worker {
  const dl_config *cfg;
  struct event_base *base;
  dl_redis_addr raddr;
  redisAsyncContext *w, *b; /* writes; blocking claims */
  int w_ready, b_ready;
  struct event *w_retry, *b_retry, *wake_ev, *poll_ev, *sig_term, *sig_int, *drain_ev;
  char sha[S__COUNT][41];
  int64_t last_reconcile_ms;
  int64_t w_up_since_ms;  /* when the write connection last became ready */
  int probing;            /* an error reply: send only the head until it succeeds */
  int w_backoff_ms;       /* reconnect delay after error replies (doubles, capped) */
  struct event *claim_retry;
  dl_ratelimit err_rl, claim_rl, bad_rl;
  cmd *out_head, *out_tail;   /* in memory, sent or about to be: the oldest writes */
  size_t out_len, out_bytes;
  dl_spool *spool;            /* then on disk, in order, when memory is over its bound */
  cmd *ovf_head, *ovf_tail;   /* then control writes that came while the spool was full */
  size_t ovf_len;
  uint64_t spooled, spool_errors;
  int claim_inflight;
  long long b_client_id; /* CLIENT ID of the claims connection, to unblock it on drain */
  int registered;        /* in the registry: only then may we hold claims (reconciliation finds them) */
  int deregistered;      /* drain: left the registry after the last room was handed back */
  croom *rooms;
  size_t nrooms;
  dl_queue *inq, *resq;
  int wake_fd;
  dl_ingest *ingest;
  dl_resolver *resolver;
  dl_proxypool *pool;  /* 2026: per-room egress proxies (--proxy-file, assignments); shared by both threads */
  uint64_t silent_total, risk_errors; /* 2026: silent connections handled, rooms put in risk-control error */
  int draining;
  int64_t drain_deadline;
  struct evhttp *http;
  char key_assign[160], key_claims[400], key_worker[300], key_workers[160];
  int64_t started_ms;
  /* counters (control thread only) */
  uint64_t events_written, events_dup, redis_errors, redis_reconnects, claims, bad_assignments,
      resolve_errors, batches, fenced, lost_rooms, requeued, gaps_forced;
  int exit_code;
} worker;

/* ---------- small helpers ---------- */

static void sha1_hex(const char *s, char out[41]) {
  unsigned char d[20];
  unsigned int n = 20;
  EVP_Digest(s, strlen(s), d, &n, EVP_sha1(), NULL);
  for (int i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static croom *find_room(worker *wk, const char *live_id) {
  for (croom *r = wk->rooms; r; r = r->next)
    if (!strcmp(r->live_id, live_id)) return r;
  return NULL;
}

static void room_key(const worker *wk, char *out, size_t cap, const char *live_id, const char *what) {
  snprintf(out, cap, "%s:{%s}:%s", wk->cfg->prefix, live_id, what);
}

/* ---------- the outbox: every write, retried in order until Redis acknowledges it ---------- */

static void cmd_free(cmd *c) {
  if (!c) return;
  for (int i = 0; i < c->argc; i++) free(c->argv[i]);
  free(c->argv);
  free(c->argvlen);
  free(c);
}

static cmd *cmd_new(int argc) {
  cmd *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->argv = calloc((size_t)argc, sizeof *c->argv);
  c->argvlen = calloc((size_t)argc, sizeof *c->argvlen);
  if (!c->argv || !c->argvlen) {
    free(c->argv);
    free(c->argvlen);
    free(c);
    return NULL;
  }
  return c;
}

static int cmd_set(cmd *c, int i, const char *s, size_t len) {
  c->argv[i] = malloc(len + 1);
  if (!c->argv[i]) return -1;
  memcpy(c->argv[i], s, len);
  c->argv[i][len] = 0;
  c->argvlen[i] = len;
  c->bytes += len;
  if (i + 1 > c->argc) c->argc = i + 1;
  return 0;
}

static void on_write_reply(redisAsyncContext *ac, void *r, void *priv);
static void w_reset(worker *wk);

static void outbox_send(worker *wk, cmd *c) {
  if (!wk->w_ready || c->sent) return;
  /* after an error reply only the oldest write goes out, as a probe, until Redis takes it */
  if (wk->probing && c != wk->out_head) return;
  if (redisAsyncCommandArgv(wk->w, on_write_reply, c, c->argc, (const char **)c->argv, c->argvlen) == REDIS_OK)
    c->sent = 1;
}

/* The write path is one FIFO in three tiers: memory (bounded by DL_OUTBOX_MAX commands and
 * --buffer-max-bytes), then the spool file (--spool-max-bytes), then a short overflow list for
 * control writes while the spool is full (frames stop being taken then, so it stays small).
 * Order is kept across the tiers: once something is spooled, everything after it is too. */
static int outbox_full(const worker *wk) {
  return wk->out_len >= DL_OUTBOX_MAX || wk->out_bytes >= (size_t)wk->cfg->buffer_max_bytes;
}

static void outbox_append(worker *wk, cmd *c) {
  c->next = NULL;
  if (wk->out_tail) wk->out_tail->next = c;
  else wk->out_head = c;
  wk->out_tail = c;
  wk->out_len++;
  wk->out_bytes += c->bytes;
  outbox_send(wk, c);
}

/* record: kind u8, live_id len u8 + bytes, argc u32, then (len u32, bytes) per argument */
static int spool_put(worker *wk, const cmd *c) {
  size_t idl = strlen(c->live_id), n = 1 + 1 + idl + 4 + 4 * (size_t)c->argc + c->bytes;
  unsigned char *b = malloc(n), *p = b;
  if (!b) return -1;
  *p++ = (unsigned char)c->kind;
  *p++ = (unsigned char)idl;
  memcpy(p, c->live_id, idl);
  p += idl;
  uint32_t v = (uint32_t)c->argc;
  memcpy(p, &v, 4);
  p += 4;
  for (int i = 0; i < c->argc; i++) {
    v = (uint32_t)c->argvlen[i];
    memcpy(p, &v, 4);
    memcpy(p + 4, c->argv[i], c->argvlen[i]);
    p += 4 + c->argvlen[i];
  }
  dl_err e = dl_spool_append(wk->spool, b, (uint32_t)n);
  free(b);
  if (e == DL_EIO) wk->spool_errors++;
  return e == DL_EOK ? 0 : -1;
}

static cmd *spool_get(worker *wk) {
  void *rec;
  uint32_t n;
  if (dl_spool_next(wk->spool, &rec, &n) != DL_EOK) return NULL;
  const unsigned char *p = rec, *end = p + n;
  cmd *c = NULL;
  if (n < 6 || 2 + (size_t)p[1] + 4 > n) goto bad;
  int kind = p[0];
  size_t idl = p[1];
  char live_id[DL_LIVE_ID_MAX];
  snprintf(live_id, sizeof live_id, "%.*s", (int)idl, (const char *)p + 2);
  p += 2 + idl;
  uint32_t argc;
  memcpy(&argc, p, 4);
  p += 4;
  if (argc == 0 || argc > (uint32_t)(end - p) / 4) goto bad;
  c = cmd_new((int)argc);
  if (!c) goto bad;
  for (uint32_t i = 0; i < argc; i++) {
    uint32_t l;
    if (end - p < 4) goto bad;
    memcpy(&l, p, 4);
    if ((size_t)(end - p - 4) < l || cmd_set(c, (int)i, (const char *)p + 4, l) != 0) goto bad;
    p += 4 + l;
  }
  c->kind = kind;
  snprintf(c->live_id, sizeof c->live_id, "%s", live_id);
  free(rec);
  return c;
bad:
  wk->spool_errors++;
  cmd_free(c);
  free(rec);
  return NULL;
}

static int spool_has(const worker *wk) { return wk->spool && dl_spool_pending_records(wk->spool) > 0; }

/* Moves spooled (then overflow) writes into memory while there is room. */
static void outbox_refill(worker *wk) {
  while (!outbox_full(wk) && (spool_has(wk) || wk->ovf_head)) {
    cmd *c;
    if (spool_has(wk)) {
      c = spool_get(wk);
      if (!c) continue;
    } else {
      c = wk->ovf_head;
      wk->ovf_head = c->next;
      if (!wk->ovf_head) wk->ovf_tail = NULL;
      wk->ovf_len--;
    }
    outbox_append(wk, c);
  }
}

static void outbox_push(worker *wk, cmd *c) {
  if (!c) return;
  if (!spool_has(wk) && !wk->ovf_head && !outbox_full(wk)) {
    outbox_append(wk, c);
    return;
  }
  if (wk->spool && !wk->ovf_head && spool_put(wk, c) == 0) {
    wk->spooled++;
    cmd_free(c);
    return;
  }
  c->next = NULL;
  if (wk->ovf_tail) wk->ovf_tail->next = c;
  else wk->ovf_head = c;
  wk->ovf_tail = c;
  wk->ovf_len++;
}

/* May the control thread take more frames from ingest? Not when every tier is full. */
static int outbox_accepting(const worker *wk) {
  if (wk->ovf_head) return 0;
  if (!spool_has(wk) && !outbox_full(wk)) return 1;
  /* room for the next frame's batch: its JSON is at most a few times the frame's bytes */
  return wk->spool && dl_spool_pending_bytes(wk->spool) + DL_SPOOL_HEADROOM * (uint64_t)wk->cfg->max_frame_bytes <
                          (uint64_t)wk->cfg->spool_max_bytes;
}

static size_t pending_writes(const worker *wk) {
  return wk->out_len + wk->ovf_len + (wk->spool ? (size_t)dl_spool_pending_records(wk->spool) : 0);
}

static void outbox_flush_all(worker *wk) {
  for (cmd *c = wk->out_head; c; c = c->next) outbox_send(wk, c);
}

/* Builds a command from a NULL-terminated list of strings. */
static cmd *cmd_of(const char *first, ...) {
  va_list ap;
  int n = 0;
  va_start(ap, first);
  for (const char *s = first; s; s = va_arg(ap, const char *)) n++;
  va_end(ap);
  cmd *c = cmd_new(n);
  if (!c) return NULL;
  va_start(ap, first);
  int i = 0;
  for (const char *s = first; s; s = va_arg(ap, const char *)) {
    if (cmd_set(c, i++, s, strlen(s)) != 0) {
      va_end(ap);
      cmd_free(c);
      return NULL;
    }
  }
  va_end(ap);
  return c;
}

static void maybe_finish_drain(worker *wk);
static void drain_ingest(worker *wk);
static void give_up(worker *wk, croom *r);

static void on_write_reply(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  cmd *c = priv;
  if (!wk) return;
  if (!reply) return; /* disconnected: the command stays in the outbox and is sent again */
  if (c != wk->out_head) {
    /* replies arrive in order; anything else is a stale reply from an old connection */
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    wk->redis_errors++;
    /* OOM, READONLY, LOADING, MASTERDOWN…: keep everything, reconnect after a growing pause and
     * probe with the oldest write before sending the rest (no hammering a sick Redis) */
    wk->w_backoff_ms = wk->w_backoff_ms ? wk->w_backoff_ms * 2 : DL_REDIS_RETRY_MS;
    if (wk->w_backoff_ms > DL_REDIS_BACKOFF_MAX_MS) wk->w_backoff_ms = DL_REDIS_BACKOFF_MAX_MS;
    wk->probing = 1;
    unsigned supp = 0;
    if (dl_ratelimit_allow(&wk->err_rl, dl_mono_ms(), 1, &supp))
      dl_log(DL_LOG_WARN, "redis_error", c->live_id, "write failed: %.200s; retrying in %d ms (%u similar suppressed)",
             reply->str, wk->w_backoff_ms, supp);
    w_reset(wk);
    return;
  }
  wk->w_backoff_ms = 0;
  if (wk->probing) {
    wk->probing = 0;
    for (cmd *x = c->next; x; x = x->next) outbox_send(wk, x);
  }
  long long code = c->kind == K_BATCH && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
                       ? reply->element[0]->integer
                   : c->kind == K_STATUS && reply->type == REDIS_REPLY_INTEGER ? reply->integer
                                                                               : 0;
  if (code == -2) {
    /* The oldest pending write says its predecessor never arrived, and nothing older is pending:
     * that write was lost on our side (allocation or spool failure). Accept the gap rather than
     * block the room forever; say so. */
    wk->gaps_forced++;
    dl_log(DL_LOG_ERROR, "write_gap", c->live_id, "a write before sequence %s was lost; continuing after it",
           c->argv[c->seq_idx]);
    char forced[32];
    snprintf(forced, sizeof forced, "!%s", c->argv[c->seq_idx]);
    free(c->argv[c->seq_idx]);
    c->argv[c->seq_idx] = strdup(forced);
    c->argvlen[c->seq_idx] = c->argv[c->seq_idx] ? strlen(forced) : 0;
    wk->probing = 1;
    w_reset(wk);
    return;
  }
  int fenced = code == -1;
  if (fenced) {
    wk->fenced++;
    croom *r = find_room(wk, c->live_id);
    if (r) give_up(wk, r);
  } else if (c->kind == K_BATCH && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
    wk->events_written += (uint64_t)reply->element[0]->integer;
    wk->events_dup += (uint64_t)reply->element[1]->integer;
  }
  wk->out_head = c->next;
  if (!wk->out_head) wk->out_tail = NULL;
  wk->out_len--;
  wk->out_bytes -= c->bytes;
  cmd_free(c);
  outbox_refill(wk);
  if (!outbox_full(wk)) drain_ingest(wk);
  if (wk->draining) maybe_finish_drain(wk);
}

/* ---------- status: every write fenced by the room's lease ---------- */

static int cmd_add(cmd *c, const char *s, size_t len) { return cmd_set(c, c->argc, s, len); }

/* EVALSHA of a fenced room script (ROOM_PROLOGUE): KEYS lease, epoch, wseq, then `keys`; ARGV
 * token, ttl, and the next write sequence number. The caller appends its own ARGV (room for
 * `more` of them is reserved). */
static cmd *room_script(worker *wk, croom *r, int script, int kind, const char *const *keys, int nkeys, int more) {
  static const char *const fence_keys[] = {"lease", "epoch", "wseq"};
  cmd *c = cmd_new(3 + 3 + nkeys + 3 + more);
  if (!c) return NULL;
  char k[256], num[32];
  snprintf(num, sizeof num, "%d", 3 + nkeys);
  int ok = cmd_add(c, "EVALSHA", 7) == 0 && cmd_add(c, wk->sha[script], 40) == 0 && cmd_add(c, num, strlen(num)) == 0;
  for (int i = 0; ok && i < 3 + nkeys; i++) {
    room_key(wk, k, sizeof k, r->live_id, i < 3 ? fence_keys[i] : keys[i - 3]);
    ok = cmd_add(c, k, strlen(k)) == 0;
  }
  ok = ok && cmd_add(c, r->token, strlen(r->token)) == 0;
  snprintf(num, sizeof num, "%d", DL_LEASE_MS);
  ok = ok && cmd_add(c, num, strlen(num)) == 0;
  snprintf(num, sizeof num, "%llu", (unsigned long long)++r->wseq);
  c->seq_idx = c->argc;
  ok = ok && cmd_add(c, num, strlen(num)) == 0;
  if (!ok) {
    cmd_free(c);
    return NULL;
  }
  c->kind = kind;
  snprintf(c->live_id, sizeof c->live_id, "%s", r->live_id);
  return c;
}

/* A fenced status write: HSET the pairs if we still own the room; release=1 also gives the lease
 * up. pairs is a NULL-terminated field, value, … list. */
static void status_write(worker *wk, croom *r, int release, const char *const *pairs) {
  if (!r->token[0]) return; /* never owned: nothing may be written */
  int n = 0;
  while (pairs[n]) n++;
  static const char *const keys[] = {"status"};
  cmd *c = room_script(wk, r, S_STATUS, K_STATUS, keys, 1, 1 + n);
  if (!c) return;
  int ok = cmd_add(c, release ? "1" : "0", 1) == 0;
  for (int i = 0; ok && i < n; i++) ok = cmd_add(c, pairs[i], strlen(pairs[i])) == 0;
  if (!ok) {
    cmd_free(c);
    return;
  }
  outbox_push(wk, c);
}

static void set_status(worker *wk, croom *r, const char *state, const char *error, int release) {
  char now[32];
  snprintf(now, sizeof now, "%lld", (long long)dl_now_ms());
  const char *pairs[] = {"state", state, "worker", wk->cfg->worker_id, "updated_ms", now, "room_id", r->room_id,
                         error ? "error" : NULL, error, NULL};
  status_write(wk, r, release, pairs);
}

/* ---------- rooms ---------- */

static dl_proxypool *g_wk_pool; /* 2026: room_remove has no worker at hand; one pool per process */

/* 2026: ms ± DL_JITTER_PCT percent. */
static int64_t jittered(int64_t ms) {
  int64_t span = ms * DL_JITTER_PCT / 100;
  return span > 0 ? ms - span + (int64_t)((unsigned long)random() % (unsigned long)(2 * span + 1)) : ms;
}

static void room_remove(worker *wk, croom *r) {
  for (croom **pp = &wk->rooms; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      wk->nrooms--;
      break;
    }
  if (r->retry_ev) event_free(r->retry_ev);
  if (g_wk_pool) dl_proxypool_unpin(g_wk_pool, r->live_id); /* 2026: an assignment's own proxy */
  free(r->claim_raw);
  free(r);
}

/* A command with one binary-safe trailing argument (an assignment string as stored). */
static cmd *cmd_with_raw(const char *a0, const char *a1, const char *a2, const char *raw, size_t len) {
  cmd *c = cmd_new(a2 ? 4 : 3);
  if (!c) return NULL;
  int i = 0, ok = cmd_set(c, i++, a0, strlen(a0)) == 0 && cmd_set(c, i++, a1, strlen(a1)) == 0;
  if (ok && a2) ok = cmd_set(c, i++, a2, strlen(a2)) == 0;
  if (!ok || cmd_set(c, i, raw, len) != 0) {
    cmd_free(c);
    return NULL;
  }
  return c;
}

static void release_claim(worker *wk, const croom *r) {
  outbox_push(wk, cmd_with_raw("LREM", wk->key_claims, "0", r->claim_raw, r->claim_len));
}

static void claim_next(worker *wk);
static void write_worker_status(worker *wk);
static void acquire(worker *wk, croom *r);

static worker *g_wk; /* timer callbacks need the worker; there is one per process */

static void room_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  croom *r = arg;
  if (r->stop_requested || g_wk->draining) return;
  if (r->st == C_CLAIMING) {
    acquire(g_wk, r);
  } else if (r->st == C_RESOLVING && r->silent_runs) { /* 2026: after a risk pause: a fresh identity */
    dl_resolver_submit_fresh(g_wk->resolver, r->live_id, r->profile);
  } else if (r->st == C_RESOLVING) {
    dl_resolver_submit(g_wk->resolver, r->live_id, r->profile);
  } else if (r->st == C_WATCHING) { /* --watch-ended: is the anchor back? */
    r->st = C_RESOLVING;
    dl_resolver_submit(g_wk->resolver, r->live_id, r->profile);
  }
}

static void room_retry_in(worker *wk, croom *r, int64_t ms) {
  if (!r->retry_ev) r->retry_ev = evtimer_new(wk->base, room_retry, r);
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  if (r->retry_ev) evtimer_add(r->retry_ev, &tv);
}

/* Per-room replies carry a strdup'd live_id (the room may be gone by the time they arrive). */
static croom *room_of_reply(redisAsyncContext *ac, void *priv) {
  worker *wk = ac->data;
  croom *r = wk ? find_room(wk, priv) : NULL;
  free(priv);
  return r;
}

static void on_owner_alive(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  croom *r = room_of_reply(ac, priv);
  if (!r || r->st != C_CLAIMING) return;
  if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
    /* a repeated assignment of a room another live worker captures: nothing to do */
    dl_log(DL_LOG_INFO, "assign_dup", r->live_id, "already captured by a live worker; dropping this claim");
    release_claim(wk, r);
    room_remove(wk, r);
    claim_next(wk);
    return;
  }
  room_retry_in(wk, r, DL_ACQUIRE_RETRY_MS); /* a dead worker's lease: it expires soon */
}

static void on_acquire(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  croom *r = room_of_reply(ac, priv);
  if (!r || r->st != C_CLAIMING) return;
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    room_retry_in(wk, r, DL_REDIS_RETRY_MS);
    return;
  }
  if (reply->element[0]->integer != 1) {
    char owner[160];
    snprintf(owner, sizeof owner, "%s", reply->element[1]->str);
    char *sp = strchr(owner, ' ');
    if (sp) *sp = 0;
    char key[300];
    snprintf(key, sizeof key, "%.64s:worker:%.100s", wk->cfg->prefix, owner);
    const char *argv[] = {"EXISTS", key};
    char *id = strdup(r->live_id);
    if (!id || redisAsyncCommandArgv(wk->w, on_owner_alive, id, 2, argv, NULL) != REDIS_OK) {
      free(id);
      room_retry_in(wk, r, DL_ACQUIRE_RETRY_MS);
    }
    return;
  }
  snprintf(r->token, sizeof r->token, "%s", reply->element[1]->str);
  r->wseq = 0;
  r->st = C_RESOLVING;
  /* a claim is an assignment: it clears an earlier unassign */
  char key[256];
  room_key(wk, key, sizeof key, r->live_id, "status");
  outbox_push(wk, cmd_of("HDEL", key, "desired", "error", NULL));
  set_status(wk, r, "starting", NULL, 0);
  dl_log(DL_LOG_INFO, "room_owned", r->live_id, "lease taken (%s); resolving the live page", r->token);
  dl_resolver_submit(wk->resolver, r->live_id, r->profile);
}

static void acquire(worker *wk, croom *r) {
  if (!wk->w_ready) {
    room_retry_in(wk, r, DL_ACQUIRE_RETRY_MS);
    return;
  }
  char kl[256], ke[256], ttl[16];
  room_key(wk, kl, sizeof kl, r->live_id, "lease");
  room_key(wk, ke, sizeof ke, r->live_id, "epoch");
  snprintf(ttl, sizeof ttl, "%d", DL_LEASE_MS);
  const char *argv[] = {"EVALSHA", wk->sha[S_ACQUIRE], "2", kl, ke, wk->cfg->worker_id, ttl};
  char *id = strdup(r->live_id);
  if (!id || redisAsyncCommandArgv(wk->w, on_acquire, id, 7, argv, NULL) != REDIS_OK) {
    free(id);
    room_retry_in(wk, r, DL_ACQUIRE_RETRY_MS);
  }
}

static void start_room(worker *wk, const char *live_id, const char *profile, const char *raw, size_t len) {
  croom *r = calloc(1, sizeof *r);
  if (!r || !(r->claim_raw = malloc(len + 1))) {
    free(r);
    return;
  }
  memcpy(r->claim_raw, raw, len);
  r->claim_raw[len] = 0;
  r->claim_len = len;
  snprintf(r->live_id, sizeof r->live_id, "%s", live_id);
  snprintf(r->profile, sizeof r->profile, "%s", profile);
  r->st = C_CLAIMING;
  r->next = wk->rooms;
  wk->rooms = r;
  wk->nrooms++;
  dl_log(DL_LOG_INFO, "room_claimed", live_id, "claimed; taking the lease");
  acquire(wk, r);
}

/* The room is no longer ours (closed, ended, stopped, handed back or moved). */
static void finish_room(worker *wk, croom *r, const char *state, const char *why) {
  if (!strcmp(state, "ended") && wk->cfg->watch_ended > 0 && !r->lost && !r->handing_back && !r->stop_requested &&
      !wk->draining) {
    /* --watch-ended: keep the lease and the claim; look at the live page again later (paced by
     * the resolver's one-request-at-a-time thread) */
    char msg[300];
    snprintf(msg, sizeof msg, "%s; checking again every %lld s", why ? why : "live ended", wk->cfg->watch_ended);
    set_status(wk, r, "ended", msg, 0);
    r->st = C_WATCHING;
    room_retry_in(wk, r, jittered(wk->cfg->watch_ended * 1000)); /* 2026: ±20 %: checks never synchronize */
    return;
  }
  if (r->lost) {
    /* another worker owns it now: write nothing */
  } else if (r->handing_back) {
    char msg[200];
    snprintf(msg, sizeof msg, "handed back by draining worker %s", wk->cfg->worker_id);
    set_status(wk, r, "reconnecting", msg, 1);
    /* head of the queue (BLMOVE pops from the right), after the lease is released */
    outbox_push(wk, cmd_with_raw("RPUSH", wk->key_assign, NULL, r->claim_raw, r->claim_len));
  } else {
    set_status(wk, r, state, why, 1);
  }
  release_claim(wk, r);
  dl_log(DL_LOG_INFO, "room_released", r->live_id, "%s%s%s", r->lost ? "moved to another worker" :
         r->handing_back ? "handed back" : state, why ? ": " : "", why ? why : "");
  room_remove(wk, r);
  claim_next(wk);
  if (wk->draining) maybe_finish_drain(wk);
}

static void close_room(worker *wk, croom *r) {
  if (r->st == C_CLOSING) return;
  if (r->st == C_RESOLVING || r->st == C_CLAIMING || r->st == C_WATCHING) {
    /* not in ingest yet: done now (a resolve result may still arrive and is ignored) */
    r->st = C_CLOSING;
    finish_room(wk, r, "stopped", r->stop_requested ? "unassigned" : NULL);
    return;
  }
  r->st = C_CLOSING;
  dl_ingest_close(wk->ingest, r->live_id);
}

/* Our lease is gone (a write or a renewal was fenced): the room belongs to another worker. */
static void give_up(worker *wk, croom *r) {
  if (r->lost) return;
  r->lost = 1;
  wk->lost_rooms++;
  dl_log(DL_LOG_WARN, "lease_lost", r->live_id, "lease taken by another worker; giving the room up");
  close_room(wk, r);
}

/* ---------- messages from ingest and the resolver ---------- */

static cmd *batch_begin(worker *wk, croom *r, int nevents) {
  static const char *const keys[] = {"events", "status", "seen", "gifts"};
  cmd *c = room_script(wk, r, S_WRITE, K_BATCH, keys, 4, 3 + 4 * nevents);
  if (!c) return NULL;
  char maxlen[32], seen[32], now[32];
  snprintf(maxlen, sizeof maxlen, "%lld", wk->cfg->stream_maxlen);
  snprintf(seen, sizeof seen, "%lld", wk->cfg->seen_max);
  snprintf(now, sizeof now, "%lld", (long long)dl_now_ms());
  if (cmd_add(c, maxlen, strlen(maxlen)) || cmd_add(c, seen, strlen(seen)) || cmd_add(c, now, strlen(now))) {
    cmd_free(c);
    return NULL;
  }
  return c;
}

static void write_frame(worker *wk, croom *r, const dl_in_msg *m) {
  const dl_frame *f = &m->frame;
  size_t i = 0;
  while (i < f->n_events) {
    size_t n = f->n_events - i;
    if (n > (size_t)wk->cfg->batch_max) n = (size_t)wk->cfg->batch_max;
    cmd *c = batch_begin(wk, r, (int)n);
    if (!c) return;
    for (size_t k = 0; k < n; k++, i++) {
      const dl_event *e = &f->events[i];
      char ts[32];
      snprintf(ts, sizeof ts, "%lld", (long long)e->ts_ms);
      if (cmd_add(c, e->type, strlen(e->type)) || cmd_add(c, e->msg_id, strlen(e->msg_id)) ||
          cmd_add(c, ts, strlen(ts)) || cmd_add(c, e->json, e->json_len)) {
        cmd_free(c);
        return;
      }
    }
    wk->batches++;
    outbox_push(wk, c);
  }
}

static void on_ingest_msg(worker *wk, dl_in_msg *m) {
  croom *r = find_room(wk, m->live_id);
  switch (m->kind) {
  case DL_IN_FRAME:
    /* events of a room we are closing still get written: they were received; a room we lost
     * belongs to its new owner, who gets Douyin's re-push */
    if (r && !r->lost && r->token[0]) write_frame(wk, r, m);
    /* 2026: a connection that delivers messages beyond its first frame (Douyin re-pushes on every
     * connect, and a silenced connection may still get that one) is not silent: the count resets */
    if (r && m->frame.n_events && ++r->conn_msg_frames >= 2) r->silent_runs = 0, r->risk_pause_ms = 0;
    break;
  case DL_IN_CONNECTED:
    if (r) r->refusals = 0, r->conn_msg_frames = 0; /* 2026: conn_msg_frames */
    if (r && r->st != C_CLOSING) {
      r->st = C_LIVE;
      set_status(wk, r, "live", NULL, 0);
    }
    break;
  case DL_IN_DISCONNECTED:
    if (r && r->st != C_CLOSING) {
      r->st = C_RECONNECTING;
      set_status(wk, r, m->rejected ? "error" : "reconnecting", m->reason, 0);
      if (m->rejected && ++r->refusals >= DL_REFRESH_AFTER_REFUSALS) {
        /* refused again and again: new ttwid, next UA, a new connection */
        r->refusals = 0;
        r->reopen = 1;
        if (!wk->cfg->cookie_file[0] && !r->profile[0]) r->ua_turn++;
        dl_log(DL_LOG_WARN, "refresh_identity", r->live_id, "handshake refused %d times; fresh ttwid%s",
               DL_REFRESH_AFTER_REFUSALS, r->ua_turn ? " and another User-Agent" : "");
        r->st = C_CLOSING;
        dl_ingest_close(wk->ingest, r->live_id);
      }
    }
    break;
  case DL_IN_BAD_FRAME: {
    /* hostile input must not flood the log or Redis: a few lines a second per worker, one
     * status write a second per room; the counters (/metrics) count every frame */
    unsigned supp = 0;
    if (dl_ratelimit_allow(&wk->bad_rl, dl_mono_ms(), 5, &supp))
      dl_log(DL_LOG_WARN, "bad_frame", m->live_id, "%s (%u similar lines suppressed)", m->reason, supp);
    if (r && dl_mono_ms() - r->last_bad_write_ms >= 1000) {
      r->last_bad_write_ms = dl_mono_ms();
      const char *pairs[] = {"last_bad_frame", m->reason, NULL};
      status_write(wk, r, 0, pairs);
    }
    break;
  }
  case DL_IN_ENDED:
    if (r) {
      r->stop_requested = 0;
      r->handing_back = 0;
      finish_room(wk, r, "ended", "live ended (ControlMessage status 3)");
    }
    break;
  case DL_IN_SILENT: /* 2026: silent risk control (PROTOCOL §9.6): ingest closed and forgot the room */
    if (!r || r->st == C_CLOSING) break; /* a close is under way: its DL_IN_CLOSED ("not open") follows */
    wk->silent_total++;
    snprintf(r->cursor, sizeof r->cursor, "%s", m->cursor && strlen(m->cursor) < sizeof r->cursor ? m->cursor : "");
    snprintf(r->internal_ext, sizeof r->internal_ext, "%s",
             m->internal_ext && strlen(m->internal_ext) < sizeof r->internal_ext ? m->internal_ext : "");
    r->st = C_RESOLVING;
    if (++r->silent_runs >= DL_SILENT_RUNS_MAX) {
      r->risk_pause_ms = r->risk_pause_ms ? r->risk_pause_ms * 2 : DL_RISK_PAUSE_MS;
      if (r->risk_pause_ms > DL_RISK_PAUSE_MAX_MS) r->risk_pause_ms = DL_RISK_PAUSE_MAX_MS;
      int64_t wait = jittered(r->risk_pause_ms);
      char msg[300];
      snprintf(msg, sizeof msg, "risk control: %d silent connections in a row (no message for %lld s each); "
               "retrying in %lld s", r->silent_runs, wk->cfg->silence_timeout, (long long)((wait + 999) / 1000));
      wk->risk_errors++;
      dl_log(DL_LOG_WARN, "risk_control", r->live_id, "%s", msg);
      set_status(wk, r, "error", msg, 0);
      room_retry_in(wk, r, wait);
    } else {
      dl_log(DL_LOG_WARN, "refresh_identity", r->live_id, "%s; fresh ttwid and user_unique_id", m->reason);
      set_status(wk, r, "reconnecting", m->reason, 0);
      dl_resolver_submit_fresh(wk->resolver, r->live_id, r->profile);
    }
    break;
  case DL_IN_CLOSED:
    if (r && r->reopen && !r->stop_requested && !r->handing_back && !r->lost && !wk->draining) {
      r->reopen = 0;
      r->st = C_RESOLVING;
      dl_resolver_submit_fresh(wk->resolver, r->live_id, r->profile);
    } else if (r) {
      finish_room(wk, r, "stopped", r->stop_requested ? "unassigned" : NULL);
    }
    break;
  }
}

/* A room opens only after its gift streak counts are loaded from Redis (a previous owner's), so
 * a streak that spans a handover is not counted twice. Without Redis it opens without them. */
static void on_gifts(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  dl_room_spec *spec = priv; /* a heap copy owned by this callback */
  croom *r = wk ? find_room(wk, spec->live_id) : NULL;
  if (r && r->st == C_CONNECTING && !r->lost) {
    size_t n = reply && reply->type == REDIS_REPLY_ARRAY ? reply->elements / 2 : 0;
    dl_gift_streak *g = n ? calloc(n, sizeof *g) : NULL;
    size_t k = 0;
    for (size_t i = 0; g && i < n; i++) {
      unsigned long long u, gid, grp, run;
      if (sscanf(reply->element[2 * i]->str, "%llu:%llu:%llu", &u, &gid, &grp) == 3 &&
          sscanf(reply->element[2 * i + 1]->str, "%llu", &run) == 1)
        g[k++] = (dl_gift_streak){.user_id = u, .gift_id = gid, .group_id = grp, .last_seen = run,
                                  .last_ms = dl_now_ms()};
    }
    spec->gifts = g;
    spec->n_gifts = k;
    dl_ingest_open(wk->ingest, spec);
    free(g);
  }
  free(spec->cookie);
  free(spec);
}

static void open_with_gifts(worker *wk, const dl_room_spec *spec) {
  dl_room_spec *copy = malloc(sizeof *copy);
  if (copy) {
    *copy = *spec;
    copy->cookie = spec->cookie ? strdup(spec->cookie) : NULL;
    char key[256];
    room_key(wk, key, sizeof key, spec->live_id, "gifts");
    const char *argv[] = {"HGETALL", key};
    if (wk->w_ready && redisAsyncCommandArgv(wk->w, on_gifts, copy, 2, argv, NULL) == REDIS_OK) return;
    free(copy->cookie);
    free(copy);
  }
  dl_ingest_open(wk->ingest, spec);
}

static void on_resolved(worker *wk, dl_resolve_result *res) {
  croom *r = find_room(wk, res->live_id);
  if (!r || r->st != C_RESOLVING) return;
  if (r->stop_requested || wk->draining) {
    close_room(wk, r);
    return;
  }
  if (res->err == DL_ENOTLIVE || res->err == DL_ENOTFOUND) {
    dl_log(DL_LOG_INFO, "room_offline", r->live_id, "%s", res->error);
    snprintf(r->room_id, sizeof r->room_id, "%s", res->page.room_id);
    finish_room(wk, r, res->err == DL_ENOTLIVE ? "ended" : "error", res->error);
    return;
  }
  if (res->err != DL_EOK) {
    wk->resolve_errors++;
    r->resolve_failures++;
    int64_t wait = DL_RESOLVE_RETRY_MS << (r->resolve_failures > 5 ? 5 : r->resolve_failures - 1);
    if (wait > DL_RESOLVE_RETRY_MAX_MS) wait = DL_RESOLVE_RETRY_MAX_MS;
    char msg[300];
    snprintf(msg, sizeof msg, "%s; retrying in %lld ms", res->error, (long long)wait);
    dl_log(DL_LOG_WARN, "resolve_failed", r->live_id, "%s", msg);
    set_status(wk, r, "error", msg, 0);
    room_retry_in(wk, r, wait);
    return;
  }
  snprintf(r->room_id, sizeof r->room_id, "%s", res->page.room_id);
  r->st = C_CONNECTING;
  /* 2026: logged_in (CONTRACT §3: Douyin withholds gifts from guests), where the facts came from,
   * and the egress proxy's label (host:port, never credentials; "" when direct) */
  dl_proxy_url pu = {0};
  if (res->proxy >= 0) dl_proxypool_get(wk->pool, res->proxy, &pu);
  const char *facts[] = {"title", res->page.title, "anchor", res->page.anchor, "logged_in",
                         res->logged_in ? "1" : "0", "resolved_by", res->source, "proxy", pu.label, NULL};
  status_write(wk, r, 0, facts);
  set_status(wk, r, "starting", NULL, 0);
  dl_room_spec spec;
  memset(&spec, 0, sizeof spec);
  snprintf(spec.live_id, sizeof spec.live_id, "%s", r->live_id);
  snprintf(spec.room_id, sizeof spec.room_id, "%s", r->room_id);
  if (res->page.user_unique_id[0]) {
    snprintf(spec.user_unique_id, sizeof spec.user_unique_id, "%s", res->page.user_unique_id);
  } else { /* a random 19-digit id, as public clients do (PROTOCOL §1.2) */
    unsigned long long v = 7300000000000000000ULL + ((unsigned long long)random() << 20 ^ (unsigned long long)random()) % 699999999999999999ULL;
    snprintf(spec.user_unique_id, sizeof spec.user_unique_id, "%llu", v);
  }
  /* 2026: a fresh identity never reuses the last user_unique_id (the page may hand it out again) */
  while (!strcmp(spec.user_unique_id, r->last_uid)) {
    unsigned long long v = 7300000000000000000ULL + ((unsigned long long)random() << 20 ^ (unsigned long long)random()) % 699999999999999999ULL;
    snprintf(spec.user_unique_id, sizeof spec.user_unique_id, "%llu", v);
  }
  snprintf(r->last_uid, sizeof r->last_uid, "%s", spec.user_unique_id);
  /* 2026: resume where a silenced connection stopped (consumed once; ingest tracks it from here).
   * The proxy needs no field: ingest's dl_proxypool_pick gives the resolver's answer. */
  snprintf(spec.cursor, sizeof spec.cursor, "%s", r->cursor);
  snprintf(spec.internal_ext, sizeof spec.internal_ext, "%s", r->internal_ext);
  r->cursor[0] = r->internal_ext[0] = 0;
  spec.cookie = res->cookie;
  snprintf(spec.address, sizeof spec.address, "%s", res->ws_addr);
  if (r->ua_turn)
    snprintf(spec.user_agent, sizeof spec.user_agent, "%s",
             rotation_uas[(r->ua_turn - 1) % (sizeof rotation_uas / sizeof *rotation_uas)]);
  dl_log(DL_LOG_INFO, "room_resolved", r->live_id, "room_id=%s title=\"%s\" via %s in %lld ms logged_in=%d", r->room_id,
         res->page.title, res->source, (long long)res->took_ms, res->logged_in); /* 2026: source, time, login */
  open_with_gifts(wk, &spec);
}

static void drain_ingest(worker *wk) {
  void *items[DL_DRAIN_BATCH];
  size_t n;
  while ((n = dl_queue_pop(wk->resq, items, DL_DRAIN_BATCH)) > 0)
    for (size_t i = 0; i < n; i++) {
      on_resolved(wk, items[i]);
      dl_resolve_result_free(items[i]);
    }
  /* stop taking frames while the outbox is full: ingest's queue then pauses the sockets */
  while (outbox_accepting(wk) && (n = dl_queue_pop(wk->inq, items, DL_DRAIN_BATCH)) > 0)
    for (size_t i = 0; i < n; i++) {
      on_ingest_msg(wk, items[i]);
      dl_in_msg_free(items[i]);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  uint64_t v;
  ssize_t rd = read(fd, &v, sizeof v);
  (void)rd;
  drain_ingest(arg);
}

/* ---------- claims ---------- */

static void schedule(struct event *ev, int ms);
static void on_claim(redisAsyncContext *ac, void *rp, void *priv) {
  (void)priv;
  worker *wk = ac->data;
  redisReply *reply = rp;
  if (!wk) return;
  wk->claim_inflight = 0;
  if (!reply) return;
  if (wk->draining && reply->type != REDIS_REPLY_STRING) {
    maybe_finish_drain(wk);
    return;
  }
  if (reply->type == REDIS_REPLY_STRING) {
    const char *raw = reply->str;
    size_t rawlen = reply->len;
    char live_id[DL_LIVE_ID_MAX], profile[72], proxy[DL_PROXY_URL_MAX]; /* 2026: an assignment's own proxy */
    wk->claims++;
    if (wk->draining) {
      outbox_push(wk, cmd_with_raw("RPUSH", wk->key_assign, NULL, raw, rawlen));
      outbox_push(wk, cmd_with_raw("LREM", wk->key_claims, "1", raw, rawlen));
      maybe_finish_drain(wk);
    } else if (dl_assignment_parse(raw, rawlen, live_id, sizeof live_id, profile, sizeof profile, proxy,
                                   sizeof proxy) != 0) {
      wk->bad_assignments++;
      /* 2026: never the raw text: a JSON assignment may carry proxy credentials */
      dl_log(DL_LOG_WARN, "bad_assignment", NULL,
             "ignoring an assignment of %zu bytes: not a live_id, a live URL or {\"live_id\":…,\"cookie\":…,"
             "\"proxy\":\"http://host:port\"}", rawlen);
      outbox_push(wk, cmd_with_raw("LREM", wk->key_claims, "1", raw, rawlen));
    } else if (find_room(wk, live_id)) {
      dl_log(DL_LOG_INFO, "assign_dup", live_id, "already captured here; ignoring the repeated assignment");
      outbox_push(wk, cmd_with_raw("LREM", wk->key_claims, "1", raw, rawlen));
    } else {
      char why[160];
      if (proxy[0] && dl_proxypool_pin(wk->pool, live_id, proxy, why, sizeof why) < 0) /* 2026 */
        dl_log(DL_LOG_WARN, "assign_proxy", live_id, "assignment proxy not used: %s", why);
      start_room(wk, live_id, profile, raw, rawlen);
    }
  } else if (reply->type == REDIS_REPLY_ERROR) {
    /* e.g. OOM refuses BLMOVE at once: try again in a second, not in a loop */
    wk->redis_errors++;
    unsigned supp = 0;
    if (dl_ratelimit_allow(&wk->claim_rl, dl_mono_ms(), 1, &supp))
      dl_log(DL_LOG_WARN, "claim_error", NULL, "%.200s (%u similar suppressed)", reply->str, supp);
    schedule(wk->claim_retry, DL_REDIS_RETRY_MS);
    return;
  }
  claim_next(wk);
}

static void on_claim_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  claim_next(arg);
}

static void claim_next(worker *wk) {
  if (!wk->b_ready || !wk->registered || wk->claim_inflight || wk->draining) return;
  if (wk->nrooms >= (size_t)wk->cfg->max_rooms) return;
  const char *argv[] = {"BLMOVE", wk->key_assign, wk->key_claims, "RIGHT", "LEFT", "1"};
  if (redisAsyncCommandArgv(wk->b, on_claim, NULL, 6, argv, NULL) == REDIS_OK) wk->claim_inflight = 1;
}

/* ---------- Redis connections ---------- */

static void w_connect(worker *wk);
static void b_connect(worker *wk);

static void retry_w(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  w_connect(arg);
}
static void retry_b(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  b_connect(arg);
}

static void schedule(struct event *ev, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

static void on_w_connect(const redisAsyncContext *ac, int status) {
  worker *wk = ac->data;
  if (status != REDIS_OK) {
    dl_log(DL_LOG_WARN, "redis_connect", NULL, "write connection failed: %s", ac->errstr);
    wk->w = NULL;
    schedule(wk->w_retry, DL_REDIS_RETRY_MS);
    return;
  }
  dl_log(DL_LOG_INFO, "redis_connected", NULL, "write connection up");
}

static void on_b_connect(const redisAsyncContext *ac, int status) {
  worker *wk = ac->data;
  if (status != REDIS_OK) {
    wk->b = NULL;
    schedule(wk->b_retry, DL_REDIS_RETRY_MS);
    return;
  }
}

static void on_w_disconnect(const redisAsyncContext *ac, int status) {
  worker *wk = ac->data;
  (void)status;
  if (!wk) return;
  wk->w = NULL;
  wk->w_ready = 0;
  for (cmd *c = wk->out_head; c; c = c->next) c->sent = 0;
  wk->redis_reconnects++;
  schedule(wk->w_retry, wk->w_backoff_ms ? wk->w_backoff_ms : DL_REDIS_RETRY_MS);
}

static void on_b_disconnect(const redisAsyncContext *ac, int status) {
  worker *wk = ac->data;
  (void)status;
  if (!wk) return;
  wk->b = NULL;
  wk->b_ready = 0;
  wk->claim_inflight = 0;
  if (!wk->draining) schedule(wk->b_retry, DL_REDIS_RETRY_MS);
}

static void on_client_id(redisAsyncContext *ac, void *rp, void *priv) {
  (void)priv;
  worker *wk = ac->data;
  redisReply *reply = rp;
  if (wk && reply && reply->type == REDIS_REPLY_INTEGER) wk->b_client_id = reply->integer;
}

/* Sent first on every connection; a failure here fails the connection. */
static void on_setup_reply(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  int is_w = priv == (void *)1;
  if (!wk || !reply) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    dl_log(DL_LOG_ERROR, "redis_setup", NULL, "connection setup failed: %.200s", reply->str);
    redisAsyncDisconnect(ac);
    return;
  }
  if (is_w) {
    wk->w_ready = 1;
    wk->w_up_since_ms = dl_mono_ms();
    write_worker_status(wk);
    outbox_flush_all(wk);
  } else {
    wk->b_ready = 1;
    claim_next(wk);
  }
}

static redisAsyncContext *redis_open(worker *wk, int is_w) {
  redisAsyncContext *ac = wk->raddr.unix_path[0] ? redisAsyncConnectUnix(wk->raddr.unix_path)
                                                 : redisAsyncConnect(wk->raddr.host, wk->raddr.port);
  if (!ac) return NULL;
  if (ac->err) {
    dl_log(DL_LOG_WARN, "redis_connect", NULL, "%s", ac->errstr);
    redisAsyncFree(ac);
    return NULL;
  }
  ac->data = wk;
  redisLibeventAttach(ac, wk->base);
  redisAsyncSetConnectCallback(ac, is_w ? on_w_connect : on_b_connect);
  redisAsyncSetDisconnectCallback(ac, is_w ? on_w_disconnect : on_b_disconnect);
  /* setup commands are queued before anything else on the connection */
  if (wk->raddr.password[0]) {
    if (wk->raddr.user[0]) {
      const char *a[] = {"AUTH", wk->raddr.user, wk->raddr.password};
      redisAsyncCommandArgv(ac, NULL, NULL, 3, a, NULL);
    } else {
      const char *a[] = {"AUTH", wk->raddr.password};
      redisAsyncCommandArgv(ac, NULL, NULL, 2, a, NULL);
    }
  }
  char db[16];
  snprintf(db, sizeof db, "%d", wk->raddr.db);
  const char *sel[] = {"SELECT", db};
  if (is_w) {
    redisAsyncCommandArgv(ac, NULL, NULL, 2, sel, NULL);
    for (int i = 0; i < S__COUNT; i++) {
      const char *load[] = {"SCRIPT", "LOAD", scripts[i]};
      redisAsyncCommandArgv(ac, i == S__COUNT - 1 ? on_setup_reply : NULL, (void *)1, 3, load, NULL);
    }
  } else {
    redisAsyncCommandArgv(ac, on_setup_reply, (void *)0, 2, sel, NULL);
    const char *cid[] = {"CLIENT", "ID"};
    redisAsyncCommandArgv(ac, on_client_id, NULL, 2, cid, NULL);
  }
  return ac;
}

static void w_connect(worker *wk) {
  if (wk->w) return;
  wk->w = redis_open(wk, 1);
  if (!wk->w) schedule(wk->w_retry, DL_REDIS_RETRY_MS);
}

static void b_connect(worker *wk) {
  if (wk->b || wk->draining) return;
  wk->b = redis_open(wk, 0);
  if (!wk->b) schedule(wk->b_retry, DL_REDIS_RETRY_MS);
}

static void w_reset(worker *wk) {
  if (wk->w) redisAsyncDisconnect(wk->w); /* disconnect callback marks everything unsent */
}

/* ---------- periodic checks ---------- */

static void on_desired(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  croom *r = room_of_reply(ac, priv);
  if (r && reply && reply->type == REDIS_REPLY_STRING && !strcmp(reply->str, "stopped") && !r->stop_requested &&
      r->st != C_CLOSING) {
    dl_log(DL_LOG_INFO, "room_unassign", r->live_id, "unassigned; closing");
    r->stop_requested = 1;
    close_room(wk, r);
  }
}

static void on_registered(redisAsyncContext *ac, void *rp, void *priv) {
  (void)priv;
  worker *wk = ac->data;
  redisReply *reply = rp;
  if (!wk || !reply || reply->type != REDIS_REPLY_INTEGER || wk->registered) return;
  wk->registered = 1;
  claim_next(wk);
}

static void write_worker_status(worker *wk) {
  char now[32], rooms[32], cap[32], pid[32], started[32], host[256] = "";
  snprintf(now, sizeof now, "%lld", (long long)dl_now_ms());
  snprintf(rooms, sizeof rooms, "%zu", wk->nrooms);
  snprintf(cap, sizeof cap, "%lld", wk->cfg->max_rooms);
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  snprintf(started, sizeof started, "%lld", (long long)wk->started_ms);
  gethostname(host, sizeof host - 1);
  if (!wk->w_ready || wk->deregistered) return; /* liveness data: not worth queueing */
  const char *h[] = {"HSET", wk->key_worker, "worker", wk->cfg->worker_id, "host", host, "pid", pid, "version",
                     DYLIVE_VERSION, "rooms", rooms, "capacity", cap, "started_ms", started, "heartbeat_ms", now,
                     "state", wk->draining ? "draining" : "running"};
  redisAsyncCommandArgv(wk->w, NULL, NULL, (int)(sizeof h / sizeof *h), h, NULL);
  char ttl[32];
  snprintf(ttl, sizeof ttl, "%d", DL_WORKER_TTL_MS);
  const char *e[] = {"PEXPIRE", wk->key_worker, ttl};
  redisAsyncCommandArgv(wk->w, NULL, NULL, 3, e, NULL);
  const char *z[] = {"ZADD", wk->key_workers, now, wk->cfg->worker_id};
  redisAsyncCommandArgv(wk->w, on_registered, NULL, 4, z, NULL);
}

static void on_renew(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  croom *r = room_of_reply(ac, priv);
  if (r && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) give_up(wk, r);
}

static void renew_leases(worker *wk) {
  char ttl[16];
  snprintf(ttl, sizeof ttl, "%d", DL_LEASE_MS);
  for (croom *r = wk->rooms; r; r = r->next) {
    if (!r->token[0] || r->lost) continue;
    char kl[256], ke[256];
    room_key(wk, kl, sizeof kl, r->live_id, "lease");
    room_key(wk, ke, sizeof ke, r->live_id, "epoch");
    const char *argv[] = {"EVALSHA", wk->sha[S_RENEW], "2", kl, ke, r->token, ttl};
    char *id = strdup(r->live_id);
    if (id && redisAsyncCommandArgv(wk->w, on_renew, id, 7, argv, NULL) != REDIS_OK) free(id);
  }
}

/* Workers whose registry key expired are dead: their claims go back to the head of the queue.
 * Every worker does this; it is idempotent (LMOVE is atomic per element). */
static void on_dead_check(redisAsyncContext *ac, void *rp, void *priv) {
  worker *wk = ac->data;
  redisReply *reply = rp;
  char *id = priv;
  if (wk && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && wk->w_ready) {
    char claims[400];
    snprintf(claims, sizeof claims, "%.64s:claims:%.100s:{%.80s}", wk->cfg->prefix, id, wk->key_assign);
    const char *rq[] = {"EVALSHA", wk->sha[S_REQUEUE], "2", claims, wk->key_assign};
    redisAsyncCommandArgv(wk->w, NULL, NULL, 5, rq, NULL);
    const char *zr[] = {"ZREM", wk->key_workers, id};
    redisAsyncCommandArgv(wk->w, NULL, NULL, 3, zr, NULL);
    wk->requeued++;
    dl_log(DL_LOG_WARN, "worker_dead", NULL, "worker %s stopped heartbeating; its rooms go back to %s", id,
           wk->key_assign);
  }
  free(id);
}

static void on_workers(redisAsyncContext *ac, void *rp, void *priv) {
  (void)priv;
  worker *wk = ac->data;
  redisReply *reply = rp;
  if (!wk || !reply || reply->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i < reply->elements; i++) {
    const char *id = reply->element[i]->str;
    if (!id || !strcmp(id, wk->cfg->worker_id)) continue;
    char key[300];
    snprintf(key, sizeof key, "%.64s:worker:%.100s", wk->cfg->prefix, id);
    const char *argv[] = {"EXISTS", key};
    char *dup = strdup(id);
    if (dup && redisAsyncCommandArgv(wk->w, on_dead_check, dup, 2, argv, NULL) != REDIS_OK) free(dup);
  }
}

static void reconcile(worker *wk) {
  int64_t now = dl_now_ms();
  if (now - wk->last_reconcile_ms < DL_RECONCILE_MS) return;
  /* After a Redis outage every worker's key has expired; judge nobody dead until the live ones
   * have had a full TTL to re-register (we may have been the one cut off). */
  if (dl_mono_ms() - wk->w_up_since_ms < DL_WORKER_TTL_MS) return;
  wk->last_reconcile_ms = now;
  char stale[32];
  snprintf(stale, sizeof stale, "(%lld", (long long)(now - DL_WORKER_TTL_MS));
  const char *argv[] = {"ZRANGEBYSCORE", wk->key_workers, "-inf", stale};
  redisAsyncCommandArgv(wk->w, on_workers, NULL, 4, argv, NULL);
}

static void on_poll(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  worker *wk = arg;
  if (wk->w_ready) {
    for (croom *r = wk->rooms; r; r = r->next) {
      if (r->st == C_CLOSING || r->st == C_CLAIMING) continue;
      char key[256];
      room_key(wk, key, sizeof key, r->live_id, "status");
      const char *argv[] = {"HGET", key, "desired"};
      char *id = strdup(r->live_id);
      if (id && redisAsyncCommandArgv(wk->w, on_desired, id, 3, argv, NULL) != REDIS_OK) free(id);
    }
    write_worker_status(wk);
    renew_leases(wk);
    reconcile(wk);
  }
  if (!wk->draining) claim_next(wk);
  drain_ingest(wk); /* safety net: ingest wakes us only on the empty → non-empty edge */
}

/* ---------- drain ---------- */

static void maybe_finish_drain(worker *wk) {
  if (!wk->draining) return;
  if (wk->nrooms == 0 && !wk->claim_inflight && !wk->deregistered) {
    /* every room is back in the queue: leave the registry so nobody mistakes us for dead */
    wk->deregistered = 1;
    outbox_push(wk, cmd_of("DEL", wk->key_worker, NULL));
    outbox_push(wk, cmd_of("ZREM", wk->key_workers, wk->cfg->worker_id, NULL));
  }
  /* a claim still blocked could take a room we hand back: wait for its (unblocked) reply */
  if ((wk->nrooms == 0 && pending_writes(wk) == 0 && !wk->claim_inflight) || dl_mono_ms() > wk->drain_deadline) {
    if (wk->nrooms || pending_writes(wk))
      dl_log(DL_LOG_ERROR, "drain_timeout", NULL, "drain deadline passed with %zu rooms and %zu writes pending",
             wk->nrooms, pending_writes(wk));
    else
      dl_log(DL_LOG_INFO, "drained", NULL, "every room handed back and every event written");
    event_base_loopbreak(wk->base);
  }
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  maybe_finish_drain(arg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  worker *wk = arg;
  if (wk->draining) return;
  dl_log(DL_LOG_INFO, "draining", NULL, "signal %d: handing rooms back and flushing", (int)sig);
  wk->draining = 1;
  wk->drain_deadline = dl_mono_ms() + DL_DRAIN_DEADLINE_MS;
  if (wk->claim_inflight && wk->b_client_id) {
    /* ordered before every hand-back on the write connection */
    char id[32];
    snprintf(id, sizeof id, "%lld", wk->b_client_id);
    outbox_push(wk, cmd_of("CLIENT", "UNBLOCK", id, NULL));
  }
  croom *next;
  for (croom *r = wk->rooms; r; r = next) {
    next = r->next;
    r->handing_back = 1;
    close_room(wk, r);
  }
  write_worker_status(wk);
  wk->drain_ev = event_new(wk->base, -1, EV_PERSIST, on_drain_tick, wk);
  struct timeval tv = {0, 100 * 1000};
  event_add(wk->drain_ev, &tv);
  maybe_finish_drain(wk);
}

/* ---------- admin HTTP ---------- */

static void admin_metrics(struct evhttp_request *req, void *arg) {
  worker *wk = arg;
  dl_ingest_stats st;
  dl_ingest_stats_get(wk->ingest, &st);
  struct evbuffer *b = evbuffer_new();
  size_t live = 0;
  for (croom *r = wk->rooms; r; r = r->next) live += r->st == C_LIVE;
#define M(name, type, help, val)                                                                   \
  evbuffer_add_printf(b, "# HELP dylive_" name " " help "\n# TYPE dylive_" name " " type "\ndylive_" name " %llu\n", \
                      (unsigned long long)(val))
  M("rooms", "gauge", "Rooms held by this worker.", wk->nrooms);
  M("rooms_live", "gauge", "Rooms with an open WebSocket.", live);
  M("frames_total", "counter", "WebSocket frames received.", st.frames);
  M("frame_bytes_total", "counter", "Bytes of WebSocket frames received.", st.bytes);
  M("messages_total", "counter", "Messages decoded into events.", st.messages);
  M("bad_frames_total", "counter", "Frames that did not decode (malformed, over a limit).", st.bad_frames);
  M("bad_messages_total", "counter", "Messages whose payload did not parse (kept as raw).", st.bad_messages);
  M("gzip_bombs_total", "counter", "Frames refused at the inflate cap.", st.bombs);
  M("acks_sent_total", "counter", "Acks sent for need_ack frames.", st.acks_sent);
  M("acks_dropped_total", "counter", "Acks dropped because the socket could not take them.", st.acks_dropped);
  M("heartbeats_sent_total", "counter", "Heartbeat frames sent.", st.hb_sent);
  M("ws_connects_total", "counter", "WebSocket connection attempts.", st.connects);
  M("ws_rejected_total", "counter", "WebSocket handshakes refused by the server (HTTP 200 + handshake-status).", st.rejected);
  M("ws_disconnects_total", "counter", "Established WebSockets lost.", st.disconnects);
  M("ingest_pauses_total", "counter", "Times socket reads paused for back-pressure.", st.pauses);
  M("ingest_paused", "gauge", "1 while socket reads are paused.", dl_ingest_paused(wk->ingest));
  M("queue_depth", "gauge", "Frames waiting between ingest and Redis.", dl_queue_len(wk->inq));
  M("events_written_total", "counter", "Events appended to room streams.", wk->events_written);
  M("redis_batches_total", "counter", "Room write scripts issued (one per batch of events).", wk->batches);
  M("events_duplicate_total", "counter", "Events skipped as duplicates by msg_id.", wk->events_dup);
  M("redis_pending", "gauge", "Writes waiting for Redis (memory, spool and overflow).", pending_writes(wk));
  M("buffer_bytes", "gauge", "Bytes of writes held in memory for Redis.", wk->out_bytes);
  M("spool_bytes", "gauge", "Bytes of writes spooled to disk while Redis was behind.",
    wk->spool ? dl_spool_pending_bytes(wk->spool) : 0);
  M("spooled_total", "counter", "Writes that went through the spool file.", wk->spooled);
  M("spool_errors_total", "counter", "Spool I/O or format errors (those writes are lost).", wk->spool_errors);
  M("redis_errors_total", "counter", "Redis error replies.", wk->redis_errors);
  M("redis_reconnects_total", "counter", "Redis write connection losses.", wk->redis_reconnects);
  M("write_gaps_total", "counter", "Room writes lost before reaching Redis (their successors were accepted).", wk->gaps_forced);
  M("leases_lost_total", "counter", "Rooms given up because their lease moved (fencing).", wk->lost_rooms);
  M("fenced_writes_total", "counter", "Writes refused by Redis because the lease moved.", wk->fenced);
  M("dead_workers_requeued_total", "counter", "Dead workers whose claims were put back.", wk->requeued);
  M("claims_total", "counter", "Assignments taken from the list.", wk->claims);
  M("bad_assignments_total", "counter", "Assignments that were not a live_id.", wk->bad_assignments);
  M("resolve_errors_total", "counter", "Live page resolutions that failed.", wk->resolve_errors);
  /* 2026: silent risk control, Handshake-Options, proxies (labels: configured host:port, never
   * credentials or room ids) */
  M("ws_silent_total", "counter", "Connections closed for delivering no message for --silence-timeout.", wk->silent_total);
  M("risk_control_errors_total", "counter", "Rooms put in error after consecutive silent connections.", wk->risk_errors);
  M("ws_ping_interval_adopted_total", "counter", "Connections whose heartbeat follows a Handshake-Options ping-interval.",
    st.ping_interval_adopted);
#undef M
  dl_proxy_stats ps[DL_PROXYPOOL_MAX];
  size_t np = dl_proxypool_stats(wk->pool, ps, DL_PROXYPOOL_MAX, dl_mono_ms());
  if (np > DL_PROXYPOOL_MAX) np = DL_PROXYPOOL_MAX;
  static const char *const pm[][3] = {
      {"proxy_rooms", "gauge", "WebSockets through this proxy now."},
      {"proxy_failures_total", "counter", "Connects and requests that failed at this proxy."},
      {"proxy_set_asides_total", "counter", "Times this proxy was set aside after failing repeatedly."},
      {"proxy_set_aside", "gauge", "1 while this proxy is set aside (its rooms move)."}};
  for (size_t k = 0; np && k < sizeof pm / sizeof *pm; k++) {
    evbuffer_add_printf(b, "# HELP dylive_%s %s\n# TYPE dylive_%s %s\n", pm[k][0], pm[k][2], pm[k][0], pm[k][1]);
    for (size_t i = 0; i < np; i++) {
      uint64_t v = k == 0 ? ps[i].rooms : k == 1 ? ps[i].failures : k == 2 ? ps[i].set_asides : (uint64_t)ps[i].cooling;
      evbuffer_add_printf(b, "dylive_%s{proxy=\"%s\"} %llu\n", pm[k][0], ps[i].label, (unsigned long long)v);
    }
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void admin_health(struct evhttp_request *req, void *arg) {
  (void)arg;
  struct evbuffer *b = evbuffer_new();
  evbuffer_add_printf(b, "ok\n");
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void admin_ready(struct evhttp_request *req, void *arg) {
  worker *wk = arg;
  struct evbuffer *b = evbuffer_new();
  int ok = wk->w_ready && !wk->draining;
  evbuffer_add_printf(b, "%s\n", ok ? "ready" : wk->draining ? "draining" : "redis not connected");
  evhttp_send_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", b);
  evbuffer_free(b);
}

static int admin_start(worker *wk) {
  if (!strcmp(wk->cfg->admin, "off")) return 0;
  char host[256];
  int port;
  dl_parse_hostport(wk->cfg->admin, host, sizeof host, &port);
  wk->http = evhttp_new(wk->base);
  if (!wk->http || evhttp_bind_socket(wk->http, host, (ev_uint16_t)port) != 0) {
    dl_log(DL_LOG_ERROR, "admin_bind", NULL, "cannot listen on %s (use --admin HOST:PORT or --admin off)",
           wk->cfg->admin);
    return -1;
  }
  evhttp_set_cb(wk->http, "/metrics", admin_metrics, wk);
  evhttp_set_cb(wk->http, "/healthz", admin_health, wk);
  evhttp_set_cb(wk->http, "/readyz", admin_ready, wk);
  dl_log(DL_LOG_INFO, "admin_listen", NULL, "admin on http://%s/metrics", wk->cfg->admin);
  return 0;
}

/* ---------- run ---------- */

int dl_worker_run(const dl_config *cfg) {
  worker wk_s, *wk = &wk_s;
  memset(wk, 0, sizeof *wk);
  g_wk = wk;
  wk->cfg = cfg;
  wk->exit_code = 0;
  wk->started_ms = dl_now_ms();
  char why[200];
  if (dl_redis_parse_url(cfg->redis_url, &wk->raddr, why, sizeof why) != 0) return 2;
  for (int i = 0; i < S__COUNT; i++) sha1_hex(scripts[i], wk->sha[i]);
  snprintf(wk->key_assign, sizeof wk->key_assign, "%.64s:assign", cfg->prefix);
  /* same hash slot as P:assign (its tag is the whole assign key) so BLMOVE is cluster-safe */
  snprintf(wk->key_claims, sizeof wk->key_claims, "%.64s:claims:%.100s:{%.80s}", cfg->prefix, cfg->worker_id,
           wk->key_assign);
  snprintf(wk->key_worker, sizeof wk->key_worker, "%.64s:worker:%.100s", cfg->prefix, cfg->worker_id);
  snprintf(wk->key_workers, sizeof wk->key_workers, "%.64s:workers", cfg->prefix);
  srandom((unsigned)(dl_now_ms() ^ getpid()));

  char ws_proxy[512], http_proxy[512];
  if (dl_proxy_for(cfg->douyin_ws, cfg->proxy, ws_proxy, sizeof ws_proxy) != 0 ||
      dl_proxy_for(cfg->douyin_http, cfg->proxy, http_proxy, sizeof http_proxy) != 0) {
    fprintf(stderr, "dylive-connector: --proxy: proxy URL too long\n");
    return 2;
  }
  if (ws_proxy[0] && dl_proxy_is_socks(ws_proxy) && !(cfg->proxy_file && *cfg->proxy_file)) { /* 2026: the pool replaces it */
    /* never a silent bypass: the WebSocket would leave without the proxy */
    fprintf(stderr, "dylive-connector: --proxy: %s is a SOCKS proxy; this build's libwebsockets tunnels the "
                    "WebSocket only through HTTP CONNECT proxies (http://host:port)\n",
            cfg->proxy && *cfg->proxy ? "the proxy" : "the environment's proxy");
    return 2;
  }
  /* 2026: --proxy-file: the egress pool (a bad line exits 2 naming the line, never its credentials) */
  wk->pool = g_wk_pool = dl_proxypool_new();
  if (!wk->pool) return 1;
  if (cfg->proxy_file && *cfg->proxy_file) {
    if (cfg->proxy && *cfg->proxy) {
      fprintf(stderr, "dylive-connector: --proxy-file: give either --proxy or --proxy-file, not both\n");
      dl_proxypool_free(wk->pool);
      return 2;
    }
    if (dl_proxypool_load(wk->pool, cfg->proxy_file, why, sizeof why) != DL_EOK) {
      fprintf(stderr, "dylive-connector: --proxy-file: %s\n", why);
      dl_proxypool_free(wk->pool);
      return 2;
    }
    ws_proxy[0] = http_proxy[0] = 0; /* the pool carries every room; the environment's proxy does not apply */
    dl_log(DL_LOG_INFO, "proxy_pool", NULL, "%zu proxies from --proxy-file", dl_proxypool_rotation(wk->pool));
  }
  if (ws_proxy[0] || http_proxy[0])
    dl_log(DL_LOG_INFO, "proxy", NULL, "pages via %s, WebSocket via %s", http_proxy[0] ? "proxy" : "direct",
           ws_proxy[0] ? "proxy" : "direct"); /* the URLs may carry credentials: not logged */
  /* everything that can refuse the configuration (exit 2) comes before any allocation */
  char *user_cookie = NULL;
  if (cfg->cookie_file && *cfg->cookie_file) {
    user_cookie = dl_cookie_file_load(cfg->cookie_file, why, sizeof why);
    if (!user_cookie) {
      fprintf(stderr, "dylive-connector: --cookie-file: %s\n", why);
      dl_proxypool_free(wk->pool); /* 2026 */
      return 2;
    }
  }
  if (cfg->spool_max_bytes > 0) {
    wk->spool = dl_spool_open(cfg->spool_dir, cfg->worker_id, (uint64_t)cfg->spool_max_bytes, why, sizeof why);
    if (!wk->spool) {
      fprintf(stderr, "dylive-connector: --spool-dir: %s\n", why);
      free(user_cookie);
      dl_proxypool_free(wk->pool); /* 2026 */
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  wk->base = event_base_new();
  wk->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  /* frames up to --queue-max; state messages (a few per room) in a reserve above it */
  wk->inq = dl_queue_new((size_t)cfg->queue_max, 4 * (size_t)cfg->max_rooms + 1024);
  wk->resq = dl_queue_new((size_t)cfg->max_rooms + 1024, 0); /* at most one resolution per room */
  if (!wk->base || wk->wake_fd < 0 || !wk->inq || !wk->resq) {
    dl_log(DL_LOG_ERROR, "startup", NULL, "cannot allocate the event loop or queues");
    return 1;
  }
  dl_ingest_opts io;
  memset(&io, 0, sizeof io);
  io.ws_base = cfg->douyin_ws;
  io.ca_file = cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL;
  io.user_agent = cfg->user_agent;
  io.sign = strcmp(cfg->signer, "none") != 0;
  io.signer_url = !strncmp(cfg->signer, "http://", 7) || !strncmp(cfg->signer, "https://", 8) ? cfg->signer : NULL;
  io.heartbeat_ms = cfg->heartbeat_ms;
  io.connect_rate = (double)cfg->connect_rate;
  io.connect_burst = (double)cfg->connect_burst;
  io.max_frame_bytes = (size_t)cfg->max_frame_bytes;
  dl_decode_limits_default(&io.limits);
  io.limits.max_frame_bytes = (size_t)cfg->max_frame_bytes;
  io.limits.max_inflated_bytes = (size_t)cfg->max_inflated_bytes;
  io.limits.max_inflate_ratio = (size_t)cfg->max_inflate_ratio;
  io.limits.max_messages = (size_t)cfg->max_messages;
  io.proxy = ws_proxy;
  io.pool = wk->pool;                                   /* 2026 */
  io.silence_ms = cfg->silence_timeout * 1000;          /* 2026 */
  wk->ingest = dl_ingest_new(&io, wk->inq, wk->wake_fd);
  dl_resolver_opts ro = {cfg->douyin_http, io.ca_file, cfg->user_agent, user_cookie, cfg->cookie_dir, http_proxy,
                         (double)cfg->http_rate, (double)cfg->http_burst, cfg->douyin_ws, ws_proxy[0] != 0,
                         wk->pool /* 2026 */};
  wk->resolver = dl_resolver_new(&ro, wk->resq, wk->wake_fd);
  free(user_cookie);
  if (!wk->ingest || !wk->resolver || dl_ingest_start(wk->ingest) != 0) {
    dl_log(DL_LOG_ERROR, "startup", NULL, "cannot start the WebSocket or HTTP thread");
    return 1;
  }
  if (admin_start(wk) != 0) {
    wk->exit_code = 1;
    goto cleanup;
  }
  wk->wake_ev = event_new(wk->base, wk->wake_fd, EV_READ | EV_PERSIST, on_wake, wk);
  event_add(wk->wake_ev, NULL);
  wk->w_retry = evtimer_new(wk->base, retry_w, wk);
  wk->b_retry = evtimer_new(wk->base, retry_b, wk);
  wk->claim_retry = evtimer_new(wk->base, on_claim_retry, wk);
  wk->poll_ev = event_new(wk->base, -1, EV_PERSIST, on_poll, wk);
  struct timeval ptv = {(time_t)(cfg->poll_ms / 1000), (suseconds_t)((cfg->poll_ms % 1000) * 1000)};
  event_add(wk->poll_ev, &ptv);
  wk->sig_term = evsignal_new(wk->base, SIGTERM, on_signal, wk);
  wk->sig_int = evsignal_new(wk->base, SIGINT, on_signal, wk);
  event_add(wk->sig_term, NULL);
  event_add(wk->sig_int, NULL);
  dl_log(DL_LOG_INFO, "worker_start", NULL, "dylive %s: redis=%s prefix=%s max_rooms=%lld ws=%s", DYLIVE_VERSION,
         wk->raddr.unix_path[0] ? wk->raddr.unix_path : wk->raddr.host, cfg->prefix, cfg->max_rooms, cfg->douyin_ws);
  w_connect(wk);
  b_connect(wk);
  event_base_dispatch(wk->base);

cleanup:
  dl_ingest_free(wk->ingest);
  dl_resolver_free(wk->resolver);
  if (wk->w) {
    wk->w->data = NULL;
    redisAsyncFree(wk->w);
  }
  if (wk->b) {
    wk->b->data = NULL;
    redisAsyncFree(wk->b);
  }
  while (wk->out_head) {
    cmd *n = wk->out_head->next;
    cmd_free(wk->out_head);
    wk->out_head = n;
  }
  while (wk->ovf_head) {
    cmd *n = wk->ovf_head->next;
    cmd_free(wk->ovf_head);
    wk->ovf_head = n;
  }
  if (wk->spool && dl_spool_pending_records(wk->spool))
    dl_log(DL_LOG_ERROR, "spool_unsent", NULL, "%llu writes still spooled at exit are lost",
           (unsigned long long)dl_spool_pending_records(wk->spool));
  dl_spool_close(wk->spool);
  while (wk->rooms) room_remove(wk, wk->rooms);
  struct event *evs[] = {wk->claim_retry, wk->wake_ev, wk->w_retry, wk->b_retry, wk->poll_ev, wk->sig_term, wk->sig_int, wk->drain_ev};
  for (size_t i = 0; i < sizeof evs / sizeof *evs; i++)
    if (evs[i]) event_free(evs[i]);
  if (wk->http) evhttp_free(wk->http);
  dl_queue_free(wk->inq, dl_in_msg_free);
  dl_queue_free(wk->resq, dl_resolve_result_free);
  close(wk->wake_fd);
  event_base_free(wk->base);
  g_wk_pool = NULL; /* 2026 */
  dl_proxypool_free(wk->pool);
  return wk->exit_code;
}
