#include "dl_lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_limits.h"
#include "dl_redis.h"

typedef struct call {
  dl_ctx *ctx;
  dl_lease_cb cb;
  char live_id[64];
} call;

/* Both scripts answer a room with {integer, string}; a reply of another shape is never taken
 * for a lease. */
static int lease_reply(const redisReply *r) {
  return r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
         r->element[1]->type == REDIS_REPLY_STRING;
}

static void on_acquired(void *priv, const redisReply *r) {
  call *c = priv;
  dl_lease_result res;
  memset(&res, 0, sizeof res);
  if (!r || r->type == REDIS_REPLY_ERROR) {
    res.failed = 1;
    snprintf(res.why, sizeof res.why, "%s", r ? r->str : "connection lost");
  } else if (!lease_reply(r)) {
    res.failed = 1;
    snprintf(res.why, sizeof res.why, "unexpected reply to the acquire script");
  } else {
    res.taken = r->element[0]->integer == 1;
    snprintf(res.token, sizeof res.token, "%s", r->element[1]->str);
  }
  c->cb(c->ctx, c->live_id, &res);
  free(c);
}

dl_err dl_lease_acquire(dl_ctx *ctx, const char *live_id, dl_lease_cb cb) {
  char k[4][DL_KEY_MAX], ttl[16];
  const dl_room_key which[4] = {DL_RK_LEASE, DL_RK_EPOCH, DL_RK_STATUS, DL_RK_EVENTS};
  for (int i = 0; i < 4; i++)
    if (dl_keys_room(k[i], sizeof k[i], ctx->cfg->prefix, live_id, which[i]) < 0) return DL_ELIMIT;
  snprintf(ttl, sizeof ttl, "%d", DL_LEASE_MS);
  call *c = calloc(1, sizeof *c);
  if (!c) return DL_ENOMEM;
  *c = (call){ctx, cb, ""};
  snprintf(c->live_id, sizeof c->live_id, "%s", live_id);
  const char *keys[] = {k[0], k[1], k[2], k[3]};
  const char *args[] = {ctx->cfg->worker_id, ttl};
  dl_err e = dl_redis_script(ctx->redis, DL_LUA_ACQUIRE, 4, keys, 2, args, on_acquired, c);
  if (e != DL_EOK) free(c);
  return e;
}

/* Renewals of several rooms in one renew.lua call: one reply per room. */
typedef struct renewals {
  dl_ctx *ctx;
  dl_lease_cb cb;
  size_t n;
  char (*ids)[64];
} renewals;

static void on_renewals(void *priv, const redisReply *r) {
  renewals *g = priv;
  int whole = !r || r->type != REDIS_REPLY_ARRAY || r->elements != g->n;
  for (size_t i = 0; i < g->n; i++) {
    const redisReply *e = whole ? r : r->element[i];
    dl_lease_result res;
    memset(&res, 0, sizeof res);
    if (!e || e->type == REDIS_REPLY_ERROR) {
      res.failed = 1;
      snprintf(res.why, sizeof res.why, "%s", e ? e->str : "connection lost");
    } else if (whole || !lease_reply(e)) {
      res.failed = 1;
      snprintf(res.why, sizeof res.why, "unexpected reply to the renew script");
    } else {
      res.taken = e->element[0]->integer == 1;
      res.lost = !res.taken;
      snprintf(res.desired, sizeof res.desired, "%s", e->element[1]->str);
    }
    g->cb(g->ctx, g->ids[i], &res);
  }
  free(g->ids);
  free(g);
}

dl_err dl_lease_renew_many(dl_ctx *ctx, size_t n, const char *const *live_ids, const char *const *tokens, dl_lease_cb cb) {
  if (n == 0 || n > DL_RENEW_GROUP_MAX) return DL_EINVAL;
  renewals *g = calloc(1, sizeof *g);
  char(*keys)[DL_KEY_MAX] = calloc(2 * n, sizeof *keys);
  const char **kp = calloc(2 * n, sizeof *kp), **ap = calloc(n + 1, sizeof *ap);
  dl_err e = DL_ENOMEM;
  if (!g || !keys || !kp || !ap || !(g->ids = calloc(n, sizeof *g->ids))) goto out;
  *g = (renewals){ctx, cb, n, g->ids};
  char ttl[16];
  snprintf(ttl, sizeof ttl, "%d", DL_LEASE_MS);
  ap[0] = ttl;
  e = DL_ELIMIT;
  for (size_t i = 0; i < n; i++) {
    if (dl_keys_room(keys[2 * i], DL_KEY_MAX, ctx->cfg->prefix, live_ids[i], DL_RK_LEASE) < 0 ||
        dl_keys_room(keys[2 * i + 1], DL_KEY_MAX, ctx->cfg->prefix, live_ids[i], DL_RK_STATUS) < 0)
      goto out;
    kp[2 * i] = keys[2 * i];
    kp[2 * i + 1] = keys[2 * i + 1];
    ap[i + 1] = tokens[i];
    snprintf(g->ids[i], sizeof g->ids[i], "%s", live_ids[i]);
  }
  e = dl_redis_script(ctx->redis, DL_LUA_RENEW, (int)(2 * n), kp, (int)n + 1, ap, on_renewals, g);
out:
  if (e != DL_EOK && g) {
    free(g->ids);
    free(g);
  }
  free(keys);
  free(kp);
  free(ap);
  return e;
}
