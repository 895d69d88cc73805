#include "dl_redis.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_backoff.h"
#include "dl_limits.h"
#include "dl_log.h"
#include "dl_lua_sha.h"
#include "dl_rconn.h"

typedef struct link {
  dl_redis *r;
  dl_rconn *c;
  int ready;
  int loading;              /* scripts still loading (write link) */
  int is_w;
  struct event *retry;
  dl_backoff bo;
  int64_t down_since;       /* monotonic; 0 while up */
  int64_t last_summary;
  unsigned attempts;
  char last_err[240];
} link;

struct dl_redis {
  struct event_base *base;
  struct evdns_base *dns;
  const dl_config *cfg;
  dl_redis_addr addr;
  SSL_CTX *tls;
  char client_name[160];
  char where[300];
  link w, b;
  char sha[DL_LUA__COUNT][41];
  dl_redis_hooks h;
  dl_redis_stats st;
  int stopping;
};

static void link_connect(link *l);

static void schedule(link *l, int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(l->retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  link_connect(arg);
}

static void link_up(link *l) {
  dl_redis *r = l->r;
  l->ready = 1;
  dl_backoff_reset(&l->bo);
  if (l->is_w) {
    r->st.connected = 1;
    if (l->down_since)
      dl_log(DL_LOG_INFO, "redis_up", NULL, "connected to Redis at %s again after %lld s (%u attempts)", r->where,
             (long long)((dl_mono_ms() - l->down_since) / 1000), l->attempts);
    else
      dl_log(DL_LOG_INFO, "redis_connected", NULL, "connected to Redis at %s", r->where);
  }
  l->down_since = 0;
  l->attempts = 0;
  if (l->is_w && r->h.w_ready) r->h.w_ready(r->h.ud);
  if (!l->is_w && r->h.b_ready) r->h.b_ready(r->h.ud);
}

static void on_script_loaded(dl_rconn *c, const redisReply *rep, void *priv) {
  (void)c;
  link *l = priv;
  if (!rep) return; /* lost: `down` follows */
  if (rep->type == REDIS_REPLY_ERROR) {
    dl_log(DL_LOG_ERROR, "redis_scripts", NULL, "SCRIPT LOAD failed: %.200s", rep->str);
    snprintf(l->last_err, sizeof l->last_err, "SCRIPT LOAD failed: %.200s", rep->str);
    return; /* the write link stays not ready; the next reconnect tries again */
  }
  if (--l->loading == 0 && !l->ready) link_up(l);
}

static void load_scripts(link *l) {
  for (int i = 0; i < DL_LUA__COUNT; i++) {
    const char *argv[] = {"SCRIPT", "LOAD", dl_lua_source[i]};
    if (dl_rconn_argv(l->c, 3, argv, NULL, 0, on_script_loaded, l) == DL_EOK) l->loading++;
  }
}

static void on_ready(dl_rconn *c, void *ud) {
  link *l = ud;
  (void)c;
  if (l->is_w) load_scripts(l);
  else link_up(l);
}

static void on_down(dl_rconn *c, void *ud, const char *why) {
  link *l = ud;
  dl_redis *r = l->r;
  (void)c;
  int was_ready = l->ready;
  dl_rconn_free(l->c);
  l->c = NULL;
  l->ready = 0;
  l->loading = 0;
  snprintf(l->last_err, sizeof l->last_err, "%s", why);
  if (l->is_w) {
    r->st.connected = 0;
    if (was_ready) r->st.reconnects++;
  }
  int64_t now = dl_mono_ms(), wait = dl_backoff_next(&l->bo);
  if (!l->down_since) {
    l->down_since = now;
    l->last_summary = now;
    if (l->is_w)
      dl_log(DL_LOG_WARN, "redis_down", NULL, "%s Redis at %s: %s; retrying with a growing pause (%d s up to %d s)",
             was_ready ? "lost" : "cannot reach", r->where, why, DL_REDIS_RETRY_MS / 1000, DL_REDIS_RETRY_MAX_MS / 1000);
  } else if (l->is_w && now - l->last_summary >= DL_REDIS_DOWN_SUMMARY_MS) {
    l->last_summary = now;
    dl_log(DL_LOG_WARN, "redis_down", NULL, "still cannot reach Redis at %s after %lld s and %u attempts: %s", r->where,
           (long long)((now - l->down_since) / 1000), l->attempts, why);
  } else {
    dl_log(DL_LOG_DEBUG, "redis_down", NULL, "%s: %s (retry in %lld ms)", l->is_w ? "write" : "claims", why,
           (long long)wait);
  }
  if (l->is_w && was_ready && r->h.w_down) r->h.w_down(r->h.ud);
  if (!l->is_w && was_ready && r->h.b_down) r->h.b_down(r->h.ud);
  if (!r->stopping) schedule(l, wait);
}

static void link_connect(link *l) {
  dl_redis *r = l->r;
  if (l->c || r->stopping) return;
  l->attempts++;
  dl_rconn_target t;
  memset(&t, 0, sizeof t);
  snprintf(t.host, sizeof t.host, "%s", r->addr.host);
  t.port = r->addr.port;
  snprintf(t.unix_path, sizeof t.unix_path, "%s", r->addr.unix_path);
  t.tls = r->tls;
  if (r->cfg->redis_sni && *r->cfg->redis_sni) snprintf(t.sni, sizeof t.sni, "%s", r->cfg->redis_sni);
  dl_rconn_opts o = {r->addr.user, r->addr.password, r->addr.db, r->client_name, DL_REDIS_CONNECT_TIMEOUT_MS,
                     DL_REDIS_COMMAND_TIMEOUT_MS, r->dns};
  dl_rconn_events ev = {on_ready, on_down, l};
  l->c = dl_rconn_open(r->base, &t, &o, &ev);
  if (!l->c) schedule(l, dl_backoff_next(&l->bo));
}

static SSL_CTX *make_tls(const dl_config *cfg, char *why, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return snprintf(why, cap, "cannot create a TLS context"), NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int ok = cfg->redis_ca_file && *cfg->redis_ca_file
               ? SSL_CTX_load_verify_locations(ctx, cfg->redis_ca_file, NULL)
               : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    snprintf(why, cap, "--redis-ca-file: cannot load %s", cfg->redis_ca_file ? cfg->redis_ca_file : "the system store");
    goto fail;
  }
  int has_cert = cfg->redis_cert && *cfg->redis_cert, has_key = cfg->redis_key && *cfg->redis_key;
  if (has_cert != has_key) {
    snprintf(why, cap, "--redis-cert and --redis-key go together");
    goto fail;
  }
  if (has_cert && (SSL_CTX_use_certificate_chain_file(ctx, cfg->redis_cert) != 1 ||
                   SSL_CTX_use_PrivateKey_file(ctx, cfg->redis_key, SSL_FILETYPE_PEM) != 1 ||
                   SSL_CTX_check_private_key(ctx) != 1)) {
    snprintf(why, cap, "--redis-cert/--redis-key: cannot load the client certificate: %s",
             ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error()) : "?");
    goto fail;
  }
  return ctx;
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

/* The password also from the environment or a file (so it need not sit in a URL or argv). */
static int password_from_env(dl_redis_addr *a, char *why, size_t cap) {
  if (a->password[0]) return 0;
  const char *pw = getenv("DYLIVE_REDIS_PASSWORD"), *file = getenv("DYLIVE_REDIS_PASSWORD_FILE");
  if (pw && *pw) {
    snprintf(a->password, sizeof a->password, "%s", pw);
  } else if (file && *file) {
    FILE *f = fopen(file, "r");
    if (!f) return snprintf(why, cap, "DYLIVE_REDIS_PASSWORD_FILE: cannot read %s", file), -1;
    if (!fgets(a->password, sizeof a->password, f)) a->password[0] = 0;
    fclose(f);
    a->password[strcspn(a->password, "\r\n")] = 0;
  }
  return 0;
}

dl_redis *dl_redis_new(struct event_base *base, const dl_config *cfg, const dl_redis_hooks *h, char *why,
                       size_t why_cap) {
  dl_redis *r = calloc(1, sizeof *r);
  if (!r) return snprintf(why, why_cap, "out of memory"), NULL;
  r->base = base;
  r->cfg = cfg;
  r->h = *h;
  if (dl_redis_parse_url(cfg->redis_url, &r->addr, why, why_cap) != 0 ||
      password_from_env(&r->addr, why, why_cap) != 0)
    goto fail;
  if (r->addr.mode != DL_RURL_SINGLE) {
    snprintf(why, why_cap, "--redis: %s URLs are not supported by this build yet",
             r->addr.mode == DL_RURL_SENTINEL ? "sentinel" : "cluster");
    goto fail;
  }
  if (r->addr.tls && !(r->tls = make_tls(cfg, why, why_cap))) goto fail;
  if (r->addr.unix_path[0]) snprintf(r->where, sizeof r->where, "%s", r->addr.unix_path);
  else snprintf(r->where, sizeof r->where, "%s%s:%d", r->addr.tls ? "tls://" : "", r->addr.host, r->addr.port);
  snprintf(r->client_name, sizeof r->client_name, "dylive:%s", cfg->worker_id);
  r->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  if (!r->dns) r->dns = evdns_base_new(base, 0); /* no resolv.conf: numeric addresses still work */
  for (int i = 0; i < DL_LUA__COUNT; i++) dl_lua_sha1((dl_lua_script)i, r->sha[i]);
  link *ls[2] = {&r->w, &r->b};
  for (int i = 0; i < 2; i++) {
    ls[i]->r = r;
    ls[i]->is_w = i == 0;
    ls[i]->retry = evtimer_new(base, on_retry, ls[i]);
    dl_backoff_init(&ls[i]->bo, DL_REDIS_RETRY_MS, DL_REDIS_RETRY_MAX_MS, (uint64_t)dl_now_ms() ^ (uint64_t)(i + 1));
    if (!ls[i]->retry) {
      snprintf(why, why_cap, "out of memory");
      goto fail;
    }
  }
  return r;
fail:
  dl_redis_free(r);
  return NULL;
}

void dl_redis_start(dl_redis *r) {
  link_connect(&r->w);
  link_connect(&r->b);
}

void dl_redis_free(dl_redis *r) {
  if (!r) return;
  r->stopping = 1;
  link *ls[2] = {&r->w, &r->b};
  for (int i = 0; i < 2; i++) {
    if (ls[i]->c) dl_rconn_free(ls[i]->c);
    if (ls[i]->retry) event_free(ls[i]->retry);
  }
  if (r->dns) evdns_base_free(r->dns, 0);
  if (r->tls) SSL_CTX_free(r->tls);
  free(r);
}

int dl_redis_w_ready(const dl_redis *r) { return r->w.ready && r->w.c; }
int dl_redis_b_ready(const dl_redis *r) { return r->b.ready && r->b.c; }
const char *dl_redis_sha(const dl_redis *r, dl_lua_script s) { return r->sha[s]; }
const char *dl_redis_where(const dl_redis *r) { return r->where; }
const dl_redis_stats *dl_redis_stats_get(const dl_redis *r) { return &r->st; }

void dl_redis_count_error(dl_redis *r, dl_rerr kind) {
  if ((unsigned)kind < DL_RERR__COUNT) r->st.errors[kind]++;
}

/* dl_rconn's callback shape → ours (priv carries both). */
typedef struct thunk {
  dl_redis_cb cb;
  void *priv;
} thunk;

static void thunk_cb(dl_rconn *c, const redisReply *rep, void *p) {
  (void)c;
  thunk t = *(thunk *)p;
  free(p);
  if (t.cb) t.cb(t.priv, rep);
}

static thunk *mk_thunk(dl_redis_cb cb, void *priv) {
  thunk *t = malloc(sizeof *t);
  if (t) *t = (thunk){cb, priv};
  return t;
}

dl_err dl_redis_call(dl_redis *r, const char *route, int argc, const char *const *argv, const size_t *lens,
                     dl_redis_cb cb, void *priv) {
  (void)route; /* one node: nothing to route */
  if (!dl_redis_w_ready(r)) return DL_ECLOSED;
  thunk *t = mk_thunk(cb, priv);
  if (!t) return DL_ENOMEM;
  dl_err e = dl_rconn_argv(r->w.c, argc, argv, lens, 0, thunk_cb, t);
  if (e != DL_EOK) free(t);
  return e;
}

dl_err dl_redis_script(dl_redis *r, dl_lua_script s, int nkeys, const char *const *keys, int nargs,
                       const char *const *args, dl_redis_cb cb, void *priv) {
  const char *argv[32];
  char nk[16];
  if (3 + nkeys + nargs > 32) return DL_ELIMIT;
  snprintf(nk, sizeof nk, "%d", nkeys);
  int n = 0;
  argv[n++] = "EVALSHA";
  argv[n++] = r->sha[s];
  argv[n++] = nk;
  for (int i = 0; i < nkeys; i++) argv[n++] = keys[i];
  for (int i = 0; i < nargs; i++) argv[n++] = args[i];
  return dl_redis_call(r, nkeys ? keys[0] : NULL, n, argv, NULL, cb, priv);
}

dl_err dl_redis_send(dl_redis *r, const char *route, const void *resp, size_t len, dl_redis_cb cb, void *priv) {
  (void)route;
  if (!dl_redis_w_ready(r)) return DL_ECLOSED;
  thunk *t = mk_thunk(cb, priv);
  if (!t) return DL_ENOMEM;
  dl_err e = dl_rconn_send(r->w.c, resp, len, 0, thunk_cb, t);
  if (e != DL_EOK) free(t);
  return e;
}

dl_err dl_redis_claim_call(dl_redis *r, int argc, const char *const *argv, const size_t *lens, int64_t block_ms,
                           dl_redis_cb cb, void *priv) {
  if (!dl_redis_b_ready(r)) return DL_ECLOSED;
  thunk *t = mk_thunk(cb, priv);
  if (!t) return DL_ENOMEM;
  dl_err e = dl_rconn_argv(r->b.c, argc, argv, lens, block_ms, thunk_cb, t);
  if (e != DL_EOK) free(t);
  return e;
}

void dl_redis_reload_scripts(dl_redis *r) {
  if (!dl_redis_w_ready(r)) return;
  for (int i = 0; i < DL_LUA__COUNT; i++) {
    const char *argv[] = {"SCRIPT", "LOAD", dl_lua_source[i]};
    dl_rconn_argv(r->w.c, 3, argv, NULL, 0, NULL, NULL);
  }
}
