/* dl_rand — the one small pseudo-random source of dylive: xorshift64 (Marsaglia 2003), for
 * jitter, signature nonces and seeds. Fast and good enough to keep a pool of workers from
 * retrying in step; never for anything secret. Pure; the state is the caller's (one per thread). */
#ifndef DL_RAND_H
#define DL_RAND_H

#include <stdint.h>

/* The next value; a zero state (xorshift's one fixed point) is replaced by a constant first. */
static inline uint64_t dl_rand_next(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ULL;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

#endif
