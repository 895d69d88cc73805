#include "dl_writer.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "dl_backoff.h"
#include "dl_limits.h"
#include "dl_log.h"

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
  dl_buf enc;             /* reused encoding buffer */
  dl_ratelimit err_rl;
};

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  dl_writer *w = arg;
  w->waiting = 0;
  dl_writer_pump(w);
}

dl_writer *dl_writer_new(struct event_base *base, dl_redis *r, dl_outbox *ob, const dl_cmd_env *env,
                         const dl_writer_hooks *h) {
  dl_writer *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->base = base;
  w->r = r;
  w->ob = ob;
  w->env = *env;
  w->h = *h;
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
  free(w);
}

static void on_reply(void *priv, const redisReply *rep);

/* Hands finished commands to the hook, oldest first. */
static void complete(dl_writer *w) {
  dl_cmd *c;
  while ((c = dl_outbox_pop(w->ob))) {
    dl_reply_info ri;
    memset(&ri, 0, sizeof ri);
    ri.cls = (dl_reply_class)c->result;
    ri.written = c->written;
    snprintf(ri.why, sizeof ri.why, "%s", c->why);
    w->st.commands++;
    if (w->h.done) w->h.done(w->h.ud, c, &ri);
    dl_cmd_free(c);
  }
}

void dl_writer_pump(dl_writer *w) {
  if (w->waiting || !dl_redis_w_ready(w->r)) return;
  dl_cmd *c;
  while ((c = dl_outbox_next(w->ob))) {
    dl_buf_reset(&w->enc);
    if (dl_cmd_encode(c, &w->env, &w->enc) != DL_EOK) { /* cannot happen within the limits: say so */
      dl_reply_info ri = {.cls = DL_RC_FATAL};
      snprintf(c->why, sizeof c->why, "command could not be encoded");
      dl_outbox_replied(w->ob, c, &ri);
      continue;
    }
    c->owner = w;
    if (dl_redis_send(w->r, c->live_id, w->enc.p, w->enc.len, on_reply, c) != DL_EOK) {
      dl_outbox_disconnected(w->ob); /* not sent: stays pending, sent when the connection is back */
      break;
    }
  }
  complete(w);
}

/* The details the hook needs later (counts, reasons) travel on the command. */
static void on_reply(void *priv, const redisReply *rep) {
  dl_cmd *c = priv;
  dl_writer *w = c->owner;
  dl_reply_info ri;
  dl_outbox_classify(c, rep, &ri);
  if (rep && rep->type == REDIS_REPLY_ERROR) dl_redis_count_error(w->r, ri.err);
  switch (ri.cls) {
  case DL_RC_RETRY:
    w->st.retries++;
    if (rep) { /* an error reply (a lost connection is paced by the reconnect) */
      unsigned supp = 0;
      if (dl_ratelimit_allow(&w->err_rl, dl_mono_ms(), 1, &supp))
        dl_log(DL_LOG_WARN, "redis_error", c->live_id[0] ? c->live_id : NULL,
               "write refused: %s; retrying (%u similar suppressed)", ri.why, supp);
      if (ri.err == DL_RERR_NOSCRIPT) {
        dl_redis_reload_scripts(w->r);
      } else if (!w->waiting) {
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
  /* what the room needs to know later: events written, the reason of a failure */
  c->written = ri.written;
  snprintf(c->why, sizeof c->why, "%s", ri.why);
  dl_outbox_replied(w->ob, c, &ri);
  if (rep) dl_writer_pump(w);
}

void dl_writer_push(dl_writer *w, dl_cmd *c) {
  dl_outbox_push(w->ob, c);
  dl_writer_pump(w);
}

int dl_writer_accepting(const dl_writer *w, uint64_t hint) { return dl_outbox_accepting(w->ob, hint); }
size_t dl_writer_pending(const dl_writer *w) { return dl_outbox_pending(w->ob); }
const dl_outbox *dl_writer_outbox(const dl_writer *w) { return w->ob; }
const dl_writer_stats *dl_writer_stats_get(const dl_writer *w) { return &w->st; }
void dl_writer_set_minid(dl_writer *w, long long minid_ms) { w->env.minid_ms = minid_ms; }
