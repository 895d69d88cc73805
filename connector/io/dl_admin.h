/* dl_admin — the admin HTTP server: /metrics (Prometheus text), /healthz (the control loop
 * answers), /readyz (Redis connected and not draining). Our own small server on libevent's
 * listener rather than evhttp: GET/HEAD only, a header cap, a read deadline, a connection cap,
 * one request per connection, and a listener that pauses instead of spinning when descriptors run
 * out. Bind it beyond loopback only behind a network policy: it has no authentication. */
#ifndef DL_ADMIN_H
#define DL_ADMIN_H

#include <stddef.h>

#include "dl_buf.h"
#include "dl_ctx.h"

typedef struct dl_admin dl_admin;

/* NULL with why when the address cannot be bound. */
dl_admin *dl_admin_new(dl_ctx *ctx, const char *hostport, char *why, size_t why_cap);
void dl_admin_free(dl_admin *a);
/* The metrics page (also used by tests and the bench through /metrics). */
void dl_admin_render_metrics(dl_ctx *ctx, dl_buf *out);

#endif
