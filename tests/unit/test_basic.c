/* Small modules: client frames, base64, UTF-8, gunzip, the bounded allocator. */
#include <stdlib.h>
#include <sys/resource.h>
#include <zlib.h>

#include "dl_b64.h"
#include "dl_gunzip.h"
#include "dl_pballoc.h"
#include "dl_pbscrub.h"
#include "dl_test.h"
#include "dl_utf8.h"
#include "dl_tlist.h"
#include "dl_wsframe.h"
#include "tu.h"

int test_client_frames(void) {
  uint8_t buf[64];
  static const uint8_t hb[] = {0x3a, 0x02, 0x68, 0x62};
  ASSERT_EQ_U64(dl_frame_build_heartbeat(buf, sizeof buf), 4);
  ASSERT_EQ_MEM(buf, hb, 4);
  ASSERT_EQ_U64(dl_frame_build_heartbeat(buf, 3), 0);

  /* PROTOCOL §3.4: 10 <varint log_id> 3a 03 61 63 6b 42 <varint len> <ext> */
  static const uint8_t want[] = {0x10, 0xAC, 0x02, 0x3a, 0x03, 'a', 'c', 'k',
                                 0x42, 0x03, 'x',  '|',  'y'};
  size_t n = dl_frame_build_ack(300, "x|y", buf, sizeof buf);
  ASSERT_EQ_U64(n, sizeof want);
  ASSERT_EQ_MEM(buf, want, sizeof want);
  ASSERT_EQ_U64(dl_frame_build_ack(300, "x|y", buf, sizeof want), sizeof want); /* exact fit */
  ASSERT_EQ_U64(dl_frame_build_ack(300, "x|y", buf, sizeof want - 1), 0);
  /* a 19-digit log id (10-byte varint is not needed below 2^63: 9 bytes) and an empty ext */
  n = dl_frame_build_ack(8726349535470258530ULL, NULL, buf, sizeof buf);
  ASSERT_EQ_U64(n, 1 + 9 + 5 + 2);
  Webcast__PushFrame *pf = webcast__push_frame__unpack(NULL, n, buf);
  ASSERT_TRUE(pf);
  ASSERT_EQ_U64(pf->log_id, 8726349535470258530ULL);
  ASSERT_EQ_STR(pf->payload_type, "ack");
  ASSERT_EQ_U64(pf->payload.len, 0);
  webcast__push_frame__free_unpacked(pf, NULL);
  return 0;
}

int test_b64(void) {
  static const struct { const char *in, *out; } v[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  char out[64];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t n = dl_b64_encode((const uint8_t *)v[i].in, strlen(v[i].in), out);
    ASSERT_EQ_U64(n, dl_b64_encoded_len(strlen(v[i].in)));
    ASSERT_EQ_STR(out, v[i].out);
  }
  static const uint8_t bin[] = {0xfb, 0xff, 0x00, 0x3e};
  dl_b64_encode(bin, sizeof bin, out);
  ASSERT_EQ_STR(out, "+/8APg==");
  return 0;
}

int test_b64_unpadded(void) {
  /* the same groups as test_b64 with the '=' left out, over a reversed alphabet */
  static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char rev[] = "/+9876543210zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA";
  static const struct { const char *in, *std, *rev; } v[] = {
      {"", "", ""}, {"f", "Zg", "mf"}, {"fo", "Zm8", "mZD"}, {"foo", "Zm9v", "mZCQ"},
      {"foob", "Zm9vYg", "mZCQnf"},
  };
  char out[64];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t len = strlen(v[i].in);
    size_t n = dl_b64_encode_alphabet((const uint8_t *)v[i].in, len, std, 0, out);
    ASSERT_EQ_U64(n, dl_b64_encoded_len_unpadded(len));
    ASSERT_EQ_STR(out, v[i].std);
    n = dl_b64_encode_alphabet((const uint8_t *)v[i].in, len, rev, 0, out);
    ASSERT_EQ_U64(n, strlen(v[i].rev));
    ASSERT_EQ_STR(out, v[i].rev);
  }
  return 0;
}

int test_utf8(void) {
  static const struct { const char *in; size_t n; const char *out; } v[] = {
      {"abc", 3, "abc"},
      {"\xe5\xb0\x8f\xe5\xbf\x83", 6, "小心"},
      {"a\xff" "b", 3, "a\xEF\xBF\xBD" "b"},
      {"\xc0\xaf", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},            /* overlong '/' */
      {"\xed\xa0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
      {"\xf4\x90\x80\x80", 4,
       "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},     /* > U+10FFFF */
      {"\xe5\xb0", 2, "\xEF\xBF\xBD"},                          /* truncated: one U+FFFD */
      {"\xe5\xb0x", 3, "\xEF\xBF\xBDx"},
      {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},              /* emoji */
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t n;
    char *s = dl_utf8_sanitize(v[i].in, v[i].n, &n);
    ASSERT_TRUE(s);
    ASSERT_EQ_STR(s, v[i].out);
    ASSERT_EQ_U64(n, strlen(v[i].out));
    ASSERT_TRUE(dl_utf8_valid(s, n));
    ASSERT_EQ_U64(dl_utf8_valid(v[i].in, v[i].n), strcmp(v[i].in, v[i].out) == 0);
    free(s);
  }
  return 0;
}

int test_gunzip_ok(void) {
  const char *text = "hello hello hello hello";
  size_t gl, ol;
  uint8_t *g = tu_gzip((const uint8_t *)text, strlen(text), &gl), *o;
  ASSERT_EQ_ERR(dl_gunzip(g, gl, 1024, 1000, &o, &ol), DL_EOK);
  ASSERT_EQ_U64(ol, strlen(text));
  ASSERT_EQ_MEM(o, text, ol);
  free(o);
  /* exactly at the cap is fine, one byte under is a bomb */
  ASSERT_EQ_ERR(dl_gunzip(g, gl, strlen(text), 1000, &o, &ol), DL_EOK);
  free(o);
  ASSERT_EQ_ERR(dl_gunzip(g, gl, strlen(text) - 1, 1000, &o, &ol), DL_EBOMB);
  ASSERT_TRUE(o == NULL);
  /* empty member */
  free(g);
  g = tu_gzip((const uint8_t *)"", 0, &gl);
  ASSERT_EQ_ERR(dl_gunzip(g, gl, 1024, 1000, &o, &ol), DL_EOK);
  ASSERT_EQ_U64(ol, 0);
  free(o);
  free(g);
  return 0;
}

int test_gunzip_corrupt(void) {
  const char *text = "the quick brown fox jumps over the lazy dog, twice: the quick brown fox";
  size_t gl, ol;
  uint8_t *g = tu_gzip((const uint8_t *)text, strlen(text), &gl), *o = NULL;
  ASSERT_EQ_ERR(dl_gunzip(g, 0, 1024, 1000, &o, &ol), DL_EEMPTY);
  ASSERT_EQ_ERR(dl_gunzip((const uint8_t *)"hello world", 11, 1024, 1000, &o, &ol), DL_EGZIP);
  /* truncated anywhere */
  for (size_t cut = 1; cut < gl; cut++) ASSERT_EQ_ERR(dl_gunzip(g, cut, 1024, 0, &o, &ol), DL_EGZIP);
  /* CRC32 (trailer bytes -8..-5) and ISIZE (-4..-1) mismatch */
  uint8_t *bad = malloc(gl);
  memcpy(bad, g, gl);
  bad[gl - 8] ^= 1;
  ASSERT_EQ_ERR(dl_gunzip(bad, gl, 1024, 1000, &o, &ol), DL_EGZIP);
  memcpy(bad, g, gl);
  bad[gl - 1] ^= 1;
  ASSERT_EQ_ERR(dl_gunzip(bad, gl, 1024, 1000, &o, &ol), DL_EGZIP);
  /* a flipped byte in the deflate body */
  memcpy(bad, g, gl);
  bad[12] ^= 0x55;
  ASSERT_EQ_ERR(dl_gunzip(bad, gl, 1024, 1000, &o, &ol), DL_EGZIP);
  ASSERT_TRUE(o == NULL);
  free(bad);
  free(g);
  return 0;
}

/* The output buffer is sized from the gzip trailer's ISIZE, which is only there when the member
 * ends the input: with bytes after the member (allowed, ignored) the first guess is wrong and the
 * buffer grows until the member fits, or the cap refuses it; a reused inflater keeps its buffer. */
int test_gunzip_sizes(void) {
  enum { N = 100000 };
  char *text = malloc(N);
  uint32_t x = 12345;
  for (size_t i = 0; i < N; i++) { /* letters from an LCG: compresses, but not to nothing */
    x = x * 1103515245u + 12345u;
    text[i] = (char)('a' + (x >> 16) % 26);
  }
  size_t gl, ol;
  uint8_t *g = tu_gzip((const uint8_t *)text, N, &gl), *o = NULL;
  uint8_t *tail = malloc(gl + 4);
  memcpy(tail, g, gl);
  memset(tail + gl, 0, 4); /* "ISIZE" 0 */
  ASSERT_EQ_ERR(dl_gunzip(tail, gl + 4, N, 0, &o, &ol), DL_EOK);
  ASSERT_EQ_U64(ol, N);
  ASSERT_EQ_MEM(o, text, N);
  ASSERT_EQ_U64(o[N], 0);
  free(o);
  ASSERT_EQ_ERR(dl_gunzip(tail, gl + 4, N - 1, 0, &o, &ol), DL_EBOMB);
  ASSERT_TRUE(o == NULL);
  /* a reused inflater: big, small, big again, and the trailing-bytes member */
  dl_inflater *z = dl_inflater_new(4096);
  const uint8_t *zo;
  size_t sl;
  uint8_t *small = tu_gzip((const uint8_t *)"short", 5, &sl);
  for (int round = 0; round < 2; round++) {
    ASSERT_EQ_ERR(dl_inflater_run(z, g, gl, N, 0, &zo, &ol), DL_EOK);
    ASSERT_EQ_U64(ol, N);
    ASSERT_EQ_MEM(zo, text, N);
    ASSERT_EQ_ERR(dl_inflater_run(z, small, sl, N, 0, &zo, &ol), DL_EOK);
    ASSERT_EQ_U64(ol, 5);
    ASSERT_EQ_MEM(zo, "short", 6);
    ASSERT_EQ_ERR(dl_inflater_run(z, tail, gl + 4, N, 0, &zo, &ol), DL_EOK);
    ASSERT_EQ_U64(ol, N);
    ASSERT_EQ_MEM(zo, text, N);
    /* the buffer left by a big member is not a licence to pass a smaller member's cap */
    ASSERT_EQ_ERR(dl_inflater_run(z, small, sl, 4, 0, &zo, &ol), DL_EBOMB);
  }
  dl_inflater_free(z);
  free(small);
  free(tail);
  free(g);
  free(text);
  return 0;
}

/* gzip of n zero bytes, streamed so the test never holds the inflated size. */
static uint8_t *zero_bomb(size_t n, size_t *out_len) {
  static uint8_t zeros[1 << 16];
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
  size_t cap = n / 1000 + 4096, done = 0;
  uint8_t *out = malloc(cap);
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  while (done < n) {
    size_t k = n - done < sizeof zeros ? n - done : sizeof zeros;
    zs.next_in = zeros;
    zs.avail_in = (uInt)k;
    done += k;
    deflate(&zs, done == n ? Z_FINISH : Z_NO_FLUSH);
  }
  while (deflate(&zs, Z_FINISH) == Z_OK) {
  }
  *out_len = zs.total_out;
  deflateEnd(&zs);
  return out;
}

#if defined(__SANITIZE_ADDRESS__)
#define DL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DL_TEST_ASAN 1
#endif
#endif
#ifndef DL_TEST_ASAN
#define DL_TEST_ASAN 0
#endif

static long maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int test_gunzip_bomb(void) {
  /* 64 MiB of zeros, ~64 KiB compressed (ratio ~1000). Size cap 16 MiB → refused. */
  size_t gl, ol;
  uint8_t *o = NULL, *g = zero_bomb(64u << 20, &gl);
  long before = maxrss_kib();
  ASSERT_EQ_ERR(dl_gunzip(g, gl, 16u << 20, 0, &o, &ol), DL_EBOMB);
  ASSERT_TRUE(o == NULL);
  long grew = maxrss_kib() - before;
  printf("bomb: %zu compressed bytes, refused at the 16 MiB cap, max RSS grew %ld KiB\n", gl,
         grew);
#if !DL_TEST_ASAN /* ASan's quarantine keeps freed blocks resident: RSS says nothing there */
  ASSERT_TRUE(grew < (24 << 10)); /* the 16 MiB output at most, never the 64 MiB */
#endif
  /* ratio cap alone: 100 × compressed size is far below 64 MiB */
  ASSERT_EQ_ERR(dl_gunzip(g, gl, SIZE_MAX, 100, &o, &ol), DL_EBOMB);
  /* through the decoder: a PushFrame carrying it */
  size_t fl;
  uint8_t *f = tu_frame_payload(g, gl, "gzip", &fl);
  dl_decoder *d = dl_decoder_new("L", NULL, NULL);
  dl_frame fr;
  ASSERT_EQ_ERR(dl_decode_frame(d, f, fl, 1, &fr), DL_EBOMB);
  ASSERT_EQ_U64(fr.n_events, 0);
  ASSERT_TRUE(fr.events == NULL);
  dl_decoder_free(d);
  free(f);
  free(g);

  /* DL_BOMB_GIB=1: the 1 GiB figure (not in the default run: building it takes seconds). */
  if (getenv("DL_BOMB_GIB")) {
    g = zero_bomb((size_t)1 << 30, &gl);
    before = maxrss_kib();
    ASSERT_EQ_ERR(dl_gunzip(g, gl, 16u << 20, 1000, &o, &ol), DL_EBOMB);
    printf("1 GiB bomb: %zu compressed bytes, refused; max RSS grew %ld KiB\n", gl,
           maxrss_kib() - before);
    free(g);
  }
  return 0;
}

int test_pballoc_budget(void) {
  dl_pballoc *a = dl_pballoc_new(4096);
  ProtobufCAllocator *pa = dl_pballoc_allocator(a);
  void *p = pa->alloc(pa->allocator_data, 1000);
  ASSERT_TRUE(p);
  ASSERT_TRUE(dl_pballoc_in_use(a) >= 1000);
  ASSERT_TRUE(pa->alloc(pa->allocator_data, 4000) == NULL);
  ASSERT_TRUE(dl_pballoc_exceeded(a));
  ASSERT_TRUE(pa->alloc(pa->allocator_data, SIZE_MAX) == NULL);
  size_t charged = dl_pballoc_in_use(a);
  pa->free(pa->allocator_data, p); /* a no-op: the arena takes it back at the reset */
  ASSERT_EQ_U64(dl_pballoc_in_use(a), charged);
  dl_pballoc_reset(a);
  ASSERT_EQ_U64(dl_pballoc_in_use(a), 0);
  ASSERT_FALSE(dl_pballoc_exceeded(a));
  /* protobuf-c through it: a message with a 3000-byte string does not fit 2 KiB */
  dl_pballoc_free(a);
  a = dl_pballoc_new(2048);
  pa = dl_pballoc_allocator(a);
  char big[3001];
  memset(big, 'x', 3000);
  big[3000] = 0;
  Webcast__ChatMessage m = WEBCAST__CHAT_MESSAGE__INIT;
  m.content = big;
  size_t n;
  uint8_t *b = tu_pack(&m.base, &n);
  ASSERT_TRUE(webcast__chat_message__unpack(pa, n, b) == NULL);
  ASSERT_TRUE(dl_pballoc_exceeded(a));
  dl_pballoc_reset(a);
  ASSERT_EQ_U64(dl_pballoc_in_use(a), 0);
  /* through dl_pb_unpack the failed unpack's bytes are released at once */
  ProtobufCMessage *out = NULL;
  ASSERT_EQ_ERR(dl_pb_unpack(&webcast__chat_message__descriptor, a, b, n, &out, NULL), DL_ELIMIT);
  ASSERT_EQ_U64(dl_pballoc_in_use(a), 0);
  free(b);
  dl_pballoc_free(a);
  return 0;
}

/* dl_wsframe: a masked client frame, parsed back as a server reads it (RFC 6455 §5.2): for each
 * length form, the header, the key, and the payload unmasked again; too small a buffer writes
 * nothing. */
int test_wsframe_masked(void) {
  static uint8_t p[70000], out[70100];
  for (size_t i = 0; i < sizeof p; i++) p[i] = (uint8_t)(i * 7 + 3);
  const uint8_t key[4] = {0xa1, 0x02, 0xff, 0x5c};
  const size_t lens[] = {0, 1, 125, 126, 200, 65535, 65536, 70000};
  for (size_t t = 0; t < sizeof lens / sizeof *lens; t++) {
    size_t len = lens[t];
    size_t n = dl_wsframe_masked(out, sizeof out, p, len, key);
    ASSERT_EQ_U64(n, dl_wsframe_header_len(len) + len);
    ASSERT_EQ_U64(out[0], 0x82);
    ASSERT_TRUE(out[1] & 0x80);
    size_t plen = out[1] & 0x7f, at = 2;
    if (plen == 126) {
      plen = (size_t)out[2] << 8 | out[3];
      at = 4;
    } else if (plen == 127) {
      plen = 0;
      for (int k = 0; k < 8; k++) plen = plen << 8 | out[2 + k];
      at = 10;
    }
    ASSERT_EQ_U64(plen, len);
    ASSERT_EQ_U64(at, len < 126 ? 2 : len < 65536 ? 4 : 10); /* the shortest form */
    ASSERT_EQ_MEM(out + at, key, 4);
    for (size_t j = 0; j < len; j++) out[at + 4 + j] ^= key[j & 3];
    ASSERT_EQ_MEM(out + at + 4, p, len);
    ASSERT_EQ_U64(dl_wsframe_masked(out, n - 1, p, len, key), 0);
  }
  return 0;
}

/* dl_tlist: nodes come out in due order, equal dues in the order they were added; re-adding moves a
 * node, deleting unlinks it wherever it sits, and nothing is popped before it is due. */
int test_tlist_order(void) {
  static dl_tnode n[300];
  dl_tlist l = {NULL, NULL};
  uint32_t x = 12345;
  for (int i = 0; i < 300; i++) {
    x = x * 1103515245u + 12345u;
    dl_tlist_add(&l, &n[i], i < 200 ? (int64_t)(x >> 24) % 50 : 1000 + i); /* many equal dues, then rising */
  }
  dl_tlist_add(&l, &n[7], 2000);  /* moved to the end */
  dl_tlist_del(&l, &n[299]);      /* the tail before the move: gone */
  dl_tlist_del(&l, &n[299]);      /* twice: harmless */
  ASSERT_TRUE(dl_tlist_pop_due(&l, -1) == NULL);
  int64_t last = -1;
  int count = 0, seen7 = 0, prev_idx = -1;
  dl_tnode *t;
  while ((t = dl_tlist_pop_due(&l, 1998))) {
    ASSERT_TRUE(t->due >= last);
    int idx = (int)(t - n);
    if (t->due == last) ASSERT_TRUE(idx > prev_idx); /* equal dues: first added, first out */
    ASSERT_TRUE(idx != 299);
    if (idx == 7) seen7 = 1;
    last = t->due;
    prev_idx = idx;
    count++;
  }
  ASSERT_EQ_U64(count, 298); /* 300 less the deleted one, less #7 (due 2000, later than 1998) */
  ASSERT_FALSE(seen7);
  t = dl_tlist_pop_due(&l, 2000);
  ASSERT_TRUE(t == &n[7]);
  ASSERT_TRUE(l.head == NULL && l.tail == NULL);
  return 0;
}
