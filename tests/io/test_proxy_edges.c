/* Proxy edges of the I/O side: assignment proxies come and go for the whole life of a worker
 * (slots are reused, never exhausted), and every proxy URL the parser accepts is one that
 * libwebsockets accepts too (a refused one would leave the room without its WebSocket). */
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>

#include "dl_proxypool.h"
#include "dl_test.h"

/* 1000 rooms, one after the other, each with its own assignment proxy: every pin succeeds (the
 * pool holds DL_PROXYPOOL_MAX at once, not over its life) and the slot of a gone proxy is reused. */
/* dl_proxypool_pin of a URL (an assignment's proxy comes parsed). */
static int pin(dl_proxypool *p, const char *live_id, const char *url, char *why, size_t cap) {
  dl_proxy_url u;
  return dl_proxy_url_parse(url, &u, why, cap) == DL_EOK ? dl_proxypool_pin(p, live_id, &u, why, cap) : -2;
}

static int test_pins_reuse_slots(void) {
  char why[200], id[32], url[64];
  dl_proxypool *p = dl_proxypool_new();
  ASSERT_EQ_I64(dl_proxypool_add(p, "http://10.0.0.1:3128", 1, why, sizeof why), 0);
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "%d", 100000 + i);
    snprintf(url, sizeof url, "http://u%d:pw@10.1.%d.%d:8080", i, i / 250, i % 250);
    int idx = pin(p, id, url, why, sizeof why);
    ASSERT_EQ_I64(idx, 1); /* the slot the last room's proxy left */
    ASSERT_EQ_I64(dl_proxypool_pick(p, id, 0), idx);
    dl_proxypool_unpin(p, id);
    ASSERT_EQ_I64(dl_proxypool_pick(p, id, 0), 0);
  }
  dl_proxy_stats st[4];
  ASSERT_EQ_U64(dl_proxypool_stats(p, st, 4, 0), 1); /* only the rotation is left */
  ASSERT_EQ_U64(dl_proxypool_rotation(p), 1);
  dl_proxypool_free(p);
  return 0;
}

/* An assignment proxy stays while a WebSocket goes through it (the gauge and the ingest vhost
 * refer to its index), two rooms share one entry, a re-pin moves the room, and a reused slot gets
 * a new id and a label no other held proxy has. */
static int test_pins_refcount(void) {
  char why[200];
  dl_proxypool *p = dl_proxypool_new();
  int a = pin(p, "1", "http://u:pw@h.example:1", why, sizeof why);
  ASSERT_EQ_I64(a, 0);
  ASSERT_EQ_I64(pin(p, "2", "http://u:pw@h.example:1", why, sizeof why), a); /* shared */
  ASSERT_EQ_I64(pin(p, "3", "http://v:pw@h.example:1", why, sizeof why), 1);
  dl_proxy_url u;
  uint64_t id0 = 0, id1 = 0;
  ASSERT_TRUE(dl_proxypool_lookup(p, 1, &u, &id1) == 0);
  ASSERT_EQ_STR(u.label, "h.example:1#2");
  dl_proxypool_move(p, -1, a); /* room 1's WebSocket */
  dl_proxypool_unpin(p, "1");
  dl_proxypool_unpin(p, "2");
  ASSERT_TRUE(dl_proxypool_lookup(p, a, &u, &id0) == 0); /* still used by a WebSocket */
  dl_proxypool_move(p, a, -1);
  ASSERT_TRUE(dl_proxypool_get(p, a, &u) != 0); /* gone with its last user */
  /* the free slot takes the next proxy: a new id, and the plain label is free again */
  ASSERT_EQ_I64(pin(p, "4", "http://w:pw@h.example:1", why, sizeof why), a);
  uint64_t id = 0;
  ASSERT_TRUE(dl_proxypool_lookup(p, a, &u, &id) == 0 && id != id0 && id != id1);
  ASSERT_EQ_STR(u.label, "h.example:1");
  /* room 3 pinned again elsewhere: its old proxy goes */
  ASSERT_EQ_I64(pin(p, "3", "http://w:pw@h.example:1", why, sizeof why), a);
  ASSERT_TRUE(dl_proxypool_get(p, 1, &u) != 0);
  dl_proxy_stats st[4];
  ASSERT_EQ_U64(dl_proxypool_stats(p, st, 4, 0), 1);
  /* DL_PROXYPOOL_MAX proxies held at once: the next pin is refused, and says so */
  char rid[32], url[64];
  for (int i = 1; i < DL_PROXYPOOL_MAX; i++) {
    snprintf(rid, sizeof rid, "r%d", i);
    snprintf(url, sizeof url, "http://10.2.%d.%d:8080", i / 250, i % 250);
    ASSERT_TRUE(pin(p, rid, url, why, sizeof why) >= 0);
  }
  ASSERT_TRUE(pin(p, "full", "http://10.3.0.1:8080", why, sizeof why) < 0 && strstr(why, "proxies"));
  ASSERT_EQ_I64(dl_proxypool_pick(p, "full", 0), -1); /* nothing pinned, no rotation: the caller must not capture */
  dl_proxypool_free(p);
  return 0;
}

/* Credentials are percent-decoded as curl decodes them, so the WebSocket (lws) and the pages
 * (curl) send the same ones; a '%' without two hex digits stays, %00 is refused. */
static int test_credentials_decoded(void) {
  dl_proxy_url u;
  char why[200], spec[DL_PROXY_LWS_MAX];
  ASSERT_TRUE(dl_proxy_url_parse("http://us%65r:p%40ss%2Fw%3Ard@h.example:3128/", &u, why, sizeof why) == DL_EOK);
  ASSERT_EQ_STR(u.user, "user");
  ASSERT_EQ_STR(u.pass, "p@ss/w:rd");
  ASSERT_TRUE(dl_proxy_url_lws(&u, spec, sizeof spec) == 0);
  ASSERT_EQ_STR(spec, "user:p@ss/w:rd@h.example:3128"); /* lws takes the last '@' */
  ASSERT_TRUE(dl_proxy_url_parse("http://u:50%-off%4@h:1", &u, why, sizeof why) == DL_EOK);
  ASSERT_EQ_STR(u.pass, "50%-off%4");
  ASSERT_TRUE(dl_proxy_url_parse("http://u:a%00b@h:1", &u, why, sizeof why) != DL_EOK && !strstr(why, "a%00b"));
  /* 93 bytes decoded are lws's limit, however long the encoded form */
  char url[400] = "http://u:";
  for (int i = 0; i < 91; i++) strcat(url, "%41");
  strcat(url, "@h:1");
  ASSERT_TRUE(dl_proxy_url_parse(url, &u, why, sizeof why) == DL_EOK && strlen(u.pass) == 91);
  strcpy(url + strlen(url) - 4, "%41@h:1");
  ASSERT_TRUE(dl_proxy_url_parse(url, &u, why, sizeof why) != DL_EOK);
  return 0;
}

static const struct lws_protocols protocols[] = {{"t", NULL, 0, 0, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};

/* Every URL the parser accepts, libwebsockets accepts as ingest hands it over: credentials up to
 * the parser's limit and past it, host names up to it and past it (lws 4.1 refuses 94 bytes of
 * credentials, and cuts a host:port over 127 bytes into another address). */
static int test_parser_admits_only_what_lws_takes(void) {
  lws_set_log_level(0, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  struct lws_context *ctx = lws_create_context(&info);
  ASSERT_TRUE(ctx != NULL);
  struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
  char url[600], why[200], spec[DL_PROXY_LWS_MAX], user[200], host[200];
  int accepted = 0, refused = 0;
  for (int ul = 1; ul < 120; ul++)
    for (int hl = 1; hl < 140; hl += (hl > 100 ? 1 : 33)) {
      memset(user, 'u', (size_t)ul);
      user[ul] = 0;
      if (ul > 2) user[ul / 2] = ':'; /* user:pass */
      memset(host, 'h', (size_t)hl);
      host[hl] = 0;
      snprintf(url, sizeof url, "http://%s@%s:65535", user, host);
      dl_proxy_url u;
      if (dl_proxy_url_parse(url, &u, why, sizeof why) != DL_EOK) {
        refused++;
        continue;
      }
      accepted++;
      ASSERT_TRUE(dl_proxy_url_lws(&u, spec, sizeof spec) == 0);
      if (lws_set_proxy(vh, spec) != 0) {
        lws_context_destroy(ctx);
        DL_TEST_FAIL_("the parser accepted a proxy lws refuses: %d bytes of credentials, host of %d", ul, hl);
      }
    }
  ASSERT_TRUE(accepted > 0 && refused > 0);
  lws_context_destroy(ctx);
  return 0;
}

int main(void) {
  int failures = test_pins_reuse_slots() + test_pins_refcount() + test_parser_admits_only_what_lws_takes() +
                 test_credentials_decoded();
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
