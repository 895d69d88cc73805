/* dl_rc4 — RC4 (KSA + PRGA), the stream cipher both Douyin signers use to scramble bytes: the
 * WebSocket signature (dl_sign: a one-byte key) and a_bogus (dl_abogus: the UA and the payload).
 * Obfuscation on the server's terms, not security. Pure. */
#ifndef DL_RC4_H
#define DL_RC4_H

#include <stddef.h>
#include <stdint.h>

/* n bytes of data in place: data ^= keystream. key_len 1..256; with any other key_len data is left
 * as it is. Its own inverse. */
void dl_rc4(const uint8_t *key, size_t key_len, uint8_t *data, size_t n);

#endif
