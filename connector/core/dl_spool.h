/* dl_spool — a bounded on-disk FIFO of records, for writes that cannot reach Redis in time, and
 * the hand-over of a crashed worker's unsent writes to its successor.
 *
 * Files on disk are hostile (DESIGN §7): spools live in a private directory <dir>/dylive-<uid>
 * (created 0700; refused when it is a link, owned by someone else or open to others); a spool file
 * is created O_EXCL|O_NOFOLLOW, 0600, and held with an exclusive flock while its worker lives.
 * Every record is framed [magic][length][crc32] and checked when read back: a bad record is
 * counted, reported and skipped (the reader resynchronizes on the next magic), never retried in a
 * loop. The cap is mandatory: an append past max_bytes fails with DL_EFULL.
 *
 * One writer and one reader: the control thread. */
#ifndef DL_SPOOL_H
#define DL_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "dl_buf.h"
#include "dl_err.h"

typedef struct dl_spool dl_spool;

#define DL_SPOOL_PATH_MAX 512
/* Orphans adopted at start-up, at most (each is replayed, then removed). */
#define DL_SPOOL_ORPHANS_MAX 64

/* Makes (or checks) the private directory <dir>/dylive-<uid>; its path goes to out. */
dl_err dl_spool_private_dir(const char *dir, char *out, size_t cap, char *why, size_t why_cap);

/* Creates <privdir>/<name>.spool (it must not exist: see dl_spool_orphans) and locks it. */
dl_spool *dl_spool_create(const char *privdir, const char *name, uint64_t max_bytes, char *why, size_t why_cap);
/* Lists the spool files in privdir that no live worker holds (their flock is free): the unsent
 * writes of workers that died. Returns how many paths were written (at most max). */
size_t dl_spool_orphans(const char *privdir, char (*paths)[DL_SPOOL_PATH_MAX], size_t max);
/* Opens an orphan for reading (and locks it, so two successors never replay one file). */
dl_spool *dl_spool_adopt(const char *path, char *why, size_t why_cap);
/* Closes and removes the file. */
void dl_spool_close(dl_spool *s);
/* Closes and keeps the file (what is in it is for the next worker on this directory). */
void dl_spool_detach(dl_spool *s);

dl_err dl_spool_append(dl_spool *s, const void *rec, uint32_t len);
/* The oldest record in a malloc'd buffer. DL_ENOTFOUND when empty; DL_EPROTO when a bad record
 * was skipped (call again: every call makes progress); DL_EIO/DL_ENOMEM on failures. */
dl_err dl_spool_next(dl_spool *s, void **out, uint32_t *len);
/* The same into b (emptied first), which the caller keeps from one record to the next: no malloc
 * per record once it is big enough. b's max must allow DL_CMD_RECORD_MAX: a record over it is
 * DL_ELIMIT and stays where it is. */
dl_err dl_spool_next_buf(dl_spool *s, dl_buf *b);

uint64_t dl_spool_pending_bytes(const dl_spool *s);
uint64_t dl_spool_free_bytes(const dl_spool *s);     /* what an append may still add */
uint64_t dl_spool_pending_records(const dl_spool *s); /* exact unless records were bad */
uint64_t dl_spool_bad_records(const dl_spool *s);
const char *dl_spool_path(const dl_spool *s);

#endif
