/* dl_decode — see dl_decode.h. The decoder (limits, the shared scratch, the live and room ids,
 * the gift streaks), the per-type normalizers that write an event's body, the table from a
 * Message's method to its type and normalizer, and the client frames (heartbeat, ack). One
 * frame's path, PushFrame → Response → Messages → events, is dl_decode_frame.c. */
#include "dl_decode.h"
#include "dl_decode_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ControlMessage.status meaning the live ended (PROTOCOL §4). */
#define DL_CONTROL_LIVE_ENDED 3
/* SocialMessage.action values (PROTOCOL §4). */
#define DL_SOCIAL_FOLLOW 1
#define DL_SOCIAL_SHARE 3
/* What the shared decode scratch keeps between frames (arena blocks, inflated output): a real
 * frame needs tens of KiB; one exceptional frame's memory goes back to the system after it. */
#define DL_SCRATCH_RETAIN (1u << 20)
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

void dl_decode_limits_default(dl_decode_limits *lim) {
  lim->max_frame_bytes = DL_DEFAULT_MAX_FRAME_BYTES;
  lim->max_inflated_bytes = DL_DEFAULT_MAX_INFLATED_BYTES;
  lim->max_inflate_ratio = DL_DEFAULT_MAX_INFLATE_RATIO;
  lim->max_messages = DL_DEFAULT_MAX_MESSAGES;
  lim->max_alloc_bytes = DL_DEFAULT_MAX_ALLOC_BYTES;
  lim->max_gift_streaks = DL_DEFAULT_MAX_GIFT_STREAKS;
  lim->gift_streak_ttl_ms = DL_DEFAULT_GIFT_STREAK_TTL_MS;
}

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

const method_entry *decode_find_method(const char *method) {
  if (!method) return NULL;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].method, method) == 0) return &methods[i];
  return NULL;
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
