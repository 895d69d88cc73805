/* dl_rconn — one connection to one Redis node, our own (DESIGN §7 "own the Redis connection").
 *
 * hiredis is the protocol library here (redisReader parses replies; commands arrive as RESP bytes
 * built by dl_cmd or from an argv), libevent's bufferevent is the transport: plain TCP (names
 * resolved asynchronously with evdns, so the control thread never blocks on DNS), a unix socket,
 * or TLS (bufferevent_openssl, verification always on). On connect it sends AUTH, SELECT and
 * CLIENT SETNAME, then reports ready. Replies are matched to callbacks in order. A command that
 * gets no reply within its deadline kills the connection (a silent Redis is a dead Redis); TCP
 * keepalive finds dead peers on idle connections.
 *
 * Callbacks: a command's callback gets its reply, or NULL when the connection was lost first
 * (every pending command gets NULL, in order, before `down` is reported). dl_rconn_free may be
 * called from any callback: destruction is deferred until the callback returns. */
#ifndef DL_RCONN_H
#define DL_RCONN_H

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

struct event_base;
struct evdns_base;

typedef struct dl_rconn dl_rconn;
typedef void (*dl_rconn_cb)(dl_rconn *c, const redisReply *r, void *priv);

typedef struct dl_rconn_target {
  char host[256];            /* name or numeric address (TCP) */
  int port;
  char unix_path[256];       /* non-empty: a unix socket */
  SSL_CTX *tls;              /* non-NULL: TLS with this context (borrowed; verification on) */
  char sni[256];             /* TLS server name and the name verified ("" = host) */
} dl_rconn_target;

typedef struct dl_rconn_opts {
  const char *user, *password;  /* AUTH (password may be NULL/"") */
  int db;                       /* SELECT (skipped when 0 or on Cluster) */
  const char *client_name;      /* CLIENT SETNAME (NULL: none) */
  int require_primary;          /* ROLE must say "master" (Sentinel: a demoted primary is refused) */
  int64_t connect_timeout_ms;
  int64_t command_timeout_ms;   /* default deadline of a command */
  struct evdns_base *dns;
} dl_rconn_opts;

typedef struct dl_rconn_events {
  void (*ready)(dl_rconn *c, void *ud);
  void (*down)(dl_rconn *c, void *ud, const char *why); /* after every pending callback got NULL */
  void *ud;
} dl_rconn_events;

/* Starts connecting; NULL only when out of memory (failures arrive as `down`). */
dl_rconn *dl_rconn_open(struct event_base *base, const dl_rconn_target *t, const dl_rconn_opts *o,
                        const dl_rconn_events *ev);
/* Sends RESP bytes (one or more commands: ncmds replies expected, one callback each… here one
 * command per call). extra_ms extends the deadline (blocking commands: their block time). */
dl_err dl_rconn_send(dl_rconn *c, const void *resp, size_t len, int64_t extra_ms, dl_rconn_cb cb, void *priv);
/* Builds and sends a command from an argv (lens NULL: strlen). */
dl_err dl_rconn_argv(dl_rconn *c, int argc, const char *const *argv, const size_t *lens, int64_t extra_ms,
                     dl_rconn_cb cb, void *priv);
/* Pub/sub: replies that arrive with no command waiting (messages after SUBSCRIBE) go to cb
 * instead of counting as a protocol error. */
void dl_rconn_on_push(dl_rconn *c, dl_rconn_cb cb, void *priv);
/* The connection's socket (diagnostics and tests: what the kernel holds, SIOCOUTQ); -1 when none. */
int dl_rconn_fd(const dl_rconn *c);
/* Closes (pending callbacks get NULL; `down` is not reported) and frees, now or after the
 * callback in progress. */
void dl_rconn_free(dl_rconn *c);

#endif
