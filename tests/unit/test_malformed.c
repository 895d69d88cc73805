/* Hostile input: malformed-input table, wrong wire types (PROTOCOL §8), bad messages, limits. */
#include <stdlib.h>

#include "dl_pbscrub.h"
#include "dl_test.h"
#include "tu.h"

static uint8_t *chat_payload_with(void (*extra)(pbw *), size_t *len) {
  Webcast__Common c = WEBCAST__COMMON__INIT;
  c.has_msg_id = 1;
  c.msg_id = 42;
  c.has_room_id = 1;
  c.room_id = 77;
  size_t cl;
  uint8_t *cb = tu_pack(&c.base, &cl);
  pbw w = {0};
  pbw_bytes(&w, 1, cb, cl);
  pbw_str(&w, 3, "still here");
  extra(&w);
  free(cb);
  *len = w.n;
  return w.buf;
}

static void x_field20_string(pbw *w) { pbw_str(w, 20, "0"); }          /* unknown field */
static void x_event_time_string(pbw *w) { pbw_str(w, 15, "1700000000"); } /* known, wrong wt */
static void x_user_nick_varint(pbw *w) {
  pbw u = {0};
  pbw_varint(&u, 1, 123456);
  pbw_varint(&u, 3, 99);            /* nickname as a varint */
  pbw_str(&u, 38, "disp");
  pbw_bytes(w, 2, u.buf, u.n);
  pbw_free(&u);
}
static void x_user_garbage(pbw *w) { pbw_bytes(w, 2, "\xff\xff\xff", 3); }
static void x_group(pbw *w) {
  static const uint8_t grp[] = {0x93, 0x03, 0x08, 0x01, 0x94, 0x03}; /* field 50 group {1: 1} */
  pbw_raw(w, grp, sizeof grp);
}
static void x_long_len(pbw *w) {
  /* user as a sub-message whose length 7 is a non-minimal 3-byte varint (87 80 00), holding
   * id = 7 and nickname (3) as a fixed32 (wrong wire type): the scrub drops the fixed32 and
   * re-encodes the length as 1 byte */
  static const uint8_t b[] = {0x12, 0x87, 0x80, 0x00, 0x08, 0x07, 0x1d, 0x00, 0x00, 0x00, 0x00};
  pbw_raw(w, b, sizeof b);
}

static int decode_chat(void (*extra)(pbw *), tu_dec *t) {
  size_t pl, fl;
  uint8_t *p = chat_payload_with(extra, &pl);
  Webcast__Message *m = tu_msg_raw("WebcastChatMessage", p, pl, 41);
  uint8_t *f = tu_frame(&m, 1, 1700000000123ULL, &fl);
  tu_decode(t, NULL, f, fl);
  free(p);
  free(f);
  tu_msg_free(m);
  ASSERT_EQ_ERR(t->rc, DL_EOK);
  ASSERT_EQ_U64(t->f.n_events, 1);
  ASSERT_TRUE(t->ev[0]);
  ASSERT_EQ_STR(t->f.events[0].type, "chat");
  ASSERT_EQ_STR(tu_jstr(t->ev[0], "content"), "still here");
  ASSERT_EQ_STR(t->f.events[0].msg_id, "42");
  ASSERT_EQ_U64(t->f.bad_messages, 0);
  return 0;
}

int test_pbscrub_wrong_wire_types(void) {
  tu_dec t;
  CHECK(decode_chat(x_field20_string, &t));
  ASSERT_EQ_U64(t.f.scrubbed, 0);
  tu_dec_free(&t);

  CHECK(decode_chat(x_event_time_string, &t));
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  ASSERT_EQ_I64(t.f.events[0].ts_ms, 1700000000123LL); /* event_time skipped → Response.now */
  tu_dec_free(&t);

  CHECK(decode_chat(x_user_nick_varint, &t));
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "123456");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.nickname"), "");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.display_id"), "disp");
  tu_dec_free(&t);

  CHECK(decode_chat(x_user_garbage, &t));
  ASSERT_FALSE(tu_jhas(t.ev[0], "user"));
  tu_dec_free(&t);

  CHECK(decode_chat(x_group, &t));
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  tu_dec_free(&t);

  CHECK(decode_chat(x_long_len, &t));
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "7");
  ASSERT_EQ_U64(t.f.scrubbed, 1);
  tu_dec_free(&t);

  /* the length re-encoding: a sub-message that shrinks from 130 bytes (2-byte length) to
   * under 128 (1-byte length) */
  {
    pbw u = {0}, w = {0};
    char name[120];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    pbw_str(&u, 3, name);          /* 2 + 119 = 121 bytes */
    pbw_str(&u, 4, "xxxxxxx");     /* gender as a string: dropped, 9 bytes */
    ASSERT_TRUE(u.n >= 128);
    pbw_bytes(&w, 2, u.buf, u.n);
    pbw_str(&w, 3, "c");
    uint8_t *out;
    size_t ol, dropped;
    ASSERT_EQ_ERR(dl_pbscrub(&webcast__chat_message__descriptor, w.buf, w.n, &out, &ol, &dropped),
                  DL_EOK);
    ASSERT_EQ_U64(dropped, 1);
    Webcast__ChatMessage *cm = webcast__chat_message__unpack(NULL, ol, out);
    ASSERT_TRUE(cm && cm->user);
    ASSERT_EQ_STR(cm->user->nickname, name);
    ASSERT_EQ_STR(cm->content, "c");
    ASSERT_EQ_U64(ol, w.n - 9 - 1);
    webcast__chat_message__free_unpacked(cm, NULL);
    free(out);
    pbw_free(&u);
    pbw_free(&w);
  }

  /* a well-formed message goes through the scrub unchanged */
  {
    char path[1024];
    size_t len, ol, dropped;
    snprintf(path, sizeof path, "%s/pushframe_2024-02-26_member_like_like.bin", tu_captures_dir);
    uint8_t *b = tu_read_file(path, &len), *out;
    ASSERT_TRUE(b);
    ASSERT_EQ_ERR(dl_pbscrub(&webcast__push_frame__descriptor, b, len, &out, &ol, &dropped),
                  DL_EOK);
    ASSERT_EQ_U64(dropped, 0);
    ASSERT_EQ_U64(ol, len);
    ASSERT_EQ_MEM(out, b, len);
    free(out);
    free(b);
  }
  /* depth: 100 nested unknown groups are refused, not a stack overflow */
  {
    pbw w = {0};
    for (int i = 0; i < 100; i++) pbw_raw(&w, "\x93\x03", 2);
    for (int i = 0; i < 100; i++) pbw_raw(&w, "\x94\x03", 2);
    uint8_t *out;
    size_t ol;
    ASSERT_EQ_ERR(dl_pbscrub(&webcast__chat_message__descriptor, w.buf, w.n, &out, &ol, NULL),
                  DL_EPROTO);
    pbw_free(&w);
  }
  return 0;
}

typedef struct bad_case {
  const char *name;
  uint8_t *buf;
  size_t len;
  dl_err want;
} bad_case;

static uint8_t *dup_bytes(const void *p, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  memcpy(b, p, n);
  return b;
}

int test_malformed_table(void) {
  bad_case cases[16];
  size_t nc = 0, len, gl;
  uint8_t *g;

  cases[nc++] = (bad_case){"empty", dup_bytes("", 0), 0, DL_EEMPTY};
  cases[nc++] = (bad_case){"truncated varint", dup_bytes("\x08\x80", 2), 2, DL_EPROTO};
  cases[nc++] = (bad_case){"truncated length-delimited", dup_bytes("\x3a\x05ms", 4), 4, DL_EPROTO};
  cases[nc++] = (bad_case){"field number 0", dup_bytes("\x00\x01", 2), 2, DL_EPROTO};
  cases[nc++] = (bad_case){"wire type 7", dup_bytes("\x0f\x01", 2), 2, DL_EPROTO};
  cases[nc++] = (bad_case){"11-byte varint",
                           dup_bytes("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12), 12,
                           DL_EPROTO};
  cases[nc].buf = tu_frame_payload((const uint8_t *)"not gzip at all", 15, "gzip", &len);
  cases[nc].len = len;
  cases[nc].name = "bad gzip";
  cases[nc++].want = DL_EGZIP;
  {
    Webcast__Response r = WEBCAST__RESPONSE__INIT;
    r.cursor = "some cursor that compresses";
    size_t rl;
    uint8_t *rb = tu_pack(&r.base, &rl);
    g = tu_gzip(rb, rl, &gl);
    g[gl - 6] ^= 0x40; /* CRC32 */
    cases[nc].buf = tu_frame_payload(g, gl, "gzip", &len);
    cases[nc].len = len;
    cases[nc].name = "CRC-broken gzip";
    cases[nc++].want = DL_EGZIP;
    free(g);
    g = tu_gzip(rb, rl / 2, &gl); /* a gzip of half a Response: Response truncated */
    cases[nc].buf = tu_frame_payload(g, gl, "gzip", &len);
    cases[nc].len = len;
    cases[nc].name = "truncated Response";
    cases[nc++].want = DL_EPROTO;
    free(g);
    free(rb);
  }
  g = tu_gzip((const uint8_t *)"\xff\xff\xff", 3, &gl);
  cases[nc].buf = tu_frame_payload(g, gl, "gzip", &len);
  cases[nc].len = len;
  cases[nc].name = "garbage Response";
  cases[nc++].want = DL_EPROTO;
  free(g);
  {
    uint8_t *big = calloc(1, (4u << 20) + 1);
    cases[nc++] = (bad_case){"oversized frame", big, (4u << 20) + 1, DL_ELIMIT};
  }

  for (size_t i = 0; i < nc; i++) {
    dl_decoder *d = dl_decoder_new("L", NULL, NULL);
    dl_frame f;
    dl_err rc = dl_decode_frame(d, cases[i].buf, cases[i].len, 1, &f);
    if (rc != cases[i].want) fprintf(stderr, "case: %s\n", cases[i].name);
    ASSERT_EQ_ERR(rc, cases[i].want);
    ASSERT_EQ_U64(f.n_events, 0);
    ASSERT_TRUE(f.events == NULL && f.cursor == NULL && f.ack_ext == NULL);
    /* the decoder stays usable */
    dl_frame_clear(&f);
    ASSERT_EQ_ERR(dl_decode_frame(d, (const uint8_t *)"\x3a\x02hb", 4, 1, &f), DL_EOK);
    ASSERT_EQ_STR(f.payload_type, "hb");
    dl_frame_clear(&f);
    dl_decoder_free(d);
    free(cases[i].buf);
  }

  /* shapes that are fine */
  {
    dl_decoder *d = dl_decoder_new("L", NULL, NULL);
    dl_frame f;
    /* PushFrame with payload_type as a varint (wrong wire type) and a valid log id: scrubbed */
    ASSERT_EQ_ERR(dl_decode_frame(d, (const uint8_t *)"\x10\x05\x38\x01", 4, 1, &f), DL_EOK);
    ASSERT_EQ_U64(f.log_id, 5);
    ASSERT_EQ_STR(f.payload_type, "");
    dl_frame_clear(&f);
    /* an uncompressed Response (no compress_type header) */
    Webcast__LikeMessage lm = WEBCAST__LIKE_MESSAGE__INIT;
    lm.has_count = 1;
    lm.count = 3;
    Webcast__Message *m = tu_msg("WebcastLikeMessage", &lm.base, 5);
    size_t rl, fl;
    uint8_t *rb = tu_response(&m, 1, 0, &rl);
    uint8_t *fb = tu_frame_from_response(rb, rl, 0, &fl);
    ASSERT_EQ_ERR(dl_decode_frame(d, fb, fl, 1, &f), DL_EOK);
    ASSERT_EQ_U64(f.n_events, 1);
    ASSERT_EQ_STR(f.events[0].type, "like");
    ASSERT_EQ_I64(f.events[0].ts_ms, 1); /* nothing else: recv_ms */
    dl_frame_clear(&f);
    free(rb);
    free(fb);
    tu_msg_free(m);
    dl_decoder_free(d);
  }
  return 0;
}

int test_bad_message_becomes_raw(void) {
  Webcast__ChatMessage cm = WEBCAST__CHAT_MESSAGE__INIT;
  cm.content = "ok";
  Webcast__LikeMessage lm = WEBCAST__LIKE_MESSAGE__INIT;
  lm.has_count = 1;
  lm.count = 2;
  Webcast__Message *msgs[4] = {
      tu_msg("WebcastChatMessage", &cm.base, 1),
      tu_msg_raw("WebcastChatMessage", (const uint8_t *)"\x0a\xff", 2, 2), /* garbage */
      tu_msg_raw("WebcastGiftMessage", (const uint8_t *)"\x08", 1, 3),      /* truncated */
      tu_msg("WebcastLikeMessage", &lm.base, 4),
  };
  size_t fl;
  uint8_t *f = tu_frame(msgs, 4, 1700000000000ULL, &fl);
  tu_dec t;
  tu_decode(&t, "R", f, fl);
  ASSERT_EQ_ERR(t.rc, DL_EOK);
  ASSERT_EQ_U64(t.f.n_events, 4);
  ASSERT_EQ_U64(t.f.bad_messages, 2);
  ASSERT_EQ_STR(t.f.events[0].type, "chat");
  ASSERT_EQ_STR(t.f.events[1].type, "raw");
  ASSERT_EQ_STR(t.f.events[1].msg_id, "2");
  ASSERT_EQ_STR(tu_jstr(t.ev[1], "method"), "WebcastChatMessage");
  ASSERT_EQ_STR(tu_jstr(t.ev[1], "payload_b64"), "Cv8=");
  ASSERT_EQ_STR(tu_jstr(t.ev[1], "error"), "malformed protobuf");
  ASSERT_EQ_STR(t.f.events[2].type, "raw");
  ASSERT_EQ_STR(tu_jstr(t.ev[2], "payload_b64"), "CA==");
  ASSERT_EQ_STR(t.f.events[3].type, "like");
  ASSERT_EQ_U64(tu_jnum(t.ev[3], "count"), 2);
  for (int i = 0; i < 4; i++) ASSERT_TRUE(t.ev[i]);
  tu_dec_free(&t);
  free(f);
  for (int i = 0; i < 4; i++) tu_msg_free(msgs[i]);
  return 0;
}

int test_limits(void) {
  dl_decode_limits lim;
  dl_decode_limits_default(&lim);
  ASSERT_EQ_U64(lim.max_frame_bytes, 4u << 20);
  ASSERT_EQ_U64(lim.max_inflated_bytes, 16u << 20);
  ASSERT_EQ_U64(lim.max_inflate_ratio, 1000);
  ASSERT_EQ_U64(lim.max_messages, 10000);
  ASSERT_EQ_U64(lim.max_alloc_bytes, 64u << 20);
  ASSERT_EQ_U64(lim.max_gift_streaks, 4096);
  ASSERT_EQ_I64(lim.gift_streak_ttl_ms, 600000);

  /* too many messages: refused before protobuf-c allocates for them */
  Webcast__Message *msgs[11];
  Webcast__LikeMessage lm = WEBCAST__LIKE_MESSAGE__INIT;
  for (int i = 0; i < 11; i++) msgs[i] = tu_msg("WebcastLikeMessage", &lm.base, (uint64_t)i + 1);
  size_t fl;
  uint8_t *f = tu_frame(msgs, 11, 0, &fl);
  lim.max_messages = 10;
  dl_decoder *d = dl_decoder_new("L", NULL, &lim);
  dl_frame fr;
  ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 1, &fr), DL_ELIMIT);
  dl_decoder_free(d);
  lim.max_messages = 11;
  d = dl_decoder_new("L", NULL, &lim);
  ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 1, &fr), DL_EOK);
  ASSERT_EQ_U64(fr.n_events, 11);
  dl_frame_clear(&fr);
  dl_decoder_free(d);
  free(f);
  for (int i = 0; i < 11; i++) tu_msg_free(msgs[i]);

  /* alloc budget: a frame whose payload alone is bigger than the budget */
  uint8_t *blob = calloc(1, 100000);
  Webcast__Message *m = tu_msg_raw("WebcastSomethingMessage", blob, 100000, 9);
  f = tu_frame(&m, 1, 0, &fl);
  lim.max_alloc_bytes = 50000;
  d = dl_decoder_new("L", NULL, &lim);
  ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 1, &fr), DL_ELIMIT);
  dl_decoder_free(d);
  lim.max_alloc_bytes = 300000;
  d = dl_decoder_new("L", NULL, &lim);
  ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 1, &fr), DL_EOK);
  ASSERT_EQ_STR(fr.events[0].type, "raw");
  ASSERT_EQ_U64(fr.events[0].json_len > 133000, 1); /* base64 of 100000 bytes */
  dl_frame_clear(&fr);
  dl_decoder_free(d);
  free(f);
  free(blob);
  tu_msg_free(m);

  /* a Message over the budget becomes a raw event with the error, and does not spoil the next
   * Message's scrub (which must still happen) */
  {
    char *big = malloc(100001);
    memset(big, 'b', 100000);
    big[100000] = 0;
    Webcast__ChatMessage cm = WEBCAST__CHAT_MESSAGE__INIT;
    cm.content = big;
    pbw w = {0};
    pbw_str(&w, 3, "small");
    pbw_str(&w, 15, "mistyped event_time");
    Webcast__Message *two[2] = {tu_msg("WebcastChatMessage", &cm.base, 1),
                                tu_msg_raw("WebcastChatMessage", w.buf, w.n, 2)};
    f = tu_frame(two, 2, 0, &fl);
    lim.max_alloc_bytes = 160000;
    lim.max_inflate_ratio = 0;
    d = dl_decoder_new("L", NULL, &lim);
    ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 1, &fr), DL_EOK);
    ASSERT_EQ_U64(fr.n_events, 2);
    ASSERT_EQ_U64(fr.bad_messages, 1);
    ASSERT_EQ_STR(fr.events[0].type, "raw");
    cJSON *e = tu_parse_event(&fr.events[0]);
    ASSERT_EQ_STR(tu_jstr(e, "error"), "input exceeds a configured limit");
    cJSON_Delete(e);
    ASSERT_EQ_STR(fr.events[1].type, "chat");
    ASSERT_EQ_U64(fr.scrubbed, 1);
    dl_frame_clear(&fr);
    dl_decoder_free(d);
    free(f);
    free(big);
    pbw_free(&w);
    tu_msg_free(two[0]);
    tu_msg_free(two[1]);
    lim.max_inflate_ratio = 1000;
  }

  /* inflate ratio through the decoder: 1 MiB of zeros with ratio cap 10 */
  blob = calloc(1, 1u << 20);
  m = tu_msg_raw("WebcastSomethingMessage", blob, 1u << 20, 9);
  f = tu_frame(&m, 1, 0, &fl);
  lim.max_inflate_ratio = 10;
  d = dl_decoder_new("L", NULL, &lim);
  ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 1, &fr), DL_EBOMB);
  dl_decoder_free(d);
  free(f);
  free(blob);
  tu_msg_free(m);
  return 0;
}
