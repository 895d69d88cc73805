/* dl_decode — the pure decoder: one PushFrame in, normalized events out.
 *
 * PushFrame → (bounded gunzip when header compress_type=gzip, or when the header is missing and
 * the payload starts with the gzip magic 1f 8b) → Response → per-method unpack
 * → one event JSON per Message (CONTRACT §4). No sockets, no Redis, no clocks: the caller passes
 * recv_ms. A decoder holds the per-room state that normalization needs (gift streaks), so there
 * is one dl_decoder per room, used by one thread at a time.
 *
 * Everything in the input is hostile: every size is checked against dl_decode_limits before it
 * is allocated; a malformed Message costs that message (counted in dl_frame.bad_messages), never
 * the frame's other messages; a malformed frame returns an error and leaves the decoder usable.
 */
#ifndef DL_DECODE_H
#define DL_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "dl_buf.h"
#include "dl_err.h"

typedef struct dl_decode_limits {
  size_t max_frame_bytes;        /* whole PushFrame as received (default 4 MiB) */
  size_t max_inflated_bytes;     /* gunzipped Response (default 16 MiB) */
  size_t max_inflate_ratio;      /* inflated / compressed (default 1000) */
  size_t max_messages;           /* Response.messages per frame (default 10000) */
  size_t max_alloc_bytes;        /* protobuf-c allocations per frame (default 64 MiB) */
  size_t max_gift_streaks;       /* tracked (user, gift, group) streaks per room (default 4096) */
  int64_t gift_streak_ttl_ms;    /* idle streak forgotten after (default 600000) */
} dl_decode_limits;

/* Fills the defaults above. In a dl_decode_limits given to dl_decoder_new, a size field of 0
 * means its default, except max_inflate_ratio (0 = no ratio cap) and gift_streak_ttl_ms
 * (<= 0 = streaks expire only by LRU). */
void dl_decode_limits_default(dl_decode_limits *lim);

typedef struct dl_decoder dl_decoder;

/* live_id is copied (it goes into every event). room_id may be NULL or "" when unknown: the
 * decoder then uses Common.room_id. Returns NULL only on allocation failure. */
dl_decoder *dl_decoder_new(const char *live_id, const char *room_id, const dl_decode_limits *lim);
void dl_decoder_free(dl_decoder *d);

/* Added (compatible extension). The room id events carry: the one given to dl_decoder_new, else
 * the first non-zero Common.room_id seen, else "" (never NULL; valid until the next call). */
const char *dl_decoder_room_id(const dl_decoder *d);
/* The decoder's gift streak state (dl_gift.h: dl_gift_export / dl_gift_import), e.g. to hand a
 * room over to another worker without double-counting a running combo. */
struct dl_gift_tracker;
struct dl_gift_tracker *dl_decoder_gifts(dl_decoder *d);

/* Added (compatible extension). What decoding a frame needs and nothing keeps after it returns:
 * the protobuf-c arena, the decompressor and its output buffer, an event buffer (DESIGN §7).
 * Each holds up to 1 MiB between frames (what a bigger frame took goes back after it). A decoder
 * makes its own at its first frame unless given one: the decoders of one thread can share one
 * (their frames never interleave), which keeps the memory per room flat. Not thread-safe. */
typedef struct dl_decode_scratch dl_decode_scratch;
dl_decode_scratch *dl_decode_scratch_new(void);   /* NULL on allocation failure */
void dl_decode_scratch_free(dl_decode_scratch *s);
/* d uses s (not owned; it must outlive d or be replaced first) instead of its own; NULL: its own
 * again, made at the next frame. */
void dl_decoder_use_scratch(dl_decoder *d, dl_decode_scratch *s);

/* One normalized event. JSON shape (CONTRACT §4), decisions the contract leaves open:
 *  - "method" is always present; "room_id" is "0" when neither the decoder nor the message knows
 *    it; "msg_id" is "0" when the message has none.
 *  - "user"/"to_user" objects always have every key (id, nickname, sec_uid, display_id, gender,
 *    pay_level, fans_club_level, avatar, anonymous), "" / 0 / false when absent, for a stable
 *    shape. "anonymous" is true only for a masked user (PROTOCOL §9.8: id 111111 or no id, and a
 *    nickname "<one character>***"), else false.
 *  - screen_chat always has "privilege" (false for WebcastScreenChatMessage); shopping's
 *    "promotion_id" is "0" when neither field 3 nor a lone varint field 4 gives one; product's
 *    list stops at 1000 entries and "products_omitted" counts the rest (only when > 0).
 *  - WebcastSocialMessage with an action other than 1/3 has type "social" (with "action").
 *  - a known method whose payload does not parse even after the §8 scrub becomes type "raw" with
 *    "error" (and counts in dl_frame.bad_messages), never nothing.
 *  - integers are exact JSON integers (also above 2^53); ids are decimal strings. */
typedef struct dl_event {
  char type[24];       /* "chat", "gift", … "raw" */
  char msg_id[24];     /* decimal; "0" when the message has none */
  uint64_t msg_id_u64;
  int64_t ts_ms;
  char *json;          /* NUL-terminated event JSON (CONTRACT §4), in the dl_frame's storage */
  size_t json_len;
} dl_event;

/* What one PushFrame said. Owned by the caller; release with dl_frame_clear(). The strings and
 * every event's JSON live in the frame's own storage (not separately malloc'd), which
 * dl_decode_frame_into reuses from one frame to the next. */
typedef struct dl_frame {
  char payload_type[16];   /* "msg", "hb", "close", … (truncated copy) */
  uint64_t seq_id;
  uint64_t log_id;
  int need_ack;            /* Response.need_ack */
  char *ack_ext;           /* the internal_ext to echo in the ack (Response.internal_ext, else the
                              im-internal_ext header); NULL when none (the same string as
                              internal_ext) */
  char *cursor;            /* Response.cursor, else im-cursor header; NULL when none */
  char *internal_ext;      /* Response.internal_ext, else im-internal_ext header; NULL when none */
  uint64_t heartbeat_duration; /* seconds, 0 when absent */
  uint64_t now_ms;         /* Response.now, 0 when absent */
  int live_ended;          /* a ControlMessage with status 3 was in this frame */
  size_t bad_messages;     /* Messages skipped because their payload did not parse */
  dl_event *events;        /* n_events events, in Response order */
  size_t n_events;
  /* Added (compatible extension): */
  size_t scrubbed;         /* Messages that parsed only after dropping mistyped fields (§8) */
  size_t events_cap;       /* storage: room in events (kept by dl_frame_reset) */
  dl_buf store;            /* storage: the strings above and every event's JSON */
} dl_frame;

/* Decodes one WebSocket binary message. On DL_EOK, *out is filled (n_events may be 0 for hb or
 * frames without messages). On error, *out holds nothing to free (it is cleared) and the error
 * tells why: DL_EEMPTY, DL_ELIMIT (frame too big / too many messages / alloc budget), DL_EPROTO,
 * DL_EGZIP, DL_EBOMB. */
dl_err dl_decode_frame(dl_decoder *d, const uint8_t *buf, size_t len, int64_t recv_ms,
                       dl_frame *out);
/* Frees what f holds; f is then an empty (zeroed) frame. */
void dl_frame_clear(dl_frame *f);

/* Added (compatible extension): the same into a frame that is zeroed (memset, calloc) or was
 * used before, whose storage is reused (nothing malloc'd once it is big enough). Whatever f said
 * before is gone. On error f holds no events and no strings (n_events 0, NULL pointers) but keeps
 * its storage; release it with dl_frame_clear in the end. */
dl_err dl_decode_frame_into(dl_decoder *d, const uint8_t *buf, size_t len, int64_t recv_ms,
                            dl_frame *f);
/* Empties f, keeping its storage up to a bound (256 events, 64 KiB; more is freed), e.g. to
 * keep a recycled frame small. */
void dl_frame_reset(dl_frame *f);

/* Client frames (PROTOCOL §3.4, §3.5). Heartbeat: the 4 bytes 3a 02 68 62. Ack:
 * PushFrame{log_id, payload_type "ack", payload = ext}. Write into buf; return the length, or 0
 * when cap is too small. */
size_t dl_frame_build_heartbeat(uint8_t *buf, size_t cap);
size_t dl_frame_build_ack(uint64_t log_id, const char *ext, uint8_t *buf, size_t cap);

#endif
