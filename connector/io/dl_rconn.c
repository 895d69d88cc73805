#include "dl_rconn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "dl_buf.h"
#include "dl_cmd.h"
#include "dl_limits.h"
#include "dl_log.h"
#include "dl_reply.h"
#include "dl_tls.h"
#include "dl_topo.h"

typedef struct pending {
  dl_rconn_cb cb;
  void *priv;
  int64_t deadline_ms;       /* monotonic */
} pending;

struct dl_rconn {
  struct event_base *base;
  struct bufferevent *bev;
  struct event *rd;          /* plain TCP/unix once ready: replies read straight from the socket */
  struct event *timer;
  SSL *ssl;
  redisReader *reader;
  dl_rconn_target t;
  dl_rconn_events ev;
  int64_t cmd_timeout_ms;
  pending *q;                /* ring of callbacks, in send order */
  size_t qcap, qhead, qlen;
  size_t setup_left;         /* setup replies still expected before ready */
  int ready, dead, depth, free_later;
  char fail_why[200];        /* a failure found inside dl_rconn_open, reported from the loop */
  int opening;               /* inside dl_rconn_open: failures are reported from the loop */
  dl_rconn_cb push_cb;       /* pub/sub messages */
  void *push_priv;
  dl_buf argv;               /* dl_rconn_argv's encoding, kept: the periodic commands allocate nothing */
};

static int64_t mono(void) { return dl_mono_ms(); }

static dl_err q_push(dl_rconn *c, dl_rconn_cb cb, void *priv, int64_t deadline) {
  if (c->qlen == c->qcap) {
    size_t ncap = c->qcap ? c->qcap * 2 : 64;
    if (ncap > DL_RCONN_PENDING_MAX) ncap = DL_RCONN_PENDING_MAX;
    if (ncap == c->qcap) return DL_EFULL;
    pending *nq = malloc(ncap * sizeof *nq);
    if (!nq) return DL_ENOMEM;
    for (size_t i = 0; i < c->qlen; i++) nq[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = nq;
    c->qcap = ncap;
    c->qhead = 0;
  }
  c->q[(c->qhead + c->qlen) % c->qcap] = (pending){cb, priv, deadline};
  c->qlen++;
  return DL_EOK;
}

static int q_pop(dl_rconn *c, pending *out) {
  if (!c->qlen) return 0;
  *out = c->q[c->qhead];
  c->qhead = (c->qhead + 1) % c->qcap;
  c->qlen--;
  return 1;
}

static void really_free(dl_rconn *c);

/* Out of a handler: a connection freed by a callback inside it is freed now. */
static void leave(dl_rconn *c) {
  c->depth--;
  if (c->free_later && !c->depth) really_free(c);
}

static void really_free(dl_rconn *c) {
  if (c->timer) event_free(c->timer);
  if (c->rd) event_free(c->rd);
  if (c->bev) bufferevent_free(c->bev); /* frees the SSL too (BEV_OPT_CLOSE_ON_FREE) */
  if (c->reader) redisReaderFree(c->reader);
  dl_buf_free(&c->argv);
  free(c->q);
  free(c);
}

/* Every pending callback gets NULL, in order. */
static void fail_pending(dl_rconn *c) {
  pending p;
  c->depth++;
  while (q_pop(c, &p))
    if (p.cb) p.cb(c, NULL, p.priv);
  c->depth--;
}

static void go_down(dl_rconn *c, const char *why) {
  if (c->dead) return;
  c->dead = 1;
  c->ready = 0;
  if (c->bev) bufferevent_disable(c->bev, EV_READ | EV_WRITE);
  if (c->rd) event_del(c->rd);
  fail_pending(c);
  c->depth++;
  if (!c->free_later && c->ev.down) c->ev.down(c, c->ev.ud, why);
  c->depth--; /* always inside a handler that frees a freed connection when it unwinds */
}

static void on_sock_read(evutil_socket_t fd, short what, void *arg);

/* What the bufferevent has read, to the reader; the number of bytes moved. */
static size_t feed_input(dl_rconn *c) {
  struct evbuffer *in = bufferevent_get_input(c->bev);
  struct evbuffer_iovec v[8];
  int n = evbuffer_peek(in, -1, NULL, v, 8);
  size_t fed = 0;
  for (int i = 0; i < n && i < 8; i++) {
    redisReaderFeed(c->reader, v[i].iov_base, v[i].iov_len);
    fed += v[i].iov_len;
  }
  evbuffer_drain(in, fed);
  return fed;
}

/* Plain TCP or unix, once the setup is answered: replies are read with recv into a buffer of ours
 * and fed to the reader, not through the bufferevent (which allocated a buffer chain per read and
 * asked the kernel for the readable byte count first: an ioctl per read). The setup went through
 * the bufferevent and its connect timeout; whatever it read past the setup goes to the reader. */
static void read_direct(dl_rconn *c) {
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  if (c->ssl || fd < 0 || c->rd) return;
  c->rd = event_new(c->base, fd, EV_READ | EV_PERSIST, on_sock_read, c);
  if (!c->rd || event_add(c->rd, NULL) != 0) { /* the bufferevent keeps reading */
    if (c->rd) event_free(c->rd);
    c->rd = NULL;
    return;
  }
  bufferevent_disable(c->bev, EV_READ);
  while (feed_input(c) > 0) {
  }
}

static void on_setup(dl_rconn *c, const redisReply *r, void *priv) {
  const char *what = priv;
  if (!r) return; /* connection lost: go_down reports it */
  if (r->type == REDIS_REPLY_ERROR) {
    char why[400];
    snprintf(why, sizeof why, "%s failed: %.300s", what, r->str);
    go_down(c, why);
    return;
  }
  if (!strcmp(what, "ROLE") && !dl_topo_role_is_master(r)) {
    go_down(c, "not the primary (ROLE is not master)");
    return;
  }
  if (--c->setup_left == 0) {
    c->ready = 1;
    bufferevent_set_timeouts(c->bev, NULL, NULL); /* from now on: per-command deadlines */
    read_direct(c);
    if (c->ev.ready) c->ev.ready(c, c->ev.ud);
  }
}

/* Every whole reply the reader holds, to its callback in send order. 0, or -1 when the
 * connection went down or is being freed. */
static int deliver(dl_rconn *c) {
  for (;;) {
    void *reply = NULL;
    if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
      char why[200];
      snprintf(why, sizeof why, "protocol error from Redis: %s", c->reader->errstr);
      go_down(c, why);
      return -1;
    }
    if (!reply) return 0;
    pending p;
    if (!q_pop(c, &p)) {
      if (c->push_cb) {
        c->push_cb(c, reply, c->push_priv);
        dl_reply_free(reply);
        if (c->dead || c->free_later) return -1;
        continue;
      }
      dl_reply_free(reply);
      go_down(c, "a reply nobody asked for");
      return -1;
    }
    if (p.cb) p.cb(c, reply, p.priv);
    dl_reply_free(reply);
    if (c->dead || c->free_later) return -1;
  }
}

static void dispatch(dl_rconn *c) {
  while (!c->dead && !c->rd && feed_input(c) > 0)
    if (deliver(c) != 0) return;
}

/* The socket is readable (direct reads): a few buffers' worth at most per wake-up, so one busy
 * connection does not hold the loop. */
static void on_sock_read(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  dl_rconn *c = arg;
  char buf[DL_RCONN_READ_BYTES];
  c->depth++;
  for (int i = 0; i < DL_RCONN_READS_PER_WAKE && !c->dead && !c->free_later; i++) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
        go_down(c, "out of memory reading a reply");
        break;
      }
      if (deliver(c) != 0 || (size_t)n < sizeof buf) break;
    } else if (n == 0) {
      go_down(c, "connection closed by Redis");
      break;
    } else {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) break;
      go_down(c, evutil_socket_error_to_string(err));
      break;
    }
  }
  leave(c);
}

static void on_read(struct bufferevent *bev, void *arg) {
  (void)bev;
  dl_rconn *c = arg;
  c->depth++;
  dispatch(c);
  leave(c);
}

static void tls_reason(dl_rconn *c, char *out, size_t cap) {
  unsigned long e = bufferevent_get_openssl_error(c->bev);
  long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
  if (vr != X509_V_OK)
    snprintf(out, cap, "TLS certificate verification failed: %s", X509_verify_cert_error_string(vr));
  else if (e)
    snprintf(out, cap, "TLS error: %s", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown");
  else
    out[0] = 0;
}

static void keepalive(struct bufferevent *bev) {
  evutil_socket_t fd = bufferevent_getfd(bev);
  if (fd < 0) return;
  int on = 1, idle = DL_REDIS_KEEPALIVE_IDLE_S, intvl = DL_REDIS_KEEPALIVE_INTVL_S, cnt = DL_REDIS_KEEPALIVE_CNT;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
  dl_rconn *c = arg;
  if (c->opening && !(what & BEV_EVENT_CONNECTED)) {
    /* libevent reports some failures (EMFILE, a refused numeric connect) from inside
     * bufferevent_socket_connect: the owner has no handle yet, so say it from the loop */
    snprintf(c->fail_why, sizeof c->fail_why, "cannot connect: %s",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    event_active(c->timer, EV_TIMEOUT, 1);
    return;
  }
  c->depth++;
  if (what & BEV_EVENT_CONNECTED) {
    if (!c->t.unix_path[0]) keepalive(bev);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
  } else {
    char why[400] = "", tls[300] = "";
    if (c->t.tls) tls_reason(c, tls, sizeof tls);
    if (tls[0]) snprintf(why, sizeof why, "%s", tls);
    else if (what & BEV_EVENT_TIMEOUT) snprintf(why, sizeof why, "%s", c->ready ? "timed out" : "connect timed out");
    else if (what & BEV_EVENT_EOF) snprintf(why, sizeof why, "connection closed by Redis");
    else {
      int dns = bufferevent_socket_get_dns_error(bev);
      if (dns) snprintf(why, sizeof why, "cannot resolve %s: %s", c->t.host, evutil_gai_strerror(dns));
      else snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    go_down(c, why);
  }
  leave(c);
}

/* The head command's deadline: a Redis that stops answering is dead. */
static void on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  dl_rconn *c = arg;
  if (c->dead) return;
  if (!c->fail_why[0] && (!c->qlen || mono() < c->q[c->qhead].deadline_ms)) return;
  c->depth++;
  go_down(c, c->fail_why[0] ? c->fail_why : "no reply within the command timeout");
  leave(c);
}

static dl_err send_raw(dl_rconn *c, const void *resp, size_t len, int64_t extra_ms, dl_rconn_cb cb, void *priv) {
  if (c->dead) return DL_ECLOSED;
  dl_err e = q_push(c, cb, priv, mono() + c->cmd_timeout_ms + extra_ms);
  if (e != DL_EOK) return e;
  /* Plain TCP or unix with nothing queued before it: straight to the socket (no buffer chain to
   * allocate, no write watcher to arm and disarm). What the socket does not take, or any error,
   * goes through the bufferevent as before: it queues the rest, or meets the error and reports it. */
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  if (!c->ssl && c->ready && fd >= 0 && evbuffer_get_length(out) == 0) {
    ssize_t n = send(fd, resp, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == (ssize_t)len) return DL_EOK;
    if (n > 0) {
      resp = (const char *)resp + n;
      len -= (size_t)n;
    }
  }
  if (bufferevent_write(c->bev, resp, len) != 0) {
    c->qlen--; /* never sent: take its callback back */
    return DL_ENOMEM;
  }
  return DL_EOK;
}

/* An argv encoded into the buffer the connection keeps (send_raw copies what the socket does not
 * take at once; no callback runs inside it) and sent. */
static dl_err send_argv(dl_rconn *c, int argc, const char *const *argv, const size_t *lens, int64_t extra_ms,
                        dl_rconn_cb cb, void *priv) {
  dl_buf_reset(&c->argv);
  dl_err e = dl_cmd_resp_argv(&c->argv, argc, argv, lens);
  if (e == DL_EOK) e = send_raw(c, c->argv.p, c->argv.len, extra_ms, cb, priv);
  if (c->argv.cap > DL_RCONN_ARGV_KEEP) dl_buf_free(&c->argv); /* a rare big one is not kept */
  return e;
}

static dl_err setup_cmd(dl_rconn *c, int argc, const char *const *argv, const char *what) {
  dl_err e = send_argv(c, argc, argv, NULL, 0, on_setup, (void *)what);
  if (e == DL_EOK) c->setup_left++;
  return e;
}

dl_rconn *dl_rconn_open(struct event_base *base, const dl_rconn_target *t, const dl_rconn_opts *o,
                        const dl_rconn_events *ev) {
  dl_rconn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->base = base;
  c->t = *t;
  c->ev = *ev;
  c->cmd_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : DL_REDIS_COMMAND_TIMEOUT_MS;
  dl_buf_init(&c->argv, DL_RCONN_ARGV_MAX);
  c->reader = redisReaderCreate();
  if (c->reader) c->reader->fn = dl_reply_fns(); /* reply objects from a pool: no malloc per reply */
  if (c->reader) c->reader->maxbuf = DL_RCONN_READER_KEEP_BYTES;
  c->timer = event_new(base, -1, EV_PERSIST, on_timer, c);
  if (!c->reader || !c->timer) goto oom;
  if (t->tls) {
    c->ssl = SSL_new(t->tls);
    if (!c->ssl) goto oom;
    /* the certificate must name the host we meant */
    if (dl_tls_bind(c->ssl, t->sni[0] ? t->sni : t->host) != 0) {
      SSL_free(c->ssl);
      c->ssl = NULL;
      goto oom;
    }
    c->bev = bufferevent_openssl_socket_new(base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
      SSL_free(c->ssl);
      c->ssl = NULL;
      goto oom;
    }
  } else {
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) goto oom;
  }
  bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
  struct timeval cto = {(time_t)(o->connect_timeout_ms / 1000), (suseconds_t)(o->connect_timeout_ms % 1000) * 1000};
  if (o->connect_timeout_ms > 0) bufferevent_set_timeouts(c->bev, &cto, &cto);
  struct timeval tick = {0, DL_RCONN_TICK_MS * 1000};
  event_add(c->timer, &tick);
  /* setup commands queue before anything else on the connection */
  if (o->password && *o->password) {
    const char *a3[] = {"AUTH", o->user ? o->user : "", o->password};
    if (o->user && *o->user ? setup_cmd(c, 3, a3, "AUTH") : setup_cmd(c, 2, (const char *[]){"AUTH", o->password}, "AUTH"))
      goto oom;
  }
  char db[16];
  snprintf(db, sizeof db, "%d", o->db);
  if (o->db > 0 && setup_cmd(c, 2, (const char *[]){"SELECT", db}, "SELECT")) goto oom;
  if (o->client_name && setup_cmd(c, 3, (const char *[]){"CLIENT", "SETNAME", o->client_name}, "CLIENT SETNAME"))
    goto oom;
  if (o->require_primary && setup_cmd(c, 1, (const char *[]){"ROLE"}, "ROLE")) goto oom;
  if (!c->setup_left && setup_cmd(c, 1, (const char *[]){"PING"}, "PING")) goto oom;
  int rc;
  c->opening = 1;
  if (t->unix_path[0]) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(t->unix_path) >= sizeof sun.sun_path) {
      snprintf(c->fail_why, sizeof c->fail_why, "unix socket path too long");
      event_active(c->timer, EV_TIMEOUT, 1);
      return c;
    }
    memcpy(sun.sun_path, t->unix_path, strlen(t->unix_path) + 1);
    rc = bufferevent_socket_connect(c->bev, (struct sockaddr *)&sun, sizeof sun);
  } else {
    rc = bufferevent_socket_connect_hostname(c->bev, o->dns, AF_UNSPEC, t->host, t->port);
  }
  c->opening = 0;
  if (rc != 0 && !c->fail_why[0]) { /* reported as `down` from the loop, never from inside open */
    snprintf(c->fail_why, sizeof c->fail_why, "cannot connect: %s",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    event_active(c->timer, EV_TIMEOUT, 1);
  }
  return c;
oom:
  really_free(c);
  return NULL;
}

dl_err dl_rconn_send(dl_rconn *c, const void *resp, size_t len, int64_t extra_ms, dl_rconn_cb cb, void *priv) {
  if (!c->ready) return DL_ECLOSED;
  return send_raw(c, resp, len, extra_ms, cb, priv);
}

dl_err dl_rconn_argv(dl_rconn *c, int argc, const char *const *argv, const size_t *lens, int64_t extra_ms,
                     dl_rconn_cb cb, void *priv) {
  if (!c->ready) return DL_ECLOSED;
  return send_argv(c, argc, argv, lens, extra_ms, cb, priv);
}

int dl_rconn_fd(const dl_rconn *c) { return c->bev ? (int)bufferevent_getfd(c->bev) : -1; }

void dl_rconn_on_push(dl_rconn *c, dl_rconn_cb cb, void *priv) {
  c->push_cb = cb;
  c->push_priv = priv;
}

void dl_rconn_free(dl_rconn *c) {
  if (!c) return;
  if (c->free_later) return;
  c->free_later = 1;
  c->depth++;
  if (!c->dead) {
    c->dead = 1;
    c->ready = 0;
    fail_pending(c);
  }
  c->depth--;
  if (!c->depth) really_free(c);
}
