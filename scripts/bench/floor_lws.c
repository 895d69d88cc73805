/* floor_lws — the floor under the worker's WebSocket side with dylive's own WebSocket library: what
 * libwebsockets (the build dylive links) on one libev loop costs per pushed frame when it does
 * nothing else. Where floor_sock reads raw sockets, this receiver is N lws WebSocket clients set
 * up as dylive's WebSocket thread sets them up (LWS_SERVER_OPTION_LIBEV on a foreign libev loop,
 * no validity timer); each whole message is answered with one ack of --ack-bytes written as dylive
 * writes its acks (a binary frame masked by us, with a key from one getrandom per connection, and
 * handed to lws_write as raw bytes, LWS_WRITE_HTTP: no masking key read by lws per frame), nothing
 * else: no decoding, no hand-off, no Redis.
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
 *             [--sender-tick-ms 1]
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

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  ack_frame **ack = user;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (!ack || (rx.ack_bytes && !(*ack = ack_new((size_t)rx.ack_bytes)))) return -1;
    if (++rx.open == rx.n) rx.all_open = floor_mono();
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    rx.bytes += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      rx.frames++;
      if (ack && *ack && lws_write(wsi, (*ack)->b + LWS_PRE, (*ack)->len, LWS_WRITE_HTTP) < (int)(*ack)->len) return -1;
    }
    break;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (ack) { /* only an established connection has one */
      free(*ack);
      *ack = NULL;
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

static const struct lws_protocols protocols[] = {{"floor", callback, sizeof(ack_frame *), 0, 0, NULL, 0},
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
  if (tick_ms < 0 || tick_ms > 1000 || n < 1 || rate < 1 || secs < 1 || frame_bytes < 1 || frame_bytes > MAX_FRAME ||
      ack_bytes < 0 || ack_bytes > 4096) {
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
  int ok = rx.measuring == 2 && !rx.failed && frames > 0;
  if (ok)
    printf("{\"rooms\": %d, \"rate\": %d, \"frame_bytes\": %d, \"ack_bytes\": %d, \"sender_tick_ms\": %d, "
           "\"window_s\": %.2f, \"frames_per_s\": %.0f, \"cpu_pct\": %.2f, \"cpu_us_per_frame\": %.2f}\n",
           n, rate, frame_bytes, ack_bytes, tick_ms, rx.wall, frames / rx.wall, rx.cpu / rx.wall * 100,
           frames ? rx.cpu / frames * 1e6 : 0);
  else
    fprintf(stderr, "floor_lws: %d of %d connections open, %d failed: no figure\n", rx.open, n, rx.failed);
  rx.teardown = 1;
  lws_context_destroy(ctx);
  ev_loop_destroy(rx.loop);
  return ok ? 0 : 1;
}
