#include "dl_b64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t dl_b64_encoded_len(size_t n) {
  size_t groups = n / 3 + (n % 3 != 0);
  if (groups > (SIZE_MAX - 1) / 4) return SIZE_MAX;
  return groups * 4;
}

size_t dl_b64_encoded_len_unpadded(size_t n) {
  size_t padded = dl_b64_encoded_len(n);
  if (padded == SIZE_MAX) return SIZE_MAX;
  /* a tail of 1 byte leaves two '=' out, a tail of 2 bytes one */
  return n % 3 == 0 ? padded : padded - (3 - n % 3);
}

size_t dl_b64_encode(const uint8_t *in, size_t n, char *out) {
  return dl_b64_encode_alphabet(in, n, b64_alphabet, 1, out);
}

size_t dl_b64_encode_alphabet(const uint8_t *in, size_t n, const char *alphabet, int pad,
                              char *out) {
  size_t i = 0, o = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = alphabet[v >> 6 & 63];
    out[o++] = alphabet[v & 63];
  }
  size_t tail = n - i; /* 0, 1 or 2 bytes; their missing low bits are zero */
  if (tail) {
    uint32_t v = (uint32_t)in[i] << 16 | (tail == 2 ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    if (tail == 2) out[o++] = alphabet[v >> 6 & 63];
    if (pad) {
      out[o++] = '=';
      if (tail == 1) out[o++] = '=';
    }
  }
  out[o] = '\0';
  return o;
}
