#include "dl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static dl_log_level g_min = DL_LOG_INFO;
static int g_json = 1;
static char g_worker[128] = "";

void dl_log_setup(dl_log_level min, int json, const char *worker_id) {
  g_min = min;
  g_json = json;
  snprintf(g_worker, sizeof g_worker, "%s", worker_id ? worker_id : "");
}

int dl_log_parse_level(const char *s, dl_log_level *out) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (dl_log_level)i;
      return 0;
    }
  return -1;
}

int dl_log_enabled(dl_log_level l) { return l >= g_min; }

int64_t dl_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dl_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dl_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Appends s to buf as a JSON string body (no quotes), escaping what JSON requires. */
static size_t json_escape(char *buf, size_t cap, size_t at, const char *s) {
  for (; *s && at + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[at++] = '\\';
      buf[at++] = (char)c;
    } else if (c < 0x20) {
      at += (size_t)snprintf(buf + at, cap - at, "\\u%04x", c);
    } else {
      buf[at++] = (char)c;
    }
  }
  return at;
}

/* Appends s for a text line: control characters (a newline would forge a line) as \xNN. */
static size_t text_escape(char *buf, size_t cap, size_t at, const char *s) {
  for (; *s && at + 5 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f || c == '\\') at += (size_t)snprintf(buf + at, cap - at, "\\x%02x", c);
    else buf[at++] = (char)c;
  }
  return at;
}

void dl_log(dl_log_level l, const char *event, const char *live_id, const char *fmt, ...) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (l < g_min) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  char ts[40];
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);

  char line[4096];
  size_t at = 0;
  if (g_json) {
    at += (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", ts, names[l]);
    at = json_escape(line, sizeof line, at, event);
    at += (size_t)snprintf(line + at, sizeof line - at, "\",\"worker\":\"");
    at = json_escape(line, sizeof line, at, g_worker);
    if (live_id && *live_id) {
      at += (size_t)snprintf(line + at, sizeof line - at, "\",\"live_id\":\"");
      at = json_escape(line, sizeof line, at, live_id);
    }
    at += (size_t)snprintf(line + at, sizeof line - at, "\",\"msg\":\"");
    at = json_escape(line, sizeof line, at, msg);
    if (at + 3 > sizeof line) at = sizeof line - 3;
    line[at++] = '"';
    line[at++] = '}';
  } else {
    int w = snprintf(line, sizeof line, "%s %-5s ", ts, names[l]);
    at = w < 0 ? 0 : (size_t)w;
    at = text_escape(line, sizeof line, at, event);
    if (live_id && *live_id) {
      at += (size_t)snprintf(line + at, sizeof line - at, " live_id=");
      at = text_escape(line, sizeof line, at, live_id);
    }
    if (at + 1 < sizeof line) line[at++] = ' ';
    at = text_escape(line, sizeof line, at, msg);
    if (at > sizeof line - 2) at = sizeof line - 2;
  }
  line[at++] = '\n';
  ssize_t wr = write(STDERR_FILENO, line, at);
  (void)wr;
}

int dl_ratelimit_allow(dl_ratelimit *rl, int64_t now_ms, unsigned per_sec, unsigned *suppressed) {
  if (now_ms - rl->window_start_ms >= 1000) {
    rl->window_start_ms = now_ms;
    rl->count = 0;
  }
  if (rl->count < per_sec) {
    rl->count++;
    if (suppressed) *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return 1;
  }
  rl->suppressed++;
  return 0;
}
