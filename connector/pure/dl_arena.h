/* dl_arena — a bump allocator for what lives exactly as long as one frame's decoding (protobuf-c
 * messages: DESIGN §7, "protobuf-c on a per-frame arena").
 *
 * Allocation takes the next aligned bytes of the current block; there is no free. dl_arena_mark /
 * dl_arena_release give back everything allocated after the mark (a stack discipline: one
 * Message's unpack is released before the next), dl_arena_reset everything. Blocks are kept for
 * the next frame, so a steady stream of frames allocates nothing; what is held beyond `retain`
 * bytes is returned to the system at the reset, so one huge frame does not pin its memory. A
 * frame that needed several blocks has them merged into one at the reset (up to `retain`), so the
 * next frame of that size needs no new block.
 * Not thread-safe: one user at a time (all the decoders of one thread may share one arena, since a
 * frame's decoding never interleaves with another's).
 * Under AddressSanitizer, released bytes are poisoned: a use after a release or reset is reported
 * like a use after free. */
#ifndef DL_ARENA_H
#define DL_ARENA_H

#include <stddef.h>

typedef struct dl_arena_block dl_arena_block;

typedef struct dl_arena {
  dl_arena_block *head;   /* first block (kept across resets) */
  dl_arena_block *cur;    /* the block being filled */
  size_t retain;          /* bytes of blocks kept at a reset */
  size_t held;            /* bytes of all blocks (capacity) */
  size_t blocks_made;     /* block allocations since init (tests, metrics) */
  size_t first_size;      /* size of the next first block (what the last spilled frame used) */
} dl_arena;

typedef struct dl_arena_mark {
  dl_arena_block *blk;
  size_t used;
} dl_arena_mark;

/* retain 0: DL_ARENA_DEFAULT_RETAIN. */
#define DL_ARENA_DEFAULT_RETAIN (1u << 20)
void dl_arena_init(dl_arena *a, size_t retain);
void dl_arena_fini(dl_arena *a);  /* frees every block */
/* size bytes aligned for any type; NULL when malloc fails (or size is absurd). Never NULL for
 * size 0 unless malloc fails. */
void *dl_arena_alloc(dl_arena *a, size_t size);
dl_arena_mark dl_arena_get_mark(const dl_arena *a);
void dl_arena_release(dl_arena *a, dl_arena_mark m);
/* Everything allocated is gone; blocks up to `retain` bytes are kept for reuse. */
void dl_arena_reset(dl_arena *a);

#endif
