/* dylive-sim: small shared helpers (growable buffer, protobuf walker, gzip). */
#ifndef DYLIVE_SIM_UTIL_H
#define DYLIVE_SIM_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t *p;
  size_t len;
  size_t cap;
} sbuf_t;

void sb_reserve(sbuf_t *b, size_t extra);
void sb_add(sbuf_t *b, const void *d, size_t n);
void sb_adds(sbuf_t *b, const char *s);
void sb_addf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_add_json_str(sbuf_t *b, const char *s, size_t n); /* "..." with JSON escaping */
void sb_free(sbuf_t *b);

/* protobuf writer */
void pb_put_varint(sbuf_t *b, uint64_t v);
void pb_put_tag(sbuf_t *b, uint32_t field, uint32_t wt);
void pb_put_uint(sbuf_t *b, uint32_t field, uint64_t v);
void pb_put_bytes(sbuf_t *b, uint32_t field, const void *d, size_t n);

/* protobuf reader: one field at a time */
typedef struct {
  const uint8_t *p;
  const uint8_t *end;
} pbr_t;

typedef struct {
  uint32_t field;
  uint32_t wt;
  uint64_t v;         /* wt 0, 1, 5 */
  const uint8_t *d;   /* wt 2 */
  size_t len;         /* wt 2 */
} pbf_t;

/* returns 1 = got a field, 0 = clean end, -1 = malformed */
int pb_next(pbr_t *r, pbf_t *f);

/* gunzip (gzip or zlib header auto-detected); returns 0 ok; out must be freed; limit bounds output */
int sim_gunzip(const uint8_t *in, size_t n, size_t limit, uint8_t **out, size_t *outlen);
/* gzip; returns 0 ok */
int sim_gzip(const uint8_t *in, size_t n, sbuf_t *out);

/* ---- building blocks of Douyin's signatures (PROTOCOL §2.4, §9.2) */

/* RC4 (textbook KSA + PRGA) of in[0..n) with key[0..klen) into out (may equal in); klen >= 1 */
void sim_rc4(const uint8_t *key, size_t klen, const uint8_t *in, uint8_t *out, size_t n);

/* Base64 with a custom 64-character alphabet and the standard bit order (3 bytes -> 4 characters,
 * high bits first; a final 1 or 2 bytes give 2 or 3 characters, the missing bits zero).
 * Encode appends to out, with '=' up to a multiple of 4 when pad is set.
 * Decode takes s[0..n) without padding; it fails (-1) on a character outside the alphabet, a
 * length of 4k+1, non-zero leftover bits, or more than cap output bytes. */
void sim_b64_encode(const char *alpha, const uint8_t *in, size_t n, int pad, sbuf_t *out);
int sim_b64_decode(const char *alpha, const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen);

/* ---- WebSocket signature (PROTOCOL §2.3-2.4) */

/* lower-case hex md5 of s into hex[33] */
void sim_md5_hex(const char *s, char hex[33]);

enum {
  SIM_SIG_OK = 0,
  SIM_SIG_LEN,   /* not 16 characters */
  SIM_SIG_CHAR,  /* a character outside the custom alphabet */
  SIM_SIG_FLAG,  /* byte 0 lacks 0x40 */
  SIM_SIG_CONST, /* p[1..3] != 0,1,14 */
  SIM_SIG_EMPTY, /* p[4..5] != md5(md5(""))[14..15] */
  SIM_SIG_STUB,  /* p[6..7] != md5(stub)[14..15]: signed for another room/uid/sdk */
  SIM_SIG_XOR,   /* p[9] != XOR(p[0..8]) */
};

/* Checks a frontierSign signature (16 chars, custom base64 alphabet) against the X-MS-STUB
 * (32 lower/upper hex chars). Returns SIM_SIG_OK or the first failed check. */
int sim_sig_verify(const char *stub_hex, const char *sig);
const char *sim_sig_why(int code);

#endif
