/* dl_topo: what Redis says about its topology (redirections, CLUSTER SLOTS, Sentinel, ROLE), with
 * hostile replies built from RESP bytes by hiredis's own reader; and the passwords dl_rurl reads from
 * the environment; the TLS client set-up. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_rurl.h"
#include "dl_test.h"
#include "dl_tls.h"
#include "dl_topo.h"

/* One reply parsed from RESP text (NULL when the bytes are not one whole reply). */
static redisReply *resp(const char *bytes) {
  redisReader *rd = redisReaderCreate();
  void *r = NULL;
  redisReaderFeed(rd, bytes, strlen(bytes));
  if (redisReaderGetReply(rd, &r) != REDIS_OK) r = NULL;
  redisReaderFree(rd);
  return r;
}

int test_topo_redirect_moved_ask(void) {
  char host[256];
  int ask = -1, port = 0;
  unsigned slot = 0;
  ASSERT_EQ_I64(dl_redirect_parse("MOVED 3999 10.0.0.5:6381", &ask, &slot, host, sizeof host, &port), 0);
  ASSERT_EQ_I64(ask, 0);
  ASSERT_EQ_U64(slot, 3999);
  ASSERT_EQ_STR(host, "10.0.0.5");
  ASSERT_EQ_I64(port, 6381);
  ASSERT_EQ_I64(dl_redirect_parse("ASK 16383 redis-2.svc:7000", &ask, &slot, host, sizeof host, &port), 0);
  ASSERT_EQ_I64(ask, 1);
  ASSERT_EQ_U64(slot, 16383);
  ASSERT_EQ_STR(host, "redis-2.svc");
  ASSERT_EQ_I64(port, 7000);
  /* IPv6 as Redis writes it (no brackets: the last ':' splits), and bracketed */
  ASSERT_EQ_I64(dl_redirect_parse("MOVED 0 ::1:7000", &ask, &slot, host, sizeof host, &port), 0);
  ASSERT_EQ_STR(host, "::1");
  ASSERT_EQ_I64(port, 7000);
  ASSERT_EQ_I64(dl_redirect_parse("MOVED 1 [fe80::1]:7001", &ask, &slot, host, sizeof host, &port), 0);
  ASSERT_EQ_STR(host, "fe80::1");
  ASSERT_EQ_I64(port, 7001);
  /* an empty or unknown endpoint means "the node you asked" */
  ASSERT_EQ_I64(dl_redirect_parse("MOVED 2 :7002", &ask, &slot, host, sizeof host, &port), 0);
  ASSERT_EQ_STR(host, "");
  ASSERT_EQ_I64(dl_redirect_parse("MOVED 2 ?:7002", &ask, &slot, host, sizeof host, &port), 0);
  ASSERT_EQ_STR(host, "");
  char t[64];
  ASSERT_EQ_I64(dl_redirect_target("ASK 12 10.1.2.3:6379", t, sizeof t), 0);
  ASSERT_EQ_STR(t, "10.1.2.3:6379");
  ASSERT_EQ_I64(dl_redirect_target("ASK 12 10.1.2.3:6379", t, 8), -1);
  ASSERT_EQ_STR(t, "");
  return 0;
}

int test_topo_redirect_garbage(void) {
  static const char *const bad[] = {
      "MOVED",           "MOVED ",          "MOVED 3999",        "MOVED 3999 ",      "MOVED 3999 host",
      "MOVED 3999 host:", "MOVED 3999 host:0", "MOVED 3999 host:65536", "MOVED 3999 host:12x", "MOVED x 1.2.3.4:5",
      "MOVED 16384 h:1", "MOVED -1 h:1",    "MOVED 99999999999 h:1", "ASK  h:1",      "MOVED 1  h:1",
      "MOVED 1 h o:1",   "MOVED 1 [::1:7000", "ERR MOVED 1 h:1",  "NOSCRIPT x",       "moved 1 h:1",
      "MOVED 1 h:1 ",    "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char host[256];
    int ask, port;
    unsigned slot;
    if (dl_redirect_parse(bad[i], &ask, &slot, host, sizeof host, &port) != -1) {
      fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
      return 1;
    }
  }
  char host[256];
  int ask, port;
  unsigned slot;
  ASSERT_EQ_I64(dl_redirect_parse(NULL, &ask, &slot, host, sizeof host, &port), -1);
  /* a host longer than the caller's buffer is refused, never truncated */
  char big[400];
  memset(big, 'a', sizeof big);
  memcpy(big, "MOVED 5 ", 8);
  memcpy(big + sizeof big - 8, ":6379", 6);
  ASSERT_EQ_I64(dl_redirect_parse(big, &ask, &slot, host, sizeof host, &port), -1);
  char small[8];
  ASSERT_EQ_I64(dl_redirect_parse("MOVED 5 abcdefgh:1", &ask, &slot, small, sizeof small, &port), -1);
  ASSERT_EQ_I64(dl_redirect_parse("MOVED 5 abcdefg:1", &ask, &slot, small, sizeof small, &port), 0);
  ASSERT_EQ_STR(small, "abcdefg");
  return 0;
}

typedef struct ranges {
  dl_topo_range rg[4];
  char hosts[4][32];
  int n, stop_at;
} ranges;

static int collect(void *ud, const dl_topo_range *rg) {
  ranges *c = ud;
  if (c->n == c->stop_at || c->n == 4) return -1;
  c->rg[c->n] = *rg;
  snprintf(c->hosts[c->n], sizeof c->hosts[c->n], "%s", rg->host);
  c->rg[c->n].host = c->hosts[c->n];
  c->n++;
  return 0;
}

int test_topo_cluster_slots(void) {
  redisReply *r = resp("*2\r\n"
                       "*3\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
                       "*4\r\n:8192\r\n:16383\r\n*2\r\n$0\r\n\r\n:7001\r\n*2\r\n$1\r\nx\r\n:7002\r\n");
  ASSERT_TRUE(r != NULL);
  ASSERT_EQ_I64(dl_topo_slots(r, NULL, NULL), 2); /* a check only */
  ranges c = {.stop_at = -1};
  ASSERT_EQ_I64(dl_topo_slots(r, collect, &c), 2);
  ASSERT_EQ_I64(c.n, 2);
  ASSERT_EQ_U64(c.rg[0].lo, 0);
  ASSERT_EQ_U64(c.rg[0].hi, 8191);
  ASSERT_EQ_STR(c.rg[0].host, "127.0.0.1");
  ASSERT_EQ_I64(c.rg[0].port, 7000);
  ASSERT_EQ_U64(c.rg[1].lo, 8192);
  ASSERT_EQ_U64(c.rg[1].hi, 16383);
  ASSERT_EQ_STR(c.rg[1].host, ""); /* the node asked */
  ASSERT_EQ_I64(c.rg[1].port, 7001);
  ranges stop = {.stop_at = 1}; /* the caller refuses the second range (its node table is full) */
  ASSERT_EQ_I64(dl_topo_slots(r, collect, &stop), -1);
  ASSERT_EQ_I64(stop.n, 1);
  freeReplyObject(r);
  return 0;
}

int test_topo_cluster_slots_hostile(void) {
  static const char *const bad[] = {
      "*0\r\n",                                                   /* empty map */
      "-ERR This instance has cluster support disabled\r\n",     /* an error */
      "$3\r\nabc\r\n",                                            /* not an array */
      "*1\r\n:1\r\n",                                             /* a range that is not an array */
      "*1\r\n*2\r\n:0\r\n:1\r\n",                                 /* no primary */
      "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* start as a string */
      "*1\r\n*3\r\n:0\r\n$1\r\n1\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* end as a string */
      "*1\r\n*3\r\n:0\r\n:1\r\n:5\r\n",                           /* primary not an array */
      "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",                /* primary without port */
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n",               /* host an integer */
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n$4\r\n6379\r\n",  /* port a string */
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",          /* port 0 */
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:70000\r\n",      /* port too big */
      "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",         /* negative slot */
      "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",      /* slot out of range */
      "*1\r\n*3\r\n:9\r\n:8\r\n*2\r\n$1\r\nh\r\n:1\r\n",          /* lo > hi */
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\0b\r\n:1\r\n",       /* NUL inside the host */
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n",        /* space inside the host */
      "*1\r\n*3\r\n:0\r\n:1\r\n*-1\r\n",                          /* nil primary */
      "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$-1\r\n:1\r\n",              /* nil host */
      "*2\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n:5\r\n",    /* good, then bad: none seen */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    redisReader *rd = redisReaderCreate();
    void *r = NULL;
    /* feed with explicit lengths: one case carries a NUL */
    const char *p = bad[i];
    size_t n = strlen(p);
    if (i == 16) n = strlen("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na") + 1 + strlen("b\r\n:1\r\n");
    redisReaderFeed(rd, p, n);
    int ok = redisReaderGetReply(rd, &r) == REDIS_OK && r;
    redisReaderFree(rd);
    if (!ok) {
      fprintf(stderr, "case %zu: not a reply\n", i);
      return 1;
    }
    ranges c = {.stop_at = -1};
    int got = dl_topo_slots(r, collect, &c);
    freeReplyObject(r);
    if (got != -1 || c.n) {
      fprintf(stderr, "case %zu accepted (%d ranges, %d seen)\n", i, got, c.n);
      return 1;
    }
  }
  ASSERT_EQ_I64(dl_topo_slots(NULL, NULL, NULL), -1);
  return 0;
}

int test_topo_sentinel_master_addr(void) {
  char host[256];
  int port = 0;
  redisReply *r = resp("*2\r\n$8\r\n10.0.0.7\r\n$4\r\n6380\r\n");
  ASSERT_EQ_I64(dl_topo_master_addr(r, host, sizeof host, &port), 0);
  ASSERT_EQ_STR(host, "10.0.0.7");
  ASSERT_EQ_I64(port, 6380);
  freeReplyObject(r);
  static const char *const bad[] = {
      "*-1\r\n",                                   /* the sentinel does not know the master */
      "*2\r\n$8\r\n10.0.0.7\r\n$1\r\n0\r\n",       /* port 0 (the copy in dl_rsync accepted it) */
      "*2\r\n$8\r\n10.0.0.7\r\n$5\r\n99999\r\n",   /* port too big */
      "*2\r\n$8\r\n10.0.0.7\r\n$3\r\n6x0\r\n",     /* not a number */
      "*2\r\n$8\r\n10.0.0.7\r\n:6380\r\n",         /* port an integer */
      "*2\r\n$0\r\n\r\n$4\r\n6380\r\n",            /* empty host */
      "*1\r\n$8\r\n10.0.0.7\r\n",                  /* one element */
      "*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\n2\r\n",   /* three */
      "-ERR unknown command\r\n",
      "*2\r\n$-1\r\n$4\r\n6380\r\n",               /* nil host */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    r = resp(bad[i]);
    if (!r) return fprintf(stderr, "case %zu: not a reply\n", i), 1;
    int got = dl_topo_master_addr(r, host, sizeof host, &port);
    freeReplyObject(r);
    if (got != -1) return fprintf(stderr, "case %zu accepted\n", i), 1;
  }
  char small[4];
  r = resp("*2\r\n$8\r\n10.0.0.7\r\n$4\r\n6380\r\n");
  ASSERT_EQ_I64(dl_topo_master_addr(r, small, sizeof small, &port), -1);
  freeReplyObject(r);
  return 0;
}

int test_topo_role(void) {
  redisReply *r = resp("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
  ASSERT_EQ_I64(dl_topo_role_is_master(r), 1);
  freeReplyObject(r);
  static const char *const no[] = {"*5\r\n$5\r\nslave\r\n$1\r\nh\r\n:1\r\n$9\r\nconnected\r\n:1\r\n", "*0\r\n",
                                   "*1\r\n:1\r\n", "-NOPERM\r\n", "$6\r\nmaster\r\n", "*1\r\n$7\r\nmaster \r\n"};
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
    r = resp(no[i]);
    if (!r) return fprintf(stderr, "case %zu: not a reply\n", i), 1;
    int got = dl_topo_role_is_master(r);
    freeReplyObject(r);
    if (got) return fprintf(stderr, "case %zu said master\n", i), 1;
  }
  ASSERT_EQ_I64(dl_topo_role_is_master(NULL), 0);
  return 0;
}

/* Passwords from the environment (dl_rurl), the same for the worker and dylivectl. */
int test_rurl_credentials(void) {
  char why[200], path[] = "/tmp/dl-unit-pw-XXXXXX";
  dl_redis_addr a;
  int fd = mkstemp(path);
  ASSERT_TRUE(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs("from-file\r\nsecond line\n", f);
  fclose(f);
  unsetenv("DYLIVE_REDIS_PASSWORD");
  setenv("DYLIVE_REDIS_PASSWORD_FILE", path, 1);
  setenv("DYLIVE_SENTINEL_PASSWORD", "s-pw", 1);
  ASSERT_EQ_I64(dl_redis_parse_url("redis-sentinel://h:1#m", &a, why, sizeof why), 0);
  ASSERT_EQ_I64(dl_redis_addr_credentials(&a, why, sizeof why), 0);
  ASSERT_EQ_STR(a.password, "from-file");
  ASSERT_EQ_STR(a.sentinel_password, "s-pw");
  ASSERT_EQ_I64(dl_redis_parse_url("redis://:in%2Furl@h:1", &a, why, sizeof why), 0); /* the URL's wins */
  ASSERT_EQ_I64(dl_redis_addr_credentials(&a, why, sizeof why), 0);
  ASSERT_EQ_STR(a.password, "in/url");
  setenv("DYLIVE_REDIS_PASSWORD", "from-env", 1); /* the variable before the file */
  ASSERT_EQ_I64(dl_redis_parse_url("redis://h:1", &a, why, sizeof why), 0);
  ASSERT_EQ_I64(dl_redis_addr_credentials(&a, why, sizeof why), 0);
  ASSERT_EQ_STR(a.password, "from-env");
  unsetenv("DYLIVE_REDIS_PASSWORD");
  /* a password longer than the field is refused, never cut */
  f = fopen(path, "w");
  for (int i = 0; i < 300; i++) fputc('x', f);
  fclose(f);
  ASSERT_EQ_I64(dl_redis_parse_url("redis://h:1", &a, why, sizeof why), 0);
  ASSERT_EQ_I64(dl_redis_addr_credentials(&a, why, sizeof why), -1);
  ASSERT_TRUE(strstr(why, "longer") != NULL);
  unlink(path);
  ASSERT_EQ_I64(dl_redis_addr_credentials(&a, why, sizeof why), -1); /* unreadable: said */
  ASSERT_TRUE(strstr(why, "DYLIVE_REDIS_PASSWORD_FILE") != NULL);
  unsetenv("DYLIVE_REDIS_PASSWORD_FILE");
  unsetenv("DYLIVE_SENTINEL_PASSWORD");
  return 0;
}

/* The one TLS client set-up: what it refuses, it refuses whole (nothing half set up is kept). */
int test_tls_client_ctx_refusals(void) {
  char why[200] = "";
  SSL_CTX *ctx = dl_tls_client_ctx(NULL, NULL, NULL, why, sizeof why); /* the system store */
  ASSERT_TRUE(ctx != NULL);
  SSL *ssl = SSL_new(ctx);
  ASSERT_TRUE(ssl != NULL);
  ASSERT_EQ_I64(dl_tls_bind(ssl, "127.0.0.1"), 0);
  ASSERT_TRUE(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) == NULL); /* no SNI for an address */
  ASSERT_EQ_I64(dl_tls_bind(ssl, "redis.example"), 0);
  ASSERT_EQ_STR(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "redis.example");
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ASSERT_TRUE(dl_tls_client_ctx("/nonexistent/ca.pem", NULL, NULL, why, sizeof why) == NULL);
  ASSERT_TRUE(strstr(why, "--redis-ca-file") != NULL);
  /* a certificate without its key (dylivectl used to try the certificate file as the key) */
  ASSERT_TRUE(dl_tls_client_ctx(NULL, "/nonexistent/cert.pem", NULL, why, sizeof why) == NULL);
  ASSERT_TRUE(strstr(why, "go together") != NULL);
  ASSERT_TRUE(dl_tls_client_ctx(NULL, "/nonexistent/cert.pem", "/nonexistent/key.pem", why, sizeof why) == NULL);
  ASSERT_TRUE(strstr(why, "client certificate") != NULL);
  return 0;
}
