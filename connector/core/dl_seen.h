/* dl_seen — a room's recent msg_ids, for dedupe in the worker (DESIGN §7 "the stream is the
 * record"): Douyin re-pushes ~15 recent messages on every connection, and a new owner after a
 * handover receives them too, so each id is checked here before it is written. The set keeps the
 * last `max` ids (oldest evicted first) and grows on demand, so a quiet room costs a few hundred
 * bytes. When a worker takes a room it refills the set from the tail of the room's stream. */
#ifndef DL_SEEN_H
#define DL_SEEN_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

typedef struct dl_seen dl_seen;

dl_seen *dl_seen_new(size_t max);
void dl_seen_free(dl_seen *s);
/* 1 when id is in the set. */
int dl_seen_has(const dl_seen *s, uint64_t id);
/* Adds id (evicting the oldest past max). DL_EOK, or DL_ENOMEM (the set is left as it was). */
dl_err dl_seen_add(dl_seen *s, uint64_t id);
/* The same, and *present (may be NULL) says whether id was already in the set (then nothing
 * changes): one lookup where has-then-add would hash twice. 0 is never present. */
dl_err dl_seen_insert(dl_seen *s, uint64_t id, int *present);
size_t dl_seen_len(const dl_seen *s);
/* Bytes held (for memory accounting). */
size_t dl_seen_bytes(const dl_seen *s);
/* A msg_id as written in events ("7628380564663882771") → u64; 0 when absent or not a number. */
uint64_t dl_seen_parse_id(const char *s, size_t n);

#endif
