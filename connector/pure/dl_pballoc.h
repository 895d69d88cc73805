/* dl_pballoc — a ProtobufCAllocator with a byte budget.
 *
 * protobuf-c sizes its allocations from the input (repeated-field counts, string and bytes
 * lengths, unknown fields). Routing them through this allocator caps what one frame can make the
 * decoder hold: an allocation that would take the bytes in use past the budget fails, protobuf-c
 * then fails the unpack cleanly, and dl_pballoc_exceeded() tells the caller why. */
#ifndef DL_PBALLOC_H
#define DL_PBALLOC_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct dl_pballoc dl_pballoc;

/* budget: bytes that may be in use at once (payload + a small per-allocation header). NULL on
 * allocation failure. */
dl_pballoc *dl_pballoc_new(size_t budget);
void dl_pballoc_free(dl_pballoc *a);

/* The allocator to pass to *__unpack() and *__free_unpacked(); valid while a lives. */
ProtobufCAllocator *dl_pballoc_allocator(dl_pballoc *a);

/* Clears the exceeded flag and the peak (call at the start of each frame). */
void dl_pballoc_reset(dl_pballoc *a);
/* 1 when an allocation was refused since the last reset. */
int dl_pballoc_exceeded(const dl_pballoc *a);
/* Allocations refused since creation (monotonic: compare before/after one unpack). */
size_t dl_pballoc_refusals(const dl_pballoc *a);
size_t dl_pballoc_in_use(const dl_pballoc *a);
size_t dl_pballoc_peak(const dl_pballoc *a);

#endif
