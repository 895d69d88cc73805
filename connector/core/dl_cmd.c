#include "dl_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_json.h"
#include "dl_keys.h"

/* Record layout version: bump on any change (an old spool is then refused, never misread). */
#define DL_CMD_RECORD_VERSION 1
#define F_FORCE 1
#define F_RELEASE 2

/* The plain commands the outbox carries (dl_claims: LREM of our claim, RPUSH of a hand-back,
 * CLIENT UNBLOCK; dl_room: HDEL of `desired`, XADD of a P:rooms entry), their argument counts,
 * and what their first argument must be: a key of our prefix, P:assign, P:rooms, or the word
 * UNBLOCK. Nothing else is ever replayed from a spool (no DEL, no HSET: a record cannot erase or
 * forge a room's keys). */
typedef enum { ARG_KEY, ARG_ASSIGN, ARG_ROOMS, ARG_UNBLOCK } first_arg;
static const struct {
  const char *verb;
  first_arg first;
  int min_args, max_args;
} plain_verbs[] = {
    {"LREM", ARG_KEY, 4, 4},      {"RPUSH", ARG_ASSIGN, 3, 3},   {"HDEL", ARG_KEY, 3, 3},
    {"XADD", ARG_ROOMS, 14, 16},  {"CLIENT", ARG_UNBLOCK, 3, 3},
};

/* Finished commands kept with their buffers for the next ones (DESIGN §7: a room write per room
 * per flush tick would otherwise be a calloc and a chain of reallocs). Per thread: commands are
 * made and freed on the control thread. Bounded in count and in the buffers a kept one holds; in
 * all, by about what the outbox may hold in memory (dl_cmd_pool_bound: 1.5 × --buffer-max-bytes,
 * which counts the bytes the commands hold; their buffers' capacity is more): a blasted room's
 * outbox swings between full and empty, and a pool of a few MiB freed most of what a full one gave
 * back, only to allocate it again. What the pool keeps stays allocated (the worker's memory after
 * a burst is the outbox's bound once more, at most). */
#define CMD_POOL_MAX 1024
#define CMD_POOL_BUF_MAX (1u << 20)   /* a full --batch-max write of rich events is ~300 KB */
#define CMD_POOL_BYTES (4u << 20)     /* all the buffers the pool keeps, unless bound otherwise */
static _Thread_local dl_cmd *cmd_pool[CMD_POOL_MAX];
static _Thread_local size_t cmd_pool_len, cmd_pool_bytes;
static _Thread_local size_t cmd_pool_low; /* the fewest kept since the last decay */
static size_t cmd_pool_cap = CMD_POOL_BYTES; /* set once, before the threads */

void dl_cmd_pool_bound(size_t bytes) {
  cmd_pool_cap = !bytes ? CMD_POOL_BYTES : bytes > SIZE_MAX / 3 * 2 ? SIZE_MAX : bytes + bytes / 2;
}

static dl_cmd *cmd_alloc(dl_cmd_kind kind) {
  dl_cmd *c;
  if (cmd_pool_len) {
    c = cmd_pool[--cmd_pool_len];
    if (cmd_pool_len < cmd_pool_low) cmd_pool_low = cmd_pool_len;
    cmd_pool_bytes -= c->head.cap + c->body.cap;
    dl_buf head = c->head, body = c->body;
    memset(c, 0, sizeof *c);
    c->head = head;
    c->body = body;
  } else {
    if (!(c = calloc(1, sizeof *c))) return NULL;
    dl_buf_init(&c->head, DL_CMD_BYTES_MAX);
    dl_buf_init(&c->body, DL_CMD_BYTES_MAX);
  }
  c->kind = kind;
  return c;
}

void dl_cmd_pool_drain(void) {
  while (cmd_pool_len) {
    dl_cmd *c = cmd_pool[--cmd_pool_len];
    cmd_pool_bytes -= c->head.cap + c->body.cap;
    dl_buf_free(&c->head);
    dl_buf_free(&c->body);
    free(c);
  }
  cmd_pool_low = 0;
}

size_t dl_cmd_pool_decay(void) {
  size_t n = cmd_pool_low < cmd_pool_len ? cmd_pool_low : cmd_pool_len, freed = 0;
  for (size_t i = 0; i < n; i++) {
    dl_cmd *c = cmd_pool[i];
    freed += c->head.cap + c->body.cap;
    dl_buf_free(&c->head);
    dl_buf_free(&c->body);
    free(c);
  }
  memmove(cmd_pool, cmd_pool + n, (cmd_pool_len - n) * sizeof *cmd_pool);
  cmd_pool_len -= n;
  cmd_pool_bytes -= freed;
  cmd_pool_low = cmd_pool_len;
  return freed;
}

dl_cmd *dl_cmd_room_new(const char *live_id, const char *token) {
  if (strlen(live_id) >= DL_CMD_ID_MAX || strlen(token) >= DL_CMD_TOKEN_MAX) return NULL;
  dl_cmd *c = cmd_alloc(DL_CMD_ROOM);
  if (!c) return NULL;
  memcpy(c->live_id, live_id, strlen(live_id) + 1);
  memcpy(c->token, token, strlen(token) + 1);
  return c;
}

/* The numbers of a command (array and bulk lengths, sequence, counts) are formatted by hand: a
 * room write has some thirty of them, and printf's were a visible share of a many-rooms worker.
 * A RESP header: kind ('*' array, '$' bulk), n, CRLF, into hdr (at least 24 bytes); its length. */
static size_t resp_header(char *hdr, char kind, uint64_t n) {
  hdr[0] = kind;
  size_t hl = 1 + dl_json_fmt_u64(hdr + 1, n);
  hdr[hl++] = '\r';
  hdr[hl++] = '\n';
  return hl;
}

static dl_err resp_array(dl_buf *b, uint64_t n) {
  char hdr[24];
  return dl_buf_add(b, hdr, resp_header(hdr, '*', n));
}

dl_err dl_cmd_resp_bulk(dl_buf *b, const void *p, size_t n) {
  char hdr[24];
  size_t hl = resp_header(hdr, '$', n);
  dl_err e = dl_buf_reserve(b, hl + n + 2);
  if (e != DL_EOK) return e;
  dl_buf_add(b, hdr, hl);
  dl_buf_add(b, p, n);
  dl_buf_add(b, "\r\n", 2);
  return DL_EOK;
}

static dl_err bulk(dl_buf *b, const void *p, size_t n) { return dl_cmd_resp_bulk(b, p, n); }

static dl_err bulks(dl_buf *b, const char *s) { return bulk(b, s, strlen(s)); }

dl_err dl_cmd_resp_argv(dl_buf *b, int argc, const char *const *argv, const size_t *lens) {
  if (argc < 0) return DL_EINVAL;
  dl_err e = resp_array(b, (uint64_t)argc);
  for (int i = 0; e == DL_EOK && i < argc; i++) e = bulk(b, argv[i], lens ? lens[i] : strlen(argv[i]));
  return e;
}

static dl_err bulk_u64(dl_buf *b, uint64_t v) {
  char d[24];
  return bulk(b, d, dl_json_fmt_u64(d, v));
}

dl_cmd *dl_cmd_plain_new(int argc, const char *const *argv, const size_t *lens) {
  if (argc < 1 || argc > DL_CMD_PLAIN_ARGS_MAX) return NULL;
  dl_cmd *c = cmd_alloc(DL_CMD_PLAIN);
  if (!c) return NULL;
  for (int i = 0; i < argc; i++) {
    if (bulk(&c->head, argv[i], lens ? lens[i] : strlen(argv[i])) != DL_EOK) {
      dl_cmd_free(c);
      return NULL;
    }
  }
  c->nargs = (uint32_t)argc;
  return c;
}

void dl_cmd_free(dl_cmd *c) {
  while (c) {
    dl_cmd *then = c->then;
    size_t bytes = c->head.cap + c->body.cap;
    if (cmd_pool_len < CMD_POOL_MAX && c->head.cap <= CMD_POOL_BUF_MAX && c->body.cap <= CMD_POOL_BUF_MAX &&
        cmd_pool_bytes <= cmd_pool_cap && bytes <= cmd_pool_cap - cmd_pool_bytes) {
      dl_buf_reset(&c->head);
      dl_buf_reset(&c->body);
      cmd_pool[cmd_pool_len++] = c;
      cmd_pool_bytes += bytes;
    } else {
      dl_buf_free(&c->head);
      dl_buf_free(&c->body);
      free(c);
    }
    c = then;
  }
}

void dl_cmd_reserve(dl_cmd *c, size_t head_bytes, size_t body_bytes) {
  if (head_bytes > CMD_POOL_BUF_MAX) head_bytes = CMD_POOL_BUF_MAX;
  if (body_bytes > CMD_POOL_BUF_MAX) body_bytes = CMD_POOL_BUF_MAX;
  if (head_bytes > c->head.cap) (void)dl_buf_reserve(&c->head, head_bytes - c->head.len);
  if (body_bytes > c->body.cap) (void)dl_buf_reserve(&c->body, body_bytes - c->body.len);
}

dl_err dl_cmd_add_pair(dl_cmd *c, const char *field, const char *value) {
  if (c->kind != DL_CMD_ROOM) return DL_EINVAL;
  size_t mark = c->head.len;
  dl_err e = bulks(&c->head, field);
  if (e == DL_EOK) e = bulks(&c->head, value);
  if (e != DL_EOK) {
    c->head.len = mark;
    return e;
  }
  c->npairs += 2;
  return DL_EOK;
}

dl_err dl_cmd_add_event(dl_cmd *c, const char *type, const char *msg_id, long long ts_ms, const char *json,
                        size_t json_len) {
  if (c->kind != DL_CMD_ROOM) return DL_EINVAL;
  char ts[24];
  size_t tsl = dl_json_fmt_i64(ts, ts_ms);
  size_t mark = c->body.len;
  dl_err e = bulks(&c->body, type);
  if (e == DL_EOK) e = bulks(&c->body, msg_id);
  if (e == DL_EOK) e = bulk(&c->body, ts, tsl);
  if (e == DL_EOK) e = bulk(&c->body, json, json_len);
  if (e != DL_EOK) {
    c->body.len = mark;
    return e;
  }
  c->nevents++;
  return DL_EOK;
}

void dl_cmd_to_orphan(dl_cmd *c) {
  if (c->kind != DL_CMD_ROOM) return;
  c->kind = DL_CMD_ORPHAN;
  dl_buf_free(&c->head);
  c->npairs = 0;
  c->token[0] = 0;
  c->seq = 0;
  c->force = c->release = 0;
  c->expire_s = 0;
}

size_t dl_cmd_bytes(const dl_cmd *c) { return c->head.len + c->body.len; }

int dl_cmd_room_fits(const dl_cmd *c, size_t event_bytes, size_t max_bytes) {
  if (max_bytes > DL_CMD_BYTES_MAX) max_bytes = DL_CMD_BYTES_MAX;
  /* 4 bulk headers of at most 16 bytes each */
  return dl_cmd_bytes(c) + event_bytes + 64 <= max_bytes;
}

dl_err dl_cmd_encode(const dl_cmd *c, const dl_cmd_env *env, dl_buf *out) {
  dl_err e = DL_EOK;
  if (c->kind == DL_CMD_PLAIN) {
    if ((e = resp_array(out, c->nargs)) != DL_EOK) return e;
    return dl_buf_add(out, c->head.p, c->head.len);
  }
  if (c->kind == DL_CMD_ORPHAN) { /* EVALSHA sha 2 events status window maxlen events… */
    char key[2][DL_KEY_MAX], win[24], maxlen[24];
    if (dl_keys_room(key[0], sizeof key[0], env->prefix, c->live_id, DL_RK_EVENTS) < 0 ||
        dl_keys_room(key[1], sizeof key[1], env->prefix, c->live_id, DL_RK_STATUS) < 0)
      return DL_ELIMIT;
    snprintf(win, sizeof win, "%lld", env->dedupe_window);
    snprintf(maxlen, sizeof maxlen, "%lld", env->maxlen);
    if ((e = resp_array(out, 3 + 2 + 2 + 4 * (uint64_t)c->nevents)) || (e = bulks(out, "EVALSHA")) || (e = bulks(out, env->orphan_sha)) ||
        (e = bulks(out, "2")) || (e = bulks(out, key[0])) || (e = bulks(out, key[1])) || (e = bulks(out, win)) ||
        (e = bulks(out, maxlen)))
      return e;
    return dl_buf_add(out, c->body.p, c->body.len);
  }
  return dl_cmd_encode_rooms(&c, 1, env, out);
}

/* One room's ten header strings (room.lua's ARGV layout), then its status pairs and events. */
static dl_err room_args(const dl_cmd *c, const dl_cmd_env *env, const char *maxlen, const char *minid, dl_buf *out) {
  char ttl[24];
  size_t ttll = dl_json_fmt_i64(ttl, c->keep_lease ? 0 : (int64_t)env->lease_ms);
  dl_err e;
  if ((e = bulks(out, c->token)) || (e = bulk(out, ttl, ttll)) || (e = bulk_u64(out, c->seq)) ||
      (e = bulks(out, c->force ? "1" : "0")) || (e = bulks(out, c->skip_trim ? "0" : maxlen)) ||
      (e = bulks(out, c->skip_trim ? "" : minid)) ||
      (e = bulks(out, c->release ? "1" : "0")) || (e = bulk_u64(out, c->expire_s)) ||
      (e = bulk_u64(out, c->npairs)) || (e = bulk_u64(out, c->nevents)))
    return e;
  if ((e = dl_buf_add(out, c->head.p, c->head.len))) return e;
  return dl_buf_add(out, c->body.p, c->body.len);
}

dl_err dl_cmd_encode_rooms(const dl_cmd *const *cs, size_t n, const dl_cmd_env *env, dl_buf *out) {
  /* EVALSHA sha 3n (lease status events)×n (10 header strings, pairs, events)×n */
  static const dl_room_key fence_keys[] = {DL_RK_LEASE, DL_RK_STATUS, DL_RK_EVENTS};
  if (n == 0 || n > DL_CMD_GROUP_MAX) return DL_EINVAL;
  size_t argc = 3 + 3 * n;
  for (size_t i = 0; i < n; i++) {
    if (cs[i]->kind != DL_CMD_ROOM) return DL_EINVAL;
    argc += 10 + cs[i]->npairs + 4 * (size_t)cs[i]->nevents;
  }
  char nk[16], maxlen[24], minid[24] = "";
  snprintf(nk, sizeof nk, "%zu", 3 * n);
  snprintf(maxlen, sizeof maxlen, "%lld", env->maxlen);
  if (env->minid_ms > 0) snprintf(minid, sizeof minid, "%lld", env->minid_ms);
  dl_err e;
  if ((e = resp_array(out, argc)) || (e = bulks(out, "EVALSHA")) || (e = bulks(out, env->room_sha)) || (e = bulks(out, nk)))
    return e;
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 3; k++) {
      char key[DL_KEY_MAX];
      int kl = dl_keys_room(key, sizeof key, env->prefix, cs[i]->live_id, fence_keys[k]);
      if (kl < 0) return DL_ELIMIT;
      if ((e = bulk(out, key, (size_t)kl))) return e;
    }
  for (size_t i = 0; i < n; i++)
    if ((e = room_args(cs[i], env, maxlen, minid, out))) return e;
  return DL_EOK;
}

int dl_cmd_next_arg(const dl_buf *b, size_t *off, const char **p, size_t *len) {
  size_t o = *off;
  if (o >= b->len) return 0;
  if (b->p[o] != '$') return -1;
  size_t n = 0, i = o + 1;
  while (i < b->len && b->p[i] >= '0' && b->p[i] <= '9' && i - o <= 10) n = n * 10 + (size_t)(b->p[i++] - '0');
  if (i == o + 1 || i + 2 > b->len || b->p[i] != '\r' || b->p[i + 1] != '\n') return -1;
  i += 2;
  if (n > b->len - i || b->len - i - n < 2 || b->p[i + n] != '\r' || b->p[i + n + 1] != '\n') return -1;
  *p = (const char *)b->p + i;
  *len = n;
  *off = i + n + 2;
  return 1;
}

/* ---------- spool records ---------- */

dl_err dl_cmd_to_record(const dl_cmd *c, dl_buf *out) {
  size_t idl = strlen(c->live_id), tokl = strlen(c->token);
  uint8_t fixed[4 + 8 + 4 * 4], hdr[4];
  dl_err e;
  uint8_t v[4] = {DL_CMD_RECORD_VERSION, (uint8_t)c->kind,
                  (uint8_t)((c->force ? F_FORCE : 0) | (c->release ? F_RELEASE : 0)), (uint8_t)idl};
  if ((e = dl_buf_add(out, v, 4)) || (e = dl_buf_add(out, c->live_id, idl))) return e;
  uint8_t tl = (uint8_t)tokl;
  if ((e = dl_buf_add(out, &tl, 1)) || (e = dl_buf_add(out, c->token, tokl))) return e;
  for (int i = 0; i < 8; i++) fixed[i] = (uint8_t)(c->seq >> (8 * i));
  dl_le32_put(fixed + 8, c->expire_s);
  dl_le32_put(fixed + 12, c->npairs);
  dl_le32_put(fixed + 16, c->kind == DL_CMD_PLAIN ? c->nargs : c->nevents);
  dl_le32_put(fixed + 20, (uint32_t)c->head.len);
  if ((e = dl_buf_add(out, fixed, 24)) || (e = dl_buf_add(out, c->head.p, c->head.len))) return e;
  dl_le32_put(hdr, (uint32_t)c->body.len);
  if ((e = dl_buf_add(out, hdr, 4))) return e;
  return dl_buf_add(out, c->body.p, c->body.len);
}

#define BAD(...) do { snprintf(why, why_cap, __VA_ARGS__); goto bad; } while (0)

/* Counts the RESP bulk strings of a buffer; -1 when the framing is wrong. */
static long count_args(const dl_buf *b) {
  size_t off = 0, n;
  const char *p;
  long k = 0;
  int r;
  while ((r = dl_cmd_next_arg(b, &off, &p, &n)) == 1) k++;
  return r < 0 ? -1 : k;
}

static int valid_id(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s == '{' || *s == '}' || (unsigned char)*s <= ' ' || *s == 0x7f) return 0;
  return 1;
}

/* "<worker> <epoch>": a worker id (no spaces or braces), one space, digits. */
static int valid_token(const char *s) {
  const char *sp = strchr(s, ' ');
  if (!sp || sp == s || !sp[1]) return 0;
  for (const char *p = s; p < sp; p++)
    if (*p == '{' || *p == '}' || *p == '|' || (unsigned char)*p <= ' ' || *p == 0x7f) return 0;
  for (const char *p = sp + 1; *p; p++)
    if (*p < '0' || *p > '9') return 0;
  return 1;
}

static int same(const char *p, size_t n, const char *s) { return strlen(s) == n && !memcmp(p, s, n); }

static int plain_ok(const dl_cmd *c, const char *prefix, char *why, size_t why_cap) {
  size_t off = 0, vl, kl;
  const char *verb, *key;
  if (dl_cmd_next_arg(&c->head, &off, &verb, &vl) != 1) return snprintf(why, why_cap, "no verb"), 0;
  for (size_t i = 0; i < sizeof plain_verbs / sizeof *plain_verbs; i++) {
    if (!same(verb, vl, plain_verbs[i].verb)) continue;
    if ((int)c->nargs < plain_verbs[i].min_args || (int)c->nargs > plain_verbs[i].max_args)
      return snprintf(why, why_cap, "%s with %u arguments", plain_verbs[i].verb, c->nargs), 0;
    char want[DL_KEY_MAX];
    size_t pl = strlen(prefix);
    int ok = dl_cmd_next_arg(&c->head, &off, &key, &kl) == 1;
    switch (plain_verbs[i].first) {
    case ARG_KEY:
      ok = ok && kl > pl && !memcmp(key, prefix, pl) && key[pl] == ':';
      break;
    case ARG_ASSIGN:
      ok = ok && dl_keys_assign(want, sizeof want, prefix) > 0 && same(key, kl, want);
      break;
    case ARG_ROOMS:
      ok = ok && dl_keys_rooms(want, sizeof want, prefix) > 0 && same(key, kl, want);
      break;
    case ARG_UNBLOCK:
      ok = ok && same(key, kl, "UNBLOCK");
      break;
    }
    if (!ok) return snprintf(why, why_cap, "%s on a key or with a word dylive does not write", plain_verbs[i].verb), 0;
    return 1;
  }
  return snprintf(why, why_cap, "command '%.*s' is not one dylive writes", (int)(vl > 20 ? 20 : vl), verb), 0;
}

dl_err dl_cmd_from_record(const uint8_t *p, size_t n, const char *prefix, dl_cmd **out, char *why, size_t why_cap) {
  const uint8_t *end = p + n;
  dl_cmd *c = NULL;
  *out = NULL;
  if (n > DL_CMD_RECORD_MAX) BAD("record of %zu bytes is over the limit", n);
  if (n < 5) BAD("truncated record");
  if (p[0] != DL_CMD_RECORD_VERSION) BAD("record version %u, expected %u", p[0], DL_CMD_RECORD_VERSION);
  if (p[1] != DL_CMD_ROOM && p[1] != DL_CMD_PLAIN && p[1] != DL_CMD_ORPHAN) BAD("unknown command kind %u", p[1]);
  if (p[2] & ~(F_FORCE | F_RELEASE)) BAD("unknown flags");
  c = cmd_alloc((dl_cmd_kind)p[1]);
  if (!c) BAD("out of memory");
  c->force = (p[2] & F_FORCE) != 0;
  c->release = (p[2] & F_RELEASE) != 0;
  size_t idl = p[3];
  p += 4;
  if (idl >= DL_CMD_ID_MAX || (size_t)(end - p) < idl + 1) BAD("bad live_id length");
  memcpy(c->live_id, p, idl);
  p += idl;
  size_t tokl = *p++;
  if (tokl >= DL_CMD_TOKEN_MAX || (size_t)(end - p) < tokl + 24) BAD("bad token length");
  memcpy(c->token, p, tokl);
  p += tokl;
  if (memchr(c->live_id, 0, idl) || memchr(c->token, 0, tokl)) BAD("NUL in a name");
  for (int i = 0; i < 8; i++) c->seq |= (uint64_t)p[i] << (8 * i);
  c->expire_s = dl_le32_get(p + 8);
  c->npairs = dl_le32_get(p + 12);
  uint32_t count = dl_le32_get(p + 16), headlen = dl_le32_get(p + 20);
  p += 24;
  if ((size_t)(end - p) < (size_t)headlen + 4) BAD("head overruns the record");
  if (dl_buf_add(&c->head, p, headlen) != DL_EOK) BAD("head too large");
  p += headlen;
  uint32_t bodylen = dl_le32_get(p);
  p += 4;
  if ((size_t)(end - p) != bodylen) BAD("body length %u does not match the record", bodylen);
  if (dl_buf_add(&c->body, p, bodylen) != DL_EOK) BAD("body too large");
  long nh = count_args(&c->head), nb = count_args(&c->body);
  if (nh < 0 || nb < 0) BAD("malformed arguments");
  if (c->kind == DL_CMD_ORPHAN) {
    c->nevents = count;
    if (!valid_id(c->live_id) || c->token[0] || c->seq || nh || c->npairs || c->force || c->release) BAD("bad orphan replay");
    if ((uint64_t)nb != 4 * (uint64_t)c->nevents || !c->nevents) BAD("events do not match");
  } else if (c->kind == DL_CMD_ROOM) {
    c->nevents = count;
    if (!valid_id(c->live_id) || !valid_token(c->token)) BAD("bad room or token");
    if (c->seq == 0) BAD("room write without a sequence number");
    if ((uint32_t)nh != c->npairs || c->npairs % 2) BAD("status pairs do not match");
    if ((uint64_t)nb != 4 * (uint64_t)c->nevents) BAD("events do not match");
  } else {
    c->nargs = count;
    if (c->npairs || nb || c->seq || c->force || c->release || (uint32_t)nh != c->nargs) BAD("bad plain command");
    if (!plain_ok(c, prefix, why, why_cap)) goto bad;
  }
  *out = c;
  return DL_EOK;
bad:
  dl_cmd_free(c);
  return DL_EPROTO;
}
