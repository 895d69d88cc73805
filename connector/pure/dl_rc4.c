#include "dl_rc4.h"

void dl_rc4(const uint8_t *key, size_t key_len, uint8_t *data, size_t n) {
  if (key_len == 0 || key_len > 256) return;
  uint8_t s[256];
  for (size_t i = 0; i < 256; i++) s[i] = (uint8_t)i;
  uint8_t j = 0; /* uint8_t arithmetic is the mod 256 of the algorithm */
  for (size_t i = 0; i < 256; i++) {
    j = (uint8_t)(j + s[i] + key[i % key_len]);
    uint8_t tmp = s[i];
    s[i] = s[j];
    s[j] = tmp;
  }
  uint8_t i = 0;
  j = 0;
  for (size_t k = 0; k < n; k++) {
    i = (uint8_t)(i + 1);
    j = (uint8_t)(j + s[i]);
    uint8_t tmp = s[i];
    s[i] = s[j];
    s[j] = tmp;
    data[k] ^= s[(uint8_t)(s[i] + s[j])];
  }
}
