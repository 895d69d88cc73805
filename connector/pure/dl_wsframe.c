#include "dl_wsframe.h"

size_t dl_wsframe_header_len(size_t len) { return (len < 126 ? 2 : len < 65536 ? 4 : 10) + 4; }

size_t dl_wsframe_masked(uint8_t *out, size_t cap, const uint8_t *p, size_t len, const uint8_t key[4]) {
  size_t h = dl_wsframe_header_len(len);
  if (cap < h || cap - h < len) return 0;
  size_t i = 0;
  out[i++] = 0x82; /* FIN, binary */
  if (len < 126) {
    out[i++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    out[i++] = 0x80 | 126;
    out[i++] = (uint8_t)(len >> 8);
    out[i++] = (uint8_t)len;
  } else {
    out[i++] = 0x80 | 127;
    for (int s = 56; s >= 0; s -= 8) out[i++] = (uint8_t)((uint64_t)len >> s);
  }
  for (int k = 0; k < 4; k++) out[i++] = key[k];
  for (size_t j = 0; j < len; j++) out[i + j] = p[j] ^ key[j & 3];
  return h + len;
}
