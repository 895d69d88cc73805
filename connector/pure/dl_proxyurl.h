/* dl_proxyurl — an HTTP CONNECT proxy URL taken apart, once, for both HTTP clients: libcurl (the
 * pages) and libwebsockets (the WebSocket) then send the same host, port and credentials.
 *
 * http://[user[:pass]@]host:port[/], as curl reads it: the scheme case-insensitive, the last '@'
 * ends the credentials (a password may hold one), %XX in the user and the password decoded
 * (a '%' not followed by two hex digits stays as it is). Limits are libwebsockets 4.1's, so that
 * whatever parses here, lws_set_proxy takes as it is.
 *
 * Pure: no I/O, no allocation. */
#ifndef DL_PROXYURL_H
#define DL_PROXYURL_H

#include <stddef.h>

#include "dl_err.h"

/* A proxy URL line (scheme, credentials, host, port); longer is not a proxy URL. */
#define DL_PROXY_URL_MAX 512
/* libwebsockets (4.1) Base64s "user:pass" of a proxy into 128 bytes with its NUL: 93 bytes at most
 * (lws_set_proxy refuses 94). Counted decoded. */
#define DL_PROXY_USERINFO_MAX 93
/* libwebsockets (4.1) copies "host:port" of a proxy into 128 bytes and cuts what does not fit:
 * a longer one would reach another host or port, silently. */
#define DL_PROXY_HOSTPORT_MAX 127
/* A label: host:port and "#N" (N ≤ the pool's size) for a second account on the same proxy. */
#define DL_PROXY_LABEL_MAX (DL_PROXY_HOSTPORT_MAX + 1 + 8)
/* "user:pass@host:port", what lws_set_proxy takes. */
#define DL_PROXY_LWS_MAX (DL_PROXY_USERINFO_MAX + 1 + DL_PROXY_HOSTPORT_MAX + 1)

typedef struct dl_proxy_url {
  char host[DL_PROXY_HOSTPORT_MAX + 1]; /* without brackets */
  int port;
  char user[DL_PROXY_USERINFO_MAX + 1], pass[DL_PROXY_USERINFO_MAX + 1]; /* decoded; "" when none */
  char label[DL_PROXY_LABEL_MAX];     /* "host:port" ([v6]:port), "#2"… for the 2nd… entry with
                                         the same host:port (other credentials): safe to log */
} dl_proxy_url;

/* Parses s. Refuses other schemes (SOCKS by name), a path or query, a missing or bad port, a host
 * with characters no host has, credentials over DL_PROXY_USERINFO_MAX or holding %00, a host:port
 * over DL_PROXY_HOSTPORT_MAX. why receives the reason without any part of the credentials. */
dl_err dl_proxy_url_parse(const char *s, dl_proxy_url *out, char *why, size_t why_cap);

/* "host:port" to connect to ("[v6]:port"), without credentials and without the label's "#N". */
void dl_proxy_url_hostport(const dl_proxy_url *u, char *out, size_t cap);

/* "[user:pass@]host:port", the form lws_set_proxy takes (it Base64s the credentials for
 * Proxy-Authorization). 0, or -1 when cap is too small (DL_PROXY_LWS_MAX always fits). */
int dl_proxy_url_lws(const dl_proxy_url *u, char *out, size_t cap);

#endif
