/* Pieces of the Douyin side that other modules lean on: the WebSocket's reconnect pacing as
 * PROTOCOL §3.6 states it, and the small shared helpers (random source, RC4). */
#include <stdint.h>
#include <string.h>

#include "dl_backoff.h"
#include "dl_rand.h"
#include "dl_rc4.h"
#include "dl_test.h"

/* PROTOCOL §3.6 (J reconnectDecision): 1.5 s doubling to 60 s, jitter up to 1.2 s added; a
 * refused handshake: 10 s doubling to 60 s, no jitter. */
int test_backoff_added_jitter(void) {
  dl_backoff b;
  dl_backoff_init_added(&b, 1500, 60000, 1200, 7);
  int64_t d = 1500, seen_jitter = 0;
  for (int i = 0; i < 10; i++) {
    int64_t w = dl_backoff_next(&b);
    ASSERT_TRUE(w >= d && w < d + 1200);
    seen_jitter |= w != d;
    d = d * 2 > 60000 ? 60000 : d * 2;
  }
  ASSERT_TRUE(seen_jitter);
  dl_backoff_reset(&b); /* a connection that delivered a frame */
  int64_t w = dl_backoff_next(&b);
  ASSERT_TRUE(w >= 1500 && w < 2700);
  dl_backoff r;
  dl_backoff_init_added(&r, 10000, 60000, 0, 0);
  const int64_t want[] = {10000, 20000, 40000, 60000, 60000};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) ASSERT_EQ_I64(dl_backoff_next(&r), want[i]);
  return 0;
}

int test_rand_and_rc4(void) {
  uint64_t s = 0, t = 0; /* a zero state does not stick at zero */
  ASSERT_TRUE(dl_rand_next(&s) != 0 && s != 0);
  ASSERT_EQ_U64(dl_rand_next(&t), s); /* deterministic from the state */
  uint8_t buf[5] = {1, 2, 3, 4, 5};
  dl_rc4((const uint8_t *)"Key", 3, buf, sizeof buf);
  dl_rc4((const uint8_t *)"Key", 3, buf, sizeof buf);
  ASSERT_EQ_MEM(buf, "\x01\x02\x03\x04\x05", 5); /* its own inverse */
  dl_rc4((const uint8_t *)"k", 0, buf, sizeof buf); /* no key: untouched */
  ASSERT_EQ_MEM(buf, "\x01\x02\x03\x04\x05", 5);
  return 0;
}
