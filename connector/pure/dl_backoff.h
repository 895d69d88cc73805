/* dl_backoff — the one retry pacing of dylive: an exponential delay with a floor, a cap and
 * jitter (full jitter above the floor's half, so a pool of workers that failed together does not
 * retry together). Used for Redis reconnects, room resolution, WebSocket reconnects and refused
 * handshakes. */
#ifndef DL_BACKOFF_H
#define DL_BACKOFF_H

#include <stdint.h>

typedef struct dl_backoff {
  int64_t base_ms, max_ms;   /* first delay, cap */
  int64_t cur_ms;            /* the next delay before jitter; 0 = not failing */
  unsigned failures;         /* in a row */
  uint64_t rng;              /* xorshift state for the jitter */
} dl_backoff;

void dl_backoff_init(dl_backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed);
/* A failure: returns how long to wait before the next attempt (grows ×2 up to the cap, with
 * jitter in [d/2, d]). */
int64_t dl_backoff_next(dl_backoff *b);
/* A success: the next failure starts from the base again. */
void dl_backoff_reset(dl_backoff *b);

#endif
