#include "dl_hist.h"

const double dl_hist_bounds[DL_HIST_BUCKETS] = {0.00025, 0.0005, 0.001, 0.002, 0.0025, 0.005, 0.01,
                                                0.025,   0.05,   0.1,   0.25,  0.5,    1,     2.5,
                                                5,       10,     20,    30,    60};

void dl_hist_observe(dl_hist *h, double s, uint64_t count) {
  if (!count) return;
  if (s < 0) s = 0;
  size_t i = 0;
  while (i < DL_HIST_BUCKETS && s > dl_hist_bounds[i]) i++;
  h->counts[i] += count;
  h->n += count;
  h->sum += s * (double)count;
}

void dl_hist_render(const dl_hist *h, const char *name, const char *help, dl_buf *out) {
  dl_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t acc = 0;
  for (size_t i = 0; i < DL_HIST_BUCKETS; i++) {
    acc += h->counts[i];
    dl_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, dl_hist_bounds[i], (unsigned long long)acc);
  }
  dl_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->n,
                name, h->sum, name, (unsigned long long)h->n);
}
