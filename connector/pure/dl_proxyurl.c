#include "dl_proxyurl.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int host_char(unsigned char c) { return isalnum(c) || c == '.' || c == '-' || c == '_'; }

static int hexval(unsigned char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* s[0..n) with %XX decoded into out (cap bytes with the NUL); the decoded length, or -1 when it
 * does not fit or decodes to a NUL. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++, o++) {
    if (o + 1 >= cap) return -1;
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      if (!hi && !lo) return -1;
      out[o] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      out[o] = s[i];
    }
  }
  out[o] = 0;
  return (int)o;
}

void dl_proxy_url_hostport(const dl_proxy_url *u, char *out, size_t cap) {
  int v6 = strchr(u->host, ':') != NULL;
  int n = snprintf(out, cap, "%s%s%s:%d", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
  if (n < 0 || (size_t)n >= cap) out[0] = 0; /* never a cut address */
}

int dl_proxy_url_lws(const dl_proxy_url *u, char *out, size_t cap) {
  char hp[DL_PROXY_LABEL_MAX];
  dl_proxy_url_hostport(u, hp, sizeof hp);
  int n = snprintf(out, cap, "%s%s%s%s%s", u->user, u->user[0] ? ":" : "", u->pass, u->user[0] ? "@" : "", hp);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static dl_err refuse(dl_proxy_url *out, char *why, size_t cap, const char *reason) {
  memset(out, 0, sizeof *out); /* no half-parsed credentials left behind */
  snprintf(why, cap, "%s", reason);
  return DL_EINVAL;
}

dl_err dl_proxy_url_parse(const char *s, dl_proxy_url *out, char *why, size_t cap) {
  memset(out, 0, sizeof *out);
  size_t len = strlen(s);
  if (len == 0 || len >= DL_PROXY_URL_MAX) return refuse(out, why, cap, len ? "longer than a proxy URL" : "empty");
  if (!strncasecmp(s, "socks", 5))
    return refuse(out, why, cap,
                  "SOCKS proxies are refused: this build's libwebsockets tunnels the WebSocket only "
                  "through HTTP CONNECT proxies (http://host:port)");
  if (strncasecmp(s, "http://", 7))
    return refuse(out, why, cap, "not http://[user:pass@]host:port (only HTTP CONNECT proxies are supported)");
  const char *p = s + 7, *end = p + strcspn(p, "/?#");
  if (*end && strcmp(end, "/")) return refuse(out, why, cap, "a proxy URL has no path or query");
  const char *at = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == '@') at = q; /* the last '@': a password may hold one */
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *ue = colon ? colon : at;
    int ul = pct_decode(p, (size_t)(ue - p), out->user, sizeof out->user);
    int pl = colon ? pct_decode(colon + 1, (size_t)(at - colon - 1), out->pass, sizeof out->pass) : 0;
    if (ul == 0) return refuse(out, why, cap, "empty user name");
    if (ul < 0 || pl < 0 || ul + 1 + pl > DL_PROXY_USERINFO_MAX)
      return refuse(out, why, cap, "credentials longer than 93 bytes decoded (libwebsockets' limit) or holding %00");
    p = at + 1;
  }
  const char *hs = p, *he, *port;
  if (*p == '[') {
    he = memchr(p, ']', (size_t)(end - p));
    if (!he) return refuse(out, why, cap, "unclosed '[' in the host");
    hs = p + 1;
    for (const char *q = hs; q < he; q++)
      if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') return refuse(out, why, cap, "bad character in the IPv6 host");
    port = he + 1;
  } else {
    he = memchr(p, ':', (size_t)(end - p));
    if (!he) he = end;
    for (const char *q = hs; q < he; q++)
      if (!host_char((unsigned char)*q)) return refuse(out, why, cap, "bad character in the host");
    port = he;
  }
  if (he == hs) return refuse(out, why, cap, "no host");
  if (*port != ':' || port + 1 >= end) return refuse(out, why, cap, "no port (http://host:port)");
  long v = 0;
  for (const char *q = port + 1; q < end; q++)
    if (!isdigit((unsigned char)*q) || (v = v * 10 + (*q - '0')) > 65535) return refuse(out, why, cap, "bad port");
  if (v < 1) return refuse(out, why, cap, "bad port");
  /* host, brackets, ':' and the port as libwebsockets keeps them */
  if ((size_t)(he - hs) + 2 > DL_PROXY_HOSTPORT_MAX) /* at least ':' and a digit follow */
    return refuse(out, why, cap, "host:port longer than 127 bytes (libwebsockets' limit)");
  out->port = (int)v;
  memcpy(out->host, hs, (size_t)(he - hs));
  dl_proxy_url_hostport(out, out->label, sizeof out->label);
  if (strlen(out->label) > DL_PROXY_HOSTPORT_MAX)
    return refuse(out, why, cap, "host:port longer than 127 bytes (libwebsockets' limit)");
  return DL_EOK;
}
