/* dl_ingest — the ingest thread: owns every WebSocket (lws loop), heartbeat, acks, reconnects,
 * and runs the pure decoder. It never touches Redis: decoded frames go onto a bounded queue for
 * the control thread. Commands (open, close) come the other way and wake lws with
 * lws_cancel_service(). When the outgoing queue passes its high-water mark every socket stops
 * reading (lws_rx_flow_control) until it drains below the low-water mark. */
#ifndef DL_INGEST_H
#define DL_INGEST_H

#include <stdint.h>

#include "dl_decode.h"
#include "dl_gift.h"
#include "dl_proxypool.h"
#include "dl_queue.h"

#define DL_LIVE_ID_MAX 64
#define DL_ROOM_ID_MAX 32
/* Resume position carried across a re-resolution (DL_IN_SILENT → a fresh identity): real cursors
 * are ~60 bytes and internal_ext ~200; longer ones are dropped (Douyin re-pushes the last 15
 * messages on a fresh connect anyway, and the worker drops the duplicates). */
#define DL_CURSOR_MAX 256
#define DL_INTERNAL_EXT_MAX 1024
/* Handshake-Options ping-interval accepted (s): the bounds of --heartbeat-ms. */
#define DL_PING_INTERVAL_MIN_S 1
#define DL_PING_INTERVAL_MAX_S 60

typedef struct dl_ingest dl_ingest;

typedef struct dl_ingest_opts {
  const char *ws_base;        /* ws://host:port or wss://host */
  const char *ca_file;        /* extra CA bundle, or NULL */
  const char *user_agent;
  const char *proxy;          /* http://… CONNECT proxy for the WebSocket, or "" */
  int sign;                   /* 1: builtin signature, 0: empty */
  const char *signer_url;     /* --signer http://…: an external signer (overrides sign), or NULL */
  double connect_rate, connect_burst;
  int64_t heartbeat_ms;
  int64_t silence_ms;         /* --silence-timeout: no message for this long → DL_IN_SILENT (0: off) */
  dl_proxypool *pool;         /* per-room proxies (a vhost each), or NULL; not owned */
  const char *event_loop;     /* --ws-event-loop: "auto" (libev when lws's plugin loads, else poll),
                                 "libev" (or fail) or "poll"; NULL: auto */
  size_t max_frame_bytes;
  size_t queue_max_bytes;     /* --queue-max-bytes: reads pause past this many bytes of queued frames (0: no cap) */
  dl_decode_limits limits;
} dl_ingest_opts;

typedef struct dl_room_spec {
  char live_id[DL_LIVE_ID_MAX];
  char room_id[DL_ROOM_ID_MAX];
  char user_unique_id[DL_ROOM_ID_MAX];
  char *cookie;               /* "ttwid=…; …" (owned by the spec; copied by open) */
  char user_agent[256];       /* this room's User-Agent, or "" for the worker's */
  char address[64];           /* numeric address of the push host (resolved by the caller), or "" */
  dl_gift_streak *gifts;      /* streak counts carried over from the previous owner (copied by open) */
  size_t n_gifts;
  char cursor[DL_CURSOR_MAX]; /* resume here ("" for a fresh connect) */
  char internal_ext[DL_INTERNAL_EXT_MAX];
} dl_room_spec;

typedef enum {
  DL_IN_FRAME,                /* frame: decoded events */
  DL_IN_CONNECTED,            /* WebSocket established */
  DL_IN_DISCONNECTED,         /* lost; will reconnect (reason) */
  DL_IN_ENDED,                /* ControlMessage status 3: closed, no reconnect */
  DL_IN_CLOSED,               /* closed after dl_ingest_close: the room is gone from ingest */
  DL_IN_BAD_FRAME,            /* a frame that did not decode (reason) */
  DL_IN_SILENT,               /* open and answering pings, but no message for --silence-timeout:
                                 closed and gone from ingest (reason, cursor, internal_ext); the
                                 control thread resolves again with a fresh identity (§9.6) */
} dl_in_kind;

typedef struct dl_in_msg {
  dl_in_kind kind;
  char live_id[DL_LIVE_ID_MAX];
  dl_frame frame;             /* DL_IN_FRAME */
  int64_t recv_ms;            /* DL_IN_FRAME: when it was read off the socket (wall clock ms) */
  int64_t recv_us;            /* the same moment, monotonic µs (dylive_write_latency_seconds) */
  size_t qbytes;              /* DL_IN_FRAME: its bytes in the queue's byte count (dl_ingest_queued_bytes) */
  char reason[256];
  int rejected;               /* DL_IN_DISCONNECTED: the server refused the handshake */
  char *cursor, *internal_ext;/* DL_IN_SILENT: where to resume (malloc'd or NULL) */
} dl_in_msg;

void dl_in_msg_free(void *m);

/* Counters read by the control thread for /metrics (relaxed atomics). */
typedef struct dl_ingest_stats {
  uint64_t frames, bytes, messages, bad_frames, bad_messages, acks_sent, hb_sent, connects,
      disconnects, pauses, bombs, acks_dropped, rejected, silent, ping_interval_adopted, ack_writes;
} dl_ingest_stats;

/* The ping-interval of a Handshake-Options header value ("ping-interval=10;" — a cookie-style
 * k=v; list, PROTOCOL §9.4) in seconds, clamped to [DL_PING_INTERVAL_MIN_S, DL_PING_INTERVAL_MAX_S];
 * 0 when the header has none or it is not a positive integer. Pure. */
int dl_handshake_ping_interval(const char *value);

/* out: the queue to the control thread; wake_fd: an eventfd written after a push. */
dl_ingest *dl_ingest_new(const dl_ingest_opts *o, dl_queue *out, int wake_fd);
int dl_ingest_start(dl_ingest *in);
/* One thread for everything (--threads 1), instead of dl_ingest_start: returns an fd for the
 * caller's loop to watch (readable: sockets want service); the caller then calls dl_ingest_service,
 * and also at least every DL_INGEST_SERVICE_MS (lws's timers; the thread's own kick period too),
 * and takes the queue after it (no wake_fd any more). -1 when the loop cannot be shared (lws's own
 * poll loop, a libev backend other than epoll, out of memory): dl_ingest_start then. */
#define DL_INGEST_SERVICE_MS 20
int dl_ingest_share(dl_ingest *in);
/* Serves what is ready (tick: the caller's periodic call, which also runs lws's timers); returns 1
 * when there is more to do that no fd will signal (call again after the next poll), else 0. */
#define DL_INGEST_PASSES_MAX 8
int dl_ingest_service(dl_ingest *in, int tick);
/* Shared loop only, after the caller took frames: paused reads resume now if the queue is below
 * its low-water (the thread looks every 10 ms); 1 when they did (serve again soon), else 0. */
int dl_ingest_flow(dl_ingest *in);
/* Thread-safe. */
void dl_ingest_open(dl_ingest *in, const dl_room_spec *spec);
void dl_ingest_close(dl_ingest *in, const char *live_id);
void dl_ingest_stats_get(dl_ingest *in, dl_ingest_stats *out);
int dl_ingest_paused(dl_ingest *in);
/* Bytes of decoded frames between the WebSocket thread and the control thread (any thread). */
size_t dl_ingest_queued_bytes(void);
/* Frees the kept messages none took since the last call (dl_cmd_pool_decay's rule; any thread);
 * returns the bytes they held. */
size_t dl_ingest_msg_pool_decay(void);
/* The event loop the WebSockets run on: "libev" (epoll: a wake-up costs the ready sockets) or
 * "poll" (lws's own: every wake-up polls every socket). Fixed at dl_ingest_new. */
const char *dl_ingest_event_loop(const dl_ingest *in);
/* Stops the thread (closing every socket) and frees. */
void dl_ingest_free(dl_ingest *in);

#endif
