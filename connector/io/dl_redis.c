#include "dl_redis.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_backoff.h"
#include "dl_keys.h"
#include "dl_limits.h"
#include "dl_log.h"
#include "dl_lua_sha.h"
#include "dl_rconn.h"
#include "dl_tls.h"
#include "dl_topo.h"

struct dl_redis;

typedef struct link {
  struct dl_redis *r;
  int node;                 /* the node it talks to (-1: the claims link follows claims_route) */
  int is_w;
  dl_rconn *c;
  char host[256];           /* where the connection went */
  int port;
  int ready;
  int loading;              /* scripts still loading (write links) */
  struct event *retry;
  dl_backoff bo;
  int64_t down_since;       /* monotonic; 0 while up */
  int64_t last_summary;
  unsigned attempts;
  int64_t reloaded_ms;      /* monotonic: scripts last loaded again after a NOSCRIPT */
  char last_err[240];
} link;

typedef struct node {
  char host[256];
  int port;
  int used;                 /* part of the current topology */
  link w;
} node;

typedef struct thunk thunk;

struct dl_redis {
  thunk *spare[DL_REDIS_SPARE_THUNKS]; /* finished calls' thunks, reused: no malloc per call */
  size_t nspare;
  struct event_base *base;
  struct evdns_base *dns;
  const dl_config *cfg;
  dl_redis_addr addr;
  SSL_CTX *tls;
  char client_name[160];
  char where[300];
  char claims_route[DL_KEY_MAX];
  node nodes[DL_REDIS_NODES_MAX];
  int nnodes;
  uint8_t slot_node[DL_SLOTS]; /* Cluster: slot → node index (DL_REDIS_NO_NODE: unknown) */
  int map_ok;                  /* the primary (Sentinel) or the slot map (Cluster) is known */
  link b;
  /* discovery: asking the sentinels, or a cluster node for its slots */
  dl_rconn *disc;
  char disc_host[256];         /* the node being asked ("" in CLUSTER SLOTS means this one) */
  int disc_idx;
  int discovering;
  int stale;                   /* the topology must be asked again before connecting */
  struct event *disc_retry;
  dl_backoff disc_bo;
  /* Sentinel: a subscription to +switch-master, so a failover is followed at once rather than
   * when the demoted primary drops our connections (a sentinel reconfigures it seconds later) */
  dl_rconn *sub;
  int sub_idx;
  struct event *sub_retry;
  int64_t last_refresh_ms;
  char sha[DL_LUA__COUNT][41];
  dl_redis_hooks h;
  dl_redis_stats st;
  int stopping;
};

#define DL_REDIS_NO_NODE 0xff

static void link_connect(link *l);
static void discover(dl_redis *r);

/* ---------- nodes ---------- */

static int node_find(dl_redis *r, const char *host, int port) {
  for (int i = 0; i < r->nnodes; i++)
    if (r->nodes[i].port == port && !strcmp(r->nodes[i].host, host)) return i;
  return -1;
}

static void link_init(dl_redis *r, link *l, int node_idx, int is_w);
static void link_reset(link *l);

/* A node that can take another address: out of the topology, no connection, and no slot (of the
 * map in use or of the one being built: `building`) points at it. Pod addresses change on every
 * rolling restart, so a table that only grew would fill up for good. */
static int node_free(const dl_redis *r, int i, const uint8_t *building) {
  const node *n = &r->nodes[i];
  if (n->used || n->w.c) return 0;
  if (memchr(r->slot_node, i, sizeof r->slot_node)) return 0;
  return !building || !memchr(building, i, DL_SLOTS);
}

static int node_add_in(dl_redis *r, const char *host, int port, const uint8_t *building) {
  int i = node_find(r, host, port);
  if (i >= 0) return i;
  if (r->nnodes < DL_REDIS_NODES_MAX) {
    i = r->nnodes++;
    memset(&r->nodes[i], 0, sizeof r->nodes[i]);
    link_init(r, &r->nodes[i].w, i, 1);
    if (!r->nodes[i].w.retry) return r->nnodes--, -1;
  } else {
    for (i = 0; i < r->nnodes && !node_free(r, i, building); i++) {
    }
    if (i == r->nnodes) return -1;
    link_reset(&r->nodes[i].w); /* keeps its timer */
  }
  node *n = &r->nodes[i];
  snprintf(n->host, sizeof n->host, "%s", host);
  n->port = port;
  n->used = 0;
  return i;
}

static int node_add(dl_redis *r, const char *host, int port) { return node_add_in(r, host, port, NULL); }

static node *node_for(dl_redis *r, const char *route) {
  if (r->addr.mode != DL_RURL_CLUSTER) return r->map_ok || r->addr.mode == DL_RURL_SINGLE ? &r->nodes[0] : NULL;
  if (!r->map_ok || !route) return NULL;
  unsigned idx = r->slot_node[dl_keys_slot(route, strlen(route))];
  return idx == DL_REDIS_NO_NODE ? NULL : &r->nodes[idx];
}

/* ---------- links ---------- */

static void schedule(struct event *ev, int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  link *l = arg;
  if (l->r->stale) discover(l->r); /* the links reconnect once the topology is known again */
  else link_connect(l);
}

static void link_init(dl_redis *r, link *l, int node_idx, int is_w) {
  l->r = r;
  l->node = node_idx;
  l->is_w = is_w;
  l->retry = evtimer_new(r->base, on_retry, l);
  dl_backoff_init(&l->bo, DL_REDIS_RETRY_MS, DL_REDIS_RETRY_MAX_MS, (uint64_t)dl_now_ms() ^ (uint64_t)(uintptr_t)l);
}

static void link_close(link *l) {
  if (l->c) dl_rconn_free(l->c); /* pending callbacks get NULL */
  l->c = NULL;
  l->ready = 0;
  l->loading = 0;
  if (l->retry) evtimer_del(l->retry);
}

/* A link back to its first state for another address (its timer and node stay). */
static void link_reset(link *l) {
  link_close(l);
  link keep = *l;
  memset(l, 0, sizeof *l);
  l->r = keep.r;
  l->node = keep.node;
  l->is_w = keep.is_w;
  l->retry = keep.retry;
  l->bo = keep.bo;
  dl_backoff_reset(&l->bo);
}

static int all_w_ready(const dl_redis *r);

/* Closes a link on purpose (the topology changed) and says so like a lost one: the owner's
 * `down` hook runs when it was ready (the writer re-sends what no replica confirmed), the
 * connected gauge follows. */
static void link_drop(link *l) {
  dl_redis *r = l->r;
  int was = l->ready;
  link_close(l);
  if (l->is_w) r->st.connected = all_w_ready(r);
  if (!was) return;
  if (l->is_w) r->st.reconnects++;
  if (l->is_w && r->h.w_down) r->h.w_down(r->h.ud);
  if (!l->is_w && r->h.b_down) r->h.b_down(r->h.ud);
}

static int all_w_ready(const dl_redis *r) {
  if (!r->map_ok && r->addr.mode != DL_RURL_SINGLE) return 0;
  int any = 0;
  for (int i = 0; i < r->nnodes; i++)
    if (r->nodes[i].used) {
      if (!r->nodes[i].w.ready) return 0;
      any = 1;
    }
  return any;
}

static void link_up(link *l) {
  dl_redis *r = l->r;
  l->ready = 1;
  dl_backoff_reset(&l->bo);
  if (l->is_w) {
    r->st.connected = all_w_ready(r);
    if (l->down_since)
      dl_log(DL_LOG_INFO, "redis_up", NULL, "connected to Redis at %s:%d again after %lld s (%u attempts)", l->host,
             l->port, (long long)((dl_mono_ms() - l->down_since) / 1000), l->attempts);
    else
      dl_log(DL_LOG_INFO, "redis_connected", NULL, "connected to Redis at %s%s:%d", r->addr.tls ? "tls://" : "",
             l->host, l->port);
  }
  l->down_since = 0;
  l->attempts = 0;
  if (l->is_w && r->h.w_ready) r->h.w_ready(r->h.ud);
  if (!l->is_w && r->h.b_ready) r->h.b_ready(r->h.ud);
}

static void on_script_loaded(dl_rconn *c, const redisReply *rep, void *priv) {
  (void)c;
  link *l = priv;
  if (!rep) return; /* lost: `down` follows */
  if (rep->type == REDIS_REPLY_ERROR) {
    dl_log(DL_LOG_ERROR, "redis_scripts", NULL, "SCRIPT LOAD failed: %.200s", rep->str);
    snprintf(l->last_err, sizeof l->last_err, "SCRIPT LOAD failed: %.200s", rep->str);
    return; /* the write link stays not ready; the next reconnect tries again */
  }
  if (--l->loading == 0 && !l->ready) link_up(l);
}

static void load_scripts(link *l) {
  for (int i = 0; i < DL_LUA__COUNT; i++) {
    const char *argv[] = {"SCRIPT", "LOAD", dl_lua_source[i]};
    if (dl_rconn_argv(l->c, 3, argv, NULL, 0, on_script_loaded, l) == DL_EOK) l->loading++;
  }
}

static void on_ready(dl_rconn *c, void *ud) {
  link *l = ud;
  (void)c;
  if (l->is_w) load_scripts(l);
  else link_up(l);
}

static void on_down(dl_rconn *c, void *ud, const char *why) {
  link *l = ud;
  dl_redis *r = l->r;
  (void)c;
  int was_ready = l->ready;
  dl_rconn_free(l->c);
  l->c = NULL;
  l->ready = 0;
  l->loading = 0;
  snprintf(l->last_err, sizeof l->last_err, "%s", why);
  if (l->is_w) {
    r->st.connected = 0;
    if (was_ready) r->st.reconnects++;
  }
  /* behind Sentinel a lost primary may have moved: ask again; on a Cluster the slots may have */
  if (r->addr.mode != DL_RURL_SINGLE) r->stale = 1;
  int64_t now = dl_mono_ms(), wait = dl_backoff_next(&l->bo);
  /* a failover in progress: sentinels name the new primary within seconds; ask often until then
   * (the growing pause applies once it takes longer than a failover should) */
  if (r->addr.mode != DL_RURL_SINGLE && (!l->down_since || now - l->down_since < DL_FAILOVER_FAST_MS))
    wait = DL_FAILOVER_RETRY_MS / 2 + (int64_t)((unsigned long)random() % DL_FAILOVER_RETRY_MS);
  if (!l->down_since) {
    l->down_since = now;
    l->last_summary = now;
    if (l->is_w)
      dl_log(DL_LOG_WARN, "redis_down", NULL, "%s Redis at %s:%d: %s; retrying with a growing pause (%d s up to %d s)",
             was_ready ? "lost" : "cannot reach", l->host, l->port, why, DL_REDIS_RETRY_MS / 1000,
             DL_REDIS_RETRY_MAX_MS / 1000);
  } else if (l->is_w && now - l->last_summary >= DL_REDIS_DOWN_SUMMARY_MS) {
    l->last_summary = now;
    dl_log(DL_LOG_WARN, "redis_down", NULL, "still cannot reach Redis at %s:%d after %lld s and %u attempts: %s",
           l->host, l->port, (long long)((now - l->down_since) / 1000), l->attempts, why);
  } else {
    dl_log(DL_LOG_DEBUG, "redis_down", NULL, "%s %s:%d: %s (retry in %lld ms)", l->is_w ? "write" : "claims", l->host,
           l->port, why, (long long)wait);
  }
  if (l->is_w && was_ready && r->h.w_down) r->h.w_down(r->h.ud);
  if (!l->is_w && was_ready && r->h.b_down) r->h.b_down(r->h.ud);
  if (!r->stopping) schedule(l->retry, wait);
}

/* Where a link connects now: its node, or (claims) the node serving claims_route. */
static int link_target(link *l, char *host, size_t cap, int *port) {
  dl_redis *r = l->r;
  const node *n = l->node >= 0 ? &r->nodes[l->node] : node_for(r, r->claims_route);
  if (!n || (r->addr.mode != DL_RURL_SINGLE && !r->map_ok)) return -1;
  snprintf(host, cap, "%s", n->host);
  *port = n->port;
  return 0;
}

static void link_connect(link *l) {
  dl_redis *r = l->r;
  if (l->c || r->stopping) return;
  if (r->stale || (r->addr.mode != DL_RURL_SINGLE && !r->map_ok)) {
    discover(r);
    return;
  }
  if (l->node >= 0 && !r->nodes[l->node].used) return; /* not in the topology any more */
  dl_rconn_target t;
  memset(&t, 0, sizeof t);
  if (r->addr.unix_path[0]) {
    snprintf(t.unix_path, sizeof t.unix_path, "%s", r->addr.unix_path);
    snprintf(l->host, sizeof l->host, "%s", r->addr.unix_path);
    l->port = 0;
  } else {
    if (link_target(l, l->host, sizeof l->host, &l->port) != 0) {
      discover(r);
      return;
    }
    snprintf(t.host, sizeof t.host, "%s", l->host);
    t.port = l->port;
  }
  t.tls = r->tls;
  if (r->cfg->redis_sni && *r->cfg->redis_sni) snprintf(t.sni, sizeof t.sni, "%s", r->cfg->redis_sni);
  l->attempts++;
  dl_rconn_opts o = {r->addr.user, r->addr.password, r->addr.mode == DL_RURL_CLUSTER ? 0 : r->addr.db,
                     r->client_name, r->addr.mode == DL_RURL_SENTINEL, DL_REDIS_CONNECT_TIMEOUT_MS,
                     DL_REDIS_COMMAND_TIMEOUT_MS, r->dns};
  dl_rconn_events ev = {on_ready, on_down, l};
  l->c = dl_rconn_open(r->base, &t, &o, &ev);
  if (!l->c) schedule(l->retry, dl_backoff_next(&l->bo));
}

static void connect_all(dl_redis *r) {
  for (int i = 0; i < r->nnodes; i++)
    if (r->nodes[i].used && !r->nodes[i].w.c) link_connect(&r->nodes[i].w);
  if (!r->b.c) link_connect(&r->b);
}

/* ---------- discovery: Sentinel and Cluster ---------- */

static void disc_next(dl_redis *r, const char *why);

static void on_disc_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  discover(arg);
}

/* A new topology: links to nodes that left it close; the claims link follows its slot. */
static void topology_changed(dl_redis *r) {
  for (int i = 0; i < r->nnodes; i++)
    if (!r->nodes[i].used && r->nodes[i].w.c) link_drop(&r->nodes[i].w);
  if (r->b.c) {
    char host[256];
    int port;
    if (link_target(&r->b, host, sizeof host, &port) != 0 || port != r->b.port || strcmp(host, r->b.host))
      link_drop(&r->b);
  }
}

static void subscribe_switch(dl_redis *r);

/* The primary moved: drop the links (what they had in flight is re-sent) and ask again. */
static void follow_failover(dl_redis *r) {
  r->stale = 1;
  for (int i = 0; i < r->nnodes; i++) link_drop(&r->nodes[i].w);
  link_drop(&r->b);
  r->st.connected = 0;
  discover(r);
}

static void on_sub_message(dl_rconn *c, const redisReply *rep, void *priv) {
  (void)c;
  dl_redis *r = priv;
  /* ["message", "+switch-master", "<master> <old ip> <old port> <new ip> <new port>"] */
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[2]->type != REDIS_REPLY_STRING)
    return;
  const char *m = rep->element[2]->str;
  size_t ml = strlen(r->addr.master);
  if (strncmp(m, r->addr.master, ml) || m[ml] != ' ') return;
  dl_log(DL_LOG_WARN, "redis_failover", NULL, "Sentinel announced a new primary for %s: %s", r->addr.master, m + ml + 1);
  follow_failover(r);
}

static void on_sub_ready(dl_rconn *c, void *ud) {
  dl_redis *r = ud;
  dl_rconn_on_push(c, on_sub_message, r);
  const char *argv[] = {"SUBSCRIBE", "+switch-master"};
  dl_rconn_argv(c, 2, argv, NULL, 0, NULL, NULL);
}

static void on_sub_down(dl_rconn *c, void *ud, const char *why) {
  (void)c;
  dl_redis *r = ud;
  dl_log(DL_LOG_DEBUG, "redis_sentinel", NULL, "subscription lost: %s", why);
  dl_rconn_free(r->sub);
  r->sub = NULL;
  r->sub_idx = (r->sub_idx + 1) % (r->addr.nnodes ? r->addr.nnodes : 1);
  if (!r->stopping) schedule(r->sub_retry, DL_FAILOVER_RETRY_MS * 3);
}

static void on_sub_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  subscribe_switch(arg);
}

static void subscribe_switch(dl_redis *r) {
  if (r->sub || r->stopping || r->addr.mode != DL_RURL_SENTINEL || !r->addr.nnodes) return;
  dl_rconn_target t;
  memset(&t, 0, sizeof t);
  snprintf(t.host, sizeof t.host, "%s", r->addr.nodes[r->sub_idx].host);
  t.port = r->addr.nodes[r->sub_idx].port;
  dl_rconn_opts o = {NULL, r->addr.sentinel_password, 0, NULL, 0, DL_REDIS_CONNECT_TIMEOUT_MS,
                     DL_REDIS_COMMAND_TIMEOUT_MS, r->dns};
  dl_rconn_events ev = {on_sub_ready, on_sub_down, r};
  r->sub = dl_rconn_open(r->base, &t, &o, &ev);
}

static void apply_sentinel(dl_redis *r, const char *host, int port) {
  if (!r->nnodes || strcmp(r->nodes[0].host, host) || r->nodes[0].port != port) {
    if (r->nnodes) {
      dl_log(DL_LOG_WARN, "redis_failover", NULL, "Sentinel: the primary of %s is now %s:%d (was %s:%d)",
             r->addr.master, host, port, r->nodes[0].host, r->nodes[0].port);
      /* node 0 takes the new address: its link (and timer) stay, the connection goes */
      link_drop(&r->nodes[0].w);
      link_drop(&r->b);
      link_reset(&r->nodes[0].w);
      snprintf(r->nodes[0].host, sizeof r->nodes[0].host, "%s", host);
      r->nodes[0].port = port;
    } else if (node_add(r, host, port) < 0) {
      return;
    }
  }
  r->nodes[0].used = 1;
  r->map_ok = 1;
}

/* CLUSTER SLOTS: the slot map, each range's primary a node. */
typedef struct map_build {
  dl_redis *r;
  uint8_t map[DL_SLOTS];
} map_build;

static int map_range(void *ud, const dl_topo_range *rg) {
  map_build *b = ud;
  /* "" is the node asked */
  int idx = node_add_in(b->r, *rg->host ? rg->host : b->r->disc_host, rg->port, b->map);
  if (idx < 0) return -1;
  memset(b->map + rg->lo, idx, rg->hi - rg->lo + 1);
  return 0;
}

static int apply_cluster(dl_redis *r, const redisReply *rep) {
  map_build b;
  b.r = r;
  memset(b.map, DL_REDIS_NO_NODE, sizeof b.map);
  if (dl_topo_slots(rep, map_range, &b) < 0) return -1;
  memcpy(r->slot_node, b.map, sizeof b.map);
  for (int i = 0; i < r->nnodes; i++) r->nodes[i].used = memchr(b.map, i, sizeof b.map) != NULL;
  r->map_ok = 1;
  return 0;
}

static void on_disc_reply(dl_rconn *c, const redisReply *rep, void *priv) {
  dl_redis *r = priv;
  (void)c;
  if (!rep) return; /* down follows */
  int ok;
  if (r->addr.mode == DL_RURL_SENTINEL) {
    char host[256];
    int port;
    ok = dl_topo_master_addr(rep, host, sizeof host, &port) == 0;
    if (ok) apply_sentinel(r, host, port);
  } else {
    ok = apply_cluster(r, rep) == 0;
    if (ok) {
      dl_log(DL_LOG_INFO, "redis_cluster", NULL, "slot map loaded: %d primaries", r->nnodes);
    }
  }
  if (!ok) {
    disc_next(r, rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    return;
  }
  r->discovering = 0;
  r->stale = 0;
  dl_backoff_reset(&r->disc_bo);
  if (r->addr.mode == DL_RURL_SENTINEL && !r->sub) r->sub_idx = r->disc_idx; /* a sentinel that answers */
  dl_rconn_free(r->disc);
  r->disc = NULL;
  topology_changed(r);
  connect_all(r);
  subscribe_switch(r);
}

static void on_disc_ready(dl_rconn *c, void *ud) {
  dl_redis *r = ud;
  if (r->addr.mode == DL_RURL_SENTINEL) {
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->addr.master};
    dl_rconn_argv(c, 3, argv, NULL, 0, on_disc_reply, r);
  } else {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    dl_rconn_argv(c, 2, argv, NULL, 0, on_disc_reply, r);
  }
}

static void on_disc_down(dl_rconn *c, void *ud, const char *why) {
  (void)c;
  disc_next(ud, why);
}

/* The seeds to ask, in turn: sentinels; or, for a Cluster, the nodes we know, then the URL's. */
static int seed(dl_redis *r, int i, char *host, size_t cap, int *port) {
  int known = r->addr.mode == DL_RURL_CLUSTER ? r->nnodes : 0;
  if (i < known) {
    snprintf(host, cap, "%s", r->nodes[i].host);
    *port = r->nodes[i].port;
    return 0;
  }
  i -= known;
  if (i >= r->addr.nnodes) return -1;
  snprintf(host, cap, "%s", r->addr.nodes[i].host);
  *port = r->addr.nodes[i].port;
  return 0;
}

static void disc_try(dl_redis *r) {
  char host[256];
  int port;
  while (seed(r, r->disc_idx, host, sizeof host, &port) == 0) {
    dl_rconn_target t;
    memset(&t, 0, sizeof t);
    snprintf(t.host, sizeof t.host, "%s", host);
    t.port = port;
    /* sentinels speak plain (rediss-sentinel: the data nodes are TLS); cluster nodes as the URL */
    int is_sentinel = r->addr.mode == DL_RURL_SENTINEL;
    t.tls = is_sentinel ? NULL : r->tls;
    dl_rconn_opts o = {is_sentinel ? NULL : r->addr.user, is_sentinel ? r->addr.sentinel_password : r->addr.password, 0, NULL, 0,
                       DL_REDIS_CONNECT_TIMEOUT_MS, DL_REDIS_COMMAND_TIMEOUT_MS, r->dns};
    dl_rconn_events ev = {on_disc_ready, on_disc_down, r};
    snprintf(r->disc_host, sizeof r->disc_host, "%s", host);
    r->disc = dl_rconn_open(r->base, &t, &o, &ev);
    if (r->disc) return;
    r->disc_idx++;
  }
  /* every seed failed this round: pause, then start over */
  r->discovering = 0;
  r->disc_idx = 0;
  int64_t wait = dl_backoff_next(&r->disc_bo);
  dl_log(r->disc_bo.failures == 1 ? DL_LOG_WARN : DL_LOG_DEBUG, "redis_discovery", NULL,
         "no %s answered; asking again in %lld ms", r->addr.mode == DL_RURL_SENTINEL ? "sentinel" : "cluster node",
         (long long)wait);
  schedule(r->disc_retry, wait);
}

static void disc_next(dl_redis *r, const char *why) {
  char host[256] = "?";
  int port = 0;
  seed(r, r->disc_idx, host, sizeof host, &port);
  dl_log(DL_LOG_DEBUG, "redis_discovery", NULL, "%s:%d: %s", host, port, why);
  if (r->disc) dl_rconn_free(r->disc);
  r->disc = NULL;
  r->disc_idx++;
  disc_try(r);
}

static void discover(dl_redis *r) {
  if (r->addr.mode == DL_RURL_SINGLE) {
    r->stale = 0;
    connect_all(r);
    return;
  }
  if (r->discovering || r->stopping || evtimer_pending(r->disc_retry, NULL)) return;
  r->discovering = 1;
  r->disc_idx = 0;
  r->last_refresh_ms = dl_mono_ms();
  disc_try(r);
}

/* ---------- set-up ---------- */

dl_redis *dl_redis_new(struct event_base *base, const dl_config *cfg, const char *claims_route,
                       const dl_redis_hooks *h, char *why, size_t why_cap) {
  dl_redis *r = calloc(1, sizeof *r);
  if (!r) return snprintf(why, why_cap, "out of memory"), NULL;
  r->base = base;
  r->cfg = cfg;
  r->h = *h;
  memset(r->slot_node, DL_REDIS_NO_NODE, sizeof r->slot_node);
  snprintf(r->claims_route, sizeof r->claims_route, "%s", claims_route);
  if (dl_redis_parse_url(cfg->redis_url, &r->addr, why, why_cap) != 0 ||
      dl_redis_addr_credentials(&r->addr, why, why_cap) != 0)
    goto fail;
  if (r->addr.tls && !(r->tls = dl_tls_client_ctx(cfg->redis_ca_file, cfg->redis_cert, cfg->redis_key, why, why_cap)))
    goto fail;
  switch (r->addr.mode) {
  case DL_RURL_SINGLE:
    if (r->addr.unix_path[0]) snprintf(r->where, sizeof r->where, "%s", r->addr.unix_path);
    else snprintf(r->where, sizeof r->where, "%s%s:%d", r->addr.tls ? "tls://" : "", r->addr.host, r->addr.port);
    break;
  case DL_RURL_SENTINEL:
    snprintf(r->where, sizeof r->where, "sentinel %s via %d sentinels%s", r->addr.master, r->addr.nnodes,
             r->addr.tls ? " (tls)" : "");
    break;
  default:
    snprintf(r->where, sizeof r->where, "cluster via %d seeds%s", r->addr.nnodes, r->addr.tls ? " (tls)" : "");
  }
  snprintf(r->client_name, sizeof r->client_name, "dylive:%s", cfg->worker_id);
  r->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  if (!r->dns) r->dns = evdns_base_new(base, 0); /* no resolv.conf: numeric addresses still work */
  for (int i = 0; i < DL_LUA__COUNT; i++) dl_lua_sha1((dl_lua_script)i, r->sha[i]);
  r->disc_retry = evtimer_new(base, on_disc_retry, r);
  r->sub_retry = evtimer_new(base, on_sub_retry, r);
  dl_backoff_init(&r->disc_bo, DL_REDIS_RETRY_MS, DL_REDIS_RETRY_MAX_MS, (uint64_t)dl_now_ms());
  link_init(r, &r->b, -1, 0);
  if (!r->disc_retry || !r->sub_retry || !r->b.retry) {
    snprintf(why, why_cap, "out of memory");
    goto fail;
  }
  if (r->addr.mode == DL_RURL_SINGLE) {
    if (node_add(r, r->addr.host, r->addr.port) != 0) {
      snprintf(why, why_cap, "out of memory");
      goto fail;
    }
    r->nodes[0].used = 1;
    r->map_ok = 1;
  }
  return r;
fail:
  dl_redis_free(r);
  return NULL;
}

void dl_redis_start(dl_redis *r) {
  if (r->addr.mode == DL_RURL_SINGLE) connect_all(r);
  else discover(r);
}

void dl_redis_free(dl_redis *r) {
  if (!r) return;
  r->stopping = 1;
  for (int i = 0; i < r->nnodes; i++) {
    link_close(&r->nodes[i].w);
    if (r->nodes[i].w.retry) event_free(r->nodes[i].w.retry);
  }
  link_close(&r->b);
  if (r->b.retry) event_free(r->b.retry);
  if (r->disc) dl_rconn_free(r->disc);
  if (r->disc_retry) event_free(r->disc_retry);
  if (r->sub) dl_rconn_free(r->sub);
  if (r->sub_retry) event_free(r->sub_retry);
  if (r->dns) evdns_base_free(r->dns, 0);
  if (r->tls) SSL_CTX_free(r->tls);
  while (r->nspare) free(r->spare[--r->nspare]); /* the connections are gone: every call is back */
  free(r);
}

int dl_redis_w_ready(const dl_redis *r) { return all_w_ready(r); }
int dl_redis_b_ready(const dl_redis *r) { return r->b.ready && r->b.c; }
const char *dl_redis_sha(const dl_redis *r, dl_lua_script s) { return r->sha[s]; }
const char *dl_redis_where(const dl_redis *r) { return r->where; }
const dl_redis_stats *dl_redis_stats_get(const dl_redis *r) { return &r->st; }

void dl_redis_count_error(dl_redis *r, dl_rerr kind) {
  if ((unsigned)kind < DL_RERR__COUNT) r->st.errors[kind]++;
}

/* ---------- commands ---------- */

static void note_error(dl_redis *r, const char *err);

/* dl_rconn's callback shape → ours; error replies also tell us about the topology. */
struct thunk {
  dl_redis *r;
  dl_redis_cb cb;
  void *priv;
};

static void thunk_put(dl_redis *r, thunk *t) {
  if (r->nspare < DL_REDIS_SPARE_THUNKS) r->spare[r->nspare++] = t;
  else free(t);
}

static void thunk_cb(dl_rconn *c, const redisReply *rep, void *p) {
  (void)c;
  thunk t = *(thunk *)p;
  thunk_put(t.r, p);
  if (rep && rep->type == REDIS_REPLY_ERROR && rep->str) note_error(t.r, rep->str);
  if (t.cb) t.cb(t.priv, rep);
}

static thunk *mk_thunk(dl_redis *r, dl_redis_cb cb, void *priv) {
  thunk *t = r->nspare ? r->spare[--r->nspare] : malloc(sizeof *t);
  if (t) *t = (thunk){r, cb, priv};
  return t;
}

static dl_err send_on(link *l, const void *resp, size_t len, int64_t extra_ms, dl_redis_cb cb, void *priv) {
  if (!l->ready || !l->c) return DL_ECLOSED;
  thunk *t = mk_thunk(l->r, cb, priv);
  if (!t) return DL_ENOMEM;
  dl_err e = dl_rconn_send(l->c, resp, len, extra_ms, thunk_cb, t);
  if (e != DL_EOK) thunk_put(l->r, t);
  return e;
}

static dl_err argv_on(link *l, int argc, const char *const *argv, const size_t *lens, int64_t extra_ms, dl_redis_cb cb,
                      void *priv) {
  if (!l->ready || !l->c) return DL_ECLOSED;
  thunk *t = mk_thunk(l->r, cb, priv);
  if (!t) return DL_ENOMEM;
  dl_err e = dl_rconn_argv(l->c, argc, argv, lens, extra_ms, thunk_cb, t);
  if (e != DL_EOK) thunk_put(l->r, t);
  return e;
}

dl_err dl_redis_call(dl_redis *r, const char *route, int argc, const char *const *argv, const size_t *lens,
                     dl_redis_cb cb, void *priv) {
  node *n = node_for(r, route);
  if (!n) {
    if (r->addr.mode == DL_RURL_CLUSTER) discover(r);
    return DL_ECLOSED;
  }
  return argv_on(&n->w, argc, argv, lens, 0, cb, priv);
}

dl_err dl_redis_script(dl_redis *r, dl_lua_script s, int nkeys, const char *const *keys, int nargs,
                       const char *const *args, dl_redis_cb cb, void *priv) {
  const char *small[32], **argv = small;
  char nk[16];
  if (nkeys < 0 || nargs < 0 || nkeys + nargs > DL_SCRIPT_ARGS_MAX) return DL_ELIMIT;
  if (3 + nkeys + nargs > 32 && !(argv = malloc((size_t)(3 + nkeys + nargs) * sizeof *argv))) return DL_ENOMEM;
  snprintf(nk, sizeof nk, "%d", nkeys);
  int n = 0;
  argv[n++] = "EVALSHA";
  argv[n++] = r->sha[s];
  argv[n++] = nk;
  for (int i = 0; i < nkeys; i++) argv[n++] = keys[i];
  for (int i = 0; i < nargs; i++) argv[n++] = args[i];
  dl_err e = dl_redis_call(r, nkeys ? keys[0] : NULL, n, argv, NULL, cb, priv);
  if (argv != small) free(argv);
  return e;
}

dl_err dl_redis_send(dl_redis *r, const char *route, const char *ask, const void *resp, size_t len, dl_redis_cb cb,
                     void *priv, int *node_out) {
  node *n = NULL;
  if (ask && *ask && r->addr.mode == DL_RURL_CLUSTER) {
    /* an ASK: this one command goes to the importing node, after ASKING */
    char host[256];
    int port;
    if (dl_topo_hostport(ask, strlen(ask), host, sizeof host, &port) == 0 && *host) {
      int i = node_add(r, host, port);
      if (i >= 0) {
        n = &r->nodes[i];
        if (!n->used) {
          n->used = 1;
          link_connect(&n->w);
        }
        if (!n->w.ready) return DL_ECLOSED;
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        if (send_on(&n->w, asking, sizeof asking - 1, 0, NULL, NULL) != DL_EOK) return DL_ECLOSED;
      }
    }
  }
  if (!n) n = node_for(r, route);
  if (!n) {
    if (r->addr.mode == DL_RURL_CLUSTER) discover(r);
    return DL_ECLOSED;
  }
  if (node_out) *node_out = (int)(n - r->nodes);
  return send_on(&n->w, resp, len, 0, cb, priv);
}

dl_err dl_redis_call_node(dl_redis *r, int idx, int argc, const char *const *argv, dl_redis_cb cb, void *priv) {
  if (idx < 0 || idx >= r->nnodes) return DL_EINVAL;
  return argv_on(&r->nodes[idx].w, argc, argv, NULL, 0, cb, priv);
}

dl_err dl_redis_claim_call(dl_redis *r, int argc, const char *const *argv, const size_t *lens, int64_t block_ms,
                           dl_redis_cb cb, void *priv) {
  return argv_on(&r->b, argc, argv, lens, block_ms, cb, priv);
}

static void reload_scripts(link *l, int64_t now) {
  if (!l->ready || (l->reloaded_ms && now - l->reloaded_ms < DL_SCRIPT_RELOAD_MIN_MS)) return;
  l->reloaded_ms = now;
  for (int i = 0; i < DL_LUA__COUNT; i++) {
    const char *argv[] = {"SCRIPT", "LOAD", dl_lua_source[i]};
    dl_rconn_argv(l->c, 3, argv, NULL, 0, NULL, NULL);
  }
}

/* What an error reply says about the topology: NOSCRIPT (load the scripts again), MOVED (the
 * slot moved: refresh), READONLY (a demoted primary: find the new one). */
static void note_error(dl_redis *r, const char *err) {
  if (!strncmp(err, "NOSCRIPT", 8)) {
    /* a restarted or flushed node: every node gets the scripts again, ahead of the re-sends */
    int64_t now = dl_mono_ms();
    for (int i = 0; i < r->nnodes; i++) reload_scripts(&r->nodes[i].w, now);
  } else if (!strncmp(err, "MOVED ", 6) && r->addr.mode == DL_RURL_CLUSTER) {
    /* "MOVED <slot> <host>:<port>": point the slot there now, and reload the whole map soon */
    char host[256];
    int ask, port;
    unsigned slot;
    if (dl_redirect_parse(err, &ask, &slot, host, sizeof host, &port) == 0 && *host) {
      int i = node_add(r, host, port);
      if (i >= 0) {
        r->slot_node[slot] = (uint8_t)i;
        if (!r->nodes[i].used) {
          r->nodes[i].used = 1;
          link_connect(&r->nodes[i].w);
        }
      }
    }
    if (dl_mono_ms() - r->last_refresh_ms >= DL_CLUSTER_REFRESH_MIN_MS) discover(r);
  } else if (!strncmp(err, "READONLY", 8) && r->addr.mode != DL_RURL_SINGLE) {
    /* writing to a replica: the primary moved. Drop the links and ask again. */
    if (dl_mono_ms() - r->last_refresh_ms >= DL_CLUSTER_REFRESH_MIN_MS) follow_failover(r);
  }
}

int dl_redis_cluster(const dl_redis *r) { return r->addr.mode == DL_RURL_CLUSTER; }
