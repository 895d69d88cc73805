#include "dl_gift.h"

#include <stdlib.h>

#define NIL UINT32_MAX
/* Entries are indexed by uint32_t; far above any sane max_gift_streaks. */
/* A room starts with room for this many streaks and doubles on demand: the soak showed an
 * up-front 4096-entry table costing ~288 KiB of resident memory per room, gifts or not. */
#define DL_GIFT_INITIAL 16
#define DL_GIFT_MAX_STREAKS_HARD (1u << 24)

typedef struct entry {
  dl_gift_streak s;
  uint32_t hnext;        /* next in the hash bucket */
  uint32_t prev, next;   /* LRU list: head = most recent */
} entry;

struct dl_gift_tracker {
  entry *e;
  uint32_t *buckets;
  size_t nbuckets;       /* power of two */
  size_t cap, count;
  size_t max_cap;        /* cap grows by doubling up to this (most rooms see few streaks) */
  uint32_t free_head;    /* free entries chained through hnext */
  uint32_t head, tail;
  int64_t ttl_ms;
  uint64_t seed;
  uint64_t evictions;
};

static uint64_t mix(uint64_t x) { /* splitmix64 finalizer */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static size_t bucket_of(const dl_gift_tracker *t, uint64_t u, uint64_t g, uint64_t grp) {
  uint64_t h = mix(t->seed ^ u);
  h = mix(h ^ g);
  h = mix(h ^ grp);
  return (size_t)(h & (t->nbuckets - 1));
}

dl_gift_tracker *dl_gift_new(size_t max_streaks, int64_t ttl_ms) {
  dl_gift_tracker *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  if (max_streaks < 1) max_streaks = 1;
  if (max_streaks > DL_GIFT_MAX_STREAKS_HARD) max_streaks = DL_GIFT_MAX_STREAKS_HARD;
  t->max_cap = max_streaks;
  t->cap = max_streaks < DL_GIFT_INITIAL ? max_streaks : DL_GIFT_INITIAL;
  t->nbuckets = 1;
  while (t->nbuckets < t->cap * 2) t->nbuckets <<= 1;
  t->e = calloc(t->cap, sizeof *t->e);
  t->buckets = malloc(t->nbuckets * sizeof *t->buckets);
  if (!t->e || !t->buckets) {
    dl_gift_free(t);
    return NULL;
  }
  for (size_t i = 0; i < t->nbuckets; i++) t->buckets[i] = NIL;
  for (size_t i = 0; i < t->cap; i++) t->e[i].hnext = i + 1 < t->cap ? (uint32_t)(i + 1) : NIL;
  t->free_head = 0;
  t->head = t->tail = NIL;
  t->ttl_ms = ttl_ms;
  /* Not secret, just not the same for every room: spreads crafted colliding keys. */
  t->seed = mix((uint64_t)(uintptr_t)t);
  return t;
}

void dl_gift_free(dl_gift_tracker *t) {
  if (!t) return;
  free(t->e);
  free(t->buckets);
  free(t);
}

static void lru_unlink(dl_gift_tracker *t, uint32_t i) {
  entry *x = &t->e[i];
  if (x->prev != NIL) t->e[x->prev].next = x->next; else t->head = x->next;
  if (x->next != NIL) t->e[x->next].prev = x->prev; else t->tail = x->prev;
  x->prev = x->next = NIL;
}

static void lru_push_head(dl_gift_tracker *t, uint32_t i) {
  entry *x = &t->e[i];
  x->prev = NIL;
  x->next = t->head;
  if (t->head != NIL) t->e[t->head].prev = i;
  t->head = i;
  if (t->tail == NIL) t->tail = i;
}

static void remove_entry(dl_gift_tracker *t, uint32_t i) {
  entry *x = &t->e[i];
  size_t b = bucket_of(t, x->s.user_id, x->s.gift_id, x->s.group_id);
  uint32_t *pp = &t->buckets[b];
  while (*pp != NIL && *pp != i) pp = &t->e[*pp].hnext;
  if (*pp == i) *pp = x->hnext;
  lru_unlink(t, i);
  x->hnext = t->free_head;
  t->free_head = i;
  t->count--;
}

static void expire(dl_gift_tracker *t, int64_t now_ms) {
  if (t->ttl_ms <= 0) return;
  while (t->tail != NIL && now_ms - t->e[t->tail].s.last_ms > t->ttl_ms)
    remove_entry(t, t->tail);
}

static uint32_t find(const dl_gift_tracker *t, uint64_t u, uint64_t g, uint64_t grp) {
  for (uint32_t i = t->buckets[bucket_of(t, u, g, grp)]; i != NIL; i = t->e[i].hnext) {
    const dl_gift_streak *s = &t->e[i].s;
    if (s->user_id == u && s->gift_id == g && s->group_id == grp) return i;
  }
  return NIL;
}

/* Doubles the table (up to max_cap) and rehashes. Returns 0, or -1 when it cannot grow. */
static int grow(dl_gift_tracker *t) {
  if (t->cap >= t->max_cap) return -1;
  size_t ncap = t->cap * 2 > t->max_cap ? t->max_cap : t->cap * 2;
  size_t nb = 1;
  while (nb < ncap * 2) nb <<= 1;
  entry *ne = realloc(t->e, ncap * sizeof *ne);
  if (!ne) return -1;
  t->e = ne;
  uint32_t *nbk = malloc(nb * sizeof *nbk);
  if (!nbk) return -1; /* e is bigger but still consistent with the old buckets */
  free(t->buckets);
  t->buckets = nbk;
  t->nbuckets = nb;
  for (size_t i = 0; i < nb; i++) t->buckets[i] = NIL;
  for (uint32_t i = t->head; i != NIL; i = t->e[i].next) { /* every live entry, rehashed */
    size_t b = bucket_of(t, t->e[i].s.user_id, t->e[i].s.gift_id, t->e[i].s.group_id);
    t->e[i].hnext = t->buckets[b];
    t->buckets[b] = i;
  }
  for (size_t i = t->cap; i < ncap; i++) t->e[i].hnext = i + 1 < ncap ? (uint32_t)(i + 1) : t->free_head;
  t->free_head = (uint32_t)t->cap;
  t->cap = ncap;
  return 0;
}

/* A fresh entry for the key, growing the table or evicting the least recent one when full. */
static uint32_t insert(dl_gift_tracker *t, uint64_t u, uint64_t g, uint64_t grp) {
  if (t->free_head == NIL && grow(t) != 0) {
    remove_entry(t, t->tail);
    t->evictions++;
  }
  uint32_t i = t->free_head;
  entry *x = &t->e[i];
  t->free_head = x->hnext;
  x->s = (dl_gift_streak){.user_id = u, .gift_id = g, .group_id = grp};
  size_t b = bucket_of(t, u, g, grp);
  x->hnext = t->buckets[b];
  t->buckets[b] = i;
  x->prev = x->next = NIL;
  lru_push_head(t, i);
  t->count++;
  return i;
}

uint64_t dl_gift_delta(dl_gift_tracker *t, const dl_gift_update *up, int64_t now_ms) {
  if (!up->streakable) {
    if (up->repeat_count > 0) return up->repeat_count;
    if (up->group_count > 0) return up->group_count;
    return 1;
  }
  uint64_t running = up->repeat_count > up->combo_count ? up->repeat_count : up->combo_count;
  if (running == 0) running = 1; /* a gift message is at least one gift */

  expire(t, now_ms);
  uint32_t i = find(t, up->user_id, up->gift_id, up->group_id);
  uint64_t delta;
  if (i == NIL) {
    i = insert(t, up->user_id, up->gift_id, up->group_id);
    delta = running;
    t->e[i].s.last_seen = running;
  } else {
    dl_gift_streak *s = &t->e[i].s;
    delta = running > s->last_seen ? running - s->last_seen : 0;
    if (running > s->last_seen) s->last_seen = running;
    lru_unlink(t, i);
    lru_push_head(t, i);
  }
  t->e[i].s.last_ms = now_ms;
  if (up->repeat_end) t->e[i].s.ended = 1;
  return delta;
}

size_t dl_gift_count(const dl_gift_tracker *t) { return t->count; }
uint64_t dl_gift_evictions(const dl_gift_tracker *t) { return t->evictions; }

size_t dl_gift_export(const dl_gift_tracker *t, dl_gift_streak *out, size_t cap) {
  size_t n = 0;
  for (uint32_t i = t->tail; i != NIL && n < cap; i = t->e[i].prev) out[n++] = t->e[i].s;
  return n;
}

dl_err dl_gift_import(dl_gift_tracker *t, const dl_gift_streak *in, size_t n) {
  for (size_t k = 0; k < n; k++) {
    const dl_gift_streak *s = &in[k];
    uint32_t i = find(t, s->user_id, s->gift_id, s->group_id);
    if (i == NIL) {
      i = insert(t, s->user_id, s->gift_id, s->group_id);
      t->e[i].s = *s;
      continue;
    }
    dl_gift_streak *d = &t->e[i].s;
    if (s->last_seen > d->last_seen) d->last_seen = s->last_seen;
    if (s->last_ms > d->last_ms) d->last_ms = s->last_ms;
    d->ended |= s->ended;
    lru_unlink(t, i);
    lru_push_head(t, i);
  }
  return DL_EOK;
}

uint64_t dl_gift_user_key(uint64_t id, const char *nickname, int anonymous) {
  if (!anonymous) return id;
  uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a 64 */
  for (const unsigned char *p = (const unsigned char *)(nickname ? nickname : ""); *p; p++)
    h = (h ^ *p) * UINT64_C(1099511628211);
  return h | (UINT64_C(1) << 63);
}
