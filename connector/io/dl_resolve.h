/* dl_resolve — HTTP to Douyin on its own thread (libcurl, blocking, one request at a time, so
 * it paces itself): the ttwid cookie from GET /, then the room id and live status from the live
 * page. Results go onto a queue for the control thread. */
#ifndef DL_RESOLVE_H
#define DL_RESOLVE_H

#include "dl_err.h"
#include "dl_page.h"
#include "dl_queue.h"

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
} dl_resolver_opts;

dl_resolver *dl_resolver_new(const dl_resolver_opts *o, dl_queue *out, int wake_fd);
/* profile: a cookie profile of --cookie-dir for this room, or NULL/"" for the worker's cookies */
void dl_resolver_submit(dl_resolver *r, const char *live_id, const char *profile);
/* The same after repeated refusals: a fresh ttwid first (PROTOCOL §3.6: refresh after failures). */
void dl_resolver_submit_fresh(dl_resolver *r, const char *live_id, const char *profile);
void dl_resolver_free(dl_resolver *r);
void dl_resolve_result_free(void *p);

/* Reads a cookie file: Netscape format (tab-separated, 7 columns) or a "name=value; …" line.
 * Returns a malloc'd "name=value; …" string or NULL (why says the reason). */
char *dl_cookie_file_load(const char *path, char *why, size_t why_cap);

#endif
