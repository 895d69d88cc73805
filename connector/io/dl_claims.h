/* dl_claims — the worker in the pool (DESIGN §3): claims assignments only while it has capacity
 * (BLMOVE P:assign → its claims list, so the list's length is the true backlog), keeps its
 * registry entry alive, moves dead workers' claims back to the head of P:assign, hands rooms back
 * and leaves the registry when it drains. */
#ifndef DL_CLAIMS_H
#define DL_CLAIMS_H

#include <stddef.h>

#include "dl_ctx.h"

typedef struct dl_claims dl_claims;

dl_claims *dl_claims_new(dl_ctx *ctx);
void dl_claims_free(dl_claims *c);

/* Claims the next assignment if there is room (and Redis, and no drain). */
void dl_claims_next(dl_claims *c);
/* Our claim of a room is done with (the room was released): LREM from the claims list. */
void dl_claims_release(dl_claims *c, const char *raw, size_t len);
/* Drain: the assignment goes back to the head of P:assign, for another worker at once. */
void dl_claims_hand_back(dl_claims *c, const char *raw, size_t len);
/* Every --poll-ms: registry heartbeat, dead workers' claims, the backlog sample. */
void dl_claims_poll(dl_claims *c);
void dl_claims_connected(dl_claims *c);    /* the claims connection is up */
void dl_claims_disconnected(dl_claims *c);
/* Drain begins: a blocked claim is cut short. */
void dl_claims_drain(dl_claims *c);
int dl_claims_inflight(const dl_claims *c);
/* Drain ends: leaves the registry (when Redis is there to hear it), then calls done once. */
void dl_claims_leave(dl_claims *c, void (*done)(dl_ctx *ctx));

#endif
