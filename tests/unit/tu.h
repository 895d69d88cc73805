/* Test utilities: files, gzip, frame building, a hand protobuf writer, JSON lookups. */
#ifndef TU_H
#define TU_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

#include "dl_decode.h"
#include "webcast.pb-c.h"

uint8_t *tu_read_file(const char *path, size_t *len);
/* gzip of in (malloc'd). */
uint8_t *tu_gzip(const uint8_t *in, size_t n, size_t *out_len);
/* protobuf-c pack into a malloc'd buffer. */
uint8_t *tu_pack(const ProtobufCMessage *m, size_t *len);
/* A "msg" PushFrame (compress_type gzip when gzip) around the serialized Response bytes. */
uint8_t *tu_frame_from_response(const uint8_t *resp, size_t resp_len, int gzip, size_t *len);
/* A Message{method, payload = pack(m), msg_id}. The payload is malloc'd: free with tu_msg_free. */
Webcast__Message *tu_msg(const char *method, const ProtobufCMessage *m, uint64_t msg_id);
Webcast__Message *tu_msg_raw(const char *method, const uint8_t *payload, size_t n, uint64_t msg_id);
void tu_msg_free(Webcast__Message *m);
/* Response{messages, now (when not 0), need_ack=1, cursor, internal_ext} bytes. */
uint8_t *tu_response(Webcast__Message **msgs, size_t n, uint64_t now, size_t *len);
/* tu_response → gzip → PushFrame bytes. */
uint8_t *tu_frame(Webcast__Message **msgs, size_t n, uint64_t now, size_t *len);
/* A "msg" PushFrame carrying payload[0..n) as it is, with a header compress_type=compress_type
 * unless that is NULL. */
uint8_t *tu_frame_payload(const uint8_t *payload, size_t n, const char *compress_type,
                          size_t *len);

/* Hand protobuf writer, for the wire shapes protobuf-c refuses to produce. */
typedef struct pbw {
  uint8_t *buf;
  size_t n, cap;
} pbw;
void pbw_varint(pbw *w, uint32_t field, uint64_t v);
void pbw_bytes(pbw *w, uint32_t field, const void *p, size_t n);
void pbw_str(pbw *w, uint32_t field, const char *s);
void pbw_raw(pbw *w, const void *p, size_t n);
void pbw_free(pbw *w);

/* Parses an event's JSON; NULL when it is not JSON or not valid UTF-8. */
cJSON *tu_parse_event(const dl_event *e);
/* Lookups by dotted path ("gift.name", "top.0.user.id"); NULL / NAN when absent. */
const char *tu_jstr(const cJSON *o, const char *path);
double tu_jnum(const cJSON *o, const char *path);
int tu_jhas(const cJSON *o, const char *path);

/* Decodes one frame with a fresh default decoder for (live "L1", room_id) and keeps it. */
typedef struct tu_dec {
  dl_decoder *d;
  dl_frame f;
  dl_err rc;
  cJSON *ev[64];
} tu_dec;
dl_err tu_decode(tu_dec *t, const char *room_id, const uint8_t *buf, size_t len);
/* Decodes a frame (gzip, Response.now = now) of one Message{method, payload, msg_id 99}. */
dl_err tu_decode_msg(tu_dec *t, const char *method, const uint8_t *payload, size_t n,
                     uint64_t now);
/* Decodes more frames on the same decoder. */
dl_err tu_decode_more(tu_dec *t, const uint8_t *buf, size_t len, int64_t recv_ms);
void tu_dec_free(tu_dec *t);

extern const char *tu_captures_dir;

#endif
