/* dl_writer — drains the outbox (connector/core/dl_outbox.h) into Redis: sends in order, turns
 * each reply into OK/RETRY/FENCED/GAP/FATAL, paces retries after error replies with a growing
 * pause (probing with the oldest write first, fluent-bit style), reloads the scripts on NOSCRIPT,
 * and hands every finished command, in order, to the `done` hook (the rooms act on it). */
#ifndef DL_WRITER_H
#define DL_WRITER_H

#include "dl_cmd.h"
#include "dl_outbox.h"
#include "dl_redis.h"

struct event_base;
typedef struct dl_writer dl_writer;

typedef struct dl_writer_hooks {
  /* c (its outcome in c->reply) is freed by the writer after the hook returns */
  void (*done)(void *ud, dl_cmd *c);
  void *ud;
} dl_writer_hooks;

typedef struct dl_writer_stats {
  uint64_t commands;       /* commands finished */
  uint64_t calls;          /* calls sent to Redis (room writes ready together share one) */
  uint64_t retries;        /* RETRY answers (error replies and lost connections) */
  uint64_t fatal;          /* FATAL answers */
  uint64_t fenced;         /* FENCED answers */
  uint64_t wait_short;     /* WAITs that came back with fewer replicas than --redis-wait-replicas */
} dl_writer_stats;

/* Takes ownership of ob. claims_route: where CLIENT UNBLOCK goes (the claims connection's key).
 * wait_replicas > 0: a write is done only once a WAIT says that many replicas have it. */
dl_writer *dl_writer_new(struct event_base *base, dl_redis *r, dl_outbox *ob, const dl_cmd_env *env,
                         const char *claims_route, long long wait_replicas, const dl_writer_hooks *h);
void dl_writer_free(dl_writer *w);

void dl_writer_push(dl_writer *w, dl_cmd *c);
/* Corked, pushes are only queued; uncorking sends them, room writes grouped into shared calls
 * (the rooms' flush corks around its pushes). */
void dl_writer_cork(dl_writer *w, int on);
/* A write connection was lost: with --redis-wait-replicas, what it applied but no WAIT confirmed
 * is sent again (the primary may be gone with it). */
void dl_writer_on_down(dl_writer *w);
/* Sends what can be sent (call when the connection comes up). */
void dl_writer_pump(dl_writer *w);
int dl_writer_accepting(const dl_writer *w, uint64_t bytes, size_t cmds); /* dl_outbox_accepting */
size_t dl_writer_pending(const dl_writer *w);
const dl_outbox *dl_writer_outbox(const dl_writer *w);
const dl_writer_stats *dl_writer_stats_get(const dl_writer *w);
/* The time bound of the streams (XTRIM MINID) moves with the clock. */
void dl_writer_set_minid(dl_writer *w, long long minid_ms);

#endif
