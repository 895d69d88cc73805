/* dl_abogus — see dl_abogus.h; the steps are numbered as in PROTOCOL §9.2. */
#include "dl_abogus.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "dl_b64.h"
#include "dl_query.h"
#include "dl_rc4.h"

_Static_assert(DL_ABOGUS_ENCODED_LEN(DL_ABOGUS_ENV_MAX) + 1 <= DL_ABOGUS_MAX,
               "the longest env must still fit DL_ABOGUS_MAX");
_Static_assert(DL_ABOGUS_ENV_MAX <= 0xFFFF, "the env length travels as 16 bits (Y[40..41])");

/* H/J's env string: innerW|innerH|outerW|outerH|screenX|screenY|0|0|availW|availH|…|platform. */
static const char default_env[] =
    "1920|1080|1920|1040|0|30|0|0|1872|92|1920|1040|1857|92|1|24|Win32";

/* Salt appended to the query and to the body before hashing (steps 1–2). */
static const char hash_salt[] = "cus";
/* RC4 key of the UA (step 3): [1/256, 1, 14] in the JS, and String.fromCharCode(1/256) is 0. */
static const uint8_t ua_key[] = {0x00, 0x01, 0x0E};
/* RC4 key of the payload (step 8): the string "y". */
static const uint8_t payload_key[] = {'y'};
/* The option pairs (o0, o1) of the three prefix groups (step 9), as H, J, TD and the JS. */
static const uint8_t prefix_options[3][2] = {{3, 45}, {1, 0}, {1, 5}};
/* t1 = t0 + 100 (step 4, H and J). */
#define T1_OFFSET_MS 100

/* Where each byte of Y comes from (the table of §9.2). A number source gives
 * (value >> arg) & 0xFF; a digest source gives digest[arg]; Y_CONST gives arg itself. The numbers
 * come first (Y_NUMBERS of them), then the digests. */
enum y_source { Y_T0, Y_T1, Y_PAGE, Y_AID, Y_ARG0, Y_ARG1, Y_ARG2, Y_ENVLEN,
                Y_NUMBERS, Y_H1 = Y_NUMBERS, Y_H2, Y_H3, Y_CONST };
static const struct { uint8_t source, arg; } y_layout[DL_ABOGUS_Y_LEN] = {
    {Y_CONST, 44}, {Y_T0, 24},    {Y_PAGE, 24},  {Y_ARG0, 24},   {Y_ARG1, 8},   /*  0– 4 */
    {Y_ARG2, 24},  {Y_AID, 8},    {Y_H1, 21},    {Y_H2, 21},     {Y_PAGE, 16},  /*  5– 9 */
    {Y_H3, 23},    {Y_T0, 16},    {Y_ARG0, 16},  {Y_PAGE, 8},    {Y_PAGE, 0},   /* 10–14 */
    {Y_ARG1, 0},   {Y_ARG2, 16},  {Y_AID, 0},    {Y_H1, 22},     {Y_H2, 22},    /* 15–19 */
    {Y_H3, 24},    {Y_T0, 8},     {Y_ARG0, 8},   {Y_ARG1, 24},   {Y_AID, 24},   /* 20–24 */
    {Y_ARG2, 8},   {Y_T0, 0},     {Y_ARG0, 0},   {Y_ARG1, 16},   {Y_ARG2, 0},   /* 25–29 */
    {Y_T1, 24},    {Y_T1, 16},    {Y_AID, 16},   {Y_T1, 8},      {Y_T1, 0},     /* 30–34 */
    {Y_CONST, 3},  {Y_T1, 32},    {Y_T1, 40},    {Y_T0, 32},     {Y_T0, 40},    /* 35–39 */
    {Y_ENVLEN, 0}, {Y_ENVLEN, 8}, {Y_CONST, 0},  {Y_CONST, 0},                  /* 40–43 */
};

void dl_abogus_params_default(dl_abogus_params *p) {
  *p = (dl_abogus_params){.aid = 6383, .page_id = 110624, .args = {0, 1, 14},
                          .env = default_env, .r = {1234, 9876, 5555}};
}

/* One SM3 implementation fetched from OpenSSL and one digest context, for a whole signature. */
typedef struct sm3 {
  EVP_MD *md;
  EVP_MD_CTX *ctx;
} sm3;

static void sm3_close(sm3 *s) {
  EVP_MD_CTX_free(s->ctx);
  EVP_MD_free(s->md);
}

static dl_err sm3_open(sm3 *s) {
  /* a failed fetch queues OpenSSL errors on this thread; take them back out so that the HTTP and
   * TLS code sharing the thread does not see them */
  ERR_set_mark();
  s->md = EVP_MD_fetch(NULL, "SM3", NULL);
  s->ctx = s->md ? EVP_MD_CTX_new() : NULL;
  if (!s->ctx) {
    dl_err e = s->md ? DL_ENOMEM : DL_ENOTFOUND;
    sm3_close(s);
    ERR_pop_to_mark();
    return e;
  }
  ERR_clear_last_mark();
  return DL_EOK;
}

/* SM3(a ‖ b); either part may be empty. */
static dl_err sm3_concat(sm3 *s, const void *a, size_t an, const void *b, size_t bn,
                         uint8_t out[DL_ABOGUS_SM3_LEN]) {
  unsigned int len = 0;
  if (EVP_DigestInit_ex(s->ctx, s->md, NULL) != 1 ||
      (an && EVP_DigestUpdate(s->ctx, a, an) != 1) ||
      (bn && EVP_DigestUpdate(s->ctx, b, bn) != 1) ||
      EVP_DigestFinal_ex(s->ctx, out, &len) != 1 || len != DL_ABOGUS_SM3_LEN)
    return DL_ENOMEM; /* with a fetched, working md only an allocation can fail here */
  return DL_EOK;
}

/* SM3(SM3(data ‖ "cus")): h1 of the query, h2 of the body (steps 1–2). */
static dl_err sm3_salted_twice(sm3 *s, const void *data, size_t n,
                               uint8_t out[DL_ABOGUS_SM3_LEN]) {
  uint8_t inner[DL_ABOGUS_SM3_LEN];
  dl_err e = sm3_concat(s, data, n, hash_salt, sizeof hash_salt - 1, inner);
  return e ? e : sm3_concat(s, inner, sizeof inner, NULL, 0, out);
}

dl_err dl_abogus_sm3(const void *data, size_t n, uint8_t out[DL_ABOGUS_SM3_LEN]) {
  sm3 s;
  dl_err e = sm3_open(&s);
  if (e) return e;
  e = sm3_concat(&s, data, n, NULL, 0, out);
  sm3_close(&s);
  return e;
}

/* Steps 1–3: h1, h2, T and h3 into tr. */
static dl_err hash_inputs(const char *query, size_t query_len, const char *ua, size_t ua_len,
                          dl_abogus_trace *tr) {
  uint8_t ua_bytes[DL_ABOGUS_UA_MAX];
  memcpy(ua_bytes, ua, ua_len);
  dl_rc4(ua_key, sizeof ua_key, ua_bytes, ua_len);
  /* H and J: no '=' padding in T */
  size_t t_len = dl_b64_encode_alphabet(ua_bytes, ua_len, DL_ABOGUS_ALPHABET_UA, 0, tr->ua_code);

  sm3 s;
  dl_err e = sm3_open(&s);
  if (e) return e;
  e = sm3_salted_twice(&s, query, query_len, tr->h1);
  if (!e) e = sm3_salted_twice(&s, NULL, 0, tr->h2); /* a GET: the body is empty */
  if (!e) e = sm3_concat(&s, tr->ua_code, t_len, NULL, 0, tr->h3);
  sm3_close(&s);
  return e;
}

/* Steps 5–6: Y and its checksum. */
static void build_array(const dl_abogus_params *p, uint64_t t0, size_t env_len,
                        dl_abogus_trace *tr) {
  const uint64_t numbers[Y_NUMBERS] = {
      [Y_T0] = t0, [Y_T1] = t0 + T1_OFFSET_MS, [Y_PAGE] = p->page_id, [Y_AID] = p->aid,
      [Y_ARG0] = p->args[0], [Y_ARG1] = p->args[1], [Y_ARG2] = p->args[2], [Y_ENVLEN] = env_len,
  };
  const uint8_t *digests[] = {tr->h1, tr->h2, tr->h3}; /* Y_H1, Y_H2, Y_H3 */
  uint8_t sum = 0;
  for (size_t i = 0; i < DL_ABOGUS_Y_LEN; i++) {
    unsigned src = y_layout[i].source, arg = y_layout[i].arg;
    if (src == Y_CONST)
      tr->y[i] = (uint8_t)arg;
    else if (src >= Y_H1)
      tr->y[i] = digests[src - Y_H1][arg];
    else
      tr->y[i] = (uint8_t)(numbers[src] >> arg);
    sum ^= tr->y[i];
  }
  tr->checksum = sum;
}

/* Step 9: one 4-byte group of R from r and its option pair. */
static void prefix_group(uint16_t r, const uint8_t opt[2], uint8_t g[4]) {
  uint8_t lo = (uint8_t)(r & 0xFF), hi = (uint8_t)(r >> 8);
  g[0] = (uint8_t)((lo & 0xAA) | (opt[0] & 0x55));
  g[1] = (uint8_t)((lo & 0x55) | (opt[0] & 0xAA));
  g[2] = (uint8_t)((hi & 0xAA) | (opt[1] & 0x55));
  g[3] = (uint8_t)((hi & 0x55) | (opt[1] & 0xAA));
}

/* 1 when the query already carries an a_bogus parameter (signed twice, or signed with it). */
static int has_abogus_param(const char *q, size_t n) {
  static const char name[] = "a_bogus";
  const size_t nl = sizeof name - 1;
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && q[i - 1] != '&') continue;
    if (n - i >= nl && memcmp(q + i, name, nl) == 0 &&
        (i + nl == n || q[i + nl] == '=' || q[i + nl] == '&'))
      return 1;
  }
  return 0;
}

dl_err dl_abogus_sign_trace(const dl_abogus_params *p, const char *query, size_t query_len,
                            const char *user_agent, uint64_t t0_ms, char *out, size_t out_cap,
                            dl_abogus_trace *trace) {
  dl_abogus_params defaults;
  if (out && out_cap) out[0] = '\0';
  if (!p) {
    dl_abogus_params_default(&defaults);
    p = &defaults;
  }
  if (!out || !user_agent || !p->env || (!query && query_len)) return DL_EINVAL;
  if (query_len > DL_ABOGUS_QUERY_MAX) return DL_ELIMIT;
  size_t ua_len = strnlen(user_agent, DL_ABOGUS_UA_MAX + 1);
  size_t env_len = strnlen(p->env, DL_ABOGUS_ENV_MAX + 1);
  if (ua_len > DL_ABOGUS_UA_MAX || env_len > DL_ABOGUS_ENV_MAX) return DL_ELIMIT;
  if ((query_len && query[0] == '?') || has_abogus_param(query, query_len)) return DL_EINVAL;
  for (size_t k = 0; k < 3; k++)
    if (p->r[k] >= DL_ABOGUS_R_LIMIT) return DL_EINVAL;
  if (t0_ms > DL_ABOGUS_T0_MAX) return DL_EINVAL;
  if (out_cap < DL_ABOGUS_ENCODED_LEN(env_len) + 1) return DL_ELIMIT;

  dl_abogus_trace tr;
  dl_err e = hash_inputs(query, query_len, user_agent, ua_len, &tr);
  if (e) return e;
  build_array(p, t0_ms, env_len, &tr);

  /* R ‖ RC4("y", Y ‖ E ‖ C) (steps 7–9) */
  uint8_t raw[DL_ABOGUS_PREFIX_LEN + DL_ABOGUS_Y_LEN + DL_ABOGUS_ENV_MAX + 1];
  for (size_t k = 0; k < 3; k++) prefix_group(p->r[k], prefix_options[k], tr.prefix + 4 * k);
  uint8_t *payload = raw + DL_ABOGUS_PREFIX_LEN;
  size_t payload_len = DL_ABOGUS_Y_LEN + env_len + 1;
  memcpy(raw, tr.prefix, DL_ABOGUS_PREFIX_LEN);
  memcpy(payload, tr.y, DL_ABOGUS_Y_LEN);
  memcpy(payload + DL_ABOGUS_Y_LEN, p->env, env_len);
  payload[payload_len - 1] = tr.checksum;
  dl_rc4(payload_key, sizeof payload_key, payload, payload_len);

  /* step 10: Base64_A4 padded with '=' to a multiple of 4 */
  dl_b64_encode_alphabet(raw, DL_ABOGUS_PREFIX_LEN + payload_len, DL_ABOGUS_ALPHABET_OUT, 1, out);
  if (trace) *trace = tr;
  return DL_EOK;
}

dl_err dl_abogus_sign(const dl_abogus_params *p, const char *query, size_t query_len,
                      const char *user_agent, uint64_t t0_ms, char *out, size_t out_cap) {
  return dl_abogus_sign_trace(p, query, query_len, user_agent, t0_ms, out, out_cap, NULL);
}

dl_err dl_abogus_append(const dl_abogus_params *p, char *url_query, size_t cap,
                        const char *user_agent, uint64_t t0_ms) {
  if (!url_query || cap == 0) return DL_EINVAL;
  size_t qlen = strnlen(url_query, cap);
  if (qlen == cap) return DL_EINVAL; /* not a string within its buffer */
  char value[DL_ABOGUS_MAX];
  dl_err e = dl_abogus_sign(p, url_query, qlen, user_agent, t0_ms, value, sizeof value);
  if (e) return e;
  /* URLSearchParams' encoding ('/'→%2F '='→%3D '+'→%2B; J's url.QueryEscape agrees on every
   * character an a_bogus can hold) */
  return dl_query_add(url_query, cap, &qlen, "a_bogus", value);
}
