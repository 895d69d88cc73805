#include "dl_json.h"

#include <string.h>

#include "dl_utf8.h"

/* Input bytes escaped per reservation: a string is escaped in slices so a long one never
 * reserves six times its length at once (6: "\u00xx" is the longest output of one byte). */
#define DL_JSON_SLICE 4096
#define DL_JSON_MAX_OUT_PER_BYTE 6
/* U+FFFD, what an invalid sequence becomes. */
static const char replacement[] = "\xEF\xBF\xBD";
static const char hex[] = "0123456789abcdef";

/* 0: copied as is; 1: ASCII escaped; 2: the start of a multi-byte (or invalid) sequence. */
static const unsigned char cls[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

dl_err dl_json_escape(dl_buf *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t slice_end = n - i > DL_JSON_SLICE ? i + DL_JSON_SLICE : n;
    /* + 3: a sequence that starts in the slice may end up to 3 bytes past it (same length out) */
    dl_err e = dl_buf_reserve(b, (slice_end - i) * DL_JSON_MAX_OUT_PER_BYTE + 3);
    if (e != DL_EOK) return e;
    char *o = (char *)b->p + b->len;
    while (i < slice_end) {
      size_t run = i;
      while (run < slice_end && cls[u[run]] == 0) run++;
      if (run > i) {
        memcpy(o, s + i, run - i);
        o += run - i;
        i = run;
        if (i >= slice_end) break;
      }
      unsigned char c = u[i];
      if (cls[c] == 1) {
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
          *o++ = 'u';
          *o++ = '0';
          *o++ = '0';
          *o++ = hex[c >> 4];
          *o++ = hex[c & 15];
        }
        i++;
        continue;
      }
      size_t skip, k = dl_utf8_seq(u, i, n, &skip);
      if (k) {
        memcpy(o, s + i, k);
        o += k;
        i += k;
      } else {
        memcpy(o, replacement, 3);
        o += 3;
        i += skip;
      }
    }
    b->len = (size_t)(o - (char *)b->p);
  }
  if (b->p) b->p[b->len] = 0;
  return DL_EOK;
}

size_t dl_json_fmt_u64(char *out, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t k = 0; k < n; k++) out[k] = tmp[n - 1 - k];
  return n;
}

size_t dl_json_fmt_i64(char *out, int64_t v) {
  if (v >= 0) return dl_json_fmt_u64(out, (uint64_t)v);
  out[0] = '-';
  return 1 + dl_json_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v); /* INT64_MIN too */
}

void dl_json_init(dl_json *j, dl_buf *b) {
  j->b = b;
  j->first = 1;
  j->after_key = 0;
  j->err = DL_EOK;
}

static void put(dl_json *j, const char *s, size_t n) {
  if (j->err != DL_EOK) return;
  dl_err e = dl_buf_add(j->b, s, n);
  if (e != DL_EOK) j->err = e;
}

/* Before a value: the separator unless it follows a key or opens its container. */
static void value_start(dl_json *j) {
  if (j->after_key) {
    j->after_key = 0;
    return;
  }
  if (!j->first) put(j, ",", 1);
  j->first = 0;
}

void dl_json_key(dl_json *j, const char *key) {
  size_t kl = strlen(key);
  if (j->err != DL_EOK) return;
  dl_err e = dl_buf_reserve(j->b, kl + 4);
  if (e != DL_EOK) {
    j->err = e;
    return;
  }
  char *o = (char *)j->b->p + j->b->len;
  if (!j->first) *o++ = ',';
  *o++ = '"';
  memcpy(o, key, kl);
  o += kl;
  *o++ = '"';
  *o++ = ':';
  *o = 0;
  j->b->len = (size_t)(o - (char *)j->b->p);
  j->first = 0;
  j->after_key = 1;
}

void dl_json_strn(dl_json *j, const char *s, size_t n) {
  value_start(j);
  put(j, "\"", 1);
  if (j->err == DL_EOK) {
    dl_err e = dl_json_escape(j->b, s, n);
    if (e != DL_EOK) j->err = e;
  }
  put(j, "\"", 1);
}

void dl_json_str(dl_json *j, const char *s) {
  if (!s) s = "";
  dl_json_strn(j, s, strlen(s));
}

void dl_json_u64(dl_json *j, uint64_t v) {
  char t[24];
  value_start(j);
  put(j, t, dl_json_fmt_u64(t, v));
}

void dl_json_i64(dl_json *j, int64_t v) {
  char t[24];
  value_start(j);
  put(j, t, dl_json_fmt_i64(t, v));
}

void dl_json_u64s(dl_json *j, uint64_t v) {
  char t[24];
  size_t n = 1;
  t[0] = '"';
  n += dl_json_fmt_u64(t + 1, v);
  t[n++] = '"';
  value_start(j);
  put(j, t, n);
}

void dl_json_bool(dl_json *j, int v) {
  value_start(j);
  if (v) put(j, "true", 4);
  else put(j, "false", 5);
}

static void open_c(dl_json *j, const char *c) {
  value_start(j);
  put(j, c, 1);
  j->first = 1;
}

static void close_c(dl_json *j, const char *c) {
  put(j, c, 1);
  j->first = 0;
  j->after_key = 0;
}

void dl_json_obj_begin(dl_json *j) { open_c(j, "{"); }
void dl_json_obj_end(dl_json *j) { close_c(j, "}"); }
void dl_json_arr_begin(dl_json *j) { open_c(j, "["); }
void dl_json_arr_end(dl_json *j) { close_c(j, "]"); }
