/* dl_pballoc — a ProtobufCAllocator with a byte budget, on a per-frame arena (dl_arena).
 *
 * protobuf-c sizes its allocations from the input (repeated-field counts, string and bytes
 * lengths, unknown fields). Routing them through this allocator caps what one frame can make the
 * decoder hold: an allocation that would take the bytes charged past the budget fails, protobuf-c
 * then fails the unpack cleanly, and dl_pballoc_exceeded() tells the caller why.
 *
 * Allocations come from an arena and free() is a no-op (DESIGN §7: nothing is malloc'd per
 * message): memory and budget come back together, with dl_pballoc_release (to a mark: one
 * Message after its event is built, a failed unpack before its retry) or dl_pballoc_reset (the
 * whole frame). Each allocation is charged its size plus a small header (as when every block was
 * malloc'd), so the budget is an upper bound of the arena bytes in use. Calling
 * protobuf_c_message_free_unpacked with this allocator stays correct (it frees nothing); it is
 * simply not needed. */
#ifndef DL_PBALLOC_H
#define DL_PBALLOC_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "dl_arena.h"

typedef struct dl_pballoc dl_pballoc;

/* budget: bytes that may be charged at once. The allocator has its own arena until
 * dl_pballoc_use_arena. NULL on allocation failure. */
dl_pballoc *dl_pballoc_new(size_t budget);
void dl_pballoc_free(dl_pballoc *a);
/* Allocate from arena (shared, e.g. by every decoder of one thread; not owned) instead of the own
 * one. Call between frames: what was allocated before is gone. NULL: back to the own arena. */
void dl_pballoc_use_arena(dl_pballoc *a, dl_arena *arena);

/* The allocator to pass to *__unpack() (and, harmlessly, *__free_unpacked()); valid while a
 * lives. */
ProtobufCAllocator *dl_pballoc_allocator(dl_pballoc *a);

/* Start of a frame: everything allocated is released (the arena is reset), the exceeded flag and
 * the peak cleared. */
void dl_pballoc_reset(dl_pballoc *a);

typedef struct dl_pballoc_mark {
  dl_arena_mark m;
  size_t in_use;
} dl_pballoc_mark;
dl_pballoc_mark dl_pballoc_get_mark(const dl_pballoc *a);
/* Releases (memory and budget) everything allocated since the mark. */
void dl_pballoc_release(dl_pballoc *a, dl_pballoc_mark m);

/* 1 when an allocation was refused since the last reset. */
int dl_pballoc_exceeded(const dl_pballoc *a);
/* Allocations refused since creation (monotonic: compare before/after one unpack). */
size_t dl_pballoc_refusals(const dl_pballoc *a);
/* Bytes charged now (since the reset, less what was released), and their high-water mark. */
size_t dl_pballoc_in_use(const dl_pballoc *a);
size_t dl_pballoc_peak(const dl_pballoc *a);

#endif
