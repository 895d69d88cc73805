/* dylive-sim: checking an a_bogus query signature ("cus" family, PROTOCOL §9.2 "Checking one").
 * The sim's own verifier; it shares no code with the worker's signer. */
#ifndef DYLIVE_SIM_ABOGUS_H
#define DYLIVE_SIM_ABOGUS_H

#include <stddef.h>
#include <stdint.h>

/* an a_bogus value longer than this (percent-decoded) is refused without decoding it; Douyin's are 164 */
#define SIM_AB_MAX_CHARS 1024
/* t0 must be within this much of the sim's clock, either way */
#define SIM_AB_MAX_SKEW_MS (5 * 60 * 1000)

enum {
  SIM_AB_OK = 0,
  SIM_AB_DECODE,   /* too long, a character outside alphabet A4, or a bad base64 length/padding */
  SIM_AB_SHORT,    /* fewer than 12 + 44 bytes */
  SIM_AB_LENGTH,   /* the decrypted length is not 44 + len(E) + 1 */
  SIM_AB_CONST,    /* byte 0 != 44 or byte 35 != 3 */
  SIM_AB_AID,      /* aid != 6383 */
  SIM_AB_ARGS,     /* args != 0, 1, 14 */
  SIM_AB_CHECKSUM, /* the XOR of the 44 bytes does not match */
  SIM_AB_QUERY,    /* h1 bytes: signed for another query */
  SIM_AB_BODY,     /* h2 bytes: neither "" nor "GET" */
  SIM_AB_UA,       /* h3 bytes: signed for another User-Agent */
  SIM_AB_TIME,     /* t0 more than SIM_AB_MAX_SKEW_MS from the clock */
  SIM_AB_NREASONS
};

/* 0 if SM3 can be computed (OpenSSL's EVP "SM3"), -1 if not. */
int sim_ab_init(void);

/* Checks the percent-decoded a_bogus value ab[0..abn) against the signed query q[0..qn) (the raw
 * query as received, without '?' and without the a_bogus parameter), the request's User-Agent
 * (NULL = none) and the clock now_ms. Returns SIM_AB_OK or the first failed check, with a
 * human-readable detail. */
int sim_ab_verify(const char *ab, size_t abn, const char *q, size_t qn, const char *ua, int64_t now_ms, char *detail,
                  size_t dn);

/* A short stable key for the verdict ("ok", "decode", "short", "length", "const", "aid", "args",
 * "checksum", "query", "body", "ua", "time"). */
const char *sim_ab_reason(int code);

#endif
