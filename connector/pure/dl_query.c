#include "dl_query.h"

#include <string.h>

static const char hex[] = "0123456789ABCDEF";

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*' || c == '-' ||
         c == '.' || c == '_';
}

static size_t escaped_len(const char *src) {
  size_t n = 0;
  for (const unsigned char *s = (const unsigned char *)src; s && *s; s++) n += unreserved(*s) ? 1 : 3;
  return n;
}

static dl_err escape(char *out, size_t cap, size_t *len, const char *src) {
  size_t need = escaped_len(src);
  if (!out || *len >= cap || need + 1 > cap - *len) return DL_ELIMIT;
  char *o = out + *len;
  for (const unsigned char *s = (const unsigned char *)src; s && *s; s++) {
    if (unreserved(*s)) {
      *o++ = (char)*s;
    } else {
      *o++ = '%';
      *o++ = hex[*s >> 4];
      *o++ = hex[*s & 0xF];
    }
  }
  *o = 0;
  *len += need;
  return DL_EOK;
}

dl_err dl_query_add(char *out, size_t cap, size_t *len, const char *name, const char *value) {
  size_t at = *len;
  size_t need = (at ? 1 : 0) + escaped_len(name) + 1 + escaped_len(value);
  if (!out || at >= cap || need + 1 > cap - at) return DL_ELIMIT;
  if (at) out[at++] = '&';
  escape(out, cap, &at, name);
  out[at++] = '=';
  out[at] = 0;
  escape(out, cap, &at, value);
  *len = at;
  return DL_EOK;
}
