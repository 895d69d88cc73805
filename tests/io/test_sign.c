/* Signer vectors of PROTOCOL §2.3–2.4 and the URL/stub agreement. */
#include <stdio.h>
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
  ASSERT_EQ_STR(stub, "9b52de5b7772a58cf9bc09a17a06db92");
  return 0;
}

static int test_url(void) {
  char url[4096];
  size_t n = dl_wsurl_build(url, sizeof url, "wss://h.example/", "7392091211001140287", "7319483754668557238",
                            "Mozilla/5.0 (X11) Chrome/1", NULL, NULL, "ab+/cd", 1700000000000);
  ASSERT_TRUE(n > 0);
  ASSERT_TRUE(strstr(url, "wss://h.example/webcast/im/push/v2/?app_name=douyin_web&") != NULL);
  ASSERT_TRUE(strstr(url, "&browser_version=5.0%20(X11)%20Chrome/1&") != NULL);
  ASSERT_TRUE(strstr(url, "&room_id=7392091211001140287&") != NULL);
  ASSERT_TRUE(strstr(url, "&user_unique_id=7319483754668557238&") != NULL);
  ASSERT_EQ_STR(url + n - 17, "&signature=ab+/cd"); /* last, with '+' and '/' raw */
  ASSERT_TRUE(dl_wsurl_build(url, 64, "wss://h", "1", "2", "ua", NULL, NULL, "", 0) == 0);
  return 0;
}

int main(void) {
  int failures = test_vectors() + test_url();
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
