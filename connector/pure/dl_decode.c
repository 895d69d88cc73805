/* dl_decode — see dl_decode.h. Layout of one frame:
 *   PushFrame (dl_pb_unpack, size-capped) → headers → payload_type
 *   "msg": [dl_gunzip when compress_type=gzip] → count Response.messages (cap) → Response
 *   each Message: method → table → dl_pb_unpack(type) → normalize_* → cJSON → event
 * Every protobuf-c allocation goes through the decoder's dl_pballoc (budget max_alloc_bytes);
 * a Message that does not parse becomes a "raw" event with an "error" key and is counted. */
#include "dl_decode.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dl_b64.h"
#include "dl_gift.h"
#include "dl_gunzip.h"
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

struct dl_decoder {
  char *live_id;               /* valid UTF-8 (sanitized copy) */
  char room_id[DL_U64_DEC];    /* given at creation, else learned from the first Common.room_id */
  int room_id_given;
  dl_decode_limits lim;
  dl_pballoc *pa;
  dl_gift_tracker *gifts;
};

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
  return d;
}

void dl_decoder_free(dl_decoder *d) {
  if (!d) return;
  free(d->live_id);
  dl_pballoc_free(d->pa);
  dl_gift_free(d->gifts);
  free(d);
}

const char *dl_decoder_room_id(const dl_decoder *d) { return d->room_id; }
dl_gift_tracker *dl_decoder_gifts(dl_decoder *d) { return d->gifts; }

/* ---- JSON helpers: every string goes through the UTF-8 sanitizer; an allocation failure
 * anywhere sets *oom and the event is dropped with DL_ENOMEM for the frame. ---- */

typedef struct msg_ctx {
  dl_decoder *d;
  dl_frame *f;
  int64_t recv_ms;
  const char *type;          /* may be changed by the normalizer (social → follow/share) */
  uint64_t ts_fallback_ms;   /* ChatMessage.event_time × 1000, 0 when none */
  int oom;
} msg_ctx;

static void j_str(msg_ctx *c, cJSON *o, const char *key, const char *s) {
  if (!s) s = "";
  size_t n = strlen(s);
  if (dl_utf8_valid(s, n)) {
    if (!cJSON_AddStringToObject(o, key, s)) c->oom = 1;
    return;
  }
  char *clean = dl_utf8_sanitize(s, n, NULL);
  if (!clean || !cJSON_AddStringToObject(o, key, clean)) c->oom = 1;
  free(clean);
}

static void j_u64s(msg_ctx *c, cJSON *o, const char *key, uint64_t v) {
  char buf[DL_U64_DEC];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  if (!cJSON_AddStringToObject(o, key, buf)) c->oom = 1;
}

/* Integers are written as JSON number text from their exact decimal digits (cJSON_AddRaw), not
 * through a double: cJSON prints doubles with 15 significant digits and would silently round
 * anything above ~10^15. */
static void j_uint(msg_ctx *c, cJSON *o, const char *key, uint64_t v) {
  char buf[DL_U64_DEC];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  if (!cJSON_AddRawToObject(o, key, buf)) c->oom = 1;
}

static void j_int(msg_ctx *c, cJSON *o, const char *key, int64_t v) {
  char buf[DL_U64_DEC];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  if (!cJSON_AddRawToObject(o, key, buf)) c->oom = 1;
}

static void j_bool(msg_ctx *c, cJSON *o, const char *key, int v) {
  if (!cJSON_AddBoolToObject(o, key, v)) c->oom = 1;
}

static cJSON *j_obj(msg_ctx *c, cJSON *o, const char *key) {
  cJSON *x = cJSON_AddObjectToObject(o, key);
  if (!x) c->oom = 1;
  return x;
}

static cJSON *j_arr(msg_ctx *c, cJSON *o, const char *key) {
  cJSON *x = cJSON_AddArrayToObject(o, key);
  if (!x) c->oom = 1;
  return x;
}

/* The id events carry (CONTRACT §4): User.id, else User.id_str when id is 0/absent, else "0".
 * buf must hold DL_U64_DEC bytes; the result is buf or a string inside u. */
static const char *user_id_str(const Webcast__User *u, char *buf) {
  if (u->has_id && u->id) {
    snprintf(buf, DL_U64_DEC, "%" PRIu64, u->id);
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
static void j_user(msg_ctx *c, cJSON *parent, const char *key, const Webcast__User *u) {
  char buf[DL_U64_DEC];
  cJSON *o = j_obj(c, parent, key);
  if (!o) return;
  j_str(c, o, "id", user_id_str(u, buf));
  j_str(c, o, "nickname", u->nickname);
  j_str(c, o, "sec_uid", u->sec_uid);
  j_str(c, o, "display_id", u->display_id);
  j_int(c, o, "gender", u->has_gender ? u->gender : 0);
  j_uint(c, o, "pay_level",
        u->pay_grade && u->pay_grade->has_level ? u->pay_grade->level : 0);
  j_uint(c, o, "fans_club_level",
        u->fans_club && u->fans_club->data && u->fans_club->data->has_level
            ? u->fans_club->data->level
            : 0);
  j_str(c, o, "avatar",
        u->avatar_thumb && u->avatar_thumb->n_url_list ? u->avatar_thumb->url_list[0] : "");
  j_bool(c, o, "anonymous", user_anonymous(u));
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

/* An object appended to the array arr (NULL and c->oom set on allocation failure). */
static cJSON *j_arr_obj(msg_ctx *c, cJSON *arr) {
  cJSON *o = cJSON_CreateObject();
  if (!o || !cJSON_AddItemToArray(arr, o)) {
    cJSON_Delete(o);
    c->oom = 1;
    return NULL;
  }
  return o;
}

/* ts_ms fallback from a Unix-seconds field (ChatMessage.event_time, ScreenChatMessage.event_time)
 * when Common.create_time is absent; a value whose milliseconds overflow is ignored. */
static void ts_from_seconds(msg_ctx *c, int has, uint64_t secs) {
  if (has && secs && secs <= (uint64_t)INT64_MAX / 1000) c->ts_fallback_ms = secs * 1000;
}

/* ---- per-type normalizers (CONTRACT §4 table) ---- */

typedef void (*normalize_fn)(msg_ctx *c, const ProtobufCMessage *m, cJSON *ev);

static void norm_chat(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__ChatMessage *m = (const Webcast__ChatMessage *)pm;
  if (m->user) j_user(c, ev, "user", m->user);
  j_str(c, ev, "content", m->content);
  ts_from_seconds(c, m->has_event_time, m->event_time);
}

static void norm_emoji(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__EmojiChatMessage *m = (const Webcast__EmojiChatMessage *)pm;
  if (m->user) j_user(c, ev, "user", m->user);
  j_int(c, ev, "emoji_id", m->has_emoji_id ? m->emoji_id : 0);
  j_str(c, ev, "content", m->default_content);
}

static void norm_gift(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
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

  if (m->user) j_user(c, ev, "user", m->user);
  cJSON *o = j_obj(c, ev, "gift");
  if (o) {
    j_uint(c, o, "id", gift_id);
    j_str(c, o, "name", g ? g->name : NULL);
    j_int(c, o, "diamonds", g && g->has_diamond_count ? g->diamond_count : 0);
    j_uint(c, o, "repeat_count", up.repeat_count);
    j_uint(c, o, "combo_count", up.combo_count);
    j_uint(c, o, "group_count", up.group_count);
    j_int(c, o, "repeat_end", m->has_repeat_end ? m->repeat_end : 0);
    j_u64s(c, o, "group_id", up.group_id);
    j_uint(c, o, "delta", delta);
    j_bool(c, o, "combo", streakable);
  }
  if (m->to_user) j_user(c, ev, "to_user", m->to_user);
}

static void norm_like(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__LikeMessage *m = (const Webcast__LikeMessage *)pm;
  if (m->user) j_user(c, ev, "user", m->user);
  j_uint(c, ev, "count", m->has_count ? m->count : 0);
  j_uint(c, ev, "total", m->has_total ? m->total : 0);
}

static void norm_member(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__MemberMessage *m = (const Webcast__MemberMessage *)pm;
  if (m->user) j_user(c, ev, "user", m->user);
  j_uint(c, ev, "member_count", m->has_member_count ? m->member_count : 0);
  j_uint(c, ev, "action", m->has_action ? m->action : 0);
}

/* action 1 → "follow", 3 → "share"; any other action keeps type "social" (not in the CONTRACT
 * table; an extension) so nothing is silently mislabelled as a follow. */
static void norm_social(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__SocialMessage *m = (const Webcast__SocialMessage *)pm;
  uint64_t action = m->has_action ? m->action : 0;
  c->type = action == DL_SOCIAL_FOLLOW ? "follow" : action == DL_SOCIAL_SHARE ? "share" : "social";
  if (m->user) j_user(c, ev, "user", m->user);
  j_uint(c, ev, "action", action);
  j_uint(c, ev, "follow_count", m->has_follow_count ? m->follow_count : 0);
}

static void norm_viewers(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__RoomUserSeqMessage *m = (const Webcast__RoomUserSeqMessage *)pm;
  j_int(c, ev, "online", m->has_total ? m->total : 0);
  j_int(c, ev, "total_viewers", m->has_total_user ? m->total_user : 0);
  cJSON *top = j_arr(c, ev, "top");
  for (size_t i = 0; top && i < m->n_ranks; i++) {
    const Webcast__Contributor *r = m->ranks[i];
    cJSON *o = j_arr_obj(c, top);
    if (!o) return;
    j_uint(c, o, "rank", r->has_rank ? r->rank : 0);
    j_uint(c, o, "score", r->has_score ? r->score : 0);
    if (r->user) j_user(c, o, "user", r->user);
  }
}

static void norm_room_stats(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__RoomStatsMessage *m = (const Webcast__RoomStatsMessage *)pm;
  j_str(c, ev, "display", m->display_long);
  j_int(c, ev, "value", m->has_display_value ? m->display_value : 0);
}

static void norm_rank(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__RoomRankMessage *m = (const Webcast__RoomRankMessage *)pm;
  cJSON *ranks = j_arr(c, ev, "ranks");
  for (size_t i = 0; ranks && i < m->n_ranks; i++) {
    const Webcast__RoomRankEntry *r = m->ranks[i];
    cJSON *o = j_arr_obj(c, ranks);
    if (!o) return;
    if (r->user) j_user(c, o, "user", r->user);
    j_str(c, o, "score_str", r->score_str);
  }
}

static void norm_fansclub(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__FansclubMessage *m = (const Webcast__FansclubMessage *)pm;
  if (m->user) j_user(c, ev, "user", m->user);
  j_int(c, ev, "action", m->has_type ? m->type : 0);
  j_str(c, ev, "content", m->content);
}

static void norm_control(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__ControlMessage *m = (const Webcast__ControlMessage *)pm;
  int64_t status = m->has_status ? m->status : 0;
  j_int(c, ev, "status", status);
  if (status == DL_CONTROL_LIVE_ENDED) c->f->live_ended = 1;
}

/* WebcastScreenChatMessage (PROTOCOL §9.8): content 4, event_time 12 (seconds) as for chat. */
static void norm_screen_chat(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__ScreenChatMessage *m = (const Webcast__ScreenChatMessage *)pm;
  if (m->user) j_user(c, ev, "user", m->user);
  j_str(c, ev, "content", m->content);
  j_bool(c, ev, "privilege", 0);
  ts_from_seconds(c, m->has_event_time, m->event_time);
}

/* WebcastPrivilegeScreenChatMessage: the same event with content at 3 and "privilege": true. */
static void norm_privilege_screen_chat(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__PrivilegeScreenChatMessage *m = (const Webcast__PrivilegeScreenChatMessage *)pm;
  if (m->user) j_user(c, ev, "user", m->user);
  j_str(c, ev, "content", m->content);
  j_bool(c, ev, "privilege", 1);
}

/* WebcastProductChangeMessage: the changed products (at most DL_MAX_PRODUCTS), total, toast.
 * protobuf-c has already sized the list within the frame's allocation budget; the cap bounds
 * the event. */
static void norm_product(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__ProductChangeMessage *m = (const Webcast__ProductChangeMessage *)pm;
  size_t n = m->n_update_product_info < DL_MAX_PRODUCTS ? m->n_update_product_info
                                                        : DL_MAX_PRODUCTS;
  cJSON *list = j_arr(c, ev, "products");
  for (size_t i = 0; list && i < n; i++) {
    const Webcast__ProductInfo *p = m->update_product_info[i];
    cJSON *o = j_arr_obj(c, list);
    if (!o) return;
    j_u64s(c, o, "promotion_id", p->has_promotion_id ? p->promotion_id : 0);
    j_int(c, o, "index", p->has_index ? p->index : 0);
    j_uint(c, o, "explain_type", p->has_explain_type ? p->explain_type : 0);
  }
  if (m->n_update_product_info > n)
    j_uint(c, ev, "products_omitted", m->n_update_product_info - n);
  j_uint(c, ev, "total", m->has_total ? m->total : 0);
  j_str(c, ev, "toast", m->update_toast);
}

/* WebcastLiveShoppingMessage. The public schemas disagree on promotion_id (PROTOCOL §9.8): JP
 * has it at 3 (uint64) and a repeated uint64 target_uid at 4, S and B put promotionId (int64) at
 * 4. Field 3 wins when present. Otherwise field 4 is taken only when it is one varint: a JP
 * sender's target_uid list is packed (wire type 2) or, unpacked, comes with field 3 (JP always
 * sets promotion_id), so a lone varint at 4 is S/B's promotionId. Several varints at 4 are a
 * list, not an id: promotion_id is then "0". */
static void norm_shopping(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__LiveShoppingMessage *m = (const Webcast__LiveShoppingMessage *)pm;
  uint64_t promotion_id = 0;
  if (m->has_promotion_id)
    promotion_id = m->promotion_id;
  else if (dl_pb_unknown_varint(pm, DL_SHOPPING_PROMOTION_ID_ALT, &promotion_id) != DL_EOK)
    promotion_id = 0;
  j_int(c, ev, "msg_type", m->has_msg_type ? m->msg_type : 0);
  j_u64s(c, ev, "promotion_id", promotion_id);
  const Webcast__ShoppingProductInfo *p = m->updated_product_info;
  if (!p) return;
  cJSON *o = j_obj(c, ev, "product");
  if (!o) return;
  j_uint(c, o, "price", p->has_price ? p->price : 0);
  j_str(c, o, "title", p->title);
  j_str(c, o, "cover", p->cover);
  j_uint(c, o, "status", p->has_status ? p->status : 0);
}

/* WebcastLiveEcomMessage: "<nickname> bought" notices. The message has no User, only a name. */
static void norm_purchase(msg_ctx *c, const ProtobufCMessage *pm, cJSON *ev) {
  const Webcast__LiveEcomMessage *m = (const Webcast__LiveEcomMessage *)pm;
  j_str(c, ev, "nickname", m->nick_name);
  j_uint(c, ev, "purchase_count", m->has_purchase_cnt ? m->purchase_cnt : 0);
  j_str(c, ev, "text", m->text);
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

/* Builds one event into ev_out. pm/common may be NULL (raw events). */
static dl_err build_event(msg_ctx *c, const Webcast__Message *msg, const Webcast__Response *resp,
                          const ProtobufCMessage *pm, const Webcast__Common *common,
                          normalize_fn fn, const char *err, dl_event *ev_out) {
  dl_err rc = DL_ENOMEM;
  char *b64 = NULL;
  cJSON *ev = cJSON_CreateObject();
  if (!ev) return DL_ENOMEM;

  uint64_t msg_id = common && common->has_msg_id && common->msg_id ? common->msg_id
                    : msg->has_msg_id                               ? msg->msg_id
                                                                    : 0;
  dl_decoder *d = c->d;
  if (!d->room_id_given && !d->room_id[0] && common && common->has_room_id && common->room_id)
    snprintf(d->room_id, sizeof d->room_id, "%" PRIu64, common->room_id); /* learn it */

  j_int(c, ev, "v", DL_EVENT_VERSION);
  j_str(c, ev, "type", c->type); /* placeholder, final value set below */
  j_str(c, ev, "live_id", d->live_id);
  if (d->room_id_given)
    j_str(c, ev, "room_id", d->room_id);
  else if (common && common->has_room_id && common->room_id)
    j_u64s(c, ev, "room_id", common->room_id);
  else
    j_str(c, ev, "room_id", d->room_id[0] ? d->room_id : "0");
  j_u64s(c, ev, "msg_id", msg_id);
  j_int(c, ev, "ts_ms", 0); /* placeholder, final value set below */
  j_int(c, ev, "recv_ms", c->recv_ms);
  j_str(c, ev, "method", msg->method);

  if (fn) {
    fn(c, pm, ev);
  } else {
    const uint8_t *p = msg->has_payload ? msg->payload.data : NULL;
    size_t n = msg->has_payload ? msg->payload.len : 0;
    size_t blen = dl_b64_encoded_len(n);
    if (blen == SIZE_MAX || !(b64 = malloc(blen + 1))) goto cleanup;
    dl_b64_encode(p, n, b64);
    j_str(c, ev, "payload_b64", b64);
    if (err) j_str(c, ev, "error", err);
  }

  int64_t ts = common && common->has_create_time && common->create_time
                   ? (int64_t)common->create_time
               : c->ts_fallback_ms     ? (int64_t)c->ts_fallback_ms
               : resp->has_now && resp->now ? (int64_t)resp->now
                                            : c->recv_ms;
  char ts_buf[DL_U64_DEC];
  snprintf(ts_buf, sizeof ts_buf, "%" PRId64, ts);
  cJSON *t = cJSON_CreateString(c->type), *n = cJSON_CreateRaw(ts_buf);
  if (!t || !cJSON_ReplaceItemInObjectCaseSensitive(ev, "type", t)) {
    cJSON_Delete(t);
    c->oom = 1;
  }
  if (!n || !cJSON_ReplaceItemInObjectCaseSensitive(ev, "ts_ms", n)) {
    cJSON_Delete(n);
    c->oom = 1;
  }
  if (c->oom) goto cleanup;

  ev_out->json = cJSON_PrintUnformatted(ev);
  if (!ev_out->json) goto cleanup;
  ev_out->json_len = strlen(ev_out->json);
  snprintf(ev_out->type, sizeof ev_out->type, "%s", c->type);
  snprintf(ev_out->msg_id, sizeof ev_out->msg_id, "%" PRIu64, msg_id);
  ev_out->msg_id_u64 = msg_id;
  ev_out->ts_ms = ts;
  rc = DL_EOK;
cleanup:
  free(b64);
  cJSON_Delete(ev);
  return rc;
}

/* One Message → one event (never zero: what does not parse becomes a raw event). */
static dl_err decode_message(dl_decoder *d, dl_frame *f, const Webcast__Response *resp,
                             const Webcast__Message *msg, int64_t recv_ms, dl_event *ev) {
  ProtobufCAllocator *pa = dl_pballoc_allocator(d->pa);
  const method_entry *me = find_method(msg->method);
  const uint8_t *payload = msg->has_payload ? msg->payload.data : (const uint8_t *)"";
  size_t plen = msg->has_payload ? msg->payload.len : 0;
  ProtobufCMessage *pm = NULL;
  const char *err = NULL;
  int scrubbed = 0;
  msg_ctx c = {.d = d, .f = f, .recv_ms = recv_ms, .type = "raw"};
  dl_err rc;

  if (me) {
    rc = dl_pb_unpack(me->desc, d->pa, payload, plen, &pm, &scrubbed);
    if (rc == DL_ENOMEM) return rc;
    if (rc == DL_EOK) {
      f->scrubbed += (size_t)scrubbed;
      c.type = me->type;
      rc = build_event(&c, msg, resp, pm, get_common(pm), me->fn, NULL, ev);
      protobuf_c_message_free_unpacked(pm, pa);
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
  if (common) protobuf_c_message_free_unpacked(&common->base, pa);
  return rc;
}

static char *dup_str(const char *s, int *oom) {
  if (!s) return NULL;
  char *r = strdup(s);
  if (!r) *oom = 1;
  return r;
}

void dl_frame_clear(dl_frame *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n_events; i++) cJSON_free(f->events[i].json);
  free(f->events);
  free(f->ack_ext);
  free(f->cursor);
  free(f->internal_ext);
  memset(f, 0, sizeof *f);
}

dl_err dl_decode_frame(dl_decoder *d, const uint8_t *buf, size_t len, int64_t recv_ms,
                       dl_frame *out) {
  ProtobufCAllocator *pa = dl_pballoc_allocator(d->pa);
  Webcast__PushFrame *pf = NULL;
  Webcast__Response *resp = NULL;
  uint8_t *inflated = NULL;
  const char *h_cursor = NULL, *h_ext = NULL, *h_compress = NULL;
  int oom = 0;
  dl_err rc;

  memset(out, 0, sizeof *out);
  if (!buf || len == 0) return DL_EEMPTY;
  if (len > d->lim.max_frame_bytes) return DL_ELIMIT;
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
      rc = dl_gunzip(rb, rlen, d->lim.max_inflated_bytes, d->lim.max_inflate_ratio, &inflated,
                     &rlen);
      if (rc != DL_EOK) goto cleanup;
      rb = inflated;
    }
    /* Refuse before protobuf-c sizes an array for them. */
    rc = dl_pb_count_field(rb, rlen, 1, &nmsg);
    if (rc == DL_EOK && nmsg > d->lim.max_messages) rc = DL_ELIMIT;
    if (rc != DL_EOK) goto cleanup;
    rc = dl_pb_unpack(&webcast__response__descriptor, d->pa, rb, rlen,
                      (ProtobufCMessage **)&resp, NULL);
    if (rc != DL_EOK) goto cleanup;
    free(inflated); /* the Response holds its own copies now */
    inflated = NULL;

    out->need_ack = resp->has_need_ack && resp->need_ack;
    out->heartbeat_duration = resp->has_heartbeat_duration ? resp->heartbeat_duration : 0;
    out->now_ms = resp->has_now ? resp->now : 0;
    out->cursor = dup_str(resp->cursor && *resp->cursor ? resp->cursor : h_cursor, &oom);
    out->internal_ext =
        dup_str(resp->internal_ext && *resp->internal_ext ? resp->internal_ext : h_ext, &oom);
    out->ack_ext = dup_str(out->internal_ext, &oom);
    if (oom) {
      rc = DL_ENOMEM;
      goto cleanup;
    }
    if (resp->n_messages) {
      out->events = calloc(resp->n_messages, sizeof *out->events);
      if (!out->events) {
        rc = DL_ENOMEM;
        goto cleanup;
      }
    }
    for (size_t i = 0; i < resp->n_messages; i++) {
      rc = decode_message(d, out, resp, resp->messages[i], recv_ms, &out->events[out->n_events]);
      if (rc != DL_EOK) goto cleanup;
      out->n_events++;
    }
  } else {
    out->cursor = dup_str(h_cursor, &oom);
    out->internal_ext = dup_str(h_ext, &oom);
    out->ack_ext = dup_str(h_ext, &oom);
    if (oom) {
      rc = DL_ENOMEM;
      goto cleanup;
    }
  }
  rc = DL_EOK;

cleanup:
  if (resp) protobuf_c_message_free_unpacked(&resp->base, pa);
  if (pf) protobuf_c_message_free_unpacked(&pf->base, pa);
  free(inflated);
  if (rc != DL_EOK) dl_frame_clear(out);
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
