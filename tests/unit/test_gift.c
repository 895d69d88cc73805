/* Gift delta tracker (PROTOCOL §5): summing delta counts each gift exactly once. */
#include <stdlib.h>

#include "dl_gift.h"
#include "dl_test.h"
#include "tu.h"

static uint64_t feed(dl_gift_tracker *t, uint64_t user, uint64_t group, const uint64_t *counts,
                     size_t n, int end_last, int64_t *now) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    dl_gift_update u = {.user_id = user, .gift_id = 463, .group_id = group,
                        .repeat_count = counts[i], .combo_count = counts[i], .group_count = 1,
                        .repeat_end = end_last && i == n - 1, .streakable = 1};
    sum += dl_gift_delta(t, &u, (*now)++);
  }
  return sum;
}

int test_gift_streaks(void) {
  dl_gift_tracker *t = dl_gift_new(64, 600000);
  int64_t now = 1000;
  static const uint64_t plain[] = {1, 2, 3, 4, 5};
  static const uint64_t skipped[] = {1, 2, 3, 5, 6};
  static const uint64_t jitter[] = {1, 3, 2, 3};
  static const uint64_t dup[] = {1, 2, 2, 3, 3, 3};
  static const uint64_t late[] = {4, 2, 5};
  ASSERT_EQ_U64(feed(t, 1, 10, plain, 5, 1, &now), 5);
  ASSERT_EQ_U64(feed(t, 1, 11, skipped, 5, 1, &now), 6);
  ASSERT_EQ_U64(feed(t, 1, 12, jitter, 4, 0, &now), 3);        /* never a repeat_end */
  ASSERT_EQ_U64(feed(t, 2, 12, dup, 6, 1, &now), 3);           /* other user, same group id */
  /* repeat_end then a late / re-sent update of the same streak: adds nothing */
  static const uint64_t again[] = {5, 3};
  ASSERT_EQ_U64(feed(t, 1, 10, again, 2, 1, &now), 0);
  /* a late update that goes past the "final" count adds only the difference */
  ASSERT_EQ_U64(feed(t, 1, 10, late, 3, 0, &now), 0);
  static const uint64_t more[] = {7};
  ASSERT_EQ_U64(feed(t, 1, 10, more, 1, 0, &now), 2);
  ASSERT_EQ_U64(dl_gift_count(t), 4);

  /* combo_count vs repeat_count disagree: the larger is the running total */
  dl_gift_update u = {.user_id = 9, .gift_id = 1, .group_id = 1, .repeat_count = 2,
                      .combo_count = 4, .streakable = 1};
  ASSERT_EQ_U64(dl_gift_delta(t, &u, now), 4);
  u.repeat_count = 5;
  u.combo_count = 0;
  ASSERT_EQ_U64(dl_gift_delta(t, &u, now), 1);
  /* a streakable message with no counts at all is one gift */
  dl_gift_update z = {.user_id = 9, .gift_id = 2, .group_id = 1, .streakable = 1};
  ASSERT_EQ_U64(dl_gift_delta(t, &z, now), 1);
  ASSERT_EQ_U64(dl_gift_delta(t, &z, now), 0);

  /* non-streakable: repeat_count, else group_count, else 1; no state */
  size_t before = dl_gift_count(t);
  dl_gift_update p = {.user_id = 1, .gift_id = 2, .group_count = 66};
  ASSERT_EQ_U64(dl_gift_delta(t, &p, now), 66);
  ASSERT_EQ_U64(dl_gift_delta(t, &p, now), 66); /* each message is its own gift */
  p.repeat_count = 10;
  ASSERT_EQ_U64(dl_gift_delta(t, &p, now), 10);
  dl_gift_update one = {.user_id = 1, .gift_id = 3};
  ASSERT_EQ_U64(dl_gift_delta(t, &one, now), 1);
  ASSERT_EQ_U64(dl_gift_count(t), before);

  /* TTL: an idle streak is forgotten, the same key then starts over */
  dl_gift_tracker *t2 = dl_gift_new(8, 1000);
  int64_t n2 = 0;
  static const uint64_t three[] = {3};
  ASSERT_EQ_U64(feed(t2, 1, 1, three, 1, 0, &n2), 3);
  n2 = 500;
  ASSERT_EQ_U64(feed(t2, 1, 1, three, 1, 0, &n2), 0);
  n2 = 5000;
  ASSERT_EQ_U64(feed(t2, 2, 2, three, 1, 0, &n2), 3); /* expires key (1,1) */
  ASSERT_EQ_U64(dl_gift_count(t2), 1);
  dl_gift_free(t2);
  dl_gift_free(t);
  return 0;
}

int test_gift_eviction(void) {
  dl_gift_tracker *t = dl_gift_new(100, 0);
  int64_t now = 0;
  static const uint64_t c[] = {1, 2};
  for (uint64_t k = 0; k < 1000; k++) feed(t, k, k, c, 2, 0, &now);
  ASSERT_EQ_U64(dl_gift_count(t), 100);
  ASSERT_EQ_U64(dl_gift_evictions(t), 900);
  /* the most recent 100 are the ones kept: updating them adds nothing */
  static const uint64_t c2[] = {2};
  for (uint64_t k = 900; k < 1000; k++) ASSERT_EQ_U64(feed(t, k, k, c2, 1, 0, &now), 0);
  /* a recently touched key survives pressure: touch 900, then insert 99 new keys */
  feed(t, 900, 900, c2, 1, 0, &now);
  for (uint64_t k = 2000; k < 2099; k++) feed(t, k, k, c, 1, 0, &now);
  ASSERT_EQ_U64(feed(t, 900, 900, c2, 1, 0, &now), 0);
  ASSERT_EQ_U64(dl_gift_count(t), 100);
  dl_gift_free(t);
  /* max_streaks 0 is treated as 1 */
  t = dl_gift_new(0, 0);
  ASSERT_EQ_U64(feed(t, 1, 1, c, 2, 0, &now), 2);
  ASSERT_EQ_U64(dl_gift_count(t), 1);
  dl_gift_free(t);
  return 0;
}

int test_gift_export_import(void) {
  dl_gift_tracker *a = dl_gift_new(16, 0), *b = dl_gift_new(16, 0);
  int64_t now = 0;
  static const uint64_t c[] = {1, 2, 3};
  feed(a, 1, 1, c, 3, 0, &now);
  feed(a, 2, 2, c, 2, 1, &now);
  dl_gift_streak s[16];
  size_t n = dl_gift_export(a, s, 16);
  ASSERT_EQ_U64(n, 2);
  ASSERT_EQ_U64(s[0].user_id, 1); /* least recent first */
  ASSERT_EQ_U64(s[0].last_seen, 3);
  ASSERT_EQ_U64(s[1].last_seen, 2);
  ASSERT_TRUE(s[1].ended);
  ASSERT_EQ_U64(dl_gift_export(a, s, 1), 1);
  n = dl_gift_export(a, s, 16);
  ASSERT_EQ_ERR(dl_gift_import(b, s, n), DL_EOK);
  /* the new owner continues the streak without counting it again */
  static const uint64_t cont[] = {3, 4};
  ASSERT_EQ_U64(feed(b, 1, 1, cont, 2, 0, &now), 1);
  /* importing again merges (max) */
  ASSERT_EQ_ERR(dl_gift_import(b, s, n), DL_EOK);
  static const uint64_t four[] = {4};
  ASSERT_EQ_U64(feed(b, 1, 1, four, 1, 0, &now), 0);
  ASSERT_EQ_U64(dl_gift_count(b), 2);
  dl_gift_free(a);
  dl_gift_free(b);
  return 0;
}

/* Through the decoder: a streak split over frames, re-sent frames, user ids via id_str. */
int test_gift_decoder_integration(void) {
  static const struct { uint64_t count; int end; uint64_t want; } seq[] = {
      {1, 0, 1}, {2, 0, 1}, {2, 0, 0}, {5, 0, 3}, {6, 1, 1}, {6, 1, 0}, {4, 0, 0}};
  tu_dec t;
  memset(&t, 0, sizeof t);
  t.d = dl_decoder_new("L", "R", NULL);
  uint64_t sum = 0;
  for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
    Webcast__GiftMessage m = WEBCAST__GIFT_MESSAGE__INIT;
    Webcast__GiftStruct g = WEBCAST__GIFT_STRUCT__INIT;
    Webcast__User u = WEBCAST__USER__INIT;
    u.id_str = "12345";
    g.has_combo = 1;
    g.combo = 1;
    m.gift = &g;
    m.user = &u;
    m.has_gift_id = 1;
    m.gift_id = 463;
    m.has_group_id = 1;
    m.group_id = 1776121373;
    m.has_combo_count = 1;
    m.combo_count = seq[i].count;
    m.has_repeat_count = 1;
    m.repeat_count = seq[i].count;
    m.has_repeat_end = seq[i].end;
    m.repeat_end = seq[i].end;
    Webcast__Message *msg = tu_msg("WebcastGiftMessage", &m.base, 100 + i);
    size_t fl;
    uint8_t *f = tu_frame(&msg, 1, 0, &fl);
    ASSERT_EQ_ERR(tu_decode_more(&t, f, fl, 1000 + (int64_t)i), DL_EOK);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "gift.delta"), seq[i].want);
    ASSERT_EQ_U64(tu_jnum(t.ev[0], "gift.repeat_end"), seq[i].end);
    ASSERT_EQ_STR(tu_jstr(t.ev[0], "user.id"), "12345");
    sum += (uint64_t)tu_jnum(t.ev[0], "gift.delta");
    free(f);
    tu_msg_free(msg);
  }
  ASSERT_EQ_U64(sum, 6);
  ASSERT_EQ_U64(dl_gift_count(dl_decoder_gifts(t.d)), 1);
  tu_dec_free(&t);
  return 0;
}
