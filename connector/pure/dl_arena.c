#include "dl_arena.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define DL_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DL_ARENA_ASAN 1
#endif
#endif
#ifdef DL_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The first block; later ones double up to the max (a real frame's messages fit the first). */
#define DL_ARENA_FIRST_BLOCK (32u << 10)
#define DL_ARENA_MAX_BLOCK (1u << 20)
#define ALIGN (alignof(max_align_t))

struct dl_arena_block {
  dl_arena_block *next;
  size_t size; /* bytes of data */
  size_t used;
  max_align_t data[];
};

void dl_arena_init(dl_arena *a, size_t retain) {
  a->head = a->cur = NULL;
  a->retain = retain ? retain : DL_ARENA_DEFAULT_RETAIN;
  a->held = 0;
  a->blocks_made = 0;
  a->first_size = 0;
}

static void free_all(dl_arena *a);

void dl_arena_fini(dl_arena *a) { free_all(a); }

static dl_arena_block *new_block(dl_arena *a, size_t need) {
  size_t size = a->cur ? a->cur->size * 2 : a->first_size ? a->first_size : DL_ARENA_FIRST_BLOCK;
  if (size > DL_ARENA_MAX_BLOCK && size > a->first_size) size = DL_ARENA_MAX_BLOCK;
  if (size < need) size = need;
  if (size > SIZE_MAX - sizeof(dl_arena_block)) return NULL;
  dl_arena_block *b = malloc(sizeof *b + size);
  if (!b) return NULL;
  b->next = NULL;
  b->size = size;
  b->used = 0;
  POISON(b->data, size);
  a->held += size;
  a->blocks_made++;
  return b;
}

void *dl_arena_alloc(dl_arena *a, size_t size) {
  if (size > SIZE_MAX - 2 * ALIGN) return NULL;
  size_t need = size ? (size + ALIGN - 1) & ~(ALIGN - 1) : ALIGN;
  if (!a->cur) { /* nothing yet, or everything was released at a reset without blocks kept */
    if (!a->head && !(a->head = new_block(a, need))) return NULL;
    a->cur = a->head;
    a->cur->used = 0;
  }
  while (a->cur->size - a->cur->used < need) {
    dl_arena_block *n = a->cur->next;
    if (!n || n->size < need) { /* a block of its own, put before the smaller kept one */
      dl_arena_block *b = new_block(a, need);
      if (!b) return NULL;
      b->next = n;
      a->cur->next = b;
      n = b;
    }
    a->cur = n;
    a->cur->used = 0;
  }
  void *p = (char *)a->cur->data + a->cur->used;
  a->cur->used += need;
  UNPOISON(p, size ? size : 1);
  return p;
}

dl_arena_mark dl_arena_get_mark(const dl_arena *a) {
  dl_arena_mark m = {a->cur, a->cur ? a->cur->used : 0};
  return m;
}

void dl_arena_release(dl_arena *a, dl_arena_mark m) {
  if (!m.blk) { /* marked before the first allocation */
    dl_arena_reset(a);
    return;
  }
  for (dl_arena_block *b = m.blk; b; b = b->next) {
    size_t from = b == m.blk ? m.used : 0;
    if (b == m.blk || b->used) POISON((char *)b->data + from, b->size - from);
    if (b != m.blk) b->used = 0;
    if (b == a->cur) break;
  }
  m.blk->used = m.used;
  a->cur = m.blk;
}

static void free_all(dl_arena *a) {
  dl_arena_block *b = a->head;
  while (b) {
    dl_arena_block *n = b->next;
    UNPOISON(b->data, b->size);
    free(b);
    b = n;
  }
  a->head = a->cur = NULL;
  a->held = 0;
}

void dl_arena_reset(dl_arena *a) {
  if (a->cur && a->cur != a->head) {
    /* the frame spilled over several blocks: one block of their size next time (bounded) */
    size_t total = 0;
    for (dl_arena_block *b = a->head; b; b = b->next) total += b->size;
    free_all(a);
    a->first_size = total < a->retain ? total : a->retain;
    return;
  }
  size_t kept = 0;
  dl_arena_block **link = &a->head;
  while (*link) {
    dl_arena_block *b = *link;
    if (kept + b->size <= a->retain) {
      kept += b->size;
      POISON(b->data, b->size);
      b->used = 0;
      link = &b->next;
      continue;
    }
    *link = b->next; /* over the cap: back to the system */
    a->held -= b->size;
    UNPOISON(b->data, b->size);
    free(b);
  }
  a->cur = a->head;
}
