#include "sim_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <zlib.h>

void sb_reserve(sbuf_t *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < b->len + extra) nc *= 2;
  uint8_t *np = realloc(b->p, nc);
  if (!np) {
    fprintf(stderr, "dylive-sim: out of memory\n");
    abort();
  }
  b->p = np;
  b->cap = nc;
}

void sb_add(sbuf_t *b, const void *d, size_t n) {
  if (!n) return;
  sb_reserve(b, n);
  memcpy(b->p + b->len, d, n);
  b->len += n;
}

void sb_adds(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_addf(sbuf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[512];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sb_add(b, tmp, (size_t)n);
    return;
  }
  sb_reserve(b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void sb_add_json_str(sbuf_t *b, const char *s, size_t n) {
  sb_add(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sb_add(b, e, 2);
    } else if (c < 0x20 || c == 0x7f) {
      sb_addf(b, "\\u%04x", c);
    } else {
      sb_add(b, &s[i], 1);
    }
  }
  sb_add(b, "\"", 1);
}

void sb_free(sbuf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void pb_put_varint(sbuf_t *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    uint8_t c = v & 0x7f;
    v >>= 7;
    if (v) c |= 0x80;
    tmp[n++] = c;
  } while (v);
  sb_add(b, tmp, n);
}

void pb_put_tag(sbuf_t *b, uint32_t field, uint32_t wt) { pb_put_varint(b, ((uint64_t)field << 3) | wt); }

void pb_put_uint(sbuf_t *b, uint32_t field, uint64_t v) {
  pb_put_tag(b, field, 0);
  pb_put_varint(b, v);
}

void pb_put_bytes(sbuf_t *b, uint32_t field, const void *d, size_t n) {
  pb_put_tag(b, field, 2);
  pb_put_varint(b, n);
  sb_add(b, d, n);
}

static int rd_varint(pbr_t *r, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) return -1;
    uint8_t c = *r->p++;
    x |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

int pb_next(pbr_t *r, pbf_t *f) {
  if (r->p >= r->end) return 0;
  uint64_t key;
  if (rd_varint(r, &key) < 0) return -1;
  f->field = (uint32_t)(key >> 3);
  f->wt = (uint32_t)(key & 7);
  f->v = 0;
  f->d = NULL;
  f->len = 0;
  if (f->field == 0) return -1;
  switch (f->wt) {
    case 0:
      return rd_varint(r, &f->v) < 0 ? -1 : 1;
    case 1:
      if (r->end - r->p < 8) return -1;
      memcpy(&f->v, r->p, 8);
      r->p += 8;
      return 1;
    case 5:
      if (r->end - r->p < 4) return -1;
      {
        uint32_t v32;
        memcpy(&v32, r->p, 4);
        f->v = v32;
      }
      r->p += 4;
      return 1;
    case 2: {
      uint64_t n;
      if (rd_varint(r, &n) < 0) return -1;
      if (n > (uint64_t)(r->end - r->p)) return -1;
      f->d = r->p;
      f->len = (size_t)n;
      r->p += n;
      return 1;
    }
    default:
      return -1;
  }
}

int sim_gunzip(const uint8_t *in, size_t n, size_t limit, uint8_t **out, size_t *outlen) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return -1;
  sbuf_t b = {0};
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)n;
  for (;;) {
    sb_reserve(&b, 16384);
    zs.next_out = b.p + b.len;
    zs.avail_out = (uInt)(b.cap - b.len);
    int rc = inflate(&zs, Z_NO_FLUSH);
    b.len = b.cap - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (b.len > limit || (rc != Z_OK && rc != Z_BUF_ERROR) || (zs.avail_in == 0 && zs.avail_out != 0)) {
      inflateEnd(&zs);
      sb_free(&b);
      return -1;
    }
  }
  inflateEnd(&zs);
  *out = b.p;
  *outlen = b.len;
  return 0;
}

int sim_gzip(const uint8_t *in, size_t n, sbuf_t *out) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)n;
  int rc;
  do {
    sb_reserve(out, 4096 + n / 2);
    zs.next_out = out->p + out->len;
    zs.avail_out = (uInt)(out->cap - out->len);
    rc = deflate(&zs, Z_FINISH);
    out->len = out->cap - zs.avail_out;
  } while (rc == Z_OK || rc == Z_BUF_ERROR);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? 0 : -1;
}

/* ---------------------------------------------------------------- RC4, custom base64 */

void sim_rc4(const uint8_t *key, size_t klen, const uint8_t *in, uint8_t *out, size_t n) {
  uint8_t S[256];
  for (int i = 0; i < 256; i++) S[i] = (uint8_t)i;
  for (size_t i = 0, j = 0; i < 256; i++) {
    j = (j + S[i] + key[i % klen]) & 255;
    uint8_t t = S[i];
    S[i] = S[j];
    S[j] = t;
  }
  for (size_t k = 0, i = 0, j = 0; k < n; k++) {
    i = (i + 1) & 255;
    j = (j + S[i]) & 255;
    uint8_t t = S[i];
    S[i] = S[j];
    S[j] = t;
    out[k] = in[k] ^ S[(S[i] + S[j]) & 255];
  }
}

void sim_b64_encode(const char *alpha, const uint8_t *in, size_t n, int pad, sbuf_t *out) {
  for (size_t i = 0; i < n; i += 3) {
    size_t take = n - i < 3 ? n - i : 3;
    uint32_t v = (uint32_t)in[i] << 16;
    if (take > 1) v |= (uint32_t)in[i + 1] << 8;
    if (take > 2) v |= in[i + 2];
    char q[4] = {alpha[(v >> 18) & 63], alpha[(v >> 12) & 63], alpha[(v >> 6) & 63], alpha[v & 63]};
    sb_add(out, q, take + 1);
    if (pad && take < 3) sb_add(out, "==", 3 - take);
  }
}

int sim_b64_decode(const char *alpha, const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
  if (n % 4 == 1) return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    size_t take = n - i < 4 ? n - i : 4;
    uint32_t v = 0;
    for (size_t j = 0; j < 4; j++) {
      uint32_t d = 0;
      if (j < take) {
        const char *pos = s[i + j] ? strchr(alpha, s[i + j]) : NULL;
        if (!pos) return -1;
        d = (uint32_t)(pos - alpha);
      }
      v = (v << 6) | d;
    }
    size_t bytes = take - 1; /* 4 chars -> 3 bytes, 3 -> 2, 2 -> 1 */
    if (bytes < 3 && (v & ((1u << (8 * (3 - bytes))) - 1))) return -1; /* leftover bits must be zero */
    if (o + bytes > cap) return -1;
    for (size_t j = 0; j < bytes; j++) out[o++] = (uint8_t)(v >> (16 - 8 * j));
  }
  *outlen = o;
  return 0;
}

/* ---------------------------------------------------------------- signature (PROTOCOL §2.3-2.4) */

static void md5_raw(const void *d, size_t n, uint8_t out[16]) {
  unsigned int ol = 16;
  if (!EVP_Digest(d, n, out, &ol, EVP_md5(), NULL) || ol != 16) {
    fprintf(stderr, "dylive-sim: md5 failed\n");
    abort();
  }
}

void sim_md5_hex(const char *s, char hex[33]) {
  uint8_t d[16];
  md5_raw(s, strlen(s), d);
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static const char SIG_ALPHA[] = "Dkdpgh4ZKsQB80/Mfvw36XI1R25+WUAlEi7NLboqYTOPuzmFjJnryx9HVGcaStCe";

static int hex_nib(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int sim_sig_verify(const char *stub_hex, const char *sig) {
  if (strlen(sig) != 16) return SIM_SIG_LEN;
  uint8_t b[12], p[10];
  size_t bl = 0;
  if (sim_b64_decode(SIG_ALPHA, sig, 16, b, sizeof b, &bl) < 0 || bl != sizeof b) return SIM_SIG_CHAR;
  if (!(b[0] & 0x40)) return SIM_SIG_FLAG;
  sim_rc4(&b[1], 1, b + 2, p, sizeof p); /* the 1-byte key b[1] over b[2..11] */
  if (p[1] != 0 || p[2] != 1 || p[3] != 14) return SIM_SIG_CONST;
  uint8_t e0[16], ed[16], stub[16], sd[16];
  md5_raw("", 0, e0);
  md5_raw(e0, 16, ed);
  if (p[4] != ed[14] || p[5] != ed[15]) return SIM_SIG_EMPTY;
  if (strlen(stub_hex) != 32) return SIM_SIG_STUB;
  for (int i = 0; i < 16; i++) {
    int hi = hex_nib(stub_hex[2 * i]), lo = hex_nib(stub_hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return SIM_SIG_STUB;
    stub[i] = (uint8_t)(hi * 16 + lo);
  }
  md5_raw(stub, 16, sd);
  if (p[6] != sd[14] || p[7] != sd[15]) return SIM_SIG_STUB;
  uint8_t x = 0;
  for (int i = 0; i < 9; i++) x ^= p[i];
  if (p[9] != x) return SIM_SIG_XOR;
  return SIM_SIG_OK;
}

const char *sim_sig_why(int code) {
  switch (code) {
  case SIM_SIG_OK: return "ok";
  case SIM_SIG_LEN: return "not 16 characters";
  case SIM_SIG_CHAR: return "character outside the signature alphabet";
  case SIM_SIG_FLAG: return "flag byte lacks 0x40";
  case SIM_SIG_CONST: return "payload constants are not 0,1,14";
  case SIM_SIG_EMPTY: return "md5(md5(\"\")) bytes do not match";
  case SIM_SIG_STUB: return "X-MS-STUB digest bytes do not match the URL (room_id/user_unique_id/sdk)";
  case SIM_SIG_XOR: return "xor checksum does not match";
  default: return "?";
  }
}
