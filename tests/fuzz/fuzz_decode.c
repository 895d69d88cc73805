/* libFuzzer target for the pure decoder.
 *
 * Each input is decoded as a PushFrame as received on the WebSocket, and as the bytes of a
 * Response wrapped in an uncompressed "msg" PushFrame (so mutations reach Response/Message
 * parsing without having to forge a gzip CRC), each into a fresh dl_frame and into one reused
 * dl_frame (dl_decode_frame_into, as ingest does). Small limits make the caps reachable. Every event
 * must be one valid JSON object in valid UTF-8; anything else aborts (a finding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dl_decode.h"
#include "dl_utf8.h"
#include "webcast.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Limits small enough that a fuzzer input can cross each of them. */
#define FUZZ_MAX_FRAME (256u << 10)
#define FUZZ_MAX_INFLATED (1u << 20)
#define FUZZ_MAX_MESSAGES 64
#define FUZZ_MAX_ALLOC (4u << 20)
#define FUZZ_MAX_STREAKS 8

static void check_frame(const dl_frame *f) {
  for (size_t i = 0; i < f->n_events; i++) {
    const dl_event *e = &f->events[i];
    if (!e->json || strlen(e->json) != e->json_len) abort();
    if (!dl_utf8_valid(e->json, e->json_len)) abort();
    cJSON *j = cJSON_Parse(e->json);
    if (!cJSON_IsObject(j)) abort();
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, e->type) != 0) abort();
    cJSON_Delete(j);
  }
  uint8_t ack[512];
  (void)dl_frame_build_ack(f->log_id, f->ack_ext, ack, sizeof ack);
}

static void decode_once(dl_decoder *d, const uint8_t *buf, size_t len) {
  dl_frame f;
  if (dl_decode_frame(d, buf, len, 1700000000000, &f) == DL_EOK) check_frame(&f);
  else if (f.n_events || f.events || f.cursor || f.ack_ext || f.internal_ext) abort();
  dl_frame_clear(&f);
}

/* The ingest's way: into a frame whose storage an earlier decode left (reused, not cleared). */
static void decode_into(dl_decoder *d, dl_frame *f, const uint8_t *buf, size_t len) {
  if (dl_decode_frame_into(d, buf, len, 1700000000000, f) == DL_EOK) check_frame(f);
  else if (f->n_events || f->cursor || f->ack_ext || f->internal_ext) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dl_decode_limits lim;
  dl_decode_limits_default(&lim);
  lim.max_frame_bytes = FUZZ_MAX_FRAME;
  lim.max_inflated_bytes = FUZZ_MAX_INFLATED;
  lim.max_messages = FUZZ_MAX_MESSAGES;
  lim.max_alloc_bytes = FUZZ_MAX_ALLOC;
  lim.max_gift_streaks = FUZZ_MAX_STREAKS;
  dl_decoder *d = dl_decoder_new("fuzz", NULL, &lim);
  if (!d) return 0;

  decode_once(d, data, size);
  dl_frame reused;
  memset(&reused, 0, sizeof reused);
  decode_into(d, &reused, data, size);

  Webcast__PushFrame pf = WEBCAST__PUSH_FRAME__INIT;
  pf.payload_type = "msg";
  pf.has_payload = 1;
  pf.payload.data = (uint8_t *)(uintptr_t)data;
  pf.payload.len = size;
  size_t n = webcast__push_frame__get_packed_size(&pf);
  uint8_t *wrapped = malloc(n);
  if (wrapped) {
    webcast__push_frame__pack(&pf, wrapped);
    decode_once(d, wrapped, n);
    decode_into(d, &reused, wrapped, n);
    decode_into(d, &reused, data, size);
    free(wrapped);
  }
  dl_frame_clear(&reused);
  dl_decoder_free(d);
  return 0;
}
