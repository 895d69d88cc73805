/* Pure parsers of the I/O side: the live page, the web/enter JSON (its shapes; the real capture is
 * test_douyin2026.c's), assignments, proxy selection, the token bucket, the queue (the spool:
 * tests/unit/test_core.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dl_bucket.h"
#include "dl_page.h"
#include "dl_proxy.h"
#include "dl_queue.h"
#include "dl_test.h"
#include "dl_xsign.h"



/* web/enter answers other than the real capture (that one: test_douyin2026 test_enter_markers). */
static int test_enter_shapes(void) {
  dl_page_info p;
  ASSERT_TRUE(dl_enter_parse("", 0, &p) == DL_EEMPTY);
  ASSERT_TRUE(dl_enter_parse("  \n", 3, &p) == DL_EEMPTY);
  ASSERT_TRUE(dl_enter_parse("<html>", 6, &p) == DL_EPROTO);
  const char *err = "{\"status_code\":30003,\"data\":{}}"; /* live ended (B): ended, not "not found" */
  ASSERT_TRUE(dl_enter_parse(err, strlen(err), &p) == DL_EOK);
  ASSERT_TRUE(p.status == 4 && !dl_page_is_live(&p));
  const char *ended = "{\"status_code\":0,\"data\":{\"room_status\":2,\"data\":[],\"user\":{\"nickname\":\"A\"}}}";
  ASSERT_TRUE(dl_enter_parse(ended, strlen(ended), &p) == DL_EOK);
  ASSERT_TRUE(p.status == 4 && !dl_page_is_live(&p));
  return 0;
}

static int test_page_shapes(void) {
  dl_page_info p;
  /* escaped JSON inside a script push, as the real page carries it */
  const char *a = "<script>self.__pace_f.push([1,\"{\\\"state\\\":{\\\"roomStore\\\":{\\\"roomInfo\\\":{\\\"room\\\":"
                  "{\\\"id_str\\\":\\\"7392091211001140287\\\",\\\"status\\\":2,\\\"title\\\":\\\"t\\\",\\\"owner\\\":"
                  "{\\\"nickname\\\":\\\"n\\\"}}}}},\\\"user_unique_id\\\":\\\"7319483754668557238\\\"}\"])</script>";
  ASSERT_TRUE(dl_page_parse(a, strlen(a), &p) == DL_EOK);
  ASSERT_EQ_STR(p.room_id, "7392091211001140287");
  ASSERT_TRUE(p.status == 2);
  ASSERT_EQ_STR(p.anchor, "n");
  ASSERT_EQ_STR(p.user_unique_id, "7319483754668557238");
  const char *b = "x \"id_str\":\"7392091211001140287\", \"status\": 4, \"status_str\":\"4\" 直播已结束";
  ASSERT_TRUE(dl_page_parse(b, strlen(b), &p) == DL_EOK);
  ASSERT_TRUE(p.status == 4 && !dl_page_is_live(&p));
  const char *c = "window.x = 'room_id=7392091211001140287&y'";
  ASSERT_TRUE(dl_page_parse(c, strlen(c), &p) == DL_EOK);
  ASSERT_EQ_STR(p.room_id, "7392091211001140287");
  const char *d = "<html><script>var challenge = 1;</script></html>";
  ASSERT_TRUE(dl_page_parse(d, strlen(d), &p) == DL_ECHALLENGE);
  return 0;
}

static int test_assignments(void) {
  char id[64], prof[72];
  ASSERT_TRUE(dl_assignment_parse("261378947940", 12, id, sizeof id, prof, sizeof prof, NULL) == 0);
  ASSERT_EQ_STR(id, "261378947940");
  ASSERT_EQ_STR(prof, "");
  const char *u = "https://live.douyin.com/261378947940?enter_from=share";
  ASSERT_TRUE(dl_assignment_parse(u, strlen(u), id, sizeof id, prof, sizeof prof, NULL) == 0);
  ASSERT_EQ_STR(id, "261378947940");
  const char *j = "{\"live_id\": \"261378947940\", \"cookie\": \"shop-1\"}";
  ASSERT_TRUE(dl_assignment_parse(j, strlen(j), id, sizeof id, prof, sizeof prof, NULL) == 0);
  ASSERT_EQ_STR(prof, "shop-1");
  const char *bad[] = {"", "abc", "{\"live_id\":\"x\"}", "{\"live_id\":\"1\",\"cookie\":\"../etc\"}", "{", "12 34",
                       "https://live.douyin.com/abc"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ASSERT_TRUE(dl_assignment_parse(bad[i], strlen(bad[i]), id, sizeof id, prof, sizeof prof, NULL) != 0);
  char big[DL_ASSIGNMENT_MAX + 10];
  memset(big, '1', sizeof big);
  ASSERT_TRUE(dl_assignment_parse(big, sizeof big, id, sizeof id, prof, sizeof prof, NULL) != 0);
  return 0;
}

static int test_proxy(void) {
  char out[256];
  unsetenv("https_proxy"), unsetenv("HTTPS_PROXY"), unsetenv("http_proxy"), unsetenv("HTTP_PROXY");
  unsetenv("all_proxy"), unsetenv("ALL_PROXY"), unsetenv("no_proxy"), unsetenv("NO_PROXY");
  dl_proxy_for("wss://a.douyin.com", "", out, sizeof out);
  ASSERT_EQ_STR(out, "");
  setenv("https_proxy", "http://p:1", 1);
  setenv("http_proxy", "http://q:2", 1);
  dl_proxy_for("wss://a.douyin.com/x", "", out, sizeof out);
  ASSERT_EQ_STR(out, "http://p:1");
  dl_proxy_for("ws://127.0.0.1:9/x", "", out, sizeof out);
  ASSERT_EQ_STR(out, "http://q:2");
  setenv("no_proxy", "localhost, .douyin.com", 1);
  dl_proxy_for("https://live.douyin.com", "", out, sizeof out);
  ASSERT_EQ_STR(out, "");
  dl_proxy_for("https://notdouyin.com", "", out, sizeof out);
  ASSERT_EQ_STR(out, "http://p:1");
  dl_proxy_for("https://live.douyin.com", "http://x:3", out, sizeof out);
  ASSERT_EQ_STR(out, "http://x:3");
  dl_proxy_for("https://other.com", "none", out, sizeof out);
  ASSERT_EQ_STR(out, "");
  ASSERT_TRUE(dl_proxy_is_socks("socks5h://h:1") && !dl_proxy_is_socks("http://h:1"));
  setenv("https_proxy", "proxy.corp:3128", 1); /* no scheme: an HTTP proxy, as curl reads it */
  dl_proxy_for("https://other.com", "", out, sizeof out);
  ASSERT_EQ_STR(out, "http://proxy.corp:3128");
  return 0;
}

static int test_bucket(void) {
  dl_bucket b;
  dl_bucket_init(&b, 10, 2, 1000);
  ASSERT_TRUE(dl_bucket_take(&b, 1000) == 0);
  ASSERT_TRUE(dl_bucket_take(&b, 1000) == 0);
  int64_t w = dl_bucket_take(&b, 1000);
  ASSERT_TRUE(w > 90 && w <= 101);
  ASSERT_TRUE(dl_bucket_take(&b, 1100) == 0);
  return 0;
}

static int test_xsign_parse(void) {
  char out[160];
  ASSERT_TRUE(dl_xsign_parse("6pt0VC0aRZDP7n07\n", 17, out, sizeof out) == 0);
  ASSERT_EQ_STR(out, "6pt0VC0aRZDP7n07");
  const char *j = "{\"signature\": \"fD+evFuzasjOC8Uu\"}";
  ASSERT_TRUE(dl_xsign_parse(j, strlen(j), out, sizeof out) == 0);
  ASSERT_EQ_STR(out, "fD+evFuzasjOC8Uu");
  const char *d = "{\"data\": {\"signature\": \"abc/def=\"}}";
  ASSERT_TRUE(dl_xsign_parse(d, strlen(d), out, sizeof out) == 0);
  ASSERT_EQ_STR(out, "abc/def=");
  const char *bad[] = {"", "  ", "has space", "<html>", "{\"sig\":\"x\"}", "{\"signature\": 5}", "a&b=c"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) ASSERT_TRUE(dl_xsign_parse(bad[i], strlen(bad[i]), out, sizeof out) != 0);
  return 0;
}

static int test_queue(void) {
  dl_queue *q = dl_queue_new(2, 1);
  int a, b, c, d, empty = 0;
  ASSERT_TRUE(dl_queue_push(q, &a, &empty) == DL_EOK && empty);
  ASSERT_TRUE(dl_queue_push(q, &b, &empty) == DL_EOK && !empty);
  ASSERT_TRUE(dl_queue_push(q, &c, NULL) == DL_EFULL);          /* the bound holds */
  ASSERT_TRUE(dl_queue_push_reserved(q, &c, NULL) == DL_EOK);   /* state messages still go in */
  ASSERT_TRUE(dl_queue_push_reserved(q, &d, NULL) == DL_EFULL); /* and the reserve is bounded */
  void *out[4];
  ASSERT_TRUE(dl_queue_pop(q, out, 4) == 3 && out[0] == &a && out[1] == &b && out[2] == &c);
  ASSERT_TRUE(dl_queue_push(q, &d, NULL) == DL_EOK);
  ASSERT_TRUE(dl_queue_pop_wait(q, out, 4) == 1 && out[0] == &d);
  ASSERT_TRUE(dl_queue_wait_closed(q, 5) == 0);
  /* the whole timeout, measured on the monotonic clock the wait uses (a wall-clock step back
   * would have stretched a CLOCK_REALTIME deadline by the step) */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ASSERT_TRUE(dl_queue_wait_closed(q, 60) == 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int64_t took = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  ASSERT_TRUE(took >= 59 && took < 5000);
  dl_queue_close(q);
  ASSERT_TRUE(dl_queue_wait_closed(q, 1000) == 1);
  ASSERT_TRUE(dl_queue_pop_wait(q, out, 4) == 0); /* never blocks once closed */
  dl_queue_free(q, NULL);
  return 0;
}

int main(void) {
  int failures = test_queue() + test_xsign_parse() + test_enter_shapes() +
                 test_page_shapes() + test_assignments() + test_proxy() + test_bucket();
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
