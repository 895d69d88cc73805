/* dl_rurl — the Redis URL forms of CONTRACT §2.1, parsed (no I/O):
 *   redis://[user[:password]@]host[:port][/db]        one node
 *   rediss://…                                        one node over TLS
 *   unix:///path.sock                                 one node on a unix socket
 *   redis-sentinel://[user[:pw]@]h:p[,h:p…][/db]#master   the primary found through sentinels
 *   rediss-sentinel://…                               the same, data nodes over TLS
 *   redis-cluster://[user[:pw]@]h:p[,h:p…]            Redis Cluster (seed nodes)
 *   rediss-cluster://…                                the same over TLS
 * User and password are percent-decoded. Passwords may also come from the environment
 * (dl_redis_addr_credentials, the one place the worker and dylivectl read them). Nothing here
 * ever prints a password. */
#ifndef DL_RURL_H
#define DL_RURL_H

#include <stddef.h>

#define DL_RURL_NODES_MAX 16

typedef enum { DL_RURL_SINGLE, DL_RURL_SENTINEL, DL_RURL_CLUSTER } dl_rurl_mode;

typedef struct dl_rnode {
  char host[256];
  int port;
} dl_rnode;

typedef struct dl_redis_addr {
  dl_rurl_mode mode;
  int tls;
  char host[256];          /* the first node (SINGLE: the node) */
  int port;
  char unix_path[256];     /* non-empty for unix:// */
  dl_rnode nodes[DL_RURL_NODES_MAX];  /* every node given (seeds, sentinels) */
  int nnodes;
  char master[128];        /* sentinel: the master group name */
  char user[128];
  char password[256];
  char sentinel_password[256]; /* AUTH for the sentinels themselves ("" = none) */
  int db;
} dl_redis_addr;

/* 0 on success; -1 with why (never containing the password). */
int dl_redis_parse_url(const char *url, dl_redis_addr *out, char *why, size_t why_cap);
/* Passwords from the environment, so they need not sit in a URL or argv: when the URL has none,
 * DYLIVE_REDIS_PASSWORD, else the first line of the file DYLIVE_REDIS_PASSWORD_FILE; the
 * sentinels' own from DYLIVE_SENTINEL_PASSWORD. 0, or -1 with why (an unreadable file, a password
 * longer than the field: never truncated). Reads the environment and that file, nothing else. */
int dl_redis_addr_credentials(dl_redis_addr *a, char *why, size_t why_cap);

#endif
