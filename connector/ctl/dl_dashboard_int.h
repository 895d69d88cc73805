/* dl_dashboard_int.h — private to the dashboard: its limits, its types, and the calls between
 * dl_dashboard_data.c (the pool as read from Redis, rendered as JSON) and dl_dashboard.c (the
 * HTTP server, SSE, the poll loop). Not for other modules. */
#ifndef DL_DASHBOARD_INT_H
#define DL_DASHBOARD_INT_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dl_buf.h"
#include "dl_dashboard.h"

/* ---- limits: every one with its reason (OpenBSD httpd style) ---- */
enum {
  DASH_MAX_CONNS = 64,          /* a few tabs × the browser's parallel requests; past it: 503 */
  DASH_MAX_SSE = 16,            /* each SSE client costs one XREAD per tick on the one connection */
  DASH_LISTEN_BACKLOG = 64,     /* kernel queue in front of accept() */
  DASH_ACCEPT_BATCH = 16,       /* accepts per loop turn, so a flood cannot starve the rest */
  DASH_MAX_REQUEST = 8192,      /* request line + headers; a GET needs far less. Past it: 431 */
  DASH_MAX_TARGET = 512,        /* path + query */
  DASH_READ_TIMEOUT_MS = 10000, /* a request must be complete this long after accept (slowloris) */
  DASH_WRITE_TIMEOUT_MS = 30000, /* a client that takes no byte for this long is closed */
  DASH_MAX_RESPONSE = 16 << 20, /* /api/rooms for DASH_MAX_ROOMS rooms fits many times over */
  DASH_BUF_KEEP = 64 << 10,     /* an SSE buffer larger than this is freed once drained */
  DASH_SSE_TICK_MS = 250,       /* how often subscribed streams are polled (no BLOCK: one connection) */
  DASH_SSE_BATCH = 500,         /* entries per XREAD per client per tick: 2000/s catches up a backlog */
  DASH_SSE_HIGH_WATER = 512 << 10, /* a client with this much unsent is not read for until it drains */
  DASH_SSE_MAX_BUFFER = 8 << 20, /* and is dropped past this (one batch of huge events) */
  DASH_MAX_EVENT = 1 << 20,     /* an entry whose json is larger is announced as skipped, not sent */
  DASH_KEEPALIVE_MS = 15000,    /* SSE comment so proxies and browsers keep an idle stream open */
  DASH_SSE_RETRY_MS = 3000,     /* what EventSource waits before reconnecting */
  DASH_MAX_ROOMS = 5000,        /* rooms shown; more are counted, not stored */
  DASH_MAX_WORKERS = 1000,      /* workers shown (ZRANGE 0 DASH_MAX_WORKERS-1) */
  DASH_ROOMS_TTL_MS = 1000,     /* /api/rooms answers from a snapshot at most this old */
  DASH_SCAN_EVERY_MS = 5000,    /* a SCAN pass for status hashes starts at most this often */
  DASH_SCAN_COUNT = 1000,       /* SCAN … COUNT */
  DASH_SCAN_CALLS = 50,         /* SCAN calls per refresh; a huge keyspace takes several refreshes */
  DASH_ROOMS_PAGE = 1000,       /* P:rooms entries per XRANGE */
  DASH_ROOMS_PAGES = 20,        /* XRANGE pages of P:rooms per refresh; the rest next time */
  DASH_EPS_MIN_DT_MS = 1000,    /* two samples of `events` this far apart make one rate */
  DASH_EPS_HISTORY = 60,        /* points of the events-per-second sparkline */
  DASH_MAX_FIELD = 1024,        /* a status field (a stranger's title) is cut here */
  DASH_MAX_LIVE_ID = 32,        /* digits of a live_id */
  DASH_MAX_PREFIX = 200,        /* the key prefix */
  DASH_MAX_KEY = 512,           /* prefix + ":worker:" + worker id, or prefix + {live_id} + suffix */
  DASH_MAX_WORKER_ID = 256,     /* a worker id from the registry ZSET */
  DASH_MAX_STREAM_ID = 41,      /* "<20 digits>-<20 digits>" */
  DASH_MAX_STATE = 32           /* a room state word */
};

static inline int64_t dash_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- responses are built in dl_buf (the project's one capped buffer) with a sticky overflow
 * flag: a whole reply is assembled, then checked once ---- */
typedef struct {
  dl_buf b;
  int err;
} dbuf;

static inline void db_put(dbuf *d, const void *s, size_t n) {
  if (!d->err && dl_buf_add(&d->b, s, n) != DL_EOK) d->err = 1;
}

static inline void db_str(dbuf *d, const char *s) { db_put(d, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static inline void db_fmt(dbuf *d, const char *fmt, ...) {
  char tmp[512]; /* only used for short framing text; longer data goes through db_put */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) d->err = 1;
  else db_put(d, tmp, (size_t)n);
}

/* Frees the storage and clears the flag; the cap stays. */
static inline void db_free(dbuf *d) {
  dl_buf_free(&d->b);
  d->err = 0;
}

/* ---- state ---- */
typedef struct room {
  char id[DASH_MAX_LIVE_ID + 1];
  redisReply *status; /* last HGETALL of P:{id}:status, owned; NULL before the first */
  int in_stream;      /* named by P:rooms */
  char s_state[DASH_MAX_STATE], s_worker[DASH_MAX_WORKER_ID + 1], s_ts[24];
  char *s_error;      /* last error P:rooms gave, malloc'd, cut at DASH_MAX_FIELD */
  long long prev_events;
  int64_t prev_ms;    /* 0: no sample yet */
  double eps;
  double hist[DASH_EPS_HISTORY];
  int hist_n;
} room;

typedef enum { C_READ, C_REPLY, C_SSE } cstate;

typedef struct {
  int fd;
  cstate st;
  char in[DASH_MAX_REQUEST];
  size_t in_len;
  dbuf out;
  size_t out_off;
  int64_t deadline_ms;      /* C_READ: the request must be complete by then */
  int64_t last_progress_ms; /* the last time the client took bytes (or output began waiting) */
  char key[DASH_MAX_KEY];   /* C_SSE: the room's stream */
  char last_id[DASH_MAX_STREAM_ID + 1];
  int64_t next_ka_ms;
} conn;

typedef struct {
  dl_dash_cmd_fn cmd;
  void *rconn;
  const char *prefix;
  char match[2 * DASH_MAX_PREFIX + 16]; /* SCAN pattern for status hashes */
  int lfd, loopback;
  conn *conns[DASH_MAX_CONNS];
  int nsse;
  room **rooms; /* sorted by live_id, numerically */
  size_t nrooms;
  size_t rooms_over_cap; /* discovered past DASH_MAX_ROOMS */
  char rooms_pos[DASH_MAX_STREAM_ID + 3]; /* XRANGE start in P:rooms: "-" or "(<id>" */
  char scan_cursor[32];
  int scanning;
  int64_t next_scan_ms, rooms_at_ms, next_tick_ms;
  int lost;
  char *why;
  size_t why_cap;
} dash;

/* dl_dashboard_data.c */
int dash_all_digits(const char *s, size_t max);
int dash_valid_stream_id(const char *s);
/* One command on the caller's connection; NULL (and d->lost, d->why set) when it is gone. */
redisReply *dash_rcall(dash *d, int argc, const char **argv);
int dash_is_str(const redisReply *r);
void dash_room_free(room *r);
void dash_refresh_rooms(dash *d);
void dash_rooms_json(dash *d, dbuf *b);
int dash_workers_json(dash *d, dbuf *b);

#endif
