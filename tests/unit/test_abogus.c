/* a_bogus signer (PROTOCOL §9.2): the building blocks against published vectors, the worked
 * example of §9.2 byte for byte, the limits, and a round trip through a verifier written here from
 * §9.2 "Checking one" (it decodes with its own Base64_A4 decoder, hashes with OpenSSL directly and
 * reads Y back with its own field map). */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dl_abogus.h"
#include "dl_rc4.h"
#include "dl_b64.h"
#include "dl_test.h"

/* ---- inputs and intermediate values of the worked example (PROTOCOL §9.2) ---- */

static const char ex_query[] =
    "aid=6383&app_name=douyin_web&live_id=1&device_platform=web&language=zh-CN&enter_from="
    "link_share&cookie_enabled=true&screen_width=1920&screen_height=1080&browser_language=zh-CN&"
    "browser_platform=Win32&browser_name=Chrome&browser_version=136.0.0.0&os_name=Windows&"
    "os_version=10&web_rid=261378947940&room_id_str=7392091211001140287&enter_source=&"
    "is_need_double_stream=false&insert_task_id=&live_reason=&msToken=";
static const char ex_ua[] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
                            "like Gecko) Chrome/136.0.0.0 Safari/537.36";
#define EX_T0 UINT64_C(1760000000000)
static const char ex_h1[] = "6e454d9efb26370ec7f4de8ea0441917292fc6f618848e70944ee818504aa38e";
static const char ex_h2[] = "886572933a4dcfc9d7a29a5df80d8ea06949d7f1533a332bff26a88dd8c223ec";
static const char ex_h3[] = "33233c6cc49399552390c87c3d73428cb14b32a19b1fe358d46cbb9ce098bedb";
static const char ex_t[] =
    "bR56e5eL1UWJZzLu+6p1oDtQ29cgAb+TqM+cEkfgro0MGletrmWdcYYS0tdOVdAxW1mO4pTXAIg2R06ZAA//vWBxF+"
    "MHrBa+oFq++HVAC2aYAkWr+zMKqDgUf6/LhIzAPgdxAQZRLNys24865urS";
static const char ex_y[] = "2cc80000000018843a01582c00b02001"
                           "00ef8e33d4c0000000000000000ec82c"
                           "00c064039901990141000000";
static const char ex_prefix[] = "8352052c81142204a3110515";
static const char ex_abogus[] =
    "E7mhBmg6mEVNgf6X56nLfY3q6-Z3Ylsl0HViMD2fCn3M0L39HMYD9exo1HUveKWji4/sIeYjy4hbO3xprQAjM36UHW"
    "wEUdQ2mgWkKl5Q5I0j53iruyRDntmF4vj3SFlm5XNAEOk0y75rKb70Woqe-vIlO62-zo0/94D=";
/* J's 32-bit t0: only characters 65–70 (1-based) change, to these */
static const char ex_abogus_j_span[] = "ZsmfIF";
#define EX_J_SPAN_AT 64 /* 0-based */

/* The alphabets and option pairs as §9.2 writes them (the verifier's own copies). */
static const char spec_a3[] = "ckdp1h4ZKsUB80/Mfvw36XIgR25+WQAlEi7NLboqYTOPuzmFjJnryx9HVGDaStCe";
static const char spec_a4[] = "Dkdpgh2ZmsQB80/MfvV36XI1R45-WUAlEixNLwoqYTOPuzKFjJnry79HbGcaStCe";
static const uint8_t spec_options[3][2] = {{3, 45}, {1, 0}, {1, 5}};

static size_t from_hex(const char *hex, uint8_t *out, size_t cap) {
  size_t n = strlen(hex) / 2;
  for (size_t i = 0; i < n && i < cap; i++) {
    unsigned v = 0;
    sscanf(hex + 2 * i, "%2x", &v);
    out[i] = (uint8_t)v;
  }
  return n;
}

/* SM3 straight from OpenSSL, not through the module. */
static void ref_sm3(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32]) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, EVP_sm3(), NULL);
  EVP_DigestUpdate(c, a, an);
  EVP_DigestUpdate(c, b, bn);
  EVP_DigestFinal_ex(c, out, NULL);
  EVP_MD_CTX_free(c);
}

static void ref_sm3_salted_twice(const void *data, size_t n, uint8_t out[32]) {
  uint8_t inner[32];
  ref_sm3(data, n, "cus", 3, inner);
  ref_sm3(inner, sizeof inner, "", 0, out);
}

/* ---- the verifier ---- */

/* Base64_A4 decode of a '='-padded string; returns the byte count, or -1 when malformed. */
static long decode_a4(const char *s, uint8_t *out, size_t cap) {
  size_t len = strlen(s), n = 0;
  if (len % 4) return -1;
  for (size_t i = 0; i < len; i += 4) {
    uint32_t v = 0;
    int chars = 0;
    for (int k = 0; k < 4; k++) {
      char c = s[i + k];
      const char *at = c && c != '=' ? strchr(spec_a4, c) : NULL;
      if (c == '=' && i + 4 == len && k >= 2) continue; /* padding, last group only */
      if (!at || chars != k) return -1;
      v |= (uint32_t)(at - spec_a4) << (18 - 6 * k);
      chars++;
    }
    if (chars < 2 || n + (size_t)chars - 1 > cap) return -1;
    for (int k = 0; k < chars - 1; k++) out[n++] = (uint8_t)(v >> (16 - 8 * k));
  }
  return (long)n;
}

static uint64_t be_bytes(const uint8_t *y, const int *pos, int count) {
  uint64_t v = 0;
  for (int i = 0; i < count; i++) v = v << 8 | y[pos[i]];
  return v;
}

/* Checks value against the request as §9.2 "Checking one" says. 0 = it checks out; otherwise the
 * number of the first check that failed. */
enum { V_OK, V_DECODE, V_PREFIX, V_LENGTH, V_ENV, V_CONSTANTS, V_PARAMS, V_TIME, V_CHECKSUM,
       V_QUERY, V_BODY, V_UA };
static int verify(const char *value, const dl_abogus_params *p, const char *query,
                  size_t query_len, const char *ua, uint64_t t0) {
  uint8_t raw[DL_ABOGUS_MAX];
  long n = decode_a4(value, raw, sizeof raw);
  if (n < DL_ABOGUS_PREFIX_LEN + DL_ABOGUS_Y_LEN + 1) return V_DECODE;
  for (int k = 0; k < 3; k++) { /* the option bits, and r read back */
    const uint8_t *g = raw + 4 * k, *o = spec_options[k];
    if ((g[0] & 0x55) != (o[0] & 0x55) || (g[1] & 0xAA) != (o[0] & 0xAA) ||
        (g[2] & 0x55) != (o[1] & 0x55) || (g[3] & 0xAA) != (o[1] & 0xAA))
      return V_PREFIX;
    unsigned r = (unsigned)((g[0] & 0xAA) | (g[1] & 0x55)) |
                 (unsigned)((g[2] & 0xAA) | (g[3] & 0x55)) << 8;
    if (r != p->r[k]) return V_PREFIX;
  }
  uint8_t *y = raw + DL_ABOGUS_PREFIX_LEN;
  size_t plen = (size_t)n - DL_ABOGUS_PREFIX_LEN;
  dl_rc4((const uint8_t *)"y", 1, y, plen);
  size_t env_len = (size_t)y[40] | (size_t)y[41] << 8;
  if (plen != DL_ABOGUS_Y_LEN + env_len + 1) return V_LENGTH;
  if (strlen(p->env) != env_len || memcmp(y + DL_ABOGUS_Y_LEN, p->env, env_len) != 0)
    return V_ENV;
  if (y[0] != 44 || y[35] != 3 || y[42] != 0 || y[43] != 0) return V_CONSTANTS;

  static const int aid_at[] = {24, 32, 6, 17}, page_at[] = {2, 9, 13, 14};
  static const int args_at[3][4] = {{3, 12, 22, 27}, {23, 28, 4, 15}, {5, 16, 25, 29}};
  if (be_bytes(y, aid_at, 4) != p->aid || be_bytes(y, page_at, 4) != p->page_id) return V_PARAMS;
  for (int k = 0; k < 3; k++)
    if (be_bytes(y, args_at[k], 4) != p->args[k]) return V_PARAMS;
  static const int t0_at[] = {39, 38, 1, 11, 21, 26}, t1_at[] = {37, 36, 30, 31, 33, 34};
  if (be_bytes(y, t0_at, 6) != t0 || be_bytes(y, t1_at, 6) != t0 + 100) return V_TIME;

  uint8_t sum = 0;
  for (int i = 0; i < DL_ABOGUS_Y_LEN; i++) sum ^= y[i];
  if (sum != y[plen - 1]) return V_CHECKSUM;

  uint8_t h[32];
  ref_sm3_salted_twice(query, query_len, h);
  if (y[7] != h[21] || y[18] != h[22]) return V_QUERY;
  ref_sm3_salted_twice("", 0, h);
  if (y[8] != h[21] || y[19] != h[22]) return V_BODY;
  size_t ua_len = strlen(ua);
  uint8_t *ua_rc4 = malloc(ua_len + 1);
  char *t = malloc(dl_b64_encoded_len(ua_len) + 1);
  memcpy(ua_rc4, ua, ua_len);
  dl_rc4((const uint8_t[]){0, 1, 14}, 3, ua_rc4, ua_len);
  size_t t_len = dl_b64_encode_alphabet(ua_rc4, ua_len, spec_a3, 0, t);
  ref_sm3(t, t_len, "", 0, h);
  free(ua_rc4);
  free(t);
  if (y[10] != h[23] || y[20] != h[24]) return V_UA;
  return V_OK;
}

/* ---- cases ---- */

int test_abogus_sm3(void) {
  static const struct { const char *in, *hex; } v[] = {
      {"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"},
      /* GB/T 32905 example 2: 64 bytes, two blocks after padding */
      {"abcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcd",
       "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t got[DL_ABOGUS_SM3_LEN], want[DL_ABOGUS_SM3_LEN];
    ASSERT_EQ_ERR(dl_abogus_sm3(v[i].in, strlen(v[i].in), got), DL_EOK);
    ASSERT_EQ_U64(from_hex(v[i].hex, want, sizeof want), DL_ABOGUS_SM3_LEN);
    ASSERT_EQ_MEM(got, want, DL_ABOGUS_SM3_LEN);
  }
  return 0;
}

int test_abogus_rc4(void) {
  /* the classic published RC4 vectors (key, plaintext, ciphertext) */
  static const struct { const char *key, *plain, *hex; } v[] = {
      {"Key", "Plaintext", "bbf316e8d940af0ad3"},
      {"Wiki", "pedia", "1021bf0420"},
      {"Secret", "Attack at dawn", "45a01f645fc35b383552544b9bf5"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t buf[32], want[32];
    size_t n = strlen(v[i].plain);
    memcpy(buf, v[i].plain, n);
    dl_rc4((const uint8_t *)v[i].key, strlen(v[i].key), buf, n);
    ASSERT_EQ_U64(from_hex(v[i].hex, want, sizeof want), n);
    ASSERT_EQ_MEM(buf, want, n);
    dl_rc4((const uint8_t *)v[i].key, strlen(v[i].key), buf, n); /* its own inverse */
    ASSERT_EQ_MEM(buf, v[i].plain, n);
  }
  return 0;
}

int test_abogus_base64_tails(void) {
  ASSERT_EQ_STR(DL_ABOGUS_ALPHABET_UA, spec_a3);
  ASSERT_EQ_STR(DL_ABOGUS_ALPHABET_OUT, spec_a4);
  /* expected strings worked out by hand from §9.2's bit order: a final group of 1 or 2 bytes
   * gives 2 or 3 characters, missing bits zero; A3 unpadded (T), A4 padded (the output) */
  static const struct { const char *hex, *a3, *a4; } v[] = {
      {"ff", "ej", "ej=="},
      {"ff00", "ejc", "ejD="},
      {"00010e", "cc1/", "DDg/"},
      {"00010e80", "cc1/Ec", "DDg/ED=="},
      {"123456789a", "1NvIAsY", "gNvIAsY="},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t in[8];
    char out[16];
    size_t n = from_hex(v[i].hex, in, sizeof in);
    ASSERT_EQ_U64(dl_b64_encode_alphabet(in, n, DL_ABOGUS_ALPHABET_UA, 0, out), strlen(v[i].a3));
    ASSERT_EQ_STR(out, v[i].a3);
    ASSERT_EQ_U64(dl_b64_encode_alphabet(in, n, DL_ABOGUS_ALPHABET_OUT, 1, out), strlen(v[i].a4));
    ASSERT_EQ_STR(out, v[i].a4);
  }
  /* a UA whose length is not a multiple of 3 gives an unpadded T, and h3 = SM3(T) */
  for (size_t ua_len = 1; ua_len <= 3; ua_len++) {
    static const char ua[] = "UA!";
    char ua_n[4] = {0}, sig[DL_ABOGUS_MAX];
    memcpy(ua_n, ua, ua_len);
    dl_abogus_trace tr;
    ASSERT_EQ_ERR(dl_abogus_sign_trace(NULL, "a=1", 3, ua_n, EX_T0, sig, sizeof sig, &tr),
                  DL_EOK);
    ASSERT_EQ_U64(strlen(tr.ua_code), ua_len + 1);
    ASSERT_TRUE(strchr(tr.ua_code, '=') == NULL);
    uint8_t h3[32];
    ref_sm3(tr.ua_code, strlen(tr.ua_code), "", 0, h3);
    ASSERT_EQ_MEM(tr.h3, h3, 32);
  }
  return 0;
}

int test_abogus_worked_example(void) {
  ASSERT_EQ_U64(sizeof ex_query - 1, 407);
  ASSERT_EQ_U64(sizeof ex_ua - 1, 111);
  dl_abogus_params p;
  dl_abogus_params_default(&p);
  ASSERT_EQ_U64(p.aid, 6383);
  ASSERT_EQ_U64(p.page_id, 110624);
  ASSERT_EQ_U64(strlen(p.env), 65);
  char sig[DL_ABOGUS_MAX];
  dl_abogus_trace tr;
  ASSERT_EQ_ERR(dl_abogus_sign_trace(&p, ex_query, sizeof ex_query - 1, ex_ua, EX_T0, sig,
                                     sizeof sig, &tr),
                DL_EOK);
  uint8_t want[64];
  from_hex(ex_h1, want, sizeof want);
  ASSERT_EQ_MEM(tr.h1, want, 32);
  ASSERT_EQ_U64(tr.h1[21], 0x84);
  ASSERT_EQ_U64(tr.h1[22], 0x8e);
  from_hex(ex_h2, want, sizeof want);
  ASSERT_EQ_MEM(tr.h2, want, 32);
  ASSERT_EQ_U64(tr.h2[21], 0x3a);
  ASSERT_EQ_U64(tr.h2[22], 0x33);
  ASSERT_EQ_STR(tr.ua_code, ex_t);
  ASSERT_EQ_U64(strlen(tr.ua_code), 148);
  from_hex(ex_h3, want, sizeof want);
  ASSERT_EQ_MEM(tr.h3, want, 32);
  ASSERT_EQ_U64(tr.h3[23], 0x58);
  ASSERT_EQ_U64(tr.h3[24], 0xd4);
  ASSERT_EQ_U64(from_hex(ex_y, want, sizeof want), DL_ABOGUS_Y_LEN);
  ASSERT_EQ_MEM(tr.y, want, DL_ABOGUS_Y_LEN);
  ASSERT_EQ_U64(tr.checksum, 0xec);
  ASSERT_EQ_U64(from_hex(ex_prefix, want, sizeof want), DL_ABOGUS_PREFIX_LEN);
  ASSERT_EQ_MEM(tr.prefix, want, DL_ABOGUS_PREFIX_LEN);
  ASSERT_EQ_STR(sig, ex_abogus);
  ASSERT_EQ_U64(strlen(sig), 164);
  ASSERT_EQ_U64(DL_ABOGUS_ENCODED_LEN(65), 164);

  /* dl_abogus_sign and the NULL params gives the same; the verifier accepts it */
  char again[DL_ABOGUS_MAX];
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, ex_query, sizeof ex_query - 1, ex_ua, EX_T0, again,
                               sizeof again),
                DL_EOK);
  ASSERT_EQ_STR(again, ex_abogus);
  ASSERT_EQ_I64(verify(sig, &p, ex_query, sizeof ex_query - 1, ex_ua, EX_T0), V_OK);
  return 0;
}

int test_abogus_j_32bit_t0(void) {
  char full[DL_ABOGUS_MAX], j[DL_ABOGUS_MAX], want[sizeof ex_abogus];
  uint64_t t0_j = (uint32_t)EX_T0;
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, ex_query, sizeof ex_query - 1, ex_ua, EX_T0, full,
                               sizeof full),
                DL_EOK);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, ex_query, sizeof ex_query - 1, ex_ua, t0_j, j, sizeof j),
                DL_EOK);
  memcpy(want, ex_abogus, sizeof want);
  memcpy(want + EX_J_SPAN_AT, ex_abogus_j_span, sizeof ex_abogus_j_span - 1);
  ASSERT_EQ_STR(j, want);
  ASSERT_EQ_U64(strlen(j), strlen(full));
  size_t first = SIZE_MAX, last = 0;
  for (size_t i = 0; full[i]; i++)
    if (full[i] != j[i]) {
      if (first == SIZE_MAX) first = i;
      last = i;
    }
  ASSERT_EQ_U64(first + 1, 65); /* 1-based */
  ASSERT_EQ_U64(last + 1, 70);
  dl_abogus_params p;
  dl_abogus_params_default(&p);
  ASSERT_EQ_I64(verify(j, &p, ex_query, sizeof ex_query - 1, ex_ua, t0_j), V_OK);
  ASSERT_EQ_I64(verify(j, &p, ex_query, sizeof ex_query - 1, ex_ua, EX_T0), V_TIME);
  return 0;
}

int test_abogus_limits(void) {
  char sig[DL_ABOGUS_MAX];
  size_t big = DL_ABOGUS_QUERY_MAX + DL_ABOGUS_UA_MAX + 2;
  char *s = malloc(big);
  ASSERT_TRUE(s != NULL);
  memset(s, 'q', big - 1);
  s[big - 1] = '\0';
  /* query: the limit itself passes, one more byte is refused */
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, s, DL_ABOGUS_QUERY_MAX, ex_ua, EX_T0, sig, sizeof sig),
                DL_EOK);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, s, DL_ABOGUS_QUERY_MAX + 1, ex_ua, EX_T0, sig, sizeof sig),
                DL_ELIMIT);
  ASSERT_EQ_STR(sig, "");
  /* UA */
  s[DL_ABOGUS_UA_MAX] = '\0';
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, "a=1", 3, s, EX_T0, sig, sizeof sig), DL_EOK);
  s[DL_ABOGUS_UA_MAX] = 'q';
  s[DL_ABOGUS_UA_MAX + 1] = '\0';
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, "a=1", 3, s, EX_T0, sig, sizeof sig), DL_ELIMIT);
  /* env: the longest passes, fits DL_ABOGUS_MAX and travels whole; one more is refused */
  dl_abogus_params p;
  dl_abogus_params_default(&p);
  memset(s, 'e', DL_ABOGUS_ENV_MAX);
  s[DL_ABOGUS_ENV_MAX] = '\0';
  p.env = s;
  ASSERT_EQ_ERR(dl_abogus_sign(&p, "a=1", 3, ex_ua, EX_T0, sig, sizeof sig), DL_EOK);
  ASSERT_EQ_U64(strlen(sig), DL_ABOGUS_ENCODED_LEN(DL_ABOGUS_ENV_MAX));
  ASSERT_LE_U64(strlen(sig) + 1, DL_ABOGUS_MAX);
  ASSERT_EQ_I64(verify(sig, &p, "a=1", 3, ex_ua, EX_T0), V_OK);
  s[DL_ABOGUS_ENV_MAX] = 'e';
  s[DL_ABOGUS_ENV_MAX + 1] = '\0';
  ASSERT_EQ_ERR(dl_abogus_sign(&p, "a=1", 3, ex_ua, EX_T0, sig, sizeof sig), DL_ELIMIT);
  free(s);

  /* out of range or malformed arguments */
  dl_abogus_params_default(&p);
  p.r[1] = DL_ABOGUS_R_LIMIT;
  ASSERT_EQ_ERR(dl_abogus_sign(&p, "a=1", 3, ex_ua, EX_T0, sig, sizeof sig), DL_EINVAL);
  p.r[1] = DL_ABOGUS_R_LIMIT - 1;
  ASSERT_EQ_ERR(dl_abogus_sign(&p, "a=1", 3, ex_ua, EX_T0, sig, sizeof sig), DL_EOK);
  p.env = NULL;
  ASSERT_EQ_ERR(dl_abogus_sign(&p, "a=1", 3, ex_ua, EX_T0, sig, sizeof sig), DL_EINVAL);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, "a=1", 3, ex_ua, DL_ABOGUS_T0_MAX, sig, sizeof sig), DL_EOK);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, "a=1", 3, ex_ua, DL_ABOGUS_T0_MAX + 1, sig, sizeof sig),
                DL_EINVAL);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, NULL, 1, ex_ua, EX_T0, sig, sizeof sig), DL_EINVAL);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, "a=1", 3, NULL, EX_T0, sig, sizeof sig), DL_EINVAL);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, "a=1", 3, ex_ua, EX_T0, NULL, sizeof sig), DL_EINVAL);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, "?a=1", 4, ex_ua, EX_T0, sig, sizeof sig), DL_EINVAL);
  static const char *const signed_already[] = {"a_bogus=x", "a=1&a_bogus=x", "a=1&a_bogus",
                                               "a_bogus&b=2"};
  for (size_t i = 0; i < sizeof signed_already / sizeof signed_already[0]; i++)
    ASSERT_EQ_ERR(dl_abogus_sign(NULL, signed_already[i], strlen(signed_already[i]), ex_ua, EX_T0,
                                 sig, sizeof sig),
                  DL_EINVAL);
  static const char *const not_it[] = {"xa_bogus=1", "a=a_bogus", "a_bogusx=1", ""};
  for (size_t i = 0; i < sizeof not_it / sizeof not_it[0]; i++)
    ASSERT_EQ_ERR(dl_abogus_sign(NULL, not_it[i], strlen(not_it[i]), ex_ua, EX_T0, sig,
                                 sizeof sig),
                  DL_EOK);
  return 0;
}

int test_abogus_out_too_small(void) {
  char sig[DL_ABOGUS_MAX];
  memset(sig, 'x', sizeof sig);
  /* 164 characters need 165 bytes */
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, ex_query, sizeof ex_query - 1, ex_ua, EX_T0, sig, 164),
                DL_ELIMIT);
  ASSERT_EQ_U64(sig[0], '\0');
  ASSERT_EQ_U64(sig[1], 'x'); /* nothing else written */
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, ex_query, sizeof ex_query - 1, ex_ua, EX_T0, sig, 0),
                DL_ELIMIT);
  ASSERT_EQ_ERR(dl_abogus_sign(NULL, ex_query, sizeof ex_query - 1, ex_ua, EX_T0, sig, 165),
                DL_EOK);
  ASSERT_EQ_STR(sig, ex_abogus);

  /* append: the exact room passes, one byte less is refused and leaves the query as it was */
  char url[sizeof ex_query + DL_ABOGUS_APPEND_MAX];
  memcpy(url, ex_query, sizeof ex_query);
  /* '/' ×2 and '=' ×1 in the example value become three characters each */
  size_t need = sizeof ex_query + strlen("&a_bogus=") + 164 + 2 * 3;
  ASSERT_EQ_ERR(dl_abogus_append(NULL, url, need - 1, ex_ua, EX_T0), DL_ELIMIT);
  ASSERT_EQ_STR(url, ex_query);
  ASSERT_EQ_ERR(dl_abogus_append(NULL, url, need, ex_ua, EX_T0), DL_EOK);
  ASSERT_EQ_U64(strlen(url) + 1, need);
  /* a buffer without a NUL is refused */
  char unterminated[4] = {'a', '=', '1', '2'};
  ASSERT_EQ_ERR(dl_abogus_append(NULL, unterminated, sizeof unterminated, ex_ua, EX_T0),
                DL_EINVAL);
  return 0;
}

/* Percent-decodes src into dst (for the append check). */
static void percent_decode(const char *src, char *dst) {
  while (*src) {
    unsigned v;
    if (*src == '%' && sscanf(src + 1, "%2x", &v) == 1) {
      *dst++ = (char)v;
      src += 3;
    } else {
      *dst++ = *src++;
    }
  }
  *dst = '\0';
}

int test_abogus_append(void) {
  char url[sizeof ex_query + DL_ABOGUS_APPEND_MAX];
  memcpy(url, ex_query, sizeof ex_query);
  ASSERT_EQ_ERR(dl_abogus_append(NULL, url, sizeof url, ex_ua, EX_T0), DL_EOK);
  ASSERT_EQ_MEM(url, ex_query, sizeof ex_query - 1);
  const char *tail = url + sizeof ex_query - 1;
  ASSERT_EQ_U64(strncmp(tail, "&a_bogus=", 9), 0);
  const char *escaped = tail + 9;
  ASSERT_TRUE(strpbrk(escaped, "/=+&") == NULL);
  ASSERT_TRUE(strstr(escaped, "%2F") != NULL); /* the example value has '/' and '=' */
  ASSERT_EQ_U64(strcmp(escaped + strlen(escaped) - 3, "%3D"), 0);
  char value[DL_ABOGUS_MAX];
  percent_decode(escaped, value);
  ASSERT_EQ_STR(value, ex_abogus);
  /* appending again would sign a query that already has a_bogus */
  ASSERT_EQ_ERR(dl_abogus_append(NULL, url, sizeof url, ex_ua, EX_T0), DL_EINVAL);

  /* an empty query gets no '&' */
  char empty[DL_ABOGUS_APPEND_MAX + 1] = "";
  ASSERT_EQ_ERR(dl_abogus_append(NULL, empty, sizeof empty, ex_ua, EX_T0), DL_EOK);
  ASSERT_EQ_U64(strncmp(empty, "a_bogus=", 8), 0);
  percent_decode(empty + 8, value);
  dl_abogus_params p;
  dl_abogus_params_default(&p);
  ASSERT_EQ_I64(verify(value, &p, "", 0, ex_ua, EX_T0), V_OK);
  return 0;
}

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void random_string(uint64_t *rng, char *out, size_t n, const char *charset) {
  size_t k = strlen(charset);
  for (size_t i = 0; i < n; i++) out[i] = charset[xorshift(rng) % k];
  out[n] = '\0';
}

int test_abogus_round_trip(void) {
  /* no '?' and no '_', so a random query never starts with '?' nor carries "a_bogus" */
  static const char query_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                    "=&%-.~+*";
  static const char text_chars[] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                   "/();,.:_-|\xe4\xb8\xad";
  static char query[DL_ABOGUS_QUERY_MAX + 1], ua[DL_ABOGUS_UA_MAX + 1],
      env[DL_ABOGUS_ENV_MAX + 1];
  uint64_t rng = 0x9E3779B97F4A7C15u;
  for (int iter = 0; iter < 300; iter++) {
    size_t qlen = xorshift(&rng) % 1500, ualen = xorshift(&rng) % 400;
    random_string(&rng, query, qlen, query_chars);
    random_string(&rng, ua, ualen, text_chars);
    dl_abogus_params p;
    dl_abogus_params_default(&p);
    if (iter % 2) { /* half with other constants, an env of any length and other r */
      random_string(&rng, env, xorshift(&rng) % (DL_ABOGUS_ENV_MAX + 1), text_chars);
      p.env = env;
      p.aid = (uint32_t)xorshift(&rng);
      p.page_id = (uint32_t)xorshift(&rng);
      for (int k = 0; k < 3; k++) {
        p.args[k] = (uint32_t)xorshift(&rng);
        p.r[k] = (uint16_t)(xorshift(&rng) % DL_ABOGUS_R_LIMIT);
      }
    }
    uint64_t t0 = xorshift(&rng) % (DL_ABOGUS_T0_MAX + 1);
    char sig[DL_ABOGUS_MAX];
    ASSERT_EQ_ERR(dl_abogus_sign(&p, query, qlen, ua, t0, sig, sizeof sig), DL_EOK);
    ASSERT_EQ_U64(strlen(sig), DL_ABOGUS_ENCODED_LEN(strlen(p.env)));
    ASSERT_EQ_I64(verify(sig, &p, query, qlen, ua, t0), V_OK);
    /* and the verifier does refuse what does not belong to the request */
    if (qlen) {
      query[0] ^= 1;
      ASSERT_EQ_I64(verify(sig, &p, query, qlen, ua, t0), V_QUERY);
      query[0] ^= 1;
    }
    char other_ua[DL_ABOGUS_UA_MAX + 2];
    snprintf(other_ua, sizeof other_ua, "%s!", ua);
    ASSERT_EQ_I64(verify(sig, &p, query, qlen, other_ua, t0), V_UA);
    ASSERT_EQ_I64(verify(sig, &p, query, qlen, ua, t0 + 1), V_TIME);
    char bad[DL_ABOGUS_MAX];
    memcpy(bad, sig, sizeof bad);
    size_t at = 16 + xorshift(&rng) % 40; /* a character inside Y */
    bad[at] = bad[at] == 'D' ? 'k' : 'D';
    ASSERT_TRUE(verify(bad, &p, query, qlen, ua, t0) != V_OK);
  }
  return 0;
}
