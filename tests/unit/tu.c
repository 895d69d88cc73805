#include "tu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dl_utf8.h"

uint8_t *tu_read_file(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long sz = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
  if (b && fread(b, 1, (size_t)sz, fp) != (size_t)sz) {
    free(b);
    b = NULL;
  }
  fclose(fp);
  *len = (size_t)sz;
  return b;
}

uint8_t *tu_gzip(const uint8_t *in, size_t n, size_t *out_len) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  size_t cap = deflateBound(&zs, (uLong)n) + 64;
  uint8_t *out = malloc(cap);
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
  *out_len = zs.total_out;
  deflateEnd(&zs);
  return out;
}

uint8_t *tu_pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*len ? *len : 1);
  protobuf_c_message_pack(m, b);
  return b;
}

uint8_t *tu_frame_from_response(const uint8_t *resp, size_t resp_len, int gzip, size_t *len) {
  Webcast__PushFrame pf = WEBCAST__PUSH_FRAME__INIT;
  Webcast__HeaderEntry h = WEBCAST__HEADER_ENTRY__INIT, *hp = &h;
  size_t glen = resp_len;
  uint8_t *g = gzip ? tu_gzip(resp, resp_len, &glen) : NULL;
  pf.has_seq_id = 1;
  pf.seq_id = 7;
  pf.has_log_id = 1;
  pf.log_id = 1234567890123ULL;
  pf.payload_type = "msg";
  pf.payload_encoding = "pb";
  if (gzip) {
    h.key = "compress_type";
    h.value = "gzip";
    pf.n_headers = 1;
    pf.headers = &hp;
  }
  pf.has_payload = 1;
  pf.payload.data = gzip ? g : (uint8_t *)(uintptr_t)resp;
  pf.payload.len = glen;
  uint8_t *out = tu_pack(&pf.base, len);
  free(g);
  return out;
}

Webcast__Message *tu_msg_raw(const char *method, const uint8_t *payload, size_t n,
                             uint64_t msg_id) {
  Webcast__Message *m = malloc(sizeof *m);
  webcast__message__init(m);
  m->method = (char *)(uintptr_t)method;
  m->has_payload = 1;
  m->payload.data = malloc(n ? n : 1);
  if (n) memcpy(m->payload.data, payload, n);
  m->payload.len = n;
  if (msg_id) {
    m->has_msg_id = 1;
    m->msg_id = msg_id;
  }
  return m;
}

Webcast__Message *tu_msg(const char *method, const ProtobufCMessage *pm, uint64_t msg_id) {
  size_t n;
  uint8_t *p = tu_pack(pm, &n);
  Webcast__Message *m = tu_msg_raw(method, p, n, msg_id);
  free(p);
  return m;
}

void tu_msg_free(Webcast__Message *m) {
  if (!m) return;
  free(m->payload.data);
  free(m);
}

uint8_t *tu_response(Webcast__Message **msgs, size_t n, uint64_t now, size_t *len) {
  Webcast__Response r = WEBCAST__RESPONSE__INIT;
  r.n_messages = n;
  r.messages = msgs;
  if (now) {
    r.has_now = 1;
    r.now = now;
  }
  r.has_need_ack = 1;
  r.need_ack = 1;
  r.internal_ext = "ext-from-response";
  r.cursor = "cursor-from-response";
  return tu_pack(&r.base, len);
}

uint8_t *tu_frame(Webcast__Message **msgs, size_t n, uint64_t now, size_t *len) {
  size_t rl;
  uint8_t *rb = tu_response(msgs, n, now, &rl);
  uint8_t *f = tu_frame_from_response(rb, rl, 1, len);
  free(rb);
  return f;
}

uint8_t *tu_frame_payload(const uint8_t *payload, size_t n, const char *compress_type,
                          size_t *len) {
  Webcast__PushFrame pf = WEBCAST__PUSH_FRAME__INIT;
  Webcast__HeaderEntry h = WEBCAST__HEADER_ENTRY__INIT, *hp = &h;
  if (compress_type) {
    h.key = "compress_type";
    h.value = (char *)(uintptr_t)compress_type;
    pf.n_headers = 1;
    pf.headers = &hp;
  }
  pf.payload_type = "msg";
  pf.has_payload = 1;
  pf.payload.data = (uint8_t *)(uintptr_t)payload;
  pf.payload.len = n;
  return tu_pack(&pf.base, len);
}

static void pbw_need(pbw *w, size_t k) {
  if (w->n + k <= w->cap) return;
  while (w->cap < w->n + k) w->cap = w->cap ? w->cap * 2 : 64;
  w->buf = realloc(w->buf, w->cap);
}

static void pbw_v(pbw *w, uint64_t v) {
  pbw_need(w, 10);
  while (v >= 0x80) {
    w->buf[w->n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  w->buf[w->n++] = (uint8_t)v;
}

void pbw_varint(pbw *w, uint32_t field, uint64_t v) {
  pbw_v(w, (uint64_t)field << 3 | 0);
  pbw_v(w, v);
}

void pbw_bytes(pbw *w, uint32_t field, const void *p, size_t n) {
  pbw_v(w, (uint64_t)field << 3 | 2);
  pbw_v(w, n);
  pbw_raw(w, p, n);
}

void pbw_str(pbw *w, uint32_t field, const char *s) { pbw_bytes(w, field, s, strlen(s)); }

void pbw_raw(pbw *w, const void *p, size_t n) {
  pbw_need(w, n);
  if (n) memcpy(w->buf + w->n, p, n);
  w->n += n;
}

void pbw_free(pbw *w) {
  free(w->buf);
  memset(w, 0, sizeof *w);
}

cJSON *tu_parse_event(const dl_event *e) {
  if (!e->json || strlen(e->json) != e->json_len) return NULL;
  if (!dl_utf8_valid(e->json, e->json_len)) return NULL;
  return cJSON_Parse(e->json);
}

static const cJSON *walk(const cJSON *o, const char *path) {
  char key[128];
  while (o && *path) {
    size_t k = strcspn(path, ".");
    if (k >= sizeof key) return NULL;
    memcpy(key, path, k);
    key[k] = 0;
    path += k + (path[k] == '.');
    if (cJSON_IsArray(o))
      o = cJSON_GetArrayItem(o, atoi(key));
    else
      o = cJSON_GetObjectItemCaseSensitive(o, key);
  }
  return o;
}

const char *tu_jstr(const cJSON *o, const char *path) {
  const cJSON *x = walk(o, path);
  return cJSON_IsString(x) ? x->valuestring : NULL;
}

double tu_jnum(const cJSON *o, const char *path) {
  const cJSON *x = walk(o, path);
  if (cJSON_IsBool(x)) return cJSON_IsTrue(x);
  return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

int tu_jhas(const cJSON *o, const char *path) { return walk(o, path) != NULL; }

dl_err tu_decode_more(tu_dec *t, const uint8_t *buf, size_t len, int64_t recv_ms) {
  for (size_t i = 0; i < 64; i++) {
    cJSON_Delete(t->ev[i]);
    t->ev[i] = NULL;
  }
  dl_frame_clear(&t->f);
  t->rc = dl_decode_frame(t->d, buf, len, recv_ms, &t->f);
  for (size_t i = 0; i < t->f.n_events && i < 64; i++) {
    t->ev[i] = tu_parse_event(&t->f.events[i]);
    if (getenv("DL_TEST_VERBOSE")) printf("event %zu: %s\n", i, t->f.events[i].json);
  }
  return t->rc;
}

dl_err tu_decode_msg(tu_dec *t, const char *method, const uint8_t *payload, size_t n,
                     uint64_t now) {
  size_t fl;
  Webcast__Message *m = tu_msg_raw(method, payload, n, 99);
  uint8_t *f = tu_frame(&m, 1, now, &fl);
  dl_err rc = tu_decode(t, NULL, f, fl);
  free(f);
  tu_msg_free(m);
  return rc;
}

dl_err tu_decode(tu_dec *t, const char *room_id, const uint8_t *buf, size_t len) {
  memset(t, 0, sizeof *t);
  t->d = dl_decoder_new("L1", room_id, NULL);
  if (!t->d) abort();
  return tu_decode_more(t, buf, len, 1700000000000);
}

void tu_dec_free(tu_dec *t) {
  for (size_t i = 0; i < 64; i++) cJSON_Delete(t->ev[i]);
  dl_frame_clear(&t->f);
  dl_decoder_free(t->d);
  memset(t, 0, sizeof *t);
}
