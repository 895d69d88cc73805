#include "dl_rsync.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dl_buf.h"
#include "dl_rurl.h"

/* One command's RESP (dylivectl's commands are small; an XADD of a test event is the largest). */
#define DL_RSYNC_CMD_MAX (1u << 20)

struct dl_rsync {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
  redisReader *rd;
  int timeout_ms;
  char err[300];
};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `ev` or the deadline passes. */
static int wait_fd(int fd, short ev, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, ev, 0};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return -1;
  }
}

static int tcp_connect(const char *host, int port, int timeout_ms, char *why, size_t cap) {
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int g = getaddrinfo(host, ps, &hints, &ai);
  if (g != 0) return snprintf(why, cap, "cannot resolve %s: %s", host, gai_strerror(g)), -1;
  int fd = -1;
  long long deadline = now_ms() + timeout_ms;
  for (struct addrinfo *a = ai; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 1) {
      int e = 0;
      socklen_t l = sizeof e;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
      if (!e) break;
      errno = e;
    }
    snprintf(why, cap, "cannot connect to %s:%d: %s", host, port, errno ? strerror(errno) : "timed out");
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

static int unix_connect(const char *path, char *why, size_t cap) {
  struct sockaddr_un sun = {0};
  sun.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sun.sun_path) return snprintf(why, cap, "socket path too long"), -1;
  memcpy(sun.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
    snprintf(why, cap, "cannot connect to %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); /* commands wait with poll and a deadline */
  return fd;
}

static ssize_t io_write(dl_rsync *c, const void *p, size_t n) {
  if (c->ssl) {
    int r = SSL_write(c->ssl, p, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EIO;
    return -1;
  }
  return send(c->fd, p, n, MSG_NOSIGNAL);
}

static ssize_t io_read(dl_rsync *c, void *p, size_t n) {
  if (c->ssl) {
    int r = SSL_read(c->ssl, p, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EIO;
    return -1;
  }
  return recv(c->fd, p, n, 0);
}

static int tls_start(dl_rsync *c, const dl_redis_addr *a, const dl_rsync_opts *o, char *why, size_t cap) {
  c->ctx = SSL_CTX_new(TLS_client_method());
  if (!c->ctx) return snprintf(why, cap, "cannot create a TLS context"), -1;
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
  int ok = o->ca_file && *o->ca_file ? SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL)
                                     : SSL_CTX_set_default_verify_paths(c->ctx);
  if (ok != 1) return snprintf(why, cap, "cannot load the CA bundle"), -1;
  if (o->cert && *o->cert &&
      (SSL_CTX_use_certificate_chain_file(c->ctx, o->cert) != 1 ||
       SSL_CTX_use_PrivateKey_file(c->ctx, o->key && *o->key ? o->key : o->cert, SSL_FILETYPE_PEM) != 1))
    return snprintf(why, cap, "cannot load the client certificate"), -1;
  c->ssl = SSL_new(c->ctx);
  if (!c->ssl) return snprintf(why, cap, "cannot create a TLS session"), -1;
  const char *name = o->sni && *o->sni ? o->sni : a->host;
  SSL_set_tlsext_host_name(c->ssl, name);
  if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1) SSL_set1_host(c->ssl, name);
  SSL_set_fd(c->ssl, c->fd);
  long long deadline = now_ms() + c->timeout_ms;
  for (;;) {
    int r = SSL_connect(c->ssl);
    if (r == 1) return 0;
    int e = SSL_get_error(c->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
        wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) == 1)
      continue;
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK)
      return snprintf(why, cap, "TLS certificate verification failed: %s", X509_verify_cert_error_string(vr)), -1;
    unsigned long le = ERR_get_error();
    return snprintf(why, cap, "TLS handshake failed: %s", le ? ERR_reason_error_string(le) : "timed out"), -1;
  }
}

static redisReply *cmd_strs(dl_rsync *c, int argc, const char *const *argv) {
  return dl_rsync_cmd(c, argc, argv, NULL);
}

dl_rsync *dl_rsync_connect(const char *url, const dl_rsync_opts *o, char *why, size_t cap) {
  dl_redis_addr a;
  if (dl_redis_parse_url(url, &a, why, cap) != 0) return NULL;
  if (a.mode != DL_RURL_SINGLE) {
    snprintf(why, cap, "%s URLs are not supported by this dylivectl yet", a.mode == DL_RURL_SENTINEL ? "sentinel" : "cluster");
    return NULL;
  }
  if (!a.password[0] && getenv("DYLIVE_REDIS_PASSWORD")) snprintf(a.password, sizeof a.password, "%s", getenv("DYLIVE_REDIS_PASSWORD"));
  dl_rsync *c = calloc(1, sizeof *c);
  if (!c) return snprintf(why, cap, "out of memory"), NULL;
  c->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : 5000;
  c->rd = redisReaderCreate();
  c->fd = a.unix_path[0] ? unix_connect(a.unix_path, why, cap) : tcp_connect(a.host, a.port, c->timeout_ms, why, cap);
  if (c->fd < 0 || !c->rd) goto fail;
  if (a.tls && tls_start(c, &a, o ? o : &(dl_rsync_opts){0}, why, cap) != 0) goto fail;
  redisReply *r = NULL;
  if (a.password[0]) {
    const char *u[] = {"AUTH", a.user, a.password};
    const char *p[] = {"AUTH", a.password};
    r = a.user[0] ? cmd_strs(c, 3, u) : cmd_strs(c, 2, p);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      snprintf(why, cap, "AUTH failed: %s", r ? r->str : c->err);
      freeReplyObject(r);
      goto fail;
    }
    freeReplyObject(r);
  }
  if (a.db) {
    char db[16];
    snprintf(db, sizeof db, "%d", a.db);
    const char *s[] = {"SELECT", db};
    r = cmd_strs(c, 2, s);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      snprintf(why, cap, "SELECT %d failed: %s", a.db, r ? r->str : c->err);
      freeReplyObject(r);
      goto fail;
    }
    freeReplyObject(r);
  }
  return c;
fail:
  dl_rsync_free(c);
  return NULL;
}

redisReply *dl_rsync_cmd(dl_rsync *c, int argc, const char *const *argv, const size_t *lens) {
  if (c->fd < 0) return NULL;
  dl_buf b;
  dl_buf_init(&b, DL_RSYNC_CMD_MAX);
  dl_err e = dl_buf_printf(&b, "*%d\r\n", argc);
  for (int i = 0; e == DL_EOK && i < argc; i++) {
    size_t l = lens ? lens[i] : strlen(argv[i]);
    e = dl_buf_printf(&b, "$%zu\r\n", l);
    if (e == DL_EOK) e = dl_buf_add(&b, argv[i], l);
    if (e == DL_EOK) e = dl_buf_add(&b, "\r\n", 2);
  }
  long long deadline = now_ms() + c->timeout_ms;
  size_t off = 0;
  while (e == DL_EOK && off < b.len) {
    ssize_t w = io_write(c, b.p + off, b.len - off);
    if (w > 0) off += (size_t)w;
    else if (w < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(c->fd, POLLOUT, deadline) == 1) continue;
    else {
      snprintf(c->err, sizeof c->err, "write to Redis failed: %s", w < 0 ? strerror(errno) : "closed");
      goto dead;
    }
  }
  dl_buf_free(&b);
  for (;;) {
    void *reply = NULL;
    if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
      snprintf(c->err, sizeof c->err, "protocol error from Redis");
      goto dead;
    }
    if (reply) return reply;
    char buf[16384];
    ssize_t n = io_read(c, buf, sizeof buf);
    if (n > 0) {
      redisReaderFeed(c->rd, buf, (size_t)n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      int w = wait_fd(c->fd, POLLIN, deadline);
      if (w == 0) {
        snprintf(c->err, sizeof c->err, "Redis did not answer within %d ms", c->timeout_ms);
        goto dead;
      }
    } else {
      snprintf(c->err, sizeof c->err, "connection to Redis lost: %s", n < 0 ? strerror(errno) : "closed");
      goto dead;
    }
  }
dead:
  dl_buf_free(&b);
  if (c->ssl) {
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  close(c->fd);
  c->fd = -1;
  return NULL;
}

const char *dl_rsync_error(const dl_rsync *c) { return c->err; }

void dl_rsync_free(dl_rsync *c) {
  if (!c) return;
  if (c->ssl) SSL_free(c->ssl);
  if (c->ctx) SSL_CTX_free(c->ctx);
  if (c->fd >= 0) close(c->fd);
  if (c->rd) redisReaderFree(c->rd);
  free(c);
}
