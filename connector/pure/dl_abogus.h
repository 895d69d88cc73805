/* dl_abogus — the a_bogus request signature of Douyin web (PROTOCOL §9.2, the "cus" family, as
 * H's ab_sign.py and J's ab_sign.go compute it), needed on GET /webcast/room/web/enter/ and
 * /webcast/im/fetch/ (PROTOCOL §9.1).
 *
 * Pure: no I/O, no clock, no randomness, no state; the caller passes the time and the prefix
 * numbers. SM3 comes from OpenSSL 3 (EVP, default provider); RC4 and the custom Base64 are here.
 * Thread-safe. */
#ifndef DL_ABOGUS_H
#define DL_ABOGUS_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

/* ---- limits (every input is bounded; a longer one is refused with DL_ELIMIT) ---- */

/* Query bytes signed. The query is only hashed (never copied), so this is a sanity bound: the
 * signed queries are 0.4–1 KiB, and front ends commonly refuse a request line over 8 KiB
 * (nginx's default large_client_header_buffers), so a longer query is a caller bug. */
#define DL_ABOGUS_QUERY_MAX 8192
/* User-Agent bytes. The UA is RC4-encrypted and Base64-encoded in stack buffers; browser UAs are
 * 100–250 bytes, so 1 KiB leaves room for long embedded-browser UAs and keeps the stack small. */
#define DL_ABOGUS_UA_MAX 1024
/* Env string bytes. Its length travels as 16 bits (array bytes 40–41), but the output must always
 * fit DL_ABOGUS_MAX: 12 + 44 + 128 + 1 = 185 bytes → 248 characters. Real env strings are 60–90
 * bytes (H/J's is 65). */
#define DL_ABOGUS_ENV_MAX 128
/* Prefix numbers are decimal 0..9999 in the JS (Math.random()*10000 as an integer). */
#define DL_ABOGUS_R_LIMIT 10000
/* t1 = t0 + 100 must fit the 48 bits of time that the array carries (bytes up to >> 40); 2^48 ms
 * is the year 10889, so a larger t0 is a caller bug (seconds × 10^6, say), not a real time. */
#define DL_ABOGUS_T0_MAX ((UINT64_C(1) << 48) - 1 - 100)

/* ---- sizes ---- */

#define DL_ABOGUS_SM3_LEN 32   /* SM3 digest bytes (GB/T 32905) */
#define DL_ABOGUS_Y_LEN 44     /* the fixed array Y of §9.2 */
#define DL_ABOGUS_PREFIX_LEN 12 /* prefix R: three 4-byte groups */
/* Characters of T = Base64_A3(RC4(UA)) without padding, for the longest accepted UA. */
#define DL_ABOGUS_UA_CODE_MAX (4 * ((DL_ABOGUS_UA_MAX + 2) / 3))
/* Characters of a_bogus (without NUL) for an env string of env_len bytes: Base64_A4 of
 * R ‖ RC4(Y ‖ E ‖ C), padded with '=' to a multiple of 4. 164 for the default env. */
#define DL_ABOGUS_ENCODED_LEN(env_len)                                                      \
  (4 * ((DL_ABOGUS_PREFIX_LEN + DL_ABOGUS_Y_LEN + (size_t)(env_len) + 1 + 2) / 3))
#define DL_ABOGUS_MAX 256 /* output buffer size that always suffices (env_len ≤ ENV_MAX) */
/* Bytes dl_abogus_append may add after the query (and its NUL): "&a_bogus=" and the value with
 * every character percent-encoded in the worst case. */
#define DL_ABOGUS_APPEND_MAX (1 + 8 + 3 * (DL_ABOGUS_MAX - 1))

/* The two custom Base64 alphabets of §9.2 (standard bit order). */
#define DL_ABOGUS_ALPHABET_UA "ckdp1h4ZKsUB80/Mfvw36XIgR25+WQAlEi7NLboqYTOPuzmFjJnryx9HVGDaStCe"
#define DL_ABOGUS_ALPHABET_OUT "Dkdpgh2ZmsQB80/MfvV36XI1R45-WUAlEixNLwoqYTOPuzKFjJnry79HbGcaStCe"

/* The constants of PROTOCOL §9.2; dl_abogus_params_default() fills H/J's values. */
typedef struct dl_abogus_params {
  uint32_t aid, page_id;
  uint32_t args[3];
  const char *env; /* E string, at most DL_ABOGUS_ENV_MAX bytes; not copied */
  uint16_t r[3];   /* prefix numbers, each < DL_ABOGUS_R_LIMIT; default 1234, 9876, 5555 */
} dl_abogus_params;

/* aid 6383, pageId 110624, args 0/1/14, H/J's 65-byte env string, r 1234/9876/5555. */
void dl_abogus_params_default(dl_abogus_params *p);

/* Signs the exact query string as sent (no leading '?', no a_bogus param) for a GET with an empty
 * body. p NULL means the defaults. user_agent: the User-Agent header of the same request.
 * t0_ms: Unix time in ms (for J's variant pass (uint32_t)t0_ms). Writes a NUL-terminated value
 * (DL_ABOGUS_ENCODED_LEN(strlen(env)) chars, 164 for the default env) to out.
 * Errors (out is "" when out_cap > 0):
 *   DL_EINVAL   NULL out / user_agent / env, NULL query with query_len > 0, a query that starts with
 *               '?' or already has an a_bogus parameter, r ≥ DL_ABOGUS_R_LIMIT, t0 > T0_MAX;
 *   DL_ELIMIT   query, UA or env over its limit, or out_cap too small for the value and its NUL;
 *   DL_ENOTFOUND OpenSSL offers no SM3; DL_ENOMEM an OpenSSL allocation failed. */
dl_err dl_abogus_sign(const dl_abogus_params *p, const char *query, size_t query_len,
                      const char *user_agent, uint64_t t0_ms, char *out, size_t out_cap);

/* Appends "&a_bogus=<value>" to the NUL-terminated url_query (a buffer of cap bytes), the value
 * percent-encoded as URLSearchParams / Go's url.QueryEscape would ('/'→%2F '='→%3D '+'→%2B).
 * An empty url_query gets "a_bogus=<value>" (no '&'). Room that always suffices:
 * strlen(url_query) + 1 + DL_ABOGUS_APPEND_MAX. Errors as dl_abogus_sign, plus DL_EINVAL when
 * url_query has no NUL within cap and DL_ELIMIT when the result does not fit (url_query is then
 * left unchanged). */
dl_err dl_abogus_append(const dl_abogus_params *p, char *url_query, size_t cap,
                        const char *user_agent, uint64_t t0_ms);

/* ---- the building blocks, for tests and for a verifier ---- */

/* What dl_abogus_sign computed on the way (the intermediate values of §9.2's worked example). */
typedef struct dl_abogus_trace {
  uint8_t h1[DL_ABOGUS_SM3_LEN];            /* SM3(SM3(query ‖ "cus")) */
  uint8_t h2[DL_ABOGUS_SM3_LEN];            /* SM3(SM3("" ‖ "cus")) */
  uint8_t h3[DL_ABOGUS_SM3_LEN];            /* SM3(T) */
  char ua_code[DL_ABOGUS_UA_CODE_MAX + 1];  /* T = Base64_A3(RC4(00 01 0E, UA)), no '=' */
  uint8_t y[DL_ABOGUS_Y_LEN];               /* the array Y */
  uint8_t checksum;                         /* C = XOR of Y */
  uint8_t prefix[DL_ABOGUS_PREFIX_LEN];     /* R */
} dl_abogus_trace;

/* dl_abogus_sign that also fills *trace (when not NULL and the signing succeeds). */
dl_err dl_abogus_sign_trace(const dl_abogus_params *p, const char *query, size_t query_len,
                            const char *user_agent, uint64_t t0_ms, char *out, size_t out_cap,
                            dl_abogus_trace *trace);

/* SM3 (GB/T 32905) of n bytes. DL_ENOTFOUND when OpenSSL offers no SM3, DL_ENOMEM. */
dl_err dl_abogus_sm3(const void *data, size_t n, uint8_t out[DL_ABOGUS_SM3_LEN]);


#endif
