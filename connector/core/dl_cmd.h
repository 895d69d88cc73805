/* dl_cmd — one command of the write path, as data: what it is (a fenced room write or a plain
 * pool command), the RESP bytes of its arguments, and its spool record. No sockets, no clocks:
 * the I/O side encodes a command with dl_cmd_encode just before sending it, so fields that may
 * change between sends (the gap-repair flag, the trim threshold) are never frozen into bytes.
 *
 * A room write is one call of connector/lua/room.lua: fence (the status hash's wseq names our
 * lease token), sequence (applied in order, once), the events' XADDs, the status fields, and
 * optionally the release of the lease. A status change is a room write with no events.
 *
 * Spool records (dl_cmd_to_record / dl_cmd_from_record) carry the structured fields, never a raw
 * argv: what is read back is validated field by field and re-encoded by this module, so a record
 * can only ever become a room write or one of the few plain commands dylive itself issues, on
 * keys of its own prefix. */
#ifndef DL_CMD_H
#define DL_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "dl_buf.h"
#include "dl_err.h"

#define DL_CMD_ID_MAX 64          /* live_id buffer (ids are at most 63 bytes: dl_page) */
#define DL_CMD_TOKEN_MAX 128      /* "<worker id ≤ 100> <epoch ≤ 20 digits>" */
/* One command's arguments: a Redis bulk string may be 512 MB, but a write this big would stall
 * Redis for everyone; batches are split well below it (dl_cmd_room_fits). */
#define DL_CMD_BYTES_MAX (64u << 20)
/* One spool record (the command plus its fields). */
#define DL_CMD_RECORD_MAX (DL_CMD_BYTES_MAX + 4096u)
/* Plain commands: at most this many arguments (LREM key 1 value is the longest we issue + XADD
 * P:rooms with its fields). */
#define DL_CMD_PLAIN_ARGS_MAX 24

/* A command's outcome, as the outbox classifies Redis's reply (dl_outbox.h says what each class
 * means). */
typedef enum { DL_RC_OK, DL_RC_RETRY, DL_RC_FENCED, DL_RC_GAP, DL_RC_FATAL } dl_reply_class;

/* Error reply kinds, for dylive_redis_errors_total{kind}. */
#define DL_RERR_MAP(X) X(NONE, "none") X(OOM, "oom") X(READONLY, "readonly") X(MOVED, "moved") X(ASK, "ask") \
  X(NOSCRIPT, "noscript") X(OTHER, "other")
typedef enum {
#define DL_RERR_ENUM(n, s) DL_RERR_##n,
  DL_RERR_MAP(DL_RERR_ENUM)
#undef DL_RERR_ENUM
  DL_RERR__COUNT
} dl_rerr;
const char *dl_rerr_name(dl_rerr k); /* dl_outbox.c */

typedef struct dl_reply_info {
  dl_reply_class cls;
  dl_rerr err;            /* the kind of an error reply */
  long long written;      /* events appended (room and orphan writes) */
  long long dups;         /* orphan events already in the stream */
  int applied_before;     /* OK because Redis already had this sequence */
  char desired[16];       /* a room write: the status hash's `desired` ("stopped" after an unassign) */
  char why[240];          /* for RETRY/FATAL: the error, for logs and the status hash */
} dl_reply_info;

/* ROOM: a fenced write of our own room (room.lua). PLAIN: a pool command (LREM, RPUSH, XADD P:rooms…).
 * ORPHAN: the events of a dead worker's spool, appended where their msg_id is not in the stream's
 * recent tail (orphan.lua) — no fence: their writer is gone, and whoever owns the room now never
 * received them. */
typedef enum { DL_CMD_ROOM = 1, DL_CMD_PLAIN = 2, DL_CMD_ORPHAN = 3 } dl_cmd_kind;

/* Where a command is in the outbox (dl_outbox). */
typedef enum { DL_CS_UNSENT, DL_CS_INFLIGHT, DL_CS_DONE } dl_cmd_state;

typedef struct dl_cmd {
  struct dl_cmd *next;
  dl_cmd_kind kind;
  char live_id[DL_CMD_ID_MAX];    /* the room ("" for pool commands) */
  /* DL_CMD_ROOM */
  char token[DL_CMD_TOKEN_MAX];   /* our lease token */
  uint64_t seq;                   /* this write's place in the room's order (1, 2, …) */
  uint8_t force;                  /* gap repair: apply even though a predecessor is missing */
  uint8_t release;                /* give the lease up after this write */
  uint32_t expire_s;              /* with release: the room's keys expire after this (0: keep) */
  uint8_t keep_lease;             /* a recent write or renewal refreshed the lease: this write leaves
                                     its expiry alone (not spooled: a write read back refreshes it) */
  uint8_t skip_trim;              /* a recent write trimmed the stream: this one does not (not
                                     spooled: a write read back trims) */
  uint32_t npairs;                /* status field/value strings in `head` (even) */
  uint32_t nevents;               /* events in `body` (4 strings each) */
  /* DL_CMD_PLAIN: nargs strings in `head` (the verb first) */
  uint32_t nargs;
  dl_buf head, body;              /* RESP bulk strings ("$<n>\r\n<bytes>\r\n") */
  /* outbox bookkeeping (not spooled) */
  dl_cmd_state state;
  dl_reply_info reply;            /* the last reply's meaning; final once DONE */
  void *owner;                    /* whoever sent it (the writer) */
  uint64_t sendno;                /* the outbox's count of sends when it was last sent */
  int node;                       /* the Redis node it was last sent to (for WAIT) */
  size_t wire_bytes;              /* bytes of the call it was last sent alone in (writer's in-flight count) */
  uint8_t confirmed;              /* applied and (with WAIT) held by enough replicas */
  char ask[280];                  /* a Cluster ASK redirection for the next send: "host:port" */
  int64_t recv_us;                /* when the oldest frame in it was received (monotonic µs: latency) */
  struct dl_cmd *then;            /* enqueued after this one succeeded (a P:rooms entry) */
  uint8_t then_always;            /* `then` goes whatever the outcome (a failed room's last entry) */
} dl_cmd;

/* What encoding needs besides the command: the run's settings. */
typedef struct dl_cmd_env {
  const char *prefix;
  const char *room_sha;           /* SHA1 of room.lua (EVALSHA) */
  const char *orphan_sha;         /* SHA1 of orphan.lua */
  long long dedupe_window;        /* orphan.lua: how many recent entries it compares msg_ids with */
  long long lease_ms;
  long long maxlen;               /* XADD MAXLEN ~ */
  long long minid_ms;             /* XTRIM MINID ~ (0: no time bound) */
} dl_cmd_env;

dl_cmd *dl_cmd_room_new(const char *live_id, const char *token);
/* RESP on b: one bulk string ($n, the bytes, CRLF), and a whole command of argc of them (lens NULL:
 * strlen). The one encoder of every command the worker sends. */
dl_err dl_cmd_resp_bulk(dl_buf *b, const void *p, size_t n);
dl_err dl_cmd_resp_argv(dl_buf *b, int argc, const char *const *argv, const size_t *lens);
/* PLAIN command from strings (argv[0] is the verb; lens NULL = strlen). NULL on bad input. */
dl_cmd *dl_cmd_plain_new(int argc, const char *const *argv, const size_t *lens);
void dl_cmd_free(dl_cmd *c);      /* also frees a pending `then`; keeps a few for reuse (per thread) */
void dl_cmd_pool_drain(void);     /* frees the kept ones (at exit) */
/* Frees this thread's kept commands that none took since the last call (the pool is a stack: the
 * bottom ones); returns the bytes their buffers held. On a slow tick, what a burst left behind goes
 * back and what steady work uses stays. */
size_t dl_cmd_pool_decay(void);
/* The kept commands' buffers may hold 1.5 × bytes in all, per thread (0: 4 MiB); call before any
 * thread makes commands. The worker gives it --buffer-max-bytes. */
void dl_cmd_pool_bound(size_t bytes);
/* Best effort: grows c's buffers at once to hold head_bytes and body_bytes (each at most 1 MiB), so
 * that a write the size of the room's last one is one allocation at most, not a chain of them. */
void dl_cmd_reserve(dl_cmd *c, size_t head_bytes, size_t body_bytes);

/* Room writes: status pairs and events. DL_ELIMIT past DL_CMD_BYTES_MAX (nothing added). */
dl_err dl_cmd_add_pair(dl_cmd *c, const char *field, const char *value);
dl_err dl_cmd_add_event(dl_cmd *c, const char *type, const char *msg_id, long long ts_ms, const char *json,
                        size_t json_len);
/* A dead worker's room write, turned into an orphan replay of its events (status fields and the
 * fence are dropped: they were the dead worker's). */
void dl_cmd_to_orphan(dl_cmd *c);
/* Would one more event of this size fit this command? */
int dl_cmd_room_fits(const dl_cmd *c, size_t event_bytes, size_t max_bytes);
size_t dl_cmd_bytes(const dl_cmd *c);

/* The whole command as RESP into out (appended). A room write is a room.lua call of its own. */
dl_err dl_cmd_encode(const dl_cmd *c, const dl_cmd_env *env, dl_buf *out);
/* Room writes in one room.lua call (n ≤ DL_CMD_GROUP_MAX, all DL_CMD_ROOM, on Cluster all in one
 * slot: the caller groups). Its reply is an array with one reply per command, in order. */
#define DL_CMD_GROUP_MAX 1024
dl_err dl_cmd_encode_rooms(const dl_cmd *const *cs, size_t n, const dl_cmd_env *env, dl_buf *out);

/* Spool records. */
dl_err dl_cmd_to_record(const dl_cmd *c, dl_buf *out);
/* Validates everything (lengths, RESP framing, counts, verbs, key prefixes); *out owns a new
 * command. DL_EPROTO with why on any mismatch. */
dl_err dl_cmd_from_record(const uint8_t *p, size_t n, const char *prefix, dl_cmd **out, char *why, size_t why_cap);

/* Little-endian 32-bit fields of spool records (here and in dl_spool's record frames). */
static inline void dl_le32_put(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t dl_le32_get(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walks the RESP bulk strings of a buffer: returns the next one (ptr, len) or 0 at the end;
 * -1 on malformed framing. *off is the cursor (start at 0). */
int dl_cmd_next_arg(const dl_buf *b, size_t *off, const char **p, size_t *len);

#endif
