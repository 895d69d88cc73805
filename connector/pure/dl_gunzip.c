#include "dl_gunzip.h"

#include <libdeflate.h>
#include <stdlib.h>

/* The least output buffer tried first. */
#define DL_GUNZIP_INITIAL_OUT 4096
/* DEFLATE's greatest expansion: a 258-byte match per two bits of input (1032:1). */
#define DEFLATE_MAX_RATIO 1032

static size_t effective_cap(size_t in_len, size_t max_out, size_t max_ratio) {
  size_t cap = max_out;
  if (max_ratio && in_len <= SIZE_MAX / max_ratio && in_len * max_ratio < cap)
    cap = in_len * max_ratio;
  return cap;
}

/* The output size to try first: the gzip trailer's ISIZE (RFC 1952: the member's length mod 2^32,
 * in its last four bytes when the member ends the input, as it does in every frame), but no more
 * than the input can inflate to, the cap, or the buffer already there (a member that does not end
 * the input, or lies, costs a retry, never a byte past the cap). */
static size_t first_try(const uint8_t *in, size_t in_len, size_t cap, size_t have) {
  size_t hint = DL_GUNZIP_INITIAL_OUT;
  if (in_len >= 18) {
    const uint8_t *t = in + in_len - 4;
    size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    if (isize > hint) hint = isize;
  }
  if (in_len <= SIZE_MAX / DEFLATE_MAX_RATIO && hint > in_len * DEFLATE_MAX_RATIO) hint = in_len * DEFLATE_MAX_RATIO;
  if (have > hint) hint = have;
  return hint < cap ? hint : cap;
}

/* Inflates the first gzip member of in[0..in_len) into *buf (capacity *alloc, grown with realloc,
 * never past cap + 1, room kept for a NUL); *used gets the bytes. libdeflate inflates a whole
 * member into a buffer of a given size and stops when it is full: a member bigger than the cap
 * is refused having written no byte past it. */
static dl_err inflate_member(struct libdeflate_decompressor *d, const uint8_t *in, size_t in_len, size_t cap,
                             uint8_t **buf, size_t *alloc, size_t *used) {
  size_t room = first_try(in, in_len, cap, *alloc ? *alloc - 1 : 0);
  *used = 0;
  for (;;) {
    if (room + 1 > *alloc) {
      uint8_t *nb = realloc(*buf, room + 1);
      if (!nb) return DL_ENOMEM;
      *buf = nb;
      *alloc = room + 1;
    }
    size_t in_used, out_used;
    enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, in, in_len, *buf, room, &in_used, &out_used);
    if (r == LIBDEFLATE_SUCCESS) {
      *used = out_used;
      return DL_EOK;
    }
    if (r != LIBDEFLATE_INSUFFICIENT_SPACE) return DL_EGZIP; /* corrupt, truncated, CRC or ISIZE */
    if (room >= cap) return DL_EBOMB;
    room = room > cap / 4 ? cap : room * 4;
  }
}

dl_err dl_gunzip(const uint8_t *in, size_t in_len, size_t max_out, size_t max_ratio,
                 uint8_t **out, size_t *out_len) {
  uint8_t *buf = NULL;
  size_t used = 0, alloc = 0;
  *out = NULL;
  *out_len = 0;
  if (in_len == 0) return DL_EEMPTY;
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  if (!d) return DL_ENOMEM;
  dl_err rc = inflate_member(d, in, in_len, effective_cap(in_len, max_out, max_ratio), &buf, &alloc, &used);
  libdeflate_free_decompressor(d);
  if (rc != DL_EOK) {
    free(buf);
    return rc;
  }
  buf[used] = '\0';
  *out = buf;
  *out_len = used;
  return DL_EOK;
}

struct dl_inflater {
  struct libdeflate_decompressor *d;
  uint8_t *buf;
  size_t alloc;
  size_t retain;
};

dl_inflater *dl_inflater_new(size_t retain) {
  dl_inflater *z = calloc(1, sizeof *z);
  if (!z) return NULL;
  z->retain = retain ? retain : DL_INFLATER_DEFAULT_RETAIN;
  return z;
}

void dl_inflater_free(dl_inflater *z) {
  if (!z) return;
  if (z->d) libdeflate_free_decompressor(z->d);
  free(z->buf);
  free(z);
}

void dl_inflater_trim(dl_inflater *z) {
  if (z->alloc > z->retain) {
    free(z->buf);
    z->buf = NULL;
    z->alloc = 0;
  }
}

dl_err dl_inflater_run(dl_inflater *z, const uint8_t *in, size_t in_len, size_t max_out,
                       size_t max_ratio, const uint8_t **out, size_t *out_len) {
  size_t used = 0;
  *out = NULL;
  *out_len = 0;
  dl_inflater_trim(z);
  if (in_len == 0) return DL_EEMPTY;
  if (!z->d && !(z->d = libdeflate_alloc_decompressor())) return DL_ENOMEM;
  /* the buffer may be bigger than this member's cap (an earlier member): only cap bytes are used */
  dl_err rc = inflate_member(z->d, in, in_len, effective_cap(in_len, max_out, max_ratio), &z->buf, &z->alloc, &used);
  if (rc != DL_EOK) return rc;
  z->buf[used] = '\0';
  *out = z->buf;
  *out_len = used;
  return DL_EOK;
}
