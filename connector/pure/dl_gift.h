/* dl_gift — per-room gift delta tracker (PROTOCOL §5, CONTRACT §4 gift.delta).
 *
 * Douyin sends a combo streak as several GiftMessages sharing (user, gift, group_id) with a
 * growing running count that can skip (1,2,3,5,6), jitter (1,3,2,3), be re-sent, and may never
 * get its repeat_end=1. The tracker turns each message into `delta`, the units it adds, so that
 * summing delta over a stream counts every gift exactly once:
 *   streakable (GiftStruct.combo, or send_type 4): running = max(repeat_count, combo_count, 1);
 *     delta = max(0, running - last_seen); last_seen = max(last_seen, running). repeat_end marks
 *     the streak ended but the key stays (until TTL or LRU eviction) so a late or re-sent update
 *     adds nothing.
 *   otherwise: delta = repeat_count if > 0, else group_count if > 0, else 1 (no state).
 * Memory is bounded by max_streaks (least recently updated streak evicted first) and idle
 * streaks are forgotten after ttl_ms. The clock is the caller's (the frame's recv_ms).
 * The state can be exported and imported (e.g. handed over with the room to another worker).
 */
#ifndef DL_GIFT_H
#define DL_GIFT_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

/* GiftMessage.send_type of a combo gift in the real captures. */
#define DL_GIFT_SEND_TYPE_COMBO 4

typedef struct dl_gift_tracker dl_gift_tracker;

typedef struct dl_gift_update {
  uint64_t user_id;
  uint64_t gift_id;
  uint64_t group_id;
  uint64_t repeat_count;
  uint64_t combo_count;
  uint64_t group_count;
  int repeat_end;
  int streakable;
} dl_gift_update;

/* One tracked streak, as exported/imported. */
typedef struct dl_gift_streak {
  uint64_t user_id;
  uint64_t gift_id;
  uint64_t group_id;
  uint64_t last_seen; /* highest running count seen */
  int64_t last_ms;    /* caller's clock at the last update */
  int ended;          /* a repeat_end=1 was seen */
} dl_gift_streak;

/* The sender part of a streak key: the user id, except for anonymous viewers (PROTOCOL §9.8),
 * who all share the id 111111 — their key is a hash of the masked nickname with the top bit set
 * (real ids stay below 2^63). The decoder and a worker rebuilding streaks from a stream's tail
 * must agree on it, so it lives here. */
uint64_t dl_gift_user_key(uint64_t id, const char *nickname, int anonymous);

/* max_streaks: at least 1 is used. ttl_ms <= 0: no idle expiry. NULL on allocation failure. */
dl_gift_tracker *dl_gift_new(size_t max_streaks, int64_t ttl_ms);
void dl_gift_free(dl_gift_tracker *t);

/* Units this gift message adds. now_ms drives TTL expiry and LRU order. */
uint64_t dl_gift_delta(dl_gift_tracker *t, const dl_gift_update *u, int64_t now_ms);

size_t dl_gift_count(const dl_gift_tracker *t);
/* Streaks dropped because the tracker was full (not TTL), since creation. */
uint64_t dl_gift_evictions(const dl_gift_tracker *t);

/* Writes up to cap streaks, least recently updated first; returns how many were written. */
size_t dl_gift_export(const dl_gift_tracker *t, dl_gift_streak *out, size_t cap);
/* Merges streaks (last_seen = max, ended = or, last_ms = max); later entries count as more
 * recent. Beyond capacity the least recent are evicted as usual. DL_EOK always, for now. */
dl_err dl_gift_import(dl_gift_tracker *t, const dl_gift_streak *in, size_t n);

#endif
