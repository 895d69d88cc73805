#include "dl_rsync.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dl_buf.h"
#include "dl_keys.h"
#include "dl_rurl.h"
#include "dl_tls.h"
#include "dl_topo.h"

/* One command's RESP (dylivectl's commands are small). */
#define DL_RSYNC_CMD_MAX (1u << 20)
/* Cluster primaries dylivectl talks to at most. */
#define DL_RSYNC_NODES_MAX 128
/* MOVED/ASK hops for one command before giving up (a resharding in progress settles fast). */
#define DL_RSYNC_REDIRECTS_MAX 5

typedef struct conn {
  char host[256];
  int port;
  int fd;
  SSL *ssl;
  redisReader *rd;
} conn;

struct dl_rsync {
  dl_redis_addr a;
  dl_rsync_opts o;
  SSL_CTX *ctx;
  int timeout_ms;
  conn nodes[DL_RSYNC_NODES_MAX];
  int nnodes;
  unsigned char slot_node[DL_SLOTS];
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

static ssize_t io_write(conn *k, const void *p, size_t n) {
  if (k->ssl) {
    int r = SSL_write(k->ssl, p, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(k->ssl, r);
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EIO;
    return -1;
  }
  return send(k->fd, p, n, MSG_NOSIGNAL);
}

static ssize_t io_read(conn *k, void *p, size_t n) {
  if (k->ssl) {
    int r = SSL_read(k->ssl, p, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(k->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EIO;
    return -1;
  }
  return recv(k->fd, p, n, 0);
}

static void conn_close(conn *k) {
  if (k->ssl) SSL_free(k->ssl);
  if (k->fd >= 0) close(k->fd);
  if (k->rd) redisReaderFree(k->rd);
  k->ssl = NULL;
  k->fd = -1;
  k->rd = NULL;
}

static int tls_start(dl_rsync *c, conn *k, char *why, size_t cap) {
  if (!c->ctx && !(c->ctx = dl_tls_client_ctx(c->o.ca_file, c->o.cert, c->o.key, why, cap))) return -1;
  k->ssl = SSL_new(c->ctx);
  if (!k->ssl) return snprintf(why, cap, "cannot create a TLS session"), -1;
  const char *name = c->o.sni && *c->o.sni ? c->o.sni : k->host;
  if (dl_tls_bind(k->ssl, name) != 0) return snprintf(why, cap, "TLS: cannot verify the name %s", name), -1;
  SSL_set_fd(k->ssl, k->fd);
  long long deadline = now_ms() + c->timeout_ms;
  for (;;) {
    int r = SSL_connect(k->ssl);
    if (r == 1) return 0;
    int e = SSL_get_error(k->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
        wait_fd(k->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) == 1)
      continue;
    long vr = SSL_get_verify_result(k->ssl);
    if (vr != X509_V_OK)
      return snprintf(why, cap, "TLS certificate verification failed: %s", X509_verify_cert_error_string(vr)), -1;
    unsigned long le = ERR_get_error();
    return snprintf(why, cap, "TLS handshake failed: %s", le ? ERR_reason_error_string(le) : "timed out"), -1;
  }
}

/* One command on one connection; NULL (and the connection closed) on I/O failure. */
static redisReply *exchange(dl_rsync *c, conn *k, int argc, const char *const *argv, const size_t *lens) {
  if (k->fd < 0) return NULL;
  dl_buf b;
  dl_buf_init(&b, DL_RSYNC_CMD_MAX);
  dl_err e = dl_buf_printf(&b, "*%d\r\n", argc);
  for (int i = 0; e == DL_EOK && i < argc; i++) {
    size_t l = lens ? lens[i] : strlen(argv[i]);
    e = dl_buf_printf(&b, "$%zu\r\n", l);
    if (e == DL_EOK) e = dl_buf_add(&b, argv[i], l);
    if (e == DL_EOK) e = dl_buf_add(&b, "\r\n", 2);
  }
  if (e != DL_EOK) {
    snprintf(c->err, sizeof c->err, "command too large");
    dl_buf_free(&b);
    return NULL;
  }
  long long deadline = now_ms() + c->timeout_ms;
  size_t off = 0;
  while (off < b.len) {
    ssize_t w = io_write(k, b.p + off, b.len - off);
    if (w > 0) off += (size_t)w;
    else if (w < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(k->fd, POLLOUT, deadline) == 1) continue;
    else {
      snprintf(c->err, sizeof c->err, "write to Redis at %s:%d failed: %s", k->host, k->port,
               w < 0 ? strerror(errno) : "closed");
      goto dead;
    }
  }
  dl_buf_free(&b);
  for (;;) {
    void *reply = NULL;
    if (redisReaderGetReply(k->rd, &reply) != REDIS_OK) {
      snprintf(c->err, sizeof c->err, "protocol error from Redis at %s:%d", k->host, k->port);
      goto dead;
    }
    if (reply) return reply;
    char buf[16384];
    ssize_t n = io_read(k, buf, sizeof buf);
    if (n > 0) {
      redisReaderFeed(k->rd, buf, (size_t)n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (wait_fd(k->fd, POLLIN, deadline) == 0) {
        snprintf(c->err, sizeof c->err, "Redis at %s:%d did not answer within %d ms", k->host, k->port, c->timeout_ms);
        goto dead;
      }
    } else {
      snprintf(c->err, sizeof c->err, "connection to Redis at %s:%d lost: %s", k->host, k->port,
               n < 0 ? strerror(errno) : "closed");
      goto dead;
    }
  }
dead:
  dl_buf_free(&b);
  conn_close(k);
  return NULL;
}

/* Connects k (host/port set) and runs the set-up: AUTH (when pw is not ""), SELECT, and ROLE when
 * asked. */
static int conn_open(dl_rsync *c, conn *k, int tls, const char *user, const char *pw, int select_db, int want_primary,
                     char *why, size_t cap) {
  k->rd = redisReaderCreate();
  k->fd = c->a.unix_path[0] && !k->port ? unix_connect(c->a.unix_path, why, cap)
                                        : tcp_connect(k->host, k->port, c->timeout_ms, why, cap);
  if (k->fd < 0 || !k->rd) goto fail;
  if (tls && tls_start(c, k, why, cap) != 0) goto fail;
  redisReply *r;
  if (pw[0]) {
    const char *u[] = {"AUTH", user, pw}, *p[] = {"AUTH", pw};
    r = user[0] ? exchange(c, k, 3, u, NULL) : exchange(c, k, 2, p, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      snprintf(why, cap, "AUTH failed: %s", r ? r->str : c->err);
      freeReplyObject(r);
      goto fail;
    }
    freeReplyObject(r);
  }
  if (select_db && c->a.db) {
    char db[16];
    snprintf(db, sizeof db, "%d", c->a.db);
    const char *s[] = {"SELECT", db};
    r = exchange(c, k, 2, s, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      snprintf(why, cap, "SELECT %d failed: %s", c->a.db, r ? r->str : c->err);
      freeReplyObject(r);
      goto fail;
    }
    freeReplyObject(r);
  }
  if (want_primary) {
    const char *role[] = {"ROLE"};
    r = exchange(c, k, 1, role, NULL);
    int ok = dl_topo_role_is_master(r);
    freeReplyObject(r);
    if (!ok) {
      snprintf(why, cap, "%s:%d is not the primary", k->host, k->port);
      goto fail;
    }
  }
  return 0;
fail:
  conn_close(k);
  return -1;
}

static int node_add(dl_rsync *c, const char *host, int port) {
  for (int i = 0; i < c->nnodes; i++)
    if (c->nodes[i].port == port && !strcmp(c->nodes[i].host, host)) return i;
  if (c->nnodes >= DL_RSYNC_NODES_MAX) return -1;
  conn *k = &c->nodes[c->nnodes];
  memset(k, 0, sizeof *k);
  k->fd = -1;
  snprintf(k->host, sizeof k->host, "%s", host);
  k->port = port;
  return c->nnodes++;
}

/* The node's connection, opened on first use. */
static conn *node_conn(dl_rsync *c, int i) {
  conn *k = &c->nodes[i];
  if (k->fd >= 0) return k;
  char why[300];
  if (conn_open(c, k, c->a.tls, c->a.user, c->a.password, c->a.mode != DL_RURL_CLUSTER, 0, why, sizeof why) != 0) {
    snprintf(c->err, sizeof c->err, "%s", why);
    return NULL;
  }
  return k;
}

typedef struct map_build {
  dl_rsync *c;
  const char *asked;        /* "" in a range means this node */
  unsigned char map[DL_SLOTS];
} map_build;

static int map_range(void *ud, const dl_topo_range *rg) {
  map_build *b = ud;
  int ni = node_add(b->c, *rg->host ? rg->host : b->asked, rg->port);
  if (ni < 0) return -1;
  memset(b->map + rg->lo, ni, rg->hi - rg->lo + 1);
  return 0;
}

/* CLUSTER SLOTS from any node that answers: the slot → primary map (the one in use stays until a
 * whole new one is read). */
static int cluster_map(dl_rsync *c, char *why, size_t cap) {
  int tried = 0;
  for (int pass = 0; pass < 2; pass++) {
    int n = pass ? c->a.nnodes : c->nnodes;
    for (int i = 0; i < n; i++) {
      int idx = pass ? node_add(c, c->a.nodes[i].host, c->a.nodes[i].port) : i;
      if (idx < 0) continue;
      tried++;
      conn *k = node_conn(c, idx);
      if (!k) continue;
      const char *argv[] = {"CLUSTER", "SLOTS"};
      redisReply *r = exchange(c, k, 2, argv, NULL);
      map_build *b = malloc(sizeof *b);
      int ok = b != NULL;
      if (ok) {
        *b = (map_build){c, k->host, {0}};
        memset(b->map, 0xff, sizeof b->map);
        ok = r && dl_topo_slots(r, map_range, b) > 0;
      }
      if (ok) memcpy(c->slot_node, b->map, sizeof b->map);
      else if (r) snprintf(c->err, sizeof c->err, "%s:%d: unexpected CLUSTER SLOTS reply", k->host, k->port);
      free(b);
      freeReplyObject(r);
      if (ok) return 0;
    }
  }
  snprintf(why, cap, "no cluster node answered CLUSTER SLOTS (%d tried): %s", tried, c->err);
  return -1;
}

/* The primary from the sentinels, in turn. */
static int sentinel_primary(dl_rsync *c, char *why, size_t cap) {
  for (int i = 0; i < c->a.nnodes; i++) {
    conn s = {.fd = -1};
    snprintf(s.host, sizeof s.host, "%s", c->a.nodes[i].host);
    s.port = c->a.nodes[i].port;
    if (conn_open(c, &s, 0, "", c->a.sentinel_password, 0, 0, why, cap) != 0) continue;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", c->a.master};
    redisReply *r = exchange(c, &s, 3, argv, NULL);
    conn_close(&s);
    char host[256];
    int port;
    int ok = dl_topo_master_addr(r, host, sizeof host, &port) == 0;
    freeReplyObject(r);
    if (!ok) continue;
    int idx = node_add(c, host, port);
    if (idx < 0) break;
    if (conn_open(c, &c->nodes[idx], c->a.tls, c->a.user, c->a.password, 1, 1, why, cap) == 0) return 0;
  }
  if (!why[0]) snprintf(why, cap, "no sentinel knows the primary of %s", c->a.master);
  return -1;
}

dl_rsync *dl_rsync_connect(const char *url, const dl_rsync_opts *o, char *why, size_t cap) {
  dl_rsync *c = calloc(1, sizeof *c);
  if (!c) return snprintf(why, cap, "out of memory"), NULL;
  why[0] = 0;
  if (dl_redis_parse_url(url, &c->a, why, cap) != 0 || dl_redis_addr_credentials(&c->a, why, cap) != 0) goto fail;
  if (o) c->o = *o;
  c->timeout_ms = c->o.timeout_ms > 0 ? c->o.timeout_ms : 5000;
  memset(c->slot_node, 0xff, sizeof c->slot_node);
  switch (c->a.mode) {
  case DL_RURL_SINGLE:
    node_add(c, c->a.unix_path[0] ? c->a.unix_path : c->a.host, c->a.unix_path[0] ? 0 : c->a.port);
    if (conn_open(c, &c->nodes[0], c->a.tls, c->a.user, c->a.password, 1, 0, why, cap) != 0) goto fail;
    break;
  case DL_RURL_SENTINEL:
    if (sentinel_primary(c, why, cap) != 0) goto fail;
    break;
  default:
    if (cluster_map(c, why, cap) != 0) goto fail;
  }
  return c;
fail:
  dl_rsync_free(c);
  return NULL;
}

/* The key a command is about (for routing), or NULL. */
static const char *key_of(int argc, const char *const *argv) {
  if (argc < 2) return NULL;
  const char *v = argv[0];
  if (!strcasecmp(v, "XREAD") || !strcasecmp(v, "XREADGROUP")) {
    for (int i = 1; i + 1 < argc; i++)
      if (!strcasecmp(argv[i], "STREAMS")) return argv[i + 1];
    return NULL;
  }
  if (!strcasecmp(v, "EVAL") || !strcasecmp(v, "EVALSHA"))
    return argc > 3 && atoi(argv[2]) > 0 ? argv[3] : NULL;
  if (!strcasecmp(v, "SCAN") || !strcasecmp(v, "INFO") || !strcasecmp(v, "PING") || !strcasecmp(v, "CLUSTER") ||
      !strcasecmp(v, "CLIENT") || !strcasecmp(v, "CONFIG"))
    return NULL;
  return argv[1];
}

redisReply *dl_rsync_cmd_on(dl_rsync *c, int node, int argc, const char *const *argv, const size_t *lens) {
  if (node < 0 || node >= c->nnodes) return NULL;
  if (c->a.mode != DL_RURL_CLUSTER) node = 0;
  conn *k = node_conn(c, node);
  return k ? exchange(c, k, argc, argv, lens) : NULL;
}

redisReply *dl_rsync_cmd(dl_rsync *c, int argc, const char *const *argv, const size_t *lens) {
  if (c->a.mode != DL_RURL_CLUSTER) return dl_rsync_cmd_on(c, 0, argc, argv, lens);
  const char *key = key_of(argc, argv);
  int idx = 0;
  if (key) {
    unsigned s = dl_keys_slot(key, strlen(key));
    idx = c->slot_node[s] == 0xff ? 0 : c->slot_node[s];
  }
  int asking = 0;
  for (int hop = 0; hop <= DL_RSYNC_REDIRECTS_MAX; hop++) {
    conn *k = node_conn(c, idx);
    if (!k) return NULL;
    if (asking) {
      const char *a[] = {"ASKING"};
      freeReplyObject(exchange(c, k, 1, a, NULL));
      asking = 0;
    }
    redisReply *r = exchange(c, k, argc, argv, lens);
    char host[256];
    int ask, port;
    unsigned slot;
    if (!r || r->type != REDIS_REPLY_ERROR ||
        dl_redirect_parse(r->str, &ask, &slot, host, sizeof host, &port) != 0)
      return r;
    int ni = node_add(c, *host ? host : k->host, port); /* "" names the node that answered */
    if (ni < 0) return r;
    freeReplyObject(r);
    if (ask) { /* this one command goes there, after ASKING */
      asking = 1;
      idx = ni;
      continue;
    }
    /* the slot moved: load the map again and route by it (the redirection itself when no node
     * answers CLUSTER SLOTS) */
    char why[300];
    if (cluster_map(c, why, sizeof why) != 0 || c->slot_node[slot] == 0xff) c->slot_node[slot] = (unsigned char)ni;
    idx = key ? c->slot_node[dl_keys_slot(key, strlen(key))] : ni;
    if (idx == 0xff) idx = ni;
  }
  snprintf(c->err, sizeof c->err, "too many redirections");
  return NULL;
}

int dl_rsync_nodes(dl_rsync *c) { return c->a.mode == DL_RURL_CLUSTER ? c->nnodes : 1; }

int dl_rsync_is_primary(dl_rsync *c, int i) {
  if (c->a.mode != DL_RURL_CLUSTER) return i == 0;
  return i >= 0 && i < c->nnodes && memchr(c->slot_node, i, sizeof c->slot_node) != NULL; /* it serves slots */
}

const char *dl_rsync_error(const dl_rsync *c) { return c->err; }

void dl_rsync_free(dl_rsync *c) {
  if (!c) return;
  for (int i = 0; i < c->nnodes; i++) conn_close(&c->nodes[i]);
  if (c->ctx) SSL_CTX_free(c->ctx);
  free(c);
}
