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

dl_err dl_gunzip(const uint8_t *in, size_t in_len, size_t max_out, size_t max_ratio,
                 uint8_t **out, size_t *out_len) {
  dl_err rc = DL_EGZIP;
  z_stream zs;
  int zs_live = 0;
  uint8_t window[DL_GUNZIP_WINDOW];
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
  zs_live = 1;
  zs.next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const-correct; it does not write */
  zs.avail_in = (uInt)in_len;

  for (;;) {
    zs.next_out = window;
    zs.avail_out = sizeof window;
    int z = inflate(&zs, Z_NO_FLUSH);
    if (z != Z_OK && z != Z_STREAM_END && z != Z_BUF_ERROR) {
      rc = z == Z_MEM_ERROR ? DL_ENOMEM : DL_EGZIP; /* Z_DATA_ERROR: corrupt, bad CRC/ISIZE */
      goto cleanup;
    }
    size_t produced = sizeof window - zs.avail_out;
    if (produced > cap - used) {
      rc = DL_EBOMB; /* refuse before keeping a single byte past the cap */
      goto cleanup;
    }
    if (produced) {
      if (used + produced + 1 > alloc) {
        size_t want = alloc ? alloc : DL_GUNZIP_INITIAL_OUT;
        while (want < used + produced + 1) want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
        if (want > cap + 1) want = cap + 1;
        uint8_t *nb = realloc(buf, want);
        if (!nb) {
          rc = DL_ENOMEM;
          goto cleanup;
        }
        buf = nb;
        alloc = want;
      }
      memcpy(buf + used, window, produced);
      used += produced;
    }
    if (z == Z_STREAM_END) break;
    if (z == Z_BUF_ERROR || (produced == 0 && zs.avail_in == 0)) {
      rc = DL_EGZIP; /* no progress possible: the member is truncated */
      goto cleanup;
    }
  }

  if (!buf) {
    buf = malloc(1);
    if (!buf) {
      rc = DL_ENOMEM;
      goto cleanup;
    }
  }
  buf[used] = '\0';
  *out = buf;
  *out_len = used;
  buf = NULL;
  rc = DL_EOK;

cleanup:
  if (zs_live) inflateEnd(&zs);
  free(buf);
  return rc;
}
