/* dl_b64 — standard base64 (RFC 4648 §4, alphabet A–Z a–z 0–9 + /, '=' padding).
 * Used for the payload_b64 of "raw" events (CONTRACT §4). */
#ifndef DL_B64_H
#define DL_B64_H

#include <stddef.h>
#include <stdint.h>

/* Characters dl_b64_encode writes for n input bytes, not counting the NUL. SIZE_MAX when
 * the result would not fit a size_t. */
size_t dl_b64_encoded_len(size_t n);

/* Encodes n bytes of in into out, which must hold dl_b64_encoded_len(n) + 1 bytes; writes a
 * terminating NUL and returns the length without it. */
size_t dl_b64_encode(const uint8_t *in, size_t n, char *out);

#endif
