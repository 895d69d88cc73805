/* dl_bucket — a token bucket (rate per second, burst), for pacing new connections and HTTP
 * requests to Douyin: bursts of reconnects are what gets IPs rate-limited (PROTOCOL §7). */
#ifndef DL_BUCKET_H
#define DL_BUCKET_H

#include <stdint.h>

typedef struct dl_bucket {
  double rate, burst, tokens;
  int64_t last_ms;
} dl_bucket;

void dl_bucket_init(dl_bucket *b, double rate_per_s, double burst, int64_t now_ms);
/* Takes one token: returns 0 when granted, else the milliseconds to wait before one is there. */
int64_t dl_bucket_take(dl_bucket *b, int64_t now_ms);

#endif
