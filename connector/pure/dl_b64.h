/* dl_b64 — base64 encoding with the RFC 4648 bit order (3 bytes → a 24-bit big-endian number →
 * four 6-bit indices, high bits first).
 *  - dl_b64_encode: the standard alphabet (RFC 4648 §4: A–Z a–z 0–9 + /) with '=' padding; used
 *    for the payload_b64 of "raw" events (CONTRACT §4).
 *  - dl_b64_encode_alphabet: the same bit order over another 64-character alphabet, with or
 *    without padding; used by the a_bogus signer's custom alphabets (PROTOCOL §9.2). */
#ifndef DL_B64_H
#define DL_B64_H

#include <stddef.h>
#include <stdint.h>

/* Characters dl_b64_encode writes for n input bytes, not counting the NUL. SIZE_MAX when
 * the result would not fit a size_t. */
size_t dl_b64_encoded_len(size_t n);

/* Characters dl_b64_encode_alphabet writes for n bytes without padding: a final group of 1 or 2
 * bytes gives 2 or 3 characters. SIZE_MAX when the result would not fit a size_t. */
size_t dl_b64_encoded_len_unpadded(size_t n);

/* Encodes n bytes of in into out, which must hold dl_b64_encoded_len(n) + 1 bytes; writes a
 * terminating NUL and returns the length without it. */
size_t dl_b64_encode(const uint8_t *in, size_t n, char *out);

/* Encodes n bytes with alphabet (exactly 64 characters). pad != 0: '=' up to a multiple of 4
 * (out holds dl_b64_encoded_len(n) + 1); pad == 0: no '=' (dl_b64_encoded_len_unpadded(n) + 1).
 * Missing bits of a final group are zero. Writes a NUL; returns the length without it. */
size_t dl_b64_encode_alphabet(const uint8_t *in, size_t n, const char *alphabet, int pad,
                              char *out);

#endif
