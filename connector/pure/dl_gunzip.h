/* dl_gunzip — bounded gunzip of one in-memory gzip member.
 *
 * libdeflate inflates a whole member into a buffer of a given size and stops when it is full
 * (1.5–1.6× zlib's speed on Douyin's ~700-byte payloads, its CRC32 included). The buffer is first
 * sized from the member's ISIZE trailer, never past what the input can inflate to or the cap, and
 * grown (×4, the member inflated again) while it is too small, so a bomb is refused once it fills
 * the cap and the output buffer never grows past min(max_out, max_ratio × in_len). */
#ifndef DL_GUNZIP_H
#define DL_GUNZIP_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

/* Inflates the gzip member in in[0..in_len) into a malloc'd buffer (*out, *out_len; *out is
 * NUL-terminated for convenience, the NUL is not counted). The caller frees *out.
 * max_out: cap on the inflated size; max_ratio: cap on inflated / in_len (0 = no ratio cap).
 * Errors (nothing to free): DL_EEMPTY (in_len 0), DL_EGZIP (not gzip, corrupt, truncated, CRC or
 * length mismatch), DL_EBOMB (a cap was crossed), DL_ENOMEM. Bytes after the end of the first
 * member are ignored. */
dl_err dl_gunzip(const uint8_t *in, size_t in_len, size_t max_out, size_t max_ratio,
                 uint8_t **out, size_t *out_len);

/* The same, reusing one decompressor and one output buffer across calls (DESIGN §7: one inflate
 * state per room, nothing malloc'd per frame).
 * Not thread-safe: one user at a time (the decoders of one thread may share one). */
typedef struct dl_inflater dl_inflater;
/* retain: output buffer capacity kept between calls (0: DL_INFLATER_DEFAULT_RETAIN); a bigger
 * one is freed at the next call or at dl_inflater_trim. NULL on allocation failure. The
 * decompressor itself is made at the first call. */
#define DL_INFLATER_DEFAULT_RETAIN (1u << 20)
dl_inflater *dl_inflater_new(size_t retain);
void dl_inflater_free(dl_inflater *z);
/* dl_gunzip's contract, but *out points into z's buffer (NUL-terminated), valid until the next
 * call or dl_inflater_trim on z; nothing to free. */
dl_err dl_inflater_run(dl_inflater *z, const uint8_t *in, size_t in_len, size_t max_out,
                       size_t max_ratio, const uint8_t **out, size_t *out_len);
/* Frees the output buffer when it is above the retained capacity (call when done with *out). */
void dl_inflater_trim(dl_inflater *z);

#endif
