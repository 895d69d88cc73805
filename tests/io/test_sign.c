/* Signer vectors of PROTOCOL §2.3–2.4 and the URL/stub agreement. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_sign.h"
#include "dl_test.h"

static int test_vectors(void) {
  char sig[DL_SIGN_LEN + 1], stub[33];
  ASSERT_TRUE(dl_sign_with("704f436b2558b0d7a1c7e758527dd8f1", 1, 1, 63, 63, sig) == 0);
  ASSERT_EQ_STR(sig, "6pt0VC0aRZDP7n07");
  ASSERT_TRUE(dl_sign_with("704f436b2558b0d7a1c7e758527dd8f1", 0, 0, 0, 6, sig) == 0);
  ASSERT_EQ_STR(sig, "fD+evFuzasjOC8Uu");
  ASSERT_TRUE(dl_sign_with("not hex", 1, 1, 1, 1, sig) != 0);
  dl_sign_stub("7392091211001140287", "7319483754668557238", stub);
  /* PROTOCOL §2.3's worked example is for sdk 1.0.14-beta.0 (9b52de5b…); the same 13 fields with
   * 1.0.15 (§9.4), md5 computed independently with Python's hashlib: */
  ASSERT_EQ_STR(stub, "62496b59f6352a53ee60467505cf66e8");
  return 0;
}

/* A standard query parser (WHATWG URLSearchParams / Go url.ParseQuery): pairs split at '&', name
 * and value at the first '=', '+' is a space, %XX a byte. Writes the decoded value of name into
 * out; returns 1 when the name is there. Independent of dl_query on purpose. */
static int std_query_get(const char *url, const char *name, char *out, size_t cap) {
  const char *q = strchr(url, '?');
  q = q ? q + 1 : url;
  while (*q) {
    size_t plen = strcspn(q, "&");
    char dec[2][4096];
    size_t dl[2] = {0, 0};
    int part = 0;
    for (size_t i = 0; i < plen; i++) {
      char c = q[i];
      if (c == '=' && part == 0) {
        part = 1;
        continue;
      }
      if (c == '+') c = ' ';
      else if (c == '%' && i + 2 < plen && isxdigit((unsigned char)q[i + 1]) && isxdigit((unsigned char)q[i + 2])) {
        char h[3] = {q[i + 1], q[i + 2], 0};
        c = (char)strtol(h, NULL, 16);
        i += 2;
      }
      if (dl[part] + 1 < sizeof dec[part]) dec[part][dl[part]++] = c;
    }
    dec[0][dl[0]] = dec[1][dl[1]] = 0;
    if (!strcmp(dec[0], name)) {
      size_t k = dl[1] < cap ? dl[1] : cap - 1;
      memcpy(out, dec[1], k);
      out[k] = 0;
      return 1;
    }
    q += plen;
    if (*q == '&') q++;
  }
  return 0;
}

static int test_url(void) {
  char url[4096], v[1024];
  const char *ua = "Mozilla/5.0 (X11; Linux) Chrome/1 中文";
  const char *ext = "internal_src:pushserver|first_req_ms:1776121349832|wrds_v:7628383189286783439&x=y+z";
  size_t n = dl_wsurl_build(url, sizeof url, "wss://h.example/", "7392091211001140287", "7319483754668557238", ua,
                            "t-1_r-2=3", ext, "ab+/cd==", 1700000000000);
  ASSERT_TRUE(n > 0);
  ASSERT_EQ_U64(n, strlen(url));
  ASSERT_TRUE(strstr(url, "wss://h.example/webcast/im/push/v2/?app_name=douyin_web&") != NULL);
  ASSERT_TRUE(strstr(url, "&webcast_sdk_version=1.0.15&update_version_code=1.0.15&") != NULL);
  ASSERT_TRUE(strstr(url, "&room_id=7392091211001140287&") != NULL);
  ASSERT_TRUE(strstr(url, "&user_unique_id=7319483754668557238&") != NULL);
  ASSERT_EQ_STR(url + n - 27, "&signature=ab%2B%2Fcd%3D%3D"); /* last, '+' '/' '=' encoded */
  ASSERT_TRUE(strchr(url, '+') == NULL);    /* nothing a standard parser would read as a space */
  ASSERT_TRUE(strchr(url, ' ') == NULL);
  /* every value reads back exactly through a standard parser */
  ASSERT_TRUE(std_query_get(url, "signature", v, sizeof v));
  ASSERT_EQ_STR(v, "ab+/cd==");
  ASSERT_TRUE(std_query_get(url, "browser_version", v, sizeof v));
  ASSERT_EQ_STR(v, ua + 8);
  ASSERT_TRUE(std_query_get(url, "internal_ext", v, sizeof v));
  ASSERT_EQ_STR(v, ext);
  ASSERT_TRUE(std_query_get(url, "cursor", v, sizeof v));
  ASSERT_EQ_STR(v, "t-1_r-2=3");
  ASSERT_TRUE(std_query_get(url, "host", v, sizeof v));
  ASSERT_EQ_STR(v, "https://live.douyin.com");
  ASSERT_TRUE(std_query_get(url, "x", v, sizeof v) == 0); /* the '&' inside internal_ext stayed inside */
  ASSERT_TRUE(dl_wsurl_build(url, 64, "wss://h", "1", "2", "ua", NULL, NULL, "", 0) == 0);
  return 0;
}

/* Real signatures (a fifth of them hold a '+'): each one, and the stub recomputed from the URL's
 * own fields, survive a standard parser; the stub carries the URL's sdk version. */
static int test_signatures_round_trip(void) {
  dl_signer s;
  dl_signer_init(&s, 12345);
  int with_plus = 0, with_slash = 0;
  for (int i = 0; i < 2000; i++) {
    char room[32], uid[32], stub[33], sig[DL_SIGN_LEN + 1], url[4096], v[256], v2[256];
    snprintf(room, sizeof room, "73920912110011%05d", i);
    snprintf(uid, sizeof uid, "73194837546685%05d", 99999 - i);
    dl_sign_stub(room, uid, stub);
    ASSERT_TRUE(dl_signer_sign(&s, stub, sig) == 0);
    with_plus += strchr(sig, '+') != NULL;
    with_slash += strchr(sig, '/') != NULL;
    ASSERT_TRUE(dl_wsurl_build(url, sizeof url, "ws://127.0.0.1:1", room, uid, "Mozilla/5.0 (X)", NULL, NULL, sig,
                               1700000000000 + i) > 0);
    ASSERT_TRUE(std_query_get(url, "signature", v, sizeof v));
    ASSERT_EQ_STR(v, sig);
    ASSERT_TRUE(std_query_get(url, "room_id", v, sizeof v) && std_query_get(url, "user_unique_id", v2, sizeof v2));
    char again[33];
    dl_sign_stub(v, v2, again);
    ASSERT_EQ_STR(again, stub);
    ASSERT_TRUE(std_query_get(url, "webcast_sdk_version", v, sizeof v));
    ASSERT_EQ_STR(v, DL_SDK_VERSION);
  }
  ASSERT_TRUE(with_plus > 100 && with_slash > 100); /* the test exercised both */
  return 0;
}

int main(void) {
  int failures = test_vectors() + test_url() + test_signatures_round_trip();
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
