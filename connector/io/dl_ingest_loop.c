/* The ingest thread's event loop: the lws context on a libev loop of ours (epoll), or lws's own
 * poll loop when the libev plugin is missing (--ws-event-loop), and the thread that runs it — or,
 * with --threads 1, the passes the worker's own loop runs (dl_ingest_share, dl_ingest_service). */
#include <ev.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dl_ingest_int.h"
#include "dl_log.h"

/* libwebsockets' own log lines, as our JSON records */
static void lws_log_emit(int level, const char *line) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", line);
  size_t n = strlen(buf);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
  const char *msg = strstr(buf, "] ");
  dl_log(level == LLL_ERR ? DL_LOG_WARN : DL_LOG_INFO, "lws", NULL, "%s", msg ? msg + 2 : buf);
}

#define DL_LWS_FD_TABLE_MAX 65536

/* No lws validity timer (its default: a PING after 5 idle minutes, a hangup 10 s later). lws 4.1
 * re-arms it for every frame a client receives, in a time-sorted list of every connection's timers:
 * a walk of the whole list per frame (21 % of the worker's CPU at 1000 rooms). The rooms have their
 * own liveness check (heartbeats, no data for DL_LIVENESS_PERIODS of them: reconnect). */
const lws_retry_bo_t dl_ingest_no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};

static struct lws_context *create_context(dl_ingest *in, struct ev_loop *loop) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = ingest_protocols;
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.user = in;
  info.pt_serv_buf_size = 32 * 1024; /* the push URL is ~1.5 KB and cookies can be large */
  info.timeout_secs = 20;
  info.connect_timeout_secs = 15;
  info.retry_and_idle_policy = &dl_ingest_no_validity;
  /* lws 4.1 finds a socket's wsi by fd on every event: an index into a table as large as the fd
   * ulimit, or, when fd_limit_per_thread is below the ulimit, a scan of all of it (~4 µs at 4096,
   * 2-6 % of the worker at 1000 rooms). Up to DL_LWS_FD_TABLE_MAX fds (systemd unit: 65536) the
   * table spans the ulimit (~17 bytes an fd); past that (containers with 2^20) 4096 and the scan. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > DL_LWS_FD_TABLE_MAX)
    info.fd_limit_per_thread = 4096;
  void *loops[1] = {loop};
  if (loop) {
    info.options |= LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
  }
  return lws_create_context(&info);
}

/* lws's complaints while it tries the libev plugin: kept for the one warning of a fallback. The
 * ingest thread does not run yet and lws logs from no other thread of ours. */
static char evlib_err[240];

static void lws_log_keep(int level, const char *line) {
  (void)level;
  const char *msg = strstr(line, "] ");
  snprintf(evlib_err, sizeof evlib_err, "%s", msg ? msg + 2 : line);
  size_t n = strlen(evlib_err);
  while (n && (evlib_err[n - 1] == '\n' || evlib_err[n - 1] == '\r')) evlib_err[--n] = 0;
}

static const char *ev_backend_name(struct ev_loop *loop) {
  unsigned b = ev_backend(loop);
  return b == EVBACKEND_EPOLL ? "epoll" : b == EVBACKEND_POLL ? "poll" : b == EVBACKEND_SELECT ? "select" : "other";
}

/* lws 4.1's libev plugin re-arms its one timer (every lws_sul: heartbeats, retries, connect pacing,
 * lws's own timeouts) with ev_timer_set + ev_timer_start and never stops it first: while the timer
 * is armed, libev ignores the new, earlier deadline until the old one passes (seconds later, for a
 * worker with few rooms). The plugin also services timers and re-enabled reads only after socket
 * events. So the loop wakes lws every DL_INGEST_SERVICE_MS through its own cancel pipe: timers are
 * late by at most that, for 1000 / DL_INGEST_SERVICE_MS cheap wake-ups a second (with --threads 1
 * the caller's tick does the same: dl_ingest_service). */

/* The end of a loop pass (every socket that was ready has been read): the acks it queued go. */
static void evlib_acks(struct ev_loop *loop, ev_prepare *w, int revents) {
  (void)loop;
  (void)revents;
  ingest_flush_acks(w->data);
}

static void evlib_kick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  dl_ingest *in = w->data;
  lws_cancel_service(in->ctx);
}

/* lws on a libev loop of ours (a foreign loop: lws registers no SIGINT watcher on it, and the
 * worker's own signal handling stays as it is). lws loads its libev support from the plugin
 * libwebsockets-evlib_ev.so (Debian's libwebsockets-evlib-ev); NULL and why when it cannot. */
static struct lws_context *create_context_libev(dl_ingest *in, char *why, size_t cap) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  if (!loop) {
    snprintf(why, cap, "libev cannot create a loop");
    return NULL;
  }
  evlib_err[0] = 0;
  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_keep);
  struct lws_context *ctx = create_context(in, loop);
  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
  if (!ctx) {
    snprintf(why, cap, "libwebsockets: %s", evlib_err[0] ? evlib_err : "cannot create the context");
    ev_loop_destroy(loop);
    return NULL;
  }
  if (evlib_err[0]) dl_log(DL_LOG_INFO, "lws", NULL, "%s", evlib_err);
  if (!(in->evkick = calloc(1, sizeof *in->evkick)) || !(in->evacks = calloc(1, sizeof *in->evacks))) {
    free(in->evkick);
    in->evkick = NULL;
    snprintf(why, cap, "out of memory");
    lws_context_destroy(ctx);
    ev_loop_destroy(loop);
    return NULL;
  }
  ev_timer_init(in->evkick, evlib_kick, DL_INGEST_SERVICE_MS / 1000.0, DL_INGEST_SERVICE_MS / 1000.0);
  in->evkick->data = in;
  ev_timer_start(loop, in->evkick);
  ev_prepare_init(in->evacks, evlib_acks);
  in->evacks->data = in;
  ev_prepare_start(loop, in->evacks);
  in->evloop = loop;
  in->loop_name = "libev";
  return ctx;
}

int ingest_loop_new(dl_ingest *in) {
  const char *mode = in->o.event_loop && *in->o.event_loop ? in->o.event_loop : "auto";
  char loop_why[300] = "";
  if (strcmp(mode, "poll") != 0) {
    in->ctx = create_context_libev(in, loop_why, sizeof loop_why);
    if (!in->ctx && !strcmp(mode, "libev")) {
      dl_log(DL_LOG_ERROR, "ws_event_loop", NULL, "--ws-event-loop libev: %s", loop_why);
      return -1;
    }
  }
  if (!in->ctx) {
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    in->ctx = create_context(in, NULL);
    in->loop_name = "poll";
  }
  if (!in->ctx) return -1;
  if (loop_why[0]) /* auto, and libev did not start: said once, as a warning, with lws's reason */
    dl_log(DL_LOG_WARN, "ws_event_loop", NULL,
           "WebSocket event loop: poll (every wake-up polls every socket): libev unavailable: %s "
           "(install libwebsockets-evlib-ev)", loop_why);
  else if (in->evloop)
    dl_log(DL_LOG_INFO, "ws_event_loop", NULL, "WebSocket event loop: libev (%s)", ev_backend_name(in->evloop));
  else
    dl_log(DL_LOG_INFO, "ws_event_loop", NULL, "WebSocket event loop: poll (--ws-event-loop poll)");
  return 0;
}

static void *thread_main(void *arg) {
  dl_ingest *in = arg;
  pthread_setname_np(pthread_self(), "dylive-ws"); /* top -H, /proc/PID/task/TID/comm */
  if (in->evloop) { /* epoll: a wake-up costs the sockets that are ready, not all of them */
    while (!__atomic_load_n(&in->stop, __ATOMIC_ACQUIRE))
      if (!ev_run(in->evloop, 0)) usleep(10000); /* no watcher at all: cannot be, never spin */
    return NULL;
  }
  while (!in->stop) /* lws's own loop: poll() over every socket on each wake-up */
    if (lws_service(in->ctx, 0) < 0) break;
  return NULL;
}

/* libev has no call for a loop's backend fd; ev_embed_start puts it in the embed watcher's public
 * io member (how libev embeds a loop in another): a loop of the select backend, never run, is the
 * other side for the moment of reading it. */
static int backend_fd(struct ev_loop *loop) {
  if (!(ev_backend(loop) & ev_embeddable_backends())) return -1;
  struct ev_loop *outer = ev_loop_new(EVBACKEND_SELECT | EVFLAG_NOSIGMASK);
  if (!outer) return -1;
  ev_embed w;
  ev_embed_init(&w, NULL, loop);
  ev_embed_start(outer, &w);
  int fd = w.io.fd;
  ev_embed_stop(outer, &w);
  ev_loop_destroy(outer);
  return fd;
}

/* libev runs idle watchers only in a pass that found nothing else, and only those of the highest
 * priority that has any: this one, at the lowest, runs in a pass where lws's own idle watcher had
 * nothing more to do either. */
static void evlib_quiet(struct ev_loop *loop, ev_idle *w, int revents) {
  (void)loop;
  (void)revents;
  ((dl_ingest *)w->data)->quiet = 1;
}

int dl_ingest_share(dl_ingest *in) {
  int fd = in->evloop ? backend_fd(in->evloop) : -1;
  if (fd < 0 || !(in->evquiet = calloc(1, sizeof *in->evquiet))) return -1;
  ev_idle_init(in->evquiet, evlib_quiet);
  ev_set_priority(in->evquiet, EV_MINPRI);
  in->evquiet->data = in;
  ev_timer_stop(in->evloop, in->evkick); /* the caller's tick kicks instead (dl_ingest_service) */
  in->wake_fd = -1;                      /* the caller takes the queue after each service */
  return fd;
}

/* Passes of the loop without waiting, until one finds nothing to do. lws's libev plugin services
 * its timers (lws_sul: heartbeats, retries, connect pacing) and its "forced service" in an ev_idle
 * watcher that its socket callbacks start and that stops itself; libev runs it only in a pass with
 * nothing else pending, and applies the watcher changes of a pass (reads paused or resumed, POLLOUT
 * wanted: the acks' ev_prepare runs first) at the start of the next one. So: pass after pass until
 * the lowest-priority marker ran, i.e. a pass in which nothing else ran and whose start applied
 * every change made before it — the same passes the thread's ev_run makes before it blocks. The
 * marker idles only in here: an ev_run elsewhere never spins on it. */
int dl_ingest_service(dl_ingest *in, int tick) {
  if (tick) lws_cancel_service(in->ctx); /* lws looks at its timers after a socket event */
  in->quiet = 0;
  ev_idle_start(in->evloop, in->evquiet);
  for (int pass = 0; pass < DL_INGEST_PASSES_MAX && !in->quiet; pass++) ev_run(in->evloop, EVRUN_NOWAIT);
  ev_idle_stop(in->evloop, in->evquiet);
  /* lws still has work no socket will signal (forced service), or the passes ran out: again soon */
  return !in->quiet || lws_service_adjust_timeout(in->ctx, 1, 0) == 0;
}

int dl_ingest_start(dl_ingest *in) {
  if (pthread_create(&in->thread, NULL, thread_main, in) != 0) return -1;
  in->started = 1;
  return 0;
}

void ingest_loop_free(dl_ingest *in) {
  /* with or without the thread: the rooms the context's destruction closes are not "lost" */
  __atomic_store_n(&in->stop, 1, __ATOMIC_RELEASE);
  if (in->started) {
    lws_cancel_service(in->ctx); /* EVENT_WAIT_CANCELLED: the libev loop breaks */
    pthread_join(in->thread, NULL);
  }
  if (in->ctx) lws_context_destroy(in->ctx); /* closes sockets; callbacks may still run */
  if (in->evloop) { /* foreign: lws leaves it to us, after the context */
    ev_timer_stop(in->evloop, in->evkick);
    ev_prepare_stop(in->evloop, in->evacks);
    free(in->evkick);
    free(in->evacks);
    free(in->evquiet);
    in->evquiet = NULL;
    in->evacks = NULL;
    ev_loop_destroy(in->evloop);
  }
}
