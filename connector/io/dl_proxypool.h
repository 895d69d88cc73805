/* dl_proxypool — the worker's egress addresses (--proxy-file, and proxies that JSON assignments
 * name): which HTTP CONNECT proxy carries a room's pages and WebSocket, which proxies are failing,
 * and what /metrics says about them.
 *
 * - Sticky per room: rendezvous (highest-random-weight) hashing of the live_id over the healthy
 *   proxies of the rotation. The choice is a pure function of (live_id, healthy set), so the
 *   resolver thread (pages) and the WebSocket thread compute the same proxy without talking to
 *   each other, and adding or removing one proxy moves only the rooms that hash to it.
 * - A proxy with DL_PROXYPOOL_FAILS connect/HTTP failures in a row is set aside for a cooling
 *   period (DL_PROXYPOOL_COOL_MS, doubling up to DL_PROXYPOOL_COOL_MAX_MS while it keeps failing
 *   after each return; a success resets it). Its rooms move on their next resolve or reconnect.
 *   When every proxy is set aside the rooms keep their own: never a silent fall-back to direct.
 * - Labels are the configured host:port without credentials; credentials never leave this module
 *   except to the HTTP clients that send them (never to a log line or an error text).
 *
 * Thread-safe (one mutex); the clock is the caller's (monotonic ms), so tests drive time. */
#ifndef DL_PROXYPOOL_H
#define DL_PROXYPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"
#include "dl_proxyurl.h"

/* Proxies held at once: the rotation plus the assignment-named ones that rooms still pin or use
 * (an assignment proxy is dropped with its last room, and its slot serves the next one). A worker
 * holds ≤ a few hundred rooms, and more egress addresses than rooms buys nothing; past it an
 * assignment proxy is refused (and its room is not captured). */
#define DL_PROXYPOOL_MAX 256
/* Rooms pinned to their own proxy at once: a worker holds --max-rooms (≤ 100000) rooms. */
#define DL_PROXYPOOL_PINS_MAX 100000
/* A live_id as the pool keeps it (the worker's are shorter). */
#define DL_PROXYPOOL_LIVE_ID_MAX 64
/* Failures in a row that set a proxy aside: one is noise (a reset tunnel), three are a pattern. */
#define DL_PROXYPOOL_FAILS 3
/* First cooling period, doubling while the proxy fails again after each return, capped. */
#define DL_PROXYPOOL_COOL_MS 30000
#define DL_PROXYPOOL_COOL_MAX_MS 600000

typedef struct dl_proxypool dl_proxypool;

dl_proxypool *dl_proxypool_new(void);
void dl_proxypool_free(dl_proxypool *p);

/* Reads --proxy-file: one URL a line, '#' comments and blank lines skipped. DL_EINVAL with why =
 * "line N: <reason>" (no credentials) on the first bad line, DL_EIO when it cannot be read,
 * DL_ELIMIT past DL_PROXYPOOL_MAX, DL_EEMPTY when it names no proxy. */
dl_err dl_proxypool_load(dl_proxypool *p, const char *path, char *why, size_t why_cap);

/* Adds one proxy (or finds it again: same host, port and credentials). in_rotation 1: rooms
 * without their own proxy may be placed on it (held for the pool's life); 0: only the rooms that
 * pin it (assignments), held while a room pins it or a WebSocket goes through it.
 * Returns its index (stable while the proxy is held) or -1 (bad URL, pool full). */
int dl_proxypool_add(dl_proxypool *p, const char *url, int in_rotation, char *why, size_t why_cap);

/* A room whose assignment names its own proxy (parsed by dl_assignment_parse): that proxy (added
 * outside the rotation) is the room's answer of dl_proxypool_pick, healthy or not (the operator
 * chose it), until unpinned. Pinning a room again moves it to the new proxy. Returns the proxy's
 * index or -1 (why says it: DL_PROXYPOOL_MAX proxies held, or the pin table full): the room must
 * then not be captured (never a silent fall-back to the rotation or to direct). */
int dl_proxypool_pin(dl_proxypool *p, const char *live_id, const dl_proxy_url *u, char *why, size_t why_cap);
/* The room is gone: forget its pin (nothing when it has none). A proxy outside the rotation is
 * dropped with its last pin once no WebSocket goes through it (dl_proxypool_move). */
void dl_proxypool_unpin(dl_proxypool *p, const char *live_id);

/* Proxies in the rotation (0: the pool places no room). */
size_t dl_proxypool_rotation(dl_proxypool *p);

/* The proxy of a room now: its pin, else the rotation proxy with the highest rendezvous weight
 * among the healthy ones, else among all of them. -1 when neither (a direct connection). */
int dl_proxypool_pick(dl_proxypool *p, const char *live_id, int64_t now_ms);

/* 1 while the proxy is set aside. */
int dl_proxypool_cooling(dl_proxypool *p, int idx, int64_t now_ms);

/* Copies a proxy's parts (credentials included, for the HTTP clients). -1 for a bad index. */
int dl_proxypool_get(dl_proxypool *p, int idx, dl_proxy_url *out);
/* The same, plus the entry's id (unique over the pool's life): whoever caches something per index
 * (ingest's vhosts) tells a reused slot from the proxy it cached. */
int dl_proxypool_lookup(dl_proxypool *p, int idx, dl_proxy_url *out, uint64_t *id);

/* A connection or request through the proxy worked (ok 1) or failed at the proxy or before any
 * answer (ok 0). */
void dl_proxypool_report(dl_proxypool *p, int idx, int ok, int64_t now_ms);

/* A room's WebSocket moved from proxy from to proxy to (-1: none), for the rooms gauge; an
 * assignment proxy is held while a WebSocket goes through it. */
void dl_proxypool_move(dl_proxypool *p, int from, int to);

typedef struct dl_proxy_stats {
  char label[DL_PROXY_LABEL_MAX];
  int in_rotation;
  uint64_t rooms;        /* WebSockets through it now */
  uint64_t failures;     /* failed connects/requests through it, ever */
  uint64_t set_asides;   /* times it was set aside */
  int cooling;           /* set aside now */
} dl_proxy_stats;

/* Fills up to max entries (the held proxies, in index order); returns how many proxies are held. */
size_t dl_proxypool_stats(dl_proxypool *p, dl_proxy_stats *out, size_t max, int64_t now_ms);

#endif
