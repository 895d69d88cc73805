/* Signer vectors of PROTOCOL §2.3–2.4 and the URL/stub agreement. */
#include <stdio.h>
#include <string.h>

#include "dl_sign.h"

static int failures;
#define CHECK_STR(a, b)                                                                        \
  do {                                                                                         \
    const char *a_ = (a), *b_ = (b);                                                           \
    if (strcmp(a_, b_)) {                                                                      \
      fprintf(stderr, "%s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, a_, b_); \
      failures++;                                                                              \
    }                                                                                          \
  } while (0)

int main(void) {
  char sig[DL_SIGN_LEN + 1], stub[33];
  dl_sign_with("704f436b2558b0d7a1c7e758527dd8f1", 1, 1, 63, 63, sig);
  CHECK_STR(sig, "6pt0VC0aRZDP7n07");
  dl_sign_with("704f436b2558b0d7a1c7e758527dd8f1", 0, 0, 0, 6, sig);
  CHECK_STR(sig, "fD+evFuzasjOC8Uu");
  dl_sign_stub("7392091211001140287", "7319483754668557238", stub);
  CHECK_STR(stub, "9b52de5b7772a58cf9bc09a17a06db92");

  char url[4096];
  size_t n = dl_wsurl_build(url, sizeof url, "wss://h.example/", "7392091211001140287", "7319483754668557238",
                            "Mozilla/5.0 (X11) Chrome/1", NULL, NULL, "ab+/cd", 1700000000000);
  if (!n || !strstr(url, "wss://h.example/webcast/im/push/v2/?app_name=douyin_web&") ||
      !strstr(url, "&browser_version=5.0%20(X11)%20Chrome/1&") || !strstr(url, "&room_id=7392091211001140287&") ||
      !strstr(url, "&user_unique_id=7319483754668557238&") || strcmp(url + n - 17, "&signature=ab+/cd")) {
    fprintf(stderr, "bad url: %s\n", url);
    failures++;
  }
  if (dl_wsurl_build(url, 64, "wss://h", "1", "2", "ua", NULL, NULL, "", 0) != 0) {
    fprintf(stderr, "small buffer must fail\n");
    failures++;
  }
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
