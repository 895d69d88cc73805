/* dl_reply — hiredis reply objects without an allocation per reply (DESIGN §7 "the hot path
 * allocates nothing per event").
 *
 * hiredis's reader builds a reply out of one calloc per object and one malloc per string and
 * element array: a grouped room write's reply is 1 + 4 per room of them, freed a moment later.
 * These reader functions take the same objects from a pool of the calling thread instead and give
 * them back to it: reply nodes, and strings and element arrays in power-of-two size classes up to
 * DL_REPLY_POOLED_MAX bytes (larger ones are plain malloc/free). What a pool keeps is bounded
 * (DL_REPLY_POOL_NODES nodes, DL_REPLY_POOL_CLASS_BYTES per size class); the rest is freed.
 *
 * A reply made by dl_reply_fns() is a plain redisReply to its readers and must be freed with
 * dl_reply_free (never freeReplyObject), on the thread whose reader made it. */
#ifndef DL_REPLY_H
#define DL_REPLY_H

#include <hiredis/hiredis.h>

#define DL_REPLY_POOLED_MAX 4096
#define DL_REPLY_POOL_NODES 2048
#define DL_REPLY_POOL_CLASS_BYTES (64u << 10)

/* For redisReader.fn. */
redisReplyObjectFunctions *dl_reply_fns(void);

/* Frees a reply (and everything under it) made by dl_reply_fns; NULL is fine. */
void dl_reply_free(void *reply);

/* Gives what this thread's pool keeps back to the allocator (at thread exit). */
void dl_reply_pool_drain(void);

/* How many objects (nodes, strings, element arrays) this thread's pool holds now. */
size_t dl_reply_pool_held(void);

#endif
