#include "dl_admin.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dl_claims.h"
#include "dl_ingest.h"
#include "dl_limits.h"
#include "dl_log.h"
#include "dl_proxypool.h"
#include "dl_queue.h"
#include "dl_redis.h"
#include "dl_room.h"
#include "dl_writer.h"

#ifndef DYLIVE_VERSION
#define DYLIVE_VERSION "0.1.0"
#endif

struct dl_admin {
  dl_ctx *ctx;
  struct evconnlistener *lis;
  struct event *resume_ev;
  int conns;
  int paused;
  int spare_fd;          /* held in reserve: closed to accept-and-drop when descriptors run out */
  dl_ratelimit rl;
  struct conn *list;
};

typedef struct conn {
  struct conn *prev, *next;
  dl_admin *a;
  struct bufferevent *bev;
  struct event *deadline; /* the whole request must arrive by then (libevent's read timeout is per byte) */
  int answered;
} conn;

/* ---------- metrics ---------- */

/* A family's HELP and TYPE lines (name in full: dylive_… or process_…). */
static void header(dl_buf *b, const char *name, const char *type, const char *help) {
  dl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One dylive_<name> family of a single sample. */
static void metric(dl_buf *b, const char *name, const char *type, const char *help, unsigned long long v) {
  char full[96];
  snprintf(full, sizeof full, "dylive_%s", name);
  header(b, full, type, help);
  dl_buf_printf(b, "%s %llu\n", full, v);
}

/* The boot time (/proc/stat btime) does not change: read once. */
static long long boot_time(void) {
  static long long btime = -1;
  if (btime >= 0) return btime;
  btime = 0;
  FILE *s = fopen("/proc/stat", "re");
  char line[256];
  while (s && fgets(line, sizeof line, s))
    if (sscanf(line, "btime %lld", &btime) == 1) break;
  if (s) fclose(s);
  return btime;
}

/* Open descriptors: the entries of /proc/self/fd, less the one reading it. */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;
}

/* process_* from /proc (the standard names, so the usual dashboards work). */
static void process_metrics(dl_buf *b) {
  long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "re");
  if (f) {
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
                    &utime, &stime, &start, &vsize, &rss) == 5) {
      header(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
      dl_buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)tck);
      header(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
      dl_buf_printf(b, "process_resident_memory_bytes %lld\n", rss * page);
      header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
      dl_buf_printf(b, "process_virtual_memory_bytes %llu\n", vsize);
      header(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
      dl_buf_printf(b, "process_start_time_seconds %.2f\n", (double)boot_time() + (double)start / (double)tck);
    }
  }
  int fds = open_fds();
  if (fds >= 0) {
    header(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    dl_buf_printf(b, "process_open_fds %d\n", fds);
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    header(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    dl_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
  }
}

void dl_admin_render_metrics(dl_ctx *ctx, dl_buf *b) {
  dl_ingest_stats st;
  dl_ingest_stats_get(ctx->ingest, &st);
  const dl_outbox *ob = dl_writer_outbox(ctx->writer);
  const dl_outbox_stats *os = dl_outbox_stats_get(ob);
  const dl_writer_stats *ws = dl_writer_stats_get(ctx->writer);
  const dl_redis_stats *rs = dl_redis_stats_get(ctx->redis);
  size_t states[DL_RS__COUNT];
  dl_rooms_states(ctx->rooms, states);
  header(b, "dylive_build_info", "gauge", "The version of this worker.");
  dl_buf_printf(b, "dylive_build_info{version=\"%s\"} 1\n", DYLIVE_VERSION);
  header(b, "dylive_rooms", "gauge", "Rooms held by this worker, by state.");
  for (int i = 0; i < DL_RS__COUNT; i++)
    dl_buf_printf(b, "dylive_rooms{state=\"%s\"} %zu\n", dl_rstate_name((dl_rstate)i), states[i]);
  metric(b, "rooms_capacity", "gauge", "Rooms this worker may hold (--max-rooms).", (unsigned long long)ctx->cfg->max_rooms);
  metric(b, "rooms_live", "gauge", "Rooms with an open WebSocket.", states[DL_RS_live]);
  metric(b, "assign_backlog", "gauge", "Assignments waiting in P:assign (sampled every --poll-ms).", ctx->st.assign_backlog);
  metric(b, "redis_connected", "gauge", "1 while the write connection to Redis is up.", (unsigned long long)rs->connected);
  header(b, "dylive_events_written_total", "counter", "Events appended to room streams, by type.");
  for (int i = 0; i < DL_EVT__COUNT; i++)
    dl_buf_printf(b, "dylive_events_written_total{type=\"%s\"} %llu\n", dl_evtype_name((dl_evtype)i),
                  (unsigned long long)ctx->st.written_by_type[i]);
  dl_hist_render(&ctx->st.write_latency, "dylive_write_latency_seconds",
                 "From a frame received to its events acknowledged by Redis.", b);
  dl_hist_render(&ctx->st.event_delay, "dylive_event_delay_seconds",
                 "Write time minus the event's ts_ms (Douyin's clock to ours).", b);
  header(b, "dylive_redis_errors_total", "counter", "Redis error replies, by kind.");
  for (int i = 1; i < DL_RERR__COUNT; i++)
    dl_buf_printf(b, "dylive_redis_errors_total{kind=\"%s\"} %llu\n", dl_rerr_name((dl_rerr)i),
                  (unsigned long long)rs->errors[i]);
  metric(b, "frames_total", "counter", "WebSocket frames received.", st.frames);
  metric(b, "frame_bytes_total", "counter", "Bytes of WebSocket frames received.", st.bytes);
  metric(b, "messages_total", "counter", "Messages decoded into events.", st.messages);
  metric(b, "bad_frames_total", "counter", "Frames that did not decode (malformed, over a limit).", st.bad_frames);
  metric(b, "bad_messages_total", "counter", "Messages whose payload did not parse (kept as raw).", st.bad_messages);
  metric(b, "gzip_bombs_total", "counter", "Frames refused at the inflate cap.", st.bombs);
  metric(b, "acks_sent_total", "counter", "Acks sent for need_ack frames.", st.acks_sent);
  metric(b, "ack_writes_total", "counter", "Socket writes that carried acks (queued acks leave together).", st.ack_writes);
  metric(b, "acks_dropped_total", "counter", "Acks dropped because the socket could not take them.", st.acks_dropped);
  metric(b, "heartbeats_sent_total", "counter", "Heartbeat frames sent.", st.hb_sent);
  metric(b, "ws_connects_total", "counter", "WebSocket connection attempts.", st.connects);
  metric(b, "ws_rejected_total", "counter", "WebSocket handshakes refused by the server (HTTP 200 + handshake-status).", st.rejected);
  metric(b, "ws_disconnects_total", "counter", "Established WebSockets lost.", st.disconnects);
  metric(b, "ingest_pauses_total", "counter", "Times socket reads paused for back-pressure.", st.pauses);
  metric(b, "ingest_paused", "gauge", "1 while socket reads are paused.", (unsigned long long)dl_ingest_paused(ctx->ingest));
  metric(b, "queue_depth", "gauge", "Frames waiting between ingest and Redis.", dl_queue_len(ctx->inq));
  header(b, "dylive_flush_linger_seconds", "gauge",
         "The last linger before a write: --flush-ms, or --flush-max-ms while every room trickles.");
  dl_buf_printf(b, "dylive_flush_linger_seconds %.3f\n", (double)ctx->st.linger_ms / 1000.0);
  metric(b, "queue_bytes", "gauge", "Bytes of the frames waiting between ingest and Redis (--queue-max-bytes).",
         (unsigned long long)dl_ingest_queued_bytes());
  metric(b, "events_duplicate_total", "counter", "Events skipped as duplicates by msg_id.", ctx->st.events_dup);
  metric(b, "redis_batches_total", "counter", "Room writes issued (one per room per flush).", ctx->st.batches);
  metric(b, "redis_calls_total", "counter", "Write-path calls sent to Redis (room writes ready together share one).", ws->calls);
  metric(b, "redis_commands_total", "counter", "Write-path commands finished.", ws->commands);
  metric(b, "redis_pending", "gauge", "Writes waiting for Redis (memory, spool and overflow).", dl_outbox_pending(ob));
  metric(b, "buffer_bytes", "gauge", "Bytes of writes held in memory for Redis.", dl_outbox_mem_bytes(ob));
  metric(b, "spool_bytes", "gauge", "Bytes of writes spooled to disk while Redis was behind.", dl_outbox_spool_bytes(ob));
  metric(b, "spooled_total", "counter", "Writes that went through the spool file.", os->spooled);
  metric(b, "spool_errors_total", "counter", "Spool writes that failed (those writes waited in memory).", os->spool_errors);
  metric(b, "spool_bad_records_total", "counter", "Spool records that failed their checks (skipped; their writes are lost).", os->spool_bad);
  metric(b, "redis_reconnects_total", "counter", "Redis write connection losses.", rs->reconnects);
  metric(b, "redis_retries_total", "counter", "Writes answered 'not now' (error replies, lost connections) and re-sent.", ws->retries);
  metric(b, "write_gaps_total", "counter", "Room writes lost before reaching Redis (their successors were accepted).", os->gaps);
  metric(b, "fatal_writes_total", "counter", "Writes Redis refused for good (a key of the wrong type…); their room stops with an error.", ctx->st.fatal_writes);
  metric(b, "leases_lost_total", "counter", "Rooms given up because their lease moved (fencing).", ctx->st.lost_rooms);
  metric(b, "fenced_writes_total", "counter", "Writes refused by Redis because the lease moved.", ws->fenced);
  metric(b, "dead_workers_requeued_total", "counter", "Dead workers whose claims were put back.", ctx->st.requeued);
  metric(b, "claims_total", "counter", "Assignments taken from the list.", ctx->st.claims);
  metric(b, "bad_assignments_total", "counter", "Assignments that were not a live_id.", ctx->st.bad_assignments);
  metric(b, "resolve_errors_total", "counter", "Room resolutions that failed (retried).", ctx->st.resolve_errors);
  metric(b, "config_errors_total", "counter", "Rooms refused for a configuration error (an unknown cookie profile…).", ctx->st.config_errors);
  metric(b, "ws_silent_total", "counter", "Connections closed for delivering no message for --silence-timeout.", ctx->st.silent_total);
  metric(b, "risk_control_errors_total", "counter", "Rooms put in error after consecutive silent connections.", ctx->st.risk_errors);
  metric(b, "ws_ping_interval_adopted_total", "counter", "Connections whose heartbeat follows a Handshake-Options ping-interval.",
         st.ping_interval_adopted);
  if (ctx->pool) { /* labels: the configured host:port, never credentials or room ids */
    dl_proxy_stats ps[DL_PROXYPOOL_MAX];
    size_t np = dl_proxypool_stats(ctx->pool, ps, DL_PROXYPOOL_MAX, dl_mono_ms());
    if (np > DL_PROXYPOOL_MAX) np = DL_PROXYPOOL_MAX;
    static const char *const pm[][3] = {
        {"proxy_rooms", "gauge", "WebSockets through this proxy now."},
        {"proxy_failures_total", "counter", "Connects and requests that failed at this proxy."},
        {"proxy_set_asides_total", "counter", "Times this proxy was set aside after failing repeatedly."},
        {"proxy_set_aside", "gauge", "1 while this proxy is set aside (its rooms move)."}};
    for (size_t k = 0; np && k < sizeof pm / sizeof *pm; k++) {
      char full[96];
      snprintf(full, sizeof full, "dylive_%s", pm[k][0]);
      header(b, full, pm[k][1], pm[k][2]);
      for (size_t i = 0; i < np; i++) {
        uint64_t v = k == 0 ? ps[i].rooms : k == 1 ? ps[i].failures : k == 2 ? ps[i].set_asides : (uint64_t)ps[i].cooling;
        dl_buf_printf(b, "dylive_%s{proxy=\"%s\"} %llu\n", pm[k][0], ps[i].label, (unsigned long long)v);
      }
    }
  }
  metric(b, "orphan_events_total", "counter", "Events of dead workers' spools written by this worker.", ctx->st.orphan_events);
  process_metrics(b);
}

/* ---------- the server ---------- */

static void conn_free(conn *c) {
  dl_admin *a = c->a;
  if (c->prev) c->prev->next = c->next;
  else a->list = c->next;
  if (c->next) c->next->prev = c->prev;
  bufferevent_free(c->bev);
  if (c->deadline) event_free(c->deadline);
  free(c);
  a->conns--;
  if (a->paused && a->conns < DL_ADMIN_CONNS_MAX) { /* a descriptor and a slot were just freed */
    a->paused = 0;
    evtimer_del(a->resume_ev);
    evconnlistener_enable(a->lis);
  }
}

static void on_written(struct bufferevent *bev, void *arg) {
  conn *c = arg;
  if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0) conn_free(c);
}

static void respond(conn *c, int code, const char *reason, const char *type, const void *body, size_t len, int head) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                           "Cache-Control: no-store\r\n%s\r\n", code, reason, type, len,
                      code == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (!head && len) evbuffer_add(out, body, len);
  c->answered = 1;
  bufferevent_disable(c->bev, EV_READ);
  bufferevent_enable(c->bev, EV_WRITE);
}

static void handle(conn *c, const char *line) {
  dl_ctx *ctx = c->a->ctx;
  char method[8] = "", path[128] = "";
  if (sscanf(line, "%7s %127s", method, path) != 2) {
    respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12, 0);
    return;
  }
  int head = !strcmp(method, "HEAD");
  if (strcmp(method, "GET") && !head) {
    respond(c, 405, "Method Not Allowed", "text/plain", "GET only\n", 9, 0);
    return;
  }
  char *q = strchr(path, '?');
  if (q) *q = 0;
  if (!strcmp(path, "/metrics")) {
    dl_buf b;
    dl_buf_init(&b, DL_ADMIN_BODY_MAX);
    dl_admin_render_metrics(ctx, &b);
    respond(c, 200, "OK", "text/plain; version=0.0.4", b.p, b.len, head);
    dl_buf_free(&b);
  } else if (!strcmp(path, "/healthz")) {
    respond(c, 200, "OK", "text/plain", "ok\n", 3, head);
  } else if (!strcmp(path, "/readyz")) {
    int ok = dl_redis_w_ready(ctx->redis) && !ctx->draining;
    const char *msg = ok ? "ready\n" : ctx->draining ? "draining\n" : "redis not connected\n";
    respond(c, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "text/plain", msg, strlen(msg), head);
  } else {
    respond(c, 404, "Not Found", "text/plain", "not found\n", 10, head);
  }
}

static void on_read(struct bufferevent *bev, void *arg) {
  conn *c = arg;
  if (c->answered) return;
  struct evbuffer *in = bufferevent_get_input(bev);
  struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
  if (end.pos < 0) { /* the read watermark (DL_ADMIN_HEADER_MAX + 1) bounds what can be buffered */
    if (evbuffer_get_length(in) > DL_ADMIN_HEADER_MAX)
      respond(c, 431, "Request Header Fields Too Large", "text/plain", "headers too large\n", 18, 0);
    return;
  }
  char line[256];
  size_t n = 0;
  char *l = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
  snprintf(line, sizeof line, "%s", l ? l : "");
  free(l);
  handle(c, line);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  (void)what;
  conn_free(arg); /* timeout, EOF or error: the client is gone or too slow */
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  conn *c = arg;
  if (!c->answered) conn_free(c); /* too slow: a slow client must not hold a slot */
}

static void on_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  dl_admin *a = arg;
  if (a->spare_fd < 0) a->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (a->conns < DL_ADMIN_CONNS_MAX) {
    a->paused = 0;
    evconnlistener_enable(a->lis);
  }
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg) {
  (void)lis;
  (void)sa;
  (void)len;
  dl_admin *a = arg;
  conn *c = calloc(1, sizeof *c);
  struct bufferevent *bev = c ? bufferevent_socket_new(a->ctx->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
  if (!bev) {
    free(c);
    evutil_closesocket(fd);
    return;
  }
  c->a = a;
  c->bev = bev;
  c->next = a->list;
  if (a->list) a->list->prev = c;
  a->list = c;
  a->conns++;
  bufferevent_setcb(bev, on_read, on_written, on_event, c);
  struct timeval rt = {DL_ADMIN_READ_TIMEOUT_MS / 1000, (DL_ADMIN_READ_TIMEOUT_MS % 1000) * 1000},
                 wt = {DL_ADMIN_WRITE_TIMEOUT_MS / 1000, (DL_ADMIN_WRITE_TIMEOUT_MS % 1000) * 1000};
  bufferevent_set_timeouts(bev, &rt, &wt); /* idle timeouts; the deadline below bounds the whole request */
  c->deadline = evtimer_new(a->ctx->base, on_deadline, c);
  if (c->deadline) evtimer_add(c->deadline, &rt);
  bufferevent_setwatermark(bev, EV_READ, 0, DL_ADMIN_HEADER_MAX + 1);
  bufferevent_enable(bev, EV_READ);
  if (a->conns >= DL_ADMIN_CONNS_MAX) { /* the cap: stop accepting until one closes */
    a->paused = 1;
    evconnlistener_disable(a->lis);
  }
}

static void on_accept_error(struct evconnlistener *lis, void *arg) {
  dl_admin *a = arg;
  int err = EVUTIL_SOCKET_ERROR();
  if (err == EMFILE || err == ENFILE) {
    /* out of descriptors: drop the waiting client with the spare one, and pause (a listener that
     * keeps failing to accept would spin the loop and starve Redis and the WebSockets) */
    if (a->spare_fd >= 0) {
      close(a->spare_fd);
      a->spare_fd = -1;
      int fd = accept(evconnlistener_get_fd(lis), NULL, NULL);
      if (fd >= 0) close(fd);
    }
    unsigned supp = 0;
    if (dl_ratelimit_allow(&a->rl, dl_mono_ms(), 1, &supp))
      dl_log(DL_LOG_ERROR, "admin_fds", NULL, "out of file descriptors: admin server pauses (%u similar suppressed)", supp);
  }
  a->paused = 1;
  evconnlistener_disable(lis);
  struct timeval tv = {DL_ADMIN_ACCEPT_PAUSE_MS / 1000, (DL_ADMIN_ACCEPT_PAUSE_MS % 1000) * 1000};
  evtimer_add(a->resume_ev, &tv);
}

dl_admin *dl_admin_new(dl_ctx *ctx, const char *hostport, char *why, size_t cap) {
  char host[256], port_s[16];
  int port;
  if (dl_parse_hostport(hostport, host, sizeof host, &port) != 0)
    return snprintf(why, cap, "bad --admin address %s", hostport), NULL;
  snprintf(port_s, sizeof port_s, "%d", port);
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  if (getaddrinfo(host, port_s, &hints, &ai) != 0 || !ai)
    return snprintf(why, cap, "cannot resolve --admin host %s", host), NULL;
  dl_admin *a = calloc(1, sizeof *a);
  if (!a) {
    freeaddrinfo(ai);
    return snprintf(why, cap, "out of memory"), NULL;
  }
  a->ctx = ctx;
  a->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  a->lis = evconnlistener_new_bind(ctx->base, on_accept, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                   128, ai->ai_addr, (int)ai->ai_addrlen);
  freeaddrinfo(ai);
  a->resume_ev = evtimer_new(ctx->base, on_resume, a);
  if (!a->lis || !a->resume_ev) {
    snprintf(why, cap, "cannot listen on %s: %s", hostport, strerror(errno));
    dl_admin_free(a);
    return NULL;
  }
  evconnlistener_set_error_cb(a->lis, on_accept_error);
  return a;
}

void dl_admin_free(dl_admin *a) {
  if (!a) return;
  while (a->list) conn_free(a->list);
  if (a->lis) evconnlistener_free(a->lis);
  if (a->resume_ev) event_free(a->resume_ev);
  if (a->spare_fd >= 0) close(a->spare_fd);
  free(a);
}
