#include "dl_gunzip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* First allocation of the output; it then doubles, never beyond the cap. */
#define DL_GUNZIP_INITIAL_OUT 4096

static size_t effective_cap(size_t in_len, size_t max_out, size_t max_ratio) {
  size_t cap = max_out;
  if (max_ratio && in_len <= SIZE_MAX / max_ratio && in_len * max_ratio < cap)
    cap = in_len * max_ratio;
  return cap;
}

/* Inflates one member with the (initialized or reset) zs into *buf (capacity *alloc, grown with
 * realloc, never past cap + 1); *used gets the bytes. The caps are checked before a byte is
 * kept. */
static dl_err inflate_member(z_stream *zs, const uint8_t *in, size_t in_len, size_t cap,
                             uint8_t **buf, size_t *alloc, size_t *used) {
  uint8_t window[DL_GUNZIP_WINDOW];
  *used = 0;
  zs->next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const-correct; it does not write */
  zs->avail_in = (uInt)in_len;
  for (;;) {
    zs->next_out = window;
    zs->avail_out = sizeof window;
    int z = inflate(zs, Z_NO_FLUSH);
    if (z != Z_OK && z != Z_STREAM_END && z != Z_BUF_ERROR)
      return z == Z_MEM_ERROR ? DL_ENOMEM : DL_EGZIP; /* Z_DATA_ERROR: corrupt, bad CRC/ISIZE */
    size_t produced = sizeof window - zs->avail_out;
    if (produced > cap - *used) return DL_EBOMB; /* refuse before keeping a byte past the cap */
    if (produced) {
      if (*used + produced + 1 > *alloc) {
        size_t want = *alloc ? *alloc : DL_GUNZIP_INITIAL_OUT;
        while (want < *used + produced + 1) want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
        if (want > cap + 1) want = cap + 1;
        uint8_t *nb = realloc(*buf, want);
        if (!nb) return DL_ENOMEM;
        *buf = nb;
        *alloc = want;
      }
      memcpy(*buf + *used, window, produced);
      *used += produced;
    }
    if (z == Z_STREAM_END) return DL_EOK;
    if (z == Z_BUF_ERROR || (produced == 0 && zs->avail_in == 0))
      return DL_EGZIP; /* no progress possible: the member is truncated */
  }
}

dl_err dl_gunzip(const uint8_t *in, size_t in_len, size_t max_out, size_t max_ratio,
                 uint8_t **out, size_t *out_len) {
  z_stream zs;
  uint8_t *buf = NULL;
  size_t used = 0, alloc = 0;
  const size_t cap = effective_cap(in_len, max_out, max_ratio);

  *out = NULL;
  *out_len = 0;
  if (in_len == 0) return DL_EEMPTY;
  /* zlib counts in uInt; a frame this large is refused long before, by max_frame_bytes. */
  if (in_len > UINT_MAX) return DL_ELIMIT;

  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return DL_ENOMEM;
  dl_err rc = inflate_member(&zs, in, in_len, cap, &buf, &alloc, &used);
  inflateEnd(&zs);
  if (rc == DL_EOK && !buf && !(buf = malloc(1))) rc = DL_ENOMEM;
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
  z_stream zs;
  int zs_live;
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
  if (z->zs_live) inflateEnd(&z->zs);
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
  const size_t cap = effective_cap(in_len, max_out, max_ratio);
  *out = NULL;
  *out_len = 0;
  dl_inflater_trim(z);
  if (in_len == 0) return DL_EEMPTY;
  if (in_len > UINT_MAX) return DL_ELIMIT;
  if (!z->zs_live) {
    memset(&z->zs, 0, sizeof z->zs);
    if (inflateInit2(&z->zs, 16 + MAX_WBITS) != Z_OK) return DL_ENOMEM;
    z->zs_live = 1;
  } else if (inflateReset(&z->zs) != Z_OK) {
    return DL_EGZIP;
  }
  /* the buffer may be bigger than this member's cap (an earlier member): still never kept past */
  dl_err rc = inflate_member(&z->zs, in, in_len, cap, &z->buf, &z->alloc, &used);
  if (rc == DL_EOK && !z->buf) {
    if (!(z->buf = malloc(DL_GUNZIP_INITIAL_OUT))) return DL_ENOMEM;
    z->alloc = DL_GUNZIP_INITIAL_OUT;
  }
  if (rc != DL_EOK) return rc;
  z->buf[used] = '\0';
  *out = z->buf;
  *out_len = used;
  return DL_EOK;
}
