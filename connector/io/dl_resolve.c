#include "dl_resolve.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dl_abogus.h"
#include "dl_bucket.h"
#include "dl_buf.h"
#include "dl_log.h"
#include "dl_proxy.h"
#include "dl_query.h"
#include "dl_rand.h"

/* The live page is ~1 MB in 2026; anything past 8 MiB is not a live page. */
#define DL_PAGE_MAX_BYTES (8u << 20)
/* A ttwid is good for days; refresh hourly and after any failure. */
#define DL_TTWID_TTL_MS (3600 * 1000)
#define DL_COOKIE_MAX 8192
/* The signed web/enter URL: base + ~450 bytes of query + the a_bogus parameter. */
#define DL_ENTER_URL_MAX (2048 + DL_ABOGUS_APPEND_MAX)
/* Room resolutions start at least this fraction of 1/--http-rate apart, times a jitter factor
 * drawn from [JITTER_LO, JITTER_HI] percent: synchronized requests are what a ban rule sees. */
#define DL_STAGGER_JITTER_LO 50
#define DL_STAGGER_JITTER_HI 150

/* Resolutions waiting for the HTTP thread: at most one per room, and rooms are capped far below. */
#define DL_RESOLVE_JOBS_MAX 131072

typedef struct job {
  char live_id[64];
  char profile[72];
  int fresh;             /* drop the cached ttwid first */
} job;

struct dl_resolver {
  char *base, *ca_file, *ua, *user_cookie, *cookie_dir, *proxy;
  dl_proxy_url http_proxy; /* --proxy (or the environment's) when it is an HTTP CONNECT proxy:
                              taken apart by the parser ingest uses, so both send the same
                              credentials (port 0: none, or a SOCKS proxy in proxy) */
  dl_proxypool *pool;      /* not owned */
  int proxy_idx;           /* the pool proxy of the request being made, or -1 */
  double rate;             /* --http-rate */
  int64_t last_start_ms;   /* when the last room resolution started (stagger) */
  int64_t enter_first_until; /* web/enter first until then (a challenge was seen) */
  char ws_host[256];       /* host of --douyin-ws, "" when proxied or numeric */
  dl_queue *out;
  int wake_fd;
  pthread_t thread;
  dl_queue *jobs;           /* job*, closed to stop the thread */
  CURL *curl;
  char ttwid_cookie[2048]; /* "ttwid=…" plus other cookies from GET / */
  dl_bucket pace;          /* requests per second to Douyin */
  int64_t ttwid_ms;
  uint64_t rng;            /* stagger jitter (dl_rand) */
  char browser_version[128]; /* of the User-Agent, for web/enter (chrome_version) */
};

/* A response body: capped at DL_PAGE_MAX_BYTES (curl's write fails past it, over says why). */
typedef struct body {
  dl_buf b;
  int over;
} body;

static void body_init(body *b) {
  dl_buf_init(&b->b, DL_PAGE_MAX_BYTES);
  b->over = 0;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  body *b = ud;
  dl_err e = dl_buf_add(&b->b, p, sz * n);
  b->over = e == DL_ELIMIT;
  return e == DL_EOK ? sz * n : 0;
}

/* GET / is asked for its cookies only: its body is not kept. */
static size_t on_discard(char *p, size_t sz, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return sz * n;
}

/* Collects "name=value" of every Set-Cookie into ud (a dl_buf capped at DL_JAR_MAX; a cookie
 * that does not fit is left out). */
static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  size_t len = sz * n;
  dl_buf *jar = ud;
  if (len > 12 && !strncasecmp(p, "Set-Cookie:", 11)) {
    const char *v = p + 11;
    while (*v == ' ') v++;
    size_t vl = 0;
    while (v + vl < p + len && v[vl] != ';' && v[vl] != '\r' && v[vl] != '\n') vl++;
    if (vl && dl_buf_reserve(jar, vl + (jar->len ? 2 : 0)) == DL_EOK) {
      if (jar->len) dl_buf_add(jar, "; ", 2);
      dl_buf_add(jar, v, vl);
    }
  }
  return len;
}

/* Waits for a request token (this thread does nothing else; a stop request cuts the wait). */
static void pace(dl_resolver *r) {
  for (;;) {
    int64_t wait = dl_bucket_take(&r->pace, dl_mono_ms());
    if (wait <= 0 || dl_queue_wait_closed(r->jobs, wait)) return;
  }
}

/* Room resolutions start a jittered 1/rate apart: a burst of N assignments (start-up, a pool
 * rebalancing, --watch-ended checks that came due together) spreads over ~N/rate seconds instead
 * of leaving in one burst; an isolated one starts at once. */
static void stagger(dl_resolver *r) {
  int64_t gap = (int64_t)(1000.0 / r->rate) *
                (DL_STAGGER_JITTER_LO + (int64_t)(dl_rand_next(&r->rng) % (DL_STAGGER_JITTER_HI - DL_STAGGER_JITTER_LO + 1))) / 100;
  int64_t now = dl_mono_ms();
  if (r->last_start_ms && now < r->last_start_ms + gap && dl_queue_wait_closed(r->jobs, r->last_start_ms + gap - now))
    return;
  r->last_start_ms = dl_mono_ms();
}

/* b NULL: the body is not kept. */
static void curl_common(dl_resolver *r, const char *url, body *b) {
  pace(r);
  curl_easy_reset(r->curl);
  curl_easy_setopt(r->curl, CURLOPT_URL, url);
  curl_easy_setopt(r->curl, CURLOPT_USERAGENT, r->ua);
  curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, b ? on_body : on_discard);
  curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(r->curl, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(r->curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(r->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  dl_proxy_url pu = r->http_proxy;
  if ((r->proxy_idx >= 0 && dl_proxypool_get(r->pool, r->proxy_idx, &pu) == 0) || pu.port) {
    /* this room's proxy, else --proxy; credentials apart (decoded by the parser), so curl neither
     * logs nor decodes them again */
    char purl[DL_PROXY_LABEL_MAX + 16];
    memcpy(purl, "http://", 8);
    dl_proxy_url_hostport(&pu, purl + 7, sizeof purl - 7);
    curl_easy_setopt(r->curl, CURLOPT_PROXY, purl);
    curl_easy_setopt(r->curl, CURLOPT_HTTPPROXYTUNNEL, 1L);
    if (pu.user[0]) {
      curl_easy_setopt(r->curl, CURLOPT_PROXYUSERNAME, pu.user);
      curl_easy_setopt(r->curl, CURLOPT_PROXYPASSWORD, pu.pass);
    }
  } else {
    /* a SOCKS proxy (pages only), decided once by dl_proxy ("" = direct: curl then ignores the
     * environment) */
    curl_easy_setopt(r->curl, CURLOPT_PROXY, r->proxy ? r->proxy : "");
  }
  memset(&pu, 0, sizeof pu);
  if (r->ca_file && *r->ca_file) {
    /* extra CA in addition to the system store */
    curl_easy_setopt(r->curl, CURLOPT_CAINFO, r->ca_file);
    curl_easy_setopt(r->curl, CURLOPT_CAPATH, "/etc/ssl/certs");
  }
}

/* A failed transfer as a dl_err: the far end's certificate refused (fails closed, never retried
 * around), else an HTTP failure. */
static dl_err curl_err(CURLcode cc) {
  return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ? DL_ETLS : DL_EHTTP;
}

/* curl_easy_perform, telling the pool whether the room's proxy carried the request: any HTTP
 * answer is the proxy's success; failing to connect, a refused tunnel or a dead connection is
 * its failure (a TLS verification failure is not: that is the far end's certificate). */
static CURLcode perform(dl_resolver *r) {
  CURLcode cc = curl_easy_perform(r->curl);
  if (r->proxy_idx >= 0) {
    int ok = cc == CURLE_OK || curl_err(cc) == DL_ETLS || cc == CURLE_WRITE_ERROR; /* our own size cap */
    dl_proxypool_report(r->pool, r->proxy_idx, ok, dl_mono_ms());
  }
  return cc;
}

static dl_err fetch_ttwid(dl_resolver *r, char *why, size_t cap) {
  char url[1024];
  snprintf(url, sizeof url, "%s/", r->base);
  dl_buf jar;
  dl_buf_init(&jar, sizeof r->ttwid_cookie - 1);
  curl_common(r, url, NULL);
  curl_easy_setopt(r->curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(r->curl, CURLOPT_HEADERDATA, (void *)&jar);
  CURLcode cc = perform(r);
  dl_err e = DL_EOK;
  if (cc != CURLE_OK) {
    snprintf(why, cap, "GET / failed: %s", curl_easy_strerror(cc));
    e = curl_err(cc);
  } else if (!jar.len || !strstr((const char *)jar.p, "ttwid=")) {
    snprintf(why, cap, "GET / returned no ttwid cookie");
    e = DL_EHTTP;
  } else {
    memcpy(r->ttwid_cookie, jar.p, jar.len + 1);
    r->ttwid_ms = dl_mono_ms();
  }
  dl_buf_free(&jar);
  return e;
}

/* The value of cookie name in a Cookie header value ("a=b; c=d"), into out ("" when absent). */
static void cookie_get(const char *cookie, const char *name, char *out, size_t cap) {
  out[0] = 0;
  size_t nl = strlen(name);
  for (const char *p = cookie; p && *p;) {
    while (*p == ' ' || *p == ';') p++;
    size_t l = strcspn(p, ";");
    if (l > nl && !strncmp(p, name, nl) && p[nl] == '=') {
      size_t vl = l - nl - 1;
      if (vl >= cap) vl = cap - 1;
      memcpy(out, p + nl + 1, vl);
      out[vl] = 0;
      while (vl && out[vl - 1] == ' ') out[--vl] = 0;
      return;
    }
    p += l;
  }
}

int dl_cookie_logged_in(const char *cookie) {
  char v[512];
  cookie_get(cookie, "sessionid", v, sizeof v);
  return v[0] != 0;
}

/* The Chrome version of a User-Agent ("136.0.0.0"), what J puts in browser_version; the UA
 * without "Mozilla/" when it names no Chrome. */
static void chrome_version(const char *ua, char *out, size_t cap) {
  const char *c = strstr(ua, "Chrome/");
  if (c) {
    c += 7;
    size_t n = strspn(c, "0123456789.");
    if (n >= cap) n = cap - 1;
    memcpy(out, c, n);
    out[n] = 0;
    if (n) return;
  }
  snprintf(out, cap, "%s", strncmp(ua, "Mozilla/", 8) ? ua : ua + 8);
}

/* J's web/enter query (PROTOCOL §9.3, buildRoomEnterParams), in its order, every value
 * percent-encoded (spaces as %20), then signed: a_bogus over exactly these bytes and the
 * User-Agent header of the same request, appended last (dl_abogus_append). */
static dl_err enter_url(const dl_resolver *r, const char *live_id, const char *room_id, const char *ms_token,
                        char *url, size_t cap) {
  const char *bv = r->browser_version;
  const char *const kv[] = {
      "aid", "6383", "app_name", "douyin_web", "live_id", "1", "device_platform", "web", "language", "zh-CN",
      "enter_from", "link_share", "cookie_enabled", "true", "screen_width", "1920", "screen_height", "1080",
      "browser_language", "zh-CN", "browser_platform", "Win32", "browser_name", "Chrome", "browser_version", bv,
      "os_name", "Windows", "os_version", "10", "web_rid", live_id, "room_id_str", room_id, "enter_source", "",
      "is_need_double_stream", "false", "insert_task_id", "", "live_reason", "", "msToken", ms_token};
  int n = snprintf(url, cap, "%s/webcast/room/web/enter/?", r->base);
  if (n < 0 || (size_t)n >= cap) return DL_ELIMIT;
  char *q = url + n;
  size_t qlen = 0, qcap = cap - (size_t)n;
  for (size_t i = 0; i < sizeof kv / sizeof *kv; i += 2)
    if (dl_query_add(q, qcap, &qlen, kv[i], kv[i + 1]) != DL_EOK) return DL_ELIMIT;
  return dl_abogus_append(NULL, q, qcap, r->ua, (uint64_t)dl_now_ms());
}

/* A browser-like GET of url into b (the caller frees b->b): accept, Cookie, Referer and the
 * client hints J sends; the answer's status into *code. */
static CURLcode get(dl_resolver *r, const char *url, const char *accept, const char *cookie, const char *referer,
                    body *b, long *code) {
  curl_common(r, url, b);
  struct curl_slist *h = curl_slist_append(NULL, accept);
  h = curl_slist_append(h, "sec-ch-ua-mobile: ?0");
  h = curl_slist_append(h, "sec-ch-ua-platform: \"Windows\"");
  curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(r->curl, CURLOPT_COOKIE, cookie);
  curl_easy_setopt(r->curl, CURLOPT_REFERER, referer);
  CURLcode cc = perform(r);
  curl_slist_free_all(h);
  *code = 0;
  curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, code);
  return cc;
}

/* One signed GET /webcast/room/web/enter/. */
static dl_err fetch_enter_once(dl_resolver *r, const char *live_id, const char *room_id, const char *cookie,
                               dl_page_info *out, char *why, size_t cap) {
  char *url = malloc(DL_ENTER_URL_MAX);
  char referer[1024], ms_token[256];
  if (!url) return DL_ENOMEM;
  cookie_get(cookie, "msToken", ms_token, sizeof ms_token); /* the user's, else empty (H) */
  dl_err e = enter_url(r, live_id, room_id, ms_token, url, DL_ENTER_URL_MAX);
  if (e != DL_EOK) {
    snprintf(why, cap, "could not be signed: %s", dl_err_str(e));
    free(url);
    return e;
  }
  snprintf(referer, sizeof referer, "%s/%s", r->base, live_id);
  body b;
  body_init(&b);
  long code;
  CURLcode cc = get(r, url, "Accept: application/json, text/plain, */*", cookie, referer, &b, &code);
  free(url);
  if (cc != CURLE_OK) {
    snprintf(why, cap, "failed: %s", curl_easy_strerror(cc));
    e = curl_err(cc);
  } else if (code != 200) {
    snprintf(why, cap, "answered HTTP %ld", code);
    e = DL_EHTTP;
  } else {
    e = dl_enter_parse(b.b.len ? (const char *)b.b.p : "", b.b.len, out);
    if (e == DL_EEMPTY) snprintf(why, cap, "empty");
    else if (e == DL_EPROTO) snprintf(why, cap, "answered something that is not JSON");
    else if (e == DL_EHTTP) snprintf(why, cap, "answered no room status (an unknown status_code or no room data)");
  }
  dl_buf_free(&b.b);
  return e;
}

/* web/enter with J's retries: an empty body (risk control or a refused a_bogus) is asked again,
 * signed anew, DL_ENTER_TRIES times DL_ENTER_RETRY_MS apart. */
static dl_err fetch_enter(dl_resolver *r, const char *live_id, const char *room_id, const char *cookie,
                          dl_page_info *out, char *why, size_t cap) {
  dl_err e = DL_EEMPTY;
  for (int i = 0; i < DL_ENTER_TRIES; i++) {
    if (i && dl_queue_wait_closed(r->jobs, DL_ENTER_RETRY_MS)) break;
    e = fetch_enter_once(r, live_id, room_id, cookie, out, why, cap);
    if (e != DL_EEMPTY) break;
  }
  if (e == DL_EEMPTY)
    snprintf(why, cap, "empty body %d times, %d ms apart (a_bogus refused or rate-limited)", DL_ENTER_TRIES,
             DL_ENTER_RETRY_MS);
  return e;
}

/* GET /<live_id>: the live page. DL_EOK with facts, DL_ECHALLENGE for a 200 without room state,
 * DL_ENOTFOUND for 404/410, DL_EHTTP/DL_ETLS otherwise (res->error says why). */
static dl_err fetch_page(dl_resolver *r, const char *live_id, const char *cookie, dl_resolve_result *res) {
  char url[1024], referer[1024];
  snprintf(url, sizeof url, "%s/%s", r->base, live_id);
  snprintf(referer, sizeof referer, "%s/", r->base);
  body b;
  body_init(&b);
  CURLcode cc = get(r, url, "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", cookie,
                    referer, &b, &res->http_status);
  dl_err e;
  if (cc != CURLE_OK) {
    e = curl_err(cc);
    snprintf(res->error, sizeof res->error, "GET /%s failed: %s", live_id,
             b.over ? "page over 8 MiB" : curl_easy_strerror(cc));
  } else if (res->http_status == 404 || res->http_status == 410) {
    e = DL_ENOTFOUND;
    snprintf(res->error, sizeof res->error, "live page answered %ld: no such room", res->http_status);
  } else if (res->http_status != 200) {
    e = DL_EHTTP;
    snprintf(res->error, sizeof res->error, "live page answered HTTP %ld", res->http_status);
  } else {
    e = dl_page_parse(b.b.len ? (const char *)b.b.p : "", b.b.len, &res->page);
  }
  dl_buf_free(&b.b);
  return e;
}

static void resolve(dl_resolver *r, const job *j, dl_resolve_result *res) {
  const char *live_id = j->live_id;
  snprintf(res->live_id, sizeof res->live_id, "%s", live_id);
  /* sticky per room: the WebSocket thread computes the same answer for the same healthy set */
  r->proxy_idx = r->pool ? dl_proxypool_pick(r->pool, live_id, dl_mono_ms()) : -1;
  res->proxy = r->proxy_idx;
  char *profile_cookie = NULL;
  if (j->profile[0]) { /* a per-room login (e.g. a shop's own account) from --cookie-dir */
    char path[1024], why[200];
    snprintf(path, sizeof path, "%s/%s.cookies", r->cookie_dir ? r->cookie_dir : ".", j->profile);
    if (!r->cookie_dir || !(profile_cookie = dl_cookie_file_load(path, why, sizeof why))) {
      res->err = DL_EINVAL;
      snprintf(res->error, sizeof res->error, "cookie profile \"%.64s\": %.150s", j->profile,
               r->cookie_dir ? why : "no --cookie-dir configured");
      return;
    }
  }
  if (j->fresh) r->ttwid_cookie[0] = 0;
  if (!r->ttwid_cookie[0] || dl_mono_ms() - r->ttwid_ms > DL_TTWID_TTL_MS) {
    res->err = fetch_ttwid(r, res->error, sizeof res->error);
    if (res->err) {
      free(profile_cookie);
      return;
    }
  }
  char cookie[DL_COOKIE_MAX];
  const char *mine = profile_cookie ? profile_cookie : r->user_cookie;
  /* the user's cookies win over ours when both name ttwid */
  if (mine && strstr(mine, "ttwid="))
    snprintf(cookie, sizeof cookie, "%s", mine);
  else if (mine && *mine)
    snprintf(cookie, sizeof cookie, "%s; %s", r->ttwid_cookie, mine);
  else
    snprintf(cookie, sizeof cookie, "%s", r->ttwid_cookie);
  free(profile_cookie);

  res->logged_in = dl_cookie_logged_in(cookie);

  /* the page first (J), unless pages were challenges lately: then web/enter first */
  int enter_first = dl_mono_ms() < r->enter_first_until;
  char why[200] = "";
  if (enter_first) {
    res->err = fetch_enter(r, live_id, "", cookie, &res->page, why, sizeof why);
    if (res->err == DL_EOK) snprintf(res->source, sizeof res->source, "web/enter");
  }
  if (!enter_first || res->err != DL_EOK) {
    dl_page_info enter_facts = res->page;
    dl_err enter_err = enter_first ? res->err : DL_EOK;
    memset(&res->page, 0, sizeof res->page);
    res->err = fetch_page(r, live_id, cookie, res);
    snprintf(res->source, sizeof res->source, "page");
    if (res->err == DL_EHTTP || res->err == DL_ETLS) r->ttwid_cookie[0] = 0;
    if (res->err == DL_ECHALLENGE) {
      r->enter_first_until = dl_mono_ms() + DL_ENTER_FIRST_MS;
      if (!enter_first) { /* the second source (PROTOCOL §9.3) */
        enter_err = fetch_enter(r, live_id, res->page.room_id, cookie, &enter_facts, why, sizeof why);
      }
      if (enter_err == DL_EOK) {
        char uid[sizeof res->page.user_unique_id];
        snprintf(uid, sizeof uid, "%s", res->page.user_unique_id);
        res->page = enter_facts;
        snprintf(res->page.user_unique_id, sizeof res->page.user_unique_id, "%s", uid);
        snprintf(res->source, sizeof res->source, "web/enter");
        res->err = DL_EOK;
      } else {
        /* never "ended" or "gone" for a challenge or an empty body: report, and poll again */
        if (enter_err == DL_EEMPTY)
          snprintf(res->error, sizeof res->error,
                   "risk control: web/enter %.120s, and the live page is an anti-bot challenge (no room state)", why);
        else
          snprintf(res->error, sizeof res->error,
                   "live page is an anti-bot challenge (no room state; a cookie or another IP may help) and "
                   "web/enter %.100s", why);
        res->err = DL_ECHALLENGE;
        r->ttwid_cookie[0] = 0;
      }
    } else if (res->err == DL_EOK) {
      r->enter_first_until = 0; /* pages work again */
    }
  }
  if (res->err == DL_EOK && !dl_page_is_live(&res->page)) {
    res->err = DL_ENOTLIVE;
    if (res->page.ended_by[0])
      snprintf(res->error, sizeof res->error, "room is not live (%s)", res->page.ended_by);
    else
      snprintf(res->error, sizeof res->error, "room is not live (status %d)", res->page.status);
  }
  if (res->err == DL_EOK && r->ws_host[0] && res->proxy < 0) {
    /* IPv4 first: what public clients use, and what loopback test servers listen on */
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(r->ws_host, NULL, &hints, &ai);
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = ai; a && !pick; a = a->ai_next)
      if (a->ai_family == AF_INET) pick = a;
    if (!pick) pick = ai;
    if (gai != 0 || !pick) {
      res->err = DL_EHTTP;
      snprintf(res->error, sizeof res->error, "cannot resolve the push host %.120s: %.80s", r->ws_host,
               gai ? gai_strerror(gai) : "no address");
    } else {
      const void *src = pick->ai_family == AF_INET ? (const void *)&((const struct sockaddr_in *)pick->ai_addr)->sin_addr
                                                   : (const void *)&((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
      inet_ntop(pick->ai_family, src, res->ws_addr, sizeof res->ws_addr);
    }
    if (ai) freeaddrinfo(ai);
  }
  res->cookie = strdup(cookie);
}

static void *thread_main(void *arg) {
  dl_resolver *r = arg;
  void *item;
  while (dl_queue_pop_wait(r->jobs, &item, 1) == 1) {
    job *j = item;
    dl_resolve_result *res = calloc(1, sizeof *res);
    if (res) {
      stagger(r);
      int64_t t0 = dl_mono_ms();
      resolve(r, j, res);
      res->took_ms = dl_mono_ms() - t0;
      /* the control thread drains results continuously; never block past a shutdown */
      while (dl_queue_push(r->out, res, NULL) != DL_EOK)
        if (dl_queue_wait_closed(r->jobs, 1)) {
          dl_resolve_result_free(res);
          break;
        }
      uint64_t one = 1;
      ssize_t w = write(r->wake_fd, &one, sizeof one);
      (void)w;
    }
    free(j);
  }
  return NULL;
}

/* Frees what dl_resolver_new set up (the thread is not running or has stopped). */
static void resolver_free(dl_resolver *r) {
  if (r->curl) curl_easy_cleanup(r->curl);
  dl_queue_free(r->jobs, free);
  free(r->base);
  free(r->ca_file);
  free(r->ua);
  free(r->user_cookie);
  free(r->cookie_dir);
  free(r->proxy);
  memset(&r->http_proxy, 0, sizeof r->http_proxy); /* credentials */
  free(r);
}

dl_resolver *dl_resolver_new(const dl_resolver_opts *o, dl_queue *out, int wake_fd) {
  dl_resolver *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  size_t bl = strlen(o->http_base);
  while (bl && o->http_base[bl - 1] == '/') bl--;
  r->base = strndup(o->http_base, bl);
  r->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
  r->ua = strdup(o->user_agent);
  r->user_cookie = o->user_cookie ? strdup(o->user_cookie) : NULL;
  r->cookie_dir = o->cookie_dir && *o->cookie_dir ? strdup(o->cookie_dir) : NULL;
  char why[200] = "";
  if (o->proxy && *o->proxy && !dl_proxy_is_socks(o->proxy) &&
      dl_proxy_url_parse(o->proxy, &r->http_proxy, why, sizeof why) != DL_EOK) {
    dl_log(DL_LOG_ERROR, "proxy", NULL, "the pages' proxy: %s", why);
    resolver_free(r);
    return NULL;
  }
  r->proxy = o->proxy && *o->proxy && !r->http_proxy.port ? strdup(o->proxy) : NULL;
  r->pool = o->pool;
  r->proxy_idx = -1;
  r->rate = o->rate > 0 ? o->rate : 1;
  r->rng = (uint64_t)dl_now_ms() ^ (uint64_t)(uintptr_t)r;
  dl_bucket_init(&r->pace, o->rate, o->burst, dl_mono_ms());
  if (o->ws_base && !o->ws_proxied) { /* the host part of ws[s]://host[:port][/…] */
    const char *h = strstr(o->ws_base, "://");
    h = h ? h + 3 : o->ws_base;
    size_t n = strcspn(h, ":/");
    if (*h == '[') n = strcspn(h, "]") + 1; /* an IPv6 literal: numeric already */
    if (n < sizeof r->ws_host && *h != '[') {
      memcpy(r->ws_host, h, n);
      r->ws_host[n] = 0;
      struct in_addr a4;
      if (inet_pton(AF_INET, r->ws_host, &a4) == 1) r->ws_host[0] = 0; /* numeric */
    }
  }
  r->out = out;
  r->wake_fd = wake_fd;
  r->jobs = dl_queue_new(DL_RESOLVE_JOBS_MAX, 0);
  r->curl = curl_easy_init();
  if (r->ua) chrome_version(r->ua, r->browser_version, sizeof r->browser_version);
  if (!r->base || !r->ua || !r->curl || !r->jobs || pthread_create(&r->thread, NULL, thread_main, r) != 0) {
    resolver_free(r);
    return NULL;
  }
  return r;
}

static void submit(dl_resolver *r, const char *live_id, const char *profile, int fresh) {
  job *j = calloc(1, sizeof *j);
  if (!j) return;
  j->fresh = fresh;
  snprintf(j->live_id, sizeof j->live_id, "%s", live_id);
  snprintf(j->profile, sizeof j->profile, "%s", profile ? profile : "");
  if (dl_queue_push(r->jobs, j, NULL) != DL_EOK) {
    dl_log(DL_LOG_ERROR, "resolve_queue_full", live_id, "more pending resolutions than rooms; dropped");
    free(j);
  }
}

void dl_resolver_submit(dl_resolver *r, const char *live_id, const char *profile) {
  submit(r, live_id, profile, 0);
}

void dl_resolver_submit_fresh(dl_resolver *r, const char *live_id, const char *profile) {
  submit(r, live_id, profile, 1);
}

void dl_resolver_free(dl_resolver *r) {
  if (!r) return;
  dl_queue_close(r->jobs);
  pthread_join(r->thread, NULL);
  resolver_free(r);
}

void dl_resolve_result_free(void *p) {
  dl_resolve_result *res = p;
  if (!res) return;
  free(res->cookie);
  free(res);
}

char *dl_cookie_file_load(const char *path, char *why, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(why, cap, "cannot open: %s", strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH)) {
    fclose(f);
    snprintf(why, cap, "file is world-readable; chmod 600 it (it holds a login session)");
    return NULL;
  }
  char *out = calloc(1, DL_COOKIE_MAX);
  char line[4096];
  size_t ol = 0;
  while (out && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0] || (line[0] == '#' && strncmp(line, "#HttpOnly_", 10))) continue;
    char name_value[4096];
    char *cols[7];
    int nc = 0;
    char *save = NULL;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", line);
    for (char *t = strtok_r(tmp, "\t", &save); t && nc < 7; t = strtok_r(NULL, "\t", &save)) cols[nc++] = t;
    if (nc == 7) snprintf(name_value, sizeof name_value, "%s=%s", cols[5], cols[6]);
    else snprintf(name_value, sizeof name_value, "%s", line);
    size_t l = strlen(name_value);
    if (ol + l + 3 >= DL_COOKIE_MAX) break;
    if (ol) {
      memcpy(out + ol, "; ", 2);
      ol += 2;
    }
    memcpy(out + ol, name_value, l + 1);
    ol += l;
  }
  fclose(f);
  if (out && !ol) {
    free(out);
    snprintf(why, cap, "no cookies in file");
    return NULL;
  }
  return out;
}
