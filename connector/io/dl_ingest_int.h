/* dl_ingest_int.h — private to the ingest thread (dl_ingest.c: connections, commands, timers;
 * dl_ingest_rx.c: the frame path — decode, acks, back-pressure, writes; dl_ingest_msg.c: the
 * messages to the control thread — pool, queued bytes, posting; dl_ingest_loop.c: the lws
 * context, its event loop and the thread). Not for other modules. */
#ifndef DL_INGEST_INT_H
#define DL_INGEST_INT_H

#include <libwebsockets.h>
#include <pthread.h>

#include "dl_backoff.h"
#include "dl_bucket.h"
#include "dl_buf.h"
#include "dl_ingest.h"
#include "dl_sign.h"
#include "dl_tlist.h"
#include "dl_xsign.h"

/* Acks waiting for a writable socket, per room. Douyin asks for one ack per frame; at 1000
 * frames/s and a socket that blocks briefly, 256 is plenty. Past it the oldest ack is dropped
 * (and counted): the server does not enforce acks strictly (PROTOCOL §3.4). */
#define DL_ACK_QUEUE_MAX 256
/* Acks are never dropped in practice: past the high mark the socket stops reading until the
 * acks drain below the low mark (the server's frames wait in the kernel, not in our memory). */
#define DL_ACK_HIGH 64
#define DL_ACK_LOW 16
/* The acks queued when the socket turns writable leave in one send, up to this many bytes
 * (a blasted room reads ~30 frames per 32 KiB read: one send for them, not 30). */
#define DL_ACK_BATCH_BYTES (16u << 10)
#define DL_ACK_BATCH_MAX 64
/* Masking keys of the frames we write (4 bytes each) are drawn from the kernel's random source
 * this many bytes at a time (lws reads /dev/urandom for every frame it writes). */
#define DL_MASK_POOL_BYTES 4096
/* Reconnect backoff (PROTOCOL §3.6, J reconnectDecision): 1.5 s doubling to 60 s + jitter up to
 * 1.2 s (dl_backoff_init_added). */
#define DL_BACKOFF_BASE_MS 1500
#define DL_BACKOFF_MAX_MS 60000
#define DL_BACKOFF_JITTER_MS 1200
/* A refused handshake (bad signature, blocked device) never hammers: 10 s doubling to the cap. */
#define DL_REJECT_BASE_MS 10000
/* No frame and no pong for this many heartbeat periods: the connection is dead (silent drops
 * on quiet rooms are the top complaint, DESIGN §1). */
#define DL_LIVENESS_PERIODS 3
/* Back-pressure: pause reading at high-water, resume below low-water (fractions of capacity). */
#define DL_QUEUE_HIGH_PCT 75
#define DL_QUEUE_LOW_PCT 25
#define DL_URL_MAX 8192

typedef struct ack_buf {
  size_t len;
  uint8_t *data; /* LWS_PRE + len */
  size_t cap;    /* bytes at data */
} ack_buf;
/* Spare ack buffers kept by the ingest thread (a room has a few acks in flight at most; more are
 * freed), and the largest one kept (an internal_ext is ~200 bytes). */
#define DL_ACK_POOL_MAX 64
#define DL_ACK_POOL_BYTES 4096

typedef enum { R_IDLE, R_CONNECTING, R_OPEN } room_conn;

/* The vhost that tunnels through one pool proxy (lws keeps one proxy per vhost). A pool slot can
 * hold another proxy later (an assignment proxy goes with its last room): id tells them apart. */
typedef struct pvhost {
  struct lws_vhost *vh;
  uint64_t id;        /* the pool entry it was made for (dl_proxypool_lookup) */
  int refused;        /* lws refused that proxy: not asked again (each try cost a vhost and a TLS context) */
} pvhost;

typedef struct room {
  struct room *next;
  dl_ingest *in;
  dl_room_spec spec;
  dl_decoder *dec;
  struct lws *wsi;
  room_conn conn;
  int want_close;     /* dl_ingest_close: close and forget */
  int ended;          /* live ended: close and forget */
  int hb_due, ping_due;
  dl_buf rx;          /* the message being read, capped at --max-frame-bytes */
  int rx_overflow;    /* it passed the cap: the rest is dropped */
  ack_buf acks[DL_ACK_QUEUE_MAX];
  size_t ack_head, ack_len;
  struct room *ack_next; /* on in->ack_dirty: acks to send when the loop's pass ends */
  int ack_listed;
  char *cursor, *internal_ext;
  int64_t hb_ms;
  int64_t last_rx_ms;
  dl_backoff bo;       /* reconnects; reset by a connection that delivered a frame */
  dl_backoff reject_bo;/* refused handshakes; reset by an established connection */
  int min_wait_ms;    /* from the last close code */
  int got_data;       /* this connection delivered a frame: reset backoff */
  int ack_paused;     /* reads paused until acks drain */
  int rx_on;          /* what we last told lws_rx_flow_control */
  int rejected;       /* the last attempt's handshake was refused (bad signature, blocked device) */
  char tls_error[160];/* why the server certificate was refused, from the verify callback */
  dl_in_msg *stalled; /* a frame the queue had no room for; reads paused until it goes */
  dl_tnode hb_node;    /* its place in the ingest's heartbeat list (due in µs, lws's clock) */
  lws_sorted_usec_list_t sul_retry;
  lws_sorted_usec_list_t sul_silence;
  int64_t last_msg_ms;/* the last frame with at least one message (not pongs, not empty frames) */
  int silent;         /* closing for silence: DL_IN_SILENT, no reconnect here */
  int hb_fixed;       /* the server set the period (Handshake-Options): heartbeat_duration won't */
  int proxy_idx;      /* the pool proxy of the current/last connection, or -1 */
  dl_signer signer;
  char stub[33];      /* X-MS-STUB of room_id + user_unique_id, which a room keeps for its life */
  uint64_t sign_gen;  /* external signer: which request we wait for */
  int awaiting_sig, have_sig;
  char ext_sig[160];
  char last_error[200];
} room;

typedef struct cmd {
  struct cmd *next;
  int open;
  int signed_result;  /* an answer of the external signer for spec.live_id */
  uint64_t gen;
  int ok;
  char sig[160];      /* the signature, or why there is none */
  dl_room_spec spec;
} cmd;

struct dl_ingest {
  dl_ingest_opts o;
  char *ca_file, *ua;
  char scheme_tls;
  char host[256];
  int port;
  char path_prefix[256];
  dl_queue *out;
  int wake_fd;
  struct lws_context *ctx;
  struct ev_loop *evloop;     /* lws runs on it (a foreign loop: ours to run, break and free), or NULL: poll */
  struct ev_timer *evkick;    /* with evloop: the periodic wake-up that keeps lws's timers on time */
  struct ev_prepare *evacks;  /* with evloop: sends the acks of a loop pass before it polls again */
  struct ev_idle *evquiet;    /* shared (--threads 1): marks a pass that found nothing new */
  int quiet;
  room *ack_dirty;            /* rooms with acks to send at the end of this pass */
  const char *loop_name;      /* dl_ingest_event_loop */
  pthread_t thread;
  int started;
  volatile int stop;
  pthread_mutex_t mu;
  cmd *cmds, **cmds_tail;
  room *rooms;
  int paused;
  dl_bucket connects;         /* pacing of new connections */
  dl_xsign *xs;               /* --signer http://… */
  pvhost proxy_vh[DL_PROXYPOOL_MAX]; /* one per pool proxy, made on first use */
  lws_sorted_usec_list_t sul_flow;
  /* every open room's heartbeat in one list (one lws timer for its head): lws's own timer list is
   * walked from the head on each insert, past every connection's timers */
  dl_tlist hbq;
  lws_sorted_usec_list_t sul_hbq;
  lws_usec_t hbq_armed;  /* the due time sul_hbq is scheduled for (0: none) */
  dl_ingest_stats st;
  uint64_t rng;
  dl_decode_scratch *scratch; /* the decoders' arena, inflate state, buffers: shared by every room */
  ack_buf ack_pool[DL_ACK_POOL_MAX];
  size_t n_ack_pool;
  uint8_t ack_out[LWS_PRE + DL_ACK_BATCH_BYTES]; /* the frames of one ack send */
  uint8_t mask_keys[DL_MASK_POOL_BYTES];           /* WebSocket masking keys, from getrandom */
  size_t mask_left;                                /* unused bytes at the end of mask_keys */
};

#define STAT_ADD(in, f, n) __atomic_fetch_add(&(in)->st.f, (n), __ATOMIC_RELAXED)

/* dl_ingest.c */
/* The one protocol of the lws context (its callback is dl_ingest.c's). */
extern const struct lws_protocols ingest_protocols[];
void ingest_room_update_rx(room *r);

/* dl_ingest_msg.c */
/* A zeroed dl_in_msg, recycled (dl_in_msg_free gives it back) with its frame's storage, or
 * calloc'd; NULL on allocation failure. */
dl_in_msg *ingest_msg_new(void);
/* Frees the spare messages (dl_ingest_free). */
void ingest_msg_pool_drain(void);
/* The pool keeps at most 1.5 × these of messages: bytes (--queue-max-bytes; 0: the default bound)
 * and messages (--queue-max, at least 4096 slots); DL_ENOMEM when its slots cannot be allocated. */
dl_err ingest_msg_pool_bound(size_t queue_max_bytes, size_t queue_max);
/* Wakes the control thread (its eventfd): for the queue's empty → non-empty edge. */
void ingest_wake_control(dl_ingest *in);
int ingest_post(dl_ingest *in, dl_in_msg *m);
void ingest_post_state(dl_ingest *in, dl_in_kind kind, const char *live_id, const char *reason);
void ingest_post_state_ex(dl_ingest *in, dl_in_kind kind, const char *live_id, const char *reason, int rejected);

/* dl_ingest_loop.c */
extern const lws_retry_bo_t dl_ingest_no_validity; /* no lws validity timer (see its definition) */
/* The lws context on the event loop --ws-event-loop asks for (libev, else poll); 0, or -1 (said
 * why). */
int ingest_loop_new(dl_ingest *in);
/* Stops and joins the thread, then destroys the context and the loop. */
void ingest_loop_free(dl_ingest *in);

/* dl_ingest_rx.c */
void ingest_set_str(char **slot, const char *v);
/* An ack buffer back to the thread's spares (or freed); a is emptied. */
void ingest_ack_put(dl_ingest *in, ack_buf *a);
/* The room's oldest queued ack, taken off its queue (back to the spares). */
void ingest_ack_drop(room *r);
void ingest_on_message(room *r);
/* The queued acks that fit in one send, sent (dl_ingest_rx.c): how many, or -1. */
int ingest_send_acks(room *r, struct lws *wsi);
/* Sends the acks of every room on in->ack_dirty (the end of a loop pass). */
void ingest_flush_acks(dl_ingest *in);
/* One write of what the room's socket owes (a heartbeat, the queued acks, a ping): -1 on error,
 * 0 when there was nothing to write, 1 when written and more is due (ask for writable again), 2
 * when written and nothing more is. */
int ingest_write_one(room *r, struct lws *wsi);

#endif
