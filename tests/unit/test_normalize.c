/* Normalization per CONTRACT §4 type, from messages packed with protobuf-c here. */
#include <math.h>
#include <stdlib.h>

#include "dl_test.h"
#include "dl_utf8.h"
#include "tu.h"

static Webcast__Common common_of(uint64_t msg_id, uint64_t create_time) {
  Webcast__Common c = WEBCAST__COMMON__INIT;
  c.has_msg_id = 1;
  c.msg_id = msg_id;
  c.has_room_id = 1;
  c.room_id = 7000000000000000001ULL;
  if (create_time) {
    c.has_create_time = 1;
    c.create_time = create_time;
  }
  return c;
}

static Webcast__User user_of(uint64_t id, const char *nick) {
  Webcast__User u = WEBCAST__USER__INIT;
  u.has_id = 1;
  u.id = id;
  u.nickname = (char *)(uintptr_t)nick;
  return u;
}

/* Decodes a frame of one message and leaves the event in t->ev[0]. */
static int one(const char *method, const ProtobufCMessage *m, tu_dec *t) {
  size_t fl;
  Webcast__Message *msg = tu_msg(method, m, 99);
  uint8_t *f = tu_frame(&msg, 1, 1700000000999ULL, &fl);
  tu_decode(t, NULL, f, fl);
  free(f);
  tu_msg_free(msg);
  ASSERT_EQ_ERR(t->rc, DL_EOK);
  ASSERT_EQ_U64(t->f.n_events, 1);
  ASSERT_TRUE(t->ev[0]);
  ASSERT_EQ_U64(t->f.bad_messages, 0);
  ASSERT_EQ_STR(tu_jstr(t->ev[0], "method"), method);
  ASSERT_EQ_STR(tu_jstr(t->ev[0], "room_id"), "7000000000000000001");
  return 0;
}

int test_normalize_types(void) {
  tu_dec t;
  Webcast__Common c = common_of(1001, 1700000000500ULL);
  Webcast__User u = user_of(555, "nick");
  Webcast__PayGrade pg = WEBCAST__PAY_GRADE__INIT;
  Webcast__FansClubData fcd = WEBCAST__FANS_CLUB_DATA__INIT;
  Webcast__FansClub fc = WEBCAST__FANS_CLUB__INIT;
  pg.has_level = 1;
  pg.level = 23;
  fcd.has_level = 1;
  fcd.level = 9;
  fc.data = &fcd;
  u.pay_grade = &pg;
  u.fans_club = &fc;
  u.sec_uid = "MS4wLjABAAAA";
  u.display_id = "dy123";
  u.has_gender = 1;
  u.gender = 2;

  { /* chat */
    Webcast__ChatMessage m = WEBCAST__CHAT_MESSAGE__INIT;
    m.common = &c;
    m.user = &u;
    m.content = "hello";
    CHECK(one("WebcastChatMessage", &m.base, &t));
    const cJSON *e = t.ev[0];
    ASSERT_EQ_STR(tu_jstr(e, "type"), "chat");
    ASSERT_EQ_STR(tu_jstr(e, "msg_id"), "1001");
    ASSERT_EQ_I64(tu_jnum(e, "ts_ms"), 1700000000500LL);
    ASSERT_EQ_STR(tu_jstr(e, "content"), "hello");
    ASSERT_EQ_STR(tu_jstr(e, "user.id"), "555");
    ASSERT_EQ_STR(tu_jstr(e, "user.nickname"), "nick");
    ASSERT_EQ_STR(tu_jstr(e, "user.sec_uid"), "MS4wLjABAAAA");
    ASSERT_EQ_STR(tu_jstr(e, "user.display_id"), "dy123");
    ASSERT_EQ_U64(tu_jnum(e, "user.gender"), 2);
    ASSERT_EQ_U64(tu_jnum(e, "user.pay_level"), 23);
    ASSERT_EQ_U64(tu_jnum(e, "user.fans_club_level"), 9);
    /* key order: the common keys first */
    ASSERT_TRUE(strncmp(t.f.events[0].json, "{\"v\":1,\"type\":\"chat\",\"live_id\":\"L1\",", 36) == 0);
    tu_dec_free(&t);
  }
  { /* emoji_chat */
    Webcast__EmojiChatMessage m = WEBCAST__EMOJI_CHAT_MESSAGE__INIT;
    m.common = &c;
    m.user = &u;
    m.has_emoji_id = 1;
    m.emoji_id = 4242;
    m.default_content = "[smile]";
    CHECK(one("WebcastEmojiChatMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "emoji_chat");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "emoji_id"), 4242);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "content"), "[smile]");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "555");
    tu_dec_free(&t);
  }
  { /* gift, gift_id absent → gift.id; to_user */
    Webcast__GiftMessage m = WEBCAST__GIFT_MESSAGE__INIT;
    Webcast__GiftStruct g = WEBCAST__GIFT_STRUCT__INIT;
    Webcast__User to = user_of(777, "anchor");
    g.has_id = 1;
    g.id = 685;
    g.name = "粉丝团灯牌";
    g.has_diamond_count = 1;
    g.diamond_count = 10;
    m.common = &c;
    m.user = &u;
    m.to_user = &to;
    m.gift = &g;
    m.has_group_count = 1;
    m.group_count = 66;
    m.has_group_id = 1;
    m.group_id = 18446744073709551615ULL; /* uint64 max stays exact as a string */
    CHECK(one("WebcastGiftMessage", &m.base, &t));
    const cJSON *e = t.ev[0];
    ASSERT_EQ_STR(tu_jstr(e, "type"), "gift");
    ASSERT_EQ_U64(tu_jnum(e, "gift.id"), 685);
    ASSERT_EQ_STR(tu_jstr(e, "gift.name"), "粉丝团灯牌");
    ASSERT_EQ_U64(tu_jnum(e, "gift.diamonds"), 10);
    ASSERT_EQ_U64(tu_jnum(e, "gift.group_count"), 66);
    ASSERT_EQ_U64(tu_jnum(e, "gift.repeat_count"), 0);
    ASSERT_EQ_U64(tu_jnum(e, "gift.combo_count"), 0);
    ASSERT_EQ_U64(tu_jnum(e, "gift.repeat_end"), 0);
    ASSERT_EQ_STR(tu_jstr(e, "gift.group_id"), "18446744073709551615");
    ASSERT_EQ_U64(tu_jnum(e, "gift.delta"), 66); /* non-combo preset: group_count */
    ASSERT_EQ_STR(tu_jstr(e, "to_user.id"), "777");
    ASSERT_EQ_STR(tu_jstr(e, "to_user.nickname"), "anchor");
    tu_dec_free(&t);
    m.to_user = NULL;
    CHECK(one("WebcastGiftMessage", &m.base, &t));
    ASSERT_FALSE(tu_jhas(t.ev[0], "to_user"));
    tu_dec_free(&t);
  }
  { /* like */
    Webcast__LikeMessage m = WEBCAST__LIKE_MESSAGE__INIT;
    m.common = &c;
    m.user = &u;
    m.has_count = 1;
    m.count = 5;
    m.has_total = 1;
    m.total = 9007199254740992ULL; /* 2^53: still exact as a double */
    CHECK(one("WebcastLikeMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "like");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "count"), 5);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "total"), 9007199254740992ULL);
    tu_dec_free(&t);
    m.total = 18446744073709551615ULL; /* exact in the JSON text even past 2^53 */
    CHECK(one("WebcastLikeMessage", &m.base, &t));
    ASSERT_TRUE(strstr(t.f.events[0].json, "\"total\":18446744073709551615}") != NULL);
    tu_dec_free(&t);
  }
  { /* member */
    Webcast__MemberMessage m = WEBCAST__MEMBER_MESSAGE__INIT;
    m.common = &c;
    m.user = &u;
    m.has_member_count = 1;
    m.member_count = 321;
    m.has_action = 1;
    m.action = 1;
    CHECK(one("WebcastMemberMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "member");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "member_count"), 321);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "action"), 1);
    tu_dec_free(&t);
  }
  { /* social: follow, share, other */
    static const struct { uint64_t action; const char *type; } v[] = {
        {1, "follow"}, {3, "share"}, {2, "social"}, {0, "social"}};
    for (size_t i = 0; i < 4; i++) {
      Webcast__SocialMessage m = WEBCAST__SOCIAL_MESSAGE__INIT;
      m.common = &c;
      m.user = &u;
      m.has_action = v[i].action != 0;
      m.action = v[i].action;
      m.has_follow_count = 1;
      m.follow_count = 12345;
      CHECK(one("WebcastSocialMessage", &m.base, &t));
      ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), v[i].type);
      ASSERT_EQ_STR(t.f.events[0].type, v[i].type);
      ASSERT_EQ_U64(tu_jnum(t.ev[0], "action"), v[i].action);
      ASSERT_EQ_U64(tu_jnum(t.ev[0], "follow_count"), 12345);
      ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.nickname"), "nick");
      tu_dec_free(&t);
    }
  }
  { /* viewers */
    Webcast__RoomUserSeqMessage m = WEBCAST__ROOM_USER_SEQ_MESSAGE__INIT;
    Webcast__Contributor c1 = WEBCAST__CONTRIBUTOR__INIT, c2 = WEBCAST__CONTRIBUTOR__INIT;
    Webcast__Contributor *cs[2] = {&c1, &c2};
    Webcast__User u2 = user_of(888, "second");
    c1.has_rank = 1;
    c1.rank = 1;
    c1.has_score = 1;
    c1.score = 500;
    c1.user = &u;
    c2.has_rank = 1;
    c2.rank = 2;
    c2.has_score = 1;
    c2.score = 300;
    c2.user = &u2;
    m.common = &c;
    m.n_ranks = 2;
    m.ranks = cs;
    m.has_total = 1;
    m.total = 91;
    m.has_total_user = 1;
    m.total_user = 1310;
    CHECK(one("WebcastRoomUserSeqMessage", &m.base, &t));
    const cJSON *e = t.ev[0];
    ASSERT_EQ_STR(tu_jstr(e, "type"), "viewers");
    ASSERT_EQ_U64(tu_jnum(e, "online"), 91);
    ASSERT_EQ_U64(tu_jnum(e, "total_viewers"), 1310);
    ASSERT_EQ_U64(cJSON_GetArraySize(cJSON_GetObjectItem(e, "top")), 2);
    ASSERT_EQ_U64(tu_jnum(e, "top.0.rank"), 1);
    ASSERT_EQ_U64(tu_jnum(e, "top.0.score"), 500);
    ASSERT_EQ_STR(tu_jstr(e, "top.0.user.id"), "555");
    ASSERT_EQ_STR(tu_jstr(e, "top.1.user.nickname"), "second");
    ASSERT_FALSE(tu_jhas(e, "user"));
    tu_dec_free(&t);
  }
  { /* room_stats */
    Webcast__RoomStatsMessage m = WEBCAST__ROOM_STATS_MESSAGE__INIT;
    m.common = &c;
    m.display_long = "91在线观众";
    m.has_display_value = 1;
    m.display_value = 91;
    CHECK(one("WebcastRoomStatsMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "room_stats");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "display"), "91在线观众");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "value"), 91);
    tu_dec_free(&t);
  }
  { /* rank */
    Webcast__RoomRankMessage m = WEBCAST__ROOM_RANK_MESSAGE__INIT;
    Webcast__RoomRankEntry r = WEBCAST__ROOM_RANK_ENTRY__INIT, *rs = &r;
    r.user = &u;
    r.score_str = "1.2万";
    m.common = &c;
    m.n_ranks = 1;
    m.ranks = &rs;
    CHECK(one("WebcastRoomRankMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "rank");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "ranks.0.score_str"), "1.2万");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "ranks.0.user.id"), "555");
    tu_dec_free(&t);
  }
  { /* fansclub */
    Webcast__FansclubMessage m = WEBCAST__FANSCLUB_MESSAGE__INIT;
    m.common = &c;
    m.user = &u;
    m.has_type = 1;
    m.type = 2;
    m.content = "恭喜 nick 成为粉丝团第289687名成员";
    CHECK(one("WebcastFansclubMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "fansclub");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "action"), 2);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "content"), "恭喜 nick 成为粉丝团第289687名成员");
    tu_dec_free(&t);
  }
  { /* control: 3 ends the live, 1 does not */
    Webcast__ControlMessage m = WEBCAST__CONTROL_MESSAGE__INIT;
    m.common = &c;
    m.has_status = 1;
    m.status = 3;
    CHECK(one("WebcastControlMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "control");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "status"), 3);
    ASSERT_TRUE(t.f.live_ended);
    tu_dec_free(&t);
    m.status = 1;
    CHECK(one("WebcastControlMessage", &m.base, &t));
    ASSERT_FALSE(t.f.live_ended);
    tu_dec_free(&t);
  }
  { /* raw: unknown method, Common still gives msg_id and ts */
    Webcast__ChatMessage m = WEBCAST__CHAT_MESSAGE__INIT;
    m.common = &c;
    m.content = "x";
    CHECK(one("WebcastSomethingNewMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "type"), "raw");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "msg_id"), "1001");
    ASSERT_EQ_I64(tu_jnum(t.ev[0], "ts_ms"), 1700000000500LL);
    ASSERT_TRUE(tu_jstr(t.ev[0], "payload_b64"));
    ASSERT_FALSE(tu_jhas(t.ev[0], "error"));
    tu_dec_free(&t);
  }
  return 0;
}

/* Hostile strings: quotes, backslashes, control characters, invalid UTF-8 → valid JSON/UTF-8
 * that round-trips (invalid bytes as U+FFFD). */
int test_normalize_strings(void) {
  static const struct { const char *in, *out; } v[] = {
      {"say \"hi\"", "say \"hi\""},
      {"back\\slash", "back\\slash"},
      {"ctl\x01\x02\x1f\n\r\t\b\f", "ctl\x01\x02\x1f\n\r\t\b\f"},
      {"bad\xff\xfe utf8 \xc3", "bad\xEF\xBF\xBD\xEF\xBF\xBD utf8 \xEF\xBF\xBD"},
      {"</script>\u2028", "</script>\u2028"},
      {"😀 emoji", "😀 emoji"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    tu_dec t;
    Webcast__Common c = common_of(1, 0);
    Webcast__User u = user_of(1, v[i].in);
    u.sec_uid = (char *)(uintptr_t)v[i].in;
    Webcast__ChatMessage m = WEBCAST__CHAT_MESSAGE__INIT;
    m.common = &c;
    m.user = &u;
    m.content = (char *)(uintptr_t)v[i].in;
    CHECK(one("WebcastChatMessage", &m.base, &t));
    ASSERT_TRUE(dl_utf8_valid(t.f.events[0].json, t.f.events[0].json_len));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "content"), v[i].out);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.nickname"), v[i].out);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.sec_uid"), v[i].out);
    /* no raw control byte in the JSON text */
    for (size_t k = 0; k < t.f.events[0].json_len; k++)
      ASSERT_TRUE((unsigned char)t.f.events[0].json[k] >= 0x20);
    tu_dec_free(&t);
  }
  /* a live_id with junk in it, too */
  dl_decoder *d = dl_decoder_new("l\"\xff", NULL, NULL);
  Webcast__LikeMessage lm = WEBCAST__LIKE_MESSAGE__INIT;
  Webcast__Message *msg = tu_msg("WebcastLikeMessage", &lm.base, 3);
  size_t fl;
  uint8_t *f = tu_frame(&msg, 1, 0, &fl);
  dl_frame fr;
  ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 5, &fr), DL_EOK);
  cJSON *e = tu_parse_event(&fr.events[0]);
  ASSERT_TRUE(e);
  ASSERT_EQ_STR(tu_jstr(e, "live_id"), "l\"\xEF\xBF\xBD");
  cJSON_Delete(e);
  dl_frame_clear(&fr);
  dl_decoder_free(d);
  free(f);
  tu_msg_free(msg);
  return 0;
}

int test_normalize_fallbacks(void) {
  tu_dec t;
  { /* user id_str when id is 0; absent strings are "" and absent numbers 0 (stable shape) */
    Webcast__User u = WEBCAST__USER__INIT;
    u.id_str = "3789344204128560";
    Webcast__ChatMessage m = WEBCAST__CHAT_MESSAGE__INIT;
    Webcast__Common c = common_of(5, 0);
    m.common = &c;
    m.user = &u;
    m.has_event_time = 1;
    m.event_time = 1672156481; /* seconds */
    CHECK(one("WebcastChatMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "3789344204128560");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.nickname"), "");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.sec_uid"), "");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.display_id"), "");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "user.gender"), 0);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "user.pay_level"), 0);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "user.fans_club_level"), 0);
    ASSERT_EQ_I64(t.f.events[0].ts_ms, 1672156481000LL); /* event_time × 1000 */
    tu_dec_free(&t);
    u.has_id = 1;
    u.id = 0; /* explicit 0 also falls back */
    CHECK(one("WebcastChatMessage", &m.base, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "3789344204128560");
    tu_dec_free(&t);
  }
  { /* no Common: msg_id from the Message wrapper, ts from Response.now, room unknown → "0" */
    Webcast__LikeMessage m = WEBCAST__LIKE_MESSAGE__INIT;
    Webcast__Message *msg = tu_msg("WebcastLikeMessage", &m.base, 99);
    size_t fl;
    uint8_t *f = tu_frame(&msg, 1, 1700000000999ULL, &fl);
    tu_decode(&t, NULL, f, fl);
    ASSERT_EQ_ERR(t.rc, DL_EOK);
    ASSERT_EQ_STR(t.f.events[0].msg_id, "99");
    ASSERT_EQ_I64(t.f.events[0].ts_ms, 1700000000999LL);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "room_id"), "0");
    ASSERT_EQ_STR(t.f.cursor, "cursor-from-response");
    ASSERT_EQ_STR(t.f.ack_ext, "ext-from-response");
    tu_dec_free(&t);
    free(f);
    tu_msg_free(msg);
  }
  { /* cursor / internal_ext from the frame headers when the Response has none */
    Webcast__Response r = WEBCAST__RESPONSE__INIT;
    Webcast__PushFrame pf = WEBCAST__PUSH_FRAME__INIT;
    Webcast__HeaderEntry h1 = WEBCAST__HEADER_ENTRY__INIT, h2 = WEBCAST__HEADER_ENTRY__INIT;
    Webcast__HeaderEntry *hs[2] = {&h1, &h2};
    h1.key = "im-cursor";
    h1.value = "hdr-cursor";
    h2.key = "im-internal_ext";
    h2.value = "hdr-ext";
    size_t rl, fl;
    uint8_t *rb = tu_pack(&r.base, &rl);
    pf.n_headers = 2;
    pf.headers = hs;
    pf.payload_type = "msg";
    pf.has_payload = 1;
    pf.payload.data = rb;
    pf.payload.len = rl;
    uint8_t *f = tu_pack(&pf.base, &fl);
    tu_decode(&t, NULL, f, fl);
    ASSERT_EQ_ERR(t.rc, DL_EOK);
    ASSERT_EQ_STR(t.f.cursor, "hdr-cursor");
    ASSERT_EQ_STR(t.f.internal_ext, "hdr-ext");
    ASSERT_EQ_STR(t.f.ack_ext, "hdr-ext");
    ASSERT_FALSE(t.f.need_ack);
    tu_dec_free(&t);
    free(f);
    free(rb);
  }
  return 0;
}
