#include "dl_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growth starts here: most buffers (a command, a log line, a small page) stay below it. */
#define DL_BUF_MIN 256

void dl_buf_init(dl_buf *b, size_t max) {
  b->p = NULL;
  b->len = b->cap = 0;
  b->max = max;
}

void dl_buf_free(dl_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void dl_buf_reset(dl_buf *b) { b->len = 0; }

dl_err dl_buf_reserve(dl_buf *b, size_t more) {
  if (more > b->max || b->len > b->max - more) return DL_ELIMIT;
  size_t need = b->len + more + 1; /* room for a terminating NUL */
  if (need <= b->cap) return DL_EOK;
  size_t nc = b->cap ? b->cap : DL_BUF_MIN;
  while (nc < need) nc = nc > SIZE_MAX / 2 ? need : nc * 2;
  if (nc > b->max + 1) nc = b->max + 1;
  uint8_t *np = realloc(b->p, nc);
  if (!np) return DL_ENOMEM;
  b->p = np;
  b->cap = nc;
  return DL_EOK;
}

dl_err dl_buf_add(dl_buf *b, const void *p, size_t n) {
  dl_err e = dl_buf_reserve(b, n);
  if (e != DL_EOK) return e;
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = 0;
  return DL_EOK;
}

dl_err dl_buf_addc(dl_buf *b, char c) { return dl_buf_add(b, &c, 1); }

dl_err dl_buf_adds(dl_buf *b, const char *s) { return dl_buf_add(b, s, strlen(s)); }

dl_err dl_buf_printf(dl_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return DL_EINVAL;
  dl_err e = dl_buf_reserve(b, (size_t)n);
  if (e != DL_EOK) return e;
  va_start(ap, fmt);
  vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return DL_EOK;
}

void dl_buf_consume(dl_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
  b->p[b->len] = 0;
}
