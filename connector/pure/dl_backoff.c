#include "dl_backoff.h"

#include "dl_rand.h"

void dl_backoff_init(dl_backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed) {
  b->base_ms = base_ms > 0 ? base_ms : 1;
  b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
  b->cur_ms = 0;
  b->failures = 0;
  b->jitter_ms = -1;
  b->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

void dl_backoff_init_added(dl_backoff *b, int64_t base_ms, int64_t max_ms, int64_t jitter_ms, uint64_t seed) {
  dl_backoff_init(b, base_ms, max_ms, seed);
  b->jitter_ms = jitter_ms > 0 ? jitter_ms : 0;
}

int64_t dl_backoff_next(dl_backoff *b) {
  b->cur_ms = b->cur_ms ? b->cur_ms * 2 : b->base_ms;
  if (b->cur_ms > b->max_ms) b->cur_ms = b->max_ms;
  b->failures++;
  if (b->jitter_ms >= 0)
    return b->cur_ms + (b->jitter_ms ? (int64_t)(dl_rand_next(&b->rng) % (uint64_t)b->jitter_ms) : 0);
  int64_t half = b->cur_ms / 2;
  return half + (int64_t)(dl_rand_next(&b->rng) % (uint64_t)(b->cur_ms - half + 1));
}

void dl_backoff_reset(dl_backoff *b) {
  b->cur_ms = 0;
  b->failures = 0;
}
