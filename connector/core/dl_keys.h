/* dl_keys — every Redis key name of dylive, in one place, shared by the worker and dylivectl
 * (CONTRACT §3, schema/KEYS.md). Room keys wrap the live_id in braces ({<live_id>}): a Redis
 * Cluster hash tag, so a room's keys share a slot and one script can touch them all. Pool keys
 * that a script touches together (P:assign and the claims lists) share the slot of P:assign. */
#ifndef DL_KEYS_H
#define DL_KEYS_H

#include <stddef.h>

/* Bounds: --prefix is at most 64 bytes, a worker id 100, a live_id 63 (validated by config and
 * by the assignment parser), so every key fits DL_KEY_MAX. */
#define DL_PREFIX_MAX 64
#define DL_WORKER_ID_MAX 100
#define DL_KEY_MAX 400

typedef enum {
  DL_RK_EVENTS,   /* STREAM: one entry per message */
  DL_RK_STATUS,   /* HASH: state, worker, events, … and wseq (the write fence) */
  DL_RK_LEASE,    /* STRING PX: "<worker> <epoch>", who owns the room */
  DL_RK_EPOCH,    /* STRING: INCR'd on every lease taken: tokens never repeat */
  DL_RK__COUNT
} dl_room_key;

/* Each returns the length written, or -1 when the key would not fit cap (never truncated). */
int dl_keys_room(char *out, size_t cap, const char *prefix, const char *live_id, dl_room_key which);
int dl_keys_assign(char *out, size_t cap, const char *prefix);           /* P:assign */
int dl_keys_claims(char *out, size_t cap, const char *prefix, const char *worker); /* P:claims:<w>:{P:assign} */
int dl_keys_worker(char *out, size_t cap, const char *prefix, const char *worker); /* P:worker:<w> */
int dl_keys_workers(char *out, size_t cap, const char *prefix);          /* P:workers */
int dl_keys_rooms(char *out, size_t cap, const char *prefix);            /* P:rooms (lifecycle stream) */
/* The SCAN pattern of every room's status hash: P:{*}:status */
int dl_keys_status_pattern(char *out, size_t cap, const char *prefix);
/* Redis Cluster's slot of a key: CRC16 (XMODEM) of the hash tag ({…}, when non-empty) or of the
 * whole key, modulo 16384. */
#define DL_SLOTS 16384
unsigned dl_keys_slot(const char *key, size_t len);

/* The live_id inside a room key of this prefix ("P:{123}:status" → "123"); -1 if not one. */
int dl_keys_live_id_of(const char *key, size_t key_len, const char *prefix, char *out, size_t cap);

#endif
