/* Douyin 2026 pieces of the I/O side (PROTOCOL §9): web/enter end markers on the real capture
 * and hand-made variants, the page's finish_time, the proxy pool (parsing, credential redaction,
 * stickiness, set-aside and recovery, pins), assignment proxies, Handshake-Options, the
 * logged-in test of a Cookie header. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_ingest.h"
#include "dl_page.h"
#include "dl_proxypool.h"
#include "dl_resolve.h"
#include "dl_test.h"


/* The capture with one change: path "data.data.0.status" style, value a JSON literal; an empty
 * path changes status_code. Returns a malloc'd JSON text. */
static char *variant(const char *capture, const char *field, const char *json_value) {
  cJSON *o = cJSON_Parse(capture);
  if (!o) return NULL;
  cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
  cJSON *room = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(data, "data"), 0);
  cJSON *v = cJSON_Parse(json_value);
  if (!strcmp(field, "status_code")) cJSON_ReplaceItemInObjectCaseSensitive(o, "status_code", v);
  else if (!strcmp(field, "room_status")) cJSON_ReplaceItemInObjectCaseSensitive(data, "room_status", v);
  else if (!strcmp(field, "status")) cJSON_ReplaceItemInObjectCaseSensitive(room, "status", v);
  else if (!strcmp(field, "finish_time")) cJSON_AddItemToObject(room, "finish_time", v);
  else if (!strcmp(field, "no_status")) {
    cJSON_DeleteItemFromObjectCaseSensitive(room, "status");
    cJSON_DeleteItemFromObjectCaseSensitive(data, "room_status");
    cJSON_Delete(v);
  }
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static int test_enter_markers(const char *captures) {
  char path[1024];
  snprintf(path, sizeof path, "%s/web_enter_response_2026-04-19_live.json", captures);
  size_t len;
  char *cap = dl_test_slurp(path, &len);
  ASSERT_TRUE(cap != NULL); /* returns on failure */
  dl_page_info p;
  /* the real answer: live, room id, title, anchor, no end marker */
  ASSERT_TRUE(dl_enter_parse(cap, len, &p) == DL_EOK);
  ASSERT_EQ_STR(p.room_id, "7630361251285076745");
  ASSERT_TRUE(p.status == 2 && dl_page_is_live(&p));
  ASSERT_EQ_STR(p.ended_by, "");
  ASSERT_EQ_STR(p.title, "内格夫强势打法，把把虐");
  ASSERT_EQ_STR(p.anchor, "内格夫教主Duck");
  struct {
    const char *field, *value, *ended_by;
    dl_err want;
    int live;
  } cases[] = {
      {"status", "4", "web/enter: status 4", DL_EOK, 0},
      {"room_status", "2", "web/enter: room_status 2", DL_EOK, 0},
      {"status_code", "30003", "web/enter: status_code 30003", DL_EOK, 0},
      {"finish_time", "1787737453", "web/enter: finish_time 1787737453", DL_EOK, 0},
      {"finish_time", "\"1787737453\"", "web/enter: finish_time 1787737453", DL_EOK, 0},
      {"finish_time", "0", "", DL_EOK, 1},                 /* 0: not finished */
      {"status_code", "10037", "", DL_EHTTP, 0},           /* "system busy": ask again, not ended */
      {"no_status", "0", "", DL_EHTTP, 0},                 /* no status at all: unknown, not live */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *v = variant(cap, cases[i].field, cases[i].value);
    ASSERT_TRUE(v != NULL);
    if (!v) return 1;
    dl_err e = dl_enter_parse(v, strlen(v), &p);
    free(v);
    if (e != cases[i].want) fprintf(stderr, "case %zu (%s=%s)\n", i, cases[i].field, cases[i].value);
    ASSERT_EQ_I64(e, cases[i].want);
    if (e != DL_EOK) continue;
    ASSERT_EQ_I64(dl_page_is_live(&p), cases[i].live);
    ASSERT_EQ_STR(p.ended_by, cases[i].ended_by);
    if (strcmp(cases[i].field, "status_code")) ASSERT_EQ_STR(p.room_id, "7630361251285076745");
  }
  free(cap);
  /* risk control is never "ended": empty body, blanks only */
  ASSERT_TRUE(dl_enter_parse("", 0, &p) == DL_EEMPTY);
  ASSERT_TRUE(dl_enter_parse(" \r\n", 3, &p) == DL_EEMPTY);
  ASSERT_TRUE(dl_enter_parse("<html>verify</html>", 19, &p) == DL_EPROTO);
  /* B's "live radio": room_status 1 is live */
  const char *radio = "{\"status_code\":0,\"data\":{\"room_status\":1,\"enter_room_id\":\"7630361251285076745\"}}";
  ASSERT_TRUE(dl_enter_parse(radio, strlen(radio), &p) == DL_EOK && dl_page_is_live(&p));
  return 0;
}

static int test_page_finish_time(void) {
  dl_page_info p;
  const char *a = "\"roomInfo\":{\"room\":{\"id_str\":\"7392091211001140287\",\"status\":2,\"finish_time\":1787737453}}";
  ASSERT_TRUE(dl_page_parse(a, strlen(a), &p) == DL_EOK);
  ASSERT_TRUE(!dl_page_is_live(&p)); /* status 2 with finish_time: a replay, not live (§9.7) */
  ASSERT_EQ_STR(p.ended_by, "live page: finish_time 1787737453");
  const char *b = "\"roomInfo\":{\"room\":{\"id_str\":\"7392091211001140287\",\"status\":2,\"finish_time\":0}}";
  ASSERT_TRUE(dl_page_parse(b, strlen(b), &p) == DL_EOK && dl_page_is_live(&p));
  return 0;
}

static int test_proxy_url(void) {
  dl_proxy_url u;
  char why[200];
  ASSERT_TRUE(dl_proxy_url_parse("http://10.0.0.1:3128", &u, why, sizeof why) == DL_EOK);
  ASSERT_EQ_STR(u.label, "10.0.0.1:3128");
  ASSERT_TRUE(dl_proxy_url_parse("HTTP://alice:s3cr%t@p.example:8080/", &u, why, sizeof why) == DL_EOK);
  ASSERT_EQ_STR(u.label, "p.example:8080");
  ASSERT_EQ_STR(u.user, "alice");
  ASSERT_EQ_STR(u.pass, "s3cr%t");
  ASSERT_TRUE(dl_proxy_url_parse("http://u:p@ss@[::1]:3128", &u, why, sizeof why) == DL_EOK);
  ASSERT_EQ_STR(u.label, "[::1]:3128");
  ASSERT_EQ_STR(u.pass, "p@ss");
  const char *bad[] = {"socks5h://u:topsecret@h:1080", "https://u:topsecret@h:1", "http://u:topsecret@h",
                       "http://u:topsecret@h:0", "http://u:topsecret@h:70000", "http://u:topsecret@:3128",
                       "http://u:topsecret@h:3128/path", "http://u:topsecret@h o:1", "topsecret", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    why[0] = 0;
    ASSERT_TRUE(dl_proxy_url_parse(bad[i], &u, why, sizeof why) != DL_EOK);
    ASSERT_TRUE(why[0] != 0);
    ASSERT_TRUE(strstr(why, "topsecret") == NULL); /* never echoed */
  }
  char longuser[200];
  memset(longuser, 'a', sizeof longuser);
  snprintf(longuser + 100, 100, ":topsecret@h:1");
  char url[300];
  snprintf(url, sizeof url, "http://%s", longuser);
  ASSERT_TRUE(dl_proxy_url_parse(url, &u, why, sizeof why) != DL_EOK && !strstr(why, "topsecret"));
  return 0;
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  fclose(f);
  return 0;
}

static int test_proxy_file(void) {
  char dir[] = "/tmp/dl_pp_XXXXXX", path[256], why[300];
  ASSERT_TRUE(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/proxies", dir);
  ASSERT_TRUE(write_file(path, "# egress pool\n\nhttp://u1:pw1@127.0.0.1:3001\n  http://127.0.0.2:3002  # second\n"
                               "http://u1:pw1@127.0.0.1:3001/\nhttp://u2:pw2@127.0.0.1:3001\n") == 0);
  dl_proxypool *p = dl_proxypool_new();
  ASSERT_TRUE(dl_proxypool_load(p, path, why, sizeof why) == DL_EOK);
  ASSERT_EQ_U64(dl_proxypool_rotation(p), 3); /* the repeated line is the same proxy */
  dl_proxy_stats st[4];
  ASSERT_EQ_U64(dl_proxypool_stats(p, st, 4, 0), 3);
  ASSERT_EQ_STR(st[0].label, "127.0.0.1:3001"); /* labels never carry credentials */
  ASSERT_EQ_STR(st[1].label, "127.0.0.2:3002");
  ASSERT_EQ_STR(st[2].label, "127.0.0.1:3001#2"); /* another account on the same gateway */
  dl_proxypool_free(p);
  ASSERT_TRUE(write_file(path, "http://127.0.0.1:3001\n# ok\nsocks5://bob:hunter2@127.0.0.1:1080\n") == 0);
  p = dl_proxypool_new();
  ASSERT_TRUE(dl_proxypool_load(p, path, why, sizeof why) == DL_EINVAL);
  ASSERT_TRUE(!strncmp(why, "line 3: ", 8));
  ASSERT_TRUE(strstr(why, "hunter2") == NULL && strstr(why, "bob") == NULL);
  dl_proxypool_free(p);
  ASSERT_TRUE(write_file(path, "# nothing\n\n") == 0);
  p = dl_proxypool_new();
  ASSERT_TRUE(dl_proxypool_load(p, path, why, sizeof why) == DL_EEMPTY);
  dl_proxypool_free(p);
  unlink(path);
  rmdir(dir);
  return 0;
}

/* Stickiness, spread, minimal movement, set-aside and recovery. */
static int test_proxy_pool(void) {
  char why[200], url[64], id[32];
  dl_proxypool *p = dl_proxypool_new();
  ASSERT_TRUE(dl_proxypool_pick(p, "1", 0) == -1); /* no pool: direct */
  for (int i = 0; i < 4; i++) {
    snprintf(url, sizeof url, "http://10.0.0.%d:3128", i + 1);
    ASSERT_EQ_I64(dl_proxypool_add(p, url, 1, why, sizeof why), i);
  }
  enum { ROOMS = 400 };
  int before[ROOMS], per[4] = {0};
  for (int k = 0; k < ROOMS; k++) {
    snprintf(id, sizeof id, "%lld", 261378947940LL + k * 7919);
    before[k] = dl_proxypool_pick(p, id, 0);
    ASSERT_TRUE(before[k] >= 0 && before[k] < 4);
    ASSERT_EQ_I64(dl_proxypool_pick(p, id, 0), before[k]); /* sticky */
    per[before[k]]++;
  }
  for (int i = 0; i < 4; i++) ASSERT_TRUE(per[i] > ROOMS / 4 / 2); /* spread */
  /* a fifth proxy takes only rooms it wins; no room moves between the old four */
  ASSERT_EQ_I64(dl_proxypool_add(p, "http://10.0.0.5:3128", 1, why, sizeof why), 4);
  int moved = 0;
  for (int k = 0; k < ROOMS; k++) {
    snprintf(id, sizeof id, "%lld", 261378947940LL + k * 7919);
    int now = dl_proxypool_pick(p, id, 0);
    if (now != before[k]) {
      ASSERT_EQ_I64(now, 4);
      moved++;
    }
  }
  ASSERT_TRUE(moved > ROOMS / 5 / 2 && moved < ROOMS / 5 * 2);
  /* proxy 0 fails DL_PROXYPOOL_FAILS times in a row: set aside, its rooms move, the others stay */
  int64_t t = 1000000;
  for (int i = 0; i < DL_PROXYPOOL_FAILS - 1; i++) dl_proxypool_report(p, 0, 0, t);
  ASSERT_FALSE(dl_proxypool_cooling(p, 0, t));
  dl_proxypool_report(p, 0, 1, t); /* a success in between: the count starts over */
  for (int i = 0; i < DL_PROXYPOOL_FAILS - 1; i++) dl_proxypool_report(p, 0, 0, t);
  ASSERT_FALSE(dl_proxypool_cooling(p, 0, t));
  dl_proxypool_report(p, 0, 0, t);
  ASSERT_TRUE(dl_proxypool_cooling(p, 0, t));
  for (int k = 0; k < ROOMS; k++) {
    snprintf(id, sizeof id, "%lld", 261378947940LL + k * 7919);
    int was = dl_proxypool_pick(p, id, t - 1), now = dl_proxypool_pick(p, id, t);
    ASSERT_TRUE(now != 0);
    if (was != 0) ASSERT_EQ_I64(now, was);
  }
  /* back after the cooling period; failing again sets it aside twice as long */
  ASSERT_FALSE(dl_proxypool_cooling(p, 0, t + DL_PROXYPOOL_COOL_MS));
  snprintf(id, sizeof id, "%lld", 261378947940LL);
  for (int i = 0; i < DL_PROXYPOOL_FAILS; i++) dl_proxypool_report(p, 0, 0, t + DL_PROXYPOOL_COOL_MS);
  ASSERT_TRUE(dl_proxypool_cooling(p, 0, t + DL_PROXYPOOL_COOL_MS + 2 * DL_PROXYPOOL_COOL_MS - 1));
  ASSERT_FALSE(dl_proxypool_cooling(p, 0, t + DL_PROXYPOOL_COOL_MS + 2 * DL_PROXYPOOL_COOL_MS));
  /* every proxy set aside: rooms keep a proxy (never direct) */
  for (int i = 0; i < 5; i++)
    for (int k = 0; k < DL_PROXYPOOL_FAILS; k++) dl_proxypool_report(p, i, 0, t * 10);
  ASSERT_TRUE(dl_proxypool_pick(p, id, t * 10) >= 0);
  /* counts for /metrics */
  dl_proxypool_move(p, -1, 2);
  dl_proxypool_move(p, -1, 2);
  dl_proxypool_move(p, 2, 3);
  dl_proxy_stats st[8];
  ASSERT_EQ_U64(dl_proxypool_stats(p, st, 8, t * 10), 5);
  ASSERT_EQ_U64(st[2].rooms, 1);
  ASSERT_EQ_U64(st[3].rooms, 1);
  ASSERT_EQ_U64(st[0].failures, 2 * DL_PROXYPOOL_FAILS - 1 + DL_PROXYPOOL_FAILS + DL_PROXYPOOL_FAILS);
  ASSERT_EQ_U64(st[0].set_asides, 3);
  ASSERT_TRUE(st[4].cooling);
  dl_proxypool_free(p);
  return 0;
}

/* An assignment's own proxy: outside the rotation, the room's answer until unpinned. */
static int test_proxy_pins(void) {
  char why[200];
  dl_proxypool *p = dl_proxypool_new();
  ASSERT_EQ_I64(dl_proxypool_add(p, "http://10.0.0.1:3128", 1, why, sizeof why), 0);
  dl_proxy_url pu;
  ASSERT_TRUE(dl_proxy_url_parse("http://carol:pw@10.9.9.9:8888", &pu, why, sizeof why) == DL_EOK);
  int idx = dl_proxypool_pin(p, "777", &pu, why, sizeof why);
  ASSERT_EQ_I64(idx, 1);
  ASSERT_EQ_U64(dl_proxypool_rotation(p), 1); /* other rooms never land on it */
  ASSERT_EQ_I64(dl_proxypool_pick(p, "777", 0), 1);
  ASSERT_EQ_I64(dl_proxypool_pick(p, "778", 0), 0);
  for (int i = 0; i < DL_PROXYPOOL_FAILS; i++) dl_proxypool_report(p, 1, 0, 0);
  ASSERT_EQ_I64(dl_proxypool_pick(p, "777", 0), 1); /* the operator's choice holds */
  dl_proxy_url u;
  ASSERT_TRUE(dl_proxypool_get(p, 1, &u) == 0 && !strcmp(u.user, "carol") && !strcmp(u.label, "10.9.9.9:8888"));
  dl_proxypool_unpin(p, "777");
  ASSERT_EQ_I64(dl_proxypool_pick(p, "777", 0), 0);
  dl_proxypool_free(p);
  /* the assignment form: the proxy comes taken apart (parsed once, pinned as it is) */
  char id[64], prof[72];
  dl_proxy_url px;
  const char *j = "{\"live_id\":\"261378947940\",\"cookie\":\"shop-1\",\"proxy\":\"http://u:p@10.0.0.9:3128\"}";
  ASSERT_TRUE(dl_assignment_parse(j, strlen(j), id, sizeof id, prof, sizeof prof, &px) == 0);
  ASSERT_TRUE(!strcmp(px.label, "10.0.0.9:3128") && !strcmp(px.user, "u") && !strcmp(px.pass, "p"));
  ASSERT_EQ_STR(prof, "shop-1");
  const char *k = "{\"live_id\":\"261378947940\",\"cookie\":\"shop-1\"}"; /* the v1 form stays valid */
  ASSERT_TRUE(dl_assignment_parse(k, strlen(k), id, sizeof id, prof, sizeof prof, &px) == 0);
  ASSERT_EQ_I64(px.port, 0);
  const char *bad[] = {"{\"live_id\":\"1\",\"proxy\":\"socks5://h:1\"}", "{\"live_id\":\"1\",\"proxy\":5}",
                       "{\"live_id\":\"1\",\"proxy\":\"http://h\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ASSERT_TRUE(dl_assignment_parse(bad[i], strlen(bad[i]), id, sizeof id, prof, sizeof prof, &px) != 0);
  return 0;
}

static int test_handshake_options(void) {
  ASSERT_EQ_I64(dl_handshake_ping_interval("ping-interval=10;"), 10);
  ASSERT_EQ_I64(dl_handshake_ping_interval("reconnect-interval=3; Ping-Interval = 25 ;x=y"), 25);
  ASSERT_EQ_I64(dl_handshake_ping_interval("ping-interval=2"), 2);
  ASSERT_EQ_I64(dl_handshake_ping_interval("ping-interval=100000;"), DL_PING_INTERVAL_MAX_S); /* bounded */
  ASSERT_EQ_I64(dl_handshake_ping_interval("ping-interval=0;"), 0);
  ASSERT_EQ_I64(dl_handshake_ping_interval("ping-interval=-5;"), 0);
  ASSERT_EQ_I64(dl_handshake_ping_interval("ping-interval=5s;"), 0);
  ASSERT_EQ_I64(dl_handshake_ping_interval("xping-interval=5;"), 0);
  ASSERT_EQ_I64(dl_handshake_ping_interval(""), 0);
  return 0;
}

static int test_logged_in(void) {
  ASSERT_TRUE(dl_cookie_logged_in("ttwid=1%7Cabc; sessionid=0123abcd; sid_tt=x"));
  ASSERT_TRUE(dl_cookie_logged_in("sessionid=a"));
  ASSERT_FALSE(dl_cookie_logged_in("ttwid=1%7Cabc"));
  ASSERT_FALSE(dl_cookie_logged_in("ttwid=1; sessionid=; a=b"));        /* empty: a guest */
  ASSERT_FALSE(dl_cookie_logged_in("ttwid=1; sessionid_ss=abc"));       /* not the sessionid cookie */
  ASSERT_FALSE(dl_cookie_logged_in("ttwid=1; xsessionid=abc"));
  ASSERT_FALSE(dl_cookie_logged_in(""));
  return 0;
}

int main(int argc, char **argv) {
  int failures = test_enter_markers(argc > 1 ? argv[1] : "../shared/captures") + test_page_finish_time() +
                 test_proxy_url() + test_proxy_file() + test_proxy_pool() + test_proxy_pins() +
                 test_handshake_options() + test_logged_in();
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
