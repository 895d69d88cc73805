/* dl_resolve — HTTP to Douyin on its own thread (libcurl, blocking, one request at a time, so
 * it paces itself): the ttwid cookie from GET /, then the room id and live status from the live
 * page and the signed web/enter API (PROTOCOL §1.2, §9.3). Results go onto a queue for the
 * control thread.
 *
 * Sources, in J's order: the live page first (no signature, and it carries user_unique_id); when
 * it is a challenge (200 without room state), GET /webcast/room/web/enter/ signed with a_bogus
 * (dl_abogus). After a challenge the next resolutions for DL_ENTER_FIRST_MS ask web/enter first:
 * under a challenge regime the page request would only add load. An empty web/enter body is risk
 * control (retried DL_ENTER_TRIES times DL_ENTER_RETRY_MS apart, then reported as "risk control:
 * web/enter empty …"); only 404/410 of the page mean gone, only explicit end markers mean ended.
 *
 * Polite at scale: room resolutions start at least a jittered 1/--http-rate apart (so a burst of
 * assignments is spread over a window proportional to its size), and every request also takes a
 * token of the --http-rate bucket. */
#ifndef DL_RESOLVE_H
#define DL_RESOLVE_H

#include "dl_err.h"
#include "dl_page.h"
#include "dl_proxypool.h"
#include "dl_queue.h"

/* web/enter answered empty: tries in all, and the pause between them (J errRoomInfoEmpty). */
#define DL_ENTER_TRIES 3
#define DL_ENTER_RETRY_MS 1000
/* After a challenge page, ask web/enter first for this long (the page would be a challenge too). */
#define DL_ENTER_FIRST_MS (10 * 60 * 1000)

typedef struct dl_resolver dl_resolver;

typedef struct dl_resolve_result {
  char live_id[64];
  dl_err err;            /* DL_EOK, DL_ECHALLENGE, DL_ENOTFOUND, DL_EHTTP, DL_ETLS */
  char error[256];
  long http_status;
  dl_page_info page;
  char *cookie;          /* Cookie header for the WebSocket (ttwid + user cookies); never logged */
  char ws_addr[64];      /* numeric address of the push host, resolved here so that lws (which
                            resolves synchronously) never stalls the WebSocket thread; "" when a
                            proxy carries the WebSocket or the host is already numeric */
  int logged_in;         /* the Cookie carries a non-empty sessionid (PROTOCOL §9.5) */
  int proxy;             /* the pool proxy the pages went through, or -1 */
  char source[16];       /* where the facts came from: "page" or "web/enter" */
  int64_t took_ms;       /* time from the job's start to the result */
} dl_resolve_result;

typedef struct dl_resolver_opts {
  const char *http_base;
  const char *ca_file;
  const char *user_agent;
  const char *user_cookie;  /* "a=b; c=d" from --cookie-file, or NULL */
  const char *cookie_dir;   /* --cookie-dir: per-room profiles <dir>/<profile>.cookies, or NULL */
  const char *proxy;        /* proxy URL for the pages (http://, socks5h://…) or "" for direct */
  double rate, burst;       /* requests per second to Douyin (token bucket) */
  const char *ws_base;      /* --douyin-ws: its host is resolved with each room */
  int ws_proxied;           /* the WebSocket goes through a proxy: no local resolution */
  dl_proxypool *pool;       /* per-room proxies (--proxy-file, assignments), or NULL; not owned */
} dl_resolver_opts;

dl_resolver *dl_resolver_new(const dl_resolver_opts *o, dl_queue *out, int wake_fd);
/* profile: a cookie profile of --cookie-dir for this room, or NULL/"" for the worker's cookies */
void dl_resolver_submit(dl_resolver *r, const char *live_id, const char *profile);
/* The same after repeated refusals: a fresh ttwid first (PROTOCOL §3.6: refresh after failures). */
void dl_resolver_submit_fresh(dl_resolver *r, const char *live_id, const char *profile);
void dl_resolver_free(dl_resolver *r);
void dl_resolve_result_free(void *p);

/* 1 when the Cookie header value has a sessionid cookie with a non-empty value (a logged-in
 * Douyin web session; sessionid_ss and friends do not count). */
int dl_cookie_logged_in(const char *cookie);

/* Reads a cookie file: Netscape format (tab-separated, 7 columns) or a "name=value; …" line.
 * Returns a malloc'd "name=value; …" string or NULL (why says the reason). */
char *dl_cookie_file_load(const char *path, char *why, size_t why_cap);

#endif
