/* dylive-decode-floor — what decoding alone costs per event on this machine: the connector's own
 * decoder (dl_decode_frame_into: gunzip, protobuf-c, normalizing, the events' JSON) over a frames
 * file in memory, with no socket, thread or Redis, and zlib's inflate alone over the same
 * payloads. Whatever a worker spends per event above the first figure is the pipeline around it.
 *
 *   dylive-decode-floor FRAMES_FILE [--passes 3]
 *
 * FRAMES_FILE: [u32 BE length][PushFrame]... (dylive-fixture --out). The first pass warms the
 * decoder (its storage grows to the frames' sizes) and is not timed. Prints one JSON line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dl_decode.h"
#include "dl_gunzip.h"
#include "dl_pbscrub.h"

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct {
  const uint8_t *p;
  size_t len;
} frame_ref;

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: dylive-decode-floor FRAMES_FILE [--passes N]\n");
    return 2;
  }
  int passes = argc >= 4 && !strcmp(argv[2], "--passes") ? atoi(argv[3]) : 3;
  if (passes < 1 || passes > 100) passes = 3;
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    fprintf(stderr, "dylive-decode-floor: cannot open %s\n", argv[1]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  rewind(f);
  uint8_t *buf = size > 0 ? malloc((size_t)size) : NULL;
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "dylive-decode-floor: cannot read %s\n", argv[1]);
    return 1;
  }
  fclose(f);
  size_t n = 0, cap = 1024;
  frame_ref *fr = malloc(cap * sizeof *fr);
  for (size_t o = 0; fr && o + 4 <= (size_t)size;) {
    size_t l = (size_t)buf[o] << 24 | (size_t)buf[o + 1] << 16 | (size_t)buf[o + 2] << 8 | buf[o + 3];
    if (l > (size_t)size - o - 4) break;
    if (n == cap && !(fr = realloc(fr, (cap *= 2) * sizeof *fr))) break;
    fr[n++] = (frame_ref){buf + o + 4, l};
    o += 4 + l;
  }
  dl_decoder *d = dl_decoder_new("1", "2", NULL);
  dl_inflater *z = dl_inflater_new(0);
  if (!fr || !n || !d || !z) {
    fprintf(stderr, "dylive-decode-floor: no frames or no memory\n");
    return 1;
  }
  dl_frame out;
  memset(&out, 0, sizeof out);
  size_t events = 0, bad = 0, in_bytes = 0, out_bytes = 0;
  double t_decode = 0, t_inflate = 0;
  for (int pass = 0; pass <= passes; pass++) { /* pass 0: warm-up */
    double t0 = cpu_now();
    for (size_t i = 0; i < n; i++) {
      if (dl_decode_frame_into(d, fr[i].p, fr[i].len, 0, &out) != DL_EOK) bad += pass == 1;
      else if (pass == 1) events += out.n_events;
    }
    double t1 = cpu_now();
    for (size_t i = 0; i < n; i++) {
      const uint8_t *p, *o;
      size_t pl, ol;
      if (dl_pb_find_bytes(fr[i].p, fr[i].len, 8, &p, &pl) != DL_EOK) continue;
      if (dl_inflater_run(z, p, pl, (size_t)1 << 26, 0, &o, &ol) == DL_EOK && pass == 1) {
        in_bytes += pl;
        out_bytes += ol;
      }
    }
    double t2 = cpu_now();
    if (pass) {
      t_decode += t1 - t0;
      t_inflate += t2 - t1;
    }
  }
  double ev = (double)events * passes;
  printf("{\"frames\": %zu, \"events\": %zu, \"bad_frames\": %zu, \"passes\": %d, \"gzip_bytes_per_frame\": %.0f, "
         "\"inflated_bytes_per_frame\": %.0f, \"decode_us_per_event\": %.3f, \"inflate_us_per_event\": %.3f, "
         "\"decode_events_per_s\": %.0f}\n",
         n, events, bad, passes, (double)in_bytes / n, (double)out_bytes / n, events ? t_decode / ev * 1e6 : 0,
         events ? t_inflate / ev * 1e6 : 0, t_decode > 0 ? ev / t_decode : 0);
  dl_frame_clear(&out);
  dl_inflater_free(z);
  dl_decoder_free(d);
  free(fr);
  free(buf);
  return 0;
}
