/* dl_backoff — the one retry pacing of dylive: an exponential delay with a floor, a cap and
 * jitter, so a pool of workers that failed together does not retry together. Two jitter shapes:
 * full jitter above the delay's half (dl_backoff_init: Redis reconnects, room resolution), or a
 * bounded jitter added to the delay (dl_backoff_init_added: WebSocket reconnects, PROTOCOL §3.6
 * "1.5 s doubling to 60 s, jitter up to 1.2 s" as J's reconnectDecision; refused handshakes
 * without jitter). */
#ifndef DL_BACKOFF_H
#define DL_BACKOFF_H

#include <stdint.h>

typedef struct dl_backoff {
  int64_t base_ms, max_ms;   /* first delay, cap */
  int64_t cur_ms;            /* the next delay before jitter; 0 = not failing */
  int64_t jitter_ms;         /* < 0: [d/2, d]; ≥ 0: d + [0, jitter_ms) */
  unsigned failures;         /* in a row */
  uint64_t rng;              /* xorshift state for the jitter */
} dl_backoff;

void dl_backoff_init(dl_backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed);
/* The same with jitter_ms (≥ 0, 0: none) added to each delay instead. */
void dl_backoff_init_added(dl_backoff *b, int64_t base_ms, int64_t max_ms, int64_t jitter_ms, uint64_t seed);
/* A failure: returns how long to wait before the next attempt (the delay d grows ×2 up to the
 * cap; the wait is d with its jitter: in [d/2, d], or in [d, d + jitter_ms)). */
int64_t dl_backoff_next(dl_backoff *b);
/* A success: the next failure starts from the base again. */
void dl_backoff_reset(dl_backoff *b);

#endif
