/* dl_outbox — the write path's order and tiers, and the meaning of Redis's replies (fluent-bit's
 * OK/RETRY/ERROR, hiredis's "protocol logic with no I/O inside").
 *
 * Every write waits here, in order, until Redis has answered it for good: first in memory
 * (bounded by commands and bytes), then in the spool file, then in a short overflow list for the
 * few control writes that come while the spool is full (frames are not taken then, so it stays
 * small). Order is kept across the tiers: once something is spooled, everything after it is too.
 *
 * The I/O side asks for the next command to send (dl_outbox_next), reports each reply
 * (dl_outbox_replied, after dl_outbox_classify) or a lost connection (dl_outbox_disconnected), and
 * takes finished commands from the head in order (dl_outbox_pop). Replies may come from several
 * connections (a Cluster) in any order; completion is still in order.
 *
 *   OK      applied (or applied before: a re-sent room write whose sequence Redis already has)
 *   RETRY   not applied, will be: OOM, READONLY, LOADING, NOSCRIPT, MOVED, a lost connection…
 *           After a RETRY only the oldest pending command is sent (a probe) until one succeeds.
 *   FENCED  the room's lease moved to another worker: dropped, the room is given up
 *   GAP     a room write whose predecessor Redis never got. While a predecessor is still pending
 *           this is just RETRY; at the head it means the predecessor was lost on our side (a
 *           spool record that failed its checksum), and the write is re-sent with `force`.
 *   FATAL   will never succeed as it is (a key of the wrong type, a script error): dropped and
 *           reported; for a room write the room goes to `error`. */
#ifndef DL_OUTBOX_H
#define DL_OUTBOX_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_cmd.h"
#include "dl_spool.h"

/* What a reply means for this command (into c->reply, where it stays: one copy from the reply to
 * the hook that acts on it). A NULL reply is a lost connection (RETRY). */
void dl_outbox_classify(const dl_cmd *c, const redisReply *r, dl_reply_info *out);
/* The reply to room writes grouped in one call (dl_cmd_encode_rooms): an array with one reply per
 * command, each classified into its c->reply; an error reply, a lost connection or an array of the
 * wrong size is every command's answer. Returns 1 when r was one answer for all (an error reply is
 * then counted once, not per command). */
int dl_outbox_classify_group(dl_cmd *const *cs, size_t n, const redisReply *r);

typedef struct dl_outbox_limits {
  size_t max_cmds;        /* commands in memory */
  size_t max_bytes;       /* their bytes */
} dl_outbox_limits;

typedef struct dl_outbox_stats {
  uint64_t spooled;       /* commands that went through the spool */
  uint64_t spool_errors;  /* spool writes that failed (those commands went to overflow) */
  uint64_t spool_bad;     /* records read back that failed their checks (their writes are lost) */
  uint64_t gaps;          /* room writes re-sent with force after a lost predecessor */
} dl_outbox_stats;

typedef struct dl_outbox dl_outbox;

/* spool may be NULL (no disk tier); prefix validates what is read back from it. */
dl_outbox *dl_outbox_new(const dl_outbox_limits *lim, dl_spool *spool, const char *prefix);
/* Frees every pending command; the spool is the caller's. */
void dl_outbox_free(dl_outbox *ob);

/* Takes ownership. Never fails: memory, else spool, else overflow. */
void dl_outbox_push(dl_outbox *ob, dl_cmd *c);
/* May producers add `bytes` more in at most `cmds` commands (bounds on what they are about to
 * add) without any of it landing in the overflow list? */
int dl_outbox_accepting(const dl_outbox *ob, uint64_t bytes, size_t cmds);

/* The next command to send, in order (marked in flight), or NULL. */
dl_cmd *dl_outbox_next(dl_outbox *ob);
/* c->reply holds the classified answer (dl_outbox_classify). */
void dl_outbox_replied(dl_outbox *ob, dl_cmd *c);
/* Every command in flight was lost with its connection: they will be sent again. */
void dl_outbox_disconnected(dl_outbox *ob);
/* A command taken with dl_outbox_next could not be sent after all: it goes back, in its place. */
void dl_outbox_unsend(dl_outbox *ob, dl_cmd *c);

/* Durability (--redis-wait-replicas): with confirm on, an applied command still waits for a
 * WAIT reply that covers it before it counts as done; on a failover the applied-but-unconfirmed
 * ones are sent again to the new primary (room writes are idempotent: sequence numbers). */
void dl_outbox_set_confirm(dl_outbox *ob, int on);
uint64_t dl_outbox_last_sendno(const dl_outbox *ob); /* the latest send, for a WAIT to cover */
/* A WAIT on `node` covered every command sent there up to upto_sendno. */
void dl_outbox_confirm(dl_outbox *ob, int node, uint64_t upto_sendno);
size_t dl_outbox_unconfirmed(const dl_outbox *ob);
void dl_outbox_resend_unconfirmed(dl_outbox *ob);
/* The oldest command if it is finished (the caller acts on c->reply and frees it), else NULL. */
dl_cmd *dl_outbox_pop(dl_outbox *ob);

/* Exit with writes still pending: moves every command held in memory (and overflow) to the
 * spool, for the next worker started on the same spool directory (it replays them). Returns how
 * many were saved; what the spool cannot take is counted in spool_errors and dropped. */
size_t dl_outbox_save(dl_outbox *ob);
int dl_outbox_probing(const dl_outbox *ob);
size_t dl_outbox_pending(const dl_outbox *ob);    /* memory + spool + overflow */
size_t dl_outbox_mem_cmds(const dl_outbox *ob);
size_t dl_outbox_mem_bytes(const dl_outbox *ob);
uint64_t dl_outbox_spool_bytes(const dl_outbox *ob);  /* unread bytes in the spool file */
const dl_outbox_stats *dl_outbox_stats_get(const dl_outbox *ob);

#endif
