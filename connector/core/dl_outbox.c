#include "dl_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_lua.h"

struct dl_outbox {
  dl_outbox_limits lim;
  dl_spool *spool;
  char prefix[80];
  dl_cmd *head, *tail;      /* memory tier */
  size_t len, bytes;
  dl_cmd *cursor;           /* no UNSENT command before it (NULL: start from head) */
  int cursor_valid;
  dl_cmd *ovf_head, *ovf_tail; /* overflow tier */
  size_t ovf_len;
  int probing;
  int confirm;              /* --redis-wait-replicas: applied commands wait for a WAIT */
  uint64_t sendno;
  dl_outbox_stats st;
  dl_buf rec_out, rec_in;   /* a spool record being written / read, kept for the next one */
};

/* What the record buffers keep between records (a bigger one, a huge command's, is freed). */
#define OUTBOX_REC_KEEP (1u << 20)

const char *dl_rerr_name(dl_rerr k) {
  static const char *const names[] = {
#define DL_RERR_STR(n, s) s,
      DL_RERR_MAP(DL_RERR_STR)
#undef DL_RERR_STR
  };
  return (unsigned)k < DL_RERR__COUNT ? names[k] : "other";
}

/* Error replies that say "not now" rather than "never". */
static const struct {
  const char *code;
  dl_rerr kind;
} transient[] = {
    {"OOM", DL_RERR_OOM},        {"READONLY", DL_RERR_READONLY}, {"MOVED", DL_RERR_MOVED},
    {"ASK", DL_RERR_ASK},        {"NOSCRIPT", DL_RERR_NOSCRIPT}, {"LOADING", DL_RERR_OTHER},
    {"BUSY", DL_RERR_OTHER},     {"MASTERDOWN", DL_RERR_OTHER},  {"TRYAGAIN", DL_RERR_OTHER},
    {"CLUSTERDOWN", DL_RERR_OTHER}, {"NOREPLICAS", DL_RERR_OTHER}, {"NOAUTH", DL_RERR_OTHER},
    {"WRONGPASS", DL_RERR_OTHER}, {"NOPERM", DL_RERR_OTHER},     {"UNBLOCKED", DL_RERR_OTHER},
};

void dl_outbox_classify(const dl_cmd *c, const redisReply *r, dl_reply_info *out) {
  memset(out, 0, sizeof *out);
  if (!r) {
    out->cls = DL_RC_RETRY;
    snprintf(out->why, sizeof out->why, "connection lost");
    return;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    size_t wl = strcspn(r->str ? r->str : "", " ");
    snprintf(out->why, sizeof out->why, "%.230s", r->str ? r->str : "");
    out->err = DL_RERR_OTHER;
    out->cls = DL_RC_FATAL;
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
      if (strlen(transient[i].code) == wl && !strncmp(r->str, transient[i].code, wl)) {
        out->cls = DL_RC_RETRY;
        out->err = transient[i].kind;
      }
    return;
  }
  if (c->kind == DL_CMD_PLAIN) {
    out->cls = DL_RC_OK;
    return;
  }
  /* room.lua → {code, written[, desired]}; orphan.lua → {written, duplicates} */
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements > 3 || r->element[0]->type != REDIS_REPLY_INTEGER ||
      r->element[1]->type != REDIS_REPLY_INTEGER) {
    out->cls = DL_RC_FATAL;
    snprintf(out->why, sizeof out->why, "unexpected reply to a %s write", c->kind == DL_CMD_ROOM ? "room" : "replay");
    return;
  }
  long long a = r->element[0]->integer, b = r->element[1]->integer;
  if (c->kind == DL_CMD_ORPHAN) {
    out->cls = DL_RC_OK;
    out->written = a;
    out->dups = b;
    return;
  }
  switch (a) {
  case DL_LUA_OK:
    out->cls = DL_RC_OK;
    out->written = b;
    if (r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
      snprintf(out->desired, sizeof out->desired, "%.*s", (int)r->element[2]->len, r->element[2]->str);
    break;
  case DL_LUA_APPLIED:
    /* an earlier send of this very write was applied and its reply lost with the connection:
     * its events are in the stream (once), so they count as written */
    out->cls = DL_RC_OK;
    out->applied_before = 1;
    out->written = c->nevents;
    break;
  case DL_LUA_GAP:
    out->cls = DL_RC_GAP;
    snprintf(out->why, sizeof out->why, "write %llu arrived before its predecessor", (unsigned long long)c->seq);
    break;
  case DL_LUA_FENCED:
    out->cls = DL_RC_FENCED;
    snprintf(out->why, sizeof out->why, "the room's lease belongs to another worker");
    break;
  default:
    out->cls = DL_RC_FATAL;
    snprintf(out->why, sizeof out->why, "unknown room write code %lld", a);
  }
}

int dl_outbox_classify_group(dl_cmd *const *cs, size_t n, const redisReply *r) {
  int whole = !r || r->type != REDIS_REPLY_ARRAY || r->elements != n;
  for (size_t i = 0; i < n; i++) {
    if (!whole) {
      dl_outbox_classify(cs[i], r->element[i], &cs[i]->reply);
    } else if (r && r->type != REDIS_REPLY_ERROR) {
      memset(&cs[i]->reply, 0, sizeof cs[i]->reply);
      cs[i]->reply.cls = DL_RC_FATAL;
      snprintf(cs[i]->reply.why, sizeof cs[i]->reply.why, "unexpected reply to a room write");
    } else {
      dl_outbox_classify(cs[i], r, &cs[i]->reply);
    }
  }
  return whole;
}

dl_outbox *dl_outbox_new(const dl_outbox_limits *lim, dl_spool *spool, const char *prefix) {
  dl_outbox *ob = calloc(1, sizeof *ob);
  if (!ob) return NULL;
  ob->lim = *lim;
  ob->spool = spool;
  snprintf(ob->prefix, sizeof ob->prefix, "%s", prefix);
  dl_buf_init(&ob->rec_out, DL_CMD_RECORD_MAX);
  dl_buf_init(&ob->rec_in, DL_CMD_RECORD_MAX);
  return ob;
}

void dl_outbox_free(dl_outbox *ob) {
  if (!ob) return;
  for (dl_cmd *l[2] = {ob->head, ob->ovf_head}, **pl = l; pl < l + 2; pl++)
    while (*pl) {
      dl_cmd *n = (*pl)->next;
      dl_cmd_free(*pl);
      *pl = n;
    }
  dl_buf_free(&ob->rec_out);
  dl_buf_free(&ob->rec_in);
  free(ob);
}

static int mem_full(const dl_outbox *ob) { return ob->len >= ob->lim.max_cmds || ob->bytes >= ob->lim.max_bytes; }
static int spool_has(const dl_outbox *ob) { return ob->spool && dl_spool_pending_bytes(ob->spool) > 0; }

static void mem_append(dl_outbox *ob, dl_cmd *c) {
  c->next = NULL;
  c->state = DL_CS_UNSENT;
  if (ob->tail) ob->tail->next = c;
  else ob->head = c;
  ob->tail = c;
  ob->len++;
  ob->bytes += dl_cmd_bytes(c);
  if (ob->cursor_valid && !ob->cursor) ob->cursor = c;
}

static void rec_done(dl_buf *b) {
  if (b->cap > OUTBOX_REC_KEEP) dl_buf_free(b);
  dl_buf_reset(b);
}

static int spool_put(dl_outbox *ob, const dl_cmd *c) {
  dl_buf *rec = &ob->rec_out;
  dl_buf_reset(rec);
  (void)dl_buf_reserve(rec, dl_cmd_bytes(c) + 256); /* best effort: one growth, not a chain */
  dl_err e = dl_cmd_to_record(c, rec);
  if (e == DL_EOK) e = dl_spool_append(ob->spool, rec->p, (uint32_t)rec->len);
  rec_done(rec);
  if (e != DL_EOK && e != DL_EFULL) ob->st.spool_errors++;
  return e == DL_EOK ? 0 : -1;
}

/* A spooled command's `then` follows it as its own record: on disk the condition is lost (it is
 * sent whatever the command's outcome), which only matters for a worker that is fenced while it
 * spools — a stale lifecycle entry, never a stale room write. */
static int spool_cmd(dl_outbox *ob, dl_cmd *c) {
  if (spool_put(ob, c) != 0) return -1;
  ob->st.spooled++;
  dl_cmd *then = c->then;
  c->then = NULL;
  dl_cmd_free(c);
  if (then && spool_put(ob, then) != 0) {
    then->next = NULL; /* keep it: the overflow list takes it */
    if (ob->ovf_tail) ob->ovf_tail->next = then;
    else ob->ovf_head = then;
    ob->ovf_tail = then;
    ob->ovf_len++;
    return 0;
  }
  dl_cmd_free(then);
  return 0;
}

void dl_outbox_push(dl_outbox *ob, dl_cmd *c) {
  if (!c) return;
  if (!spool_has(ob) && !ob->ovf_head && !mem_full(ob)) {
    mem_append(ob, c);
    return;
  }
  if (ob->spool && !ob->ovf_head && spool_cmd(ob, c) == 0) return;
  c->next = NULL;
  if (ob->ovf_tail) ob->ovf_tail->next = c;
  else ob->ovf_head = c;
  ob->ovf_tail = c;
  ob->ovf_len++;
}

/* Moves spooled (then overflow) commands into memory while there is room. Each spool call makes
 * progress, so a damaged file costs a few calls, never a loop. */
static void refill(dl_outbox *ob) {
  while (!mem_full(ob) && (spool_has(ob) || ob->ovf_head)) {
    if (spool_has(ob)) {
      dl_err e = dl_spool_next_buf(ob->spool, &ob->rec_in);
      if (e == DL_EPROTO) {
        ob->st.spool_bad++;
        continue;
      }
      if (e != DL_EOK) { /* I/O failure or no memory: try again on the next completion */
        ob->st.spool_errors++;
        return;
      }
      dl_cmd *c = NULL;
      char why[160];
      if (dl_cmd_from_record(ob->rec_in.p, ob->rec_in.len, ob->prefix, &c, why, sizeof why) != DL_EOK)
        ob->st.spool_bad++;
      rec_done(&ob->rec_in);
      if (c) mem_append(ob, c);
    } else {
      dl_cmd *c = ob->ovf_head;
      ob->ovf_head = c->next;
      if (!ob->ovf_head) ob->ovf_tail = NULL;
      ob->ovf_len--;
      mem_append(ob, c);
    }
  }
}

int dl_outbox_accepting(const dl_outbox *ob, uint64_t bytes, size_t cmds) {
  if (ob->ovf_head) return 0;
  /* memory takes it all: nothing spooled before it, and room for every byte and command */
  if (!spool_has(ob) && ob->len + cmds <= ob->lim.max_cmds && ob->bytes + bytes <= ob->lim.max_bytes) return 1;
  /* else the spool must take what memory does not (at most all of it) */
  return ob->spool && dl_spool_free_bytes(ob->spool) > bytes;
}

dl_cmd *dl_outbox_next(dl_outbox *ob) {
  if (ob->probing) {
    if (ob->head && ob->head->state == DL_CS_UNSENT) {
      ob->head->state = DL_CS_INFLIGHT;
      ob->head->sendno = ++ob->sendno;
      return ob->head;
    }
    return NULL;
  }
  dl_cmd *c = ob->cursor_valid ? ob->cursor : ob->head;
  while (c && c->state != DL_CS_UNSENT) c = c->next;
  if (!c) {
    ob->cursor = NULL;
    ob->cursor_valid = 1;
    return NULL;
  }
  c->state = DL_CS_INFLIGHT;
  c->sendno = ++ob->sendno;
  ob->cursor = c->next;
  ob->cursor_valid = 1;
  return c;
}

void dl_outbox_unsend(dl_outbox *ob, dl_cmd *c) {
  c->state = DL_CS_UNSENT;
  ob->cursor_valid = 0;
}

void dl_outbox_set_confirm(dl_outbox *ob, int on) { ob->confirm = on; }
uint64_t dl_outbox_last_sendno(const dl_outbox *ob) { return ob->sendno; }

void dl_outbox_confirm(dl_outbox *ob, int node, uint64_t upto) {
  for (dl_cmd *c = ob->head; c; c = c->next)
    if (c->state == DL_CS_DONE && c->node == node && c->sendno <= upto) c->confirmed = 1;
}

size_t dl_outbox_unconfirmed(const dl_outbox *ob) {
  size_t n = 0;
  for (const dl_cmd *c = ob->head; c; c = c->next) n += c->state == DL_CS_DONE && !c->confirmed;
  return n;
}

void dl_outbox_resend_unconfirmed(dl_outbox *ob) {
  for (dl_cmd *c = ob->head; c; c = c->next)
    if (c->state == DL_CS_DONE && !c->confirmed) {
      c->state = DL_CS_UNSENT;
    }
  ob->cursor_valid = 0;
}

/* Is an earlier write of the same room still waiting for its outcome? */
static int predecessor_pending(const dl_outbox *ob, const dl_cmd *c) {
  for (const dl_cmd *x = ob->head; x && x != c; x = x->next)
    if (x->kind == DL_CMD_ROOM && x->state != DL_CS_DONE && !strcmp(x->live_id, c->live_id)) return 1;
  return 0;
}

void dl_outbox_replied(dl_outbox *ob, dl_cmd *c) {
  const dl_reply_info *ri = &c->reply;
  switch (ri->cls) {
  case DL_RC_RETRY:
    dl_outbox_unsend(ob, c);
    ob->probing = 1;
    return;
  case DL_RC_GAP:
    if (predecessor_pending(ob, c)) {
      dl_outbox_unsend(ob, c);
      ob->probing = 1;
      return;
    }
    /* nothing of this room is pending before it: the predecessor is lost for good */
    c->force = 1;
    ob->st.gaps++;
    dl_outbox_unsend(ob, c);
    return;
  default:
    c->state = DL_CS_DONE;
    /* only an applied write waits for the replicas; a fenced or refused one is final at once */
    c->confirmed = ri->cls != DL_RC_OK || !ob->confirm;
    if (c == ob->head && ri->cls == DL_RC_OK) ob->probing = 0;
  }
}

void dl_outbox_disconnected(dl_outbox *ob) {
  for (dl_cmd *c = ob->head; c; c = c->next)
    if (c->state == DL_CS_INFLIGHT) c->state = DL_CS_UNSENT;
  ob->cursor_valid = 0;
}

/* A finished command's follow-up goes after a success, or in any case when it says so. */
static int then_due(const dl_cmd *c) { return c->then && (c->reply.cls == DL_RC_OK || c->then_always); }

dl_cmd *dl_outbox_pop(dl_outbox *ob) {
  dl_cmd *c = ob->head;
  if (!c || c->state != DL_CS_DONE || !c->confirmed) return NULL;
  ob->head = c->next;
  if (!ob->head) ob->tail = NULL;
  if (ob->cursor == c) ob->cursor = c->next;
  ob->len--;
  ob->bytes -= dl_cmd_bytes(c);
  c->next = NULL;
  if (then_due(c)) { /* a follow-up: now it may go */
    dl_cmd *then = c->then;
    c->then = NULL;
    dl_outbox_push(ob, then);
  }
  refill(ob);
  return c;
}

size_t dl_outbox_save(dl_outbox *ob) {
  size_t saved = 0;
  for (dl_cmd *l[2] = {ob->head, ob->ovf_head}, **pl = l; pl < l + 2; pl++)
    for (dl_cmd *c = *pl, *n; c; c = n) {
      n = c->next;
      if (c->state == DL_CS_DONE) { /* finished: only its follow-up is still to do */
        if (then_due(c) && ob->spool && spool_put(ob, c->then) == 0) saved++;
      } else if (ob->spool && spool_put(ob, c) == 0) {
        saved++;
        if (c->then && spool_put(ob, c->then) == 0) saved++;
      } else {
        ob->st.spool_errors++;
      }
      dl_cmd_free(c);
    }
  ob->head = ob->tail = ob->ovf_head = ob->ovf_tail = ob->cursor = NULL;
  ob->len = ob->bytes = ob->ovf_len = 0;
  return saved;
}

int dl_outbox_probing(const dl_outbox *ob) { return ob->probing; }

size_t dl_outbox_pending(const dl_outbox *ob) {
  return ob->len + ob->ovf_len + (ob->spool ? (size_t)dl_spool_pending_records(ob->spool) : 0);
}
size_t dl_outbox_mem_cmds(const dl_outbox *ob) { return ob->len; }
size_t dl_outbox_mem_bytes(const dl_outbox *ob) { return ob->bytes; }
uint64_t dl_outbox_spool_bytes(const dl_outbox *ob) { return ob->spool ? dl_spool_pending_bytes(ob->spool) : 0; }
const dl_outbox_stats *dl_outbox_stats_get(const dl_outbox *ob) { return &ob->st; }
