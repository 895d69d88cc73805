#include "dl_pballoc.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Each block carries its size in front so free() can give the bytes back to the budget; the
 * header is a max_align_t so the payload keeps malloc's alignment. */
typedef union block_hdr {
  size_t size;
  max_align_t align;
} block_hdr;

struct dl_pballoc {
  ProtobufCAllocator pc; /* first member: allocator_data points back at this struct */
  size_t budget;
  size_t in_use;
  size_t peak;
  int exceeded;
  size_t refusals;
};

static void *pballoc_alloc(void *data, size_t size) {
  dl_pballoc *a = data;
  if (size > SIZE_MAX - sizeof(block_hdr)) goto refuse;
  size_t total = size + sizeof(block_hdr);
  if (total > a->budget - a->in_use) goto refuse;
  block_hdr *h = malloc(total);
  if (!h) return NULL;
  h->size = total;
  a->in_use += total;
  if (a->in_use > a->peak) a->peak = a->in_use;
  return h + 1;
refuse:
  a->exceeded = 1;
  a->refusals++;
  return NULL;
}

static void pballoc_free(void *data, void *ptr) {
  dl_pballoc *a = data;
  if (!ptr) return;
  block_hdr *h = (block_hdr *)ptr - 1;
  a->in_use -= h->size;
  free(h);
}

dl_pballoc *dl_pballoc_new(size_t budget) {
  dl_pballoc *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->pc.alloc = pballoc_alloc;
  a->pc.free = pballoc_free;
  a->pc.allocator_data = a;
  a->budget = budget;
  return a;
}

void dl_pballoc_free(dl_pballoc *a) { free(a); }

ProtobufCAllocator *dl_pballoc_allocator(dl_pballoc *a) { return &a->pc; }

void dl_pballoc_reset(dl_pballoc *a) {
  a->exceeded = 0;
  a->peak = a->in_use;
}

int dl_pballoc_exceeded(const dl_pballoc *a) { return a->exceeded; }
size_t dl_pballoc_refusals(const dl_pballoc *a) { return a->refusals; }
size_t dl_pballoc_in_use(const dl_pballoc *a) { return a->in_use; }
size_t dl_pballoc_peak(const dl_pballoc *a) { return a->peak; }
