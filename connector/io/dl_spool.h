/* dl_spool — a bounded on-disk FIFO of records, for writes that cannot reach Redis in time.
 *
 * Records are appended at the end and read back from the front, in order; when the reader
 * catches up the file is truncated. The cap is mandatory: an append past max_bytes fails with
 * DL_EFULL and the caller applies back-pressure instead. One writer and reader: the control
 * thread. */
#ifndef DL_SPOOL_H
#define DL_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

typedef struct dl_spool dl_spool;

/* Creates (or truncates) <dir>/<name>.spool. NULL with why on failure. */
dl_spool *dl_spool_open(const char *dir, const char *name, uint64_t max_bytes, char *why, size_t why_cap);
void dl_spool_close(dl_spool *s); /* removes the file */

dl_err dl_spool_append(dl_spool *s, const void *rec, uint32_t len);
/* Reads the oldest record into a malloc'd buffer (*out, *len). DL_ENOTFOUND when empty. */
dl_err dl_spool_next(dl_spool *s, void **out, uint32_t *len);
uint64_t dl_spool_pending_bytes(const dl_spool *s);
uint64_t dl_spool_pending_records(const dl_spool *s);

#endif
