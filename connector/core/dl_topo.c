#include "dl_topo.h"

#include <stdio.h>
#include <string.h>

#include "dl_keys.h"

/* A decimal number of 1..max digits' worth, in [lo, hi]; -1 when anything else. */
static long long num(const char *s, size_t n, long long lo, long long hi) {
  if (n == 0 || n > 10) return -1;
  long long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v < lo || v > hi ? -1 : v;
}

static int host_ok(const char *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '@' || h[i] == 0x7f) return 0;
  return 1;
}

int dl_topo_hostport(const char *s, size_t len, char *host, size_t cap, int *port) {
  const char *colon = NULL;
  for (size_t i = len; i > 0; i--)
    if (s[i - 1] == ':') {
      colon = s + i - 1;
      break;
    }
  if (!colon || !cap) return -1;
  long long p = num(colon + 1, len - (size_t)(colon + 1 - s), 1, 65535);
  if (p < 0) return -1;
  const char *h = s;
  size_t hl = (size_t)(colon - s);
  if (hl && h[0] == '[') { /* "[v6]:port" */
    if (hl < 2 || h[hl - 1] != ']') return -1;
    h++;
    hl -= 2;
  }
  if (hl == 1 && h[0] == '?') hl = 0; /* Redis 7: "unknown endpoint", i.e. the node asked */
  if (hl >= cap || !host_ok(h, hl)) return -1;
  memcpy(host, h, hl);
  host[hl] = 0;
  *port = (int)p;
  return 0;
}

int dl_redirect_parse(const char *err, int *ask, unsigned *slot, char *host, size_t cap, int *port) {
  if (!err) return -1;
  const char *p;
  if (!strncmp(err, "MOVED ", 6)) *ask = 0, p = err + 6;
  else if (!strncmp(err, "ASK ", 4)) *ask = 1, p = err + 4;
  else return -1;
  const char *sp = strchr(p, ' ');
  if (!sp) return -1;
  long long s = num(p, (size_t)(sp - p), 0, DL_SLOTS - 1);
  if (s < 0) return -1;
  *slot = (unsigned)s;
  return dl_topo_hostport(sp + 1, strlen(sp + 1), host, cap, port);
}

int dl_redirect_target(const char *err, char *out, size_t cap) {
  char host[256];
  int ask, port;
  unsigned slot;
  if (dl_redirect_parse(err, &ask, &slot, host, sizeof host, &port) != 0) return -1;
  int n = snprintf(out, cap, "%s:%d", host, port);
  if (n < 0 || (size_t)n >= cap) {
    if (cap) out[0] = 0;
    return -1;
  }
  return 0;
}

static int is_str(const redisReply *r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

/* One range of a CLUSTER SLOTS reply, checked; -1 when malformed. */
static int slot_range(const redisReply *e, dl_topo_range *out) {
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3) return -1;
  const redisReply *lo = e->element[0], *hi = e->element[1], *m = e->element[2];
  if (!lo || !hi || !m || lo->type != REDIS_REPLY_INTEGER || hi->type != REDIS_REPLY_INTEGER ||
      m->type != REDIS_REPLY_ARRAY || m->elements < 2 || !is_str(m->element[0]) || !m->element[1] ||
      m->element[1]->type != REDIS_REPLY_INTEGER)
    return -1;
  if (lo->integer < 0 || hi->integer >= DL_SLOTS || lo->integer > hi->integer) return -1;
  long long port = m->element[1]->integer;
  const redisReply *h = m->element[0];
  if (port < 1 || port > 65535 || h->len >= 256 || strlen(h->str) != h->len || !host_ok(h->str, h->len)) return -1;
  *out = (dl_topo_range){(unsigned)lo->integer, (unsigned)hi->integer, strcmp(h->str, "?") ? h->str : "", (int)port};
  return 0;
}

int dl_topo_slots(const redisReply *r, int (*each)(void *ud, const dl_topo_range *rg), void *ud) {
  if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements || r->elements > DL_SLOTS) return -1;
  dl_topo_range rg;
  for (size_t i = 0; i < r->elements; i++)
    if (slot_range(r->element[i], &rg) != 0) return -1;
  for (size_t i = 0; i < r->elements && each; i++) {
    slot_range(r->element[i], &rg);
    if (each(ud, &rg) != 0) return -1;
  }
  return (int)r->elements;
}

int dl_topo_master_addr(const redisReply *r, char *host, size_t cap, int *port) {
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) || !is_str(r->element[1]))
    return -1;
  const redisReply *h = r->element[0], *p = r->element[1];
  long long pv = num(p->str, p->len, 1, 65535);
  if (pv < 0 || !h->len || h->len >= cap || strlen(h->str) != h->len || !host_ok(h->str, h->len)) return -1;
  memcpy(host, h->str, h->len + 1);
  *port = (int)pv;
  return 0;
}

int dl_topo_role_is_master(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ARRAY && r->elements && is_str(r->element[0]) &&
         !strcmp(r->element[0]->str, "master");
}
