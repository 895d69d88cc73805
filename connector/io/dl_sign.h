/* dl_sign — the WebSocket `signature` (PROTOCOL §2.3–2.4) and the URL it signs.
 *
 * The signature is frontierSign's X-Bogus over {"X-MS-STUB": md5(<13 fields>)}, re-implemented
 * natively: a 10-byte payload carrying two bytes of md5(md5("")) and two bytes of md5(stub),
 * RC4-encrypted with a one-byte key, prefixed by flags and the key, Base64-encoded with a custom
 * alphabet without padding (16 characters). The stub is always built from the very values that
 * go into the URL (dl_wsurl_build does both), so URL and signature cannot disagree. */
#ifndef DL_SIGN_H
#define DL_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define DL_SIGN_LEN 16
/* The web client's webcast SDK in 2025–2026 (PROTOCOL §9.4: J, B, RS); the URL's
 * webcast_sdk_version and update_version_code and the signed X-MS-STUB all carry it. */
#define DL_SDK_VERSION "1.0.15"

/* The X-MS-STUB: lowercase hex md5 of the 13-field string, into out[33]. */
void dl_sign_stub(const char *room_id, const char *user_unique_id, char out[33]);

/* The deterministic core (for test vectors): counter, flag bit, r1 and key chosen by the caller.
 * out receives 16 characters and a NUL. Returns 0, or -1 when stub_hex is not 32 hex digits. */
int dl_sign_with(const char *stub_hex, unsigned counter, int flag_bit, unsigned r1, unsigned key,
                 char out[DL_SIGN_LEN + 1]);

/* A signer with its own counter (starts at 1) and random source. Not thread-safe: one per thread. */
typedef struct dl_signer {
  unsigned counter;
  uint64_t rng;
} dl_signer;
void dl_signer_init(dl_signer *s, uint64_t seed);
int dl_signer_sign(dl_signer *s, const char *stub_hex, char out[DL_SIGN_LEN + 1]);

/* The push URL: <ws_base>/webcast/im/push/v2/?<PROTOCOL §2.1 query in browser order>&signature=.
 * cursor and internal_ext may be NULL (fresh connect); signature may be "" (--signer none).
 * Every value is percent-encoded as URLSearchParams does (spaces as %20; dl_query.h).
 * Returns the length written, or 0 if cap is too small. */
size_t dl_wsurl_build(char *out, size_t cap, const char *ws_base, const char *room_id,
                      const char *user_unique_id, const char *user_agent, const char *cursor,
                      const char *internal_ext, const char *signature, int64_t now_ms);

#endif
