/* The ingest thread's message pool (dl_ingest_msg.c): a decay frees the kept messages none took
 * since the one before (the bottom of the stack), and only those: what steady work keeps using
 * stays, the rest of a burst goes (--pool-keep-ms; the command pool's twin is unit.cmd_pool_decay). */
#include <stdio.h>

#include "dl_ingest_int.h"
#include "dl_test.h"

static int test_msg_pool_decay(void) {
  ingest_msg_pool_drain();
  ASSERT_TRUE(ingest_msg_pool_bound(8u << 20, 4096) == DL_EOK);
  dl_in_msg *m[5];
  for (int i = 0; i < 5; i++) ASSERT_TRUE((m[i] = ingest_msg_new()) != NULL);
  for (int i = 0; i < 5; i++) dl_in_msg_free(m[i]); /* a burst's five, kept */
  ASSERT_EQ_U64(dl_ingest_msg_pool_decay(), 0);    /* none known unused yet: the period starts */
  dl_in_msg *a = ingest_msg_new(), *b = ingest_msg_new(); /* steady work: two */
  ASSERT_TRUE(a == m[4] && b == m[3]);
  dl_in_msg_free(b);
  dl_in_msg_free(a);
  size_t three = dl_ingest_msg_pool_decay(); /* the three nobody took */
  ASSERT_TRUE(three > 0 && three % 3 == 0);
  size_t each = three / 3;
  dl_in_msg *again = ingest_msg_new();
  ASSERT_TRUE(again == m[4]); /* the two taken stayed */
  dl_in_msg_free(again);
  ASSERT_EQ_U64(dl_ingest_msg_pool_decay(), each); /* of those, the one not taken this time */
  ASSERT_EQ_U64(dl_ingest_msg_pool_decay(), each); /* and then the last */
  ASSERT_EQ_U64(dl_ingest_msg_pool_decay(), 0);
  ASSERT_TRUE((again = ingest_msg_new()) != NULL); /* an empty pool still makes messages */
  dl_in_msg_free(again);
  ingest_msg_pool_drain();
  return 0;
}

/* A queue of --queue-max frames: every message of a full queue comes back to the pool (with 4096
 * slots whatever --queue-max was, a bigger queue's surplus was freed on its way back and allocated
 * again on the next burst); a decay frees a pool that big, a chunk at a time. */
static int test_msg_pool_holds_the_queue(void) {
  enum { N = 10000 };
  static dl_in_msg *m[N];
  ingest_msg_pool_drain();
  ASSERT_TRUE(ingest_msg_pool_bound(8u << 20, 8192) == DL_EOK); /* 12288 slots */
  for (int i = 0; i < N; i++) ASSERT_TRUE((m[i] = ingest_msg_new()) != NULL);
  for (int i = 0; i < N; i++) dl_in_msg_free(m[i]);
  ASSERT_EQ_U64(dl_ingest_msg_pool_decay(), 0); /* the period starts */
  /* none taken since: all of them went back to the pool and go now (fresh ones: no storage) */
  ASSERT_EQ_U64(dl_ingest_msg_pool_decay(), (uint64_t)N * sizeof(dl_in_msg));
  ASSERT_EQ_U64(dl_ingest_msg_pool_decay(), 0);
  ingest_msg_pool_drain();
  return 0;
}

int main(void) {
  int failures = test_msg_pool_decay() + test_msg_pool_holds_the_queue();
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
