#include "dl_utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[i..len), or 0 when the bytes there are not one.
 * On 0, *skip gets the length of the maximal invalid subpart to replace (at least 1). */
size_t dl_utf8_seq(const unsigned char *s, size_t i, size_t len, size_t *skip) {
  unsigned char c = s[i];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  *skip = 1;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;       /* overlong */
    if (c == 0xED) hi = 0x9F;       /* UTF-16 surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;       /* overlong */
    if (c == 0xF4) hi = 0x8F;       /* above U+10FFFF */
  } else {
    return 0;
  }
  for (size_t k = 1; k <= need; k++) {
    unsigned char b = i + k < len ? s[i + k] : 0;
    unsigned char blo = k == 1 ? lo : 0x80, bhi = k == 1 ? hi : 0xBF;
    if (i + k >= len || b < blo || b > bhi) {
      *skip = k; /* the lead byte plus the valid continuation bytes before the bad one */
      return 0;
    }
  }
  return need + 1;
}

int dl_utf8_valid(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, skip;
  while (i < len) {
    if (u[i] < 0x80) { i++; continue; }
    size_t n = dl_utf8_seq(u, i, len, &skip);
    if (n == 0) return 0;
    i += n;
  }
  return 1;
}

char *dl_utf8_sanitize(const char *s, size_t len, size_t *out_len) {
  const unsigned char *u = (const unsigned char *)s;
  /* Worst case every byte becomes the 3-byte U+FFFD. */
  if (len > (SIZE_MAX - 1) / 3) return NULL;
  char *out = malloc(len * 3 + 1);
  if (!out) return NULL;
  size_t i = 0, o = 0, skip;
  while (i < len) {
    size_t n = dl_utf8_seq(u, i, len, &skip);
    if (n) {
      memcpy(out + o, s + i, n);
      o += n;
      i += n;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += skip;
    }
  }
  out[o] = '\0';
  if (out_len) *out_len = o;
  return out;
}
