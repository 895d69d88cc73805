#include "dl_lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_limits.h"
#include "dl_redis.h"

typedef struct call {
  dl_ctx *ctx;
  dl_lease_cb cb;
  int renew;
  char live_id[64];
} call;

static void on_reply(void *priv, const redisReply *r) {
  call *c = priv;
  dl_lease_result res;
  memset(&res, 0, sizeof res);
  if (!r || r->type == REDIS_REPLY_ERROR) {
    res.failed = 1;
    snprintf(res.why, sizeof res.why, "%s", r ? r->str : "connection lost");
  } else if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
             r->element[1]->type != REDIS_REPLY_STRING) {
    res.failed = 1; /* a reply of another shape is never taken for a lease */
    snprintf(res.why, sizeof res.why, "unexpected reply to the %s script", c->renew ? "renew" : "acquire");
  } else if (c->renew) {
    res.taken = r->element[0]->integer == 1;
    res.lost = !res.taken;
    snprintf(res.desired, sizeof res.desired, "%s", r->element[1]->str);
  } else {
    res.taken = r->element[0]->integer == 1;
    snprintf(res.token, sizeof res.token, "%s", r->element[1]->str);
  }
  c->cb(c->ctx, c->live_id, &res);
  free(c);
}

static dl_err call_script(dl_ctx *ctx, const char *live_id, dl_lease_cb cb, int renew, const char *token) {
  char k[4][DL_KEY_MAX], ttl[16];
  dl_room_key which[4] = {DL_RK_LEASE, renew ? DL_RK_STATUS : DL_RK_EPOCH, DL_RK_STATUS, DL_RK_EVENTS};
  for (int i = 0; i < 4; i++)
    if (dl_keys_room(k[i], sizeof k[i], ctx->cfg->prefix, live_id, which[i]) < 0) return DL_ELIMIT;
  snprintf(ttl, sizeof ttl, "%d", DL_LEASE_MS);
  call *c = calloc(1, sizeof *c);
  if (!c) return DL_ENOMEM;
  *c = (call){ctx, cb, renew, ""};
  snprintf(c->live_id, sizeof c->live_id, "%s", live_id);
  const char *keys[] = {k[0], k[1], k[2], k[3]};
  const char *args[] = {renew ? token : ctx->cfg->worker_id, ttl};
  dl_err e = dl_redis_script(ctx->redis, renew ? DL_LUA_RENEW : DL_LUA_ACQUIRE, renew ? 2 : 4, keys, 2, args,
                             on_reply, c);
  if (e != DL_EOK) free(c);
  return e;
}

dl_err dl_lease_acquire(dl_ctx *ctx, const char *live_id, dl_lease_cb cb) {
  return call_script(ctx, live_id, cb, 0, NULL);
}

dl_err dl_lease_renew(dl_ctx *ctx, const char *live_id, const char *token, dl_lease_cb cb) {
  return call_script(ctx, live_id, cb, 1, token);
}
