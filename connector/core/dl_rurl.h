/* dl_rurl — the Redis URL forms of CONTRACT §2.1, parsed (no I/O):
 *   redis://[user[:password]@]host[:port][/db]        one node
 *   rediss://…                                        one node over TLS
 *   unix:///path.sock                                 one node on a unix socket
 *   redis-sentinel://[user[:pw]@]h:p[,h:p…][/db]#master   the primary found through sentinels
 *   rediss-sentinel://…                               the same, data nodes over TLS
 *   redis-cluster://[user[:pw]@]h:p[,h:p…]            Redis Cluster (seed nodes)
 *   rediss-cluster://…                                the same over TLS
 * The password may also come from DYLIVE_REDIS_PASSWORD or a file (the caller's business). User
 * and password are percent-decoded. Nothing here ever prints the password. */
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
  int db;
} dl_redis_addr;

/* 0 on success; -1 with why (never containing the password). */
int dl_redis_parse_url(const char *url, dl_redis_addr *out, char *why, size_t why_cap);
/* The URL with the password replaced by "***", for logs. */
void dl_redis_url_redact(const char *url, char *out, size_t cap);

#endif
