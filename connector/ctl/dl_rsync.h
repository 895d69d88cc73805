/* dl_rsync — dylivectl's blocking Redis client, over every URL form the worker accepts
 * (connector/core/dl_rurl.h): one node, Sentinel (the primary asked from the sentinels, ROLE
 * checked) or Cluster (CLUSTER SLOTS, commands routed by their key's slot, MOVED and ASK
 * followed); hiredis's reader for replies, our own sockets (plain, unix or TLS with verification
 * always on) for the bytes. Blocking with a deadline per command: a Redis that
 * stops answering ends the command with an error instead of hanging an operator's terminal. */
#ifndef DL_RSYNC_H
#define DL_RSYNC_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct dl_rsync dl_rsync;

typedef struct dl_rsync_opts {
  const char *ca_file, *cert, *key, *sni; /* TLS (rediss://); NULL or "" = defaults */
  int timeout_ms;                          /* per command and for connecting */
} dl_rsync_opts;

/* NULL with why (never containing the password). */
dl_rsync *dl_rsync_connect(const char *url, const dl_rsync_opts *o, char *why, size_t why_cap);
/* A reply (free with freeReplyObject), or NULL when the connection failed (dl_rsync_error says
 * why; the client is then unusable). Error replies are replies. */
redisReply *dl_rsync_cmd(dl_rsync *c, int argc, const char *const *argv, const size_t *lens);
/* Nodes known (for commands about all keys, like SCAN, on every primary): 1 unless Redis Cluster,
 * where only the nodes that serve slots are primaries. */
int dl_rsync_nodes(dl_rsync *c);
int dl_rsync_is_primary(dl_rsync *c, int node);
redisReply *dl_rsync_cmd_on(dl_rsync *c, int node, int argc, const char *const *argv, const size_t *lens);
const char *dl_rsync_error(const dl_rsync *c);
void dl_rsync_free(dl_rsync *c);

#endif
