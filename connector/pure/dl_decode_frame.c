/* dl_decode_frame — one frame (dl_decode.h). Layout:
 *   PushFrame (dl_pb_unpack, size-capped) → headers → payload_type
 *   "msg": [dl_inflater when compress_type=gzip] → count Response.messages (cap) → Response
 *   each Message: method → table → dl_pb_unpack(type) → normalize_* → dl_json → event
 * Every protobuf-c allocation goes through the decoder's dl_pballoc (budget max_alloc_bytes) on
 * the scratch arena, released after each Message and at the end of the frame; a Message that
 * does not parse becomes a "raw" event with an "error" key and is counted. In steady state a
 * frame allocates nothing: the arena, the decompressor and the body buffer are the scratch's,
 * the events and their JSON go to the dl_frame's storage, reused by dl_decode_frame_into. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_b64.h"
#include "dl_decode_int.h"
#include "dl_gunzip.h"
#include "dl_json.h"
#include "dl_pballoc.h"
#include "dl_pbscrub.h"
#include "webcast.pb-c.h"

/* Event schema version (CONTRACT §4 "v"). */
#define DL_EVENT_VERSION 1
/* A dl_frame's storage kept by dl_frame_reset (a recycled frame): events and JSON bytes. */
#define DL_FRAME_RETAIN_EVENTS 256
#define DL_FRAME_RETAIN_BYTES (64u << 10)
/* The two bytes every gzip member starts with (RFC 1952 §2.3.1 ID1 ID2). */
#define DL_GZIP_ID1 0x1f
#define DL_GZIP_ID2 0x8b

/* Field 1 of every Webcast*Message is Common (PROTOCOL §4); found through the descriptor so the
 * code does not depend on struct layout. */
static const Webcast__Common *get_common(const ProtobufCMessage *m) {
  const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
  if (!fd || fd->type != PROTOBUF_C_TYPE_MESSAGE || fd->descriptor != &webcast__common__descriptor)
    return NULL;
  return *(const Webcast__Common *const *)((const char *)m + fd->offset);
}

/* Writes key and the JSON string already escaped in esc[0..n) (quotes added). */
static void j_escaped(dl_json *j, const char *key, const char *esc, size_t n) {
  dl_json_key(j, key);
  if (j->err != DL_EOK) return;
  j->after_key = 0;
  dl_err e = dl_buf_reserve(j->b, n + 2);
  if (e != DL_EOK) {
    j->err = e;
    return;
  }
  char *o = (char *)j->b->p + j->b->len;
  *o++ = '"';
  memcpy(o, esc, n);
  o += n;
  *o++ = '"';
  *o = 0;
  j->b->len += n + 2;
}

/* Builds one event: its body into the scratch buffer, then header + body + "}" + a NUL onto the
 * frame's storage (ev_out->json is set once the frame is complete: the storage may move while
 * it grows). pm/common may be NULL (raw events). */
static dl_err build_event(msg_ctx *c, const Webcast__Message *msg, const Webcast__Response *resp,
                          const ProtobufCMessage *pm, const Webcast__Common *common,
                          normalize_fn fn, const char *err, dl_event *ev_out) {
  dl_decoder *d = c->d;
  dl_buf *body = &d->s->body;
  dl_buf_reset(body);
  dl_json_init(&c->j, body);
  c->j.first = 0; /* the body follows "method" */

  uint64_t msg_id = common && common->has_msg_id && common->msg_id ? common->msg_id
                    : msg->has_msg_id                               ? msg->msg_id
                                                                    : 0;
  if (!d->room_id_given && !d->room_id[0] && common && common->has_room_id && common->room_id)
    d->room_id[dl_json_fmt_u64(d->room_id, common->room_id)] = 0; /* learn it */

  if (fn) {
    fn(c, pm);
  } else {
    const uint8_t *p = msg->has_payload ? msg->payload.data : NULL;
    size_t n = msg->has_payload ? msg->payload.len : 0;
    size_t blen = dl_b64_encoded_len(n);
    if (blen == SIZE_MAX) return DL_ENOMEM;
    dl_json_key(&c->j, "payload_b64");
    if (c->j.err == DL_EOK && (c->j.err = dl_buf_reserve(body, blen + 2)) == DL_EOK) {
      c->j.after_key = 0;
      char *o = (char *)body->p + body->len;
      *o++ = '"';
      dl_b64_encode(p, n, o); /* the standard alphabet: nothing to escape */
      o[blen] = '"';
      body->len += blen + 2;
      body->p[body->len] = 0;
    }
    if (err) {
      dl_json_key(&c->j, "error");
      dl_json_str(&c->j, err);
    }
  }
  if (c->j.err != DL_EOK) return c->j.err == DL_ELIMIT ? DL_ELIMIT : DL_ENOMEM;

  int64_t ts = common && common->has_create_time && common->create_time
                   ? (int64_t)common->create_time
               : c->ts_fallback_ms     ? (int64_t)c->ts_fallback_ms
               : resp->has_now && resp->now ? (int64_t)resp->now
                                            : c->recv_ms;

  dl_buf *out = &c->f->store;
  size_t start = out->len;
  dl_json h;
  dl_json_init(&h, out);
  dl_json_obj_begin(&h);
  dl_json_key(&h, "v");
  dl_json_i64(&h, DL_EVENT_VERSION);
  dl_json_key(&h, "type");
  dl_json_str(&h, c->type);
  if (d->live_id_json_len != SIZE_MAX) {
    j_escaped(&h, "live_id", d->live_id_json, d->live_id_json_len);
  } else {
    dl_json_key(&h, "live_id");
    dl_json_str(&h, d->live_id);
  }
  dl_json_key(&h, "room_id");
  if (d->room_id_given)
    dl_json_str(&h, d->room_id);
  else if (common && common->has_room_id && common->room_id)
    dl_json_u64s(&h, common->room_id);
  else
    dl_json_str(&h, d->room_id[0] ? d->room_id : "0");
  dl_json_key(&h, "msg_id");
  dl_json_u64s(&h, msg_id);
  dl_json_key(&h, "ts_ms");
  dl_json_i64(&h, ts);
  dl_json_key(&h, "recv_ms");
  dl_json_i64(&h, c->recv_ms);
  dl_json_key(&h, "method");
  dl_json_str(&h, msg->method);
  if (h.err == DL_EOK && (h.err = dl_buf_add(out, body->p ? body->p : (const uint8_t *)"", body->len)) == DL_EOK)
    h.err = dl_buf_add(out, "}", 2); /* and its NUL, kept: the next event starts after it */
  if (h.err != DL_EOK) {
    out->len = start;
    return h.err == DL_ELIMIT ? DL_ELIMIT : DL_ENOMEM;
  }

  ev_out->json = NULL;
  ev_out->json_len = out->len - 1 - start;
  size_t tl = strlen(c->type);
  if (tl >= sizeof ev_out->type) tl = sizeof ev_out->type - 1;
  memcpy(ev_out->type, c->type, tl);
  ev_out->type[tl] = 0;
  ev_out->msg_id[dl_json_fmt_u64(ev_out->msg_id, msg_id)] = 0;
  ev_out->msg_id_u64 = msg_id;
  ev_out->ts_ms = ts;
  return DL_EOK;
}

/* One Message → one event (never zero: what does not parse becomes a raw event). What it
 * unpacks is released before the next Message. */
static dl_err decode_message(dl_decoder *d, dl_frame *f, const Webcast__Response *resp,
                             const Webcast__Message *msg, int64_t recv_ms, dl_event *ev) {
  const method_entry *me = decode_find_method(msg->method);
  const uint8_t *payload = msg->has_payload ? msg->payload.data : (const uint8_t *)"";
  size_t plen = msg->has_payload ? msg->payload.len : 0;
  ProtobufCMessage *pm = NULL;
  const char *err = NULL;
  int scrubbed = 0;
  msg_ctx c = {.d = d, .f = f, .recv_ms = recv_ms, .type = "raw"};
  const dl_pballoc_mark mark = dl_pballoc_get_mark(d->pa);
  dl_err rc;

  if (me) {
    rc = dl_pb_unpack(me->desc, d->pa, payload, plen, &pm, &scrubbed);
    if (rc == DL_ENOMEM) return rc;
    if (rc == DL_EOK) {
      f->scrubbed += (size_t)scrubbed;
      c.type = me->type;
      rc = build_event(&c, msg, resp, pm, get_common(pm), me->fn, NULL, ev);
      dl_pballoc_release(d->pa, mark);
      return rc;
    }
    f->bad_messages++;
    err = dl_err_str(rc);
  }

  /* raw: any other method, or a known one that did not parse. Its Common (field 1) still gives
   * msg_id / room_id / create_time when it parses. */
  const uint8_t *cb;
  size_t cl;
  Webcast__Common *common = NULL;
  if (dl_pb_find_bytes(payload, plen, 1, &cb, &cl) == DL_EOK) {
    ProtobufCMessage *cm = NULL;
    if (dl_pb_unpack(&webcast__common__descriptor, d->pa, cb, cl, &cm, NULL) == DL_EOK)
      common = (Webcast__Common *)cm;
  }
  rc = build_event(&c, msg, resp, NULL, common, NULL, err, ev);
  dl_pballoc_release(d->pa, mark);
  return rc;
}

void dl_frame_clear(dl_frame *f) {
  if (!f) return;
  free(f->events);
  dl_buf_free(&f->store);
  memset(f, 0, sizeof *f);
}

void dl_frame_reset(dl_frame *f) {
  dl_event *events = f->events;
  size_t events_cap = f->events_cap;
  dl_buf store = f->store;
  if (events_cap > DL_FRAME_RETAIN_EVENTS) {
    free(events);
    events = NULL;
    events_cap = 0;
  }
  if (store.cap > DL_FRAME_RETAIN_BYTES) dl_buf_free(&store);
  dl_buf_reset(&store);
  memset(f, 0, sizeof *f);
  f->events = events;
  f->events_cap = events_cap;
  f->store = store;
}

/* Copies s (NUL included) onto the frame's storage; *off gets where (SIZE_MAX for NULL). */
static dl_err store_str(dl_frame *f, const char *s, size_t *off) {
  *off = SIZE_MAX;
  if (!s) return DL_EOK;
  size_t at = f->store.len;
  dl_err e = dl_buf_add(&f->store, s, strlen(s) + 1);
  if (e == DL_EOK) *off = at;
  return e;
}

static char *stored(dl_frame *f, size_t off) {
  return off == SIZE_MAX ? NULL : (char *)f->store.p + off;
}

dl_err dl_decode_frame(dl_decoder *d, const uint8_t *buf, size_t len, int64_t recv_ms,
                       dl_frame *out) {
  memset(out, 0, sizeof *out);
  dl_err rc = dl_decode_frame_into(d, buf, len, recv_ms, out);
  if (rc != DL_EOK) dl_frame_clear(out);
  return rc;
}

dl_err dl_decode_frame_into(dl_decoder *d, const uint8_t *buf, size_t len, int64_t recv_ms,
                            dl_frame *out) {
  Webcast__PushFrame *pf = NULL;
  Webcast__Response *resp = NULL;
  const char *h_cursor = NULL, *h_ext = NULL, *h_compress = NULL;
  size_t cursor_off = SIZE_MAX, ext_off = SIZE_MAX;
  dl_err rc;

  dl_frame_reset(out);
  if (!out->store.max) dl_buf_init(&out->store, DL_JSON_MAX); /* a zeroed frame */
  /* best effort: without it the storage grows as the frame needs (and fails there if it must) */
  if (d->store_hint > out->store.cap) (void)dl_buf_reserve(&out->store, d->store_hint);
  if (d->events_hint > out->events_cap) {
    dl_event *ev = realloc(out->events, d->events_hint * sizeof *ev);
    if (ev) {
      out->events = ev;
      out->events_cap = d->events_hint;
    }
  }
  if (!buf || len == 0) return DL_EEMPTY;
  if (len > d->lim.max_frame_bytes) return DL_ELIMIT;
  if (!d->s) {
    dl_decode_scratch *s = dl_decode_scratch_new();
    if (!s) return DL_ENOMEM;
    dl_decoder_use_scratch(d, s);
    d->own_scratch = 1;
  }
  dl_pballoc_reset(d->pa);

  rc = dl_pb_unpack(&webcast__push_frame__descriptor, d->pa, buf, len, (ProtobufCMessage **)&pf,
                    NULL);
  if (rc != DL_EOK) goto cleanup;

  snprintf(out->payload_type, sizeof out->payload_type, "%s",
           pf->payload_type ? pf->payload_type : "");
  out->seq_id = pf->has_seq_id ? pf->seq_id : 0;
  out->log_id = pf->has_log_id ? pf->log_id : 0;
  for (size_t i = 0; i < pf->n_headers; i++) {
    const Webcast__HeaderEntry *h = pf->headers[i];
    if (!h->key || !h->value) continue;
    if (strcmp(h->key, "compress_type") == 0) h_compress = h->value;
    else if (strcmp(h->key, "im-cursor") == 0) h_cursor = h->value;
    else if (strcmp(h->key, "im-internal_ext") == 0) h_ext = h->value;
  }

  if (strcmp(out->payload_type, "msg") == 0) {
    const uint8_t *rb = pf->has_payload ? pf->payload.data : (const uint8_t *)"";
    size_t rlen = pf->has_payload ? pf->payload.len : 0, nmsg = 0;
    /* Inflate when the header says gzip, or when it is missing but the payload starts with the
     * gzip magic. The sniff cannot mistake a plain Response for gzip: a protobuf message starts
     * with a tag byte, and 0x1f is the tag of field 3 with wire type 7, which does not exist
     * (wire types are 0-5), so no valid Response starts with 0x1f. */
    int gzip_magic = rlen >= 2 && rb[0] == DL_GZIP_ID1 && rb[1] == DL_GZIP_ID2;
    if ((h_compress && strcmp(h_compress, "gzip") == 0) || gzip_magic) {
      rc = dl_inflater_run(d->s->inf, rb, rlen, d->lim.max_inflated_bytes,
                           d->lim.max_inflate_ratio, &rb, &rlen);
      if (rc != DL_EOK) goto cleanup;
    }
    /* Refuse before protobuf-c sizes an array for them. */
    rc = dl_pb_count_field(rb, rlen, 1, &nmsg);
    if (rc == DL_EOK && nmsg > d->lim.max_messages) rc = DL_ELIMIT;
    if (rc != DL_EOK) goto cleanup;
    rc = dl_pb_unpack(&webcast__response__descriptor, d->pa, rb, rlen,
                      (ProtobufCMessage **)&resp, NULL);
    if (rc != DL_EOK) goto cleanup;
    dl_inflater_trim(d->s->inf); /* the Response holds its own copies now */

    out->need_ack = resp->has_need_ack && resp->need_ack;
    out->heartbeat_duration = resp->has_heartbeat_duration ? resp->heartbeat_duration : 0;
    out->now_ms = resp->has_now ? resp->now : 0;
    if ((rc = store_str(out, resp->cursor && *resp->cursor ? resp->cursor : h_cursor,
                        &cursor_off)) != DL_EOK ||
        (rc = store_str(out, resp->internal_ext && *resp->internal_ext ? resp->internal_ext : h_ext,
                        &ext_off)) != DL_EOK)
      goto cleanup;
    if (resp->n_messages > out->events_cap) {
      dl_event *ev = realloc(out->events, resp->n_messages * sizeof *ev);
      if (!ev) {
        rc = DL_ENOMEM;
        goto cleanup;
      }
      out->events = ev;
      out->events_cap = resp->n_messages;
    }
    size_t events_start = out->store.len;
    for (size_t i = 0; i < resp->n_messages; i++) {
      rc = decode_message(d, out, resp, resp->messages[i], recv_ms, &out->events[out->n_events]);
      if (rc != DL_EOK) goto cleanup;
      out->n_events++;
    }
    /* the storage is complete: point into it (no storage at all when there is no event) */
    char *p = out->n_events ? (char *)out->store.p + events_start : NULL;
    for (size_t i = 0; i < out->n_events; i++) {
      out->events[i].json = p;
      p += out->events[i].json_len + 1;
    }
  } else {
    if ((rc = store_str(out, h_cursor, &cursor_off)) != DL_EOK ||
        (rc = store_str(out, h_ext, &ext_off)) != DL_EOK)
      goto cleanup;
  }
  out->cursor = stored(out, cursor_off);
  out->internal_ext = out->ack_ext = stored(out, ext_off);
  if (out->store.len > d->store_hint && out->store.len < DL_FRAME_RETAIN_BYTES) d->store_hint = out->store.len;
  if (out->n_events > d->events_hint && out->n_events <= DL_FRAME_RETAIN_EVENTS) d->events_hint = out->n_events;
  rc = DL_EOK;

cleanup:
  dl_pballoc_reset(d->pa); /* nothing of the frame's protobuf is kept */
  if (d->s) dl_inflater_trim(d->s->inf);
  if (rc != DL_EOK) dl_frame_reset(out);
  return rc;
}
