/* dl_ctx — the wiring of one worker's control thread: what each module reaches of the others
 * (like redis's `server`). Built and torn down by dl_worker.c; the modules keep their own state
 * opaque and only share these pointers, the settings, and the counters below. */
#ifndef DL_CTX_H
#define DL_CTX_H

#include <stdint.h>

#include "dl_config.h"
#include "dl_evtypes.h"
#include "dl_hist.h"
#include "dl_keys.h"

struct event_base;
struct dl_redis;
struct dl_writer;
struct dl_ingest;
struct dl_resolver;
struct dl_queue;
struct dl_rooms;
struct dl_claims;
struct dl_proxypool;

/* Counters of the control thread (the ingest thread has its own, dl_ingest_stats). */
typedef struct dl_ctl_stats {
  uint64_t events_dup, claims, bad_assignments, resolve_errors, batches, lost_rooms, requeued, fatal_writes,
      orphan_events, config_errors, silent_total, risk_errors;
  uint64_t written_by_type[DL_EVT__COUNT];
  dl_hist write_latency;   /* frame received → its write acknowledged */
  dl_hist event_delay;     /* write time − event ts_ms */
  uint64_t assign_backlog; /* LLEN P:assign, sampled every poll */
  uint64_t linger_ms;      /* the linger last armed: --flush-ms, or --flush-max-ms while rooms trickle */
} dl_ctl_stats;

typedef struct dl_ctx {
  const dl_config *cfg;
  struct event_base *base;
  struct dl_redis *redis;
  struct dl_writer *writer;
  struct dl_ingest *ingest;
  struct dl_resolver *resolver;
  struct dl_queue *inq, *resq;
  struct dl_rooms *rooms;
  struct dl_claims *claims;
  struct dl_proxypool *pool;   /* per-room egress proxies (--proxy-file, assignments); both threads use it */
  int draining;
  int64_t started_ms;
  char key_assign[DL_KEY_MAX], key_claims[DL_KEY_MAX], key_worker[DL_KEY_MAX], key_workers[DL_KEY_MAX],
      key_rooms[DL_KEY_MAX];
  dl_ctl_stats st;
  /* the drain is complete once rooms, claims and writes say so: the worker re-checks */
  void (*maybe_done)(struct dl_ctx *ctx);
} dl_ctx;

#endif
