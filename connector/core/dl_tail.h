/* dl_tail — what a worker learns from the tail of a room's stream when it takes the room
 * (DESIGN §7 "the stream is the record"): the recent msg_ids (for dedupe: Douyin re-pushes recent
 * messages to the new connection) and the running count of every combo gift streak (so gift.delta
 * goes on counting each gift once across a handover). The reply is Redis's XREVRANGE, newest
 * first, read defensively: anything of an unexpected shape is skipped and counted. */
#ifndef DL_TAIL_H
#define DL_TAIL_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_gift.h"
#include "dl_seen.h"

typedef struct dl_tail {
  size_t entries;          /* stream entries read */
  size_t skipped;          /* entries (or gift JSON) of an unexpected shape */
  dl_gift_streak *gifts;   /* malloc'd; the caller frees */
  size_t n_gifts;
} dl_tail;

/* Fills seen (oldest first, so it evicts in the stream's order) and out. max_gifts bounds the
 * streaks kept. A reply that is not an array reads as an empty tail (skipped = 1). */
void dl_tail_read(const redisReply *rep, dl_seen *seen, size_t max_gifts, int64_t now_ms, dl_tail *out);

#endif
