#include "dl_proxypool.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A --proxy-file line past this is not a proxy URL (DL_PROXY_URL_MAX plus blanks and a comment). */
#define DL_PROXY_LINE_MAX 2048

typedef struct entry {
  dl_proxy_url u;
  int in_rotation;
  unsigned pins;        /* rooms pinned to it; an entry outside the rotation lives while pins or
                           rooms hold it, then its slot is free for the next assignment proxy */
  uint64_t id;          /* unique over the pool's life: tells a reused slot from its last tenant */
  int fails;            /* failures in a row */
  int64_t cool_until;   /* set aside until (monotonic ms); 0 never */
  int64_t cool_ms;      /* the next cooling period */
  uint64_t rooms, failures, set_asides;
} entry;

typedef struct pin {
  char live_id[DL_PROXYPOOL_LIVE_ID_MAX];
  int idx;
} pin;

struct dl_proxypool {
  pthread_mutex_t mu;
  entry *e[DL_PROXYPOOL_MAX]; /* NULL: a free slot */
  size_t n, rotation;         /* n: slots ever used (the free ones among them are NULL) */
  uint64_t ids;
  pin *pins;            /* unordered; a linear scan per resolve or connect, never per frame */
  size_t npins, pins_cap;
};

dl_proxypool *dl_proxypool_new(void) {
  dl_proxypool *p = calloc(1, sizeof *p);
  if (p) pthread_mutex_init(&p->mu, NULL);
  return p;
}

void dl_proxypool_free(dl_proxypool *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++) {
    if (p->e[i]) memset(&p->e[i]->u, 0, sizeof p->e[i]->u); /* credentials */
    free(p->e[i]);
  }
  free(p->pins);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

static int same(const dl_proxy_url *a, const dl_proxy_url *b) {
  return a->port == b->port && !strcasecmp(a->host, b->host) && !strcmp(a->user, b->user) &&
         !strcmp(a->pass, b->pass);
}

/* A label unique among the held proxies: one gateway, several accounts (providers pick the egress
 * address by user name) get "host:port", "host:port#2", … for /metrics. Under the lock. */
static void unique_label(dl_proxypool *p, dl_proxy_url *u) {
  size_t l = strlen(u->label);
  for (unsigned k = 2, taken = 1; taken && k < DL_PROXYPOOL_MAX + 2; k++) {
    taken = 0;
    for (size_t i = 0; i < p->n && !taken; i++) taken = p->e[i] && !strcmp(p->e[i]->u.label, u->label);
    if (taken && l + 12 < sizeof u->label) snprintf(u->label + l, sizeof u->label - l, "#%u", k);
  }
}

/* dl_proxypool_add under the lock; pinned 1 also counts one more room pinned to the entry. */
static int add_locked(dl_proxypool *p, const dl_proxy_url *url, int in_rotation, int pinned, char *why, size_t cap) {
  size_t slot = p->n;
  for (size_t i = 0; i < p->n; i++) {
    if (!p->e[i]) {
      if (slot == p->n) slot = i; /* the first free slot, unless the proxy is held already */
      continue;
    }
    if (same(&p->e[i]->u, url)) {
      entry *e = p->e[i];
      if (in_rotation && !e->in_rotation) {
        e->in_rotation = 1;
        p->rotation++;
      }
      e->pins += pinned != 0;
      return (int)i;
    }
  }
  if (slot == DL_PROXYPOOL_MAX) {
    snprintf(why, cap, "more than %d proxies", DL_PROXYPOOL_MAX);
    return -1;
  }
  entry *e = calloc(1, sizeof *e);
  if (!e) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  e->u = *url;
  unique_label(p, &e->u);
  e->in_rotation = in_rotation != 0;
  e->pins = pinned != 0;
  e->id = ++p->ids;
  e->cool_ms = DL_PROXYPOOL_COOL_MS;
  p->e[slot] = e;
  if (slot == p->n) p->n++;
  p->rotation += e->in_rotation;
  return (int)slot;
}

/* An entry outside the rotation that no room pins and no WebSocket uses is dropped. Under the lock. */
static void maybe_drop(dl_proxypool *p, int idx) {
  entry *e = p->e[idx];
  if (e->in_rotation || e->pins || e->rooms) return;
  memset(&e->u, 0, sizeof e->u); /* credentials */
  free(e);
  p->e[idx] = NULL;
}

int dl_proxypool_add(dl_proxypool *p, const char *url, int in_rotation, char *why, size_t cap) {
  dl_proxy_url u;
  if (dl_proxy_url_parse(url, &u, why, cap) != DL_EOK) return -1;
  pthread_mutex_lock(&p->mu);
  int idx = add_locked(p, &u, in_rotation, 0, why, cap);
  pthread_mutex_unlock(&p->mu);
  memset(&u, 0, sizeof u);
  return idx;
}

dl_err dl_proxypool_load(dl_proxypool *p, const char *path, char *why, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(why, cap, "cannot open: %s", strerror(errno));
    return DL_EIO;
  }
  char line[DL_PROXY_LINE_MAX];
  dl_err rc = DL_EOK;
  for (unsigned no = 1; rc == DL_EOK && fgets(line, sizeof line, f); no++) {
    size_t n = strlen(line);
    if (n == sizeof line - 1 && line[n - 1] != '\n') {
      snprintf(why, cap, "line %u: longer than %d bytes", no, DL_PROXY_LINE_MAX - 2);
      rc = DL_EINVAL;
      break;
    }
    char *s = line;
    while (isspace((unsigned char)*s)) s++;
    char *hash = strchr(s, '#');
    if (hash && (hash == s || isspace((unsigned char)hash[-1]))) *hash = 0; /* a comment, not a '#' in a password */
    n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    if (!n) continue;
    char r[200];
    if (dl_proxypool_add(p, s, 1, r, sizeof r) < 0) {
      snprintf(why, cap, "line %u: %s", no, r);
      rc = strstr(r, "more than") ? DL_ELIMIT : DL_EINVAL;
    }
  }
  fclose(f);
  if (rc == DL_EOK && dl_proxypool_rotation(p) == 0) {
    snprintf(why, cap, "no proxy in the file");
    rc = DL_EEMPTY;
  }
  return rc;
}

size_t dl_proxypool_rotation(dl_proxypool *p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->rotation;
  pthread_mutex_unlock(&p->mu);
  return n;
}

/* 64-bit FNV-1a of the room and the proxy label, finished with splitmix64's mixer (FNV alone
 * spreads similar labels such as 10.0.0.1:3128 / 10.0.0.2:3128 poorly in the high bits). */
static uint64_t weight(const char *live_id, const char *label) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char *s = live_id; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  h = (h ^ 0xff) * 0x100000001b3ULL; /* separator: ("12","3") ≠ ("1","23") */
  for (const char *s = label; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

/* Under the lock. */
static pin *find_pin(dl_proxypool *p, const char *live_id) {
  for (size_t i = 0; i < p->npins; i++)
    if (!strcmp(p->pins[i].live_id, live_id)) return &p->pins[i];
  return NULL;
}

int dl_proxypool_pin(dl_proxypool *p, const char *live_id, const dl_proxy_url *u, char *why, size_t cap) {
  if (strlen(live_id) >= DL_PROXYPOOL_LIVE_ID_MAX) {
    snprintf(why, cap, "live_id too long");
    return -1;
  }
  pthread_mutex_lock(&p->mu);
  int idx = -1;
  pin *x = find_pin(p, live_id);
  if (!x && p->npins == p->pins_cap && p->pins_cap < DL_PROXYPOOL_PINS_MAX) {
    size_t nc = p->pins_cap ? p->pins_cap * 2 : 64;
    if (nc > DL_PROXYPOOL_PINS_MAX) nc = DL_PROXYPOOL_PINS_MAX;
    pin *np = realloc(p->pins, nc * sizeof *np);
    if (np) p->pins = np, p->pins_cap = nc;
  }
  if (!x && p->npins == p->pins_cap) snprintf(why, cap, "too many pinned rooms");
  else if ((idx = add_locked(p, u, 0, 1, why, cap)) >= 0) {
    if (x) { /* pinned again: the new proxy holds the room, the old one may go */
      int old = x->idx;
      x->idx = idx;
      p->e[old]->pins--;
      maybe_drop(p, old);
    } else {
      x = &p->pins[p->npins++];
      snprintf(x->live_id, sizeof x->live_id, "%s", live_id);
      x->idx = idx;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return idx;
}

void dl_proxypool_unpin(dl_proxypool *p, const char *live_id) {
  pthread_mutex_lock(&p->mu);
  pin *x = find_pin(p, live_id);
  if (x) {
    int idx = x->idx;
    *x = p->pins[--p->npins];
    p->e[idx]->pins--;
    maybe_drop(p, idx);
  }
  pthread_mutex_unlock(&p->mu);
}

int dl_proxypool_pick(dl_proxypool *p, const char *live_id, int64_t now_ms) {
  pthread_mutex_lock(&p->mu);
  const pin *x = find_pin(p, live_id);
  if (x) {
    int idx = x->idx;
    pthread_mutex_unlock(&p->mu);
    return idx;
  }
  int best = -1, any = -1;
  uint64_t bw = 0, aw = 0;
  for (size_t i = 0; i < p->n; i++) {
    const entry *e = p->e[i];
    if (!e || !e->in_rotation) continue;
    uint64_t w = weight(live_id, e->u.label);
    if (any < 0 || w > aw) any = (int)i, aw = w;
    if (now_ms >= e->cool_until && (best < 0 || w > bw)) best = (int)i, bw = w;
  }
  pthread_mutex_unlock(&p->mu);
  return best >= 0 ? best : any;
}

static entry *at(dl_proxypool *p, int idx) { return idx >= 0 && (size_t)idx < p->n ? p->e[idx] : NULL; }

int dl_proxypool_cooling(dl_proxypool *p, int idx, int64_t now_ms) {
  pthread_mutex_lock(&p->mu);
  const entry *e = at(p, idx);
  int c = e && now_ms < e->cool_until;
  pthread_mutex_unlock(&p->mu);
  return c;
}

int dl_proxypool_lookup(dl_proxypool *p, int idx, dl_proxy_url *out, uint64_t *id) {
  pthread_mutex_lock(&p->mu);
  const entry *e = at(p, idx);
  if (e) *out = e->u;
  if (e && id) *id = e->id;
  pthread_mutex_unlock(&p->mu);
  return e ? 0 : -1;
}

int dl_proxypool_get(dl_proxypool *p, int idx, dl_proxy_url *out) { return dl_proxypool_lookup(p, idx, out, NULL); }

void dl_proxypool_report(dl_proxypool *p, int idx, int ok, int64_t now_ms) {
  pthread_mutex_lock(&p->mu);
  entry *e = at(p, idx);
  if (e && ok) {
    e->fails = 0;
    e->cool_ms = DL_PROXYPOOL_COOL_MS;
  } else if (e) {
    e->failures++;
    if (now_ms >= e->cool_until && ++e->fails >= DL_PROXYPOOL_FAILS) {
      e->fails = 0;
      e->cool_until = now_ms + e->cool_ms;
      e->cool_ms = e->cool_ms * 2 > DL_PROXYPOOL_COOL_MAX_MS ? DL_PROXYPOOL_COOL_MAX_MS : e->cool_ms * 2;
      e->set_asides++;
    }
  }
  pthread_mutex_unlock(&p->mu);
}

void dl_proxypool_move(dl_proxypool *p, int from, int to) {
  if (from == to) return;
  pthread_mutex_lock(&p->mu);
  entry *f = at(p, from), *t = at(p, to);
  if (t) t->rooms++;
  if (f && f->rooms && !--f->rooms) maybe_drop(p, from);
  pthread_mutex_unlock(&p->mu);
}

size_t dl_proxypool_stats(dl_proxypool *p, dl_proxy_stats *out, size_t max, int64_t now_ms) {
  pthread_mutex_lock(&p->mu);
  size_t n = 0;
  for (size_t i = 0; i < p->n; i++) {
    const entry *e = p->e[i];
    if (!e) continue;
    if (n < max) {
      dl_proxy_stats *s = &out[n];
      snprintf(s->label, sizeof s->label, "%s", e->u.label);
      s->in_rotation = e->in_rotation;
      s->rooms = e->rooms;
      s->failures = e->failures;
      s->set_asides = e->set_asides;
      s->cooling = now_ms < e->cool_until;
    }
    n++;
  }
  pthread_mutex_unlock(&p->mu);
  return n;
}
