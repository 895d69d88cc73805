#include "dl_seen.h"

#include <stdlib.h>

/* Starting sizes: most rooms of a big pool are quiet; the set doubles as ids arrive. */
#define DL_SEEN_MIN_RING 32
/* Open addressing stays fast while the table is at most half full. */
#define DL_SEEN_LOAD_DEN 2

struct dl_seen {
  size_t max;           /* ids kept */
  uint64_t *ring;       /* insertion order, for eviction */
  size_t ring_cap, head, len;
  uint64_t *tab;        /* open addressing, 0 = empty (0 is never a msg_id we keep) */
  size_t tab_cap;       /* power of two */
};

static size_t slot_of(uint64_t id, size_t cap) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdULL;
  id ^= id >> 33;
  return (size_t)id & (cap - 1);
}

dl_seen *dl_seen_new(size_t max) {
  dl_seen *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->max = max ? max : 1;
  return s;
}

void dl_seen_free(dl_seen *s) {
  if (!s) return;
  free(s->ring);
  free(s->tab);
  free(s);
}

int dl_seen_has(const dl_seen *s, uint64_t id) {
  if (!id || !s->tab) return 0;
  for (size_t i = slot_of(id, s->tab_cap);; i = (i + 1) & (s->tab_cap - 1)) {
    if (s->tab[i] == id) return 1;
    if (!s->tab[i]) return 0;
  }
}

static void tab_put(uint64_t *tab, size_t cap, uint64_t id) {
  size_t i = slot_of(id, cap);
  while (tab[i] && tab[i] != id) i = (i + 1) & (cap - 1);
  tab[i] = id;
}

/* Deletion with backward shift (no tombstones): the probe chains stay intact. */
static void tab_del(dl_seen *s, uint64_t id) {
  size_t m = s->tab_cap - 1, i = slot_of(id, s->tab_cap);
  while (s->tab[i] != id) {
    if (!s->tab[i]) return;
    i = (i + 1) & m;
  }
  size_t j = i;
  for (;;) {
    j = (j + 1) & m;
    if (!s->tab[j]) break;
    size_t k = slot_of(s->tab[j], s->tab_cap);
    /* move s->tab[j] into the hole at i unless its home k lies cyclically in (i, j] */
    if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
      s->tab[i] = s->tab[j];
      i = j;
    }
  }
  s->tab[i] = 0;
}

static dl_err grow(dl_seen *s) {
  size_t nring = s->ring_cap ? s->ring_cap * 2 : DL_SEEN_MIN_RING;
  if (nring > s->max) nring = s->max;
  size_t ntab = 1;
  while (ntab < nring * DL_SEEN_LOAD_DEN) ntab <<= 1;
  uint64_t *ring = malloc(nring * sizeof *ring), *tab = calloc(ntab, sizeof *tab);
  if (!ring || !tab) {
    free(ring);
    free(tab);
    return DL_ENOMEM;
  }
  for (size_t i = 0; i < s->len; i++) {
    ring[i] = s->ring[(s->head + i) % s->ring_cap];
    tab_put(tab, ntab, ring[i]);
  }
  free(s->ring);
  free(s->tab);
  s->ring = ring;
  s->ring_cap = nring;
  s->head = 0;
  s->tab = tab;
  s->tab_cap = ntab;
  return DL_EOK;
}

dl_err dl_seen_insert(dl_seen *s, uint64_t id, int *present) {
  if (present) *present = 0;
  if (!id) return DL_EOK;
  size_t home = 0; /* id's slot, hashed once (again only if the table grows) */
  if (s->tab) {
    home = slot_of(id, s->tab_cap);
    for (size_t i = home; s->tab[i]; i = (i + 1) & (s->tab_cap - 1))
      if (s->tab[i] == id) {
        if (present) *present = 1;
        return DL_EOK;
      }
  }
  if (s->len == s->ring_cap && s->ring_cap < s->max) {
    dl_err e = grow(s);
    if (e != DL_EOK) return e;
    home = slot_of(id, s->tab_cap);
  }
  if (s->len == s->ring_cap) { /* full at max: evict the oldest */
    tab_del(s, s->ring[s->head]);
    s->head = (s->head + 1) % s->ring_cap;
    s->len--;
  }
  s->ring[(s->head + s->len) % s->ring_cap] = id;
  s->len++;
  /* id is not in the table: the first empty slot from its home (eviction may have moved it) */
  size_t i = home;
  while (s->tab[i]) i = (i + 1) & (s->tab_cap - 1);
  s->tab[i] = id;
  return DL_EOK;
}

dl_err dl_seen_add(dl_seen *s, uint64_t id) { return dl_seen_insert(s, id, NULL); }

size_t dl_seen_len(const dl_seen *s) { return s->len; }

size_t dl_seen_bytes(const dl_seen *s) { return sizeof *s + (s->ring_cap + s->tab_cap) * sizeof(uint64_t); }

uint64_t dl_seen_parse_id(const char *p, size_t n) {
  if (!n || n > 20) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  return v;
}
