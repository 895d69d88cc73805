/* dl_reply: the pooled hiredis reply objects are the replies hiredis's own functions make (hostile
 * and cut-short input included), and a warm pool makes the next ones without allocating. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_reply.h"
#include "dl_test.h"

/* One reply from RESP bytes, with hiredis's functions (pooled = 0) or ours; *rc: the reader's. */
static redisReply *parse(const char *bytes, size_t len, int pooled, int *rc) {
  redisReader *rd = redisReaderCreate();
  if (pooled) rd->fn = dl_reply_fns();
  void *r = NULL;
  redisReaderFeed(rd, bytes, len);
  *rc = redisReaderGetReply(rd, &r);
  redisReaderFree(rd);
  return r;
}

static int same(const redisReply *a, const redisReply *b) {
  if (!a || !b) return a == b;
  if (a->type != b->type) return 0;
  switch (a->type) {
  case REDIS_REPLY_ARRAY:
    if (a->elements != b->elements) return 0;
    for (size_t i = 0; i < a->elements; i++)
      if (!same(a->element[i], b->element[i])) return 0;
    return 1;
  case REDIS_REPLY_INTEGER:
    return a->integer == b->integer;
  case REDIS_REPLY_NIL:
    return 1;
  default:
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0 && a->str[a->len] == 0;
  }
}

int test_reply_pool_same_replies(void) {
  char big[9000];
  int bl = snprintf(big, sizeof big, "$%d\r\n", 8000);
  memset(big + bl, 'x', 8000);
  memcpy(big + bl + 8000, "\r\n", 2);
  struct {
    const char *b;
    size_t n;
  } cases[] = {
      {"+OK\r\n", 0},
      {"-ERR wrong\r\n", 0},
      {":-42\r\n", 0},
      {"$-1\r\n", 0},
      {"*-1\r\n", 0},
      {"*0\r\n", 0},
      {"$0\r\n\r\n", 0},
      /* a grouped room write's reply: per room {code, written, desired} or an error */
      {"*3\r\n*3\r\n:0\r\n:12\r\n$0\r\n\r\n-WRONGTYPE Operation\r\n*3\r\n:0\r\n:1\r\n$7\r\nstopped\r\n", 0},
      {"*2\r\n*2\r\n*1\r\n*1\r\n:1\r\n$3\r\nabc\r\n$-1\r\n", 0},
      {big, (size_t)bl + 8002},
      /* cut short, and not RESP at all: no reply (and nothing leaks: ASan) */
      {"*3\r\n:1\r\n$5\r\nab", 0},
      {"*2\r\n:1\r\n?what\r\n", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    size_t n = cases[i].n ? cases[i].n : strlen(cases[i].b);
    int rc1, rc2;
    redisReply *a = parse(cases[i].b, n, 0, &rc1);
    redisReply *b = parse(cases[i].b, n, 1, &rc2);
    ASSERT_TRUE(rc1 == rc2);
    ASSERT_TRUE(same(a, b));
    if (a) freeReplyObject(a);
    dl_reply_free(b);
  }
  dl_reply_pool_drain();
  return 0;
}

/* A reply given back goes to the pool, and the next one is made from it: a grouped room-write
 * reply of 2 rooms is 9 nodes, 2 strings and 3 element arrays; all 14 are held after the free and
 * all taken again by the next parse (none malloc'd); the strings come back where they were. */
int test_reply_pool_reuses(void) {
  const char *g = "*2\r\n*3\r\n:0\r\n:12\r\n$5\r\nhello\r\n*3\r\n:0\r\n:1\r\n$0\r\n\r\n";
  int rc;
  dl_reply_pool_drain();
  ASSERT_EQ_U64(dl_reply_pool_held(), 0);
  redisReply *a = parse(g, strlen(g), 1, &rc);
  ASSERT_TRUE(rc == REDIS_OK && a && a->elements == 2);
  ASSERT_EQ_U64(dl_reply_pool_held(), 0);
  dl_reply_free(a);
  ASSERT_EQ_U64(dl_reply_pool_held(), 14);
  redisReply *b = parse(g, strlen(g), 1, &rc);
  ASSERT_TRUE(rc == REDIS_OK && b && b->elements == 2);
  ASSERT_EQ_U64(dl_reply_pool_held(), 0);
  ASSERT_TRUE(!strcmp(b->element[0]->element[2]->str, "hello") && b->element[1]->element[2]->len == 0);
  ASSERT_EQ_U64(b->element[0]->element[1]->integer, 12);
  dl_reply_free(b);
  dl_reply_free(NULL);
  dl_reply_pool_drain();
  ASSERT_EQ_U64(dl_reply_pool_held(), 0);
  return 0;
}
