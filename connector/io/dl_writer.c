#include "dl_writer.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_backoff.h"
#include "dl_keys.h"
#include "dl_limits.h"
#include "dl_log.h"
#include "dl_topo.h"

/* --redis-wait-replicas: per node, the WAIT in flight and what the last one covered. */
typedef struct wait_state {
  uint64_t sent_upto;     /* the latest sendno sent to the node */
  uint64_t waited_upto;   /* what the last successful WAIT covered */
  int inflight;
} wait_state;

struct dl_writer {
  struct event_base *base;
  dl_redis *r;
  dl_outbox *ob;
  dl_cmd_env env;
  dl_writer_hooks h;
  dl_writer_stats st;
  dl_backoff bo;
  struct event *retry_ev;
  int waiting;            /* a retry pause is running: send nothing */
  int corked;             /* dl_writer_cork: pushes wait to be sent together */
  dl_buf enc;             /* reused encoding buffer */
  struct group *spare[DL_WRITER_SPARE_GROUPS]; /* finished groups, reused by the next calls */
  size_t nspare;
  size_t inflight_bytes;  /* sent and not answered yet: sending pauses past DL_WRITER_INFLIGHT_BYTES */
  dl_ratelimit err_rl;
  char claims_route[DL_KEY_MAX];
  long long wait_replicas;
  wait_state ws[DL_REDIS_NODES_MAX];
};

typedef struct wait_call {
  dl_writer *w;
  int node;
  uint64_t upto;
} wait_call;

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  dl_writer *w = arg;
  w->waiting = 0;
  dl_writer_pump(w);
}

dl_writer *dl_writer_new(struct event_base *base, dl_redis *r, dl_outbox *ob, const dl_cmd_env *env,
                         const char *claims_route, long long wait_replicas, const dl_writer_hooks *h) {
  dl_writer *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->base = base;
  w->r = r;
  w->ob = ob;
  w->env = *env;
  w->h = *h;
  w->wait_replicas = wait_replicas;
  snprintf(w->claims_route, sizeof w->claims_route, "%s", claims_route);
  dl_outbox_set_confirm(ob, wait_replicas > 0);
  dl_backoff_init(&w->bo, DL_REDIS_BACKOFF_MS, DL_REDIS_BACKOFF_MAX_MS, (uint64_t)dl_now_ms());
  dl_buf_init(&w->enc, DL_CMD_BYTES_MAX + 65536);
  w->retry_ev = evtimer_new(base, on_retry, w);
  if (!w->retry_ev) {
    free(w);
    return NULL;
  }
  return w;
}

void dl_writer_free(dl_writer *w) {
  if (!w) return;
  event_free(w->retry_ev);
  dl_outbox_free(w->ob);
  dl_buf_free(&w->enc);
  while (w->nspare) free(w->spare[--w->nspare]);
  free(w);
}

static void on_reply(void *priv, const redisReply *rep);
static void send_pending(dl_writer *w);

/* Hands finished commands to the hook, oldest first; returns how many. */
static size_t complete(dl_writer *w) {
  dl_cmd *c;
  size_t n = 0;
  while ((c = dl_outbox_pop(w->ob))) {
    n++;
    w->st.commands++;
    if (w->h.done) w->h.done(w->h.ud, c);
    dl_cmd_free(c);
  }
  return n;
}

/* The key a command is about, for routing: a room's hash tag, or a pool command's key. */
static void route_of(const dl_writer *w, const dl_cmd *c, char *out, size_t cap) {
  if (c->kind != DL_CMD_PLAIN) {
    snprintf(out, cap, "{%s}", c->live_id);
    return;
  }
  size_t off = 0, vl = 0, kl = 0;
  const char *verb = NULL, *key = NULL;
  dl_cmd_next_arg(&c->head, &off, &verb, &vl);
  if (verb && vl == 6 && !memcmp(verb, "CLIENT", 6)) { /* CLIENT UNBLOCK: where the claims connection is */
    snprintf(out, cap, "%s", w->claims_route);
    return;
  }
  if (dl_cmd_next_arg(&c->head, &off, &key, &kl) == 1) snprintf(out, cap, "%.*s", (int)kl, key);
  else out[0] = 0;
}

static void on_wait(void *priv, const redisReply *rep) {
  wait_call *wc = priv;
  dl_writer *w = wc->w;
  wait_state *s = &w->ws[wc->node];
  s->inflight = 0;
  if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= w->wait_replicas) {
    s->waited_upto = wc->upto;
    dl_outbox_confirm(w->ob, wc->node, wc->upto);
  } else if (rep && rep->type == REDIS_REPLY_INTEGER) {
    w->st.wait_short++; /* fewer replicas than asked: the writes stay pending; the next pump asks again */
  }
  free(wc);
  if (rep) dl_writer_pump(w);
}

/* One WAIT per node with writes it has not covered yet. */
static void send_waits(dl_writer *w) {
  if (w->wait_replicas <= 0) return;
  char n[24], t[24];
  snprintf(n, sizeof n, "%lld", w->wait_replicas);
  snprintf(t, sizeof t, "%d", DL_WAIT_TIMEOUT_MS);
  for (int i = 0; i < DL_REDIS_NODES_MAX; i++) {
    wait_state *s = &w->ws[i];
    if (s->inflight || s->sent_upto <= s->waited_upto) continue;
    wait_call *wc = malloc(sizeof *wc);
    if (!wc) return;
    *wc = (wait_call){w, i, s->sent_upto};
    const char *argv[] = {"WAIT", n, t};
    if (dl_redis_call_node(w->r, i, 3, argv, on_wait, wc) == DL_EOK) s->inflight = 1;
    else free(wc);
  }
}

void dl_writer_pump(dl_writer *w) {
  /* completions may queue more (a finished status write's P:rooms entry, a room's release), and
   * refill memory from the spool: send again until a pass finishes nothing */
  do {
    if (w->waiting) return;
    send_pending(w);
    send_waits(w);
  } while (complete(w));
}

/* Room writes sent together in one room.lua call: one reply for all of them. */
typedef struct group {
  dl_writer *w;
  size_t wire_bytes; /* bytes of the call (the writer's in-flight count) */
  size_t n;
  dl_cmd *c[];
} group;

/* May d ride in the same room.lua call as c? Any rooms on one Redis; on a Cluster only rooms of
 * one slot (a script's keys must share it). A command with an ASK redirection goes alone. */
static int groupable(const dl_writer *w, const dl_cmd *c, const dl_cmd *d, size_t bytes) {
  if (d->kind != DL_CMD_ROOM || d->ask[0] || bytes + dl_cmd_bytes(d) > DL_WRITE_GROUP_BYTES) return 0;
  if (!dl_redis_cluster(w->r)) return 1;
  char a[DL_CMD_ID_MAX + 2], b[DL_CMD_ID_MAX + 2];
  int al = snprintf(a, sizeof a, "{%s}", c->live_id), bl = snprintf(b, sizeof b, "{%s}", d->live_id);
  return dl_keys_slot(a, (size_t)al) == dl_keys_slot(b, (size_t)bl);
}

/* A finished group back to the writer's spares (or freed). */
static void group_put(dl_writer *w, group *g) {
  if (g && w->nspare < DL_WRITER_SPARE_GROUPS) w->spare[w->nspare++] = g;
  else free(g);
}

/* c and the room writes after it that can share its call (at most DL_WRITE_GROUP_CMDS; c alone
 * when it carries an ASK redirection). */
static group *gather(dl_writer *w, dl_cmd *c) {
  group *g = w->nspare ? w->spare[--w->nspare] : malloc(sizeof *g + DL_WRITE_GROUP_CMDS * sizeof(dl_cmd *));
  if (!g) return NULL;
  g->w = w;
  g->n = 1;
  g->c[0] = c;
  size_t bytes = dl_cmd_bytes(c);
  dl_cmd *d;
  while (!c->ask[0] && g->n < DL_WRITE_GROUP_CMDS && (d = dl_outbox_next(w->ob))) {
    if (!groupable(w, c, d, bytes)) {
      dl_outbox_unsend(w->ob, d); /* it starts the next call */
      break;
    }
    g->c[g->n++] = d;
    bytes += dl_cmd_bytes(d);
  }
  return g;
}

static void on_group_reply(void *priv, const redisReply *rep);

static void send_pending(dl_writer *w) {
  dl_cmd *c;
  /* What Redis has not answered yet is held twice (the command until its reply, its bytes in the
   * socket's buffers): past the bound the rest waits in the outbox, already bounded by
   * --buffer-max-bytes. Redis has ample work queued at this bound. */
  while (w->inflight_bytes < DL_WRITER_INFLIGHT_BYTES && (c = dl_outbox_next(w->ob))) {
    dl_buf_reset(&w->enc);
    group *g = NULL;
    dl_err e;
    if (c->kind == DL_CMD_ROOM) {
      if (!(g = gather(w, c))) {
        dl_outbox_unsend(w->ob, c);
        break;
      }
      e = dl_cmd_encode_rooms((const dl_cmd *const *)g->c, g->n, &w->env, &w->enc);
    } else {
      e = dl_cmd_encode(c, &w->env, &w->enc);
    }
    if (e != DL_EOK) { /* cannot happen within the limits: say so */
      for (size_t i = 0; i < (g ? g->n : 1); i++) {
        dl_cmd *x = g ? g->c[i] : c;
        memset(&x->reply, 0, sizeof x->reply);
        x->reply.cls = DL_RC_FATAL;
        snprintf(x->reply.why, sizeof x->reply.why, "command could not be encoded");
        dl_outbox_replied(w->ob, x);
      }
      group_put(w, g);
      continue;
    }
    char route[DL_KEY_MAX];
    route_of(w, c, route, sizeof route);
    c->owner = w;
    int node = 0;
    const char *ask = c->ask[0] ? c->ask : NULL;
    dl_err se = g ? dl_redis_send(w->r, route, ask, w->enc.p, w->enc.len, on_group_reply, g, &node)
                  : dl_redis_send(w->r, route, ask, w->enc.p, w->enc.len, on_reply, c, &node);
    if (se != DL_EOK) {
      /* its node is not reachable now: they wait, in their place (newest first: the cursor ends
       * at the oldest) */
      for (size_t i = g ? g->n : 1; i-- > 0;) dl_outbox_unsend(w->ob, g ? g->c[i] : c);
      group_put(w, g);
      break;
    }
    w->st.calls++;
    w->inflight_bytes += w->enc.len;
    if (g) g->wire_bytes = w->enc.len;
    else c->wire_bytes = w->enc.len;
    c->ask[0] = 0; /* an ASK redirection is good for one send */
    for (size_t i = 0; i < (g ? g->n : 1); i++) {
      dl_cmd *x = g ? g->c[i] : c;
      x->node = node;
      if (node >= 0 && node < DL_REDIS_NODES_MAX) w->ws[node].sent_upto = x->sendno;
    }
  }
}

/* What the writer does with one classified answer (in c->reply); rep is the reply it came from
 * (for an ASK target), counted is 1 when its error reply was counted already. */
static void settle(dl_writer *w, dl_cmd *c, const redisReply *rep, int counted) {
  const dl_reply_info *ri = &c->reply;
  if (rep && rep->type == REDIS_REPLY_ERROR && !counted) dl_redis_count_error(w->r, ri->err);
  switch (ri->cls) {
  case DL_RC_RETRY:
    w->st.retries++;
    if (rep && ri->err == DL_RERR_ASK) { /* "ASK <slot> <host>:<port>": the next send goes there */
      if (dl_redirect_target(rep->str, c->ask, sizeof c->ask) != 0) c->ask[0] = 0;
    } else if (rep && ri->err != DL_RERR_MOVED && ri->err != DL_RERR_NOSCRIPT) {
      /* an error reply that is not about the topology (a lost connection is paced by reconnects,
       * MOVED/NOSCRIPT are fixed at once): pause before the next try */
      unsigned supp = 0;
      if (dl_ratelimit_allow(&w->err_rl, dl_mono_ms(), 1, &supp))
        dl_log(DL_LOG_WARN, "redis_error", c->live_id[0] ? c->live_id : NULL,
               "write refused: %s; retrying (%u similar suppressed)", ri->why, supp);
      if (!w->waiting) {
        w->waiting = 1;
        int64_t ms = dl_backoff_next(&w->bo);
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(w->retry_ev, &tv);
      }
    }
    break;
  case DL_RC_OK:
    dl_backoff_reset(&w->bo);
    break;
  case DL_RC_FATAL:
    w->st.fatal++;
    break;
  case DL_RC_FENCED:
    w->st.fenced++;
    break;
  default:
    break;
  }
  dl_outbox_replied(w->ob, c);
}

/* The details the hook needs later (counts, reasons) travel on the command (c->reply). */
static void on_reply(void *priv, const redisReply *rep) {
  dl_cmd *c = priv;
  dl_writer *w = c->owner;
  w->inflight_bytes -= c->wire_bytes;
  dl_outbox_classify(c, rep, &c->reply);
  settle(w, c, rep, 0);
  if (rep) dl_writer_pump(w);
}

static void on_group_reply(void *priv, const redisReply *rep) {
  group *g = priv;
  dl_writer *w = g->w;
  w->inflight_bytes -= g->wire_bytes;
  int whole = dl_outbox_classify_group(g->c, g->n, rep);
  if (whole && rep && rep->type == REDIS_REPLY_ERROR) dl_redis_count_error(w->r, g->c[0]->reply.err);
  for (size_t i = 0; i < g->n; i++) settle(w, g->c[i], whole ? rep : rep->element[i], whole);
  group_put(w, g);
  if (rep) dl_writer_pump(w);
}

void dl_writer_on_down(dl_writer *w) {
  for (int i = 0; i < DL_REDIS_NODES_MAX; i++) w->ws[i].inflight = 0, w->ws[i].waited_upto = w->ws[i].sent_upto = 0;
  /* what a lost primary acknowledged but no WAIT confirmed may be gone with it: send it again */
  if (w->wait_replicas > 0) dl_outbox_resend_unconfirmed(w->ob);
}

void dl_writer_push(dl_writer *w, dl_cmd *c) {
  dl_outbox_push(w->ob, c);
  if (!w->corked) dl_writer_pump(w);
}

void dl_writer_cork(dl_writer *w, int on) {
  w->corked = on;
  if (!on) dl_writer_pump(w);
}

int dl_writer_accepting(const dl_writer *w, uint64_t bytes, size_t cmds) { return dl_outbox_accepting(w->ob, bytes, cmds); }
size_t dl_writer_pending(const dl_writer *w) { return dl_outbox_pending(w->ob); }
const dl_outbox *dl_writer_outbox(const dl_writer *w) { return w->ob; }
const dl_writer_stats *dl_writer_stats_get(const dl_writer *w) { return &w->st; }
void dl_writer_set_minid(dl_writer *w, long long minid_ms) { w->env.minid_ms = minid_ms; }
