/* dl_redis — the worker's connections to Redis: one for writes and short calls (scripts are loaded
 * on it before it counts as ready), one for the blocking claims (BLMOVE). Reconnects with a
 * growing pause and one summary line a minute while Redis stays away; TLS (rediss://) with
 * verification always on; the password from the URL, DYLIVE_REDIS_PASSWORD or
 * DYLIVE_REDIS_PASSWORD_FILE, never logged. Every call names a key it is about (`route`), so
 * the routing of a Cluster can live here without touching the callers. */
#ifndef DL_REDIS_H
#define DL_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_config.h"
#include "dl_err.h"
#include "dl_lua.h"
#include "dl_outbox.h"

struct event_base;
typedef struct dl_redis dl_redis;

/* A reply, or NULL when the connection was lost before it came. */
typedef void (*dl_redis_cb)(void *priv, const redisReply *r);

typedef struct dl_redis_hooks {
  void (*w_ready)(void *ud);   /* the write connection is up and has the scripts */
  void (*w_down)(void *ud);
  void (*b_ready)(void *ud);   /* the claims connection is up */
  void (*b_down)(void *ud);
  void *ud;
} dl_redis_hooks;

typedef struct dl_redis_stats {
  uint64_t reconnects;         /* write connection losses */
  uint64_t errors[DL_RERR__COUNT];
  int connected;
} dl_redis_stats;

/* Checks the URL and TLS files (why on failure: exit 2 material). */
dl_redis *dl_redis_new(struct event_base *base, const dl_config *cfg, const dl_redis_hooks *h, char *why,
                       size_t why_cap);
void dl_redis_start(dl_redis *r);
void dl_redis_free(dl_redis *r);

int dl_redis_w_ready(const dl_redis *r);
int dl_redis_b_ready(const dl_redis *r);
const char *dl_redis_sha(const dl_redis *r, dl_lua_script s);

/* On the write connection. DL_ECLOSED when it is not ready (no callback then). */
dl_err dl_redis_call(dl_redis *r, const char *route, int argc, const char *const *argv, const size_t *lens,
                     dl_redis_cb cb, void *priv);
/* EVALSHA of an embedded script: keys then args. */
dl_err dl_redis_script(dl_redis *r, dl_lua_script s, int nkeys, const char *const *keys, int nargs,
                       const char *const *args, dl_redis_cb cb, void *priv);
/* Pre-encoded RESP of one command (the outbox's). */
dl_err dl_redis_send(dl_redis *r, const char *route, const void *resp, size_t len, dl_redis_cb cb, void *priv);
/* On the claims connection; block_ms extends the command's deadline. */
dl_err dl_redis_claim_call(dl_redis *r, int argc, const char *const *argv, const size_t *lens, int64_t block_ms,
                           dl_redis_cb cb, void *priv);
/* NOSCRIPT seen (a restarted or flushed Redis): load the scripts again before anything else. */
void dl_redis_reload_scripts(dl_redis *r);
/* Counts an error reply by kind (for dylive_redis_errors_total). */
void dl_redis_count_error(dl_redis *r, dl_rerr kind);
const dl_redis_stats *dl_redis_stats_get(const dl_redis *r);
/* "host:port" (never the password). */
const char *dl_redis_where(const dl_redis *r);

#endif
