/* dl_decode_int.h — private to the decoder (dl_decode.c: the decoder, the per-type normalizers,
 * the client frames; dl_decode_frame.c: one frame — PushFrame, Response, Messages, events). Not
 * for other modules. */
#ifndef DL_DECODE_INT_H
#define DL_DECODE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dl_arena.h"
#include "dl_buf.h"
#include "dl_decode.h"
#include "dl_gift.h"
#include "dl_gunzip.h"
#include "dl_json.h"
#include "dl_pballoc.h"
#include "webcast.pb-c.h"

/* Room ids and msg ids are uint64: 20 digits + NUL. */
#define DL_U64_DEC 24
/* Cap of one frame's JSON (every event) and of one event's body: far above any frame the limits
 * let through (16 MiB inflated, escaped at most 6x), a bound on a bug rather than on input. */
#define DL_JSON_MAX ((size_t)1 << 30)
/* The escaped live id is kept with the decoder when it fits here (real ones are ~12 digits). */
#define DL_LIVE_ID_JSON 128

/* What decoding one frame needs and nothing keeps after it: the protobuf-c arena, the inflate
 * state and its output, the buffer an event's body is written to. One per thread is enough
 * (dl_decode_scratch_new); a decoder without one makes its own at the first frame. */
struct dl_decode_scratch {
  dl_arena arena;
  dl_inflater *inf;
  dl_buf body;
};

struct dl_decoder {
  char *live_id;               /* valid UTF-8 (sanitized copy) */
  char room_id[DL_U64_DEC];    /* given at creation, else learned from the first Common.room_id */
  int room_id_given;
  dl_decode_limits lim;
  dl_pballoc *pa;
  dl_gift_tracker *gifts;
  dl_decode_scratch *s;        /* own or shared */
  int own_scratch;
  char live_id_json[DL_LIVE_ID_JSON]; /* "live_id" escaped, when it fits (else escaped per event) */
  size_t live_id_json_len;
  /* the largest storage a frame of this room took (up to what dl_frame_reset keeps): a recycled
   * frame is grown to it at once, not through a chain of reallocs as bigger frames come */
  size_t store_hint, events_hint;
};

/* ---- JSON: every event is written by dl_json straight into the frame's buffer (its body
 * first into the scratch buffer: "type" and "ts_ms" come before it but are known only after the
 * normalizer ran). Strings are sanitized to UTF-8 and escaped by dl_json; an allocation failure
 * anywhere makes the frame fail with DL_ENOMEM. ---- */

typedef struct msg_ctx {
  dl_decoder *d;
  dl_frame *f;
  int64_t recv_ms;
  const char *type;          /* may be changed by the normalizer (social → follow/share) */
  uint64_t ts_fallback_ms;   /* ChatMessage.event_time × 1000, 0 when none */
  dl_json j;                 /* the event's body */
} msg_ctx;

typedef void (*normalize_fn)(msg_ctx *c, const ProtobufCMessage *m);

typedef struct method_entry {
  const char *method;
  const char *type;
  const ProtobufCMessageDescriptor *desc;
  normalize_fn fn;
} method_entry;

/* dl_decode.c */
/* The table entry of a Message's method, or NULL (a raw event). */
const method_entry *decode_find_method(const char *method);

#endif
