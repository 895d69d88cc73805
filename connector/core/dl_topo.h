/* dl_topo — what Redis says about its topology, parsed (no I/O), shared by the worker (dl_redis)
 * and dylivectl (dl_rsync): redirections (MOVED/ASK), CLUSTER SLOTS, Sentinel's
 * get-master-addr-by-name, ROLE. Replies are hostile: every element's type and every number's
 * range is checked before it is used; a reply that does not check out is refused whole. */
#ifndef DL_TOPO_H
#define DL_TOPO_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* "host:port", "[v6]:port" or "v6:port" (Redis writes IPv6 addresses without brackets: the last
 * ':' splits). host "" is allowed (Redis: "the node you asked"). 0, or -1 when malformed, the
 * port is not 1..65535 or the host does not fit cap (never truncated). */
int dl_topo_hostport(const char *s, size_t len, char *host, size_t cap, int *port);

/* An error reply "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>": 0 with *ask (1 for
 * ASK), *slot (< 16384), host and port; -1 for any other or malformed text. */
int dl_redirect_parse(const char *err, int *ask, unsigned *slot, char *host, size_t cap, int *port);
/* The same, the target written as "host:port" into out (for a command that carries an ASK target
 * to its next send). */
int dl_redirect_target(const char *err, char *out, size_t cap);

/* One range of CLUSTER SLOTS: slots lo..hi served by the primary host:port. host points into the
 * reply ("" means the node asked). */
typedef struct dl_topo_range {
  unsigned lo, hi;
  const char *host;
  int port;
} dl_topo_range;

/* CLUSTER SLOTS: [[start, end, [host, port, id…], replicas…], …]. The whole reply is checked
 * first (a non-empty array of well-formed ranges); then each(ud, range) runs for every range in
 * order (a map fragmented by resharding may have thousands). The number of ranges, or -1 when the
 * reply is malformed (each never ran) or each returned non-zero (it stopped there). */
int dl_topo_slots(const redisReply *r, int (*each)(void *ud, const dl_topo_range *rg), void *ud);

/* SENTINEL get-master-addr-by-name: [host, port]. 0, or -1 (nil: the sentinel does not know the
 * master; anything else malformed). */
int dl_topo_master_addr(const redisReply *r, char *host, size_t cap, int *port);

/* ROLE: 1 when the node says it is a primary ("master"), 0 otherwise. */
int dl_topo_role_is_master(const redisReply *r);

#endif
