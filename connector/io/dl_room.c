#include "dl_room.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_backoff.h"
#include "dl_claims.h"
#include "dl_json.h"
#include "dl_lease.h"
#include "dl_proxypool.h"
#include "dl_limits.h"
#include "dl_log.h"
#include "dl_redis.h"
#include "dl_seen.h"
#include "dl_tail.h"
#include "dl_writer.h"

/* Desktop Chrome User-Agents to rotate through after refusals (J rotates on some reconnects). */
static const char *const rotation_uas[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36",
};

/* Buckets of the room table (a power of two; chains stay short up to --max-rooms' bound). */
#define ROOM_BUCKETS 4096

typedef enum { ST_CLAIMING, ST_LOADING, ST_RESOLVING, ST_CONNECTING, ST_LIVE, ST_RECONNECTING, ST_WATCHING, ST_CLOSING } st_t;

typedef struct room {
  struct room *prev, *next;   /* every room */
  struct room *hnext;         /* bucket chain */
  struct room *dnext;         /* rooms with events waiting for a write */
  int dirty;
  dl_rooms *rs;
  char live_id[DL_LIVE_ID_MAX];
  char room_id[DL_ROOM_ID_MAX];
  char profile[72];
  char refused[160];          /* a configuration error found at claim time: published once owned */
  char *claim_raw;            /* the assignment exactly as it sits in our claims list */
  size_t claim_len;
  size_t write_head, write_body; /* the sizes of its last write: the next one is reserved at once */
  int64_t last_recv_us;       /* its last frame's arrival (monotonic): is it a fast room? */
  st_t st;
  dl_rstate pub;              /* the state last published */
  int stop_requested;         /* unassigned: state stopped once closed */
  int handing_back;           /* drain: back to the assignment list once closed */
  int lost;                   /* the lease moved to another worker: give up without writing */
  int reopen;                 /* closing in ingest to resolve again (fresh ttwid, next UA) */
  int failed;                 /* Redis refused its writes for good (FATAL) */
  char fail_why[200];
  char token[DL_CMD_TOKEN_MAX]; /* "<worker> <epoch>": our lease's fencing token */
  uint64_t wseq;              /* the last room write's sequence number under this token */
  int refusals;               /* refused handshakes in a row */
  unsigned ua_turn;           /* which rotation UA (0: the configured one) */
  int64_t last_bad_write_ms;
  dl_backoff resolve_bo;
  struct event *retry_ev;
  dl_seen *seen;              /* recent msg_ids */
  dl_gift_streak *gifts;      /* streaks read from the stream's tail, until the room opens */
  size_t n_gifts;
  dl_cmd *open;               /* the write being filled */
  long long viewers;
  int viewers_dirty;
  uint64_t dups;
  int dups_dirty;
  int64_t last_ok_ms;         /* monotonic: the last write Redis applied that renewed the lease */
  int64_t lease_sent_ms;      /* monotonic: the last write made to renew the lease */
  uint64_t untrimmed;         /* events written since the last write that trimmed the stream */
  /* silent risk control: silent connections in a row, the pause, the identity never to
   * reuse, and where the silenced connection stopped (the next one resumes there) */
  int silent_runs;
  int conn_msg_frames;        /* frames with messages on the current connection */
  dl_backoff risk_bo;         /* the pause after DL_SILENT_RUNS_MAX silent connections */
  char last_uid[DL_ROOM_ID_MAX];
  char cursor[DL_CURSOR_MAX], internal_ext[DL_INTERNAL_EXT_MAX];
} room;

struct dl_rooms {
  dl_ctx *ctx;
  room *head;
  room *buckets[ROOM_BUCKETS];
  size_t n;
  room *dirty;
  int64_t fast_until_us;      /* a fast room's last frame + DL_FAST_HOLD_MS (--flush-max-ms) */
  dl_ratelimit bad_rl, fatal_rl;
};

static const char *const rstate_names[DL_RS__COUNT] = {
#define DL_RS_STR(n) #n,
    DL_RSTATE_MAP(DL_RS_STR)
#undef DL_RS_STR
};

const char *dl_rstate_name(dl_rstate s) { return (unsigned)s < DL_RS__COUNT ? rstate_names[s] : "error"; }

/* ---------- the table ---------- */

static unsigned bucket_of(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h & (ROOM_BUCKETS - 1);
}

static room *find(const dl_rooms *rs, const char *live_id) {
  for (room *r = rs->buckets[bucket_of(live_id)]; r; r = r->hnext)
    if (!strcmp(r->live_id, live_id)) return r;
  return NULL;
}

dl_rooms *dl_rooms_new(dl_ctx *ctx) {
  dl_rooms *rs = calloc(1, sizeof *rs);
  if (rs) rs->ctx = ctx;
  return rs;
}

static void room_free(room *r) {
  if (r->retry_ev) event_free(r->retry_ev);
  dl_seen_free(r->seen);
  dl_cmd_free(r->open);
  free(r->gifts);
  free(r->claim_raw);
  free(r);
}

static void room_remove(dl_rooms *rs, room *r) {
  if (rs->ctx->pool) dl_proxypool_unpin(rs->ctx->pool, r->live_id); /* an assignment's own proxy */
  if (r->prev) r->prev->next = r->next;
  else rs->head = r->next;
  if (r->next) r->next->prev = r->prev;
  for (room **pp = &rs->buckets[bucket_of(r->live_id)]; *pp; pp = &(*pp)->hnext)
    if (*pp == r) {
      *pp = r->hnext;
      break;
    }
  if (r->dirty)
    for (room **pp = &rs->dirty; *pp; pp = &(*pp)->dnext)
      if (*pp == r) {
        *pp = r->dnext;
        break;
      }
  rs->n--;
  room_free(r);
}

void dl_rooms_free(dl_rooms *rs) {
  if (!rs) return;
  while (rs->head) room_remove(rs, rs->head);
  free(rs);
}

size_t dl_rooms_count(const dl_rooms *rs) { return rs->n; }
int dl_rooms_has(const dl_rooms *rs, const char *live_id) { return find(rs, live_id) != NULL; }

void dl_rooms_states(const dl_rooms *rs, size_t counts[DL_RS__COUNT]) {
  memset(counts, 0, DL_RS__COUNT * sizeof *counts);
  for (const room *r = rs->head; r; r = r->next) counts[r->pub]++;
}

/* ---------- writes ---------- */

static void flush_room(room *r);

/* A write renews the lease when none did for half a poll period: a busy room's lease is kept by
 * its writes (and dl_rooms_poll skips its renewal), without a SET per write. */
static void lease_mark(room *r, dl_cmd *c) {
  int64_t now = dl_mono_ms();
  if (r->lease_sent_ms && now - r->lease_sent_ms < r->rs->ctx->cfg->poll_ms / 2) c->keep_lease = 1;
  else r->lease_sent_ms = now;
}

/* The next fenced write of the room, with its place in the room's order. */
static dl_cmd *room_write(room *r) {
  dl_cmd *c = dl_cmd_room_new(r->live_id, r->token);
  if (c) {
    c->seq = ++r->wseq;
    lease_mark(r, c);
  }
  return c;
}

/* A P:rooms entry: how consumers find rooms without scanning (CONTRACT §3). */
static dl_cmd *rooms_entry(room *r, const char *state, const char *why) {
  dl_ctx *ctx = r->rs->ctx;
  char maxlen[24], ts[24];
  snprintf(maxlen, sizeof maxlen, "%d", DL_ROOMS_STREAM_MAXLEN);
  snprintf(ts, sizeof ts, "%lld", (long long)dl_now_ms());
  const char *argv[16] = {"XADD", ctx->key_rooms, "MAXLEN", "~", maxlen, "*", "live_id", r->live_id, "state",
                          state, "worker", ctx->cfg->worker_id, "ts_ms", ts};
  int argc = 14;
  if (why && *why) {
    argv[argc++] = "error";
    argv[argc++] = why;
  }
  return dl_cmd_plain_new(argc, argv, NULL);
}

/* A status write (CONTRACT §3); pairs is a NULL-terminated field, value, … list. release gives
 * the lease up; a final state (ended, stopped, error) then also starts the --ended-ttl clock. */
static void status_write(room *r, const char *const *pairs, dl_rstate state, int publish, int release) {
  dl_ctx *ctx = r->rs->ctx;
  if (!r->token[0] || r->lost) return; /* never owned, or not ours any more: nothing may be written */
  flush_room(r);                       /* events before the state that follows them */
  dl_cmd *c = room_write(r);
  if (!c) return;
  for (int i = 0; pairs[i] && pairs[i + 1]; i += 2) dl_cmd_add_pair(c, pairs[i], pairs[i + 1]);
  if (release) {
    c->release = 1;
    if (state == DL_RS_ended || state == DL_RS_stopped || state == DL_RS_error)
      c->expire_s = (uint32_t)ctx->cfg->ended_ttl;
  }
  if (publish) {
    const char *why = NULL;
    for (int i = 0; pairs[i] && pairs[i + 1]; i += 2)
      if (!strcmp(pairs[i], "error")) why = pairs[i + 1];
    c->then = rooms_entry(r, dl_rstate_name(state), why);
    c->then_always = (uint8_t)r->failed; /* Redis refuses the room's writes: P:rooms says so in any case */
  }
  dl_writer_push(ctx->writer, c);
}

static void set_status(room *r, dl_rstate state, const char *why, int release) {
  dl_ctx *ctx = r->rs->ctx;
  char now[24];
  snprintf(now, sizeof now, "%lld", (long long)dl_now_ms());
  /* a room that is live again has no current error */
  const char *err = why ? why : state == DL_RS_live || state == DL_RS_starting ? "" : NULL;
  const char *pairs[] = {"state", dl_rstate_name(state), "worker", ctx->cfg->worker_id, "updated_ms", now,
                         "room_id", r->room_id, err ? "error" : NULL, err, NULL};
  int changed = state != r->pub || (why && *why);
  r->pub = state;
  status_write(r, pairs, state, changed, release);
}

static void flush_room(room *r) {
  dl_ctx *ctx = r->rs->ctx;
  dl_cmd *c = r->open;
  if (!c) return;
  r->open = NULL;
  char now[24], v[24], d[24];
  now[dl_json_fmt_i64(now, dl_now_ms())] = 0; /* every write: no printf */
  dl_cmd_add_pair(c, "last_event_ms", now);
  if (r->viewers_dirty) {
    v[dl_json_fmt_i64(v, r->viewers)] = 0;
    dl_cmd_add_pair(c, "viewers", v);
    r->viewers_dirty = 0;
  }
  if (r->dups_dirty) {
    d[dl_json_fmt_u64(d, r->dups)] = 0;
    dl_cmd_add_pair(c, "duplicates", d);
    r->dups_dirty = 0;
  }
  c->seq = ++r->wseq;
  r->write_head = c->head.len;
  r->write_body = c->body.len;
  lease_mark(r, c);
  /* XTRIM … MAXLEN ~ drops whole stream nodes (100 entries by default): trimming on every write of
   * a trickling room costs a call per write for nothing; every DL_TRIM_EVERY events (1 % of a short
   * --stream-maxlen) keeps the stream within its bound plus a node plus that many */
  long long every = ctx->cfg->stream_maxlen / 100;
  if (every > DL_TRIM_EVERY) every = DL_TRIM_EVERY;
  r->untrimmed += c->nevents;
  if (r->untrimmed < (uint64_t)every) c->skip_trim = 1;
  else r->untrimmed = 0;
  ctx->st.batches++;
  dl_writer_push(ctx->writer, c);
}

void dl_rooms_flush(dl_rooms *rs) {
  room *r;
  if (!rs->dirty) return;
  dl_writer_cork(rs->ctx->writer, 1); /* every room's write of this flush in one call */
  while ((r = rs->dirty)) {
    rs->dirty = r->dnext;
    r->dirty = 0;
    flush_room(r);
  }
  dl_writer_cork(rs->ctx->writer, 0);
}

static void mark_dirty(room *r) {
  if (r->dirty) return;
  r->dirty = 1;
  r->dnext = r->rs->dirty;
  r->rs->dirty = r;
}

/* "online":N of a viewers event (its JSON is ours: the decoder wrote it). */
static int parse_online(const char *json, long long *out) {
  const char *p = strstr(json, "\"online\":");
  if (!p) return -1;
  char *end;
  long long v = strtoll(p + 9, &end, 10);
  if (end == p + 9) return -1;
  *out = v;
  return 0;
}

static void take_frame(room *r, const dl_in_msg *m) {
  dl_ctx *ctx = r->rs->ctx;
  const dl_frame *f = &m->frame;
  int64_t now = dl_now_ms();
  for (size_t i = 0; i < f->n_events; i++) {
    const dl_event *e = &f->events[i];
    int seen = 0;
    dl_seen_insert(r->seen, e->msg_id_u64, &seen); /* out of memory: written, possibly twice */
    if (seen) { /* a re-push: Douyin sends recent ones again */
      r->dups++;
      r->dups_dirty = 1;
      ctx->st.events_dup++;
      continue;
    }
    size_t need = strlen(e->type) + strlen(e->msg_id) + 24 + e->json_len;
    if (r->open && (r->open->nevents >= (uint32_t)ctx->cfg->batch_max || !dl_cmd_room_fits(r->open, need, DL_BATCH_BYTES_MAX)))
      flush_room(r);
    if (!r->open) {
      r->open = dl_cmd_room_new(r->live_id, r->token);
      if (!r->open) return;
      dl_cmd_reserve(r->open, r->write_head, r->write_body);
      r->open->recv_us = m->recv_us;
    }
    if (dl_cmd_add_event(r->open, e->type, e->msg_id, e->ts_ms, e->json, e->json_len) != DL_EOK) continue;
    if (!strcmp(e->type, "viewers") && parse_online(e->json, &r->viewers) == 0) r->viewers_dirty = 1;
    if (e->ts_ms > 0) dl_hist_observe(&ctx->st.event_delay, (double)(now - e->ts_ms) / 1000.0, 1);
  }
  if (r->open) mark_dirty(r);
}

/* ---------- lifecycle ---------- */

static void acquire(room *r);
static void load_tail(room *r);
static void close_room(room *r);

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  room *r = arg;
  dl_ctx *ctx = r->rs->ctx;
  if (r->stop_requested || ctx->draining) return;
  switch (r->st) {
  case ST_CLAIMING:
    acquire(r);
    break;
  case ST_LOADING:
    load_tail(r);
    break;
  case ST_WATCHING: /* --watch-ended: is the anchor back? */
    r->st = ST_RESOLVING;
    dl_resolver_submit(ctx->resolver, r->live_id, r->profile);
    break;
  case ST_RESOLVING:
    if (r->silent_runs) dl_resolver_submit_fresh(ctx->resolver, r->live_id, r->profile); /* after a risk pause */
    else dl_resolver_submit(ctx->resolver, r->live_id, r->profile);
    break;
  default:
    break;
  }
}

/* ms ± DL_JITTER_PCT percent (--watch-ended checks: a period, not a backoff). */
static int64_t jittered(int64_t ms) {
  int64_t span = ms * DL_JITTER_PCT / 100;
  return span > 0 ? ms - span + (int64_t)((unsigned long)random() % (unsigned long)(2 * span + 1)) : ms;
}

static void retry_in(room *r, int64_t ms) {
  if (!r->retry_ev) r->retry_ev = evtimer_new(r->rs->ctx->base, on_retry, r);
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  if (r->retry_ev) evtimer_add(r->retry_ev, &tv);
}

/* The room is no longer ours (closed, ended, stopped, handed back or moved). */
static void finish_room(room *r, dl_rstate state, const char *why) {
  dl_rooms *rs = r->rs;
  dl_ctx *ctx = rs->ctx;
  if (state == DL_RS_ended && ctx->cfg->watch_ended > 0 && !r->lost && !r->handing_back && !r->stop_requested &&
      !r->failed && !ctx->draining) {
    /* --watch-ended: keep the lease and the claim; look at the room again later, at a jittered
     * time so that a pool's checks never line up */
    char msg[300];
    snprintf(msg, sizeof msg, "%s; checking again every %lld s", why ? why : "live ended", ctx->cfg->watch_ended);
    set_status(r, DL_RS_ended, msg, 0);
    r->pub = DL_RS_watching;
    r->st = ST_WATCHING;
    retry_in(r, jittered(ctx->cfg->watch_ended * 1000));
    return;
  }
  if (r->lost) {
    /* another worker owns it now: write nothing */
  } else if (r->handing_back && !r->failed) { /* a room Redis refuses is not worth handing on */
    char msg[200];
    snprintf(msg, sizeof msg, "handed back by draining worker %s", ctx->cfg->worker_id);
    set_status(r, DL_RS_reconnecting, msg, 1);
    dl_claims_hand_back(ctx->claims, r->claim_raw, r->claim_len);
  } else {
    set_status(r, state, why, 1);
  }
  dl_claims_release(ctx->claims, r->claim_raw, r->claim_len);
  dl_log(DL_LOG_INFO, "room_released", r->live_id, "%s%s%s",
         r->lost ? "moved to another worker" : r->handing_back ? "handed back" : dl_rstate_name(state),
         why ? ": " : "", why ? why : "");
  room_remove(rs, r);
  dl_claims_next(ctx->claims);
  if (ctx->draining && ctx->maybe_done) ctx->maybe_done(ctx);
}

static void close_room(room *r) {
  dl_ctx *ctx = r->rs->ctx;
  if (r->st == ST_CLOSING) return;
  if (r->st != ST_CONNECTING && r->st != ST_LIVE && r->st != ST_RECONNECTING) {
    /* not in ingest: done now (a late resolve or tail reply finds no room and is dropped) */
    r->st = ST_CLOSING;
    finish_room(r, r->failed ? DL_RS_error : DL_RS_stopped,
                r->failed ? r->fail_why : r->stop_requested ? "unassigned" : NULL);
    return;
  }
  r->st = ST_CLOSING;
  dl_ingest_close(ctx->ingest, r->live_id);
}

/* Our lease is gone (a write or a renewal was fenced): the room belongs to another worker. */
static void give_up(room *r) {
  if (r->lost) return;
  r->lost = 1;
  r->rs->ctx->st.lost_rooms++;
  if (r->open) { /* never written: the new owner gets them from Douyin's re-push */
    dl_cmd_free(r->open);
    r->open = NULL;
  }
  dl_log(DL_LOG_WARN, "lease_lost", r->live_id, "lease taken by another worker; giving the room up");
  close_room(r);
}

/* ---------- taking a room: lease, then the stream's tail ---------- */

/* What a Redis callback needs to find its room again (it may be gone by then). */
typedef struct room_ref {
  dl_rooms *rs;
  char live_id[DL_LIVE_ID_MAX];
} room_ref;

static room_ref *ref_of(room *r) {
  room_ref *ref = malloc(sizeof *ref);
  if (ref) {
    ref->rs = r->rs;
    snprintf(ref->live_id, sizeof ref->live_id, "%s", r->live_id);
  }
  return ref;
}

/* Takes the reference back: the room if it still exists. */
static room *deref(void *priv, dl_rooms **rs_out) {
  room_ref *ref = priv;
  *rs_out = ref->rs;
  room *r = find(ref->rs, ref->live_id);
  free(ref);
  return r;
}

static void on_owner_alive(void *priv, const redisReply *rep) {
  dl_rooms *rs;
  room *r = deref(priv, &rs);
  if (!r || r->st != ST_CLAIMING) return;
  dl_ctx *ctx = rs->ctx;
  if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
    /* a repeated assignment of a room another live worker captures: nothing to do */
    dl_log(DL_LOG_INFO, "assign_dup", r->live_id, "already captured by a live worker; dropping this claim");
    dl_claims_release(ctx->claims, r->claim_raw, r->claim_len);
    room_remove(rs, r);
    dl_claims_next(ctx->claims);
    return;
  }
  retry_in(r, DL_ACQUIRE_RETRY_MS); /* a dead worker's lease: it expires soon */
}

static void on_acquired(dl_ctx *ctx, const char *live_id, const dl_lease_result *res) {
  room *r = find(ctx->rooms, live_id);
  if (!r || r->st != ST_CLAIMING) return;
  if (res->failed) {
    dl_log(DL_LOG_DEBUG, "acquire_failed", live_id, "%s", res->why);
    retry_in(r, DL_REDIS_RETRY_MS);
    return;
  }
  if (!res->taken) {
    char owner[DL_WORKER_ID_MAX + 1], key[DL_KEY_MAX];
    snprintf(owner, sizeof owner, "%.*s", (int)strcspn(res->token, " "), res->token);
    dl_keys_worker(key, sizeof key, ctx->cfg->prefix, owner);
    const char *argv[] = {"EXISTS", key};
    room_ref *ref = ref_of(r);
    if (!ref || dl_redis_call(ctx->redis, key, 2, argv, NULL, on_owner_alive, ref) != DL_EOK) {
      free(ref);
      retry_in(r, DL_ACQUIRE_RETRY_MS);
    }
    return;
  }
  snprintf(r->token, sizeof r->token, "%s", res->token);
  r->lease_sent_ms = 0; /* acquire set the lease; the first write under it renews it too */
  r->wseq = 0;
  if (r->refused[0]) { /* say why in the room's status (P:rooms too), then let it go */
    r->st = ST_CLOSING;
    finish_room(r, DL_RS_error, r->refused);
    return;
  }
  r->st = ST_LOADING;
  /* a claim is an assignment: it clears an earlier unassign and the last error */
  char key[DL_KEY_MAX];
  dl_keys_room(key, sizeof key, ctx->cfg->prefix, r->live_id, DL_RK_STATUS);
  const char *hdel[] = {"HDEL", key, "desired"};
  dl_writer_push(ctx->writer, dl_cmd_plain_new(3, hdel, NULL));
  set_status(r, DL_RS_starting, NULL, 0);
  dl_log(DL_LOG_INFO, "room_owned", r->live_id, "lease taken (%s); reading the stream's tail", r->token);
  load_tail(r);
}

static void acquire(room *r) {
  dl_ctx *ctx = r->rs->ctx;
  if (dl_lease_acquire(ctx, r->live_id, on_acquired) != DL_EOK) retry_in(r, DL_ACQUIRE_RETRY_MS);
}

static void on_tail(void *priv, const redisReply *rep) {
  dl_rooms *rs;
  room *r = deref(priv, &rs);
  if (!r || r->st != ST_LOADING) return;
  if (!rep) { /* no answer: ask again */
    retry_in(r, DL_REDIS_RETRY_MS);
    return;
  }
  /* an error reply (the events key of another type) reads as an empty tail: the first write
   * then says what is wrong */
  dl_tail t;
  dl_tail_read(rep, r->seen, DL_TAIL_GIFTS_MAX, dl_now_ms(), &t);
  r->gifts = t.gifts;
  r->n_gifts = t.n_gifts;
  r->st = ST_RESOLVING;
  dl_resolver_submit(rs->ctx->resolver, r->live_id, r->profile);
}

static void load_tail(room *r) {
  dl_ctx *ctx = r->rs->ctx;
  char key[DL_KEY_MAX], count[24];
  dl_keys_room(key, sizeof key, ctx->cfg->prefix, r->live_id, DL_RK_EVENTS);
  snprintf(count, sizeof count, "%lld", ctx->cfg->seen_max);
  const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", count};
  room_ref *ref = ref_of(r);
  if (!ref || dl_redis_call(ctx->redis, key, 6, argv, NULL, on_tail, ref) != DL_EOK) {
    free(ref);
    retry_in(r, DL_REDIS_RETRY_MS);
  }
}

void dl_rooms_claimed(dl_rooms *rs, const char *live_id, const char *profile, const char *raw, size_t len,
                      const char *refused) {
  room *r = calloc(1, sizeof *r);
  if (!r || !(r->claim_raw = malloc(len + 1)) || !(r->seen = dl_seen_new((size_t)rs->ctx->cfg->seen_max))) {
    if (r) room_free(r);
    return;
  }
  r->rs = rs;
  memcpy(r->claim_raw, raw, len);
  r->claim_raw[len] = 0;
  r->claim_len = len;
  snprintf(r->live_id, sizeof r->live_id, "%s", live_id);
  snprintf(r->profile, sizeof r->profile, "%s", profile);
  if (refused) snprintf(r->refused, sizeof r->refused, "%s", refused);
  dl_backoff_init(&r->resolve_bo, DL_RESOLVE_RETRY_MS, DL_RESOLVE_RETRY_MAX_MS, (uint64_t)random());
  dl_backoff_init(&r->risk_bo, DL_RISK_PAUSE_MS, DL_RISK_PAUSE_MAX_MS, (uint64_t)random());
  r->st = ST_CLAIMING;
  r->pub = DL_RS_claiming;
  r->next = rs->head;
  if (rs->head) rs->head->prev = r;
  rs->head = r;
  unsigned b = bucket_of(live_id);
  r->hnext = rs->buckets[b];
  rs->buckets[b] = r;
  rs->n++;
  dl_log(DL_LOG_INFO, "room_claimed", live_id, "claimed; taking the lease");
  acquire(r);
}

/* ---------- messages from the resolver and ingest ---------- */

static void open_in_ingest(room *r, const dl_resolve_result *res) {
  dl_ctx *ctx = r->rs->ctx;
  dl_room_spec spec;
  memset(&spec, 0, sizeof spec);
  snprintf(spec.live_id, sizeof spec.live_id, "%s", r->live_id);
  snprintf(spec.room_id, sizeof spec.room_id, "%s", r->room_id);
  /* the page's user_unique_id, else a random 19-digit one as public clients do (PROTOCOL §1.2);
   * a fresh identity never reuses the last one (the page may hand it out again) */
  if (res->page.user_unique_id[0] && strcmp(res->page.user_unique_id, r->last_uid))
    snprintf(spec.user_unique_id, sizeof spec.user_unique_id, "%s", res->page.user_unique_id);
  while (!spec.user_unique_id[0] || !strcmp(spec.user_unique_id, r->last_uid)) {
    unsigned long long v = 7300000000000000000ULL +
                           ((unsigned long long)random() << 20 ^ (unsigned long long)random()) % 699999999999999999ULL;
    snprintf(spec.user_unique_id, sizeof spec.user_unique_id, "%llu", v);
  }
  snprintf(r->last_uid, sizeof r->last_uid, "%s", spec.user_unique_id);
  /* resume where a silenced connection stopped (consumed once; ingest tracks it from here). The
   * proxy needs no field: ingest's dl_proxypool_pick gives the resolver's answer. */
  snprintf(spec.cursor, sizeof spec.cursor, "%s", r->cursor);
  snprintf(spec.internal_ext, sizeof spec.internal_ext, "%s", r->internal_ext);
  r->cursor[0] = r->internal_ext[0] = 0;
  spec.cookie = res->cookie;
  snprintf(spec.address, sizeof spec.address, "%s", res->ws_addr);
  if (r->ua_turn)
    snprintf(spec.user_agent, sizeof spec.user_agent, "%s",
             rotation_uas[(r->ua_turn - 1) % (sizeof rotation_uas / sizeof *rotation_uas)]);
  spec.gifts = r->gifts;
  spec.n_gifts = r->n_gifts;
  dl_ingest_open(ctx->ingest, &spec); /* copies what it keeps */
  free(r->gifts);
  r->gifts = NULL;
  r->n_gifts = 0;
}

void dl_rooms_on_resolved(dl_rooms *rs, dl_resolve_result *res) {
  dl_ctx *ctx = rs->ctx;
  room *r = find(rs, res->live_id);
  if (!r || r->st != ST_RESOLVING) return;
  if (r->stop_requested || ctx->draining) {
    close_room(r);
    return;
  }
  if (res->err == DL_ENOTLIVE || res->err == DL_ENOTFOUND || res->err == DL_EINVAL) {
    /* final: not live, gone, or a configuration error (an unknown cookie profile) that no retry
     * can fix — the room is released and says why */
    if (res->err == DL_EINVAL) ctx->st.config_errors++;
    dl_log(res->err == DL_EINVAL ? DL_LOG_ERROR : DL_LOG_INFO, "room_offline", r->live_id, "%s", res->error);
    snprintf(r->room_id, sizeof r->room_id, "%s", res->page.room_id);
    finish_room(r, res->err == DL_ENOTLIVE ? DL_RS_ended : DL_RS_error, res->error);
    return;
  }
  if (res->err != DL_EOK) {
    ctx->st.resolve_errors++;
    int64_t wait = dl_backoff_next(&r->resolve_bo);
    char msg[300];
    snprintf(msg, sizeof msg, "%s; retrying in %lld ms", res->error, (long long)wait);
    dl_log(DL_LOG_WARN, "resolve_failed", r->live_id, "%s", msg);
    set_status(r, DL_RS_error, msg, 0);
    retry_in(r, wait);
    return;
  }
  dl_backoff_reset(&r->resolve_bo);
  snprintf(r->room_id, sizeof r->room_id, "%s", res->page.room_id);
  r->st = ST_CONNECTING;
  /* logged_in (CONTRACT §3: Douyin withholds gifts from guests), where the facts came from, and
   * the egress proxy's label (host:port, never credentials; "" when direct) */
  dl_proxy_url pu = {0};
  if (res->proxy >= 0 && ctx->pool) dl_proxypool_get(ctx->pool, res->proxy, &pu);
  const char *facts[] = {"title", res->page.title, "anchor", res->page.anchor, "logged_in", res->logged_in ? "1" : "0",
                         "resolved_by", res->source, "proxy", pu.label, NULL};
  status_write(r, facts, r->pub, 0, 0);
  set_status(r, DL_RS_starting, NULL, 0);
  dl_log(DL_LOG_INFO, "room_resolved", r->live_id, "room_id=%s title=\"%s\" via %s in %lld ms logged_in=%d",
         r->room_id, res->page.title, res->source, (long long)res->took_ms, res->logged_in);
  open_in_ingest(r, res);
}

/* --flush-max-ms: frames closer together than DL_FAST_FRAME_LINGERS long lingers make the room
 * fast, and the worker's linger short for a while (a frame waits at most a tenth of its room's
 * frame interval). */
static void note_pace(dl_rooms *rs, room *r, int64_t recv_us) {
  int64_t lmax = rs->ctx->cfg->flush_max_ms;
  if (r->last_recv_us && recv_us - r->last_recv_us < lmax * 1000 * DL_FAST_FRAME_LINGERS &&
      recv_us + DL_FAST_HOLD_MS * 1000 > rs->fast_until_us)
    rs->fast_until_us = recv_us + DL_FAST_HOLD_MS * 1000;
  r->last_recv_us = recv_us;
}

int64_t dl_rooms_fast_until_us(const dl_rooms *rs) { return rs->fast_until_us; }

void dl_rooms_on_ingest(dl_rooms *rs, dl_in_msg *m) {
  dl_ctx *ctx = rs->ctx;
  room *r = find(rs, m->live_id);
  if (!r) return;
  switch (m->kind) {
  case DL_IN_FRAME:
    note_pace(rs, r, m->recv_us);
    /* events of a room we are closing still get written: they were received; a room we lost
     * belongs to its new owner, who gets Douyin's re-push */
    if (!r->lost && !r->failed && r->token[0]) take_frame(r, m);
    /* a connection that delivers messages beyond its first frame (Douyin re-pushes on every
     * connect, and a silenced connection may still get that one) is not silent: the count resets */
    if (m->frame.n_events && ++r->conn_msg_frames >= 2) r->silent_runs = 0, dl_backoff_reset(&r->risk_bo);
    break;
  case DL_IN_CONNECTED:
    r->refusals = 0;
    r->conn_msg_frames = 0;
    if (r->st != ST_CLOSING) {
      r->st = ST_LIVE;
      set_status(r, DL_RS_live, NULL, 0);
    }
    break;
  case DL_IN_DISCONNECTED:
    if (r->st != ST_CLOSING) {
      r->st = ST_RECONNECTING;
      set_status(r, m->rejected ? DL_RS_error : DL_RS_reconnecting, m->reason, 0);
      if (m->rejected && ++r->refusals >= DL_REFRESH_AFTER_REFUSALS) {
        /* refused again and again: new ttwid, next UA, a new connection */
        r->refusals = 0;
        r->reopen = 1;
        if (!ctx->cfg->cookie_file[0] && !r->profile[0]) r->ua_turn++;
        dl_log(DL_LOG_WARN, "refresh_identity", r->live_id, "handshake refused %d times; fresh ttwid%s",
               DL_REFRESH_AFTER_REFUSALS, r->ua_turn ? " and another User-Agent" : "");
        r->st = ST_CLOSING;
        dl_ingest_close(ctx->ingest, r->live_id);
      }
    }
    break;
  case DL_IN_BAD_FRAME: {
    /* hostile input must not flood the log or Redis: a few lines a second per worker, one
     * status write a second per room; the counters (/metrics) count every frame */
    unsigned supp = 0;
    if (dl_ratelimit_allow(&rs->bad_rl, dl_mono_ms(), DL_BAD_FRAME_LOGS_PER_S, &supp))
      dl_log(DL_LOG_WARN, "bad_frame", m->live_id, "%s (%u similar lines suppressed)", m->reason, supp);
    if (dl_mono_ms() - r->last_bad_write_ms >= DL_BAD_FRAME_STATUS_MS) {
      r->last_bad_write_ms = dl_mono_ms();
      const char *pairs[] = {"last_bad_frame", m->reason, NULL};
      status_write(r, pairs, r->pub, 0, 0);
    }
    break;
  }
  case DL_IN_ENDED:
    r->stop_requested = 0;
    r->handing_back = ctx->draining;
    finish_room(r, DL_RS_ended, "live ended (ControlMessage status 3)");
    break;
  case DL_IN_SILENT: /* silent risk control (PROTOCOL §9.6): ingest closed and forgot the room */
    if (r->st == ST_CLOSING) break; /* a close is under way: its DL_IN_CLOSED ("not open") follows */
    ctx->st.silent_total++;
    snprintf(r->cursor, sizeof r->cursor, "%s", m->cursor && strlen(m->cursor) < sizeof r->cursor ? m->cursor : "");
    snprintf(r->internal_ext, sizeof r->internal_ext, "%s",
             m->internal_ext && strlen(m->internal_ext) < sizeof r->internal_ext ? m->internal_ext : "");
    r->st = ST_RESOLVING;
    if (++r->silent_runs >= DL_SILENT_RUNS_MAX) {
      int64_t wait = dl_backoff_next(&r->risk_bo);
      char msg[300];
      snprintf(msg, sizeof msg, "risk control: %d silent connections in a row (no message for %lld s each); "
               "retrying in %lld s", r->silent_runs, ctx->cfg->silence_timeout, (long long)((wait + 999) / 1000));
      ctx->st.risk_errors++;
      dl_log(DL_LOG_WARN, "risk_control", r->live_id, "%s", msg);
      set_status(r, DL_RS_error, msg, 0);
      retry_in(r, wait);
    } else {
      dl_log(DL_LOG_WARN, "refresh_identity", r->live_id, "%s; fresh ttwid and user_unique_id", m->reason);
      set_status(r, DL_RS_reconnecting, m->reason, 0);
      dl_resolver_submit_fresh(ctx->resolver, r->live_id, r->profile);
    }
    break;
  case DL_IN_CLOSED:
    if (r->reopen && !r->stop_requested && !r->handing_back && !r->lost && !r->failed && !ctx->draining) {
      r->reopen = 0;
      r->st = ST_RESOLVING;
      dl_resolver_submit_fresh(ctx->resolver, r->live_id, r->profile);
    } else {
      finish_room(r, r->failed ? DL_RS_error : DL_RS_stopped,
                  r->failed ? r->fail_why : r->stop_requested ? "unassigned" : NULL);
    }
    break;
  }
}

/* ---------- what Redis said about our writes ---------- */

/* The status hash's `desired` as a write or a renewal read it: "stopped" (dylivectl unassign)
 * closes the room. Returns 1 when it started closing (the room may be gone then). */
static int unassigned(room *r, const char *desired) {
  if (strcmp(desired, "stopped") || r->stop_requested || r->st == ST_CLOSING) return 0;
  dl_log(DL_LOG_INFO, "room_unassign", r->live_id, "unassigned; closing");
  r->stop_requested = 1;
  close_room(r);
  return 1;
}

/* Counts a written command's events per type, from its arguments (type, msg_id, ts_ms, json per
 * event): one path for every write, spooled ones too (a record keeps the events, not counts). */
static void count_types(const dl_cmd *c, uint64_t *by_type) {
  size_t off = 0, n;
  const char *p;
  for (uint32_t e = 0; e < c->nevents; e++) {
    if (dl_cmd_next_arg(&c->body, &off, &p, &n) != 1) return;
    by_type[dl_evtype_of(p, n)]++;
    for (int k = 0; k < 3; k++)
      if (dl_cmd_next_arg(&c->body, &off, &p, &n) != 1) return;
  }
}

void dl_rooms_on_done(dl_rooms *rs, dl_cmd *c) {
  dl_ctx *ctx = rs->ctx;
  const dl_reply_info *ri = &c->reply;
  if (c->kind == DL_CMD_ORPHAN) {
    if (ri->cls == DL_RC_OK) ctx->st.orphan_events += (uint64_t)ri->written;
    return;
  }
  if (c->kind == DL_CMD_PLAIN) {
    if (ri->cls == DL_RC_FATAL)
      dl_log(DL_LOG_ERROR, "redis_refused", c->live_id[0] ? c->live_id : NULL, "a pool command was refused: %s", ri->why);
    return;
  }
  room *r = find(rs, c->live_id);
  int ours = r && !strcmp(r->token, c->token); /* not a leftover of an earlier lease */
  if (ours && ri->cls == DL_RC_OK) {
    if (!c->keep_lease) r->last_ok_ms = dl_mono_ms();
    if (!c->release && unassigned(r, ri->desired)) {
      r = find(rs, c->live_id); /* closing may have released it */
      ours = r != NULL;
    }
  }
  switch (ri->cls) {
  case DL_RC_OK:
    if (ri->written > 0) {
      count_types(c, ctx->st.written_by_type);
      if (c->recv_us)
        dl_hist_observe(&ctx->st.write_latency, (double)(dl_mono_us() - c->recv_us) / 1e6, (uint64_t)ri->written);
    }
    break;
  case DL_RC_FENCED:
    if (ours) give_up(r);
    break;
  case DL_RC_FATAL: {
    ctx->st.fatal_writes++;
    unsigned supp = 0;
    if (dl_ratelimit_allow(&rs->fatal_rl, dl_mono_ms(), 1, &supp))
      dl_log(DL_LOG_ERROR, "write_refused", c->live_id, "Redis refused a write of this room for good: %s (%u similar suppressed)",
             ri->why, supp);
    if (ours && !r->failed) {
      /* the room cannot be written (a key of the wrong type, a script error): stop capturing it
       * and say why, in the status hash if Redis takes that, and in P:rooms in any case (the
       * final status write's entry goes whatever its outcome: status_write) */
      r->failed = 1;
      snprintf(r->fail_why, sizeof r->fail_why, "Redis refused the room's writes: %.160s", ri->why);
      if (r->open) {
        dl_cmd_free(r->open);
        r->open = NULL;
      }
      close_room(r);
    }
    break;
  }
  default:
    break;
  }
}

/* ---------- periodic ---------- */

static void on_renewed(dl_ctx *ctx, const char *live_id, const dl_lease_result *res) {
  room *r = find(ctx->rooms, live_id);
  if (!r || res->failed) return; /* no answer: the next poll tries again */
  if (res->lost) {
    give_up(r);
    return;
  }
  unassigned(r, res->desired);
}

static void renew(dl_ctx *ctx, size_t n, const char *const *ids, const char *const *toks) {
  dl_err e = dl_lease_renew_many(ctx, n, ids, toks, on_renewed);
  if (e != DL_EOK && e != DL_ECLOSED) /* without Redis the next poll tries again; anything else is a bug */
    dl_log(DL_LOG_ERROR, "renew_failed", NULL, "%zu lease renewals not sent: %s", n, dl_err_name(e));
}

void dl_rooms_poll(dl_rooms *rs) {
  dl_ctx *ctx = rs->ctx;
  if (!dl_redis_w_ready(ctx->redis)) return;
  int64_t now = dl_mono_ms();
  /* idle rooms' renewals share calls (one per room on a Cluster, where slots differ) */
  size_t cap = dl_redis_cluster(ctx->redis) ? 1 : DL_RENEW_GROUP_MAX, n = 0;
  const char *ids[DL_RENEW_GROUP_MAX], *toks[DL_RENEW_GROUP_MAX];
  for (room *r = rs->head; r; r = r->next) {
    if (!r->token[0] || r->lost || r->st == ST_CLOSING) continue;
    /* a room that wrote within the period had its lease renewed and its `desired` read by that
     * write (room.lua): no renewal where rooms are busy */
    if (r->last_ok_ms && now - r->last_ok_ms < ctx->cfg->poll_ms) continue;
    ids[n] = r->live_id;
    toks[n] = r->token;
    if (++n == cap) {
      renew(ctx, n, ids, toks);
      n = 0;
    }
  }
  if (n) renew(ctx, n, ids, toks);
}

void dl_rooms_drain(dl_rooms *rs) {
  room *next;
  for (room *r = rs->head; r; r = next) {
    next = r->next;
    r->handing_back = 1;
    close_room(r);
  }
}
