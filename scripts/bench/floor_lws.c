/* floor_lws — the floor under the worker's WebSocket side with dylive's own WebSocket library: what
 * libwebsockets (the build dylive links) on one libev loop costs per pushed frame when it does
 * nothing else. Where floor_sock reads raw sockets, this receiver is N lws WebSocket clients set
 * up as dylive's WebSocket thread sets them up (LWS_SERVER_OPTION_LIBEV on a foreign libev loop,
 * no validity timer); each whole message is answered with one ack of --ack-bytes written as dylive
 * writes its acks (a binary frame masked by us, with a key from one getrandom per connection, and
 * handed to lws_write as raw bytes, LWS_WRITE_HTTP: no masking key read by lws per frame), nothing
 * else: no decoding, no hand-off, no Redis. With --redis-port, the least a write to Redis can cost
 * on top: each whole message becomes one plain XADD (type, msg_id, ts_ms and a json field of
 * --entry-bytes, as a room's event) to its room's stream on one connection to that Redis, the
 * XADDs of a loop pass leaving in one write at its end (with --flush-ms, of a linger started by the
 * first one, as dylive's --flush-ms) and their replies read on the same loop — no script, no
 * fence, no status, no dedupe.
 *
 * The sender (a child process, not measured) is a plain epoll WebSocket server: it answers the
 * handshake, then writes one binary message of --frame-bytes to each connection at --rate per
 * second. With --sender-tick-ms 1 it wakes every millisecond and sends what is due, as the
 * simulator does (tests/sim: whole-millisecond sleeps, every due room after each wake-up); with 0,
 * each frame at its own time, to the µs (more wake-ups for the receiver). A rate above what the
 * receiver takes is flat out. Acks are read and dropped.
 * Prints one JSON line: the receiver's CPU µs per frame, from 2 s after every connection is open;
 * exits 1 without a figure when a connection fails or no frame came in the window.
 *
 *   floor_lws [--rooms 1000] [--rate 4] [--seconds 10] [--frame-bytes 160] [--ack-bytes 40]
 *             [--sender-tick-ms 1] [--redis-port 0] [--entry-bytes 530] [--flush-ms 0]
 *             [--collect-us 0]
 *
 * --collect-us N sets libev's I/O collect interval on the receiver's loop (it polls at most once per
 * N µs, so frames that come one by one are read together).
 *
 * Built by CMake (scripts/bench/CMakeLists.txt), run by scripts/bench/cost.py --phases floors:
 * "rooms" (1000 rooms × 4/s, frames of a rooms-phase frame's size) and "rich" (one room flat out
 * with the rich fixture's mean frame size). Linux ≥ 5.11 (epoll_pwait2). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "floor_util.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_FRAME 65535
#define HS_MAX 4096

/* ---- the sender ---- */

typedef struct conn {
  int fd, open;
  size_t hlen, pend; /* pend: the bytes of the last message still to send (a partial send) */
  double due;
  char hs[HS_MAX];
} conn;

/* The handshake answer for a complete request in c->hs; 0, or -1 when it is not one. */
static int answer_handshake(conn *c) {
  c->hs[c->hlen] = 0;
  const char *k = strcasestr(c->hs, "\r\nSec-WebSocket-Key:");
  if (!k) return -1;
  k += strlen("\r\nSec-WebSocket-Key:");
  while (*k == ' ') k++;
  size_t kl = strcspn(k, "\r\n");
  char cat[128];
  unsigned char md[20];
  char acc[64], resp[256];
  if (kl > 64) return -1;
  memcpy(cat, k, kl);
  memcpy(cat + kl, WS_GUID, sizeof WS_GUID);
  lws_SHA1((unsigned char *)cat, kl + sizeof WS_GUID - 1, md);
  if (lws_b64_encode_string((char *)md, 20, acc, sizeof acc) < 0) return -1;
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   acc);
  return send(c->fd, resp, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

static void sender(int ls, int n, int rate, double until, int frame_bytes, int tick_ms) {
  static uint8_t msg[4 + MAX_FRAME];
  static char sink[65536];
  size_t hdr = frame_bytes < 126 ? 2 : 4;
  msg[0] = 0x82; /* FIN, binary */
  if (hdr == 2) {
    msg[1] = (uint8_t)frame_bytes;
  } else {
    msg[1] = 126;
    msg[2] = (uint8_t)(frame_bytes >> 8);
    msg[3] = (uint8_t)frame_bytes;
  }
  memset(msg + hdr, 'f', (size_t)frame_bytes);
  size_t mlen = hdr + (size_t)frame_bytes;
  conn *cs = calloc((size_t)n, sizeof *cs);
  int ep = epoll_create1(0), nc = 0;
  if (!cs || ep < 0) _exit(1);
  struct epoll_event le = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &le);
  double period = 1.0 / rate;
  struct epoll_event ev[256];
  while (floor_mono() < until) {
    double now = floor_mono(), next = now + 0.1;
    for (int i = 0; i < nc; i++) {
      conn *c = &cs[i];
      if (!c->open) continue;
      while (c->due <= now) {
        if (!c->pend) c->pend = mlen, c->due += period;
        ssize_t w = send(c->fd, msg + (mlen - c->pend), c->pend, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) c->pend -= (size_t)w;
        if (c->pend) { /* the socket is full: the rest later, and no catching up */
          if (c->due < now) c->due = now + period;
          break;
        }
      }
      if (c->due < next) next = c->due;
    }
    /* every --sender-tick-ms what is due by then (the simulator's way: whole-millisecond sleeps),
     * or with 0 each frame at its own time, to the µs */
    double wait = tick_ms ? tick_ms / 1000.0 : next - floor_mono();
    if (wait < 0) wait = 0;
    struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    int k = epoll_pwait2(ep, ev, 256, &ts, NULL);
    if (k < 0 && errno != EINTR) _exit(1);
    for (int j = 0; j < k; j++) {
      uint32_t i = ev[j].data.u32;
      if (i == UINT32_MAX) {
        int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) continue;
        if (nc == n) {
          close(fd);
          continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        cs[nc].fd = fd;
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)nc};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        nc++;
        continue;
      }
      conn *c = &cs[i];
      if (!c->open) {
        ssize_t r = recv(c->fd, c->hs + c->hlen, HS_MAX - 1 - c->hlen, 0);
        if (r <= 0) _exit(1);
        c->hlen += (size_t)r;
        c->hs[c->hlen] = 0;
        if (!strstr(c->hs, "\r\n\r\n")) {
          if (c->hlen == HS_MAX - 1) _exit(1);
          continue;
        }
        if (answer_handshake(c) != 0) _exit(1);
        c->open = 1;
        c->due = floor_mono() + period * i / n; /* spread evenly over a period */
        continue;
      }
      ssize_t r = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) _exit(0); /* the receiver is gone */
    }
  }
  _exit(0);
}

/* ---- the receiver ---- */

static struct {
  int n, ack_bytes, secs, open, failed, measuring;
  uint64_t frames, bytes, f0;
  double all_open, t0, cpu0, cpu, wall, deadline;
  struct ev_loop *loop;
  int teardown;
} rx;

/* ---- the Redis writer (--redis-port) ---- */

#define OUT_MAX (64u << 20)

static struct {
  int fd, entry_bytes, failed;
  ev_io rio, wio;
  ev_prepare prep;
  ev_timer linger;
  double flush_s; /* --flush-ms: 0 writes at each pass's end, else the first XADD waits this long */
  char *out;
  size_t len, cap, off;
  char in[65536];
  size_t inlen;
  int body; /* the next line is a bulk reply's body */
  uint64_t sent, replies, errors, r0;
  char *json;
  uint64_t msg_id;
} rd = {.fd = -1};

static void out_add(const void *p, size_t n) {
  if (rd.len + n > rd.cap) {
    size_t cap = rd.cap ? rd.cap * 2 : 1 << 20;
    while (cap < rd.len + n) cap *= 2;
    if (cap > OUT_MAX || !(rd.out = realloc(rd.out, cap))) floor_die("redis output buffer");
    rd.cap = cap;
  }
  memcpy(rd.out + rd.len, p, n);
  rd.len += n;
}

static void out_bulk(const char *p, size_t n) {
  char h[24];
  int k = snprintf(h, sizeof h, "$%zu\r\n", n);
  out_add(h, (size_t)k);
  out_add(p, n);
  out_add("\r\n", 2);
}

/* One room event's XADD, as dylive writes it (the four fields of CONTRACT's event entries). */
static void redis_xadd(int room) {
  char key[32], id[24], ts[24];
  int kl = snprintf(key, sizeof key, "floor:%d", room);
  int il = snprintf(id, sizeof id, "%llu", (unsigned long long)(7000000000000000000ull + ++rd.msg_id));
  int tl = snprintf(ts, sizeof ts, "%lld", (long long)(floor_mono() * 1000) + 1700000000000ll);
  out_add("*11\r\n", 5);
  out_bulk("XADD", 4);
  out_bulk(key, (size_t)kl);
  out_bulk("*", 1);
  out_bulk("type", 4);
  out_bulk("chat", 4);
  out_bulk("msg_id", 6);
  out_bulk(id, (size_t)il);
  out_bulk("ts_ms", 5);
  out_bulk(ts, (size_t)tl);
  out_bulk("json", 4);
  out_bulk(rd.json, (size_t)rd.entry_bytes);
  rd.sent++;
}

/* The connection broke, or Redis said no: the run ends without a figure. */
static void redis_fail(struct ev_loop *loop) {
  rd.failed = 1;
  ev_break(loop, EVBREAK_ALL);
}

static void redis_write(struct ev_loop *loop) {
  while (rd.off < rd.len) {
    ssize_t w = send(rd.fd, rd.out + rd.off, rd.len - rd.off, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (w <= 0) {
      redis_fail(loop);
      return;
    }
    rd.off += (size_t)w;
  }
  if (rd.off == rd.len) {
    rd.off = rd.len = 0;
    ev_io_stop(loop, &rd.wio);
  } else {
    ev_io_start(loop, &rd.wio);
  }
}

/* The end of a loop pass: its XADDs leave in one write, or (--flush-ms) those of the linger. */
static void redis_pass_end(struct ev_loop *loop, ev_prepare *w, int revents) {
  (void)w;
  (void)revents;
  if (!rd.len || ev_is_active(&rd.wio)) return;
  if (!rd.flush_s) {
    redis_write(loop);
  } else if (!ev_is_active(&rd.linger)) {
    ev_timer_set(&rd.linger, rd.flush_s, 0);
    ev_timer_start(loop, &rd.linger);
  }
}

static void redis_linger_end(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w;
  (void)revents;
  if (!ev_is_active(&rd.wio)) redis_write(loop);
}

static void redis_writable(struct ev_loop *loop, ev_io *w, int revents) {
  (void)w;
  (void)revents;
  redis_write(loop);
}

/* Replies are lines: XADD's "$n" then the id, or an error "-…" (counted and fatal). */
static void redis_readable(struct ev_loop *loop, ev_io *w, int revents) {
  (void)w;
  (void)revents;
  ssize_t r = recv(rd.fd, rd.in + rd.inlen, sizeof rd.in - rd.inlen, 0);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) {
    redis_fail(loop);
    return;
  }
  rd.inlen += (size_t)r;
  size_t at = 0;
  for (;;) {
    char *nl = memchr(rd.in + at, '\n', rd.inlen - at);
    if (!nl) break;
    char c = rd.in[at];
    if (rd.body) {
      rd.body = 0;
      rd.replies++;
    } else if (c == '$' && rd.in[at + 1] != '-') {
      rd.body = 1;
    } else {
      rd.replies++;
      if (c == '-') {
        if (!rd.errors++) fprintf(stderr, "floor_lws: redis: %.*s\n", (int)(nl - (rd.in + at)), rd.in + at);
      }
    }
    at = (size_t)(nl + 1 - rd.in);
  }
  memmove(rd.in, rd.in + at, rd.inlen - at);
  rd.inlen -= at;
  /* an error, or a line longer than the buffer: not a reply of ours */
  if (rd.errors || rd.inlen == sizeof rd.in) redis_fail(loop);
}

static void redis_open(struct ev_loop *loop, int port, int entry_bytes, int flush_ms) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  rd.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rd.fd < 0 || connect(rd.fd, (struct sockaddr *)&a, sizeof a) != 0) floor_die("connect to redis");
  setsockopt(rd.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (fcntl(rd.fd, F_SETFL, O_NONBLOCK) != 0) floor_die("fcntl");
  rd.entry_bytes = entry_bytes;
  if (!(rd.json = malloc((size_t)entry_bytes))) floor_die("malloc");
  memset(rd.json, 'j', (size_t)entry_bytes);
  ev_io_init(&rd.rio, redis_readable, rd.fd, EV_READ);
  ev_io_init(&rd.wio, redis_writable, rd.fd, EV_WRITE);
  ev_prepare_init(&rd.prep, redis_pass_end);
  ev_init(&rd.linger, redis_linger_end);
  rd.flush_s = flush_ms / 1000.0;
  ev_io_start(loop, &rd.rio);
  ev_prepare_start(loop, &rd.prep);
}

static void redis_close(struct ev_loop *loop) {
  if (rd.fd < 0) return;
  ev_io_stop(loop, &rd.rio);
  ev_io_stop(loop, &rd.wio);
  ev_prepare_stop(loop, &rd.prep);
  ev_timer_stop(loop, &rd.linger);
  close(rd.fd);
  free(rd.out);
  free(rd.json);
}

/* A connection's ack: a masked binary frame, built once (its key from one getrandom). */
typedef struct ack_frame {
  size_t len;
  uint8_t b[LWS_PRE + 14 + 4096];
} ack_frame;

static ack_frame *ack_new(size_t n) {
  ack_frame *a = malloc(sizeof *a);
  uint8_t key[4], *p;
  if (!a || getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
    free(a);
    return NULL;
  }
  p = a->b + LWS_PRE;
  *p++ = 0x82; /* FIN, binary */
  if (n < 126) {
    *p++ = (uint8_t)(0x80 | n);
  } else {
    *p++ = 0x80 | 126;
    *p++ = (uint8_t)(n >> 8);
    *p++ = (uint8_t)n;
  }
  memcpy(p, key, 4);
  p += 4;
  for (size_t i = 0; i < n; i++) *p++ = (uint8_t)('a' ^ key[i & 3]);
  a->len = (size_t)(p - (a->b + LWS_PRE));
  return a;
}

/* A connection's own: its ack, and its room's number (its stream with --redis-port). */
typedef struct sess {
  ack_frame *ack;
  int room;
} sess;

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  sess *ss = user;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (!ss || (rx.ack_bytes && !(ss->ack = ack_new((size_t)rx.ack_bytes)))) return -1;
    ss->room = rx.open;
    if (++rx.open == rx.n) rx.all_open = floor_mono();
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    rx.bytes += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      rx.frames++;
      if (ss && rd.fd >= 0) redis_xadd(ss->room);
      if (ss && ss->ack && lws_write(wsi, ss->ack->b + LWS_PRE, ss->ack->len, LWS_WRITE_HTTP) < (int)ss->ack->len)
        return -1;
    }
    break;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (ss) { /* only an established connection has one */
      free(ss->ack);
      ss->ack = NULL;
    }
    if (rx.teardown) break;
    fprintf(stderr, "floor_lws: a connection %s after %llu frames: %.*s\n",
            reason == LWS_CALLBACK_CLIENT_CLOSED ? "closed" : "failed", (unsigned long long)rx.frames,
            in ? (int)len : 0, in ? (const char *)in : "");
    rx.failed++;
    break;
  default:
    break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {{"floor", callback, sizeof(sess), 0, 0, NULL, 0},
                                                 {NULL, NULL, 0, 0, 0, NULL, 0}};
static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};

/* Every 100 ms: start the window 2 s after the last connection opened, end it after --seconds. */
static void tick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w;
  (void)revents;
  double now = floor_mono();
  if (rx.failed || now > rx.deadline) {
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  if (!rx.measuring && rx.open == rx.n && now >= rx.all_open + 2.0) {
    rx.measuring = 1;
    rx.t0 = now;
    rx.cpu0 = floor_cpu_self();
    rx.f0 = rx.frames;
    rd.r0 = rd.replies;
  } else if (rx.measuring && now >= rx.t0 + rx.secs) {
    rx.cpu = floor_cpu_self() - rx.cpu0;
    rx.wall = now - rx.t0;
    rx.measuring = 2;
    ev_break(loop, EVBREAK_ALL);
  }
}

int main(int argc, char **argv) {
  int n = floor_opt(argc, argv, "--rooms", 1000), rate = floor_opt(argc, argv, "--rate", 4);
  int secs = floor_opt(argc, argv, "--seconds", 10), frame_bytes = floor_opt(argc, argv, "--frame-bytes", 160);
  int ack_bytes = floor_opt(argc, argv, "--ack-bytes", 40);
  int tick_ms = floor_opt(argc, argv, "--sender-tick-ms", 1);
  int redis_port = floor_opt(argc, argv, "--redis-port", 0), entry_bytes = floor_opt(argc, argv, "--entry-bytes", 530);
  int flush_ms = floor_opt(argc, argv, "--flush-ms", 0), collect_us = floor_opt(argc, argv, "--collect-us", 0);
  if (tick_ms < 0 || tick_ms > 1000 || n < 1 || rate < 1 || secs < 1 || frame_bytes < 1 || frame_bytes > MAX_FRAME ||
      ack_bytes < 0 || ack_bytes > 4096 || redis_port < 0 || redis_port > 65535 || entry_bytes < 1 ||
      entry_bytes > 1 << 20 || flush_ms < 0 || flush_ms > 10000 ||
      collect_us < 0 || collect_us > 100000) {
    fprintf(stderr, "floor_lws: bad arguments\n");
    return 2;
  }
  if (floor_nofile("floor_lws", n, (rlim_t)n * 2 + 64) != 0) return 2;
  struct sockaddr_in a;
  int ls = floor_listen(&a);
  /* the sender stops by itself: the connections' set-up (≤ 30 s), the warm-up and the window */
  double until = floor_mono() + 30 + 2 + secs + 1;
  pid_t child = fork();
  if (child < 0) floor_die("fork");
  if (child == 0) sender(ls, n, rate, until, frame_bytes, tick_ms);
  close(ls);

  lws_set_log_level(LLL_ERR, NULL);
  rx.n = n;
  rx.ack_bytes = ack_bytes;
  rx.secs = secs;
  rx.deadline = until - 0.5;
  rx.loop = ev_loop_new(EVBACKEND_EPOLL);
  if (!rx.loop) floor_die("ev_loop_new");
  if (collect_us) ev_set_io_collect_interval(rx.loop, collect_us / 1e6);
  if (redis_port) redis_open(rx.loop, redis_port, entry_bytes, flush_ms);
  void *loops[1] = {rx.loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_LIBEV;
  info.foreign_loops = loops;
  info.retry_and_idle_policy = &no_validity;
  struct lws_context *ctx = lws_create_context(&info);
  if (!ctx) {
    fprintf(stderr, "floor_lws: no lws context on libev (is libwebsockets-evlib-ev installed?)\n");
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    return 1;
  }
  for (int i = 0; i < n; i++) {
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = ctx;
    ci.address = "127.0.0.1";
    ci.port = ntohs(a.sin_port);
    ci.path = "/webcast/im/push/v2/";
    ci.host = "127.0.0.1";
    ci.origin = "https://live.douyin.com";
    ci.local_protocol_name = "floor";
    ci.retry_and_idle_policy = &no_validity;
    if (!lws_client_connect_via_info(&ci)) rx.failed++;
  }
  ev_timer t;
  ev_timer_init(&t, tick, 0.1, 0.1);
  ev_timer_start(rx.loop, &t);
  ev_run(rx.loop, 0);
  ev_timer_stop(rx.loop, &t);
  kill(child, SIGTERM);
  waitpid(child, NULL, 0);
  double frames = (double)(rx.frames - rx.f0);
  /* with Redis: every XADD of the window answered (the last pass's may still be on the way) */
  double written = (double)(rd.replies - rd.r0);
  int ok = rx.measuring == 2 && !rx.failed && frames > 0 && !rd.failed && !rd.errors &&
           (!redis_port || written >= frames * 0.98);
  char redis[160] = "";
  if (redis_port)
    snprintf(redis, sizeof redis, ", \"redis_port\": %d, \"entry_bytes\": %d, \"flush_ms\": %d, \"xadds_per_s\": %.0f, "
             "\"xadds\": %llu", redis_port, entry_bytes, flush_ms, written / rx.wall, (unsigned long long)rd.replies);
  if (ok)
    printf("{\"rooms\": %d, \"rate\": %d, \"frame_bytes\": %d, \"ack_bytes\": %d, \"sender_tick_ms\": %d, "
           "\"window_s\": %.2f, \"frames_per_s\": %.0f, \"cpu_pct\": %.2f, \"cpu_us_per_frame\": %.2f%s}\n",
           n, rate, frame_bytes, ack_bytes, tick_ms, rx.wall, frames / rx.wall, rx.cpu / rx.wall * 100,
           frames ? rx.cpu / frames * 1e6 : 0, redis);
  else
    fprintf(stderr, "floor_lws: %d of %d connections open, %d failed, redis: %llu sent, %llu answered, %llu errors, %s: "
            "no figure\n", rx.open, n, rx.failed, (unsigned long long)rd.sent, (unsigned long long)rd.replies,
            (unsigned long long)rd.errors, rd.failed ? "failed" : "ok");
  rx.teardown = 1;
  redis_close(rx.loop);
  lws_context_destroy(ctx);
  ev_loop_destroy(rx.loop);
  return ok ? 0 : 1;
}
