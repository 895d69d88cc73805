/* dl_log — one line per record, JSON (default) or text, level-filtered and flood-proof.
 * Thread-safe: a record is formatted into a stack buffer and written with one write(2). */
#ifndef DL_LOG_H
#define DL_LOG_H

#include <stdint.h>

typedef enum { DL_LOG_DEBUG, DL_LOG_INFO, DL_LOG_WARN, DL_LOG_ERROR } dl_log_level;

void dl_log_setup(dl_log_level min, int json, const char *worker_id);
int dl_log_parse_level(const char *s, dl_log_level *out);
int dl_log_enabled(dl_log_level l);

/* dl_log(level, event, fmt, ...): `event` is a short machine name ("room_live"), the message a
 * human sentence. Extra key=values go in the message. */
void dl_log(dl_log_level l, const char *event, const char *live_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Rate limiting for hostile-input logs: returns 1 when a line may be logged for this key now
 * (at most `per_sec` lines per second per limiter); suppressed lines are counted and reported on
 * the next allowed line. */
typedef struct dl_ratelimit {
  int64_t window_start_ms;
  unsigned count;
  unsigned suppressed;
} dl_ratelimit;
int dl_ratelimit_allow(dl_ratelimit *rl, int64_t now_ms, unsigned per_sec, unsigned *suppressed);

int64_t dl_now_ms(void);        /* wall clock, ms since epoch */
int64_t dl_mono_ms(void);       /* monotonic ms */
int64_t dl_mono_us(void);       /* monotonic µs (latencies) */

#endif
