/* dl_lease — a room's lease with its fencing token (DESIGN §3), the two calls behind it:
 * acquire.lua (take) and renew.lua (keep, and read the operator's `desired`). The token then
 * travels on every room write (room.lua checks it), so this module is small on purpose. */
#ifndef DL_LEASE_H
#define DL_LEASE_H

#include "dl_ctx.h"
#include "dl_err.h"

typedef struct dl_lease_result {
  int taken;               /* 1: token is ours */
  char token[128];         /* ours, or the holder's when not taken */
  int lost;                /* renew: 1 when another worker holds the room */
  char desired[32];        /* renew: the status hash's `desired` ("" when unset) */
  int failed;              /* no answer (connection lost) or an error reply */
  char why[200];
} dl_lease_result;

typedef void (*dl_lease_cb)(dl_ctx *ctx, const char *live_id, const dl_lease_result *res);

dl_err dl_lease_acquire(dl_ctx *ctx, const char *live_id, dl_lease_cb cb);
/* Renews n rooms' leases (tokens[i] is live_ids[i]'s) in one renew.lua call: cb once per room, in
 * order. n ≤ DL_RENEW_GROUP_MAX; on a Cluster the rooms must share a slot (the caller groups). */
#define DL_RENEW_GROUP_MAX 256
dl_err dl_lease_renew_many(dl_ctx *ctx, size_t n, const char *const *live_ids, const char *const *tokens, dl_lease_cb cb);

#endif
