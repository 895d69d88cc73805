/* dl_room — the rooms this worker holds, each a small state machine:
 *
 *   claiming ─acquire→ loading (the stream's tail: recent msg_ids, gift streaks) ─→ resolving
 *   (page / web/enter) ─→ connecting ─→ live ⇄ reconnecting ─→ closing ─→ released
 *   (+ watching: --watch-ended keeps an ended room and looks again later)
 *
 * Events are deduplicated here by msg_id (a window per room, refilled from the stream's tail when
 * the room is taken: DESIGN §7 "the stream is the record"), batched per room, and written through
 * the writer as fenced, ordered room writes; status changes are room writes too (same order), and
 * each state change also goes to P:rooms once its write succeeded. */
#ifndef DL_ROOM_H
#define DL_ROOM_H

#include <stddef.h>

#include "dl_ctx.h"
#include "dl_cmd.h"
#include "dl_ingest.h"
#include "dl_outbox.h"
#include "dl_resolve.h"

typedef struct dl_rooms dl_rooms;

/* States as published (status hash, P:rooms, dylive_rooms{state}). */
#define DL_RSTATE_MAP(X) X(claiming) X(starting) X(live) X(reconnecting) X(error) X(ended) X(stopped) X(watching)
typedef enum {
#define DL_RS_ENUM(n) DL_RS_##n,
  DL_RSTATE_MAP(DL_RS_ENUM)
#undef DL_RS_ENUM
  DL_RS__COUNT
} dl_rstate;
const char *dl_rstate_name(dl_rstate s);

dl_rooms *dl_rooms_new(dl_ctx *ctx);
void dl_rooms_free(dl_rooms *rs);
size_t dl_rooms_count(const dl_rooms *rs);
int dl_rooms_has(const dl_rooms *rs, const char *live_id);
void dl_rooms_states(const dl_rooms *rs, size_t counts[DL_RS__COUNT]);

/* A claimed assignment becomes a room (raw: the assignment as it sits in the claims list). With
 * `refused` (a configuration error found at claim time, e.g. its proxy cannot be used) the room
 * only takes its lease to publish state error with that reason, and is released: final, like an
 * unknown cookie profile. */
void dl_rooms_claimed(dl_rooms *rs, const char *live_id, const char *profile, const char *raw, size_t len,
                      const char *refused);
void dl_rooms_on_ingest(dl_rooms *rs, dl_in_msg *m);
void dl_rooms_on_resolved(dl_rooms *rs, dl_resolve_result *res);
/* End of a pass over the ingest queue: every room's pending events become writes. */
void dl_rooms_flush(dl_rooms *rs);
/* Until this monotonic µs some room's frames came fast (--flush-max-ms): the short linger. */
int64_t dl_rooms_fast_until_us(const dl_rooms *rs);
/* The writer finished a command (in order). */
void dl_rooms_on_done(dl_rooms *rs, dl_cmd *c);
/* Every --poll-ms: leases renewed, unassign requests noticed. */
void dl_rooms_poll(dl_rooms *rs);
/* SIGTERM: every room handed back. */
void dl_rooms_drain(dl_rooms *rs);

#endif
