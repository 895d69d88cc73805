/* The dashboard's view of the pool, read from Redis alone: rooms from P:rooms and a SCAN of the
 * status hashes, workers from the registry, each rendered as JSON that stays inert in a page. */
#include <stdlib.h>

#include "dl_dashboard_int.h"
#include "dl_utf8.h"

/* A JSON string of s[0..n): invalid UTF-8 becomes U+FFFD, control characters are escaped, and so
 * are < > & and U+2028/9, so the text stays inert wherever a page might put it. */
static void j_str(dbuf *b, const char *s, size_t n) {
  char *fixed = NULL;
  if (!dl_utf8_valid(s, n)) {
    fixed = dl_utf8_sanitize(s, n, &n);
    if (!fixed) {
      b->err = 1;
      return;
    }
    s = fixed;
  }
  db_put(b, "\"", 1);
  size_t run = 0; /* bytes copied through unchanged, flushed in one put */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[8];
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') {
      snprintf(u, sizeof u, "\\u%04x", c);
      esc = u;
    } else if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
               ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
      esc = (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
    }
    if (!esc) {
      run++;
      continue;
    }
    db_put(b, s + i - run, run);
    run = 0;
    db_str(b, esc);
    if (c == 0xe2) i += 2;
  }
  db_put(b, s + n - run, run);
  db_put(b, "\"", 1);
  free(fixed);
}

/* Cuts at most DASH_MAX_FIELD bytes, backing up to a UTF-8 character boundary. */
static size_t field_len(const char *s) {
  size_t n = strnlen(s, DASH_MAX_FIELD + 1);
  if (n <= DASH_MAX_FIELD) return n;
  n = DASH_MAX_FIELD;
  while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
  return n;
}

static void j_key_str(dbuf *b, const char *key, const char *val) {
  db_fmt(b, ",\"%s\":", key);
  j_str(b, val, field_len(val));
}

/* A decimal integer of at most 18 digits (no overflow possible), optionally negative. */
static int parse_ll(const char *s, long long *out) {
  int neg = *s == '-';
  const char *p = s + neg;
  size_t n = strspn(p, "0123456789");
  if (n == 0 || n > 18 || p[n]) return -1;
  *out = strtoll(s, NULL, 10);
  return 0;
}

static void j_key_int(dbuf *b, const char *key, const char *val) {
  long long v;
  if (parse_ll(val, &v) == 0) db_fmt(b, ",\"%s\":%lld", key, v);
  else db_fmt(b, ",\"%s\":null", key);
}

int dash_all_digits(const char *s, size_t max) {
  size_t n = strspn(s, "0123456789");
  return n > 0 && n <= max && !s[n];
}

/* A Redis stream id as the client may send it: "ms" or "ms-seq", each at most 20 digits. */
int dash_valid_stream_id(const char *s) {
  size_t a = strspn(s, "0123456789");
  if (a == 0 || a > 20) return 0;
  if (!s[a]) return 1;
  if (s[a] != '-') return 0;
  size_t b = strspn(s + a + 1, "0123456789");
  return b > 0 && b <= 20 && !s[a + 1 + b];
}


/* ---- Redis ---- */
redisReply *dash_rcall(dash *d, int argc, const char **argv) {
  size_t lens[8];
  if (d->lost || argc > 8) return NULL;
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  redisReply *r = d->cmd(d->rconn, argc, argv, lens);
  if (!r) {
    d->lost = 1;
    snprintf(d->why, d->why_cap, "Redis connection lost");
  }
  return r;
}

int dash_is_str(const redisReply *r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

/* Field of an HGETALL-shaped (flat field/value array) reply, "" when absent. */
static const char *hget(const redisReply *h, const char *field) {
  if (!h || h->type != REDIS_REPLY_ARRAY) return "";
  for (size_t i = 0; i + 1 < h->elements; i += 2)
    if (dash_is_str(h->element[i]) && dash_is_str(h->element[i + 1]) && !strcmp(h->element[i]->str, field))
      return h->element[i + 1]->str;
  return "";
}

static int room_cmp(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  return la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
}

/* The room with that id, created when missing (NULL past DASH_MAX_ROOMS or out of memory). */
static room *room_get(dash *d, const char *id) {
  size_t lo = 0, hi = d->nrooms;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = room_cmp(d->rooms[mid]->id, id);
    if (c == 0) return d->rooms[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  if (d->nrooms >= DASH_MAX_ROOMS) {
    d->rooms_over_cap++;
    return NULL;
  }
  room *r = calloc(1, sizeof *r);
  room **grown = realloc(d->rooms, (d->nrooms + 1) * sizeof *grown);
  if (!r || !grown) {
    free(r);
    if (grown) d->rooms = grown;
    return NULL;
  }
  d->rooms = grown;
  snprintf(r->id, sizeof r->id, "%s", id);
  memmove(d->rooms + lo + 1, d->rooms + lo, (d->nrooms - lo) * sizeof *d->rooms);
  d->rooms[lo] = r;
  d->nrooms++;
  return r;
}

void dash_room_free(room *r) {
  if (r->status) freeReplyObject(r->status);
  free(r->s_error);
  free(r);
}

/* P:rooms, from where the last refresh stopped: each entry updates its room's lifecycle view. */
static void read_rooms_stream(dash *d) {
  char key[DASH_MAX_KEY], count[16];
  snprintf(key, sizeof key, "%s:rooms", d->prefix);
  snprintf(count, sizeof count, "%d", DASH_ROOMS_PAGE);
  for (int page = 0; page < DASH_ROOMS_PAGES; page++) {
    const char *argv[] = {"XRANGE", key, d->rooms_pos, "+", "COUNT", count};
    redisReply *r = dash_rcall(d, 6, argv);
    if (!r) return;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0; /* WRONGTYPE etc.: nothing to learn */
    for (size_t i = 0; i < n; i++) {
      redisReply *e = r->element[i];
      if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !dash_is_str(e->element[0]) ||
          !dash_valid_stream_id(e->element[0]->str))
        continue;
      snprintf(d->rooms_pos, sizeof d->rooms_pos, "(%s", e->element[0]->str);
      const redisReply *f = e->element[1];
      const char *id = hget(f, "live_id");
      if (!dash_all_digits(id, DASH_MAX_LIVE_ID)) continue;
      room *rm = room_get(d, id);
      if (!rm) continue;
      rm->in_stream = 1;
      snprintf(rm->s_state, sizeof rm->s_state, "%s", hget(f, "state"));
      snprintf(rm->s_worker, sizeof rm->s_worker, "%s", hget(f, "worker"));
      snprintf(rm->s_ts, sizeof rm->s_ts, "%s", hget(f, "ts_ms"));
      free(rm->s_error);
      const char *err = hget(f, "error");
      rm->s_error = strndup(err, field_len(err));
    }
    freeReplyObject(r);
    if (n < DASH_ROOMS_PAGE) return;
  }
}

/* Status hashes by SCAN: the fallback for workers that do not write P:rooms. A pass starts at
 * most every DASH_SCAN_EVERY_MS and takes DASH_SCAN_CALLS calls per refresh at most. */
static void scan_status(dash *d, int64_t now) {
  if (!d->scanning) {
    if (now < d->next_scan_ms) return;
    d->scanning = 1;
    snprintf(d->scan_cursor, sizeof d->scan_cursor, "0");
  }
  char count[16];
  snprintf(count, sizeof count, "%d", DASH_SCAN_COUNT);
  size_t plen = strlen(d->prefix);
  for (int call = 0; call < DASH_SCAN_CALLS; call++) {
    const char *argv[] = {"SCAN", d->scan_cursor, "MATCH", d->match, "COUNT", count};
    redisReply *r = dash_rcall(d, 6, argv);
    if (!r) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !dash_is_str(r->element[0]) ||
        r->element[1]->type != REDIS_REPLY_ARRAY || strlen(r->element[0]->str) >= sizeof d->scan_cursor) {
      freeReplyObject(r);
      d->scanning = 0;
      d->next_scan_ms = now + DASH_SCAN_EVERY_MS;
      return;
    }
    snprintf(d->scan_cursor, sizeof d->scan_cursor, "%s", r->element[0]->str);
    const redisReply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      if (!dash_is_str(keys->element[i])) continue;
      const char *k = keys->element[i]->str;
      size_t kl = strlen(k), sl = strlen("}:status");
      if (kl < plen + 2 + sl || strncmp(k, d->prefix, plen) || strncmp(k + plen, ":{", 2)) continue;
      char id[DASH_MAX_LIVE_ID + 1];
      size_t idl = kl - plen - 2 - sl;
      if (idl == 0 || idl > DASH_MAX_LIVE_ID) continue;
      memcpy(id, k + plen + 2, idl);
      id[idl] = 0;
      if (dash_all_digits(id, DASH_MAX_LIVE_ID)) room_get(d, id);
    }
    freeReplyObject(r);
    if (!strcmp(d->scan_cursor, "0")) {
      d->scanning = 0;
      d->next_scan_ms = now + DASH_SCAN_EVERY_MS;
      return;
    }
  }
}

static void room_sample(room *rm, int64_t now) {
  long long ev;
  if (parse_ll(hget(rm->status, "events"), &ev) != 0) return;
  if (rm->prev_ms && now - rm->prev_ms >= DASH_EPS_MIN_DT_MS) {
    long long grew = ev > rm->prev_events ? ev - rm->prev_events : 0; /* a reset counter is 0, not < 0 */
    rm->eps = (double)grew * 1000.0 / (double)(now - rm->prev_ms);
    if (rm->hist_n == DASH_EPS_HISTORY) memmove(rm->hist, rm->hist + 1, sizeof rm->hist - sizeof rm->hist[0]);
    else rm->hist_n++;
    rm->hist[rm->hist_n - 1] = rm->eps;
  } else if (rm->prev_ms) {
    return; /* too soon for a meaningful rate: keep the older sample */
  }
  rm->prev_events = ev;
  rm->prev_ms = now;
}

/* Brings the room table up to date: P:rooms, SCAN, then one HGETALL per room. A room that has
 * neither a status hash nor a P:rooms entry any more is dropped. */
void dash_refresh_rooms(dash *d) {
  int64_t now = dash_now_ms();
  if (d->rooms_at_ms && now - d->rooms_at_ms < DASH_ROOMS_TTL_MS) return;
  read_rooms_stream(d);
  scan_status(d, now);
  size_t kept = 0;
  for (size_t i = 0; i < d->nrooms; i++) {
    room *rm = d->rooms[i];
    char key[DASH_MAX_KEY];
    snprintf(key, sizeof key, "%s:{%s}:status", d->prefix, rm->id);
    const char *argv[] = {"HGETALL", key};
    redisReply *h = d->lost ? NULL : dash_rcall(d, 2, argv);
    if (h && h->type == REDIS_REPLY_ARRAY) {
      if (rm->status) freeReplyObject(rm->status);
      rm->status = h;
      room_sample(rm, now);
    } else if (h) {
      freeReplyObject(h);
    }
    if (rm->status && rm->status->elements == 0 && !rm->in_stream) dash_room_free(rm);
    else d->rooms[kept++] = rm;
  }
  d->nrooms = kept;
  d->rooms_at_ms = now;
}

void dash_rooms_json(dash *d, dbuf *b) {
  db_put(b, "[", 1);
  for (size_t i = 0; i < d->nrooms; i++) {
    const room *rm = d->rooms[i];
    const redisReply *h = rm->status;
    /* the status hash is fresher than the lifecycle stream; the stream speaks for expired hashes */
    const char *state = *hget(h, "state") ? hget(h, "state") : rm->s_state;
    const char *worker = *hget(h, "worker") ? hget(h, "worker") : rm->s_worker;
    const char *error = *hget(h, "error") ? hget(h, "error") : (rm->s_error ? rm->s_error : "");
    const char *events = *hget(h, "events") ? hget(h, "events") : "0";
    const char *updated = *hget(h, "updated_ms") ? hget(h, "updated_ms") : rm->s_ts;
    db_fmt(b, "%s{\"live_id\":\"%s\"", i ? "," : "", rm->id);
    j_key_str(b, "state", state);
    j_key_str(b, "worker", worker);
    j_key_int(b, "events", events);
    j_key_int(b, "viewers", hget(h, "viewers"));
    j_key_str(b, "title", hget(h, "title"));
    j_key_str(b, "anchor", hget(h, "anchor"));
    j_key_str(b, "room_id", hget(h, "room_id"));
    j_key_int(b, "updated_ms", updated);
    j_key_int(b, "last_event_ms", hget(h, "last_event_ms"));
    j_key_str(b, "error", error);
    j_key_int(b, "logged_in", hget(h, "logged_in"));
    db_fmt(b, ",\"events_per_s\":%.2f,\"eps_history\":[", rm->eps);
    for (int k = 0; k < rm->hist_n; k++) db_fmt(b, "%s%.2f", k ? "," : "", rm->hist[k]);
    db_str(b, "]}");
  }
  db_put(b, "]", 1);
}

int dash_workers_json(dash *d, dbuf *b) {
  char key[DASH_MAX_KEY], stop[16];
  snprintf(key, sizeof key, "%s:workers", d->prefix);
  snprintf(stop, sizeof stop, "%d", DASH_MAX_WORKERS - 1);
  const char *argv[] = {"ZRANGE", key, "0", stop};
  redisReply *z = dash_rcall(d, 4, argv);
  if (!z) return -1;
  db_put(b, "[", 1);
  int first = 1;
  for (size_t i = 0; z->type == REDIS_REPLY_ARRAY && i < z->elements && !d->lost; i++) {
    if (!dash_is_str(z->element[i]) || z->element[i]->len > DASH_MAX_WORKER_ID) continue;
    const char *id = z->element[i]->str;
    snprintf(key, sizeof key, "%s:worker:%s", d->prefix, id);
    const char *hargv[] = {"HGETALL", key};
    redisReply *h = dash_rcall(d, 2, hargv);
    if (h && h->type == REDIS_REPLY_ARRAY && h->elements > 0) { /* an empty hash: expired, a dead worker */
      db_str(b, first ? "{" : ",{");
      first = 0;
      db_str(b, "\"id\":");
      j_str(b, id, strlen(id));
      j_key_str(b, "host", hget(h, "host"));
      j_key_int(b, "pid", hget(h, "pid"));
      j_key_str(b, "version", hget(h, "version"));
      j_key_int(b, "rooms", hget(h, "rooms"));
      j_key_int(b, "capacity", hget(h, "capacity"));
      j_key_int(b, "started_ms", hget(h, "started_ms"));
      j_key_int(b, "heartbeat_ms", hget(h, "heartbeat_ms"));
      j_key_str(b, "state", hget(h, "state"));
      db_put(b, "}", 1);
    }
    if (h) freeReplyObject(h);
  }
  db_put(b, "]", 1);
  freeReplyObject(z);
  return d->lost ? -1 : 0;
}

