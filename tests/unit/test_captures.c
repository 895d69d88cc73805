/* Real captures (shared/captures/README.md): every expected value listed there. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dl_test.h"
#include "tu.h"

static uint8_t *load(const char *name, size_t *len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", tu_captures_dir, name);
  uint8_t *b = tu_read_file(path, len);
  if (!b) fprintf(stderr, "cannot read %s\n", path);
  return b;
}

/* What every capture frame has (README "Every frame has these values"). */
static int common_frame_checks(const tu_dec *t) {
  ASSERT_EQ_ERR(t->rc, DL_EOK);
  ASSERT_EQ_STR(t->f.payload_type, "msg");
  ASSERT_TRUE(t->f.need_ack);
  ASSERT_EQ_U64(t->f.heartbeat_duration, 15);
  ASSERT_TRUE(t->f.now_ms > 1600000000000ULL);
  ASSERT_TRUE(t->f.cursor && t->f.cursor[0]);
  ASSERT_TRUE(t->f.internal_ext && t->f.internal_ext[0]);
  ASSERT_EQ_STR(t->f.ack_ext, t->f.internal_ext); /* Response.internal_ext wins */
  ASSERT_EQ_U64(t->f.bad_messages, 0);
  for (size_t i = 0; i < t->f.n_events; i++) {
    ASSERT_TRUE(t->ev[i] != NULL); /* valid JSON and UTF-8 */
    ASSERT_EQ_U64(tu_jnum(t->ev[i], "v"), 1);
    ASSERT_EQ_STR(tu_jstr(t->ev[i], "live_id"), "L1");
    ASSERT_EQ_STR(tu_jstr(t->ev[i], "msg_id"), t->f.events[i].msg_id);
    ASSERT_EQ_STR(tu_jstr(t->ev[i], "type"), t->f.events[i].type);
    ASSERT_EQ_I64(tu_jnum(t->ev[i], "ts_ms"), t->f.events[i].ts_ms);
    ASSERT_EQ_I64(tu_jnum(t->ev[i], "recv_ms"), 1700000000000);
  }
  return 0;
}

int test_capture_chat_2022_12_27(void) {
  size_t len;
  tu_dec t;
  uint8_t *b = load("pushframe_2022-12-27_chat.bin", &len);
  ASSERT_TRUE(b);
  ASSERT_EQ_U64(len, 1650);
  tu_decode(&t, NULL, b, len);
  CHECK(common_frame_checks(&t));
  ASSERT_EQ_U64(t.f.seq_id, 703);
  ASSERT_EQ_U64(t.f.log_id, 8726349535470258530ULL);
  ASSERT_EQ_U64(t.f.n_events, 1);
  const cJSON *e = t.ev[0];
  ASSERT_EQ_STR(t.f.events[0].type, "chat");
  ASSERT_EQ_STR(t.f.events[0].msg_id, "7181859941539730490");
  ASSERT_EQ_U64(t.f.events[0].msg_id_u64, 7181859941539730490ULL);
  ASSERT_EQ_STR(tu_jstr(e, "method"), "WebcastChatMessage");
  ASSERT_EQ_STR(tu_jstr(e, "content"), "百分之10可以直播半小时");
  ASSERT_EQ_STR(tu_jstr(e, "user.nickname"), "渴死的鱼.");
  ASSERT_EQ_STR(tu_jstr(e, "user.id"), "726106111214807");
  ASSERT_EQ_STR(tu_jstr(e, "user.display_id"), "TZ11306");
  ASSERT_EQ_U64(tu_jnum(e, "user.pay_level"), 14);
  ASSERT_TRUE(tu_jhas(e, "user.sec_uid") && tu_jhas(e, "user.gender") &&
              tu_jhas(e, "user.fans_club_level"));
  /* room id: from Common when the decoder was given none, and learned by the decoder */
  ASSERT_TRUE(strlen(tu_jstr(e, "room_id")) >= 18);
  ASSERT_EQ_STR(dl_decoder_room_id(t.d), tu_jstr(e, "room_id"));
  /* Chat has no Common.create_time: ts_ms = event_time × 1000, on 2022-12-27 */
  ASSERT_TRUE(t.f.events[0].ts_ms >= 1672099200000 && t.f.events[0].ts_ms < 1672185600000);
  ASSERT_EQ_I64(t.f.events[0].ts_ms % 1000, 0);
  tu_dec_free(&t);
  free(b);
  return 0;
}

int test_capture_chat_2022_12_28(void) {
  size_t len;
  tu_dec t;
  uint8_t *b = load("pushframe_2022-12-28_chat.bin", &len);
  ASSERT_TRUE(b);
  tu_decode(&t, "999", b, len);
  CHECK(common_frame_checks(&t));
  ASSERT_EQ_U64(t.f.seq_id, 11);
  ASSERT_EQ_U64(t.f.log_id, 3235896444036125441ULL);
  ASSERT_EQ_U64(t.f.n_events, 1);
  ASSERT_EQ_STR(t.f.events[0].type, "chat");
  ASSERT_EQ_STR(t.f.events[0].msg_id, "7182076673307137079");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "content"), "前驱车不行");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.nickname"), "wawo~");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "98309207169");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "room_id"), "999"); /* the decoder's room id wins */
  tu_dec_free(&t);
  free(b);
  return 0;
}

int test_capture_member_like_like(void) {
  size_t len;
  tu_dec t;
  uint8_t *b = load("pushframe_2024-02-26_member_like_like.bin", &len);
  ASSERT_TRUE(b);
  tu_decode(&t, NULL, b, len);
  CHECK(common_frame_checks(&t));
  ASSERT_EQ_U64(t.f.seq_id, 855);
  ASSERT_EQ_U64(t.f.log_id, 6163826846294803948ULL);
  ASSERT_EQ_U64(t.f.n_events, 3);
  static const char *const ids[] = {"7339739750997620751", "7339739751115285800",
                                    "7339739752734265353"};
  static const char *const types[] = {"member", "like", "like"};
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ_STR(t.f.events[i].msg_id, ids[i]);
    ASSERT_EQ_STR(t.f.events[i].type, types[i]);
    ASSERT_EQ_STR(tu_jstr(t.ev[i], "room_id"), "7339719826904058675");
  }
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "method"), "WebcastMemberMessage");
  ASSERT_EQ_U64(tu_jnum(t.ev[0], "member_count"), 96);
  ASSERT_EQ_U64(tu_jnum(t.ev[0], "action"), 1);
  ASSERT_TRUE(tu_jhas(t.ev[0], "user.id"));
  ASSERT_EQ_U64(tu_jnum(t.ev[1], "count"), 13);
  ASSERT_EQ_U64(tu_jnum(t.ev[1], "total"), 13826);
  ASSERT_EQ_U64(tu_jnum(t.ev[2], "count"), 9);
  ASSERT_EQ_U64(tu_jnum(t.ev[2], "total"), 13826);
  tu_dec_free(&t);
  free(b);
  return 0;
}

int test_capture_gift_frame(void) {
  size_t len;
  tu_dec t;
  uint8_t *b = load("pushframe_2026-04-13_gift_banner_linker_ranklist.bin", &len);
  ASSERT_TRUE(b);
  tu_decode(&t, NULL, b, len);
  CHECK(common_frame_checks(&t));
  ASSERT_EQ_U64(t.f.seq_id, 16);
  ASSERT_EQ_U64(t.f.log_id, 803741752050424480ULL);
  ASSERT_EQ_U64(t.f.n_events, 4);
  /* the last two: Common.msg_id differs from Message.msg_id, Common wins (CONTRACT §4) */
  static const char *const ids[] = {"7628380564663882771", "7628383117841601587",
                                    "7628383155623941139", "7628383164461028406"};
  static const char *const types[] = {"gift", "raw", "raw", "raw"};
  static const char *const methods[] = {"WebcastGiftMessage", "WebcastInRoomBannerMessage",
                                        "WebcastLinkerContributeMessage",
                                        "WebcastRanklistHourEntranceMessage"};
  for (int i = 0; i < 4; i++) {
    ASSERT_EQ_STR(t.f.events[i].msg_id, ids[i]);
    ASSERT_EQ_STR(t.f.events[i].type, types[i]);
    ASSERT_EQ_STR(tu_jstr(t.ev[i], "method"), methods[i]);
    ASSERT_EQ_STR(tu_jstr(t.ev[i], "room_id"), "7628304147959352090");
    if (i > 0) {
      ASSERT_TRUE(tu_jstr(t.ev[i], "payload_b64") && strlen(tu_jstr(t.ev[i], "payload_b64")) > 8);
      ASSERT_FALSE(tu_jhas(t.ev[i], "error"));
    }
  }
  const cJSON *g = t.ev[0];
  ASSERT_EQ_U64(tu_jnum(g, "gift.id"), 463);
  ASSERT_EQ_STR(tu_jstr(g, "gift.name"), "小心心");
  ASSERT_EQ_U64(tu_jnum(g, "gift.diamonds"), 1);
  ASSERT_EQ_U64(tu_jnum(g, "gift.repeat_count"), 1);
  ASSERT_EQ_U64(tu_jnum(g, "gift.combo_count"), 1);
  ASSERT_EQ_U64(tu_jnum(g, "gift.group_count"), 1);
  ASSERT_EQ_U64(tu_jnum(g, "gift.repeat_end"), 0);
  ASSERT_EQ_STR(tu_jstr(g, "gift.group_id"), "1776121373");
  ASSERT_EQ_U64(tu_jnum(g, "gift.delta"), 1);
  ASSERT_EQ_STR(tu_jstr(g, "to_user.nickname"), "OpenAEON.AI");
  ASSERT_TRUE(tu_jhas(g, "user.id"));
  /* Gift has Common.create_time: ts_ms is it, on 2026-04-13 */
  ASSERT_TRUE(t.f.events[0].ts_ms >= 1776038400000 && t.f.events[0].ts_ms < 1776211200000);
  /* the same frame again (Douyin re-pushes on reconnect): the streak adds nothing */
  ASSERT_EQ_ERR(tu_decode_more(&t, b, len, 1700000001000), DL_EOK);
  ASSERT_EQ_U64(tu_jnum(t.ev[0], "gift.delta"), 0);
  tu_dec_free(&t);
  free(b);
  return 0;
}

int test_capture_member_2026(void) {
  size_t len;
  tu_dec t;
  uint8_t *b = load("pushframe_2026-04-13_member.bin", &len);
  ASSERT_TRUE(b);
  tu_decode(&t, NULL, b, len);
  CHECK(common_frame_checks(&t));
  ASSERT_EQ_U64(t.f.seq_id, 4);
  ASSERT_EQ_U64(t.f.log_id, 644990964668164662ULL);
  ASSERT_EQ_U64(t.f.n_events, 1);
  ASSERT_EQ_STR(t.f.events[0].msg_id, "7628381294750101258");
  ASSERT_EQ_STR(t.f.events[0].type, "member");
  ASSERT_EQ_U64(tu_jnum(t.ev[0], "member_count"), 48);
  ASSERT_EQ_U64(tu_jnum(t.ev[0], "action"), 1);
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.nickname"), "李同学讲AI（洛洛助手版）");
  ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "7616955499716920369");
  tu_dec_free(&t);
  free(b);
  return 0;
}

/* Every capture decodes under tight-but-sufficient limits, and the ack built from it has the
 * PROTOCOL §3.4 shape. */
int test_capture_ack_roundtrip(void) {
  size_t len;
  tu_dec t;
  uint8_t *b = load("pushframe_2024-02-26_member_like_like.bin", &len);
  ASSERT_TRUE(b);
  tu_decode(&t, NULL, b, len);
  ASSERT_EQ_ERR(t.rc, DL_EOK);
  uint8_t ack[4096];
  size_t n = dl_frame_build_ack(t.f.log_id, t.f.ack_ext, ack, sizeof ack);
  ASSERT_TRUE(n > 0);
  Webcast__PushFrame *pf = webcast__push_frame__unpack(NULL, n, ack);
  ASSERT_TRUE(pf);
  ASSERT_EQ_U64(pf->log_id, 6163826846294803948ULL);
  ASSERT_EQ_STR(pf->payload_type, "ack");
  ASSERT_EQ_U64(pf->payload.len, strlen(t.f.ack_ext));
  ASSERT_EQ_MEM(pf->payload.data, t.f.ack_ext, pf->payload.len);
  webcast__push_frame__free_unpacked(pf, NULL);
  tu_dec_free(&t);
  free(b);
  return 0;
}
