#include "dl_ingest.h"

#include <ev.h>
#include <libwebsockets.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dl_ingest_int.h"
#include "dl_log.h"
#include "dl_rand.h"

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *inp, size_t len);

const struct lws_protocols ingest_protocols[] = {
    {"dylive", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const char *room_ua(const room *r) { return r->spec.user_agent[0] ? r->spec.user_agent : r->in->ua; }

static room *find_room(dl_ingest *in, const char *live_id) {
  for (room *r = in->rooms; r; r = r->next)
    if (!strcmp(r->spec.live_id, live_id)) return r;
  return NULL;
}

/* Reads flow unless something downstream is full: the queue to Redis (global), this room's
 * stalled frame, or its unsent acks. */
void ingest_room_update_rx(room *r) {
  if (!r->wsi || r->conn != R_OPEN) return;
  int want = !r->in->paused && !r->stalled && !r->ack_paused;
  if (want == r->rx_on) return;
  r->rx_on = want;
  if (want) r->last_rx_ms = r->last_msg_ms = dl_mono_ms(); /* silence while paused was ours */
  lws_rx_flow_control(r->wsi, want);
}

static void acks_clear(room *r) {
  while (r->ack_len) ingest_ack_drop(r);
}

static void room_free(dl_ingest *in, room *r) {
  for (room **pp = &in->rooms; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  dl_tlist_del(&in->hbq, &r->hb_node);
  lws_sul_cancel(&r->sul_retry);
  lws_sul_cancel(&r->sul_silence);
  if (in->o.pool) dl_proxypool_move(in->o.pool, r->proxy_idx, -1);
  if (r->ack_listed)
    for (room **pp = &in->ack_dirty; *pp; pp = &(*pp)->ack_next)
      if (*pp == r) {
        *pp = r->ack_next;
        break;
      }
  acks_clear(r);
  dl_in_msg_free(r->stalled);
  dl_decoder_free(r->dec);
  free(r->spec.cookie);
  dl_buf_free(&r->rx);
  free(r->cursor);
  free(r->internal_ext);
  free(r);
}

/* DL_IN_SILENT with where to resume, through the state reserve like every state message. */
static void post_silent(room *r) {
  dl_ingest *in = r->in;
  dl_in_msg *m = ingest_msg_new();
  if (!m) return;
  m->kind = DL_IN_SILENT;
  snprintf(m->live_id, sizeof m->live_id, "%s", r->spec.live_id);
  snprintf(m->reason, sizeof m->reason, "%s", r->last_error);
  m->cursor = r->cursor ? strdup(r->cursor) : NULL;
  m->internal_ext = r->internal_ext ? strdup(r->internal_ext) : NULL;
  int was_empty = 0;
  if (dl_queue_push_reserved(in->out, m, &was_empty) != DL_EOK) {
    dl_log(DL_LOG_ERROR, "state_lost", r->spec.live_id, "control queue and its reserve full; state message dropped");
    dl_in_msg_free(m);
    return;
  }
  if (was_empty) ingest_wake_control(in);
}

/* Silent risk control (PROTOCOL §9.6): the socket is healthy (pongs and heartbeats flow, the
 * liveness check is satisfied) but no message came for --silence-timeout. Frames without a
 * message and pongs do not count; time with reads paused by us does not either. */
static void silence_cb(lws_sorted_usec_list_t *sul) {
  room *r = lws_container_of(sul, room, sul_silence);
  dl_ingest *in = r->in;
  if (!r->wsi || r->conn != R_OPEN || r->silent) return;
  int64_t now = dl_mono_ms(), quiet = now - r->last_msg_ms;
  if (!r->rx_on || quiet < in->o.silence_ms) {
    int64_t next = r->rx_on ? in->o.silence_ms - quiet : in->o.silence_ms;
    lws_sul_schedule(in->ctx, 0, &r->sul_silence, silence_cb, (next > 0 ? next : 1) * LWS_US_PER_MS);
    return;
  }
  STAT_ADD(in, silent, 1);
  r->silent = 1;
  snprintf(r->last_error, sizeof r->last_error,
           "no message for %lld s while the connection stayed up (silent risk control)", (long long)(quiet / 1000));
  dl_log(DL_LOG_WARN, "ws_silent_risk", r->spec.live_id, "%s; closing for a fresh identity", r->last_error);
  lws_set_timeout(r->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* Tunnels vh's connections through u: the host, port and decoded credentials the pages get too. */
static int set_proxy(struct lws_vhost *vh, const dl_proxy_url *u) {
  char spec[DL_PROXY_LWS_MAX];
  int rc = dl_proxy_url_lws(u, spec, sizeof spec) == 0 && lws_set_proxy(vh, spec) == 0 ? 0 : -1;
  memset(spec, 0, sizeof spec); /* credentials */
  return rc;
}

/* The vhost that tunnels through pool proxy idx (lws keeps one proxy per vhost), made on first
 * use on this thread. NULL when lws refuses it (remembered: the room's proxy is sticky, and every
 * attempt would leave another vhost with its own TLS context behind). */
static struct lws_vhost *proxy_vhost(dl_ingest *in, int idx) {
  dl_proxy_url u;
  uint64_t id;
  if (idx < 0 || idx >= DL_PROXYPOOL_MAX || dl_proxypool_lookup(in->o.pool, idx, &u, &id) != 0) return NULL;
  pvhost *c = &in->proxy_vh[idx];
  if (c->id != id) {
    /* the slot holds another proxy now; the pool kept the last one while any WebSocket went
     * through it, so nothing is bound to its vhost any more */
    if (c->vh) lws_vhost_destroy(c->vh);
    memset(c, 0, sizeof *c);
    c->id = id;
  }
  if (!c->vh && !c->refused) {
    char name[32];
    snprintf(name, sizeof name, "proxy%llu", (unsigned long long)id);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ingest_protocols;
    info.vhost_name = name;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT; /* a client TLS context of its own */
    struct lws_vhost *vh = lws_create_vhost(in->ctx, &info);
    int ok = vh && set_proxy(vh, &u) == 0;
    if (ok) {
      c->vh = vh;
    } else { /* the parser admits only what lws takes (dl_proxy_url_parse): this is a bug, said once */
      if (vh) lws_vhost_destroy(vh);
      c->refused = 1;
      dl_log(DL_LOG_ERROR, "proxy", NULL, "libwebsockets refused the proxy %s", u.label);
    }
  }
  memset(&u, 0, sizeof u);
  return c->vh;
}

static void connect_room(room *r);

static void retry_cb(lws_sorted_usec_list_t *sul) {
  room *r = lws_container_of(sul, room, sul_retry);
  connect_room(r);
}

/* The connection is gone (error or close). Decide what comes next. */
static void room_lost(room *r, const char *why) {
  dl_ingest *in = r->in;
  int was_open = r->conn == R_OPEN;
  r->conn = R_IDLE;
  r->wsi = NULL;
  if (in->stop) return; /* shutting down: dl_ingest_free frees every room */
  dl_buf_reset(&r->rx);
  r->rx_overflow = 0;
  acks_clear(r);
  dl_tlist_del(&in->hbq, &r->hb_node);
  lws_sul_cancel(&r->sul_silence);
  if (r->want_close) {
    ingest_post_state(in, DL_IN_CLOSED, r->spec.live_id, "closed on request");
    room_free(in, r);
    return;
  }
  if (r->ended) {
    ingest_post_state(in, DL_IN_ENDED, r->spec.live_id, "live ended (ControlMessage status 3)");
    room_free(in, r);
    return;
  }
  if (r->silent) { /* the control thread takes it from here: a fresh identity, then open again */
    if (was_open) STAT_ADD(in, disconnects, 1);
    post_silent(r);
    room_free(in, r);
    return;
  }
  if (was_open) STAT_ADD(in, disconnects, 1);
  if (r->got_data) dl_backoff_reset(&r->bo);
  r->got_data = 0;
  int64_t wait = dl_backoff_next(&r->bo);
  if (wait < r->min_wait_ms) wait = r->min_wait_ms;
  r->min_wait_ms = 0;
  char reason[256];
  snprintf(reason, sizeof reason, "%s; reconnecting in %lld ms", why, (long long)wait);
  snprintf(r->last_error, sizeof r->last_error, "%s", why);
  dl_log(DL_LOG_WARN, "ws_lost", r->spec.live_id, "%s", reason);
  ingest_post_state_ex(in, DL_IN_DISCONNECTED, r->spec.live_id, reason, r->rejected);
  r->rejected = 0;
  lws_sul_schedule(in->ctx, 0, &r->sul_retry, retry_cb, wait * LWS_US_PER_MS);
}

static void hbq_cb(lws_sorted_usec_list_t *sul);

/* sul_hbq scheduled for the list's head (when that changed) */
static void hbq_arm(dl_ingest *in) {
  dl_tnode *h = in->hbq.head;
  if (!h) return; /* a sul left scheduled finds nothing due and stops */
  if (in->hbq_armed == h->due) return;
  in->hbq_armed = h->due;
  lws_usec_t wait = h->due - lws_now_usecs();
  lws_sul_schedule(in->ctx, 0, &in->sul_hbq, hbq_cb, wait > 0 ? wait : 1);
}

static void hb_schedule(room *r) {
  dl_ingest *in = r->in;
  dl_tlist_add(&in->hbq, &r->hb_node, lws_now_usecs() + r->hb_ms * LWS_US_PER_MS);
  if (in->hbq.head == &r->hb_node) hbq_arm(in);
}

static void hb_fire(room *r) {
  if (!r->wsi || r->conn != R_OPEN) return;
  int64_t now = dl_mono_ms();
  if (r->rx_on && now - r->last_rx_ms > DL_LIVENESS_PERIODS * r->hb_ms) {
    dl_log(DL_LOG_WARN, "ws_silent", r->spec.live_id, "no frame or pong for %lld ms; dropping the connection",
           (long long)(now - r->last_rx_ms));
    snprintf(r->last_error, sizeof r->last_error, "no data for %lld ms", (long long)(now - r->last_rx_ms));
    lws_set_timeout(r->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    return;
  }
  r->hb_due = 1;
  r->ping_due = 1;
  lws_callback_on_writable(r->wsi);
  hb_schedule(r);
}

static void hbq_cb(lws_sorted_usec_list_t *sul) {
  dl_ingest *in = lws_container_of(sul, dl_ingest, sul_hbq);
  in->hbq_armed = 0;
  lws_usec_t now = lws_now_usecs();
  dl_tnode *t;
  while ((t = dl_tlist_pop_due(&in->hbq, now))) hb_fire(lws_container_of(t, room, hb_node));
  hbq_arm(in);
}

static void connect_room(room *r) {
  dl_ingest *in = r->in;
  if (in->xs && !r->have_sig) { /* ask the external signer first; its answer calls us again */
    if (!r->awaiting_sig) {
      r->awaiting_sig = 1;
      dl_xsign_submit(in->xs, r->spec.live_id, ++r->sign_gen, r->stub, r->spec.room_id, r->spec.user_unique_id);
    }
    return;
  }
  int64_t wait = dl_bucket_take(&in->connects, dl_mono_ms());
  if (wait > 0) { /* paced: try again when a token is there */
    lws_sul_schedule(in->ctx, 0, &r->sul_retry, retry_cb, wait * LWS_US_PER_MS);
    return;
  }
  char *url = malloc(DL_URL_MAX);
  if (!url) return;
  if (r->hb_fixed) { /* Handshake-Options holds for the connection that sent it */
    r->hb_fixed = 0;
    r->hb_ms = in->o.heartbeat_ms;
  }
  char sig[160] = "";
  if (in->xs) {
    snprintf(sig, sizeof sig, "%s", r->ext_sig); /* used once: every connection is signed anew */
    r->have_sig = 0;
  } else if (in->o.sign) {
    dl_signer_sign(&r->signer, r->stub, sig);
  }
  /* path only: dl_wsurl_build wants a base; give it the prefix and keep the path part */
  size_t n = dl_wsurl_build(url, DL_URL_MAX, in->path_prefix, r->spec.room_id, r->spec.user_unique_id, room_ua(r),
                            r->cursor, r->internal_ext, sig, dl_now_ms());
  if (!n) {
    /* cursor/internal_ext from the server too long for a URL: forget them and retry fresh */
    free(r->cursor);
    free(r->internal_ext);
    r->cursor = r->internal_ext = NULL;
    n = dl_wsurl_build(url, DL_URL_MAX, in->path_prefix, r->spec.room_id, r->spec.user_unique_id, room_ua(r), NULL,
                       NULL, sig, dl_now_ms());
  }
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = in->ctx;
  /* a numeric address resolved on the control side: lws would resolve synchronously here and
   * stall every room; the host name still goes into Host and TLS SNI/verification */
  ci.address = r->spec.address[0] ? r->spec.address : in->host;
  int px = in->o.pool ? dl_proxypool_pick(in->o.pool, r->spec.live_id, dl_mono_ms()) : -1;
  /* counted on the proxy at once: the pool keeps an assignment proxy while a WebSocket uses it */
  if (in->o.pool) dl_proxypool_move(in->o.pool, r->proxy_idx, px);
  r->proxy_idx = px;
  if (px >= 0) { /* the room's proxy (the resolver's choice for its pages, by construction) */
    ci.vhost = proxy_vhost(in, px);
    ci.address = in->host; /* the proxy's CONNECT names the host; the proxy resolves it */
    if (!ci.vhost) {
      free(url);
      r->conn = R_CONNECTING;
      room_lost(r, "libwebsockets refused the room's proxy");
      return;
    }
  }
  ci.port = in->port;
  ci.path = url;
  ci.host = in->host;
  ci.origin = "https://live.douyin.com";
  ci.ssl_connection = in->scheme_tls ? LCCSCF_USE_SSL : 0;
  ci.local_protocol_name = "dylive";
  ci.retry_and_idle_policy = &dl_ingest_no_validity; /* per connection: the proxy vhosts have lws's default */
  ci.opaque_user_data = r;
  ci.pwsi = &r->wsi;
  r->conn = R_CONNECTING;
  STAT_ADD(in, connects, 1);
  if (px >= 0) dl_log(DL_LOG_DEBUG, "ws_connect", r->spec.live_id, "connecting to %s:%d through pool proxy #%d",
                      in->host, in->port, px);
  else dl_log(DL_LOG_DEBUG, "ws_connect", r->spec.live_id, "connecting to %s:%d", in->host, in->port);
  struct lws *w = lws_client_connect_via_info(&ci);
  free(url);
  if (!w && r->conn == R_CONNECTING) room_lost(r, "connect failed");
}

static void run_commands(dl_ingest *in) {
  pthread_mutex_lock(&in->mu);
  cmd *c = in->cmds;
  in->cmds = NULL;
  in->cmds_tail = &in->cmds;
  pthread_mutex_unlock(&in->mu);
  while (c) {
    cmd *next = c->next;
    room *r = find_room(in, c->spec.live_id);
    if (c->signed_result) {
      if (r && r->awaiting_sig && c->gen == r->sign_gen) {
        r->awaiting_sig = 0;
        if (c->ok) {
          snprintf(r->ext_sig, sizeof r->ext_sig, "%s", c->sig);
          r->have_sig = 1;
          connect_room(r);
        } else {
          room_lost(r, c->sig);
        }
      }
    } else if (c->open) {
      if (r && !r->want_close && !r->ended) {
        dl_log(DL_LOG_DEBUG, "ingest_open_dup", c->spec.live_id, "already open");
        free(c->spec.cookie);
        free(c->spec.gifts);
      } else if (r) {
        /* being closed: reopen after the close completes is the control thread's job */
        free(c->spec.cookie);
        free(c->spec.gifts);
      } else if ((r = calloc(1, sizeof *r)) != NULL) {
        r->in = in;
        r->spec = c->spec;
        dl_buf_init(&r->rx, in->o.max_frame_bytes);
        r->hb_ms = in->o.heartbeat_ms;
        dl_backoff_init_added(&r->bo, DL_BACKOFF_BASE_MS, DL_BACKOFF_MAX_MS, DL_BACKOFF_JITTER_MS, dl_rand_next(&in->rng));
        dl_backoff_init_added(&r->reject_bo, DL_REJECT_BASE_MS, DL_BACKOFF_MAX_MS, 0, 0);
        r->proxy_idx = -1;
        if (r->spec.cursor[0]) ingest_set_str(&r->cursor, r->spec.cursor); /* resume where the last identity stopped */
        if (r->spec.internal_ext[0]) ingest_set_str(&r->internal_ext, r->spec.internal_ext);
        dl_signer_init(&r->signer, dl_rand_next(&in->rng));
        dl_sign_stub(r->spec.room_id, r->spec.user_unique_id, r->stub); /* the room's identity is fixed */
        r->dec = dl_decoder_new(r->spec.live_id, r->spec.room_id, &in->o.limits);
        if (r->dec) dl_decoder_use_scratch(r->dec, in->scratch); /* one for the thread */
        if (r->dec && r->spec.n_gifts) /* continue the previous owner's streaks: no double count */
          dl_gift_import(dl_decoder_gifts(r->dec), r->spec.gifts, r->spec.n_gifts);
        free(r->spec.gifts);
        r->spec.gifts = NULL;
        r->spec.n_gifts = 0;
        r->next = in->rooms;
        in->rooms = r;
        connect_room(r);
      } else {
        free(c->spec.cookie);
        free(c->spec.gifts);
      }
    } else {
      if (!r) {
        ingest_post_state(in, DL_IN_CLOSED, c->spec.live_id, "not open");
      } else {
        r->want_close = 1;
        if (r->conn == R_IDLE) {
          ingest_post_state(in, DL_IN_CLOSED, r->spec.live_id, "closed on request");
          room_free(in, r);
        } else if (r->wsi) {
          lws_callback_on_writable(r->wsi);
        }
      }
    }
    free(c);
    c = next;
  }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *inp, size_t len) {
  (void)user;
  dl_ingest *in = lws_context_user(lws_get_context(wsi));
  room *r = wsi ? lws_get_opaque_user_data(wsi) : NULL;
  switch (reason) {
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    run_commands(in);
    /* on libev, lws_service never returns by itself: dl_ingest_free's wake-up ends the loop */
    if (in->evloop && __atomic_load_n(&in->stop, __ATOMIC_ACQUIRE)) ev_break(in->evloop, EVBREAK_ALL);
    break;
  case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
    /* keep OpenSSL's reason so the status hash can say it in words; lws still fails closed */
    if (r && !len) {
      X509_STORE_CTX *xs = user;
      snprintf(r->tls_error, sizeof r->tls_error, "TLS certificate verification failed: %s",
               X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
    }
    break;
  case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS:
    /* --ca-file adds to the system store rather than replacing it */
    if (in->ca_file && *in->ca_file &&
        !SSL_CTX_load_verify_locations((SSL_CTX *)user, in->ca_file, NULL))
      dl_log(DL_LOG_ERROR, "tls_ca", NULL, "cannot load CA file %s", in->ca_file);
    break;
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
    if (!r) break;
    unsigned char **p = (unsigned char **)inp, *end = (*p) + len;
    char referer[128];
    snprintf(referer, sizeof referer, "https://live.douyin.com/%s", r->spec.live_id);
    const char *ua = room_ua(r);
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"User-Agent:", (const unsigned char *)ua,
                                    (int)strlen(ua), p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"Referer:", (const unsigned char *)referer,
                                    (int)strlen(referer), p, end))
      return -1;
    if (r->spec.cookie && *r->spec.cookie &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"Cookie:", (const unsigned char *)r->spec.cookie,
                                    (int)strlen(r->spec.cookie), p, end))
      return -1;
    break;
  }
  case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: {
    /* ByteDance push servers may say their ping period on the 101 (PROTOCOL §9.4, TL):
     * "Handshake-Options: ping-interval=<s>;" — the heartbeat follows it, within bounds */
    char ho[128];
    int s_ = 0;
    if (r && lws_hdr_custom_copy(wsi, ho, sizeof ho, "handshake-options:", 18) > 0 &&
        (s_ = dl_handshake_ping_interval(ho)) > 0) {
      r->hb_ms = (int64_t)s_ * 1000;
      r->hb_fixed = 1;
      STAT_ADD(in, ping_interval_adopted, 1);
      dl_log(DL_LOG_DEBUG, "ws_ping_interval", r->spec.live_id, "server ping-interval %d s: heartbeat follows it", s_);
    }
    break;
  }
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (!r) break;
    r->conn = R_OPEN;
    r->rx_on = 1;
    dl_backoff_reset(&r->reject_bo);
    r->ack_paused = 0;
    r->last_rx_ms = r->last_msg_ms = dl_mono_ms();
    r->hb_due = 1; /* one heartbeat at once, then every period (J) */
    lws_callback_on_writable(wsi);
    hb_schedule(r);
    if (in->o.silence_ms > 0)
      lws_sul_schedule(in->ctx, 0, &r->sul_silence, silence_cb, in->o.silence_ms * LWS_US_PER_MS);
    if (in->o.pool && r->proxy_idx >= 0) dl_proxypool_report(in->o.pool, r->proxy_idx, 1, dl_mono_ms());
    ingest_room_update_rx(r);
    dl_log(DL_LOG_INFO, "ws_open", r->spec.live_id, "connected to room %s", r->spec.room_id);
    ingest_post_state(in, DL_IN_CONNECTED, r->spec.live_id, NULL);
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (!r) break;
    if (!r->rx_overflow) {
      dl_err e = dl_buf_add(&r->rx, inp, len); /* capped at --max-frame-bytes */
      if (e == DL_ENOMEM) return -1;
      r->rx_overflow = e == DL_ELIMIT; /* the rest of the message is dropped, then counted */
    }
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      ingest_on_message(r);
      dl_buf_reset(&r->rx);
      r->rx_overflow = 0;
    }
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
    if (r) r->last_rx_ms = dl_mono_ms();
    break;
  case LWS_CALLBACK_CLIENT_WRITEABLE: {
    if (!r) break;
    int w = ingest_write_one(r, wsi);
    if (w < 0) return -1;
    if (w == 1) lws_callback_on_writable(wsi);
    if (w > 0) break;
    if (r->want_close || r->ended) {
      lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
      return -1;
    }
    break;
  }
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    if (r && len >= 2) {
      const unsigned char *b = inp;
      int code = b[0] << 8 | b[1];
      r->min_wait_ms = code == 1013 ? 5000 : code == 1012 ? 3000 : code == 1001 ? 2000 :
                       (code == 1008 || code == 1007) ? 30000 : 0;
      snprintf(r->last_error, sizeof r->last_error, "server closed with code %d", code);
    }
    break;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
    if (!r) break;
    char why[240];
    char hs[32] = "", hm[96] = "";
    /* Douyin refuses a bad signature or a blocked device with HTTP 200 instead of 101 and says
     * why in two headers (PROTOCOL §2.2) */
    int has_status = lws_hdr_custom_copy(wsi, hs, sizeof hs, "handshake-status:", 17) > 0;
    int has_msg = lws_hdr_custom_copy(wsi, hm, sizeof hm, "handshake-msg:", 14) > 0;
    if (has_status || has_msg) {
      r->rejected = 1;
      STAT_ADD(in, rejected, 1);
      r->min_wait_ms = (int)dl_backoff_next(&r->reject_bo); /* never hammer */
      snprintf(why, sizeof why, "handshake refused: HTTP %u, handshake-status %s, handshake-msg %s (signature or device rejected)",
               lws_http_client_http_response(wsi), hs[0] ? hs : "-", hm[0] ? hm : "-");
    } else if (r->tls_error[0]) {
      r->rejected = 1; /* as final as a refused handshake: report it as an error and back off */
      r->min_wait_ms = 30000;
      snprintf(why, sizeof why, "%s", r->tls_error);
      r->tls_error[0] = 0;
    } else {
      snprintf(why, sizeof why, "connect error: %s", inp ? (const char *)inp : "unknown");
      /* no answer from the far end: the proxy's failure when there is one (its rooms move once
       * it keeps failing) */
      if (in->o.pool && r->proxy_idx >= 0) dl_proxypool_report(in->o.pool, r->proxy_idx, 0, dl_mono_ms());
    }
    if ((has_status || has_msg) && in->o.pool && r->proxy_idx >= 0)
      dl_proxypool_report(in->o.pool, r->proxy_idx, 1, dl_mono_ms()); /* the proxy delivered Douyin's answer */
    lws_set_opaque_user_data(wsi, NULL);
    room_lost(r, why);
    break;
  }
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (!r) break;
    lws_set_opaque_user_data(wsi, NULL);
    room_lost(r, r->last_error[0] ? r->last_error : "connection closed");
    break;
  default:
    break;
  }
  return 0;
}

int dl_handshake_ping_interval(const char *v) {
  static const char key[] = "ping-interval";
  for (const char *p = v; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ';') p++;
    size_t l = strcspn(p, ";");
    const char *eq = memchr(p, '=', l);
    size_t kl = eq ? (size_t)(eq - p) : l;
    while (kl && (p[kl - 1] == ' ' || p[kl - 1] == '\t')) kl--;
    if (eq && kl == sizeof key - 1 && !strncasecmp(p, key, kl)) {
      const char *d = eq + 1;
      while (*d == ' ') d++;
      long s = 0;
      int nd = 0;
      for (; *d >= '0' && *d <= '9' && nd < 7; d++, nd++) s = s * 10 + (*d - '0');
      while (*d == ' ' || *d == '\t') d++;
      if (!nd || (*d && *d != ';') || s <= 0) return 0;
      return s < DL_PING_INTERVAL_MIN_S ? DL_PING_INTERVAL_MIN_S : s > DL_PING_INTERVAL_MAX_S ? DL_PING_INTERVAL_MAX_S : (int)s;
    }
    p += l;
  }
  return 0;
}

static int parse_base(dl_ingest *in, const char *base) {
  const char *p;
  if (!strncmp(base, "wss://", 6)) {
    in->scheme_tls = 1;
    p = base + 6;
    in->port = 443;
  } else if (!strncmp(base, "ws://", 5)) {
    p = base + 5;
    in->port = 80;
  } else {
    return -1;
  }
  const char *slash = strchr(p, '/');
  size_t hl = slash ? (size_t)(slash - p) : strlen(p);
  if (!hl || hl >= sizeof in->host) return -1;
  memcpy(in->host, p, hl);
  in->host[hl] = 0;
  char *colon = strrchr(in->host, ':');
  if (colon && !strchr(colon, ']')) {
    in->port = atoi(colon + 1);
    *colon = 0;
  }
  snprintf(in->path_prefix, sizeof in->path_prefix, "%s", slash ? slash : "");
  return 0;
}

static void push_cmd(dl_ingest *in, cmd *c);

/* On the signer's thread: hand the answer to the WebSocket thread. */
static void on_signed(void *ud, const char *live_id, uint64_t gen, int ok, const char *sig, const char *why) {
  dl_ingest *in = ud;
  cmd *c = calloc(1, sizeof *c);
  if (!c) return;
  c->signed_result = 1;
  c->gen = gen;
  c->ok = ok;
  snprintf(c->sig, sizeof c->sig, "%s", ok ? sig : why);
  snprintf(c->spec.live_id, sizeof c->spec.live_id, "%s", live_id);
  push_cmd(in, c);
}

dl_ingest *dl_ingest_new(const dl_ingest_opts *o, dl_queue *out, int wake_fd) {
  dl_ingest *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  in->o = *o;
  in->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
  in->ua = strdup(o->user_agent);
  in->out = out;
  in->wake_fd = wake_fd;
  in->cmds_tail = &in->cmds;
  in->rng = (uint64_t)dl_now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
  dl_bucket_init(&in->connects, o->connect_rate, o->connect_burst, dl_mono_ms());
  pthread_mutex_init(&in->mu, NULL);
  dl_err pe = ingest_msg_pool_bound(o->queue_max_bytes, dl_queue_cap(out));
  in->scratch = dl_decode_scratch_new();
  if (pe != DL_EOK || !in->ua || !in->scratch || parse_base(in, o->ws_base) != 0) {
    dl_ingest_free(in);
    return NULL;
  }
  /* lws reads http_proxy from the environment by itself and knows no no_proxy: the worker
   * decides (dl_proxy) and tells lws explicitly */
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  if (ingest_loop_new(in) != 0) {
    dl_ingest_free(in);
    return NULL;
  }
  if (o->proxy && *o->proxy) { /* the one parser the pages' proxy goes through too (dl_resolve) */
    dl_proxy_url u;
    char why[200];
    struct lws_vhost *vh = lws_get_vhost_by_name(in->ctx, "default");
    int ok = dl_proxy_url_parse(o->proxy, &u, why, sizeof why) == DL_EOK;
    if (ok && (!vh || set_proxy(vh, &u) != 0)) {
      snprintf(why, sizeof why, "libwebsockets refused %s", u.label);
      ok = 0;
    }
    memset(&u, 0, sizeof u);
    if (!ok) {
      dl_log(DL_LOG_ERROR, "proxy", NULL, "the WebSocket's proxy: %s", why);
      dl_ingest_free(in);
      return NULL;
    }
  }
  if (o->signer_url && !(in->xs = dl_xsign_new(o->signer_url, on_signed, in))) {
    dl_ingest_free(in);
    return NULL;
  }
  return in;
}

static void push_cmd(dl_ingest *in, cmd *c) {
  pthread_mutex_lock(&in->mu);
  *in->cmds_tail = c;
  in->cmds_tail = &c->next;
  pthread_mutex_unlock(&in->mu);
  lws_cancel_service(in->ctx);
}

void dl_ingest_open(dl_ingest *in, const dl_room_spec *spec) {
  cmd *c = calloc(1, sizeof *c);
  if (!c) return;
  c->open = 1;
  c->spec = *spec;
  c->spec.cookie = spec->cookie ? strdup(spec->cookie) : NULL;
  c->spec.gifts = NULL;
  c->spec.n_gifts = 0;
  if (spec->n_gifts && (c->spec.gifts = malloc(spec->n_gifts * sizeof *spec->gifts)) != NULL) {
    memcpy(c->spec.gifts, spec->gifts, spec->n_gifts * sizeof *spec->gifts);
    c->spec.n_gifts = spec->n_gifts;
  }
  push_cmd(in, c);
}

void dl_ingest_close(dl_ingest *in, const char *live_id) {
  cmd *c = calloc(1, sizeof *c);
  if (!c) return;
  snprintf(c->spec.live_id, sizeof c->spec.live_id, "%s", live_id);
  push_cmd(in, c);
}

void dl_ingest_stats_get(dl_ingest *in, dl_ingest_stats *out) {
  uint64_t *src = (uint64_t *)&in->st, *dst = (uint64_t *)out;
  for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++) dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

int dl_ingest_paused(dl_ingest *in) { return __atomic_load_n(&in->paused, __ATOMIC_RELAXED); }

const char *dl_ingest_event_loop(const dl_ingest *in) { return in->loop_name; }

void dl_ingest_free(dl_ingest *in) {
  if (!in) return;
  dl_xsign_free(in->xs); /* first: its callback pushes commands to us */
  ingest_loop_free(in);
  while (in->rooms) room_free(in, in->rooms);
  dl_decode_scratch_free(in->scratch); /* after the decoders that used it */
  for (size_t i = 0; i < in->n_ack_pool; i++) free(in->ack_pool[i].data);
  ingest_msg_pool_drain();
  while (in->cmds) {
    cmd *n = in->cmds->next;
    free(in->cmds->spec.cookie);
    free(in->cmds->spec.gifts);
    free(in->cmds);
    in->cmds = n;
  }
  pthread_mutex_destroy(&in->mu);
  free(in->ca_file);
  free(in->ua);
  free(in);
}
