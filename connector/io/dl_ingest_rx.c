/* The ingest frame path: decode a complete WebSocket message, queue its ack, hand the events to
 * the control thread, and pause reads when anything downstream is full. Runs on the lws thread. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dl_ingest_int.h"
#include "dl_log.h"
#include "dl_rand.h"
#include "dl_wsframe.h"

void ingest_ack_put(dl_ingest *in, ack_buf *a) {
  if (a->data && a->cap <= DL_ACK_POOL_BYTES && in->n_ack_pool < DL_ACK_POOL_MAX) {
    in->ack_pool[in->n_ack_pool++] = *a;
  } else {
    free(a->data);
  }
  a->data = NULL;
  a->len = a->cap = 0;
}

void ingest_ack_drop(room *r) {
  ingest_ack_put(r->in, &r->acks[r->ack_head]);
  r->ack_head = (r->ack_head + 1) % DL_ACK_QUEUE_MAX;
  r->ack_len--;
}

/* A buffer of at least cap bytes: a spare when one is big enough, else malloc'd. */
static int ack_get(dl_ingest *in, ack_buf *a, size_t cap) {
  if (in->n_ack_pool && in->ack_pool[in->n_ack_pool - 1].cap >= cap) {
    *a = in->ack_pool[--in->n_ack_pool];
    return 0;
  }
  a->data = malloc(cap);
  a->cap = cap;
  a->len = 0;
  return a->data ? 0 : -1;
}

static void enqueue_ack(room *r, const dl_frame *f) {
  const char *ext = f->ack_ext ? f->ack_ext : "";
  size_t cap = 32 + strlen(ext);
  ack_buf b;
  if (ack_get(r->in, &b, LWS_PRE + cap) != 0) return;
  size_t len = dl_frame_build_ack(f->log_id, ext, b.data + LWS_PRE, cap);
  if (!len) {
    ingest_ack_put(r->in, &b);
    return;
  }
  if (r->ack_len == DL_ACK_QUEUE_MAX) { /* drop the oldest */
    STAT_ADD(r->in, acks_dropped, 1);
    ingest_ack_drop(r);
  }
  ack_buf *a = &r->acks[(r->ack_head + r->ack_len) % DL_ACK_QUEUE_MAX];
  *a = b;
  a->len = len;
  r->ack_len++;
  /* On libev the acks of a loop pass leave when it ends (ingest_flush_acks), all a room's in one
   * send and without a write-readiness round trip; on poll, when the socket is writable. */
  if (r->in->evacks) {
    if (!r->ack_listed) {
      r->ack_listed = 1;
      r->ack_next = r->in->ack_dirty;
      r->in->ack_dirty = r;
    }
    return;
  }
  if (r->ack_len >= DL_ACK_HIGH && !r->ack_paused) {
    r->ack_paused = 1;
    ingest_room_update_rx(r);
  }
  lws_callback_on_writable(r->wsi);
}

/* *slot = a copy of v (a NULL v leaves it as it is). Every frame carries a cursor: the copy is
 * skipped when it did not change and reuses the allocation when it fits. */
void ingest_set_str(char **slot, const char *v) {
  if (!v) return;
  size_t n = strlen(v);
  if (*slot && strcmp(*slot, v) == 0) return;
  if (*slot && malloc_usable_size(*slot) > n) {
    memcpy(*slot, v, n + 1);
    return;
  }
  char *c = malloc(n + 1);
  if (!c) return;
  memcpy(c, v, n + 1);
  free(*slot);
  *slot = c;
}

static void pause_all(dl_ingest *in);

/* Is the queue to the control thread past pct % of its bound, in frames or in bytes? */
static int queue_past(dl_ingest *in, unsigned pct) {
  size_t b = in->o.queue_max_bytes;
  return dl_queue_len(in->out) * 100 >= dl_queue_cap(in->out) * pct || (b && dl_ingest_queued_bytes() >= b / 100 * pct);
}

void ingest_on_message(room *r) {
  dl_ingest *in = r->in;
  STAT_ADD(in, frames, 1);
  STAT_ADD(in, bytes, r->rx.len);
  r->last_rx_ms = dl_mono_ms();
  if (r->rx_overflow) {
    STAT_ADD(in, bad_frames, 1);
    ingest_post_state(in, DL_IN_BAD_FRAME, r->spec.live_id, "frame over --max-frame-bytes (limit)");
    return;
  }
  dl_in_msg *m = ingest_msg_new();
  if (!m) return;
  m->recv_ms = dl_now_ms();
  m->recv_us = dl_mono_us();
  dl_err e = dl_decode_frame_into(r->dec, r->rx.p, r->rx.len, m->recv_ms, &m->frame);
  if (e != DL_EOK) {
    STAT_ADD(in, bad_frames, 1);
    if (e == DL_EBOMB) STAT_ADD(in, bombs, 1);
    m->kind = DL_IN_BAD_FRAME;
    snprintf(m->live_id, sizeof m->live_id, "%s", r->spec.live_id);
    snprintf(m->reason, sizeof m->reason, "%s: %s (%zu bytes)", dl_err_name(e), dl_err_str(e), r->rx.len);
    if (ingest_post(in, m) != 0) dl_in_msg_free(m);
    return;
  }
  dl_frame *f = &m->frame;
  r->got_data = 1;
  if (f->need_ack) enqueue_ack(r, f);
  ingest_set_str(&r->cursor, f->cursor);
  ingest_set_str(&r->internal_ext, f->internal_ext);
  if (f->n_events || f->bad_messages) r->last_msg_ms = r->last_rx_ms; /* a message: not silent */
  if (!r->hb_fixed && f->heartbeat_duration && (int64_t)f->heartbeat_duration * 1000 > in->o.heartbeat_ms &&
      f->heartbeat_duration <= DL_PING_INTERVAL_MAX_S)
    r->hb_ms = (int64_t)f->heartbeat_duration * 1000;
  STAT_ADD(in, messages, f->n_events);
  STAT_ADD(in, bad_messages, f->bad_messages);
  if (f->live_ended) {
    r->ended = 1;
    lws_callback_on_writable(r->wsi); /* flush the ack, then close */
  }
  if (f->n_events == 0 && !f->live_ended) {
    dl_in_msg_free(m);
    return;
  }
  m->kind = DL_IN_FRAME;
  snprintf(m->live_id, sizeof m->live_id, "%s", r->spec.live_id);
  if (ingest_post(in, m) != 0) {
    /* queue full: keep it, stop reading this socket until it fits */
    r->stalled = m;
    ingest_room_update_rx(r);
    pause_all(in);
    return;
  }
  if (!in->paused && queue_past(in, DL_QUEUE_HIGH_PCT)) pause_all(in);
}

static void flow_cb(lws_sorted_usec_list_t *sul) {
  dl_ingest *in = lws_container_of(sul, dl_ingest, sul_flow);
  /* stalled frames first, in room order */
  int still = 0;
  for (room *r = in->rooms; r; r = r->next)
    if (r->stalled) {
      if (ingest_post(in, r->stalled) == 0) r->stalled = NULL;
      else still = 1;
    }
  if (!still && !queue_past(in, DL_QUEUE_LOW_PCT)) {
    in->paused = 0;
    for (room *r = in->rooms; r; r = r->next) ingest_room_update_rx(r);
    dl_log(DL_LOG_INFO, "ingest_resume", NULL, "queue below low-water; reading again");
    return;
  }
  lws_sul_schedule(in->ctx, 0, &in->sul_flow, flow_cb, 10 * LWS_US_PER_MS);
}

int dl_ingest_flow(dl_ingest *in) {
  if (!in->paused) return 0;
  lws_sul_cancel(&in->sul_flow);
  flow_cb(&in->sul_flow); /* resumes, or schedules itself again */
  return !in->paused;
}

static void pause_all(dl_ingest *in) {
  if (in->paused) return;
  in->paused = 1;
  STAT_ADD(in, pauses, 1);
  for (room *r = in->rooms; r; r = r->next) ingest_room_update_rx(r);
  dl_log(DL_LOG_WARN, "ingest_pause", NULL, "queue to Redis at %zu/%zu frames, %zu/%zu bytes; pausing socket reads",
         dl_queue_len(in->out), dl_queue_cap(in->out), dl_ingest_queued_bytes(), in->o.queue_max_bytes);
  lws_sul_schedule(in->ctx, 0, &in->sul_flow, flow_cb, 10 * LWS_US_PER_MS);
}

/* Four fresh masking key bytes. */
static const uint8_t *mask_key(dl_ingest *in) {
  if (in->mask_left < 4) {
    if (getrandom(in->mask_keys, sizeof in->mask_keys, 0) != (ssize_t)sizeof in->mask_keys) {
      for (size_t i = 0; i < sizeof in->mask_keys; i += 8) { /* no kernel randomness: cannot happen */
        uint64_t x = dl_rand_next(&in->rng);
        memcpy(in->mask_keys + i, &x, 8);
      }
    }
    in->mask_left = sizeof in->mask_keys;
  }
  in->mask_left -= 4;
  return in->mask_keys + in->mask_left;
}

/* Every queued ack that fits in one send: each its own masked binary frame, as lws would write it
 * (dl_wsframe), given to lws as raw bytes (LWS_WRITE_HTTP on a ws connection: no framing of its
 * own; a partial send is kept by lws and finished before the next writable callback). Takes them
 * off the queue; returns how many went, or -1 (the connection is then done). */
int ingest_send_acks(room *r, struct lws *wsi) {
  dl_ingest *in = r->in;
  uint8_t *out = in->ack_out + LWS_PRE;
  size_t k = 0, at = 0;
  int w = 0;
  while (k < r->ack_len && k < DL_ACK_BATCH_MAX) {
    const ack_buf *a = &r->acks[(r->ack_head + k) % DL_ACK_QUEUE_MAX];
    size_t n = dl_wsframe_masked(out + at, DL_ACK_BATCH_BYTES - at, a->data + LWS_PRE, a->len, mask_key(in));
    if (!n) break;
    at += n;
    k++;
  }
  if (k) {
    w = lws_write(wsi, out, at, LWS_WRITE_HTTP) < (int)at ? -1 : 0;
  } else { /* one ack too big for the batch buffer: lws frames it */
    ack_buf *a = &r->acks[r->ack_head];
    w = lws_write(wsi, a->data + LWS_PRE, a->len, LWS_WRITE_BINARY) < (int)a->len ? -1 : 0;
    k = 1;
  }
  for (size_t i = 0; i < k; i++) ingest_ack_drop(r);
  if (w < 0) return -1;
  STAT_ADD(in, acks_sent, (uint64_t)k);
  STAT_ADD(in, ack_writes, 1);
  if (r->ack_paused && r->ack_len <= DL_ACK_LOW) {
    r->ack_paused = 0;
    ingest_room_update_rx(r);
  }
  return (int)k;
}

void ingest_flush_acks(dl_ingest *in) {
  room *r;
  while ((r = in->ack_dirty)) {
    in->ack_dirty = r->ack_next;
    r->ack_next = NULL;
    r->ack_listed = 0;
    if (!r->wsi || r->conn != R_OPEN || !r->ack_len) continue;
    /* a heartbeat or a ping goes first, or lws still holds bytes back: the writable path */
    if (r->hb_due || r->ping_due || lws_partial_buffered(r->wsi)) {
      lws_callback_on_writable(r->wsi);
      continue;
    }
    if (ingest_send_acks(r, r->wsi) < 0) lws_set_timeout(r->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    else if (r->ack_len) lws_callback_on_writable(r->wsi);
  }
}

int ingest_write_one(room *r, struct lws *wsi) {
  uint8_t buf[LWS_PRE + 8];
  int wrote = 0;
  if (r->hb_due) {
    r->hb_due = 0;
    size_t n = dl_frame_build_heartbeat(buf + LWS_PRE, 8);
    if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_BINARY) < (int)n) return -1;
    STAT_ADD(r->in, hb_sent, 1);
    wrote = 1;
  } else if (r->ack_len) {
    if (ingest_send_acks(r, wsi) < 0) return -1;
    wrote = 1;
  } else if (r->ping_due) {
    r->ping_due = 0;
    if (lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0) return -1;
    wrote = 1;
  }
  if (!wrote) return 0;
  /* one write per writable callback; ask again only when more is due (a close is due too: it
   * happens in a callback of its own, after what was written) */
  return r->hb_due || r->ack_len || r->ping_due || r->want_close || r->ended ? 1 : 2;
}

