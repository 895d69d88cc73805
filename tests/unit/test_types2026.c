/* The v1.1 event types (CONTRACT §4, PROTOCOL §9.8), anonymous users and the gzip sniff, from
 * protobuf written by hand (pbw) so that mistyped fields and the LiveShopping field 3/4 shapes
 * can be built. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dl_gift.h"
#include "dl_pbscrub.h"
#include "dl_test.h"
#include "tu.h"

#define ROOM 7000000000000000001ULL
#define NOW 1776600009999ULL /* Response.now of every frame here */

static void w_common(pbw *w, uint64_t msg_id, uint64_t create_time) {
  pbw c = {0};
  pbw_varint(&c, 2, msg_id);
  pbw_varint(&c, 3, ROOM);
  if (create_time) pbw_varint(&c, 4, create_time);
  pbw_bytes(w, 1, c.buf, c.n);
  pbw_free(&c);
}

/* A User at `field`: id (1) when not 0, id_str (1028) and nickname (3) when not NULL. */
static void w_user(pbw *w, uint32_t field, uint64_t id, const char *id_str, const char *nick) {
  pbw u = {0};
  if (id) pbw_varint(&u, 1, id);
  if (nick) pbw_str(&u, 3, nick);
  if (id_str) pbw_str(&u, 1028, id_str);
  pbw_bytes(w, field, u.buf, u.n);
  pbw_free(&u);
}

/* Decodes w as the payload of one `method` Message (and frees w); the event is t->ev[0]. */
static int dec(const char *method, pbw *w, tu_dec *t) {
  dl_err rc = tu_decode_msg(t, method, w->buf, w->n, NOW);
  pbw_free(w);
  ASSERT_EQ_ERR(rc, DL_EOK);
  ASSERT_EQ_U64(t->f.n_events, 1);
  ASSERT_TRUE(t->ev[0]);
  ASSERT_EQ_U64(t->f.bad_messages, 0);
  ASSERT_EQ_STR(tu_jstr(t->ev[0], "method"), method);
  ASSERT_EQ_STR(tu_jstr(t->ev[0], "type"), t->f.events[0].type);
  return 0;
}

/* A JSON boolean (not a number, not absent) with the given value. */
static int is_bool(const cJSON *o, const char *key, int want) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  ASSERT_TRUE(cJSON_IsBool(x));
  ASSERT_EQ_I64(cJSON_IsTrue(x), want);
  return 0;
}

int test_types2026_screen_chat(void) {
  tu_dec t;
  pbw w = {0};
  w_common(&w, 501, 0);
  w_user(&w, 2, 555, NULL, "nick");
  pbw_varint(&w, 3, 1);
  pbw_str(&w, 4, "飘屏 \"hi\"\n");
  pbw_varint(&w, 12, 1776600000); /* event_time, seconds */
  CHECK(dec("WebcastScreenChatMessage", &w, &t));
  const cJSON *e = t.ev[0];
  ASSERT_EQ_STR(t.f.events[0].type, "screen_chat");
  ASSERT_EQ_STR(tu_jstr(e, "msg_id"), "501");
  ASSERT_EQ_STR(tu_jstr(e, "room_id"), "7000000000000000001");
  ASSERT_EQ_STR(tu_jstr(e, "content"), "飘屏 \"hi\"\n");
  CHECK(is_bool(e, "privilege", 0));
  ASSERT_EQ_STR(tu_jstr(e, "user.id"), "555");
  ASSERT_EQ_STR(tu_jstr(e, "user.nickname"), "nick");
  ASSERT_EQ_I64(t.f.events[0].ts_ms, 1776600000000LL); /* event_time × 1000, as for chat */
  ASSERT_EQ_I64(tu_jnum(e, "ts_ms"), 1776600000000LL);
  tu_dec_free(&t);

  /* Common.create_time wins over event_time */
  w_common(&w, 502, 1776600000123ULL);
  pbw_str(&w, 4, "x");
  pbw_varint(&w, 12, 1776600000);
  CHECK(dec("WebcastScreenChatMessage", &w, &t));
  ASSERT_EQ_I64(t.f.events[0].ts_ms, 1776600000123LL);
  ASSERT_FALSE(tu_jhas(t.ev[0], "user"));
  tu_dec_free(&t);

  /* mistyped: content as a varint, event_time as a string; both skipped, the message kept */
  w_common(&w, 503, 0);
  w_user(&w, 2, 555, NULL, "nick");
  pbw_varint(&w, 4, 7);
  pbw_str(&w, 12, "1776600000");
  CHECK(dec("WebcastScreenChatMessage", &w, &t));
  ASSERT_EQ_STR(t.f.events[0].type, "screen_chat");
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "content"), "");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.nickname"), "nick");
  ASSERT_EQ_I64(t.f.events[0].ts_ms, (int64_t)NOW);
  tu_dec_free(&t);

  /* an event_time whose milliseconds overflow is ignored, not wrapped */
  w_common(&w, 504, 0);
  pbw_varint(&w, 12, UINT64_MAX / 1000 + 1);
  CHECK(dec("WebcastScreenChatMessage", &w, &t));
  ASSERT_EQ_I64(t.f.events[0].ts_ms, (int64_t)NOW);
  tu_dec_free(&t);

  /* the privilege variant: content at 3, "privilege": true, no event_time (12 is unknown) */
  w_common(&w, 505, 0);
  w_user(&w, 2, 556, NULL, "vip");
  pbw_str(&w, 3, "特权弹幕");
  pbw_varint(&w, 5, 2);
  pbw_varint(&w, 12, 1776600000);
  CHECK(dec("WebcastPrivilegeScreenChatMessage", &w, &t));
  e = t.ev[0];
  ASSERT_EQ_STR(t.f.events[0].type, "screen_chat");
  ASSERT_EQ_STR(tu_jstr(e, "content"), "特权弹幕");
  CHECK(is_bool(e, "privilege", 1));
  ASSERT_EQ_STR(tu_jstr(e, "user.id"), "556");
  ASSERT_EQ_I64(t.f.events[0].ts_ms, (int64_t)NOW);
  tu_dec_free(&t);

  /* privilege, mistyped: user as a varint and content as a varint are dropped */
  w_common(&w, 506, 0);
  pbw_varint(&w, 2, 1);
  pbw_varint(&w, 3, 9);
  CHECK(dec("WebcastPrivilegeScreenChatMessage", &w, &t));
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  ASSERT_FALSE(tu_jhas(t.ev[0], "user"));
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "content"), "");
  CHECK(is_bool(t.ev[0], "privilege", 1));
  tu_dec_free(&t);
  return 0;
}

/* ProductInfo{1 promotion_id, 2 index, 3 target_flash_uids (packed, undeclared), 4 explain}. */
static void w_product(pbw *w, uint64_t promotion_id, uint64_t index, uint64_t explain_type) {
  pbw p = {0};
  pbw_varint(&p, 1, promotion_id);
  pbw_varint(&p, 2, index);
  pbw_bytes(&p, 3, "\x01\x02", 2);
  pbw_varint(&p, 4, explain_type);
  pbw_bytes(w, 4, p.buf, p.n);
  pbw_free(&p);
}

int test_types2026_product(void) {
  tu_dec t;
  pbw w = {0};
  w_common(&w, 601, 1776600000001ULL);
  pbw_varint(&w, 2, 1776600000);
  pbw_str(&w, 3, "商品已更新");
  w_product(&w, 18446744073709551615ULL, 0, 1);
  w_product(&w, 3680000000000000001ULL, (uint64_t)-3, 0); /* int32 -3: a 10-byte varint */
  pbw_varint(&w, 5, 42);
  pbw_varint(&w, 6, 12345); /* target_uid: not read */
  CHECK(dec("WebcastProductChangeMessage", &w, &t));
  const cJSON *e = t.ev[0];
  ASSERT_EQ_STR(t.f.events[0].type, "product");
  ASSERT_EQ_I64(t.f.events[0].ts_ms, 1776600000001LL);
  ASSERT_EQ_U64(cJSON_GetArraySize(cJSON_GetObjectItem(e, "products")), 2);
  ASSERT_EQ_STR(tu_jstr(e, "products.0.promotion_id"), "18446744073709551615");
  ASSERT_EQ_I64(tu_jnum(e, "products.0.index"), 0);
  ASSERT_EQ_U64(tu_jnum(e, "products.0.explain_type"), 1);
  ASSERT_EQ_STR(tu_jstr(e, "products.1.promotion_id"), "3680000000000000001");
  ASSERT_EQ_I64(tu_jnum(e, "products.1.index"), -3);
  ASSERT_EQ_U64(tu_jnum(e, "total"), 42);
  ASSERT_EQ_STR(tu_jstr(e, "toast"), "商品已更新");
  ASSERT_FALSE(tu_jhas(e, "products_omitted"));
  ASSERT_FALSE(tu_jhas(e, "user"));
  tu_dec_free(&t);

  /* mistyped: toast as a varint, total as a string, a promotion_id as a string, a product that
   * is not protobuf at all: those are skipped, the rest kept */
  w_common(&w, 602, 0);
  pbw_varint(&w, 3, 5);
  pbw_str(&w, 5, "42");
  {
    pbw p = {0};
    pbw_str(&p, 1, "3680000000000000002");
    pbw_varint(&p, 2, 2);
    pbw_varint(&p, 4, 3);
    pbw_bytes(&w, 4, p.buf, p.n);
    pbw_free(&p);
  }
  pbw_bytes(&w, 4, "\xff\xff\xff", 3);
  w_product(&w, 77, 1, 0);
  CHECK(dec("WebcastProductChangeMessage", &w, &t));
  e = t.ev[0];
  ASSERT_EQ_STR(t.f.events[0].type, "product");
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  ASSERT_EQ_U64(cJSON_GetArraySize(cJSON_GetObjectItem(e, "products")), 2);
  ASSERT_EQ_STR(tu_jstr(e, "products.0.promotion_id"), "0");
  ASSERT_EQ_I64(tu_jnum(e, "products.0.index"), 2);
  ASSERT_EQ_U64(tu_jnum(e, "products.0.explain_type"), 3);
  ASSERT_EQ_STR(tu_jstr(e, "products.1.promotion_id"), "77");
  ASSERT_EQ_U64(tu_jnum(e, "total"), 0);
  ASSERT_EQ_STR(tu_jstr(e, "toast"), "");
  tu_dec_free(&t);

  /* the list is capped at 1000 entries; the rest are counted */
  w_common(&w, 603, 0);
  for (uint64_t i = 1; i <= 1003; i++) w_product(&w, i, i, 0);
  pbw_varint(&w, 5, 1003);
  CHECK(dec("WebcastProductChangeMessage", &w, &t));
  e = t.ev[0];
  ASSERT_EQ_U64(cJSON_GetArraySize(cJSON_GetObjectItem(e, "products")), 1000);
  ASSERT_EQ_STR(tu_jstr(e, "products.999.promotion_id"), "1000");
  ASSERT_EQ_U64(tu_jnum(e, "products_omitted"), 3);
  ASSERT_EQ_U64(tu_jnum(e, "total"), 1003);
  tu_dec_free(&t);

  /* an empty change: an empty list, never a missing key */
  w_common(&w, 604, 0);
  CHECK(dec("WebcastProductChangeMessage", &w, &t));
  ASSERT_TRUE(cJSON_IsArray(cJSON_GetObjectItem(t.ev[0], "products")));
  ASSERT_EQ_U64(cJSON_GetArraySize(cJSON_GetObjectItem(t.ev[0], "products")), 0);
  tu_dec_free(&t);
  return 0;
}

/* LiveShoppingMessage promotion_id: JP field 3 (uint64) vs S/B field 4 (int64), PROTOCOL §9.8. */
enum { F_ABSENT, F_VARINT, F_STRING, F_PACKED, F_PACKED_ONE, F_TWO_VARINTS };

int test_types2026_shopping_promotion_id(void) {
  static const struct {
    int f3, f4;
    const char *want;
  } v[] = {
      {F_VARINT, F_ABSENT, "3600000000000000003"},
      {F_VARINT, F_VARINT, "3600000000000000003"},     /* 3 wins */
      {F_VARINT, F_PACKED, "3600000000000000003"},     /* JP: 3 + target_uid list */
      {F_ABSENT, F_VARINT, "3600000000000000004"},     /* S/B */
      {F_ABSENT, F_PACKED, "0"},                       /* JP target_uid list, no id */
      {F_ABSENT, F_PACKED_ONE, "0"},                   /* a packed list of one uid */
      {F_ABSENT, F_TWO_VARINTS, "0"},                  /* an unpacked list: not an id */
      {F_STRING, F_VARINT, "3600000000000000004"},     /* mistyped 3 is skipped */
      {F_STRING, F_ABSENT, "0"},
      {F_ABSENT, F_STRING, "0"},
      {F_ABSENT, F_ABSENT, "0"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    tu_dec t;
    pbw w = {0};
    w_common(&w, 700 + i, 0);
    pbw_varint(&w, 2, 1);
    if (v[i].f3 == F_VARINT) pbw_varint(&w, 3, 3600000000000000003ULL);
    if (v[i].f3 == F_STRING) pbw_str(&w, 3, "3600000000000000003");
    if (v[i].f4 == F_VARINT) pbw_varint(&w, 4, 3600000000000000004ULL);
    if (v[i].f4 == F_STRING) pbw_str(&w, 4, "3600000000000000004");
    if (v[i].f4 == F_PACKED) pbw_bytes(&w, 4, "\x0b\x0c", 2);
    if (v[i].f4 == F_PACKED_ONE) pbw_bytes(&w, 4, "\x0b", 1);
    if (v[i].f4 == F_TWO_VARINTS) {
      pbw_varint(&w, 4, 11);
      pbw_varint(&w, 4, 12);
    }
    pbw_varint(&w, 5, 1);
    CHECK(dec("WebcastLiveShoppingMessage", &w, &t));
    if (strcmp(tu_jstr(t.ev[0], "promotion_id"), v[i].want) != 0)
      fprintf(stderr, "case %zu (field 3 shape %d, field 4 shape %d)\n", i, v[i].f3, v[i].f4);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "promotion_id"), v[i].want);
    ASSERT_EQ_STR(t.f.events[0].type, "shopping");
    ASSERT_EQ_I64(tu_jnum(t.ev[0], "msg_type"), 1);
    ASSERT_FALSE(tu_jhas(t.ev[0], "product"));
    ASSERT_EQ_U64(t.f.scrubbed, v[i].f3 == F_STRING);
    tu_dec_free(&t);
  }
  /* the helper underneath: a lone varint only; a packed list, an empty one or two varints are
   * not one value (not malformed either) */
  static const struct {
    const char *bytes;
    size_t n;
    dl_err want;
    uint64_t v;
  } u[] = {
      {"\x20\x96\x01", 3, DL_EOK, 150},
      {"\x22\x01\x0b", 3, DL_ENOTFOUND, 0},
      {"\x22\x00", 2, DL_ENOTFOUND, 0},
      {"\x20\x0b\x20\x0c", 4, DL_ENOTFOUND, 0},
      {"\x10\x01", 2, DL_ENOTFOUND, 0},
  };
  for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
    Webcast__LiveShoppingMessage *m =
        webcast__live_shopping_message__unpack(NULL, u[i].n, (const uint8_t *)u[i].bytes);
    ASSERT_TRUE(m);
    uint64_t val = 0;
    ASSERT_EQ_ERR(dl_pb_unknown_varint(&m->base, 4, &val), u[i].want);
    ASSERT_EQ_U64(val, u[i].v);
    webcast__live_shopping_message__free_unpacked(m, NULL);
  }
  /* uint64 max stays exact */
  {
    tu_dec t;
    pbw w = {0};
    pbw_varint(&w, 3, 18446744073709551615ULL);
    CHECK(dec("WebcastLiveShoppingMessage", &w, &t));
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "promotion_id"), "18446744073709551615");
    tu_dec_free(&t);
  }
  return 0;
}

int test_types2026_shopping_product(void) {
  tu_dec t;
  pbw w = {0}, p = {0};
  w_common(&w, 710, 1776600000002ULL);
  pbw_varint(&w, 2, 3);
  pbw_varint(&w, 3, 3600000000000000003ULL);
  pbw_varint(&p, 1, 9900);
  pbw_str(&p, 2, "新品 \"A\" \\ 😀");
  pbw_str(&p, 3, "https://p3.example.invalid/cover.jpg?a=1&b=2");
  pbw_varint(&p, 4, 2);
  pbw_str(&p, 5, "https://p3.example.invalid/pop.png");
  pbw_bytes(&w, 11, p.buf, p.n);
  pbw_free(&p);
  pbw_varint(&w, 12, 1);
  CHECK(dec("WebcastLiveShoppingMessage", &w, &t));
  const cJSON *e = t.ev[0];
  ASSERT_EQ_I64(tu_jnum(e, "msg_type"), 3);
  ASSERT_EQ_STR(tu_jstr(e, "promotion_id"), "3600000000000000003");
  ASSERT_EQ_U64(tu_jnum(e, "product.price"), 9900);
  ASSERT_EQ_STR(tu_jstr(e, "product.title"), "新品 \"A\" \\ 😀");
  ASSERT_EQ_STR(tu_jstr(e, "product.cover"), "https://p3.example.invalid/cover.jpg?a=1&b=2");
  ASSERT_EQ_U64(tu_jnum(e, "product.status"), 2);
  ASSERT_EQ_I64(t.f.events[0].ts_ms, 1776600000002LL);
  tu_dec_free(&t);

  /* mistyped inside field 11 (title as a varint, price as a string): the product stays */
  w_common(&w, 711, 0);
  pbw_str(&p, 1, "9900");
  pbw_varint(&p, 2, 1);
  pbw_str(&p, 3, "c");
  pbw_bytes(&w, 11, p.buf, p.n);
  pbw_free(&p);
  pbw_str(&w, 2, "msg_type as a string");
  CHECK(dec("WebcastLiveShoppingMessage", &w, &t));
  e = t.ev[0];
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  ASSERT_EQ_I64(tu_jnum(e, "msg_type"), 0);
  ASSERT_TRUE(tu_jhas(e, "product"));
  ASSERT_EQ_U64(tu_jnum(e, "product.price"), 0);
  ASSERT_EQ_STR(tu_jstr(e, "product.title"), "");
  ASSERT_EQ_STR(tu_jstr(e, "product.cover"), "c");
  tu_dec_free(&t);
  return 0;
}

int test_types2026_purchase(void) {
  tu_dec t;
  pbw w = {0};
  w_common(&w, 801, 0);
  pbw_varint(&w, 2, 1);
  pbw_str(&w, 3, "紫***");
  pbw_varint(&w, 4, 18446744073709551615ULL);
  pbw_str(&w, 5, "紫*** 等3人正在购买");
  pbw_str(&w, 6, "https://icon.example.invalid/x.png");
  CHECK(dec("WebcastLiveEcomMessage", &w, &t));
  const cJSON *e = t.ev[0];
  ASSERT_EQ_STR(t.f.events[0].type, "purchase");
  ASSERT_EQ_STR(tu_jstr(e, "nickname"), "紫***");
  ASSERT_EQ_STR(tu_jstr(e, "text"), "紫*** 等3人正在购买");
  ASSERT_TRUE(strstr(t.f.events[0].json, "\"purchase_count\":18446744073709551615,") != NULL);
  ASSERT_FALSE(tu_jhas(e, "user"));
  ASSERT_EQ_I64(t.f.events[0].ts_ms, (int64_t)NOW);
  tu_dec_free(&t);

  /* mistyped: purchase_cnt as a string, text as a varint */
  w_common(&w, 802, 0);
  pbw_str(&w, 3, "小明");
  pbw_str(&w, 4, "3");
  pbw_varint(&w, 5, 1);
  CHECK(dec("WebcastLiveEcomMessage", &w, &t));
  e = t.ev[0];
  ASSERT_EQ_STR(t.f.events[0].type, "purchase");
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  ASSERT_EQ_STR(tu_jstr(e, "nickname"), "小明");
  ASSERT_EQ_U64(tu_jnum(e, "purchase_count"), 0);
  ASSERT_EQ_STR(tu_jstr(e, "text"), "");
  tu_dec_free(&t);
  return 0;
}

/* user.anonymous (PROTOCOL §9.8): id 111111 (or no id) and "<one character>***". */
int test_types2026_anonymous_users(void) {
  static const struct {
    uint64_t id;
    const char *id_str, *nick, *want_id;
    int anonymous;
  } v[] = {
      {111111, NULL, "紫***", "111111", 1},
      {111111, NULL, "A***", "111111", 1},
      {111111, NULL, "😀***", "111111", 1},           /* a 4-byte character */
      {0, NULL, "紫***", "0", 1},                      /* no id at all */
      {0, "111111", "紫***", "111111", 1},             /* the id in id_str */
      {111111, NULL, "紫罗兰", "111111", 0},           /* a real user whose id is 111111 */
      {111111, NULL, "紫**", "111111", 0},
      {111111, NULL, "紫****", "111111", 0},
      {111111, NULL, "紫色***", "111111", 0},
      {111111, NULL, "***", "111111", 0},
      {111111, NULL, "\xff***", "111111", 0},          /* not a character */
      {111111, NULL, "\xe7\xb4***", "111111", 0},      /* a truncated character */
      {111111, NULL, "", "111111", 0},
      {111111, NULL, NULL, "111111", 0},
      {0, NULL, NULL, "0", 0},
      {726106111214807, NULL, "紫***", "726106111214807", 0}, /* a real id */
      {0, "726106111214807", "紫***", "726106111214807", 0},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    tu_dec t;
    pbw w = {0};
    w_common(&w, 900 + i, 0);
    w_user(&w, 2, v[i].id, v[i].id_str, v[i].nick);
    pbw_str(&w, 3, "hi");
    CHECK(dec("WebcastChatMessage", &w, &t));
    const cJSON *u = cJSON_GetObjectItem(t.ev[0], "user");
    if (!cJSON_IsTrue(cJSON_GetObjectItem(u, "anonymous")) != !v[i].anonymous)
      fprintf(stderr, "case %zu: nickname \"%s\"\n", i, v[i].nick ? v[i].nick : "(absent)");
    CHECK(is_bool(u, "anonymous", v[i].anonymous));
    ASSERT_EQ_STR(tu_jstr(u, "id"), v[i].want_id);
    tu_dec_free(&t);
  }

  /* member and gift (sender masked, receiver not) */
  tu_dec t;
  pbw w = {0};
  w_common(&w, 950, 0);
  w_user(&w, 2, 111111, NULL, "紫***");
  pbw_varint(&w, 3, 48);
  pbw_varint(&w, 10, 1);
  CHECK(dec("WebcastMemberMessage", &w, &t));
  ASSERT_EQ_STR(t.f.events[0].type, "member");
  ASSERT_TRUE(strstr(t.f.events[0].json, "\"nickname\":\"紫***\"") != NULL);
  CHECK(is_bool(cJSON_GetObjectItem(t.ev[0], "user"), "anonymous", 1));
  tu_dec_free(&t);

  w_common(&w, 951, 0);
  pbw_varint(&w, 2, 463);
  w_user(&w, 7, 111111, NULL, "紫***");
  w_user(&w, 8, 7616955499716920369ULL, NULL, "主播");
  CHECK(dec("WebcastGiftMessage", &w, &t));
  ASSERT_EQ_STR(t.f.events[0].type, "gift");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "111111");
  CHECK(is_bool(cJSON_GetObjectItem(t.ev[0], "user"), "anonymous", 1));
  CHECK(is_bool(cJSON_GetObjectItem(t.ev[0], "to_user"), "anonymous", 0));
  tu_dec_free(&t);

  /* follow (SocialMessage action 1) */
  w_common(&w, 952, 0);
  w_user(&w, 2, 111111, NULL, "A***");
  pbw_varint(&w, 4, 1);
  CHECK(dec("WebcastSocialMessage", &w, &t));
  ASSERT_EQ_STR(t.f.events[0].type, "follow");
  CHECK(is_bool(cJSON_GetObjectItem(t.ev[0], "user"), "anonymous", 1));
  tu_dec_free(&t);
  return 0;
}

/* Gift streaks of anonymous users: every one has id 111111, so the streak key must not be the id
 * alone (PROTOCOL §9.8). Two masked users sending the same combo gift in the same second
 * (same group_id) are two streaks. */
int test_types2026_anonymous_gift_streaks(void) {
  static const struct {
    uint64_t id;
    const char *nick;
    uint64_t count;
    uint64_t want;
  } seq[] = {
      {111111, "紫***", 1, 1}, {111111, "小***", 1, 1}, {111111, "紫***", 2, 1},
      {111111, "小***", 2, 1}, {111111, "紫***", 2, 0}, /* a re-sent update adds nothing */
      {111111, "紫罗兰", 1, 1},                          /* a real user with id 111111 */
      {111111, "紫罗兰", 3, 2},
  };
  tu_dec t;
  memset(&t, 0, sizeof t);
  t.d = dl_decoder_new("L", "R", NULL);
  uint64_t sum = 0;
  for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
    pbw w = {0}, g = {0};
    w_common(&w, 960 + i, 0);
    pbw_varint(&w, 2, 463);
    pbw_varint(&w, 5, seq[i].count);
    pbw_varint(&w, 6, seq[i].count);
    w_user(&w, 7, seq[i].id, NULL, seq[i].nick);
    pbw_varint(&w, 11, 1776121373);
    pbw_varint(&g, 10, 1); /* GiftStruct.combo */
    pbw_bytes(&w, 15, g.buf, g.n);
    pbw_free(&g);
    Webcast__Message *msg = tu_msg_raw("WebcastGiftMessage", w.buf, w.n, 0);
    size_t fl;
    uint8_t *f = tu_frame(&msg, 1, NOW, &fl);
    pbw_free(&w);
    tu_msg_free(msg);
    dl_err rc = tu_decode_more(&t, f, fl, 1000 + (int64_t)i);
    free(f);
    ASSERT_EQ_ERR(rc, DL_EOK);
    if ((uint64_t)tu_jnum(t.ev[0], "gift.delta") != seq[i].want) fprintf(stderr, "step %zu\n", i);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "gift.delta"), seq[i].want);
    sum += (uint64_t)tu_jnum(t.ev[0], "gift.delta");
  }
  ASSERT_EQ_U64(sum, 7);
  ASSERT_EQ_U64(dl_gift_count(dl_decoder_gifts(t.d)), 3);
  tu_dec_free(&t);
  return 0;
}

/* Decodes one frame with a fresh decoder of these limits; only the result is kept. */
static dl_err decode_with(const dl_decode_limits *lim, const uint8_t *f, size_t fl) {
  dl_decoder *d = dl_decoder_new("L", NULL, lim);
  dl_frame fr;
  dl_err rc = dl_decode_frame(d, f, fl, 1, &fr);
  dl_frame_clear(&fr);
  dl_decoder_free(d);
  return rc;
}

/* A PushFrame payload that is gzip is inflated even without the compress_type header; a plain
 * Response without the header is read as it is; the inflate caps hold on both paths. */
int test_types2026_gzip_sniff(void) {
  Webcast__LikeMessage lm = WEBCAST__LIKE_MESSAGE__INIT;
  lm.has_count = 1;
  lm.count = 13;
  Webcast__Message *m = tu_msg("WebcastLikeMessage", &lm.base, 5);
  size_t rl, gl, fl;
  uint8_t *rb = tu_response(&m, 1, NOW, &rl);
  uint8_t *gz = tu_gzip(rb, rl, &gl);
  static const char *const headers[] = {NULL, "none", "gzip"};
  tu_dec t;

  for (size_t i = 0; i < 3; i++) { /* gzip: no header, another header, the gzip header */
    uint8_t *f = tu_frame_payload(gz, gl, headers[i], &fl);
    tu_decode(&t, NULL, f, fl);
    free(f);
    ASSERT_EQ_ERR(t.rc, DL_EOK);
    ASSERT_EQ_U64(t.f.n_events, 1);
    ASSERT_EQ_STR(t.f.events[0].type, "like");
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "count"), 13);
    ASSERT_EQ_I64(t.f.events[0].ts_ms, (int64_t)NOW);
    tu_dec_free(&t);
  }
  for (size_t i = 0; i < 2; i++) { /* plain protobuf without the gzip header */
    uint8_t *f = tu_frame_payload(rb, rl, headers[i], &fl);
    tu_decode(&t, NULL, f, fl);
    free(f);
    ASSERT_EQ_ERR(t.rc, DL_EOK);
    ASSERT_EQ_U64(t.f.n_events, 1);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "count"), 13);
    tu_dec_free(&t);
  }
  /* why the sniff is safe: no protobuf message starts with 0x1f (field 3, wire type 7) */
  size_t cnt;
  ASSERT_EQ_ERR(dl_pb_count_field(gz, gl, 1, &cnt), DL_EPROTO);
  ASSERT_TRUE(rb[0] != 0x1f);

  /* the magic without a valid gzip member behind it: a gzip error, not a protobuf guess */
  {
    uint8_t *f = tu_frame_payload((const uint8_t *)"\x1f\x8bnot really gzip", 17, NULL, &fl);
    tu_decode(&t, NULL, f, fl);
    free(f);
    ASSERT_EQ_ERR(t.rc, DL_EGZIP);
    ASSERT_EQ_U64(t.f.n_events, 0);
    tu_dec_free(&t);
    f = tu_frame_payload((const uint8_t *)"\x1f", 1, NULL, &fl); /* one byte: not sniffed */
    tu_decode(&t, NULL, f, fl);
    free(f);
    ASSERT_EQ_ERR(t.rc, DL_EPROTO);
    tu_dec_free(&t);
  }
  /* the caps hold on the sniffed path: 1 MiB of zeros against a ratio cap of 10, then against a
   * size cap of 1000 bytes */
  {
    uint8_t *zeros = calloc(1, 1u << 20), *bomb;
    size_t bl;
    bomb = tu_gzip(zeros, 1u << 20, &bl);
    uint8_t *f = tu_frame_payload(bomb, bl, NULL, &fl);
    dl_decode_limits lim;
    dl_decode_limits_default(&lim);
    lim.max_inflate_ratio = 10;
    ASSERT_EQ_ERR(decode_with(&lim, f, fl), DL_EBOMB);
    lim.max_inflate_ratio = 0;
    lim.max_inflated_bytes = 1000;
    ASSERT_EQ_ERR(decode_with(&lim, f, fl), DL_EBOMB);
    free(f);
    free(bomb);
    free(zeros);
  }
  free(gz);
  free(rb);
  tu_msg_free(m);
  return 0;
}

/* Methods of §9.8 that have no event type stay raw; a v1.1 type that does not parse at all is a
 * raw event with the error, like every known type. */
int test_types2026_unknown_stay_raw(void) {
  static const char *const raw_methods[] = {"WebcastLiveEcomGeneralMessage",
                                            "WebcastLinkMicMethod", "WebcastLinkMessage"};
  for (size_t i = 0; i < sizeof raw_methods / sizeof raw_methods[0]; i++) {
    tu_dec t;
    pbw w = {0};
    w_common(&w, 990 + i, 1776600000003ULL);
    pbw_str(&w, 2, "content_type");
    CHECK(dec(raw_methods[i], &w, &t));
    ASSERT_EQ_STR(t.f.events[0].type, "raw");
    ASSERT_EQ_STR(t.f.events[0].msg_id, i == 0 ? "990" : i == 1 ? "991" : "992");
    ASSERT_TRUE(tu_jstr(t.ev[0], "payload_b64") != NULL);
    ASSERT_FALSE(tu_jhas(t.ev[0], "error"));
    tu_dec_free(&t);
  }
  static const char *const v11[] = {"WebcastScreenChatMessage", "WebcastPrivilegeScreenChatMessage",
                                    "WebcastProductChangeMessage", "WebcastLiveShoppingMessage",
                                    "WebcastLiveEcomMessage"};
  for (size_t i = 0; i < sizeof v11 / sizeof v11[0]; i++) {
    tu_dec t;
    ASSERT_EQ_ERR(tu_decode_msg(&t, v11[i], (const uint8_t *)"\x0a\xff", 2, NOW), DL_EOK);
    ASSERT_EQ_U64(t.f.n_events, 1);
    ASSERT_EQ_U64(t.f.bad_messages, 1);
    ASSERT_EQ_STR(t.f.events[0].type, "raw");
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "method"), v11[i]);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "error"), "malformed protobuf");
    tu_dec_free(&t);
  }
  return 0;
}

/* The real captures' users are not anonymous. */
int test_types2026_captures_not_anonymous(void) {
  static const char *const files[] = {"pushframe_2022-12-27_chat.bin",
                                      "pushframe_2024-02-26_member_like_like.bin",
                                      "pushframe_2026-04-13_gift_banner_linker_ranklist.bin"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", tu_captures_dir, files[i]);
    uint8_t *b = tu_read_file(path, &len);
    ASSERT_TRUE(b);
    tu_dec t;
    ASSERT_EQ_ERR(tu_decode(&t, NULL, b, len), DL_EOK);
    free(b);
    ASSERT_TRUE(t.f.n_events >= 1);
    const cJSON *u = cJSON_GetObjectItem(t.ev[0], "user");
    ASSERT_TRUE(u);
    CHECK(is_bool(u, "anonymous", 0));
    tu_dec_free(&t);
  }
  return 0;
}
