/* dl_proxy — which proxy a connection to a URL goes through: --proxy when given ("none" forces
 * direct), else the usual environment (https_proxy for https/wss, http_proxy for http/ws, then
 * all_proxy; upper-case variants too), unless no_proxy matches the host. Pure. */
#ifndef DL_PROXY_H
#define DL_PROXY_H

#include <stddef.h>

/* out receives the proxy URL ("" for a direct connection; "http://" put before one without a
 * scheme, as curl reads it), for dl_proxy_url_parse or, SOCKS, for curl. Returns 0, or -1 when cap
 * is too small. */
int dl_proxy_for(const char *url, const char *explicit_proxy, char *out, size_t cap);
/* 1 when the proxy URL is a SOCKS proxy (socks4/socks5/socks5h). */
int dl_proxy_is_socks(const char *proxy);

#endif
