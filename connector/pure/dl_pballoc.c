#include "dl_pballoc.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* What each allocation is charged beyond its size: the header every block carried when they were
 * malloc'd one by one (so budgets keep their meaning), which also covers the arena's rounding. */
#define DL_PBALLOC_CHARGE (sizeof(max_align_t))

struct dl_pballoc {
  ProtobufCAllocator pc; /* first member: allocator_data points back at this struct */
  dl_arena own;
  dl_arena *arena;       /* &own or a shared one */
  size_t budget;
  size_t in_use;
  size_t peak;
  int exceeded;
  size_t refusals;
};

static void *pballoc_alloc(void *data, size_t size) {
  dl_pballoc *a = data;
  if (size > SIZE_MAX - DL_PBALLOC_CHARGE) goto refuse;
  size_t total = size + DL_PBALLOC_CHARGE;
  if (total > a->budget - a->in_use) goto refuse;
  void *p = dl_arena_alloc(a->arena, size);
  if (!p) return NULL;
  a->in_use += total;
  if (a->in_use > a->peak) a->peak = a->in_use;
  return p;
refuse:
  a->exceeded = 1;
  a->refusals++;
  return NULL;
}

static void pballoc_free(void *data, void *ptr) {
  (void)data; /* the arena takes everything back at a release or reset */
  (void)ptr;
}

dl_pballoc *dl_pballoc_new(size_t budget) {
  dl_pballoc *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->pc.alloc = pballoc_alloc;
  a->pc.free = pballoc_free;
  a->pc.allocator_data = a;
  a->budget = budget;
  dl_arena_init(&a->own, 0);
  a->arena = &a->own;
  return a;
}

void dl_pballoc_free(dl_pballoc *a) {
  if (!a) return;
  dl_arena_fini(&a->own);
  free(a);
}

void dl_pballoc_use_arena(dl_pballoc *a, dl_arena *arena) {
  a->arena = arena ? arena : &a->own;
  if (arena) dl_arena_fini(&a->own);
  a->in_use = 0;
}

ProtobufCAllocator *dl_pballoc_allocator(dl_pballoc *a) { return &a->pc; }

void dl_pballoc_reset(dl_pballoc *a) {
  dl_arena_reset(a->arena);
  a->in_use = 0;
  a->exceeded = 0;
  a->peak = 0;
}

dl_pballoc_mark dl_pballoc_get_mark(const dl_pballoc *a) {
  dl_pballoc_mark m = {dl_arena_get_mark(a->arena), a->in_use};
  return m;
}

void dl_pballoc_release(dl_pballoc *a, dl_pballoc_mark m) {
  dl_arena_release(a->arena, m.m);
  a->in_use = m.in_use;
}

int dl_pballoc_exceeded(const dl_pballoc *a) { return a->exceeded; }
size_t dl_pballoc_refusals(const dl_pballoc *a) { return a->refusals; }
size_t dl_pballoc_in_use(const dl_pballoc *a) { return a->in_use; }
size_t dl_pballoc_peak(const dl_pballoc *a) { return a->peak; }
