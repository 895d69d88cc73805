/* dl_hist — a Prometheus histogram with fixed buckets (seconds), for write latency and event
 * delay. Observations carry a count (one batch of n events observed at once). */
#ifndef DL_HIST_H
#define DL_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "dl_buf.h"

#define DL_HIST_BUCKETS 19

typedef struct dl_hist {
  uint64_t counts[DL_HIST_BUCKETS + 1]; /* the last: above every bound (+Inf) */
  uint64_t n;
  double sum;
} dl_hist;

/* The bucket bounds in seconds: 0.25 ms … 60 s (the write latency lives around a millisecond). */
extern const double dl_hist_bounds[DL_HIST_BUCKETS];

void dl_hist_observe(dl_hist *h, double seconds, uint64_t count);
/* Appends the text exposition: # HELP, # TYPE, _bucket{le=…}, _sum, _count. */
void dl_hist_render(const dl_hist *h, const char *name, const char *help, dl_buf *out);

#endif
