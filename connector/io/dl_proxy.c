#include "dl_proxy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *env2(const char *lower, const char *upper) {
  const char *v = getenv(lower);
  if (!v || !*v) v = getenv(upper);
  return v && *v ? v : NULL;
}

/* host of scheme://[user@]host[:port]/… into out */
static void url_host(const char *url, char *out, size_t cap) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  const char *end = p + strcspn(p, "/?#");
  const char *at = memchr(p, '@', (size_t)(end - p));
  if (at) p = at + 1;
  const char *colon = p;
  if (*p == '[') {
    const char *rb = memchr(p, ']', (size_t)(end - p));
    colon = rb ? rb + 1 : end;
    p++;
    end = rb ? rb : end;
  } else {
    colon = memchr(p, ':', (size_t)(end - p));
    if (colon) end = colon;
  }
  size_t n = (size_t)(end - p);
  if (n >= cap) n = cap - 1;
  memcpy(out, p, n);
  out[n] = 0;
}

/* no_proxy: comma/space separated host suffixes; "*" matches everything */
static int no_proxy_matches(const char *host) {
  const char *np = env2("no_proxy", "NO_PROXY");
  if (!np) return 0;
  size_t hl = strlen(host);
  for (const char *p = np; *p;) {
    while (*p == ',' || *p == ' ') p++;
    size_t n = strcspn(p, ", ");
    if (!n) break;
    const char *e = p;
    size_t el = n;
    if (*e == '.') e++, el--;
    if ((el == 1 && *e == '*') ||
        (hl >= el && !strncasecmp(host + hl - el, e, el) && (hl == el || host[hl - el - 1] == '.')))
      return 1;
    p += n;
  }
  return 0;
}

int dl_proxy_for(const char *url, const char *explicit_proxy, char *out, size_t cap) {
  const char *p = NULL;
  if (explicit_proxy && *explicit_proxy) {
    p = strcmp(explicit_proxy, "none") ? explicit_proxy : NULL;
  } else {
    char host[256];
    url_host(url, host, sizeof host);
    int tls = !strncasecmp(url, "https://", 8) || !strncasecmp(url, "wss://", 6);
    p = tls ? env2("https_proxy", "HTTPS_PROXY") : env2("http_proxy", "HTTP_PROXY");
    if (!p) p = env2("all_proxy", "ALL_PROXY");
    if (p && no_proxy_matches(host)) p = NULL;
  }
  /* "host:port" without a scheme (common in the environment) is an HTTP proxy, as curl reads it */
  int n = snprintf(out, cap, "%s%s", p && !strstr(p, "://") ? "http://" : "", p ? p : "");
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int dl_proxy_is_socks(const char *proxy) { return !strncasecmp(proxy, "socks", 5); }
