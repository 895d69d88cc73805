/* dl_decode — see dl_decode.h. Layout of one frame:
 *   PushFrame (dl_pb_unpack, size-capped) → headers → payload_type
 *   "msg": [dl_inflater when compress_type=gzip] → count Response.messages (cap) → Response
 *   each Message: method → table → dl_pb_unpack(type) → normalize_* → dl_json → event
 * Every protobuf-c allocation goes through the decoder's dl_pballoc (budget max_alloc_bytes) on
 * the scratch arena, released after each Message and at the end of the frame; a Message that
 * does not parse becomes a "raw" event with an "error" key and is counted. In steady state a
 * frame allocates nothing: the arena, the inflate state and the body buffer are the scratch's,
 * the events and their JSON go to the dl_frame's storage, reused by dl_decode_frame_into. */
#include "dl_decode.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_b64.h"
#include "dl_gift.h"
#include "dl_gunzip.h"
#include "dl_json.h"
#include "dl_pballoc.h"
#include "dl_pbscrub.h"
#include "dl_utf8.h"
#include "webcast.pb-c.h"

/* Defaults (dl_decode.h documents them). A real frame is a few KiB compressed and tens of KiB
 * inflated; these leave two orders of magnitude of headroom and still bound one room's worst
 * frame to well under 100 MiB. */
#define DL_DEFAULT_MAX_FRAME_BYTES (4u << 20)
#define DL_DEFAULT_MAX_INFLATED_BYTES (16u << 20)
#define DL_DEFAULT_MAX_INFLATE_RATIO 1000
#define DL_DEFAULT_MAX_MESSAGES 10000
#define DL_DEFAULT_MAX_ALLOC_BYTES (64u << 20)
#define DL_DEFAULT_MAX_GIFT_STREAKS 4096
#define DL_DEFAULT_GIFT_STREAK_TTL_MS 600000

/* Event schema version (CONTRACT §4 "v"). */
#define DL_EVENT_VERSION 1
/* ControlMessage.status meaning the live ended (PROTOCOL §4). */
#define DL_CONTROL_LIVE_ENDED 3
/* SocialMessage.action values (PROTOCOL §4). */
#define DL_SOCIAL_FOLLOW 1
#define DL_SOCIAL_SHARE 3
/* Room ids and msg ids are uint64: 20 digits + NUL. */
#define DL_U64_DEC 24
/* What the shared decode scratch keeps between frames (arena blocks, inflated output): a real
 * frame needs tens of KiB; one exceptional frame's memory goes back to the system after it. */
#define DL_SCRATCH_RETAIN (1u << 20)
/* Cap of one frame's JSON (every event) and of one event's body: far above any frame the limits
 * let through (16 MiB inflated, escaped at most 6x), a bound on a bug rather than on input. */
#define DL_JSON_MAX ((size_t)1 << 30)
/* The escaped live id is kept with the decoder when it fits here (real ones are ~12 digits). */
#define DL_LIVE_ID_JSON 128
/* A dl_frame's storage kept by dl_frame_reset (a recycled frame): events and JSON bytes. */
#define DL_FRAME_RETAIN_EVENTS 256
#define DL_FRAME_RETAIN_BYTES (64u << 10)
/* Anonymous viewers (PROTOCOL §9.8): when the anchor hides the audience, Douyin sends every
 * User.id as 111111 and the nickname as its first character + "***" (e.g. "紫***"). */
#define DL_ANON_USER_ID "111111"
#define DL_ANON_NICK_MASK "***"
/* ProductChangeMessage lists the products that changed; a Douyin shop window holds a few hundred
 * at most. 1000 keeps every real list whole and bounds one product event to ~70 KiB of JSON;
 * the rest are counted in "products_omitted". */
#define DL_MAX_PRODUCTS 1000
/* LiveShoppingMessage field that S and B name promotionId (JP: repeated target_uid), read only
 * when field 3 is absent (norm_shopping). */
#define DL_SHOPPING_PROMOTION_ID_ALT 4
/* The two bytes every gzip member starts with (RFC 1952 §2.3.1 ID1 ID2). */
#define DL_GZIP_ID1 0x1f
#define DL_GZIP_ID2 0x8b

void dl_decode_limits_default(dl_decode_limits *lim) {
  lim->max_frame_bytes = DL_DEFAULT_MAX_FRAME_BYTES;
  lim->max_inflated_bytes = DL_DEFAULT_MAX_INFLATED_BYTES;
  lim->max_inflate_ratio = DL_DEFAULT_MAX_INFLATE_RATIO;
  lim->max_messages = DL_DEFAULT_MAX_MESSAGES;
  lim->max_alloc_bytes = DL_DEFAULT_MAX_ALLOC_BYTES;
  lim->max_gift_streaks = DL_DEFAULT_MAX_GIFT_STREAKS;
  lim->gift_streak_ttl_ms = DL_DEFAULT_GIFT_STREAK_TTL_MS;
}

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
};

dl_decode_scratch *dl_decode_scratch_new(void) {
  dl_decode_scratch *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  dl_arena_init(&s->arena, DL_SCRATCH_RETAIN);
  dl_buf_init(&s->body, DL_JSON_MAX);
  if (!(s->inf = dl_inflater_new(DL_SCRATCH_RETAIN))) {
    free(s);
    return NULL;
  }
  return s;
}

void dl_decode_scratch_free(dl_decode_scratch *s) {
  if (!s) return;
  dl_arena_fini(&s->arena);
  dl_inflater_free(s->inf);
  dl_buf_free(&s->body);
  free(s);
}

static void drop_scratch(dl_decoder *d) {
  if (d->own_scratch) dl_decode_scratch_free(d->s);
  d->s = NULL;
  d->own_scratch = 0;
}

void dl_decoder_use_scratch(dl_decoder *d, dl_decode_scratch *s) {
  drop_scratch(d);
  d->s = s;
  dl_pballoc_use_arena(d->pa, s ? &s->arena : NULL);
}

dl_decoder *dl_decoder_new(const char *live_id, const char *room_id, const dl_decode_limits *lim) {
  dl_decoder *d = calloc(1, sizeof *d);
  dl_decode_limits def;
  if (!d) return NULL;
  dl_decode_limits_default(&def);
  d->lim = lim ? *lim : def;
  /* 0 means "the default" so callers can set only what they care about. */
  if (!d->lim.max_frame_bytes) d->lim.max_frame_bytes = def.max_frame_bytes;
  if (!d->lim.max_inflated_bytes) d->lim.max_inflated_bytes = def.max_inflated_bytes;
  if (!d->lim.max_messages) d->lim.max_messages = def.max_messages;
  if (!d->lim.max_alloc_bytes) d->lim.max_alloc_bytes = def.max_alloc_bytes;
  if (!d->lim.max_gift_streaks) d->lim.max_gift_streaks = def.max_gift_streaks;
  if (!live_id) live_id = "";
  d->live_id = dl_utf8_sanitize(live_id, strlen(live_id), NULL);
  if (room_id && *room_id) {
    snprintf(d->room_id, sizeof d->room_id, "%s", room_id);
    d->room_id_given = 1;
  }
  d->pa = dl_pballoc_new(d->lim.max_alloc_bytes);
  d->gifts = dl_gift_new(d->lim.max_gift_streaks, d->lim.gift_streak_ttl_ms);
  if (!d->live_id || !d->pa || !d->gifts) {
    dl_decoder_free(d);
    return NULL;
  }
  /* the live id's JSON string, escaped once: it is in every event */
  dl_buf t;
  dl_buf_init(&t, DL_JSON_MAX);
  if (dl_json_escape(&t, d->live_id, strlen(d->live_id)) == DL_EOK && t.len < sizeof d->live_id_json) {
    memcpy(d->live_id_json, t.p ? (const char *)t.p : "", t.len);
    d->live_id_json_len = t.len;
  } else {
    d->live_id_json_len = SIZE_MAX; /* too long: escaped with every event */
  }
  dl_buf_free(&t);
  return d;
}

void dl_decoder_free(dl_decoder *d) {
  if (!d) return;
  drop_scratch(d);
  free(d->live_id);
  dl_pballoc_free(d->pa);
  dl_gift_free(d->gifts);
  free(d);
}

const char *dl_decoder_room_id(const dl_decoder *d) { return d->room_id; }
dl_gift_tracker *dl_decoder_gifts(dl_decoder *d) { return d->gifts; }

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

static void j_str(msg_ctx *c, const char *key, const char *s) {
  dl_json_key(&c->j, key);
  dl_json_str(&c->j, s);
}

static void j_u64s(msg_ctx *c, const char *key, uint64_t v) {
  dl_json_key(&c->j, key);
  dl_json_u64s(&c->j, v);
}

/* Integers are exact JSON numbers from their decimal digits, never through a double. */
static void j_uint(msg_ctx *c, const char *key, uint64_t v) {
  dl_json_key(&c->j, key);
  dl_json_u64(&c->j, v);
}

static void j_int(msg_ctx *c, const char *key, int64_t v) {
  dl_json_key(&c->j, key);
  dl_json_i64(&c->j, v);
}

static void j_bool(msg_ctx *c, const char *key, int v) {
  dl_json_key(&c->j, key);
  dl_json_bool(&c->j, v);
}

static void j_obj(msg_ctx *c, const char *key) {
  dl_json_key(&c->j, key);
  dl_json_obj_begin(&c->j);
}

static void j_arr(msg_ctx *c, const char *key) {
  dl_json_key(&c->j, key);
  dl_json_arr_begin(&c->j);
}

static void j_end_obj(msg_ctx *c) { dl_json_obj_end(&c->j); }
static void j_end_arr(msg_ctx *c) { dl_json_arr_end(&c->j); }
/* An object as the next element of the open array. */
static void j_arr_obj(msg_ctx *c) { dl_json_obj_begin(&c->j); }

/* The id events carry (CONTRACT §4): User.id, else User.id_str when id is 0/absent, else "0".
 * buf must hold DL_U64_DEC bytes; the result is buf or a string inside u. */
static const char *user_id_str(const Webcast__User *u, char *buf) {
  if (u->has_id && u->id) {
    buf[dl_json_fmt_u64(buf, u->id)] = 0;
    return buf;
  }
  return u->id_str && *u->id_str ? u->id_str : "0";
}

/* "<one character>***": one well-formed UTF-8 code point, then exactly the mask. */
static int nickname_masked(const char *s) {
  if (!s || !*s) return 0;
  unsigned char b = (unsigned char)s[0];
  size_t k = b < 0x80 ? 1                 /* the length of the first character, from its lead */
             : (b & 0xE0) == 0xC0 ? 2     /* byte; dl_utf8_valid refuses what is not one */
             : (b & 0xF0) == 0xE0 ? 3
             : (b & 0xF8) == 0xF0 ? 4
                                  : 0;
  size_t mask = sizeof DL_ANON_NICK_MASK - 1;
  return k && strnlen(s, k + mask + 1) == k + mask && dl_utf8_valid(s, k) &&
         memcmp(s + k, DL_ANON_NICK_MASK, mask) == 0;
}

/* A masked user (PROTOCOL §9.8): id 111111, or no id at all, with a masked nickname. A real
 * user whose id happens to be 111111 keeps a normal nickname and is not anonymous. */
static int user_anonymous(const Webcast__User *u) {
  char buf[DL_U64_DEC];
  const char *id = user_id_str(u, buf);
  return nickname_masked(u->nickname) &&
         (strcmp(id, DL_ANON_USER_ID) == 0 || strcmp(id, "0") == 0);
}

/* The user object. Stable shape: every key is always present, with "" / 0 / false when Douyin
 * did not send the field (masked users without a login cookie have most of them empty), so
 * consumers never need to test for presence. */
static void j_user(msg_ctx *c, const char *key, const Webcast__User *u) {
  char buf[DL_U64_DEC];
  j_obj(c, key);
  j_str(c, "id", user_id_str(u, buf));
  j_str(c, "nickname", u->nickname);
  j_str(c, "sec_uid", u->sec_uid);
  j_str(c, "display_id", u->display_id);
  j_int(c, "gender", u->has_gender ? u->gender : 0);
  j_uint(c, "pay_level",
        u->pay_grade && u->pay_grade->has_level ? u->pay_grade->level : 0);
  j_uint(c, "fans_club_level",
        u->fans_club && u->fans_club->data && u->fans_club->data->has_level
            ? u->fans_club->data->level
            : 0);
  j_str(c, "avatar",
        u->avatar_thumb && u->avatar_thumb->n_url_list ? u->avatar_thumb->url_list[0] : "");
  j_bool(c, "anonymous", user_anonymous(u));
  j_end_obj(c);
}

/* The sender part of a gift streak key (dl_gift.h). Every anonymous user has the id 111111, so
 * PROTOCOL §9.8 forbids keying on it: their key is a hash of the masked nickname instead, which
 * keeps the streaks of "紫***" and "小***" apart when they send the same gift in the same second
 * (group_id is a send time). */
static uint64_t user_key(const Webcast__User *u) {
  if (!u) return 0;
  uint64_t id = u->has_id && u->id ? u->id : u->id_str && *u->id_str ? strtoull(u->id_str, NULL, 10) : 0;
  return dl_gift_user_key(id, u->nickname, user_anonymous(u));
}

/* ts_ms fallback from a Unix-seconds field (ChatMessage.event_time, ScreenChatMessage.event_time)
 * when Common.create_time is absent; a value whose milliseconds overflow is ignored. */
static void ts_from_seconds(msg_ctx *c, int has, uint64_t secs) {
  if (has && secs && secs <= (uint64_t)INT64_MAX / 1000) c->ts_fallback_ms = secs * 1000;
}

/* ---- per-type normalizers (CONTRACT §4 table) ---- */

typedef void (*normalize_fn)(msg_ctx *c, const ProtobufCMessage *m);

static void norm_chat(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__ChatMessage *m = (const Webcast__ChatMessage *)pm;
  if (m->user) j_user(c, "user", m->user);
  j_str(c, "content", m->content);
  ts_from_seconds(c, m->has_event_time, m->event_time);
}

static void norm_emoji(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__EmojiChatMessage *m = (const Webcast__EmojiChatMessage *)pm;
  if (m->user) j_user(c, "user", m->user);
  j_int(c, "emoji_id", m->has_emoji_id ? m->emoji_id : 0);
  j_str(c, "content", m->default_content);
}

static void norm_gift(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__GiftMessage *m = (const Webcast__GiftMessage *)pm;
  const Webcast__GiftStruct *g = m->gift;
  uint64_t gift_id = m->has_gift_id && m->gift_id ? m->gift_id : (g && g->has_id ? g->id : 0);
  int streakable = (g && g->has_combo && g->combo) ||
                   (m->has_send_type && m->send_type == DL_GIFT_SEND_TYPE_COMBO);
  dl_gift_update up = {
      .user_id = user_key(m->user),
      .gift_id = gift_id,
      .group_id = m->has_group_id ? m->group_id : 0,
      .repeat_count = m->has_repeat_count ? m->repeat_count : 0,
      .combo_count = m->has_combo_count ? m->combo_count : 0,
      .group_count = m->has_group_count ? m->group_count : 0,
      .repeat_end = m->has_repeat_end && m->repeat_end == 1,
      .streakable = streakable,
  };
  uint64_t delta = dl_gift_delta(c->d->gifts, &up, c->recv_ms);

  if (m->user) j_user(c, "user", m->user);
  j_obj(c, "gift");
  {
    j_uint(c, "id", gift_id);
    j_str(c, "name", g ? g->name : NULL);
    j_int(c, "diamonds", g && g->has_diamond_count ? g->diamond_count : 0);
    j_uint(c, "repeat_count", up.repeat_count);
    j_uint(c, "combo_count", up.combo_count);
    j_uint(c, "group_count", up.group_count);
    j_int(c, "repeat_end", m->has_repeat_end ? m->repeat_end : 0);
    j_u64s(c, "group_id", up.group_id);
    j_uint(c, "delta", delta);
    j_bool(c, "combo", streakable);
  }
  j_end_obj(c);
  if (m->to_user) j_user(c, "to_user", m->to_user);
}

static void norm_like(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__LikeMessage *m = (const Webcast__LikeMessage *)pm;
  if (m->user) j_user(c, "user", m->user);
  j_uint(c, "count", m->has_count ? m->count : 0);
  j_uint(c, "total", m->has_total ? m->total : 0);
}

static void norm_member(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__MemberMessage *m = (const Webcast__MemberMessage *)pm;
  if (m->user) j_user(c, "user", m->user);
  j_uint(c, "member_count", m->has_member_count ? m->member_count : 0);
  j_uint(c, "action", m->has_action ? m->action : 0);
}

/* action 1 → "follow", 3 → "share"; any other action keeps type "social" (not in the CONTRACT
 * table; an extension) so nothing is silently mislabelled as a follow. */
static void norm_social(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__SocialMessage *m = (const Webcast__SocialMessage *)pm;
  uint64_t action = m->has_action ? m->action : 0;
  c->type = action == DL_SOCIAL_FOLLOW ? "follow" : action == DL_SOCIAL_SHARE ? "share" : "social";
  if (m->user) j_user(c, "user", m->user);
  j_uint(c, "action", action);
  j_uint(c, "follow_count", m->has_follow_count ? m->follow_count : 0);
}

static void norm_viewers(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__RoomUserSeqMessage *m = (const Webcast__RoomUserSeqMessage *)pm;
  j_int(c, "online", m->has_total ? m->total : 0);
  j_int(c, "total_viewers", m->has_total_user ? m->total_user : 0);
  j_arr(c, "top");
  for (size_t i = 0; i < m->n_ranks; i++) {
    const Webcast__Contributor *r = m->ranks[i];
    j_arr_obj(c);
    j_uint(c, "rank", r->has_rank ? r->rank : 0);
    j_uint(c, "score", r->has_score ? r->score : 0);
    if (r->user) j_user(c, "user", r->user);
    j_end_obj(c);
  }
  j_end_arr(c);
}

static void norm_room_stats(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__RoomStatsMessage *m = (const Webcast__RoomStatsMessage *)pm;
  j_str(c, "display", m->display_long);
  j_int(c, "value", m->has_display_value ? m->display_value : 0);
}

static void norm_rank(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__RoomRankMessage *m = (const Webcast__RoomRankMessage *)pm;
  j_arr(c, "ranks");
  for (size_t i = 0; i < m->n_ranks; i++) {
    const Webcast__RoomRankEntry *r = m->ranks[i];
    j_arr_obj(c);
    if (r->user) j_user(c, "user", r->user);
    j_str(c, "score_str", r->score_str);
    j_end_obj(c);
  }
  j_end_arr(c);
}

static void norm_fansclub(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__FansclubMessage *m = (const Webcast__FansclubMessage *)pm;
  if (m->user) j_user(c, "user", m->user);
  j_int(c, "action", m->has_type ? m->type : 0);
  j_str(c, "content", m->content);
}

static void norm_control(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__ControlMessage *m = (const Webcast__ControlMessage *)pm;
  int64_t status = m->has_status ? m->status : 0;
  j_int(c, "status", status);
  if (status == DL_CONTROL_LIVE_ENDED) c->f->live_ended = 1;
}

/* WebcastScreenChatMessage (PROTOCOL §9.8): content 4, event_time 12 (seconds) as for chat. */
static void norm_screen_chat(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__ScreenChatMessage *m = (const Webcast__ScreenChatMessage *)pm;
  if (m->user) j_user(c, "user", m->user);
  j_str(c, "content", m->content);
  j_bool(c, "privilege", 0);
  ts_from_seconds(c, m->has_event_time, m->event_time);
}

/* WebcastPrivilegeScreenChatMessage: the same event with content at 3 and "privilege": true. */
static void norm_privilege_screen_chat(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__PrivilegeScreenChatMessage *m = (const Webcast__PrivilegeScreenChatMessage *)pm;
  if (m->user) j_user(c, "user", m->user);
  j_str(c, "content", m->content);
  j_bool(c, "privilege", 1);
}

/* WebcastProductChangeMessage: the changed products (at most DL_MAX_PRODUCTS), total, toast.
 * protobuf-c has already sized the list within the frame's allocation budget; the cap bounds
 * the event. */
static void norm_product(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__ProductChangeMessage *m = (const Webcast__ProductChangeMessage *)pm;
  size_t n = m->n_update_product_info < DL_MAX_PRODUCTS ? m->n_update_product_info
                                                        : DL_MAX_PRODUCTS;
  j_arr(c, "products");
  for (size_t i = 0; i < n; i++) {
    const Webcast__ProductInfo *p = m->update_product_info[i];
    j_arr_obj(c);
    j_u64s(c, "promotion_id", p->has_promotion_id ? p->promotion_id : 0);
    j_int(c, "index", p->has_index ? p->index : 0);
    j_uint(c, "explain_type", p->has_explain_type ? p->explain_type : 0);
    j_end_obj(c);
  }
  j_end_arr(c);
  if (m->n_update_product_info > n)
    j_uint(c, "products_omitted", m->n_update_product_info - n);
  j_uint(c, "total", m->has_total ? m->total : 0);
  j_str(c, "toast", m->update_toast);
}

/* WebcastLiveShoppingMessage. The public schemas disagree on promotion_id (PROTOCOL §9.8): JP
 * has it at 3 (uint64) and a repeated uint64 target_uid at 4, S and B put promotionId (int64) at
 * 4. Field 3 wins when present. Otherwise field 4 is taken only when it is one varint: a JP
 * sender's target_uid list is packed (wire type 2) or, unpacked, comes with field 3 (JP always
 * sets promotion_id), so a lone varint at 4 is S/B's promotionId. Several varints at 4 are a
 * list, not an id: promotion_id is then "0". */
static void norm_shopping(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__LiveShoppingMessage *m = (const Webcast__LiveShoppingMessage *)pm;
  uint64_t promotion_id = 0;
  if (m->has_promotion_id)
    promotion_id = m->promotion_id;
  else if (dl_pb_unknown_varint(pm, DL_SHOPPING_PROMOTION_ID_ALT, &promotion_id) != DL_EOK)
    promotion_id = 0;
  j_int(c, "msg_type", m->has_msg_type ? m->msg_type : 0);
  j_u64s(c, "promotion_id", promotion_id);
  const Webcast__ShoppingProductInfo *p = m->updated_product_info;
  if (!p) return;
  j_obj(c, "product");
  j_uint(c, "price", p->has_price ? p->price : 0);
  j_str(c, "title", p->title);
  j_str(c, "cover", p->cover);
  j_uint(c, "status", p->has_status ? p->status : 0);
  j_end_obj(c);
}

/* WebcastLiveEcomMessage: "<nickname> bought" notices. The message has no User, only a name. */
static void norm_purchase(msg_ctx *c, const ProtobufCMessage *pm) {
  const Webcast__LiveEcomMessage *m = (const Webcast__LiveEcomMessage *)pm;
  j_str(c, "nickname", m->nick_name);
  j_uint(c, "purchase_count", m->has_purchase_cnt ? m->purchase_cnt : 0);
  j_str(c, "text", m->text);
}

typedef struct method_entry {
  const char *method;
  const char *type;
  const ProtobufCMessageDescriptor *desc;
  normalize_fn fn;
} method_entry;

static const method_entry methods[] = {
    {"WebcastChatMessage", "chat", &webcast__chat_message__descriptor, norm_chat},
    {"WebcastEmojiChatMessage", "emoji_chat", &webcast__emoji_chat_message__descriptor, norm_emoji},
    {"WebcastGiftMessage", "gift", &webcast__gift_message__descriptor, norm_gift},
    {"WebcastLikeMessage", "like", &webcast__like_message__descriptor, norm_like},
    {"WebcastMemberMessage", "member", &webcast__member_message__descriptor, norm_member},
    {"WebcastSocialMessage", "social", &webcast__social_message__descriptor, norm_social},
    {"WebcastRoomUserSeqMessage", "viewers", &webcast__room_user_seq_message__descriptor,
     norm_viewers},
    {"WebcastRoomStatsMessage", "room_stats", &webcast__room_stats_message__descriptor,
     norm_room_stats},
    {"WebcastRoomRankMessage", "rank", &webcast__room_rank_message__descriptor, norm_rank},
    {"WebcastFansclubMessage", "fansclub", &webcast__fansclub_message__descriptor, norm_fansclub},
    {"WebcastControlMessage", "control", &webcast__control_message__descriptor, norm_control},
    {"WebcastScreenChatMessage", "screen_chat", &webcast__screen_chat_message__descriptor,
     norm_screen_chat},
    {"WebcastPrivilegeScreenChatMessage", "screen_chat",
     &webcast__privilege_screen_chat_message__descriptor, norm_privilege_screen_chat},
    {"WebcastProductChangeMessage", "product", &webcast__product_change_message__descriptor,
     norm_product},
    {"WebcastLiveShoppingMessage", "shopping", &webcast__live_shopping_message__descriptor,
     norm_shopping},
    {"WebcastLiveEcomMessage", "purchase", &webcast__live_ecom_message__descriptor, norm_purchase},
};

static const method_entry *find_method(const char *method) {
  if (!method) return NULL;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].method, method) == 0) return &methods[i];
  return NULL;
}

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
    if (err) j_str(c, "error", err);
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
  const method_entry *me = find_method(msg->method);
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
  rc = DL_EOK;

cleanup:
  dl_pballoc_reset(d->pa); /* nothing of the frame's protobuf is kept */
  if (d->s) dl_inflater_trim(d->s->inf);
  if (rc != DL_EOK) dl_frame_reset(out);
  return rc;
}

/* ---- client frames ---- */

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

size_t dl_frame_build_heartbeat(uint8_t *buf, size_t cap) {
  static const uint8_t hb[] = {0x3a, 0x02, 0x68, 0x62}; /* PushFrame{payload_type: "hb"} */
  if (cap < sizeof hb) return 0;
  memcpy(buf, hb, sizeof hb);
  return sizeof hb;
}

size_t dl_frame_build_ack(uint64_t log_id, const char *ext, uint8_t *buf, size_t cap) {
  static const uint8_t ack_type[] = {0x3a, 0x03, 'a', 'c', 'k'}; /* field 7 "ack" */
  size_t elen = ext ? strlen(ext) : 0;
  uint8_t tmp[10];
  /* tag + varint(log_id) + "ack" field + tag + varint(len) + ext */
  size_t head = 1 + put_varint(tmp, log_id) + sizeof ack_type + 1 + put_varint(tmp, elen);
  if (elen > cap || cap - elen < head) return 0;
  size_t n = 0;
  buf[n++] = 0x10; /* field 2 log_id, varint */
  n += put_varint(buf + n, log_id);
  memcpy(buf + n, ack_type, sizeof ack_type);
  n += sizeof ack_type;
  buf[n++] = 0x42; /* field 8 payload, length-delimited */
  n += put_varint(buf + n, elen);
  if (elen) memcpy(buf + n, ext, elen);
  return n + elen;
}
