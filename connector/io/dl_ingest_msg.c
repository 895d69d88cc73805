/* The messages from the ingest thread to the control thread: the dl_in_msg pool, the bytes of
 * the frames in the queue (--queue-max-bytes), and posting frames and state messages. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_ingest_int.h"
#include "dl_log.h"

/* dl_in_msg recycling (DESIGN §7: nothing malloc'd per frame). The control thread gives
 * messages back (dl_in_msg_free) while the ingest thread takes them (ingest_msg_new), hence the
 * lock. Flat out, the queue to the control thread swings between its low- and high-water marks,
 * so the pool must take back as many messages as the queue holds; what it keeps is bounded in
 * bytes (a real frame keeps a few KiB of storage, dl_frame_reset at most 64 KiB + 256 events) and
 * in messages: past 1.5 × --queue-max-bytes, at most DL_IN_MSG_POOL_BYTES, or 1.5 × --queue-max
 * messages (what the queue can hold, and the frames that are between the queue and the pool:
 * stalled, being decoded, taken by the control thread and not yet given back; with only the
 * queue's bound, a full queue's worth came back to a pool already near it and the difference was
 * freed, to be allocated again: 0.005–0.03 allocation calls per event in a warm worker's blasted
 * room with a pool of --queue-max messages, 0.0005–0.0008 with twice that), a message is freed. */
#define DL_IN_MSG_POOL_MIN 4096
#define DL_IN_MSG_POOL_BYTES (16u << 20)
static pthread_mutex_t msg_pool_mu = PTHREAD_MUTEX_INITIALIZER;
/* Bytes of the frames in the queue to the control thread (--queue-max-bytes): counted when a
 * frame is queued, given back when the control thread is done with it (dl_in_msg_free). */
static _Atomic size_t queued_bytes;
static dl_in_msg **msg_pool; /* msg_pool_max slots, set by ingest_msg_pool_bound */
static size_t msg_pool_max, msg_pool_len, msg_pool_bytes, msg_pool_cap = DL_IN_MSG_POOL_BYTES;
static size_t msg_pool_low; /* the fewest kept since the last decay */

dl_err ingest_msg_pool_bound(size_t queue_max_bytes, size_t queue_max) {
  /* 1.5 × the queue's bounds; in bytes at most DL_IN_MSG_POOL_BYTES (compared before multiplying:
   * no wrap); slots only ever grow (a pool may still hold messages), allocated here, never later */
  size_t want = queue_max + queue_max / 2 < DL_IN_MSG_POOL_MIN ? DL_IN_MSG_POOL_MIN : queue_max + queue_max / 2;
  dl_err e = DL_EOK;
  pthread_mutex_lock(&msg_pool_mu);
  msg_pool_cap = queue_max_bytes && queue_max_bytes < DL_IN_MSG_POOL_BYTES / 3 * 2 ? queue_max_bytes + queue_max_bytes / 2
                                                                                  : DL_IN_MSG_POOL_BYTES;
  if (want > msg_pool_max) {
    dl_in_msg **p = realloc(msg_pool, want * sizeof *p);
    if (p) {
      msg_pool = p;
      msg_pool_max = want;
    } else {
      e = DL_ENOMEM;
    }
  }
  pthread_mutex_unlock(&msg_pool_mu);
  return e;
}

static size_t msg_bytes(const dl_in_msg *m) {
  return sizeof *m + m->frame.store.cap + m->frame.events_cap * sizeof(dl_event);
}

dl_in_msg *ingest_msg_new(void) {
  dl_in_msg *m = NULL;
  pthread_mutex_lock(&msg_pool_mu);
  if (msg_pool_len) {
    m = msg_pool[--msg_pool_len];
    if (msg_pool_len < msg_pool_low) msg_pool_low = msg_pool_len;
    msg_pool_bytes -= msg_bytes(m);
  }
  pthread_mutex_unlock(&msg_pool_mu);
  if (!m) return calloc(1, sizeof(dl_in_msg));
  dl_frame keep = m->frame; /* reset when it came back: only its storage is left */
  memset(m, 0, sizeof *m);
  m->frame = keep;
  return m;
}

size_t dl_ingest_queued_bytes(void) { return atomic_load_explicit(&queued_bytes, memory_order_relaxed); }

void dl_in_msg_free(void *p) {
  dl_in_msg *m = p;
  if (!m) return;
  if (m->qbytes) atomic_fetch_sub_explicit(&queued_bytes, m->qbytes, memory_order_relaxed);
  free(m->cursor);
  free(m->internal_ext);
  m->cursor = m->internal_ext = NULL;
  dl_frame_reset(&m->frame);
  size_t bytes = msg_bytes(m);
  pthread_mutex_lock(&msg_pool_mu);
  if (msg_pool_len < msg_pool_max && msg_pool_bytes <= msg_pool_cap && bytes <= msg_pool_cap - msg_pool_bytes) {
    msg_pool[msg_pool_len++] = m;
    msg_pool_bytes += bytes;
    m = NULL;
  }
  pthread_mutex_unlock(&msg_pool_mu);
  if (m) {
    dl_frame_clear(&m->frame);
    free(m);
  }
}

#define DECAY_CHUNK 1024

size_t dl_ingest_msg_pool_decay(void) {
  dl_in_msg *gone[DECAY_CHUNK];
  size_t freed = 0;
  for (;;) { /* a chunk at a time, freed outside the lock: the ingest thread does not wait */
    pthread_mutex_lock(&msg_pool_mu);
    /* the bottom msg_pool_low were not taken since the last decay (a take meanwhile lowers it);
     * each chunk is the top of that part, so only the few above it move down (not the whole pool) */
    size_t top = msg_pool_low < msg_pool_len ? msg_pool_low : msg_pool_len, bytes = 0;
    size_t n = top < DECAY_CHUNK ? top : DECAY_CHUNK, at = top - n;
    for (size_t i = 0; i < n; i++) {
      gone[i] = msg_pool[at + i];
      bytes += msg_bytes(gone[i]);
    }
    if (n) memmove(msg_pool + at, msg_pool + top, (msg_pool_len - top) * sizeof *msg_pool);
    msg_pool_len -= n;
    msg_pool_low = at;
    msg_pool_bytes -= bytes;
    if (!n) msg_pool_low = msg_pool_len; /* done: the next period starts */
    pthread_mutex_unlock(&msg_pool_mu);
    if (!n) return freed;
    for (size_t i = 0; i < n; i++) {
      dl_frame_clear(&gone[i]->frame);
      free(gone[i]);
    }
    freed += bytes;
  }
}

void ingest_msg_pool_drain(void) {
  pthread_mutex_lock(&msg_pool_mu);
  while (msg_pool_len) {
    dl_in_msg *m = msg_pool[--msg_pool_len];
    msg_pool_bytes -= msg_bytes(m);
    dl_frame_clear(&m->frame);
    free(m);
  }
  msg_pool_low = 0;
  free(msg_pool);
  msg_pool = NULL;
  msg_pool_max = 0;
  pthread_mutex_unlock(&msg_pool_mu);
}

void ingest_wake_control(dl_ingest *in) {
  uint64_t one = 1;
  if (in->wake_fd < 0) return; /* one thread: the caller takes the queue after the service */
  ssize_t w = write(in->wake_fd, &one, sizeof one);
  (void)w;
}

/* Queues a message for the control thread. Returns 0, or -1 when the queue is full. */
int ingest_post(dl_ingest *in, dl_in_msg *m) {
  int was_empty = 0;
  /* counted before the push: once queued, the control thread may give it back at any moment */
  m->qbytes = m->kind == DL_IN_FRAME ? msg_bytes(m) : 0;
  atomic_fetch_add_explicit(&queued_bytes, m->qbytes, memory_order_relaxed);
  if (dl_queue_push(in->out, m, &was_empty) != DL_EOK) {
    atomic_fetch_sub_explicit(&queued_bytes, m->qbytes, memory_order_relaxed);
    m->qbytes = 0;
    return -1;
  }
  /* The control thread drains the queue until empty (or until its outbox is full, and then it
   * drains again as Redis acknowledges), so only the empty → non-empty edge needs a wake-up;
   * waking per frame cost 12–25 % of the worker in scheduler time. */
  if (was_empty) ingest_wake_control(in);
  return 0;
}

/* State messages (connected, lost, ended, closed) must not wait behind a full queue of frames:
 * they go into the queue's reserve, sized for a few per room by the worker. */
void ingest_post_state_ex(dl_ingest *in, dl_in_kind kind, const char *live_id, const char *reason, int rejected) {
  dl_in_msg *m = ingest_msg_new();
  if (!m) return;
  m->kind = kind;
  m->rejected = rejected;
  snprintf(m->live_id, sizeof m->live_id, "%s", live_id);
  if (reason) snprintf(m->reason, sizeof m->reason, "%s", reason);
  int was_empty = 0;
  if (dl_queue_push_reserved(in->out, m, &was_empty) != DL_EOK) {
    dl_log(DL_LOG_ERROR, "state_lost", live_id, "control queue and its reserve full; state message dropped");
    dl_in_msg_free(m);
    return;
  }
  if (was_empty) ingest_wake_control(in);
}

void ingest_post_state(dl_ingest *in, dl_in_kind kind, const char *live_id, const char *reason) {
  ingest_post_state_ex(in, kind, live_id, reason, 0);
}
