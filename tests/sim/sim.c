/* dylive-sim: a local Douyin live-room simulator (HTTP pre-flight + webcast WebSocket push).
 *
 * Single-threaded, non-blocking, epoll (level-triggered). HTTP/1.1 and RFC 6455 on one port,
 * 127.0.0.1 only. Optional TLS on the same port (first byte 0x16 = TLS ClientHello).
 * See tests/sim/README.md for the CLI and the endpoints. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "sim_abogus.h"
#include "sim_util.h"

#define HTTP_MAX_HEAD (64 * 1024)
#define WS_MAX_MSG (16u * 1024 * 1024)
#define MAX_HDRS 64
#define BOMB_SIZE ((size_t)257 * 1024 * 1024)
#define IDENT_MAX 64        /* recorded webcast_sdk_version / update_version_code, and sdk= (bytes, truncated) */
#define ORIGIN_MAX 128      /* recorded Origin (bytes, truncated) */
#define UPGRADE_LOG 16      /* upgrades remembered per room for /_sim/stats */
#define HS_OPTS_MAX 128     /* a Handshake-Options value */
#define GIFT_METHOD "WebcastGiftMessage"
#define RESP_MAX (64u << 20) /* a frame's Response is gunzipped up to this size */

/* ------------------------------------------------------------------ model */

typedef struct {
  uint8_t *wire; /* WS header + PushFrame bytes, encoded once */
  size_t wire_len;
  size_t body_off;
  uint64_t log_id;
  uint32_t nmsgs;
  int32_t next_same_log; /* chain of frames sharing a log_id, -1 = end */
  uint8_t need_ack;
  uint8_t sent;
  char *ext_resp; /* Response.internal_ext (NULL if absent) */
  char *ext_hdr;  /* im-internal_ext header (NULL if absent) */
  uint32_t gifts; /* WebcastGiftMessage messages among nmsgs */
  uint8_t guest;  /* GUEST_*: the variant sent to guests of a gifts=login room */
  uint8_t *guest_wire;
  size_t guest_len;
} frame_t;

enum { GUEST_UNBUILT, GUEST_BUILT, GUEST_SAME }; /* GUEST_SAME: guests get the frame as it is */

enum { PAGE_NORMAL, PAGE_CHALLENGE, PAGE_GONE };
enum { ENTER_OK, ENTER_EMPTY, ENTER_ERROR };
enum { SIG_DEFAULT, SIG_CHECK, SIG_OFF }; /* SIG_DEFAULT follows --check-signature */
enum { AB_DEFAULT, AB_CHECK, AB_OFF };    /* AB_DEFAULT follows --check-abogus */
enum { GIFTS_DEFAULT, GIFTS_LOGIN, GIFTS_ALL }; /* GIFTS_DEFAULT follows --gifts-need-login */

typedef struct {
  uint64_t n; /* the room's upgrade attempt number */
  char sdk[IDENT_MAX], uvc[IDENT_MAX], origin[ORIGIN_MAX];
  bool has_origin, logged_in;
  char result[24]; /* "accepted" or the reject reason */
} upgrade_t;
#define SIG_RECENT 64

struct conn;

typedef struct room {
  char live_id[32];
  char room_id[32];
  char *title;
  char *nick;
  char *frames_path;
  unsigned fps;
  int status; /* 2 live, 4 ended */
  bool loop;
  int page;
  int enter;
  bool ws_reject;
  int sig;
  int abogus;
  int gifts;
  char sdk[IDENT_MAX];     /* sdk=: the only webcast_sdk_version accepted; "" = any */
  char *hs_opts;           /* handshake_options=: NULL = follow --handshake-options */
  unsigned silent_first;   /* silent=N: the first N connections go silent after their first frame */
  unsigned silent_pending; /* /_sim/silent which=next: that many next connections are silent from the start */
  char recent_sigs[SIG_RECENT][17]; /* ring of the last accepted signatures (decoded) */
  size_t recent_next;
  frame_t *frames;
  size_t nframes;
  uint32_t *log_tab; /* open addressing: frame index + 1, 0 = empty */
  size_t log_cap;
  size_t position;
  size_t distinct_sent;
  bool paused;
  int64_t next_due_ns;
  struct conn *conns; /* open WS connections */
  /* stats */
  uint64_t connections, frames_sent, messages_sent, acks_expected, acks_ok, acks_bad, hb, pongs, pings_sent,
      other_client_frames, injected, client_closes, protocol_errors, ws_rejected;
  uint64_t sig_ok, sig_bad, sig_missing, sig_reused, sdk_bad;
  uint64_t abogus_ok, abogus_missing, abogus_bad, abogus_why[SIM_AB_NREASONS];
  char last_abogus[24];
  char last_abogus_detail[200];
  uint64_t upgrades_total, logged_in_conns, guest_conns, gifts_withheld, silenced;
  upgrade_t upgrades[UPGRADE_LOG]; /* ring of the last upgrades, rejected ones included */
  char last_reject[24];
  char last_reject_detail[160];
  char *last_query;
  sbuf_t last_headers; /* JSON object text */
} room_t;

typedef struct {
  const uint8_t *p;
  size_t len;
  uint8_t *owned;
  int32_t frame; /* >= 0: room frame index (stats on completion) */
  bool repush;
  bool guest; /* the frame's guest variant (gifts removed) */
} wq_ent_t;

enum { C_HTTP, C_WS };
enum { TLS_NONE, TLS_UNKNOWN, TLS_HANDSHAKE, TLS_ON };

typedef struct conn {
  int fd;
  SSL *ssl;
  int tls;
  int kind;
  bool dead;
  bool out_armed;
  bool close_after_flush;
  bool close_sent;    /* we sent a WS close */
  bool http_close;    /* Connection: close requested */
  bool http_head;     /* current request is HEAD: no body */
  int64_t close_deadline_ms;
  int64_t next_ping_ms;
  uint32_t ping_seq;
  sbuf_t in;
  size_t in_off;
  wq_ent_t *q;
  size_t qcap, qhead, qn, qoff;
  size_t qbytes;
  sbuf_t frag;
  int frag_op; /* 0 = none */
  room_t *room;
  uint64_t serial;      /* the room's connection number (1 = first accepted) */
  bool logged_in;       /* the upgrade's Cookie had a non-empty sessionid */
  bool guest;           /* gifts are withheld from this connection */
  bool silent;          /* open, pinged, but pushed no frames (PROTOCOL §9.6) */
  uint32_t frames_left; /* frames before it goes silent; 0 = no limit */
  struct conn *rnext;   /* in room->conns */
  struct conn *next;    /* all conns */
} conn_t;

static struct {
  room_t **rooms;
  size_t nrooms;
  int ep;
  int lfd;
  conn_t *conns;
  unsigned ping_ms;
  unsigned repush;
  size_t hwm;
  const char *ttwid;
  const char *cookie_domain;
  SSL_CTX *tls_ctx;
  bool verbose;
  bool pace_us; /* --pace-us: paced frames leave at their own time, to the µs (not on ms ticks) */
  bool check_sig;
  bool check_abogus;
  bool gifts_login;
  const char *hs_opts;
  bool clock_set; /* --clock-ms: the wall clock starts at clock_ms */
  int64_t clock_ms, clock_mono0;
  sbuf_t bomb;
  volatile sig_atomic_t stop;
} G;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static int64_t now_ms(void) { return now_ns() / 1000000; }

/* the sim's wall clock, Unix ms: real time, or --clock-ms N advancing in real time from the start */
static int64_t wall_ms(void) {
  if (G.clock_set) return G.clock_ms + (now_ms() - G.clock_mono0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "dylive-sim: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "dylive-sim: fatal: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static uint64_t rnd64(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint64_t)now_ns() * 6364136223846793005ULL;
  return v;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (!d) die("out of memory");
  return d;
}

static char *xstrndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) die("out of memory");
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

/* ------------------------------------------------------------------ WS encoding */

static size_t ws_hdr(uint8_t *h, int opcode, uint64_t len) {
  h[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    h[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xffff) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
  return 10;
}

/* ------------------------------------------------------------------ frame index */

/* The parts of a PushFrame the sim reads. Returns -1 if it does not parse. */
typedef struct {
  uint64_t log_id;
  const uint8_t *payload; /* field 8; NULL if absent */
  size_t plen;
  bool gz; /* header compress_type=gzip */
  const uint8_t *ext_hdr; /* header im-internal_ext; NULL if absent */
  size_t ext_hdr_len;
} pf_parts_t;

static int pushframe_parts(const uint8_t *d, size_t n, pf_parts_t *o) {
  memset(o, 0, sizeof *o);
  pbr_t r = {d, d + n};
  pbf_t fl;
  int rc;
  while ((rc = pb_next(&r, &fl)) == 1) {
    if (fl.field == 2 && fl.wt == 0) o->log_id = fl.v;
    if (fl.field == 8 && fl.wt == 2) {
      o->payload = fl.d;
      o->plen = fl.len;
    }
    if (fl.field == 5 && fl.wt == 2) {
      pbr_t h = {fl.d, fl.d + fl.len};
      pbf_t hf;
      const uint8_t *k = NULL, *v = NULL;
      size_t kl = 0, vl = 0;
      while (pb_next(&h, &hf) == 1) {
        if (hf.field == 1 && hf.wt == 2) k = hf.d, kl = hf.len;
        if (hf.field == 2 && hf.wt == 2) v = hf.d, vl = hf.len;
      }
      if (k && kl == 13 && !memcmp(k, "compress_type", 13) && v && vl == 4 && !memcmp(v, "gzip", 4)) o->gz = true;
      if (k && kl == 15 && !memcmp(k, "im-internal_ext", 15) && v) o->ext_hdr = v, o->ext_hdr_len = vl;
    }
  }
  return rc < 0 ? -1 : 0;
}

/* The Response bytes of a PushFrame: the payload, gunzipped if the frame says so (*owned is then
 * to be freed). Returns -1 if it does not gunzip. */
static int pushframe_response(const pf_parts_t *pp, const uint8_t **resp, size_t *rlen, uint8_t **owned) {
  *owned = NULL;
  if (!pp->gz) {
    *resp = pp->payload;
    *rlen = pp->plen;
    return 0;
  }
  if (sim_gunzip(pp->payload, pp->plen, RESP_MAX, owned, rlen) < 0) return -1;
  *resp = *owned;
  return 0;
}

static bool message_is_gift(const uint8_t *d, size_t n) {
  pbr_t r = {d, d + n};
  pbf_t f;
  while (pb_next(&r, &f) == 1)
    if (f.field == 1 && f.wt == 2) return f.len == strlen(GIFT_METHOD) && !memcmp(f.d, GIFT_METHOD, f.len);
  return false;
}

static int index_frame(frame_t *f, const uint8_t *d, size_t n, const char *path, size_t idx) {
  pf_parts_t pp;
  if (pushframe_parts(d, n, &pp) < 0) {
    logf_("%s: frame %zu: PushFrame does not parse; replayed as-is", path, idx);
    return 0;
  }
  f->log_id = pp.log_id;
  if (pp.ext_hdr) f->ext_hdr = xstrndup((const char *)pp.ext_hdr, pp.ext_hdr_len);
  if (!pp.payload) return 0;
  const uint8_t *rp;
  size_t rn;
  uint8_t *resp;
  if (pushframe_response(&pp, &rp, &rn, &resp) < 0) {
    logf_("%s: frame %zu: payload does not gunzip; replayed as-is", path, idx);
    return 0;
  }
  pbr_t rr = {rp, rp + rn};
  pbf_t fl;
  int rc;
  uint32_t nm = 0;
  while ((rc = pb_next(&rr, &fl)) == 1) {
    if (fl.field == 1 && fl.wt == 2) {
      nm++;
      if (message_is_gift(fl.d, fl.len)) f->gifts++;
    }
    if (fl.field == 5 && fl.wt == 2) {
      free(f->ext_resp);
      f->ext_resp = xstrndup((const char *)fl.d, fl.len);
    }
    if (fl.field == 9 && fl.wt == 0) f->need_ack = fl.v != 0;
  }
  if (rc < 0) logf_("%s: frame %zu: Response does not parse; counted %u messages", path, idx, nm);
  f->nmsgs = nm;
  free(resp);
  return 0;
}

/* WS header + body, in one allocation */
static uint8_t *wire_encode(const uint8_t *d, size_t n, size_t *wire_len, size_t *body_off) {
  uint8_t h[10];
  size_t hl = ws_hdr(h, 2, n);
  uint8_t *w = malloc(hl + n);
  if (!w) die("out of memory");
  memcpy(w, h, hl);
  memcpy(w + hl, d, n);
  *wire_len = hl + n;
  if (body_off) *body_off = hl;
  return w;
}

static void add_frame(room_t *r, size_t *cap, const uint8_t *d, size_t n) {
  if (r->nframes == *cap) {
    *cap = *cap ? *cap * 2 : 64;
    r->frames = realloc(r->frames, *cap * sizeof(frame_t));
    if (!r->frames) die("out of memory");
  }
  frame_t *f = &r->frames[r->nframes];
  memset(f, 0, sizeof *f);
  f->next_same_log = -1;
  f->wire = wire_encode(d, n, &f->wire_len, &f->body_off);
  index_frame(f, d, n, r->frames_path, r->nframes);
  r->nframes++;
}

/* What a guest of a gifts=login room gets (PROTOCOL §9.5): the Response without its
 * WebcastGiftMessage messages, re-gzipped if it was gzipped; every other field of the Response and
 * of the PushFrame is kept byte for byte (ids, cursor, internal_ext, need_ack, headers). Built on
 * first use; a frame without gifts, or one that does not re-encode, goes out as it is. */
static void build_guest(frame_t *f) {
  f->guest = GUEST_SAME;
  if (!f->gifts) return;
  const uint8_t *d = f->wire + f->body_off;
  size_t n = f->wire_len - f->body_off;
  pf_parts_t pp;
  const uint8_t *rp;
  size_t rn;
  uint8_t *owned;
  if (pushframe_parts(d, n, &pp) < 0 || !pp.payload || pushframe_response(&pp, &rp, &rn, &owned) < 0) return;
  sbuf_t resp = {0}, gz = {0}, pf = {0};
  pbr_t rr = {rp, rp + rn};
  pbf_t fl;
  int rc;
  for (const uint8_t *at = rp; (rc = pb_next(&rr, &fl)) == 1; at = rr.p)
    if (!(fl.field == 1 && fl.wt == 2 && message_is_gift(fl.d, fl.len))) sb_add(&resp, at, (size_t)(rr.p - at));
  const sbuf_t *payload = pp.gz ? &gz : &resp;
  if (rc == 0 && (!pp.gz || sim_gzip(resp.p, resp.len, &gz) == 0)) {
    pbr_t r = {d, d + n};
    for (const uint8_t *at = d; pb_next(&r, &fl) == 1; at = r.p) {
      if (fl.field == 8 && fl.wt == 2)
        pb_put_bytes(&pf, 8, payload->p ? payload->p : (const uint8_t *)"", payload->len);
      else
        sb_add(&pf, at, (size_t)(r.p - at));
    }
    f->guest_wire = wire_encode(pf.p, pf.len, &f->guest_len, NULL);
    f->guest = GUEST_BUILT;
  }
  free(owned);
  sb_free(&resp);
  sb_free(&gz);
  sb_free(&pf);
}

static size_t log_slot(uint64_t id, size_t cap) { return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 20) & (cap - 1); }

static void build_log_tab(room_t *r) {
  r->log_cap = 16;
  while (r->log_cap < r->nframes * 2) r->log_cap *= 2;
  r->log_tab = calloc(r->log_cap, sizeof(uint32_t));
  if (!r->log_tab) die("out of memory");
  for (size_t i = 0; i < r->nframes; i++) {
    size_t s = log_slot(r->frames[i].log_id, r->log_cap);
    for (;;) {
      uint32_t e = r->log_tab[s];
      if (!e) {
        r->log_tab[s] = (uint32_t)(i + 1);
        break;
      }
      if (r->frames[e - 1].log_id == r->frames[i].log_id) {
        /* append to the chain */
        size_t j = e - 1;
        while (r->frames[j].next_same_log >= 0) j = (size_t)r->frames[j].next_same_log;
        r->frames[j].next_same_log = (int32_t)i;
        break;
      }
      s = (s + 1) & (r->log_cap - 1);
    }
  }
}

static int32_t log_lookup(room_t *r, uint64_t id) {
  if (!r->log_cap) return -1;
  size_t s = log_slot(id, r->log_cap);
  for (;;) {
    uint32_t e = r->log_tab[s];
    if (!e) return -1;
    if (r->frames[e - 1].log_id == id) return (int32_t)(e - 1);
    s = (s + 1) & (r->log_cap - 1);
  }
}

static void load_frames(room_t *r) {
  FILE *fp = fopen(r->frames_path, "rb");
  if (!fp) die("cannot open frames file %s: %s", r->frames_path, strerror(errno));
  size_t cap = 0;
  sbuf_t b = {0};
  for (;;) {
    uint8_t lb[4];
    size_t got = fread(lb, 1, 4, fp);
    if (got == 0) break;
    if (got != 4) die("%s: truncated length prefix at frame %zu", r->frames_path, r->nframes);
    uint32_t n = ((uint32_t)lb[0] << 24) | ((uint32_t)lb[1] << 16) | ((uint32_t)lb[2] << 8) | lb[3];
    if (n > WS_MAX_MSG) die("%s: frame %zu too large (%u bytes)", r->frames_path, r->nframes, n);
    b.len = 0;
    sb_reserve(&b, n);
    if (fread(b.p, 1, n, fp) != n) die("%s: truncated frame %zu", r->frames_path, r->nframes);
    add_frame(r, &cap, b.p, n);
  }
  fclose(fp);
  sb_free(&b);
  build_log_tab(r);
  uint64_t msgs = 0;
  for (size_t i = 0; i < r->nframes; i++) msgs += r->frames[i].nmsgs;
  logf_("room %s: %zu frames, %" PRIu64 " messages from %s", r->live_id, r->nframes, msgs, r->frames_path);
}

/* ------------------------------------------------------------------ room spec */

static bool all_digits(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return false;
  return true;
}

/* A Handshake-Options value: a cookie-style list "key=digits[;key=digits...]" with an optional
 * final ';' (PROTOCOL §9.4: "ping-interval=<seconds>;"). Keys are [a-z0-9-]. */
static bool valid_hs_opts(const char *v) {
  size_t n = strlen(v);
  if (!n || n >= HS_OPTS_MAX) return false;
  for (const char *p = v; *p;) {
    const char *k = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') p++;
    if (p == k || *p++ != '=') return false;
    const char *d = p;
    while (*p >= '0' && *p <= '9') p++;
    if (p == d || p - d > 9) return false;
    if (*p == ';') p++;
    else if (*p) return false;
  }
  return true;
}

static room_t *parse_room(const char *spec) {
  room_t *r = calloc(1, sizeof *r);
  if (!r) die("out of memory");
  r->status = 2;
  char *s = xstrdup(spec);
  char *save = NULL;
  char *first = strtok_r(s, ",", &save);
  if (!first) die("--room: empty spec");
  char *colon = strchr(first, ':');
  if (colon) {
    *colon = 0;
    if (colon[1]) r->frames_path = xstrdup(colon + 1);
  }
  if (!*first || strlen(first) >= sizeof r->live_id) die("--room %s: bad LIVE_ID", spec);
  snprintf(r->live_id, sizeof r->live_id, "%s", first);
  char *opt;
  while ((opt = strtok_r(NULL, ",", &save))) {
    char *eq = strchr(opt, '=');
    char *val = eq ? eq + 1 : NULL;
    if (eq) *eq = 0;
    if (!strcmp(opt, "room_id") && val && all_digits(val) && strlen(val) < sizeof r->room_id)
      snprintf(r->room_id, sizeof r->room_id, "%s", val);
    else if (!strcmp(opt, "fps") && val && all_digits(val))
      r->fps = (unsigned)strtoul(val, NULL, 10);
    else if (!strcmp(opt, "status") && val && (!strcmp(val, "2") || !strcmp(val, "4")))
      r->status = atoi(val);
    else if (!strcmp(opt, "loop") && !val)
      r->loop = true;
    else if (!strcmp(opt, "page") && val && !strcmp(val, "normal"))
      r->page = PAGE_NORMAL;
    else if (!strcmp(opt, "page") && val && !strcmp(val, "challenge"))
      r->page = PAGE_CHALLENGE;
    else if (!strcmp(opt, "page") && val && !strcmp(val, "gone"))
      r->page = PAGE_GONE;
    else if (!strcmp(opt, "enter") && val && !strcmp(val, "ok"))
      r->enter = ENTER_OK;
    else if (!strcmp(opt, "enter") && val && !strcmp(val, "empty"))
      r->enter = ENTER_EMPTY;
    else if (!strcmp(opt, "enter") && val && !strcmp(val, "error"))
      r->enter = ENTER_ERROR;
    else if (!strcmp(opt, "ws") && val && !strcmp(val, "reject"))
      r->ws_reject = true;
    else if (!strcmp(opt, "ws") && val && !strcmp(val, "ok"))
      r->ws_reject = false;
    else if (!strcmp(opt, "sig") && val && !strcmp(val, "check"))
      r->sig = SIG_CHECK;
    else if (!strcmp(opt, "sig") && val && !strcmp(val, "off"))
      r->sig = SIG_OFF;
    else if (!strcmp(opt, "abogus") && val && !strcmp(val, "check"))
      r->abogus = AB_CHECK;
    else if (!strcmp(opt, "abogus") && val && !strcmp(val, "off"))
      r->abogus = AB_OFF;
    else if (!strcmp(opt, "gifts") && val && !strcmp(val, "login"))
      r->gifts = GIFTS_LOGIN;
    else if (!strcmp(opt, "gifts") && val && !strcmp(val, "all"))
      r->gifts = GIFTS_ALL;
    else if (!strcmp(opt, "sdk") && val && *val && strlen(val) < sizeof r->sdk)
      snprintf(r->sdk, sizeof r->sdk, "%s", val);
    else if (!strcmp(opt, "handshake_options") && val && valid_hs_opts(val))
      r->hs_opts = xstrdup(val);
    else if (!strcmp(opt, "silent") && val && all_digits(val) && strlen(val) < 10)
      r->silent_first = (unsigned)strtoul(val, NULL, 10);
    else if (!strcmp(opt, "title") && val)
      r->title = xstrdup(val);
    else if (!strcmp(opt, "nick") && val)
      r->nick = xstrdup(val);
    else
      die("--room %s: unknown or bad option '%s'", spec, opt);
  }
  if (!r->room_id[0]) {
    if (!all_digits(r->live_id)) die("--room %s: non-numeric LIVE_ID needs room_id=N", spec);
    uint64_t m = 0;
    for (const char *p = r->live_id; *p; p++) m = (m * 10 + (uint64_t)(*p - '0')) % 1000000000000000000ULL;
    snprintf(r->room_id, sizeof r->room_id, "%" PRIu64, (uint64_t)(7000000000000000000ULL + m));
  }
  if (!r->title) {
    char t[96];
    snprintf(t, sizeof t, "dylive-sim room %s", r->live_id);
    r->title = xstrdup(t);
  }
  if (!r->nick) {
    char t[96];
    snprintf(t, sizeof t, "sim-anchor-%s", r->live_id);
    r->nick = xstrdup(t);
  }
  free(s);
  if (r->frames_path) load_frames(r);
  r->last_query = xstrdup("");
  sb_adds(&r->last_headers, "{}");
  return r;
}

static room_t *room_by_live(const char *live_id) {
  for (size_t i = 0; i < G.nrooms; i++)
    if (!strcmp(G.rooms[i]->live_id, live_id)) return G.rooms[i];
  return NULL;
}

static room_t *room_by_room_id(const char *room_id) {
  for (size_t i = 0; i < G.nrooms; i++)
    if (!strcmp(G.rooms[i]->room_id, room_id)) return G.rooms[i];
  return NULL;
}

/* ------------------------------------------------------------------ connection I/O */

static void conn_arm_out(conn_t *c, bool on) {
  if (c->dead || c->out_armed == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->out_armed = on;
}

static void conn_kill(conn_t *c) {
  if (c->dead) return;
  c->dead = true;
  epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
  if (c->ssl) {
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  close(c->fd);
  if (c->room) {
    conn_t **pp = &c->room->conns;
    while (*pp && *pp != c) pp = &(*pp)->rnext;
    if (*pp) *pp = c->rnext;
    c->room = NULL;
  }
}

static void conn_free(conn_t *c) {
  for (size_t i = 0; i < c->qn; i++) free(c->q[(c->qhead + i) % c->qcap].owned);
  free(c->q);
  sb_free(&c->in);
  sb_free(&c->frag);
  free(c);
}

static wq_ent_t *q_push(conn_t *c, const uint8_t *p, size_t len, uint8_t *owned, int32_t frame, bool repush) {
  if (c->qn == c->qcap) {
    size_t nc = c->qcap ? c->qcap * 2 : 64;
    wq_ent_t *nq = malloc(nc * sizeof *nq);
    if (!nq) die("out of memory");
    for (size_t i = 0; i < c->qn; i++) nq[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = nq;
    c->qcap = nc;
    c->qhead = 0;
  }
  wq_ent_t *e = &c->q[(c->qhead + c->qn) % c->qcap];
  e->p = p;
  e->len = len;
  e->owned = owned;
  e->frame = frame;
  e->repush = repush;
  e->guest = false;
  c->qn++;
  c->qbytes += len;
  return e;
}

static void q_push_copy(conn_t *c, const void *d, size_t n) {
  uint8_t *o = malloc(n ? n : 1);
  if (!o) die("out of memory");
  memcpy(o, d, n);
  q_push(c, o, n, o, -1, false);
}

static void ws_send_ctl(conn_t *c, int op, const void *d, size_t n) {
  uint8_t buf[10 + 125];
  if (n > 125) n = 125;
  size_t hl = ws_hdr(buf, op, n);
  memcpy(buf + hl, d, n);
  q_push_copy(c, buf, hl + n);
}

static void ws_send_close(conn_t *c, unsigned code, const char *reason) {
  uint8_t b[125];
  b[0] = (uint8_t)(code >> 8);
  b[1] = (uint8_t)code;
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 100) rl = 100;
  if (rl) memcpy(b + 2, reason, rl);
  ws_send_ctl(c, 8, b, 2 + rl);
  c->close_sent = true;
  c->close_deadline_ms = now_ms() + 2000;
}

static void entry_done(conn_t *c, wq_ent_t *e) {
  if (e->frame >= 0 && c->room) {
    room_t *r = c->room;
    frame_t *f = &r->frames[e->frame];
    uint32_t withheld = e->guest ? f->gifts : 0;
    r->frames_sent++;
    r->messages_sent += f->nmsgs - withheld;
    r->gifts_withheld += withheld;
    if (f->need_ack) r->acks_expected++;
    if (!f->sent) {
      f->sent = 1;
      r->distinct_sent++;
    }
  }
  free(e->owned);
  e->owned = NULL;
}

/* Returns bytes written (>0), 0 would block, -1 fatal. The only place that writes. */
static ssize_t conn_write_some(conn_t *c) {
  if (c->ssl) {
    wq_ent_t *e = &c->q[c->qhead];
    int n = SSL_write(c->ssl, e->p + c->qoff, (int)((e->len - c->qoff) > INT_MAX ? INT_MAX : e->len - c->qoff));
    if (n > 0) return n;
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) return 0;
    return -1;
  }
  struct iovec iov[256];
  int ni = 0;
  for (size_t i = 0; i < c->qn && ni < 256; i++) {
    wq_ent_t *e = &c->q[(c->qhead + i) % c->qcap];
    size_t off = i == 0 ? c->qoff : 0;
    iov[ni].iov_base = (void *)(uintptr_t)(e->p + off);
    iov[ni].iov_len = e->len - off;
    ni++;
  }
  ssize_t n = writev(c->fd, iov, ni);
  if (n >= 0) return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
  return -1;
}

static bool room_has_more(const room_t *r);
static bool ws_live(const conn_t *c);
static bool ws_pushes(const conn_t *c);

/* a WS connection of a room with unpaced frames left keeps EPOLLOUT armed: the kernel says when to pump */
static bool conn_wants_more(const conn_t *c) {
  if (c->kind != C_WS || !c->room || !ws_pushes(c) || c->room->fps || !room_has_more(c->room)) return false;
  for (const conn_t *s = c->room->conns; s; s = s->rnext)
    if (ws_pushes(s) && s->qbytes >= G.hwm) return false; /* a slow sibling gates the room; its EPOLLOUT resumes */
  return true;
}

static void conn_flush(conn_t *c) {
  while (!c->dead && c->qn) {
    ssize_t n = conn_write_some(c);
    if (n < 0) {
      conn_kill(c);
      return;
    }
    if (n == 0) {
      conn_arm_out(c, true);
      return;
    }
    size_t left = (size_t)n;
    c->qbytes -= left;
    while (left && c->qn) {
      wq_ent_t *e = &c->q[c->qhead];
      size_t rem = e->len - c->qoff;
      if (left >= rem) {
        left -= rem;
        entry_done(c, e);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qn--;
        c->qoff = 0;
      } else {
        c->qoff += left;
        left = 0;
      }
    }
    /* zero-length entries at the head (none expected) */
    while (c->qn && c->q[c->qhead].len == c->qoff) {
      entry_done(c, &c->q[c->qhead]);
      c->qhead = (c->qhead + 1) % c->qcap;
      c->qn--;
      c->qoff = 0;
    }
  }
  if (c->dead) return;
  if (c->close_after_flush) {
    conn_kill(c);
    return;
  }
  conn_arm_out(c, conn_wants_more(c));
}

/* read into c->in; returns >0 bytes, 0 would block, -1 EOF/error */
static ssize_t conn_read(conn_t *c) {
  sb_reserve(&c->in, 65536);
  size_t room = c->in.cap - c->in.len;
  if (c->ssl) {
    int n = SSL_read(c->ssl, c->in.p + c->in.len, (int)(room > INT_MAX ? INT_MAX : room));
    if (n > 0) {
      c->in.len += (size_t)n;
      return n;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
    return -1;
  }
  ssize_t n = recv(c->fd, c->in.p + c->in.len, room, 0);
  if (n > 0) {
    c->in.len += (size_t)n;
    return n;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  return -1;
}

/* ------------------------------------------------------------------ room pumping */

static void conn_go_silent(conn_t *c, const char *why) {
  if (c->silent) return;
  c->silent = true;
  c->room->silenced++;
  logf_("room %s: connection #%" PRIu64 " is silent now (%s)", c->room->live_id, c->serial, why);
}

/* Queues frame i for c: the guest variant for a guest, nothing for a silent connection. */
static void room_enqueue_frame(conn_t *c, room_t *r, size_t i, bool repush) {
  if (c->silent) return;
  frame_t *f = &r->frames[i];
  if (c->guest && f->guest == GUEST_UNBUILT) build_guest(f);
  if (c->guest && f->guest == GUEST_BUILT)
    q_push(c, f->guest_wire, f->guest_len, NULL, (int32_t)i, repush)->guest = true;
  else
    q_push(c, f->wire, f->wire_len, NULL, (int32_t)i, repush);
  if (c->frames_left && --c->frames_left == 0) conn_go_silent(c, "silent=N: after its first frame");
}

static bool ws_live(const conn_t *c) { return !c->dead && !c->close_sent && !c->close_after_flush; }

/* a connection that timeline frames go to */
static bool ws_pushes(const conn_t *c) { return ws_live(c) && !c->silent; }

static bool room_has_more(const room_t *r) {
  return !r->paused && r->nframes && (r->loop || r->position < r->nframes);
}

static void room_pump(room_t *r) {
  if (r->paused || !r->nframes || !r->conns) return;
  int64_t period = r->fps ? 1000000000LL / r->fps : 0;
  int64_t t = r->fps ? now_ns() : 0;
  for (int round = 0; round < 8; round++) {
    size_t before = r->position;
    bool wrapped = false;
  for (;;) {
    if (r->position >= r->nframes) {
      if (!r->loop) break;
      r->position = 0;
      wrapped = true;
    }
    int n = 0;
    bool full = false;
    for (conn_t *c = r->conns; c; c = c->rnext) { /* silent ones neither advance nor hold back the room */
      if (!ws_pushes(c)) continue;
      if (c->qbytes >= G.hwm) full = true;
      n++;
    }
    if (!n || full) break;
    if (r->fps) {
      if (t < r->next_due_ns) break;
      r->next_due_ns += period;
      if (r->next_due_ns < t - 1000000000LL) r->next_due_ns = t;
    }
    for (conn_t *c = r->conns; c; c = c->rnext)
      if (ws_pushes(c)) room_enqueue_frame(c, r, r->position, false);
    r->position++;
  }
    /* write now; go round again while the sockets take everything (saves epoll round trips) */
    bool again = (r->position != before || wrapped) && !r->fps;
    for (conn_t *c = r->conns, *nx; c; c = nx) {
      nx = c->rnext;
      if (c->qn) conn_flush(c);
      if (!c->dead && c->qbytes) again = false;
    }
    if (!again) break;
  }
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
  char *method, *target, *path, *query, *version;
  struct {
    char *name, *value;
  } h[MAX_HDRS];
  int nh;
} req_t;

static const char *req_header(const req_t *q, const char *name) {
  for (int i = 0; i < q->nh; i++)
    if (!strcasecmp(q->h[i].name, name)) return q->h[i].value;
  return NULL;
}

static int hexv(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Standard form decoding of s[0..n) into out (room for n + 1 bytes), as URLSearchParams (WHATWG)
 * and Go's url.ParseQuery do it: '+' is a space, %XX is the byte XX, and a '%' without two hex
 * digits after it stays literal. Returns the decoded length; out is NUL-terminated. */
static size_t form_decode(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
      out[o++] = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
      i += 2;
    } else {
      out[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  out[o] = 0;
  return o;
}

/* The raw segment "name[=value]" of the first '&'-separated parameter whose decoded name is name. */
static bool query_find(const char *query, const char *name, const char **seg, size_t *seglen) {
  if (!query) return false;
  size_t nl = strlen(name);
  for (const char *p = query;;) {
    const char *amp = strchr(p, '&');
    size_t sl = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', sl);
    size_t kl = eq ? (size_t)(eq - p) : sl;
    if (kl >= nl) { /* a decoded name is never longer than its raw form */
      char *k = xstrndup(p, kl);
      bool match = form_decode(p, kl, k) == nl && !memcmp(k, name, nl);
      free(k);
      if (match) {
        *seg = p;
        *seglen = sl;
        return true;
      }
    }
    if (!amp) return false;
    p = amp + 1;
  }
}

/* The decoded value of the first parameter named name (decoded too), malloc'd; NULL if absent.
 * A parameter without '=' has the value "". *vlen (if given) gets the length: a %00 is kept. */
static char *query_param_n(const char *query, const char *name, size_t *vlen) {
  const char *seg;
  size_t sl;
  if (!query_find(query, name, &seg, &sl)) return NULL;
  const char *eq = memchr(seg, '=', sl);
  size_t off = eq ? (size_t)(eq - seg) + 1 : sl;
  char *out = xstrndup(seg + off, sl - off);
  size_t n = form_decode(seg + off, sl - off, out);
  if (vlen) *vlen = n;
  return out;
}

static char *query_param(const char *query, const char *name) { return query_param_n(query, name, NULL); }

/* The raw query without its first parameter named name and one '&' next to it. */
static void query_without(const char *query, const char *name, sbuf_t *out) {
  const char *seg;
  size_t sl;
  if (!query) return;
  if (!query_find(query, name, &seg, &sl)) {
    sb_adds(out, query);
    return;
  }
  size_t before = (size_t)(seg - query);
  const char *after = seg + sl;
  if (before) {
    sb_add(out, query, before - 1); /* drop the '&' in front */
    sb_adds(out, after);
  } else {
    sb_adds(out, *after == '&' ? after + 1 : after);
  }
}

static void http_respond_srv(conn_t *c, const char *server, int code, const char *reason, const char *ctype,
                             const char *extra, const void *body, size_t blen) {
  sbuf_t b = {0};
  sb_addf(&b, "HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Length: %zu\r\n", code, reason, server, blen);
  if (ctype) sb_addf(&b, "Content-Type: %s\r\n", ctype);
  if (extra) sb_adds(&b, extra);
  sb_adds(&b, c->http_close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n");
  if (!c->http_head) sb_add(&b, body, blen);
  q_push(c, b.p, b.len, b.p, -1, false);
  if (c->http_close) c->close_after_flush = true;
}

static void http_respond(conn_t *c, int code, const char *reason, const char *ctype, const char *extra,
                         const void *body, size_t blen) {
  http_respond_srv(c, "dylive-sim", code, reason, ctype, extra, body, blen);
}

static void http_text(conn_t *c, int code, const char *reason, const char *text) {
  http_respond(c, code, reason, "text/plain; charset=utf-8", NULL, text, strlen(text));
}

static void rand_chars(char *out, size_t n, const char *alpha) {
  size_t al = strlen(alpha);
  for (size_t i = 0; i < n; i++) out[i] = alpha[rnd64() % al];
  out[n] = 0;
}

static void cookie_attrs(sbuf_t *b) {
  sb_adds(b, "; Path=/");
  if (G.cookie_domain && *G.cookie_domain) sb_addf(b, "; Domain=%s", G.cookie_domain);
}

static void handle_home(conn_t *c) {
  sbuf_t h = {0};
  if (G.ttwid) {
    sb_addf(&h, "Set-Cookie: ttwid=%s", G.ttwid);
  } else {
    char r1[44], hex[65];
    rand_chars(r1, 43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    rand_chars(hex, 64, "0123456789abcdef");
    sb_addf(&h, "Set-Cookie: ttwid=1%%7C%s%%7C%lld%%7C%s", r1, (long long)time(NULL), hex);
  }
  cookie_attrs(&h);
  sb_adds(&h, "; Max-Age=31536000; HttpOnly\r\n");
  char nonce[22];
  rand_chars(nonce + 1, 20, "0123456789abcdef");
  nonce[0] = '0';
  sb_addf(&h, "Set-Cookie: __ac_nonce=%s", nonce);
  cookie_attrs(&h);
  sb_adds(&h, "; Max-Age=1800\r\n");
  sb_add(&h, "\0", 1);
  static const char body[] =
      "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>抖音直播</title></head>"
      "<body><div id=\"root\"></div><script>self.__pace_f=self.__pace_f||[];</script></body></html>\n";
  http_respond(c, 200, "OK", "text/html; charset=utf-8", (const char *)h.p, body, sizeof body - 1);
  sb_free(&h);
}

/* escape for a JSON string inside a JS string literal: value -> JSON-escaped -> JS-escaped */
static void add_js_json_str(sbuf_t *b, const char *s) {
  sbuf_t j = {0};
  sb_add_json_str(&j, s, strlen(s));
  for (size_t i = 0; i < j.len; i++) {
    char ch = (char)j.p[i];
    if (ch == '"' || ch == '\\') sb_add(b, "\\", 1);
    sb_add(b, &ch, 1);
  }
  sb_free(&j);
}

static void anchor_ids(const room_t *r, char *id_str, size_t idn, char *sec_uid, size_t sn) {
  uint64_t h = 1469598103934665603ULL;
  for (const char *p = r->live_id; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
  snprintf(id_str, idn, "%" PRIu64, (uint64_t)(3000000000000000ULL + h % 1000000000000000ULL));
  static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char tail[65];
  uint64_t x = h;
  for (int i = 0; i < 64; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    tail[i] = al[x % 64];
  }
  tail[64] = 0;
  snprintf(sec_uid, sn, "MS4wLjABAAAA%s", tail);
}

static void handle_live_page(conn_t *c, room_t *r) {
  if (r->page == PAGE_GONE) {
    http_text(c, 404, "Not Found", "not found\n");
    return;
  }
  sbuf_t b = {0};
  if (r->page == PAGE_CHALLENGE) {
    char nonce[22];
    rand_chars(nonce + 1, 20, "0123456789abcdef");
    nonce[0] = '0';
    sb_adds(&b,
            "<!DOCTYPE html><html><head><meta charset=\"UTF-8\"><title></title></head><body>"
            "<script>window.byted_acrawler=window.byted_acrawler||{};"
            "(function(){var n=document.cookie.match(/__ac_nonce=([^;]+)/);"
            "var s=window.byted_acrawler.sign?window.byted_acrawler.sign('',n&&n[1]):'';"
            "document.cookie='__ac_signature='+s+'; path=/';location.reload();})();</script>"
            "</body></html>\n");
    char hdr[200];
    snprintf(hdr, sizeof hdr, "Set-Cookie: __ac_nonce=%s; Path=/; Max-Age=1800\r\n", nonce);
    http_respond(c, 200, "OK", "text/html; charset=utf-8", hdr, b.p, b.len);
    sb_free(&b);
    return;
  }
  char aid[32], sec[96];
  anchor_ids(r, aid, sizeof aid, sec, sizeof sec);
  char uid[24];
  snprintf(uid, sizeof uid, "%" PRIu64, (uint64_t)(7300000000000000000ULL + rnd64() % 700000000000000000ULL));
  bool live = r->status == 2;
  sb_adds(&b, "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>");
  sb_adds(&b, r->nick); /* nick/title come from the CLI; assumed HTML-safe */
  sb_adds(&b, "的抖音直播间 - 抖音直播</title></head><body><div id=\"root\">");
  if (!live) sb_adds(&b, "<div class=\"live-end\">直播已结束</div>");
  sb_adds(&b, "</div>\n<script nonce=\"\">(self.__pace_f=self.__pace_f||[]).push([0])</script>\n");
  sb_adds(&b, "<script nonce=\"\">self.__pace_f.push([1,\"1:HL[\\\"/static/app.css\\\",\\\"style\\\"]\\n\"])</script>\n");
  sb_adds(&b, "<script nonce=\"\">self.__pace_f.push([1,\"c:[\\\"$\\\",\\\"$L12\\\",null,{\\\"state\\\":{");
  sb_adds(&b, "\\\"appStore\\\":{\\\"isLogin\\\":false},");
  sb_adds(&b, "\\\"roomStore\\\":{\\\"roomInfo\\\":{\\\"room\\\":{\\\"id_str\\\":\\\"");
  sb_adds(&b, r->room_id);
  sb_addf(&b, "\\\",\\\"status\\\":%d,\\\"status_str\\\":\\\"%d\\\",\\\"title\\\":", r->status, r->status);
  add_js_json_str(&b, r->title);
  sb_addf(&b, ",\\\"user_count_str\\\":\\\"%s\\\",\\\"owner\\\":{\\\"id_str\\\":\\\"%s\\\",\\\"sec_uid\\\":\\\"%s\\\",\\\"nickname\\\":",
          live ? "91" : "0", aid, sec);
  add_js_json_str(&b, r->nick);
  sb_adds(&b, "}},\\\"roomId\\\":\\\"");
  sb_adds(&b, r->room_id);
  sb_adds(&b, "\\\",\\\"web_rid\\\":\\\"");
  sb_adds(&b, r->live_id);
  sb_addf(&b, "\\\",\\\"anchor\\\":{\\\"id_str\\\":\\\"%s\\\",\\\"sec_uid\\\":\\\"%s\\\",\\\"nickname\\\":", aid, sec);
  add_js_json_str(&b, r->nick);
  sb_adds(&b, "}}},\\\"userStore\\\":{\\\"odin\\\":{\\\"user_id\\\":\\\"0\\\",\\\"user_is_auth\\\":0,\\\"user_type\\\":12,"
              "\\\"user_unique_id\\\":\\\"");
  sb_adds(&b, uid);
  sb_adds(&b, "\\\"}}}}]\\n\"])</script>\n");
  sb_addf(&b,
          "<script>window.__slardar&&0;setPageViewLog({\"odin\":\"{\\\"user_id\\\":\\\"0\\\",\\\"user_type\\\":12,"
          "\\\"user_is_auth\\\":0,\\\"user_unique_id\\\":\\\"%s\\\"}\"})</script>\n</body></html>\n",
          uid);
  http_respond(c, 200, "OK", "text/html; charset=utf-8", NULL, b.p, b.len);
  sb_free(&b);
}

static bool room_checks_abogus(const room_t *r) {
  return r ? r->abogus == AB_CHECK || (r->abogus == AB_DEFAULT && G.check_abogus) : G.check_abogus;
}

/* a_bogus check of a web/enter request (PROTOCOL §9.1-9.2). Returns true = accept. Counts the
 * verdict in the room (r NULL: an unknown web_rid, only logged). */
static bool check_abogus(room_t *r, const req_t *q, int64_t nowms) {
  if (!room_checks_abogus(r)) return true;
  size_t abn = 0;
  char *ab = query_param_n(q->query, "a_bogus", &abn);
  char detail[sizeof r->last_abogus_detail];
  int code = -1; /* -1 = missing */
  if (ab && abn) {
    sbuf_t signed_q = {0};
    query_without(q->query, "a_bogus", &signed_q);
    code = sim_ab_verify(ab, abn, signed_q.p ? (const char *)signed_q.p : "", signed_q.len,
                         req_header(q, "User-Agent"), nowms, detail, sizeof detail);
    sb_free(&signed_q);
  } else {
    snprintf(detail, sizeof detail, "no a_bogus in the query");
  }
  free(ab);
  const char *verdict = code < 0 ? "missing" : code == SIM_AB_OK ? "ok" : sim_ab_reason(code);
  if (G.verbose || code != SIM_AB_OK)
    logf_("web/enter %s: a_bogus %s: %s", r ? r->live_id : "(unknown web_rid)", verdict, detail);
  if (r) {
    if (code < 0)
      r->abogus_missing++;
    else if (code == SIM_AB_OK)
      r->abogus_ok++;
    else
      r->abogus_bad++, r->abogus_why[code]++;
    snprintf(r->last_abogus, sizeof r->last_abogus, "%s", verdict);
    snprintf(r->last_abogus_detail, sizeof r->last_abogus_detail, "%s", detail);
  }
  return code == SIM_AB_OK;
}

static void handle_enter(conn_t *c, const req_t *q) {
  char *rid = query_param(q->query, "web_rid");
  room_t *r = rid ? room_by_live(rid) : NULL;
  free(rid);
  long long nowms = (long long)wall_ms();
  sbuf_t b = {0};
  if (!check_abogus(r, q, nowms) || (r && r->enter == ENTER_EMPTY)) { /* Douyin's risk-control answer */
    http_respond(c, 200, "OK", "application/json; charset=utf-8", NULL, "", 0);
    return;
  }
  if (!r || r->page == PAGE_GONE || r->enter == ENTER_ERROR) {
    sb_addf(&b, "{\"data\":{\"prompts\":\"直播间不存在\",\"message\":\"room not found\"},\"extra\":{\"now\":%lld},"
                "\"status_code\":30003}",
            nowms);
    http_respond(c, 200, "OK", "application/json; charset=utf-8", NULL, b.p, b.len);
    sb_free(&b);
    return;
  }
  char aid[32], sec[96];
  anchor_ids(r, aid, sizeof aid, sec, sizeof sec);
  bool live = r->status == 2;
  const char *cnt = live ? "91" : "0";
  sb_adds(&b, "{\"data\":{\"data\":[{\"id_str\":\"");
  sb_adds(&b, r->room_id);
  sb_addf(&b, "\",\"status\":%d,\"status_str\":\"%d\",\"title\":", r->status, r->status);
  sb_add_json_str(&b, r->title, strlen(r->title));
  sb_addf(&b, ",\"user_count_str\":\"%s\",\"owner\":{\"id_str\":\"%s\",\"sec_uid\":\"%s\",\"nickname\":", cnt, aid, sec);
  sb_add_json_str(&b, r->nick, strlen(r->nick));
  sb_addf(&b,
          "},\"stats\":{\"total_user_desp\":\"\",\"like_count\":756,\"total_user_str\":\"1310\",\"user_count_str\":\"%s\"},"
          "\"room_view_stats\":{\"is_hidden\":false,\"display_short\":\"%s\",\"display_middle\":\"%s\","
          "\"display_long\":\"%s在线观众\",\"display_value\":%s,\"display_version\":1663849727,\"incremental\":false,"
          "\"display_type\":1},\"like_count\":756,\"owner_user_id_str\":\"%s\"}],\"enter_room_id\":\"%s\","
          "\"extra\":{\"digg_color\":\"\"},\"user\":{\"id_str\":\"%s\",\"sec_uid\":\"%s\",\"nickname\":",
          cnt, cnt, cnt, cnt, cnt, aid, r->room_id, aid, sec);
  sb_add_json_str(&b, r->nick, strlen(r->nick));
  sb_addf(&b, "},\"qrcode_url\":\"\",\"enter_mode\":0,\"room_status\":%d},\"extra\":{\"now\":%lld},\"status_code\":0}",
          live ? 0 : 2, nowms);
  http_respond(c, 200, "OK", "application/json; charset=utf-8", NULL, b.p, b.len);
  sb_free(&b);
}

static bool room_checks_sig(const room_t *r) { return r->sig == SIG_CHECK || (r->sig == SIG_DEFAULT && G.check_sig); }
static bool room_gifts_login(const room_t *r) { return r->gifts == GIFTS_LOGIN || (r->gifts == GIFTS_DEFAULT && G.gifts_login); }
static const char *room_hs_opts(const room_t *r) { return r->hs_opts ? r->hs_opts : G.hs_opts; }

static const char *page_name(int page) {
  return page == PAGE_CHALLENGE ? "challenge" : page == PAGE_GONE ? "gone" : "normal";
}

static void json_kv_str(sbuf_t *b, const char *key, const char *v) {
  sb_addf(b, ",\"%s\":", key);
  sb_add_json_str(b, v, strlen(v));
}

/* the 2026 additions of a room's stats: a_bogus, page, gifts, silence, identity, connections */
static void room_stats_2026(sbuf_t *b, room_t *r) {
  sb_addf(b, ",\"page\":\"%s\",\"status\":%d", page_name(r->page), r->status);
  sb_addf(b,
          ",\"abogus_check\":%s,\"abogus_ok\":%" PRIu64 ",\"abogus_missing\":%" PRIu64 ",\"abogus_bad\":%" PRIu64
          ",\"abogus_bad_reasons\":{",
          room_checks_abogus(r) ? "true" : "false", r->abogus_ok, r->abogus_missing, r->abogus_bad);
  for (int i = 1; i < SIM_AB_NREASONS; i++) sb_addf(b, "%s\"%s\":%" PRIu64, i > 1 ? "," : "", sim_ab_reason(i), r->abogus_why[i]);
  sb_adds(b, "}");
  json_kv_str(b, "last_abogus", r->last_abogus);
  json_kv_str(b, "last_abogus_detail", r->last_abogus_detail);
  uint64_t silent_open = 0;
  for (conn_t *c = r->conns; c; c = c->rnext) silent_open += c->silent;
  sb_addf(b,
          ",\"gifts_need_login\":%s,\"logged_in_connections\":%" PRIu64 ",\"guest_connections\":%" PRIu64
          ",\"gifts_withheld\":%" PRIu64 ",\"silenced\":%" PRIu64 ",\"silent_open\":%" PRIu64
          ",\"silent_pending\":%u,\"silent_first\":%u,\"sdk_bad\":%" PRIu64,
          room_gifts_login(r) ? "true" : "false", r->logged_in_conns, r->guest_conns, r->gifts_withheld, r->silenced,
          silent_open, r->silent_pending, r->silent_first, r->sdk_bad);
  json_kv_str(b, "sdk_required", r->sdk);
  json_kv_str(b, "handshake_options", room_hs_opts(r) ? room_hs_opts(r) : "");
  sb_adds(b, ",\"upgrades\":[");
  size_t nu = r->upgrades_total < UPGRADE_LOG ? (size_t)r->upgrades_total : UPGRADE_LOG;
  for (size_t k = 0; k < nu; k++) { /* oldest first */
    const upgrade_t *u = &r->upgrades[(r->upgrades_total - nu + k) % UPGRADE_LOG];
    sb_addf(b, "%s{\"n\":%" PRIu64 ",\"logged_in\":%s", k ? "," : "", u->n, u->logged_in ? "true" : "false");
    json_kv_str(b, "webcast_sdk_version", u->sdk);
    json_kv_str(b, "update_version_code", u->uvc);
    sb_adds(b, ",\"origin\":");
    if (u->has_origin)
      sb_add_json_str(b, u->origin, strlen(u->origin));
    else
      sb_adds(b, "null");
    json_kv_str(b, "result", u->result);
    sb_adds(b, "}");
  }
  sb_adds(b, "],\"conns\":[");
  bool first = true;
  for (conn_t *c = r->conns; c; c = c->rnext) {
    sb_addf(b, "%s{\"n\":%" PRIu64 ",\"logged_in\":%s,\"gifts_withheld\":%s,\"silent\":%s}", first ? "" : ",",
            c->serial, c->logged_in ? "true" : "false", c->guest ? "true" : "false", c->silent ? "true" : "false");
    first = false;
  }
  sb_adds(b, "]");
}

static void room_stats_json(sbuf_t *b, room_t *r) {
  uint64_t open = 0;
  for (conn_t *c = r->conns; c; c = c->rnext) open++;
  sb_addf(b,
          "{\"live_id\":\"%s\",\"room_id\":\"%s\",\"connections\":%" PRIu64 ",\"open\":%" PRIu64
          ",\"frames_sent\":%" PRIu64 ",\"messages_sent\":%" PRIu64 ",\"acks_expected\":%" PRIu64
          ",\"acks_ok\":%" PRIu64 ",\"acks_bad\":%" PRIu64 ",\"hb\":%" PRIu64 ",\"pongs\":%" PRIu64
          ",\"pings_sent\":%" PRIu64 ",\"other_client_frames\":%" PRIu64 ",\"injected\":%" PRIu64
          ",\"client_closes\":%" PRIu64 ",\"protocol_errors\":%" PRIu64 ",\"ws_rejected\":%" PRIu64
          ",\"sig_check\":%s,\"sig_ok\":%" PRIu64 ",\"sig_bad\":%" PRIu64 ",\"sig_missing\":%" PRIu64
          ",\"sig_reused\":%" PRIu64
          ",\"paused\":%s,\"position\":%zu,\"total_frames\":%zu,\"done\":%s,\"last_query\":",
          r->live_id, r->room_id, r->connections, open, r->frames_sent, r->messages_sent, r->acks_expected,
          r->acks_ok, r->acks_bad, r->hb, r->pongs, r->pings_sent, r->other_client_frames, r->injected,
          r->client_closes, r->protocol_errors, r->ws_rejected, room_checks_sig(r) ? "true" : "false", r->sig_ok,
          r->sig_bad, r->sig_missing, r->sig_reused, r->paused ? "true" : "false", r->position,
          r->nframes, r->distinct_sent == r->nframes ? "true" : "false");
  sb_add_json_str(b, r->last_query, strlen(r->last_query));
  sb_adds(b, ",\"last_reject\":");
  sb_add_json_str(b, r->last_reject, strlen(r->last_reject));
  sb_adds(b, ",\"last_reject_detail\":");
  sb_add_json_str(b, r->last_reject_detail, strlen(r->last_reject_detail));
  sb_adds(b, ",\"last_headers\":");
  sb_add(b, r->last_headers.p, r->last_headers.len);
  room_stats_2026(b, r);
  sb_adds(b, "}");
}

/* ---- malformed frames for /_sim/inject */

static void build_pushframe(sbuf_t *out, uint64_t log_id, bool gzip_hdr, const uint8_t *payload, size_t plen) {
  pb_put_uint(out, 1, 1);
  pb_put_uint(out, 2, log_id);
  pb_put_uint(out, 3, 8888);
  pb_put_uint(out, 4, 8);
  if (gzip_hdr) {
    sbuf_t h = {0};
    pb_put_bytes(&h, 1, "compress_type", 13);
    pb_put_bytes(&h, 2, "gzip", 4);
    pb_put_bytes(out, 5, h.p, h.len);
    sb_free(&h);
  }
  pb_put_bytes(out, 6, "pb", 2);
  pb_put_bytes(out, 7, "msg", 3);
  pb_put_bytes(out, 8, payload, plen);
}

static void ensure_bomb(void) {
  if (G.bomb.len) return;
  int64_t t0 = now_ms();
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) die("deflateInit2");
  static uint8_t zeros[1 << 20];
  size_t left = BOMB_SIZE;
  for (;;) {
    size_t chunk = left < sizeof zeros ? left : sizeof zeros;
    zs.next_in = zeros;
    zs.avail_in = (uInt)chunk;
    left -= chunk;
    int flush = left ? Z_NO_FLUSH : Z_FINISH;
    int rc;
    do {
      sb_reserve(&G.bomb, 65536);
      zs.next_out = G.bomb.p + G.bomb.len;
      zs.avail_out = (uInt)(G.bomb.cap - G.bomb.len);
      rc = deflate(&zs, flush);
      G.bomb.len = G.bomb.cap - zs.avail_out;
    } while (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    if (!left) break;
  }
  deflateEnd(&zs);
  logf_("built gzip bomb: %zu bytes inflating to %zu in %lld ms", G.bomb.len, BOMB_SIZE, (long long)(now_ms() - t0));
}

static bool build_inject(const char *kind, sbuf_t *pf) {
  uint64_t log_id = 7000000000000000000ULL + rnd64() % 1000000000000000000ULL;
  if (!strcmp(kind, "garbage")) {
    static const uint8_t g[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0xde, 0xad};
    sb_add(pf, g, sizeof g);
  } else if (!strcmp(kind, "truncated")) {
    sbuf_t resp = {0}, gz = {0};
    pb_put_bytes(&resp, 5, "internal_src:pushserver|seq:1", 29);
    pb_put_uint(&resp, 9, 1);
    sim_gzip(resp.p, resp.len, &gz);
    build_pushframe(pf, log_id, true, gz.p, gz.len);
    pf->len -= gz.len / 2 + 1; /* cut inside the payload bytes */
    sb_free(&resp);
    sb_free(&gz);
  } else if (!strcmp(kind, "badgzip")) {
    static const uint8_t bad[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff,
                                  0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x00, 0x00, 0x00, 0x00};
    build_pushframe(pf, log_id, true, bad, sizeof bad);
  } else if (!strcmp(kind, "bomb")) {
    ensure_bomb();
    build_pushframe(pf, log_id, true, G.bomb.p, G.bomb.len);
  } else if (!strcmp(kind, "badwire")) {
    /* Message{method="WebcastChatMessage" (ok), msg_id (field 3, uint64) sent as length-delimited} */
    sbuf_t msg = {0}, resp = {0}, gz = {0};
    pb_put_bytes(&msg, 1, "WebcastChatMessage", 18);
    pb_put_bytes(&msg, 2, "\x0a\x00", 2);
    pb_put_bytes(&msg, 3, "12345678", 8);
    pb_put_bytes(&resp, 1, msg.p, msg.len);
    pb_put_bytes(&resp, 2, "t-1_r-1_d-1_u-1", 15);
    pb_put_bytes(&resp, 5, "internal_src:pushserver|seq:1", 29);
    pb_put_uint(&resp, 9, 0);
    sim_gzip(resp.p, resp.len, &gz);
    build_pushframe(pf, log_id, true, gz.p, gz.len);
    sb_free(&msg);
    sb_free(&resp);
    sb_free(&gz);
  } else {
    return false;
  }
  return true;
}

static void handle_sim(conn_t *c, const req_t *q) {
  const char *what = q->path + 6; /* after "/_sim/" */
  char *live = query_param(q->query, "live_id");
  room_t *r = live ? room_by_live(live) : NULL;
  sbuf_t b = {0};
  if (!strcmp(what, "stats")) {
    if (live && !r) {
      http_text(c, 404, "Not Found", "unknown live_id\n");
    } else if (r) {
      room_stats_json(&b, r);
      http_respond(c, 200, "OK", "application/json", NULL, b.p, b.len);
    } else {
      sb_adds(&b, "{");
      for (size_t i = 0; i < G.nrooms; i++) {
        if (i) sb_adds(&b, ",");
        sb_add_json_str(&b, G.rooms[i]->live_id, strlen(G.rooms[i]->live_id));
        sb_adds(&b, ":");
        room_stats_json(&b, G.rooms[i]);
      }
      sb_adds(&b, "}");
      http_respond(c, 200, "OK", "application/json", NULL, b.p, b.len);
    }
    goto out;
  }
  if (!r) {
    http_text(c, 404, "Not Found", "unknown or missing live_id\n");
    goto out;
  }
  unsigned n = 0;
  if (!strcmp(what, "drop")) {
    conn_t *x = r->conns;
    while (x) {
      conn_t *nx = x->rnext;
      conn_kill(x);
      n++;
      x = nx;
    }
    logf_("room %s: dropped %u connection(s)", r->live_id, n);
  } else if (!strcmp(what, "inject")) {
    char *kind = query_param(q->query, "kind");
    sbuf_t pf = {0};
    if (!kind || !build_inject(kind, &pf)) {
      free(kind);
      http_text(c, 400, "Bad Request", "kind must be garbage|truncated|badgzip|bomb|badwire\n");
      goto out;
    }
    uint8_t h[10];
    size_t hl = ws_hdr(h, 2, pf.len);
    for (conn_t *x = r->conns; x; x = x->rnext) {
      if (!ws_pushes(x)) continue; /* a silent connection gets no frames, malformed ones neither */
      uint8_t *m = malloc(hl + pf.len);
      if (!m) die("out of memory");
      memcpy(m, h, hl);
      memcpy(m + hl, pf.p, pf.len);
      q_push(x, m, hl + pf.len, m, -1, false);
      r->injected++;
      n++;
      conn_flush(x);
    }
    logf_("room %s: injected %s (%zu bytes) into %u connection(s)", r->live_id, kind, pf.len, n);
    free(kind);
    sb_free(&pf);
  } else if (!strcmp(what, "close")) {
    char *code = query_param(q->query, "code");
    unsigned cd = code ? (unsigned)strtoul(code, NULL, 10) : 1000;
    free(code);
    for (conn_t *x = r->conns; x; x = x->rnext) {
      if (!ws_live(x)) continue;
      ws_send_close(x, cd, "dylive-sim");
      n++;
      conn_flush(x);
    }
    logf_("room %s: sent close %u to %u connection(s)", r->live_id, cd, n);
  } else if (!strcmp(what, "status")) {
    /* the anchor goes live again (2) or off the air (4): what the live page and web/enter say */
    char *st = query_param(q->query, "status");
    int v = st ? atoi(st) : 0;
    free(st);
    if (v != 2 && v != 4) {
      http_text(c, 400, "Bad Request", "status must be 2 or 4\n");
      goto out;
    }
    r->status = v;
    logf_("room %s: status now %d", r->live_id, v);
  } else if (!strcmp(what, "page")) {
    /* what the live page is from now on: normal, a challenge shell, or gone (404 / error / 404) */
    char *pg = query_param(q->query, "page");
    int v = -1;
    for (int k = PAGE_NORMAL; pg && k <= PAGE_GONE; k++)
      if (!strcmp(pg, page_name(k))) v = k;
    free(pg);
    if (v < 0) {
      http_text(c, 400, "Bad Request", "page must be normal, challenge or gone\n");
      goto out;
    }
    r->page = v;
    logf_("room %s: page now %s", r->live_id, page_name(v));
  } else if (!strcmp(what, "silent")) {
    /* PROTOCOL §9.6: the open connections (which=current, the default) or the next one go silent */
    char *which = query_param(q->query, "which");
    bool next = which && !strcmp(which, "next");
    bool ok = !which || next || !strcmp(which, "current");
    free(which);
    if (!ok) {
      http_text(c, 400, "Bad Request", "which must be current or next\n");
      goto out;
    }
    if (next) {
      r->silent_pending++;
    } else {
      for (conn_t *x = r->conns; x; x = x->rnext)
        if (ws_pushes(x)) {
          conn_go_silent(x, "/_sim/silent");
          n++;
        }
    }
  } else if (!strcmp(what, "pause")) {
    r->paused = true;
  } else if (!strcmp(what, "resume")) {
    r->paused = false;
    r->next_due_ns = now_ns();
  } else {
    http_text(c, 404, "Not Found", "unknown /_sim endpoint\n");
    goto out;
  }
  sb_addf(&b, "{\"ok\":true,\"connections\":%u}", n);
  http_respond(c, 200, "OK", "application/json", NULL, b.p, b.len);
out:
  free(live);
  sb_free(&b);
}

/* ---- WebSocket upgrade */

static void record_request(room_t *r, const req_t *q) {
  free(r->last_query);
  r->last_query = xstrdup(q->query ? q->query : "");
  r->last_headers.len = 0;
  sb_adds(&r->last_headers, "{");
  bool first = true;
  for (int i = 0; i < q->nh; i++) {
    /* lower-case keys; join duplicates is not needed for the recorded set */
    char key[128];
    size_t kl = strlen(q->h[i].name);
    if (kl >= sizeof key) continue;
    for (size_t k = 0; k <= kl; k++) key[k] = (char)tolower((unsigned char)q->h[i].name[k]);
    if (!first) sb_adds(&r->last_headers, ",");
    first = false;
    sb_add_json_str(&r->last_headers, key, kl);
    sb_adds(&r->last_headers, ":");
    sb_add_json_str(&r->last_headers, q->h[i].value, strlen(q->h[i].value));
  }
  sb_adds(&r->last_headers, "}");
}

static bool header_has_token(const char *v, const char *tok) {
  if (!v) return false;
  size_t tl = strlen(tok);
  const char *p = v;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *s = p;
    while (*p && *p != ',') p++;
    const char *e = p;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if ((size_t)(e - s) == tl && !strncasecmp(s, tok, tl)) return true;
  }
  return false;
}

/* Signature check (PROTOCOL §2.3-2.4). Returns NULL = accept, else the reject reason
 * ("sig_missing", "sig_bad", "sig_reused") with a human-readable detail. Counts the outcome. */
static const char *check_signature(room_t *r, const char *query, char *detail, size_t dn) {
  detail[0] = 0;
  if (!room_checks_sig(r)) return NULL;
  char *sig = query_param(query, "signature"); /* %2B/%2F decoded; a raw '+' is a space (refused) */
  if (!sig || !*sig) {
    free(sig);
    r->sig_missing++;
    snprintf(detail, dn, "no signature in the query");
    return "sig_missing";
  }
  /* X-MS-STUB from the URL's own values: the 13 fields in order */
  static const struct {
    const char *name, *def;
    bool from_query;
  } F[13] = {
      {"live_id", "1", true},          {"aid", "6383", true},        {"version_code", "180800", true},
      {"webcast_sdk_version", "", true}, {"room_id", "", true},        {"sub_room_id", "", false},
      {"sub_channel_id", "", false},   {"did_rule", "3", true},      {"user_unique_id", "", true},
      {"device_platform", "web", true}, {"device_type", "", false},   {"ac", "", false},
      {"identity", "audience", true},
  };
  sbuf_t in = {0};
  for (int i = 0; i < 13; i++) {
    char *v = F[i].from_query ? query_param(query, F[i].name) : NULL;
    sb_addf(&in, "%s%s=%s", i ? "," : "", F[i].name, v ? v : F[i].def);
    free(v);
  }
  sb_add(&in, "", 1);
  char stub[33];
  sim_md5_hex((const char *)in.p, stub);
  int rc = sim_sig_verify(stub, sig);
  const char *why = NULL;
  if (rc != SIM_SIG_OK) {
    r->sig_bad++;
    snprintf(detail, dn, "%s (stub %s)", sim_sig_why(rc), stub);
    why = "sig_bad";
  } else {
    for (size_t i = 0; i < SIG_RECENT && !why; i++)
      if (!strcmp(r->recent_sigs[i], sig)) why = "sig_reused";
    if (why) {
      r->sig_reused++;
      snprintf(detail, dn, "signature %s was already used by an earlier connection", sig);
    } else {
      r->sig_ok++;
      memcpy(r->recent_sigs[r->recent_next], sig, 17);
      r->recent_next = (r->recent_next + 1) % SIG_RECENT;
    }
  }
  if (G.verbose) logf_("room %s: signature %s stub input %s -> %s", r->live_id, sig, (const char *)in.p, sim_sig_why(rc));
  sb_free(&in);
  free(sig);
  return why;
}

/* A non-empty sessionid cookie in a Cookie header: a logged-in web session (PROTOCOL §9.5 treats
 * "no sessionid" as a guest). sessionid_ss and the like do not count. */
static bool has_session_cookie(const req_t *q) {
  for (int i = 0; i < q->nh; i++) {
    if (strcasecmp(q->h[i].name, "Cookie")) continue;
    for (const char *p = q->h[i].value; *p;) {
      while (*p == ' ' || *p == '\t' || *p == ';') p++;
      const char *nm = p;
      while (*p && *p != ';' && *p != '=') p++;
      size_t nl = (size_t)(p - nm);
      while (nl && (nm[nl - 1] == ' ' || nm[nl - 1] == '\t')) nl--;
      size_t vl = 0;
      if (*p == '=') {
        const char *v = ++p;
        while (*p && *p != ';') p++;
        while (v < p && (*v == ' ' || *v == '"')) v++;
        vl = (size_t)(p - v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '"')) vl--;
      }
      if (nl == 9 && !memcmp(nm, "sessionid", 9) && vl) return true;
    }
  }
  return false;
}

/* src cut to dn - 1 bytes, each byte outside printable ASCII shown as '?' (stats stay valid JSON/UTF-8) */
static void printable_copy(char *dst, size_t dn, const char *src) {
  size_t i = 0;
  for (; src && src[i] && i + 1 < dn; i++) dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
  dst[i] = 0;
}

/* Notes the client identity of an upgrade (PROTOCOL §9.4) in the room's ring; values cut, printable. */
static upgrade_t *record_upgrade(room_t *r, const req_t *q, const char *sdk, bool logged_in) {
  upgrade_t *u = &r->upgrades[r->upgrades_total++ % UPGRADE_LOG];
  memset(u, 0, sizeof *u);
  u->n = r->upgrades_total;
  u->logged_in = logged_in;
  char *uvc = query_param(q->query, "update_version_code");
  const char *origin = req_header(q, "Origin");
  printable_copy(u->sdk, sizeof u->sdk, sdk);
  printable_copy(u->uvc, sizeof u->uvc, uvc);
  u->has_origin = origin != NULL;
  printable_copy(u->origin, sizeof u->origin, origin);
  free(uvc);
  return u;
}

/* sdk=: an upgrade with another webcast_sdk_version (sdk, as decoded; shown: as recorded) is refused
 * like a bad signature */
static const char *check_sdk(room_t *r, const char *sdk, const char *shown, char *detail, size_t dn) {
  if (!r->sdk[0] || (sdk && !strcmp(sdk, r->sdk))) return NULL;
  r->sdk_bad++;
  snprintf(detail, dn, "webcast_sdk_version %.40s%s, the room accepts only %s", sdk ? shown : "(absent)",
           sdk && strlen(sdk) > 40 ? "..." : "", r->sdk);
  return "sdk_mismatch";
}

static void handle_ws_upgrade(conn_t *c, const req_t *q) {
  const char *key = req_header(q, "Sec-WebSocket-Key");
  const char *ver = req_header(q, "Sec-WebSocket-Version");
  if (strcmp(q->method, "GET") || !header_has_token(req_header(q, "Upgrade"), "websocket") ||
      !header_has_token(req_header(q, "Connection"), "upgrade") || !key || !ver || strcmp(ver, "13")) {
    c->http_close = true;
    http_respond(c, 400, "Bad Request", "text/plain", "Sec-WebSocket-Version: 13\r\n", "bad upgrade\n", 12);
    return;
  }
  char *rid = query_param(q->query, "room_id");
  room_t *r = rid ? room_by_room_id(rid) : NULL;
  free(rid);
  if (!r || r->page == PAGE_GONE) {
    c->http_close = true;
    http_text(c, 404, "Not Found", "unknown room_id\n");
    return;
  }
  record_request(r, q);
  bool logged_in = has_session_cookie(q);
  char *sdk = query_param(q->query, "webcast_sdk_version");
  upgrade_t *u = record_upgrade(r, q, sdk, logged_in);
  char detail[sizeof r->last_reject_detail];
  const char *why = r->ws_reject ? "ws=reject" : check_sdk(r, sdk, u->sdk, detail, sizeof detail);
  if (!why) why = check_signature(r, q->query, detail, sizeof detail);
  free(sdk);
  snprintf(u->result, sizeof u->result, "%s", why ? why : "accepted");
  if (why) {
    /* what Douyin does on a missing/bad/reused signature or a blocked device (PROTOCOL §2.2) */
    r->ws_rejected++;
    snprintf(r->last_reject, sizeof r->last_reject, "%s", why);
    snprintf(r->last_reject_detail, sizeof r->last_reject_detail, "%s", r->ws_reject ? "room option ws=reject" : detail);
    logf_("room %s: ws upgrade rejected (%s: %s)", r->live_id, r->last_reject, r->last_reject_detail);
    c->http_close = true;
    char hdr[160];
    snprintf(hdr, sizeof hdr, "handshake-status: 415\r\nhandshake-msg: DEVICE_BLOCKED\r\nx-tt-logid: %016" PRIx64 "%016" PRIx64 "\r\n",
             rnd64(), rnd64());
    http_respond_srv(c, "Tengine", 200, "OK", NULL, hdr, "", 0);
    return;
  }
  unsigned char sha[SHA_DIGEST_LENGTH];
  char cat[256];
  snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  SHA1((const unsigned char *)cat, strlen(cat), sha);
  char acc[64];
  EVP_EncodeBlock((unsigned char *)acc, sha, SHA_DIGEST_LENGTH);
  sbuf_t b = {0};
  sb_addf(&b,
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: %s\r\nServer: dylive-sim\r\nx-tt-logid: %016" PRIx64 "\r\n",
          acc, rnd64());
  const char *hso = room_hs_opts(r); /* PROTOCOL §9.4: "ping-interval=<s>;" */
  if (hso) sb_addf(&b, "Handshake-Options: %s%s\r\n", hso, hso[strlen(hso) - 1] == ';' ? "" : ";");
  sb_adds(&b, "\r\n");
  q_push(c, b.p, b.len, b.p, -1, false);
  c->kind = C_WS;
  c->room = r;
  c->rnext = r->conns;
  r->conns = c;
  r->connections++;
  c->serial = r->connections;
  c->logged_in = logged_in;
  c->guest = room_gifts_login(r) && !logged_in;
  if (logged_in)
    r->logged_in_conns++;
  else
    r->guest_conns++;
  c->next_ping_ms = now_ms() + G.ping_ms;
  logf_("room %s: ws connection #%" PRIu64 " (position %zu/%zu, %s%s)", r->live_id, r->connections, r->position,
        r->nframes, logged_in ? "logged in" : "guest", c->guest ? ", gifts withheld" : "");
  if (r->silent_pending) {
    r->silent_pending--;
    conn_go_silent(c, "/_sim/silent which=next");
  } else if (c->serial <= r->silent_first) {
    c->frames_left = 1;
  }
  /* re-push the frames that hold the last --repush messages before the position */
  if (G.repush && r->position > 0) {
    size_t start = r->position;
    uint64_t m = 0;
    while (start > 0 && m < G.repush) {
      start--;
      m += r->frames[start].nmsgs;
    }
    for (size_t i = start; i < r->position; i++) room_enqueue_frame(c, r, i, true);
  }
  if (r->fps && r->next_due_ns < now_ns()) r->next_due_ns = now_ns();
}

static void dispatch(conn_t *c, req_t *q) {
  if (G.verbose) logf_("%s %s", q->method, q->target);
  const char *p = q->path;
  if (!strcmp(p, "/webcast/im/push/v2/") || !strcmp(p, "/webcast/im/push/v2")) {
    handle_ws_upgrade(c, q);
    return;
  }
  if (!strncmp(p, "/_sim/", 6)) {
    handle_sim(c, q);
    return;
  }
  if (strcmp(q->method, "GET") && strcmp(q->method, "HEAD")) {
    http_text(c, 405, "Method Not Allowed", "method not allowed\n");
    return;
  }
  if (!strcmp(p, "/")) {
    handle_home(c);
    return;
  }
  if (!strcmp(p, "/webcast/room/web/enter/") || !strcmp(p, "/webcast/room/web/enter")) {
    handle_enter(c, q);
    return;
  }
  if (p[0] == '/' && p[1] && !strchr(p + 1, '/')) {
    room_t *r = room_by_live(p + 1);
    if (r) {
      handle_live_page(c, r);
      return;
    }
  }
  http_text(c, 404, "Not Found", "not found\n");
}

static void ws_on_data(conn_t *c);

/* parse as many HTTP requests as are complete in c->in */
static void http_on_data(conn_t *c) {
  while (!c->dead && c->kind == C_HTTP && !c->close_after_flush) {
    uint8_t *base = c->in.p + c->in_off;
    size_t avail = c->in.len - c->in_off;
    uint8_t *end = avail >= 4 ? memmem(base, avail, "\r\n\r\n", 4) : NULL;
    if (!end) {
      if (avail > HTTP_MAX_HEAD) {
        c->http_close = true;
        http_text(c, 431, "Request Header Fields Too Large", "too large\n");
      }
      break;
    }
    size_t hlen = (size_t)(end - base) + 4;
    char *hb = xstrndup((const char *)base, hlen - 4); /* parse a copy: the body may not be here yet */
    req_t q;
    memset(&q, 0, sizeof q);
    char *line = hb;
    char *nl = strstr(line, "\r\n");
    if (nl) *nl = 0;
    q.method = line;
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2) {
      c->http_close = true;
      http_text(c, 400, "Bad Request", "bad request line\n");
      free(hb);
      break;
    }
    *sp1 = 0;
    *sp2 = 0;
    q.target = sp1 + 1;
    q.version = sp2 + 1;
    char *h = nl ? nl + 2 : NULL;
    while (h && *h && q.nh < MAX_HDRS) {
      char *e = strstr(h, "\r\n");
      if (e) *e = 0;
      char *colon = strchr(h, ':');
      if (colon) {
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) v[--vl] = 0;
        q.h[q.nh].name = h;
        q.h[q.nh].value = v;
        q.nh++;
      }
      h = e ? e + 2 : NULL;
    }
    size_t clen = 0;
    const char *cl = req_header(&q, "Content-Length");
    if (cl) clen = (size_t)strtoull(cl, NULL, 10);
    if (clen > HTTP_MAX_HEAD) {
      c->http_close = true;
      http_text(c, 413, "Payload Too Large", "body too large\n");
      free(hb);
      break;
    }
    if (avail < hlen + clen) {
      free(hb);
      break;
    }
    const char *conn_h = req_header(&q, "Connection");
    if (header_has_token(conn_h, "close") || !strcmp(q.version, "HTTP/1.0")) c->http_close = true;
    char *qm = strchr(q.target, '?');
    char pathbuf[2048];
    size_t pl = qm ? (size_t)(qm - q.target) : strlen(q.target);
    if (pl >= sizeof pathbuf) pl = sizeof pathbuf - 1;
    memcpy(pathbuf, q.target, pl);
    pathbuf[pl] = 0;
    q.path = pathbuf;
    q.query = qm ? qm + 1 : NULL;
    /* absolute-form target */
    if (!strncmp(q.path, "http://", 7) || !strncmp(q.path, "https://", 8)) {
      char *s = strchr(q.path + 8, '/');
      q.path = s ? s : (char *)"/";
    }
    c->in_off += hlen + clen;
    c->http_head = !strcmp(q.method, "HEAD");
    dispatch(c, &q);
    free(hb);
  }
  if (c->dead) return;
  if (c->in_off == c->in.len) {
    c->in.len = c->in_off = 0;
  }
  if (c->kind == C_WS) ws_on_data(c);
  if (c->qn) conn_flush(c);
}

/* ------------------------------------------------------------------ WebSocket (client -> server) */

static void ws_fail(conn_t *c, unsigned code, const char *why) {
  if (c->room) c->room->protocol_errors++;
  logf_("ws protocol error: %s (closing with %u)", why, code);
  if (!c->close_sent) ws_send_close(c, code, why);
  c->close_after_flush = true;
  c->in.len = c->in_off = 0;
}

static void on_client_message(conn_t *c, int op, const uint8_t *d, size_t n) {
  room_t *r = c->room;
  (void)op; /* binary or text: both are parsed as a PushFrame */
  if (n == 2 && d[0] == 'h' && d[1] == 'b') {
    r->hb++;
    return;
  }
  pbr_t pr = {d, d + n};
  pbf_t f;
  int rc;
  uint64_t log_id = 0;
  bool has_log = false;
  const uint8_t *pt = NULL, *pl = NULL;
  size_t ptn = 0, pln = 0;
  while ((rc = pb_next(&pr, &f)) == 1) {
    if (f.field == 2 && f.wt == 0) log_id = f.v, has_log = true;
    if (f.field == 7 && f.wt == 2) pt = f.d, ptn = f.len;
    if (f.field == 8 && f.wt == 2) pl = f.d, pln = f.len;
  }
  if (rc < 0 || !pt) {
    r->other_client_frames++;
    return;
  }
  if (ptn == 2 && !memcmp(pt, "hb", 2)) {
    r->hb++;
    return;
  }
  if (ptn == 3 && !memcmp(pt, "ack", 3)) {
    bool ok = false;
    if (has_log) {
      for (int32_t i = log_lookup(r, log_id); i >= 0; i = r->frames[i].next_same_log) {
        frame_t *fr = &r->frames[i];
        if (!fr->sent || !fr->need_ack) continue;
        if ((fr->ext_resp && strlen(fr->ext_resp) == pln && !memcmp(fr->ext_resp, pl ? (const void *)pl : "", pln)) ||
            (fr->ext_hdr && strlen(fr->ext_hdr) == pln && !memcmp(fr->ext_hdr, pl ? (const void *)pl : "", pln))) {
          ok = true;
          break;
        }
      }
    }
    if (ok)
      r->acks_ok++;
    else
      r->acks_bad++;
    return;
  }
  r->other_client_frames++;
}

static void ws_on_data(conn_t *c) {
  while (!c->dead && !c->close_after_flush) {
    uint8_t *p = c->in.p + c->in_off;
    size_t avail = c->in.len - c->in_off;
    if (avail < 2) break;
    bool fin = p[0] & 0x80;
    int rsv = p[0] & 0x70;
    int op = p[0] & 0x0f;
    bool masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = ((uint64_t)p[2] << 8) | p[3];
      hl = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
      hl = 10;
    }
    if (rsv) {
      ws_fail(c, 1002, "reserved bits set");
      return;
    }
    if (!masked) {
      ws_fail(c, 1002, "unmasked client frame");
      return;
    }
    if (len > WS_MAX_MSG) {
      ws_fail(c, 1009, "frame too large");
      return;
    }
    hl += 4;
    if (avail < hl + len) break;
    uint8_t *mask = p + hl - 4;
    uint8_t *pay = p + hl;
    for (uint64_t i = 0; i < len; i++) pay[i] ^= mask[i & 3];
    c->in_off += hl + (size_t)len;
    if (op >= 8) {
      if (!fin || len > 125) {
        ws_fail(c, 1002, "bad control frame");
        return;
      }
      if (op == 9) {
        if (!c->close_sent) ws_send_ctl(c, 10, pay, (size_t)len);
      } else if (op == 10) {
        c->room->pongs++;
      } else if (op == 8) {
        c->room->client_closes++;
        if (c->close_sent) {
          conn_kill(c); /* closing handshake complete */
          return;
        }
        unsigned code = len >= 2 ? ((unsigned)pay[0] << 8 | pay[1]) : 1000;
        uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        ws_send_ctl(c, 8, echo, len >= 2 ? 2 : 0);
        c->close_sent = true;
        c->close_after_flush = true;
        return;
      } else {
        ws_fail(c, 1002, "unknown control opcode");
        return;
      }
      continue;
    }
    if (op == 0) {
      if (!c->frag_op) {
        ws_fail(c, 1002, "continuation without a start");
        return;
      }
      if (c->frag.len + len > WS_MAX_MSG) {
        ws_fail(c, 1009, "message too large");
        return;
      }
      sb_add(&c->frag, pay, (size_t)len);
      if (fin) {
        on_client_message(c, c->frag_op, c->frag.p, c->frag.len);
        c->frag.len = 0;
        c->frag_op = 0;
      }
    } else if (op == 1 || op == 2) {
      if (c->frag_op) {
        ws_fail(c, 1002, "new message inside a fragmented one");
        return;
      }
      if (fin) {
        on_client_message(c, op, pay, (size_t)len);
      } else {
        c->frag_op = op;
        c->frag.len = 0;
        sb_add(&c->frag, pay, (size_t)len);
      }
    } else {
      ws_fail(c, 1002, "unknown opcode");
      return;
    }
  }
  if (c->dead) return;
  if (c->in_off == c->in.len) {
    c->in.len = c->in_off = 0;
  } else if (c->in_off > 65536) {
    memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
    c->in.len -= c->in_off;
    c->in_off = 0;
  }
}

/* ------------------------------------------------------------------ event loop */

static void conn_on_readable(conn_t *c) {
  if (c->tls == TLS_UNKNOWN) {
    uint8_t b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      conn_kill(c);
      return;
    }
    if (n < 0) return;
    if (b == 0x16) {
      c->ssl = SSL_new(G.tls_ctx);
      if (!c->ssl) {
        conn_kill(c);
        return;
      }
      SSL_set_fd(c->ssl, c->fd);
      SSL_set_accept_state(c->ssl);
      c->tls = TLS_HANDSHAKE;
    } else {
      c->tls = TLS_NONE;
    }
  }
  if (c->tls == TLS_HANDSHAKE) {
    int rc = SSL_accept(c->ssl);
    if (rc == 1) {
      c->tls = TLS_ON;
      conn_arm_out(c, c->qn > 0);
    } else {
      int err = SSL_get_error(c->ssl, rc);
      if (err == SSL_ERROR_WANT_READ) {
        conn_arm_out(c, false);
        return;
      }
      if (err == SSL_ERROR_WANT_WRITE) {
        conn_arm_out(c, true);
        return;
      }
      logf_("TLS handshake failed");
      conn_kill(c);
      return;
    }
  }
  /* read what is there (bounded per wake-up for fairness); TLS may hold buffered records */
  size_t total = 0;
  for (;;) {
    ssize_t n = conn_read(c);
    if (n < 0) {
      /* EOF: what arrived before it (a client's last acks, its close frame) still counts */
      if (total && c->kind == C_WS) ws_on_data(c);
      conn_kill(c);
      return;
    }
    if (n == 0) break;
    total += (size_t)n;
    if (c->kind == C_HTTP ? c->in.len - c->in_off > HTTP_MAX_HEAD + 65536 : total > (4u << 20)) break;
    if (c->in.len - c->in_off > WS_MAX_MSG + 64) break;
  }
  if (c->kind == C_HTTP)
    http_on_data(c);
  else
    ws_on_data(c);
  if (!c->dead && c->qn && !c->out_armed) conn_flush(c);
}

static void conn_on_writable(conn_t *c) {
  if (c->tls == TLS_HANDSHAKE) {
    conn_on_readable(c);
    return;
  }
  conn_flush(c);
  if (!c->dead && c->room && c->kind == C_WS) room_pump(c->room);
}

static void on_accept(void) {
  for (;;) {
    int fd = accept4(G.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        logf_("accept: %s", strerror(errno));
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = calloc(1, sizeof *c);
    if (!c) die("out of memory");
    c->fd = fd;
    c->tls = G.tls_ctx ? TLS_UNKNOWN : TLS_NONE;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      free(c);
      continue;
    }
    c->next = G.conns;
    G.conns = c;
  }
}

static void on_signal(int sig) {
  (void)sig;
  G.stop = 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: dylive-sim [--port N] [--port-file PATH] --room SPEC [--room SPEC ...]\n"
          "                  [--ping-ms N] [--repush N] [--ttwid VALUE] [--cookie-domain D]\n"
          "                  [--hwm-kb N] [--tls-cert PEM --tls-key PEM] [--check-signature] [--verbose]\n"
          "                  [--check-abogus] [--gifts-need-login] [--handshake-options STR] [--clock-ms N]\n"
          "                  [--pace-us]\n"
          "  SPEC = LIVE_ID[:FRAMES_FILE][,room_id=N][,fps=N][,status=2|4][,loop]\n"
          "         [,page=normal|challenge|gone][,enter=ok|empty|error][,ws=ok|reject][,sig=check|off]\n"
          "         [,abogus=check|off][,gifts=login|all][,sdk=V][,handshake_options=STR][,silent=N]\n"
          "         [,title=T][,nick=N]\n");
  exit(2);
}

int main(int argc, char **argv) {
  unsigned port = 0;
  const char *port_file = NULL, *cert = NULL, *keyf = NULL;
  G.ping_ms = 5000;
  G.repush = 15;
  G.hwm = 4u << 20;
  G.cookie_domain = "douyin.com";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()      \
  do {               \
    if (!v) usage(); \
    i++;             \
  } while (0)
    if (!strcmp(a, "--port")) {
      NEEDV();
      port = (unsigned)strtoul(v, NULL, 10);
    } else if (!strcmp(a, "--port-file")) {
      NEEDV();
      port_file = v;
    } else if (!strcmp(a, "--room")) {
      NEEDV();
      G.rooms = realloc(G.rooms, (G.nrooms + 1) * sizeof *G.rooms);
      if (!G.rooms) die("out of memory");
      G.rooms[G.nrooms++] = parse_room(v);
    } else if (!strcmp(a, "--ping-ms")) {
      NEEDV();
      G.ping_ms = (unsigned)strtoul(v, NULL, 10);
    } else if (!strcmp(a, "--repush")) {
      NEEDV();
      G.repush = (unsigned)strtoul(v, NULL, 10);
    } else if (!strcmp(a, "--ttwid")) {
      NEEDV();
      G.ttwid = v;
    } else if (!strcmp(a, "--cookie-domain")) {
      NEEDV();
      G.cookie_domain = v;
    } else if (!strcmp(a, "--hwm-kb")) {
      NEEDV();
      G.hwm = (size_t)strtoul(v, NULL, 10) * 1024;
      if (!G.hwm) G.hwm = 1;
    } else if (!strcmp(a, "--tls-cert")) {
      NEEDV();
      cert = v;
    } else if (!strcmp(a, "--tls-key")) {
      NEEDV();
      keyf = v;
    } else if (!strcmp(a, "--check-signature")) {
      G.check_sig = true;
    } else if (!strcmp(a, "--check-abogus")) {
      G.check_abogus = true;
    } else if (!strcmp(a, "--gifts-need-login")) {
      G.gifts_login = true;
    } else if (!strcmp(a, "--handshake-options")) {
      NEEDV();
      if (!valid_hs_opts(v)) die("--handshake-options %s: expected key=digits[;key=digits...], e.g. ping-interval=10", v);
      G.hs_opts = v;
    } else if (!strcmp(a, "--clock-ms")) {
      NEEDV();
      if (!all_digits(v) || strlen(v) > 15) die("--clock-ms %s: expected Unix milliseconds", v);
      G.clock_set = true;
      G.clock_ms = strtoll(v, NULL, 10);
      G.clock_mono0 = now_ms();
    } else if (!strcmp(a, "--pace-us")) {
      G.pace_us = true;
    } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
      G.verbose = true;
    } else {
      usage();
    }
#undef NEEDV
  }
  if (!G.nrooms) usage();
  for (size_t i = 0; i < G.nrooms; i++)
    for (size_t j = i + 1; j < G.nrooms; j++)
      if (!strcmp(G.rooms[i]->live_id, G.rooms[j]->live_id) || !strcmp(G.rooms[i]->room_id, G.rooms[j]->room_id))
        die("duplicate live_id or room_id: %s / %s", G.rooms[i]->live_id, G.rooms[j]->live_id);
  if (!!cert != !!keyf) die("--tls-cert and --tls-key go together");
  bool abogus_used = G.check_abogus;
  for (size_t i = 0; i < G.nrooms; i++) abogus_used |= G.rooms[i]->abogus == AB_CHECK;
  if (abogus_used && sim_ab_init() < 0) die("a_bogus checks need SM3, which this OpenSSL does not provide");
  if (cert) {
    G.tls_ctx = SSL_CTX_new(TLS_server_method());
    if (!G.tls_ctx || SSL_CTX_use_certificate_chain_file(G.tls_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(G.tls_ctx, keyf, SSL_FILETYPE_PEM) != 1)
      die("cannot load TLS certificate/key (%s, %s)", cert, keyf);
    SSL_CTX_set_mode(G.tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  G.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (G.lfd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(G.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((uint16_t)port);
  if (bind(G.lfd, (struct sockaddr *)&sin, sizeof sin) < 0) die("bind 127.0.0.1:%u: %s", port, strerror(errno));
  if (listen(G.lfd, 128) < 0) die("listen: %s", strerror(errno));
  socklen_t sl = sizeof sin;
  getsockname(G.lfd, (struct sockaddr *)&sin, &sl);
  port = ntohs(sin.sin_port);
  G.ep = epoll_create1(EPOLL_CLOEXEC);
  if (G.ep < 0) die("epoll_create1: %s", strerror(errno));
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(G.ep, EPOLL_CTL_ADD, G.lfd, &lev);
  if (port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", port_file, (int)getpid());
    FILE *pf = fopen(tmp, "w");
    if (!pf || fprintf(pf, "%u\n", port) < 0 || fclose(pf) != 0 || rename(tmp, port_file) != 0)
      die("cannot write port file %s", port_file);
  }
  printf("listening %u\n", port);
  fflush(stdout);
  logf_("listening on 127.0.0.1:%u%s, %zu room(s), ping %u ms, repush %u", port, G.tls_ctx ? " (http+tls)" : "",
        G.nrooms, G.ping_ms, G.repush);

  struct epoll_event evs[128];
  while (!G.stop) {
    /* timeout: next ping, next paced frame, close deadline */
    int64_t tnow = now_ms();
    int64_t next = tnow + 1000, next_ns = INT64_MAX;
    for (conn_t *c = G.conns; c; c = c->next) {
      if (c->dead || c->kind != C_WS) continue;
      if (G.ping_ms && c->next_ping_ms < next) next = c->next_ping_ms;
      if (c->close_sent && c->close_deadline_ms < next) next = c->close_deadline_ms;
    }
    for (size_t i = 0; i < G.nrooms; i++) {
      room_t *r = G.rooms[i];
      if (r->fps && r->conns && !r->paused && (r->loop || r->position < r->nframes)) {
        int64_t d = (r->next_due_ns + 999999) / 1000000;
        if (G.pace_us && r->next_due_ns < next_ns) next_ns = r->next_due_ns;
        else if (!G.pace_us && d < next) next = d;
      }
    }
    int timeout = next <= tnow ? 0 : (int)(next - tnow);
    int n;
    if (next_ns != INT64_MAX) { /* --pace-us: the next frame at its own time, to the µs */
      int64_t w = next_ns - now_ns(), cap = (int64_t)timeout * 1000000;
      w = w < 0 ? 0 : w > cap ? cap : w;
      struct timespec ts = {(time_t)(w / 1000000000), (long)(w % 1000000000)};
      n = epoll_pwait2(G.ep, evs, 128, &ts, NULL);
    } else {
      n = epoll_wait(G.ep, evs, 128, timeout);
    }
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {
        on_accept();
        continue;
      }
      if (c->dead) continue;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_on_readable(c);
      if (!c->dead && (evs[i].events & EPOLLOUT)) conn_on_writable(c);
    }
    /* timers */
    tnow = now_ms();
    for (conn_t *c = G.conns; c; c = c->next) {
      if (c->dead || c->kind != C_WS) continue;
      if (c->close_sent && tnow >= c->close_deadline_ms) {
        conn_kill(c);
        continue;
      }
      if (G.ping_ms && tnow >= c->next_ping_ms && ws_live(c)) {
        uint8_t pl[4] = {(uint8_t)(c->ping_seq >> 24), (uint8_t)(c->ping_seq >> 16), (uint8_t)(c->ping_seq >> 8),
                         (uint8_t)c->ping_seq};
        c->ping_seq++;
        ws_send_ctl(c, 9, pl, sizeof pl);
        if (c->room) c->room->pings_sent++;
        c->next_ping_ms = tnow + G.ping_ms;
        if (!c->out_armed) conn_flush(c);
      }
    }
    for (size_t i = 0; i < G.nrooms; i++) room_pump(G.rooms[i]);
    /* reap */
    conn_t **pp = &G.conns;
    while (*pp) {
      conn_t *c = *pp;
      if (c->dead) {
        *pp = c->next;
        conn_free(c);
      } else {
        pp = &c->next;
      }
    }
  }
  logf_("stopping");
  return 0;
}
