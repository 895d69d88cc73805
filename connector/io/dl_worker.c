/* dl_worker — the wiring of one worker's control thread: it builds the modules (Redis, writer,
 * rooms, claims, admin, ingest and resolver threads), connects their hooks, runs the timers and
 * the drain, and takes everything down again. The work itself lives in the modules. */
#include "dl_worker.h"

#include <event2/event.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "dl_admin.h"
#include "dl_claims.h"
#include "dl_ctx.h"
#include "dl_ingest.h"
#include "dl_limits.h"
#include "dl_log.h"
#include "dl_proxy.h"
#include "dl_proxypool.h"
#include "dl_redis.h"
#include "dl_reply.h"
#include "dl_resolve.h"
#include "dl_room.h"
#include "dl_spool.h"
#include "dl_writer.h"

#ifndef DYLIVE_VERSION
#define DYLIVE_VERSION "0.1.0"
#endif

typedef struct worker {
  dl_ctx ctx;
  dl_spool *spool;
  char spool_dir[DL_SPOOL_PATH_MAX];
  /* orphans: dead workers' spools in our directory, replayed one after the other */
  char orphans[DL_SPOOL_ORPHANS_MAX][DL_SPOOL_PATH_MAX];
  size_t n_orphans, next_orphan;
  dl_spool *orphan;
  size_t orphan_outstanding;
  int wake_fd;
  int flush_fd;     /* --flush-ms: a timerfd of its own (precise; the loop's other timers need not be) */
  int flush_armed;
  struct event *wake_ev, *poll_ev, *sig_term, *sig_int, *drain_ev, *flush_ev, *decay_ev;
  struct event *ingest_ev, *ingest_tick, *ingest_again; /* --threads 1: the WebSockets' loop in ours */
  dl_admin *admin;
  int64_t drain_deadline;
  int done;
  /* frames taken since the rooms last flushed: their writes are not in the outbox yet */
  uint64_t unflushed_bytes;
  size_t unflushed_frames;
} worker;

static worker *of(dl_ctx *ctx) { return (worker *)ctx; } /* ctx is the first member */

static const struct timeval zero_tv = {0, 0}; /* an event added with it runs after the next poll */

/* The most one frame adds to the write path: its events as JSON are at most a few times its
 * bytes, in one room write. */
static uint64_t frame_write_max(const dl_ctx *ctx) { return (uint64_t)ctx->cfg->max_frame_bytes * DL_SPOOL_HEADROOM; }

/* What a taken frame will add to the outbox, in bytes: its events (4 bulk strings each, headers
 * included) and the room write around them (status pairs, the spool record's fields). */
static uint64_t frame_write_bytes(const dl_in_msg *m) {
  uint64_t n = 1024;
  if (m->kind != DL_IN_FRAME) return 0;
  for (size_t i = 0; i < m->frame.n_events; i++) {
    const dl_event *e = &m->frame.events[i];
    n += strlen(e->type) + strlen(e->msg_id) + e->json_len + 24 + 64;
  }
  return n;
}

/* How many of `want` frames the write path can take now: as many as it can hold at their
 * largest, on top of what was taken since the last flush (at its real size: it is not in the
 * outbox yet); failing even one, one while any room is left. So a pass takes up to `want`,
 * fewer as the tiers near their caps, and a tier passes its cap by one frame at most. */
static size_t frames_fit(const worker *wk, size_t want) {
  const dl_ctx *ctx = &wk->ctx;
  while (want > 1 && !dl_writer_accepting(ctx->writer, wk->unflushed_bytes + want * frame_write_max(ctx),
                                          wk->unflushed_frames + want))
    want /= 2;
  if (want == 1 && !dl_writer_accepting(ctx->writer, wk->unflushed_bytes + 1, wk->unflushed_frames + 1)) want = 0;
  return want;
}

static void rooms_flush(worker *wk) {
  dl_rooms_flush(wk->ctx.rooms);
  wk->unflushed_bytes = 0;
  wk->unflushed_frames = 0;
}

/* ---------- dead workers' spools ---------- */

static void orphan_feed(worker *wk) {
  dl_ctx *ctx = &wk->ctx;
  while (!ctx->draining) {
    if (!wk->orphan) {
      if (wk->next_orphan >= wk->n_orphans) return;
      char why[300];
      const char *path = wk->orphans[wk->next_orphan++];
      wk->orphan = dl_spool_adopt(path, why, sizeof why);
      if (!wk->orphan) {
        dl_log(DL_LOG_WARN, "spool_orphan", NULL, "not replaying %s: %s", path, why);
        continue;
      }
      dl_log(DL_LOG_INFO, "spool_orphan", NULL, "replaying %s (%llu bytes) left by a worker that stopped", path,
             (unsigned long long)dl_spool_pending_bytes(wk->orphan));
    }
    if (!dl_writer_accepting(ctx->writer, wk->unflushed_bytes + frame_write_max(ctx), wk->unflushed_frames + 1)) return;
    void *rec = NULL;
    uint32_t n = 0;
    dl_err e = dl_spool_next(wk->orphan, &rec, &n);
    if (e == DL_ENOTFOUND) {
      if (wk->orphan_outstanding) return; /* removed once everything in it is written */
      dl_log(DL_LOG_INFO, "spool_orphan", NULL, "replayed %s", dl_spool_path(wk->orphan));
      dl_spool_close(wk->orphan);
      wk->orphan = NULL;
      continue;
    }
    if (e != DL_EOK) {
      if (e == DL_EPROTO) continue; /* a bad record: skipped (counted by the spool) */
      return;
    }
    dl_cmd *c = NULL;
    char why[160];
    if (dl_cmd_from_record(rec, n, ctx->cfg->prefix, &c, why, sizeof why) != DL_EOK) {
      dl_log(DL_LOG_WARN, "spool_orphan", NULL, "skipping a record of %s: %s", dl_spool_path(wk->orphan), why);
    } else if (c->kind == DL_CMD_PLAIN || !c->nevents) {
      /* the dead worker's pool and status commands: its successor's business, not ours */
      dl_cmd_free(c);
    } else {
      dl_cmd_to_orphan(c);
      wk->orphan_outstanding++;
      dl_writer_push(ctx->writer, c);
    }
    free(rec);
  }
}

/* ---------- the drain ---------- */

static void drained(dl_ctx *ctx) {
  worker *wk = of(ctx);
  if (wk->done) return;
  wk->done = 1;
  dl_log(DL_LOG_INFO, "drained", NULL, "every room handed back and every event written");
  event_base_loopbreak(ctx->base);
}

static void maybe_done(dl_ctx *ctx) {
  worker *wk = of(ctx);
  if (!ctx->draining || wk->done) return;
  size_t rooms = dl_rooms_count(ctx->rooms), pending = dl_writer_pending(ctx->writer);
  /* a claim still blocked could take a room we hand back: wait for its (cut short) reply */
  if (!rooms && !pending && !dl_claims_inflight(ctx->claims)) {
    dl_claims_leave(ctx->claims, drained); /* without Redis: at once */
    return;
  }
  if (dl_mono_ms() > wk->drain_deadline) {
    wk->done = 1;
    dl_log(DL_LOG_ERROR, "drain_timeout", NULL, "drain deadline passed with %zu rooms and %zu writes pending", rooms,
           pending);
    event_base_loopbreak(ctx->base);
  }
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  maybe_done(arg);
}

static void take_frames(worker *wk);

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  worker *wk = arg;
  dl_ctx *ctx = &wk->ctx;
  if (ctx->draining) return;
  dl_log(DL_LOG_INFO, "draining", NULL, "signal %d: handing rooms back and flushing", (int)sig);
  ctx->draining = 1;
  wk->drain_deadline = dl_mono_ms() + DL_DRAIN_DEADLINE_MS;
  dl_claims_drain(ctx->claims);
  take_frames(wk); /* what a --flush-ms linger was holding back */
  rooms_flush(wk);
  dl_rooms_drain(ctx->rooms);
  dl_claims_poll(ctx->claims); /* the registry says "draining" */
  wk->drain_ev = event_new(ctx->base, -1, EV_PERSIST, on_drain_tick, ctx);
  struct timeval tv = {0, 100 * 1000};
  event_add(wk->drain_ev, &tv);
  maybe_done(ctx);
}

/* ---------- frames and results from the other threads ---------- */

static void drain_results(worker *wk) {
  dl_ctx *ctx = &wk->ctx;
  void *items[DL_DRAIN_BATCH];
  size_t n;
  while ((n = dl_queue_pop(ctx->resq, items, DL_DRAIN_BATCH)) > 0)
    for (size_t i = 0; i < n; i++) {
      dl_rooms_on_resolved(ctx->rooms, items[i]);
      dl_resolve_result_free(items[i]);
    }
}

/* Frames only while the write path can hold them; ingest's queue then pauses the sockets. Without
 * a linger, each pass's frames are flushed at its end (one write per room per pass). */
static void take_frames(worker *wk) {
  dl_ctx *ctx = &wk->ctx;
  void *items[DL_DRAIN_BATCH];
  size_t n, pass = 0;
  for (;;) {
    size_t want = frames_fit(wk, DL_DRAIN_BATCH - pass);
    n = want ? dl_queue_pop(ctx->inq, items, want) : 0;
    for (size_t i = 0; i < n; i++) {
      wk->unflushed_bytes += frame_write_bytes(items[i]);
      wk->unflushed_frames++;
      dl_rooms_on_ingest(ctx->rooms, items[i]);
      dl_in_msg_free(items[i]);
    }
    pass += n;
    if (n && pass < DL_DRAIN_BATCH) continue;
    /* the pass is over: what it took, per room, one write each (then the tiers are measured again) */
    int flushed = !ctx->cfg->flush_ms && pass;
    if (flushed) rooms_flush(wk);
    if (!n && !flushed) break;
    pass = 0;
  }
  /* one thread: paused reads resume as soon as there is room (their sockets' changes need a pass) */
  if (wk->ingest_again && dl_ingest_flow(ctx->ingest)) event_add(wk->ingest_again, &zero_tv);
}

/* --flush-ms: the first frame since the last flush starts the clock. Frames wait in ingest's
 * queue until it runs out (no wake-up per frame: ingest signals only the queue's empty →
 * non-empty edge), then every room's frames become one write each, and every room's write goes
 * in one call (dl_writer). */
static void linger(worker *wk) {
  const dl_ctx *ctx = &wk->ctx;
  if (wk->flush_armed || (!wk->unflushed_frames && !dl_queue_len(ctx->inq))) return;
  /* --flush-max-ms while every room trickles: more rooms in a call, no frame held back by more
   * than a tenth of its room's frame interval */
  long long ms = ctx->cfg->flush_ms;
  if (ctx->cfg->flush_max_ms > ms && dl_mono_us() >= dl_rooms_fast_until_us(ctx->rooms)) ms = ctx->cfg->flush_max_ms;
  wk->ctx.st.linger_ms = (uint64_t)ms;
  struct itimerspec its = {{0, 0}, {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L}};
  if (timerfd_settime(wk->flush_fd, 0, &its, NULL) == 0) wk->flush_armed = 1;
}

static void drain_queues(worker *wk) {
  drain_results(wk);
  if (wk->flush_ev) { /* exists exactly when --flush-ms > 0 */
    linger(wk);
  } else {
    take_frames(wk);
    rooms_flush(wk);
  }
  orphan_feed(wk);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  uint64_t v;
  ssize_t rd = read(fd, &v, sizeof v);
  (void)rd;
  drain_queues(arg);
}

/* The --flush-ms clock ran out: a room's events of the period go in one write, and the writes of
 * every room that had some in one call (fewer, larger writes when many rooms trickle events; the
 * price is up to flush-ms of latency). One-shot: an idle worker never wakes. */
static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  worker *wk = arg;
  uint64_t n;
  ssize_t rd = read(fd, &n, sizeof n);
  (void)rd;
  wk->flush_armed = 0;
  take_frames(wk);
  rooms_flush(wk);
  linger(wk); /* frames the write path could not take yet: again at the next tick */
  orphan_feed(wk);
}

/* --threads 1: the events on the WebSockets' loop (freed before the ingest is) */
static void free_ingest_events(worker *wk) {
  struct event *evs[] = {wk->ingest_ev, wk->ingest_tick, wk->ingest_again};
  for (size_t i = 0; i < sizeof evs / sizeof *evs; i++)
    if (evs[i]) event_free(evs[i]);
  wk->ingest_ev = wk->ingest_tick = wk->ingest_again = NULL;
}

/* --threads 1: the WebSockets' sockets want service (tick: lws's timers too, every
 * DL_INGEST_SERVICE_MS); their frames go to the write side at once (no eventfd), and what lws still
 * has to do is served again after the next poll (a zero timeout: other events first). */
static void serve_ingest(worker *wk, int tick) {
  int again = dl_ingest_service(wk->ctx.ingest, tick);
  drain_queues(wk);
  if (again) event_add(wk->ingest_again, &zero_tv);
}

static void on_ingest(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  serve_ingest(arg, 0);
}

static void on_ingest_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  serve_ingest(arg, 1);
}

static void on_poll(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  worker *wk = arg;
  dl_ctx *ctx = &wk->ctx;
  if (ctx->cfg->stream_max_age > 0) dl_writer_set_minid(ctx->writer, dl_now_ms() - ctx->cfg->stream_max_age * 1000);
  dl_rooms_poll(ctx->rooms);
  dl_claims_poll(ctx->claims);
  drain_queues(wk); /* safety net: ingest wakes us only on the empty → non-empty edge */
}

/* --pool-keep-ms: what the pools kept and nobody took for a whole period is freed, and the heap
 * gives its free pages back (after a blasted room, a worker's RSS returns to what its rooms use). */
static void on_decay(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  (void)arg;
  size_t freed = dl_cmd_pool_decay() + dl_ingest_msg_pool_decay();
#ifdef __GLIBC__
  if (freed >= DL_POOL_TRIM_BYTES) malloc_trim(0);
#else
  (void)freed;
#endif
}

/* ---------- hooks ---------- */

static void on_w_ready(void *ud) {
  worker *wk = ud;
  dl_writer_pump(wk->ctx.writer);
  dl_claims_poll(wk->ctx.claims); /* register at once: claims wait for it */
  drain_queues(wk);
}

static void on_w_down(void *ud) {
  worker *wk = ud;
  dl_writer_on_down(wk->ctx.writer);
}

static void on_b_ready(void *ud) {
  worker *wk = ud;
  dl_claims_connected(wk->ctx.claims);
}

static void on_b_down(void *ud) {
  worker *wk = ud;
  dl_claims_disconnected(wk->ctx.claims);
  if (wk->ctx.draining) maybe_done(&wk->ctx);
}

static void on_written(void *ud, dl_cmd *c) {
  worker *wk = ud;
  dl_ctx *ctx = &wk->ctx;
  if (c->kind == DL_CMD_ORPHAN && wk->orphan_outstanding) wk->orphan_outstanding--;
  dl_rooms_on_done(ctx->rooms, c);
  if (ctx->draining) maybe_done(ctx);
}

/* ---------- set-up and tear-down ---------- */

static int open_spool(worker *wk, char *why, size_t cap) {
  const dl_config *cfg = wk->ctx.cfg;
  if (cfg->spool_max_bytes <= 0) return 0;
  const char *dir = cfg->spool_dir && *cfg->spool_dir ? cfg->spool_dir : getenv("STATE_DIRECTORY");
  if (!dir || !*dir) dir = "/var/tmp";
  if (dl_spool_private_dir(dir, wk->spool_dir, sizeof wk->spool_dir, why, cap) != DL_EOK) return -1;
  wk->n_orphans = dl_spool_orphans(wk->spool_dir, wk->orphans, DL_SPOOL_ORPHANS_MAX);
  char name[DL_WORKER_ID_MAX + 32];
  snprintf(name, sizeof name, "%s.%ld", cfg->worker_id, (long)getpid());
  wk->spool = dl_spool_create(wk->spool_dir, name, (uint64_t)cfg->spool_max_bytes, why, cap);
  return wk->spool ? 0 : -1;
}

int dl_worker_run(const dl_config *cfg) {
  worker *wk = calloc(1, sizeof *wk);
  if (!wk) return 1;
  dl_ctx *ctx = &wk->ctx;
  int rc = 0;
  char why[400] = "", ws_proxy[512], http_proxy[512];
  char *user_cookie = NULL;
  ctx->cfg = cfg;
  ctx->started_ms = dl_now_ms();
  ctx->maybe_done = maybe_done;
  wk->wake_fd = -1;
  wk->flush_fd = -1;
  const char *p = cfg->prefix;
  dl_keys_assign(ctx->key_assign, sizeof ctx->key_assign, p);
  dl_keys_claims(ctx->key_claims, sizeof ctx->key_claims, p, cfg->worker_id);
  dl_keys_worker(ctx->key_worker, sizeof ctx->key_worker, p, cfg->worker_id);
  dl_keys_workers(ctx->key_workers, sizeof ctx->key_workers, p);
  dl_keys_rooms(ctx->key_rooms, sizeof ctx->key_rooms, p);

  /* everything that can refuse the configuration (exit 2) comes first */
  if (dl_proxy_for(cfg->douyin_ws, cfg->proxy, ws_proxy, sizeof ws_proxy) != 0 ||
      dl_proxy_for(cfg->douyin_http, cfg->proxy, http_proxy, sizeof http_proxy) != 0) {
    fprintf(stderr, "dylive-connector: --proxy: proxy URL too long\n");
    rc = 2;
    goto out;
  }
  if (ws_proxy[0] && dl_proxy_is_socks(ws_proxy) && !(cfg->proxy_file && *cfg->proxy_file)) { /* the pool replaces it */
    /* never a silent bypass: the WebSocket would leave without the proxy */
    fprintf(stderr, "dylive-connector: --proxy: %s is a SOCKS proxy; this build's libwebsockets tunnels the "
                    "WebSocket only through HTTP CONNECT proxies (http://host:port)\n",
            cfg->proxy && *cfg->proxy ? "the proxy" : "the environment's proxy");
    rc = 2;
    goto out;
  }
  /* --proxy-file: the egress pool (a bad line exits 2 naming the line, never its credentials) */
  ctx->pool = dl_proxypool_new();
  if (!ctx->pool) {
    rc = 1;
    goto out;
  }
  if (cfg->proxy_file && *cfg->proxy_file) {
    if (cfg->proxy && *cfg->proxy) {
      fprintf(stderr, "dylive-connector: --proxy-file: give either --proxy or --proxy-file, not both\n");
      rc = 2;
      goto out;
    }
    if (dl_proxypool_load(ctx->pool, cfg->proxy_file, why, sizeof why) != DL_EOK) {
      fprintf(stderr, "dylive-connector: --proxy-file: %s\n", why);
      rc = 2;
      goto out;
    }
    ws_proxy[0] = http_proxy[0] = 0; /* the pool carries every room; the environment's proxy does not apply */
    dl_log(DL_LOG_INFO, "proxy_pool", NULL, "%zu proxies from --proxy-file", dl_proxypool_rotation(ctx->pool));
  }
  if (ws_proxy[0] || http_proxy[0])
    dl_log(DL_LOG_INFO, "proxy", NULL, "pages via %s, WebSocket via %s", http_proxy[0] ? "proxy" : "direct",
           ws_proxy[0] ? "proxy" : "direct"); /* the URLs may carry credentials: not logged */
  if (cfg->cookie_file && *cfg->cookie_file && !(user_cookie = dl_cookie_file_load(cfg->cookie_file, why, sizeof why))) {
    fprintf(stderr, "dylive-connector: --cookie-file: %s\n", why);
    rc = 2;
    goto out;
  }
  if (open_spool(wk, why, sizeof why) != 0) {
    fprintf(stderr, "dylive-connector: --spool-dir: %s\n", why);
    rc = 2;
    goto out;
  }
  /* The --flush-ms linger needs a precise timer (1-2 ms fired after ~4 ms with epoll_wait's
   * millisecond timeout on this kind of VM): a timerfd of its own, set once per flush. libevent's
   * precise timers would set theirs on every loop pass (a third of this thread's system calls at
   * 1000 rooms). */
  ctx->base = event_base_new();
  if (!ctx->base) {
    rc = 1;
    goto out;
  }
  dl_redis_hooks rh = {on_w_ready, on_w_down, on_b_ready, on_b_down, wk};
  ctx->redis = dl_redis_new(ctx->base, cfg, ctx->key_assign, &rh, why, sizeof why);
  if (!ctx->redis) {
    fprintf(stderr, "dylive-connector: --redis: %s\n", why);
    rc = 2;
    goto out;
  }
  wk->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (cfg->flush_ms > 0) wk->flush_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  /* frames up to --queue-max; state messages (a few per room) in a reserve above it */
  ctx->inq = dl_queue_new((size_t)cfg->queue_max, 4 * (size_t)cfg->max_rooms + 1024);
  ctx->resq = dl_queue_new((size_t)cfg->max_rooms + 1024, 0); /* at most one resolution per room */
  dl_cmd_pool_bound((size_t)cfg->buffer_max_bytes);
  dl_outbox_limits lim = {DL_OUTBOX_MAX, (size_t)cfg->buffer_max_bytes};
  dl_outbox *ob = dl_outbox_new(&lim, wk->spool, cfg->prefix);
  dl_cmd_env env = {cfg->prefix, dl_redis_sha(ctx->redis, DL_LUA_ROOM), dl_redis_sha(ctx->redis, DL_LUA_ORPHAN),
                    cfg->seen_max, DL_LEASE_MS, cfg->stream_maxlen,
                    cfg->stream_max_age > 0 ? dl_now_ms() - cfg->stream_max_age * 1000 : 0};
  dl_writer_hooks whk = {on_written, wk};
  ctx->writer = ob ? dl_writer_new(ctx->base, ctx->redis, ob, &env, ctx->key_assign, cfg->redis_wait_replicas, &whk)
                   : NULL;
  if (!ctx->writer) dl_outbox_free(ob);
  ctx->rooms = dl_rooms_new(ctx);
  ctx->claims = dl_claims_new(ctx);
  if (wk->wake_fd < 0 || (cfg->flush_ms > 0 && wk->flush_fd < 0) || !ctx->inq || !ctx->resq || !ctx->writer ||
      !ctx->rooms || !ctx->claims) {
    dl_log(DL_LOG_ERROR, "startup", NULL, "cannot allocate the event loop, queues or the write path");
    rc = 1;
    goto out;
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
  io.pool = ctx->pool;
  io.silence_ms = cfg->silence_timeout * 1000;
  io.event_loop = cfg->ws_event_loop;
  io.queue_max_bytes = (size_t)cfg->queue_max_bytes;
  ctx->ingest = dl_ingest_new(&io, ctx->inq, wk->wake_fd);
  dl_resolver_opts ro = {cfg->douyin_http, io.ca_file, cfg->user_agent, user_cookie, cfg->cookie_dir, http_proxy,
                         (double)cfg->http_rate, (double)cfg->http_burst, cfg->douyin_ws, ws_proxy[0] != 0,
                         ctx->pool};
  ctx->resolver = dl_resolver_new(&ro, ctx->resq, wk->wake_fd);
  int ingest_fd = cfg->threads == 1 && ctx->ingest ? dl_ingest_share(ctx->ingest) : -1;
  if (cfg->threads == 1 && ctx->ingest)
    dl_log(ingest_fd >= 0 ? DL_LOG_INFO : DL_LOG_WARN, "threads", NULL,
           ingest_fd >= 0 ? "one thread for the WebSockets and Redis (--threads 1)"
                          : "--threads 1: the WebSocket loop cannot be shared (it needs libev on epoll; see "
                            "ws_event_loop): the WebSockets get a thread of their own");
  if (ingest_fd >= 0) {
    struct timeval itv = {0, DL_INGEST_SERVICE_MS * 1000};
    wk->ingest_ev = event_new(ctx->base, ingest_fd, EV_READ | EV_PERSIST, on_ingest, wk);
    wk->ingest_tick = event_new(ctx->base, -1, EV_PERSIST, on_ingest_tick, wk);
    wk->ingest_again = event_new(ctx->base, -1, 0, on_ingest, wk);
    if (!wk->ingest_ev || !wk->ingest_tick || !wk->ingest_again || event_add(wk->ingest_ev, NULL) ||
        event_add(wk->ingest_tick, &itv))
      ingest_fd = -2;
  }
  if (!ctx->ingest || !ctx->resolver || ingest_fd == -2 || (ingest_fd == -1 && dl_ingest_start(ctx->ingest) != 0)) {
    dl_log(DL_LOG_ERROR, "startup", NULL, "cannot start the WebSocket or HTTP thread");
    rc = 1;
    goto out;
  }
  if (strcmp(cfg->admin, "off")) {
    wk->admin = dl_admin_new(ctx, cfg->admin, why, sizeof why);
    if (!wk->admin) {
      dl_log(DL_LOG_ERROR, "admin_bind", NULL, "%s (use --admin HOST:PORT or --admin off)", why);
      rc = 1;
      goto out;
    }
    dl_log(DL_LOG_INFO, "admin_listen", NULL, "admin on http://%s/metrics", cfg->admin);
  }
  wk->wake_ev = event_new(ctx->base, wk->wake_fd, EV_READ | EV_PERSIST, on_wake, wk);
  wk->poll_ev = event_new(ctx->base, -1, EV_PERSIST, on_poll, wk);
  wk->sig_term = evsignal_new(ctx->base, SIGTERM, on_signal, wk);
  wk->sig_int = evsignal_new(ctx->base, SIGINT, on_signal, wk);
  struct timeval ptv = {(time_t)(cfg->poll_ms / 1000), (suseconds_t)((cfg->poll_ms % 1000) * 1000)};
  event_add(wk->wake_ev, NULL);
  event_add(wk->poll_ev, &ptv);
  event_add(wk->sig_term, NULL);
  event_add(wk->sig_int, NULL);
  if (wk->flush_fd >= 0) {
    wk->flush_ev = event_new(ctx->base, wk->flush_fd, EV_READ | EV_PERSIST, on_flush, wk);
    event_add(wk->flush_ev, NULL);
  }
  if (cfg->pool_keep_ms > 0) {
    struct timeval ktv = {(time_t)(cfg->pool_keep_ms / 1000), (suseconds_t)((cfg->pool_keep_ms % 1000) * 1000)};
    wk->decay_ev = event_new(ctx->base, -1, EV_PERSIST, on_decay, wk);
    if (wk->decay_ev) event_add(wk->decay_ev, &ktv);
  }
  dl_log(DL_LOG_INFO, "worker_start", NULL, "dylive %s: redis=%s prefix=%s max_rooms=%lld ws=%s spool=%s",
         DYLIVE_VERSION, dl_redis_where(ctx->redis), cfg->prefix, cfg->max_rooms, cfg->douyin_ws,
         wk->spool ? dl_spool_path(wk->spool) : "off");
  if (wk->n_orphans)
    dl_log(DL_LOG_INFO, "spool_orphan", NULL, "%zu spool file(s) of stopped workers in %s: replaying them", wk->n_orphans,
           wk->spool_dir);
  dl_redis_start(ctx->redis);
  event_base_dispatch(ctx->base);

out:
  free_ingest_events(wk); /* --threads 1: first, so that nothing serves the WebSockets' loop any more */
  if (ctx->ingest) dl_ingest_free(ctx->ingest); /* joins the thread: nothing pushes after this */
  if (ctx->resolver) dl_resolver_free(ctx->resolver);
  dl_admin_free(wk->admin);
  /* Redis first: closing its connections hands every command still in flight back to its owner
   * (writer, rooms, claims, leases) as "connection lost", so they must all still exist. A write
   * in flight is then unsent again, like any other pending write, and is spooled below. */
  dl_redis_free(ctx->redis);
  ctx->redis = NULL;
  if (ctx->writer) {
    dl_outbox *obx = (dl_outbox *)dl_writer_outbox(ctx->writer);
    size_t left = dl_outbox_pending(obx);
    if (left && wk->spool) {
      size_t saved = dl_outbox_save(obx);
      dl_log(DL_LOG_WARN, "spool_kept", NULL,
             "%zu writes could not reach Redis; %zu are kept in %s for the next worker on this --spool-dir", left, saved,
             dl_spool_path(wk->spool));
      dl_spool_detach(wk->spool);
      wk->spool = NULL;
    } else if (left) {
      dl_log(DL_LOG_ERROR, "writes_lost", NULL, "%zu writes could not reach Redis and are lost (the spool is off)", left);
    }
  }
  dl_claims_free(ctx->claims);
  dl_rooms_free(ctx->rooms);
  dl_writer_free(ctx->writer);
  dl_cmd_pool_drain(); /* every command is back: none is in flight any more */
  dl_reply_pool_drain(); /* and every reply (the connections are gone) */
  if (wk->orphan) dl_spool_detach(wk->orphan); /* not fully replayed: the next worker goes on */
  dl_spool_close(wk->spool);
  struct event *evs[] = {wk->wake_ev, wk->poll_ev, wk->sig_term, wk->sig_int, wk->drain_ev, wk->flush_ev, wk->decay_ev};
  for (size_t i = 0; i < sizeof evs / sizeof *evs; i++)
    if (evs[i]) event_free(evs[i]);
  if (ctx->inq) dl_queue_free(ctx->inq, dl_in_msg_free);
  if (ctx->resq) dl_queue_free(ctx->resq, dl_resolve_result_free);
  if (wk->wake_fd >= 0) close(wk->wake_fd);
  if (wk->flush_fd >= 0) close(wk->flush_fd);
  if (ctx->base) event_base_free(ctx->base);
  free(user_cookie);
  dl_proxypool_free(ctx->pool);
  free(wk);
  return rc;
}
