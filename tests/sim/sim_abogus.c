/* dylive-sim: a_bogus verifier (PROTOCOL §9.2 "Checking one"). See sim_abogus.h. */
#include "sim_abogus.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "sim_util.h"

#define AB_PREFIX 12 /* random prefix R: three 4-byte groups; nothing in it is checked */
#define AB_Y 44      /* the array Y */
#define AB_AID 6383
#define SM3_LEN 32

static const char A3[] = "ckdp1h4ZKsUB80/Mfvw36XIgR25+WQAlEi7NLboqYTOPuzmFjJnryx9HVGDaStCe"; /* for the UA */
static const char A4[] = "Dkdpgh2ZmsQB80/MfvV36XI1R45-WUAlEixNLwoqYTOPuzKFjJnry79HbGcaStCe"; /* for the output */

static EVP_MD *sm3_md;

int sim_ab_init(void) {
  if (!sm3_md) sm3_md = EVP_MD_fetch(NULL, "SM3", NULL);
  return sm3_md ? 0 : -1;
}

/* SM3(a ‖ b) */
static int sm3_2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[SM3_LEN]) {
  if (sim_ab_init() < 0) return -1;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned ol = 0;
  int ok = ctx && EVP_DigestInit_ex(ctx, sm3_md, NULL) && EVP_DigestUpdate(ctx, a, an) &&
           EVP_DigestUpdate(ctx, b, bn) && EVP_DigestFinal_ex(ctx, out, &ol) && ol == SM3_LEN;
  EVP_MD_CTX_free(ctx);
  return ok ? 0 : -1;
}

/* SM3(SM3(s ‖ "cus")): h1 (query) and h2 (body) */
static int sm3_cus2(const char *s, size_t n, uint8_t out[SM3_LEN]) {
  uint8_t d[SM3_LEN];
  if (sm3_2(s, n, "cus", 3, d) < 0) return -1;
  return sm3_2(d, SM3_LEN, "", 0, out);
}

/* h3 = SM3(Base64_A3(RC4(key 00 01 0E, UA))), with or without '=' padding of the text */
static int ua_hash(const char *ua, int pad, uint8_t out[SM3_LEN]) {
  static const uint8_t key[3] = {0, 1, 14};
  size_t n = strlen(ua);
  sbuf_t enc = {0}, t = {0};
  sb_reserve(&enc, n + 1);
  sim_rc4(key, sizeof key, (const uint8_t *)ua, enc.p, n);
  sim_b64_encode(A3, enc.p, n, pad, &t);
  int rc = sm3_2(t.p ? t.p : (const uint8_t *)"", t.len, "", 0, out);
  sb_free(&enc);
  sb_free(&t);
  return rc;
}

/* a 32-bit value spread over four positions of Y (bits 31..24, 23..16, 15..8, 7..0) */
static uint32_t spread32(const uint8_t *y, int i24, int i16, int i8, int i0) {
  return (uint32_t)y[i24] << 24 | (uint32_t)y[i16] << 16 | (uint32_t)y[i8] << 8 | y[i0];
}

static int fail(int code, char *detail, size_t dn, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(int code, char *detail, size_t dn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, dn, fmt, ap);
  va_end(ap);
  return code;
}

int sim_ab_verify(const char *ab, size_t abn, const char *q, size_t qn, const char *ua, int64_t now_ms, char *detail,
                  size_t dn) {
  detail[0] = 0;
  if (abn > SIM_AB_MAX_CHARS) return fail(SIM_AB_DECODE, detail, dn, "%zu characters (at most %d)", abn, SIM_AB_MAX_CHARS);
  /* padding: '=' up to a multiple of 4 (F2, RS, TD) or exactly one '=' (H, J) */
  size_t n = abn;
  while (n && abn - n < 2 && ab[n - 1] == '=') n--;
  size_t pad = abn - n;
  if (pad != (4 - n % 4) % 4 && pad != 1)
    return fail(SIM_AB_DECODE, detail, dn, "%zu '=' after %zu characters (one, or up to a multiple of 4)", pad, n);
  uint8_t raw[SIM_AB_MAX_CHARS];
  size_t rn = 0;
  if (sim_b64_decode(A4, ab, n, raw, sizeof raw, &rn) < 0)
    return fail(SIM_AB_DECODE, detail, dn, "not Base64 of alphabet A4 (a character outside it, or a bad length)");
  if (rn < AB_PREFIX + AB_Y) return fail(SIM_AB_SHORT, detail, dn, "%zu bytes decoded, fewer than %d", rn, AB_PREFIX + AB_Y);
  uint8_t *p = raw + AB_PREFIX;
  size_t pn = rn - AB_PREFIX;
  sim_rc4((const uint8_t *)"y", 1, p, p, pn);
  size_t elen = (size_t)p[40] | (size_t)p[41] << 8;
  if (pn != AB_Y + elen + 1)
    return fail(SIM_AB_LENGTH, detail, dn, "%zu bytes after the prefix, expected 44 + %zu + 1", pn, elen);
  if (p[0] != 44 || p[35] != 3) return fail(SIM_AB_CONST, detail, dn, "byte 0 = %u, byte 35 = %u (44, 3 expected)", p[0], p[35]);
  uint32_t aid = spread32(p, 24, 32, 6, 17);
  if (aid != AB_AID) return fail(SIM_AB_AID, detail, dn, "aid %u, expected %d", aid, AB_AID);
  uint32_t a0 = spread32(p, 3, 12, 22, 27), a1 = spread32(p, 23, 28, 4, 15), a2 = spread32(p, 5, 16, 25, 29);
  if (a0 != 0 || a1 != 1 || a2 != 14) return fail(SIM_AB_ARGS, detail, dn, "args %u,%u,%u, expected 0,1,14", a0, a1, a2);
  uint8_t x = 0;
  for (int i = 0; i < AB_Y; i++) x ^= p[i];
  if (x != p[AB_Y + elen]) return fail(SIM_AB_CHECKSUM, detail, dn, "checksum %02x, computed %02x", p[AB_Y + elen], x);

  uint8_t h[SM3_LEN], h_get[SM3_LEN], h_pad[SM3_LEN];
  if (sm3_cus2(q, qn, h) < 0) return fail(SIM_AB_QUERY, detail, dn, "SM3 unavailable");
  if (p[7] != h[21] || p[18] != h[22])
    return fail(SIM_AB_QUERY, detail, dn, "h1 bytes %02x %02x, the %zu-byte query gives %02x %02x", p[7], p[18], qn, h[21],
                h[22]);
  if (sm3_cus2("", 0, h) < 0 || sm3_cus2("GET", 3, h_get) < 0) return fail(SIM_AB_BODY, detail, dn, "SM3 unavailable");
  if (!(p[8] == h[21] && p[19] == h[22]) && !(p[8] == h_get[21] && p[19] == h_get[22]))
    return fail(SIM_AB_BODY, detail, dn, "h2 bytes %02x %02x, \"\" gives %02x %02x and \"GET\" %02x %02x", p[8], p[19],
                h[21], h[22], h_get[21], h_get[22]);
  if (!ua) ua = "";
  if (ua_hash(ua, 0, h) < 0 || ua_hash(ua, 1, h_pad) < 0) return fail(SIM_AB_UA, detail, dn, "SM3 unavailable");
  if (!(p[10] == h[23] && p[20] == h[24]) && !(p[10] == h_pad[23] && p[20] == h_pad[24]))
    return fail(SIM_AB_UA, detail, dn, "h3 bytes %02x %02x, the %zu-byte User-Agent gives %02x %02x", p[10], p[20],
                strlen(ua), h[23], h[24]);

  /* t0: bits 47..40 in byte 39, 39..32 in 38, the low 32 bits spread over 1, 11, 21, 26 */
  uint32_t lo = spread32(p, 1, 11, 21, 26);
  bool t32 = !p[36] && !p[37] && !p[38] && !p[39]; /* J truncates t0 (and so t1) to 32 bits */
  int64_t diff;
  if (t32) {
    diff = (int64_t)(int32_t)(lo - (uint32_t)now_ms);
  } else {
    int64_t t0 = (int64_t)p[39] << 40 | (int64_t)p[38] << 32 | (int64_t)lo;
    diff = t0 - now_ms;
  }
  if (diff > SIM_AB_MAX_SKEW_MS || diff < -SIM_AB_MAX_SKEW_MS)
    return fail(SIM_AB_TIME, detail, dn, "t0 is %lld ms %s the sim clock %lld%s", (long long)(diff < 0 ? -diff : diff),
                diff < 0 ? "behind" : "ahead of", (long long)now_ms, t32 ? " (32-bit t0)" : "");
  snprintf(detail, dn, "ok%s", t32 ? " (32-bit t0)" : "");
  return SIM_AB_OK;
}

const char *sim_ab_reason(int code) {
  static const char *const k[SIM_AB_NREASONS] = {"ok",     "decode",   "short", "length", "const", "aid",
                                                 "args",   "checksum", "query", "body",   "ua",    "time"};
  return code >= 0 && code < SIM_AB_NREASONS ? k[code] : "?";
}
