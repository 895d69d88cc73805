#include "dl_claims.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_limits.h"
#include "dl_log.h"
#include "dl_page.h"
#include "dl_proxypool.h"
#include "dl_redis.h"
#include "dl_room.h"
#include "dl_writer.h"

#ifndef DYLIVE_VERSION
#define DYLIVE_VERSION "0.1.0"
#endif

struct dl_claims {
  dl_ctx *ctx;
  int inflight;             /* a BLMOVE is out */
  int registered;           /* in the registry: only then may we hold claims (reconciliation finds them) */
  long long client_id;      /* CLIENT ID of the claims connection, to cut a blocked claim short */
  int64_t last_reconcile_ms;
  int64_t w_up_since_ms;
  struct event *retry_ev;
  dl_ratelimit err_rl;
  void (*leave_done)(dl_ctx *);
  int leaving;
};

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  dl_claims_next(arg);
}

dl_claims *dl_claims_new(dl_ctx *ctx) {
  dl_claims *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->ctx = ctx;
  c->retry_ev = evtimer_new(ctx->base, on_retry, c);
  if (!c->retry_ev) {
    free(c);
    return NULL;
  }
  return c;
}

void dl_claims_free(dl_claims *c) {
  if (!c) return;
  event_free(c->retry_ev);
  free(c);
}

int dl_claims_inflight(const dl_claims *c) { return c->inflight; }

static void push_plain(dl_ctx *ctx, int argc, const char *const *argv, const size_t *lens) {
  dl_cmd *cmd = dl_cmd_plain_new(argc, argv, lens);
  if (cmd) dl_writer_push(ctx->writer, cmd);
}

void dl_claims_release(dl_claims *c, const char *raw, size_t len) {
  const char *argv[] = {"LREM", c->ctx->key_claims, "1", raw};
  size_t lens[] = {4, strlen(c->ctx->key_claims), 1, len};
  push_plain(c->ctx, 4, argv, lens);
}

void dl_claims_hand_back(dl_claims *c, const char *raw, size_t len) {
  /* BLMOVE pops from the right: RPUSH puts it at the head of the queue */
  const char *argv[] = {"RPUSH", c->ctx->key_assign, raw};
  size_t lens[] = {5, strlen(c->ctx->key_assign), len};
  push_plain(c->ctx, 3, argv, lens);
}

static void on_claim(void *priv, const redisReply *rep) {
  dl_claims *c = priv;
  dl_ctx *ctx = c->ctx;
  c->inflight = 0;
  if (!rep) return; /* the claims connection went down: it reconnects and claims again */
  if (rep->type == REDIS_REPLY_STRING) {
    char live_id[DL_LIVE_ID_MAX], profile[72];
    dl_proxy_url proxy;
    ctx->st.claims++;
    if (ctx->draining) {
      dl_claims_hand_back(c, rep->str, rep->len);
      dl_claims_release(c, rep->str, rep->len);
    } else if (dl_assignment_parse(rep->str, rep->len, live_id, sizeof live_id, profile, sizeof profile, &proxy) != 0) {
      ctx->st.bad_assignments++;
      /* never the raw text: a JSON assignment may carry proxy credentials */
      dl_log(DL_LOG_WARN, "bad_assignment", NULL,
             "ignoring an assignment of %zu bytes: not a live_id, a live URL or {\"live_id\":…,\"cookie\":…,"
             "\"proxy\":\"http://host:port\"}", rep->len);
      dl_claims_release(c, rep->str, rep->len);
    } else if (dl_rooms_has(ctx->rooms, live_id)) {
      dl_log(DL_LOG_INFO, "assign_dup", live_id, "already captured here; ignoring the repeated assignment");
      dl_claims_release(c, rep->str, rep->len);
    } else {
      char why[120], refused[160];
      if (proxy.port && dl_proxypool_pin(ctx->pool, live_id, &proxy, why, sizeof why) < 0) {
        /* never captured without the proxy its assignment names: no silent fall-back to the
         * rotation or to a direct connection; the room's status says why */
        ctx->st.config_errors++;
        snprintf(refused, sizeof refused, "its assignment proxy cannot be used: %s", why);
        dl_log(DL_LOG_ERROR, "assign_proxy", live_id, "not captured: %s", refused);
        dl_rooms_claimed(ctx->rooms, live_id, profile, rep->str, rep->len, refused);
      } else {
        dl_rooms_claimed(ctx->rooms, live_id, profile, rep->str, rep->len, NULL);
      }
      memset(&proxy, 0, sizeof proxy); /* credentials: the pool holds its own copy */
    }
  } else if (rep->type == REDIS_REPLY_ERROR) {
    /* e.g. OOM refuses BLMOVE at once: try again in a second, not in a loop */
    unsigned supp = 0;
    if (dl_ratelimit_allow(&c->err_rl, dl_mono_ms(), 1, &supp))
      dl_log(DL_LOG_WARN, "claim_error", NULL, "%.200s (%u similar suppressed)", rep->str, supp);
    struct timeval tv = {DL_REDIS_RETRY_MS / 1000, (DL_REDIS_RETRY_MS % 1000) * 1000};
    evtimer_add(c->retry_ev, &tv);
    return;
  }
  if (ctx->draining) {
    if (ctx->maybe_done) ctx->maybe_done(ctx);
    return;
  }
  dl_claims_next(c);
}

void dl_claims_next(dl_claims *c) {
  dl_ctx *ctx = c->ctx;
  if (c->inflight || !c->registered || ctx->draining || !dl_redis_b_ready(ctx->redis)) return;
  if (dl_rooms_count(ctx->rooms) >= (size_t)ctx->cfg->max_rooms) return;
  char block[16];
  snprintf(block, sizeof block, "%d", DL_CLAIM_BLOCK_S);
  const char *argv[] = {"BLMOVE", ctx->key_assign, ctx->key_claims, "RIGHT", "LEFT", block};
  if (dl_redis_claim_call(ctx->redis, 6, argv, NULL, DL_CLAIM_BLOCK_S * 1000, on_claim, c) == DL_EOK) c->inflight = 1;
}

static void on_client_id(void *priv, const redisReply *rep) {
  dl_claims *c = priv;
  if (rep && rep->type == REDIS_REPLY_INTEGER) c->client_id = rep->integer;
}

void dl_claims_connected(dl_claims *c) {
  const char *argv[] = {"CLIENT", "ID"};
  dl_redis_claim_call(c->ctx->redis, 2, argv, NULL, 0, on_client_id, c);
  dl_claims_next(c);
}

void dl_claims_disconnected(dl_claims *c) {
  c->inflight = 0;
  c->client_id = 0;
}

void dl_claims_drain(dl_claims *c) {
  dl_ctx *ctx = c->ctx;
  if (c->inflight && c->client_id && dl_redis_w_ready(ctx->redis)) {
    /* ordered before every hand-back on the write connection */
    char id[32];
    snprintf(id, sizeof id, "%lld", c->client_id);
    const char *argv[] = {"CLIENT", "UNBLOCK", id};
    push_plain(ctx, 3, argv, NULL);
  }
}

/* ---------- the registry ---------- */

static void on_registered(void *priv, const redisReply *rep) {
  dl_claims *c = priv;
  if (!rep || rep->type != REDIS_REPLY_INTEGER || c->registered) return;
  c->registered = 1;
  dl_claims_next(c);
}

static void heartbeat(dl_claims *c) {
  dl_ctx *ctx = c->ctx;
  char now[24], rooms[24], cap[24], pid[24], started[24], host[256] = "", ttl[24];
  snprintf(now, sizeof now, "%lld", (long long)dl_now_ms());
  snprintf(rooms, sizeof rooms, "%zu", dl_rooms_count(ctx->rooms));
  snprintf(cap, sizeof cap, "%lld", ctx->cfg->max_rooms);
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  snprintf(started, sizeof started, "%lld", (long long)ctx->started_ms);
  snprintf(ttl, sizeof ttl, "%d", DL_WORKER_TTL_MS);
  gethostname(host, sizeof host - 1);
  const char *h[] = {"HSET", ctx->key_worker, "worker", ctx->cfg->worker_id, "host", host, "pid", pid, "version",
                     DYLIVE_VERSION, "rooms", rooms, "capacity", cap, "started_ms", started, "heartbeat_ms", now,
                     "state", ctx->draining ? "draining" : "running"};
  dl_redis_call(ctx->redis, ctx->key_worker, (int)(sizeof h / sizeof *h), h, NULL, NULL, NULL);
  const char *e[] = {"PEXPIRE", ctx->key_worker, ttl};
  dl_redis_call(ctx->redis, ctx->key_worker, 3, e, NULL, NULL, NULL);
  const char *z[] = {"ZADD", ctx->key_workers, now, ctx->cfg->worker_id};
  dl_redis_call(ctx->redis, ctx->key_workers, 4, z, NULL, on_registered, c);
}

typedef struct dead_check {
  dl_claims *c;
  char id[DL_WORKER_ID_MAX + 1];
} dead_check;

/* Workers whose registry key expired are dead: their claims go back to the head of the queue.
 * Every worker does this; it is idempotent (LMOVE is atomic per element). */
static void on_dead_check(void *priv, const redisReply *rep) {
  dead_check *d = priv;
  dl_claims *c = d->c;
  dl_ctx *ctx = c->ctx;
  if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
    char claims[DL_KEY_MAX];
    if (dl_keys_claims(claims, sizeof claims, ctx->cfg->prefix, d->id) > 0) {
      const char *keys[] = {claims, ctx->key_assign};
      dl_redis_script(ctx->redis, DL_LUA_REQUEUE, 2, keys, 0, NULL, NULL, NULL);
      const char *zr[] = {"ZREM", ctx->key_workers, d->id};
      dl_redis_call(ctx->redis, ctx->key_workers, 3, zr, NULL, NULL, NULL);
      ctx->st.requeued++;
      dl_log(DL_LOG_WARN, "worker_dead", NULL, "worker %s stopped heartbeating; its rooms go back to %s", d->id,
             ctx->key_assign);
    }
  }
  free(d);
}

static void on_stale_workers(void *priv, const redisReply *rep) {
  dl_claims *c = priv;
  dl_ctx *ctx = c->ctx;
  if (!rep || rep->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i < rep->elements; i++) {
    const redisReply *e = rep->element[i];
    if (e->type != REDIS_REPLY_STRING || !e->len || e->len > DL_WORKER_ID_MAX || !strcmp(e->str, ctx->cfg->worker_id))
      continue;
    char key[DL_KEY_MAX];
    if (dl_keys_worker(key, sizeof key, ctx->cfg->prefix, e->str) < 0) continue;
    dead_check *d = calloc(1, sizeof *d);
    if (!d) continue;
    d->c = c;
    memcpy(d->id, e->str, e->len);
    const char *argv[] = {"EXISTS", key};
    if (dl_redis_call(ctx->redis, key, 2, argv, NULL, on_dead_check, d) != DL_EOK) free(d);
  }
}

static void reconcile(dl_claims *c) {
  dl_ctx *ctx = c->ctx;
  int64_t now = dl_now_ms();
  if (now - c->last_reconcile_ms < DL_RECONCILE_MS) return;
  /* After a Redis outage every worker's key has expired; judge nobody dead until the live ones
   * have had a full TTL to re-register (we may have been the one cut off). */
  if (!c->w_up_since_ms || dl_mono_ms() - c->w_up_since_ms < DL_WORKER_TTL_MS) return;
  c->last_reconcile_ms = now;
  char stale[32];
  snprintf(stale, sizeof stale, "(%lld", (long long)(now - DL_WORKER_TTL_MS));
  const char *argv[] = {"ZRANGEBYSCORE", ctx->key_workers, "-inf", stale};
  dl_redis_call(ctx->redis, ctx->key_workers, 4, argv, NULL, on_stale_workers, c);
}

static void on_backlog(void *priv, const redisReply *rep) {
  dl_claims *c = priv;
  if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) c->ctx->st.assign_backlog = (uint64_t)rep->integer;
}

void dl_claims_poll(dl_claims *c) {
  dl_ctx *ctx = c->ctx;
  if (!dl_redis_w_ready(ctx->redis)) {
    c->w_up_since_ms = 0;
    return;
  }
  if (!c->w_up_since_ms) c->w_up_since_ms = dl_mono_ms();
  if (c->leaving) return;
  heartbeat(c);
  reconcile(c);
  const char *argv[] = {"LLEN", ctx->key_assign};
  dl_redis_call(ctx->redis, ctx->key_assign, 2, argv, NULL, on_backlog, c);
  dl_claims_next(c);
}

static void on_left(void *priv, const redisReply *rep) {
  dl_claims *c = priv;
  (void)rep;
  void (*done)(dl_ctx *) = c->leave_done;
  c->leave_done = NULL;
  if (done) done(c->ctx);
}

void dl_claims_leave(dl_claims *c, void (*done)(dl_ctx *)) {
  dl_ctx *ctx = c->ctx;
  if (c->leaving) return;
  c->leaving = 1;
  c->leave_done = done;
  const char *d[] = {"DEL", ctx->key_worker};
  const char *z[] = {"ZREM", ctx->key_workers, ctx->cfg->worker_id};
  /* without Redis there is nobody to tell: the registry key expires on its own */
  if (dl_redis_call(ctx->redis, ctx->key_worker, 2, d, NULL, NULL, NULL) != DL_EOK ||
      dl_redis_call(ctx->redis, ctx->key_workers, 3, z, NULL, on_left, c) != DL_EOK)
    on_left(c, NULL);
}
