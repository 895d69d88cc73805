/* dl_redis — the worker's connections to Redis, whatever the topology (CONTRACT §2.1):
 *
 *   one node (redis://, rediss://, unix://): a write connection and a claims connection;
 *   Sentinel (redis-sentinel://…#master): the primary asked from the sentinels in turn, confirmed
 *     with ROLE, asked again after a disconnect or a READONLY (a failover costs a pause);
 *   Cluster (redis-cluster://): the slot map from CLUSTER SLOTS (any seed may be down), a write
 *     connection per primary, commands routed by their key's slot, MOVED refreshes the map, ASK
 *     sends one command with ASKING to the importing node, the claims connection pinned to the
 *     node of P:assign's slot, scripts loaded on every primary.
 *
 * Every write connection loads the scripts before it counts as ready. Reconnects pace themselves
 * (1 s doubling to 30 s) and say so once, then once a minute. TLS verification is always on. The
 * password comes from the URL, DYLIVE_REDIS_PASSWORD or DYLIVE_REDIS_PASSWORD_FILE and is never
 * logged. Callers name the key a command is about (`route`: a key or "{tag}"); on one node and
 * with Sentinel it is ignored. */
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
  void (*w_ready)(void *ud);   /* a write connection is up and has the scripts */
  void (*w_down)(void *ud);    /* a write connection was lost (what it had in flight is retried) */
  void (*b_ready)(void *ud);   /* the claims connection is up */
  void (*b_down)(void *ud);
  void *ud;
} dl_redis_hooks;

typedef struct dl_redis_stats {
  uint64_t reconnects;         /* write connection losses */
  uint64_t errors[DL_RERR__COUNT];
  int connected;               /* every write connection up */
} dl_redis_stats;

/* Checks the URL and TLS files (why on failure: exit 2 material). claims_route is the key the
 * claims connection serves (P:assign: on a Cluster it goes to that slot's node). */
dl_redis *dl_redis_new(struct event_base *base, const dl_config *cfg, const char *claims_route,
                       const dl_redis_hooks *h, char *why, size_t why_cap);
void dl_redis_start(dl_redis *r);
void dl_redis_free(dl_redis *r);

/* Every write connection (every primary of a Cluster) is up. */
int dl_redis_w_ready(const dl_redis *r);
int dl_redis_b_ready(const dl_redis *r);
const char *dl_redis_sha(const dl_redis *r, dl_lua_script s);

/* On the write connection of the route's node. DL_ECLOSED when it is not ready (no callback). */
dl_err dl_redis_call(dl_redis *r, const char *route, int argc, const char *const *argv, const size_t *lens,
                     dl_redis_cb cb, void *priv);
/* EVALSHA of an embedded script: keys then args (routed by the first key). */
dl_err dl_redis_script(dl_redis *r, dl_lua_script s, int nkeys, const char *const *keys, int nargs,
                       const char *const *args, dl_redis_cb cb, void *priv);
/* Pre-encoded RESP of one command (the outbox's). ask: "host:port" of an ASK redirection (sent
 * there with ASKING), or NULL. *node says where it went (for WAIT). */
dl_err dl_redis_send(dl_redis *r, const char *route, const char *ask, const void *resp, size_t len, dl_redis_cb cb,
                     void *priv, int *node);
/* A command on one node's write connection (WAIT). */
dl_err dl_redis_call_node(dl_redis *r, int node, int argc, const char *const *argv, dl_redis_cb cb, void *priv);
/* On the claims connection; block_ms extends the command's deadline. */
dl_err dl_redis_claim_call(dl_redis *r, int argc, const char *const *argv, const size_t *lens, int64_t block_ms,
                           dl_redis_cb cb, void *priv);
/* Counts an error reply by kind (for dylive_redis_errors_total). */
void dl_redis_count_error(dl_redis *r, dl_rerr kind);
const dl_redis_stats *dl_redis_stats_get(const dl_redis *r);
/* 1 on a Cluster (room writes share a script call only within one slot). */
int dl_redis_cluster(const dl_redis *r);
/* "host:port", "tls://host:port", "sentinel <master>", "cluster of N" (never the password). */
const char *dl_redis_where(const dl_redis *r);

#endif
