/* dl_buf — a growable byte buffer whose cap is mandatory (curl's dynbuf). Every buffer that grows
 * with input from the network, Redis or disk is one of these, so no input can grow memory past a
 * configured limit: an append past the cap fails with DL_ELIMIT and leaves the buffer as it was. */
#ifndef DL_BUF_H
#define DL_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

typedef struct dl_buf {
  uint8_t *p;
  size_t len, cap, max;   /* max: the hard limit on len */
} dl_buf;

void dl_buf_init(dl_buf *b, size_t max);
void dl_buf_free(dl_buf *b);            /* frees the storage; the buffer can be reused */
void dl_buf_reset(dl_buf *b);           /* len = 0, storage kept */
dl_err dl_buf_reserve(dl_buf *b, size_t more);
dl_err dl_buf_add(dl_buf *b, const void *p, size_t n);
dl_err dl_buf_addc(dl_buf *b, char c);
dl_err dl_buf_adds(dl_buf *b, const char *s);
dl_err dl_buf_printf(dl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (a consumed prefix). */
void dl_buf_consume(dl_buf *b, size_t n);

#endif
