/* The hot path's own pieces (DESIGN §7): the JSON writer (byte for byte what cJSON printed), the
 * per-frame arena, the reused inflate state, and a frame decoded again into its own storage. */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dl_arena.h"
#include "dl_gunzip.h"
#include "dl_json.h"
#include "dl_pballoc.h"
#include "dl_pbscrub.h"
#include "dl_test.h"
#include "dl_utf8.h"
#include "tu.h"

/* What the decoder printed before dl_json: cJSON_PrintUnformatted of the sanitized string. */
static char *cjson_string(const char *s, size_t n) {
  char *clean = dl_utf8_sanitize(s, n, NULL);
  cJSON *o = cJSON_CreateString(clean);
  char *p = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  free(clean);
  return p;
}

static char *dl_string(const char *s, size_t n) {
  dl_buf b;
  dl_json j;
  dl_buf_init(&b, 1u << 20);
  dl_json_init(&j, &b);
  dl_json_strn(&j, s, n);
  if (j.err != DL_EOK) {
    dl_buf_free(&b);
    return NULL;
  }
  return (char *)b.p;
}

int test_json_escaping(void) {
  /* every byte value, alone and after a valid prefix */
  for (int c = 1; c < 256; c++) {
    char in[4] = {'a', (char)c, 'z', 0};
    char *want = cjson_string(in, 3), *got = dl_string(in, 3);
    ASSERT_EQ_STR(got, want);
    free(want);
    free(got);
  }
  static const char *cases[] = {
      "", "plain", "q\"uote", "back\\slash", "\b\f\n\r\t", "\x01\x02\x1f\x7f", "a/b</script>",
      "\xe2\x80\xa8\xe2\x80\xa9",          /* U+2028/2029 stay as they are */
      "\xf0\x9f\x90\x9f***",               /* emoji */
      "\xe7\xb4\xab",                      /* CJK */
      "\xc0\xaf", "\xed\xa0\x80",          /* overlong, surrogate */
      "\xf4\x90\x80\x80", "\xe2\x82", "\xff\xfe", "\xf0\x9f\x90", "ok\xe2\x82(",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = strlen(cases[i]);
    char *want = cjson_string(cases[i], n), *got = dl_string(cases[i], n);
    ASSERT_EQ_STR(got, want);
    ASSERT_TRUE(dl_utf8_valid(got, strlen(got)));
    free(want);
    free(got);
  }
  /* random strings, long ones across the writer's 4 KiB slices */
  uint32_t x = 2463534242u;
  for (int k = 0; k < 300; k++) {
    size_t n = k < 280 ? (size_t)(k * 7) % 64 : 4090 + (size_t)k * 13;
    char *in = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      uint8_t b = (uint8_t)(x >> 8);
      in[i] = (char)(b ? b : 0x80);
    }
    in[n] = 0;
    char *want = cjson_string(in, n), *got = dl_string(in, n);
    ASSERT_EQ_STR(got, want);
    free(want);
    free(got);
    free(in);
  }
  return 0;
}

int test_json_structure_numbers(void) {
  dl_buf b;
  dl_json j;
  dl_buf_init(&b, 4096);
  dl_json_init(&j, &b);
  dl_json_obj_begin(&j);
  dl_json_key(&j, "u");
  dl_json_u64(&j, UINT64_MAX);
  dl_json_key(&j, "i");
  dl_json_i64(&j, INT64_MIN);
  dl_json_key(&j, "z");
  dl_json_i64(&j, 0);
  dl_json_key(&j, "s");
  dl_json_u64s(&j, 18446744073709551615ull);
  dl_json_key(&j, "a");
  dl_json_arr_begin(&j);
  dl_json_obj_begin(&j);
  dl_json_key(&j, "t");
  dl_json_bool(&j, 1);
  dl_json_obj_end(&j);
  dl_json_obj_begin(&j);
  dl_json_obj_end(&j);
  dl_json_bool(&j, 0);
  dl_json_arr_end(&j);
  dl_json_key(&j, "e");
  dl_json_arr_begin(&j);
  dl_json_arr_end(&j);
  dl_json_key(&j, "n");
  dl_json_str(&j, NULL);
  dl_json_obj_end(&j);
  ASSERT_EQ_ERR(j.err, DL_EOK);
  ASSERT_EQ_STR((char *)b.p, "{\"u\":18446744073709551615,\"i\":-9223372036854775808,\"z\":0,"
                             "\"s\":\"18446744073709551615\",\"a\":[{\"t\":true},{},false],"
                             "\"e\":[],\"n\":\"\"}");
  cJSON *p = cJSON_Parse((char *)b.p);
  ASSERT_TRUE(cJSON_IsObject(p));
  cJSON_Delete(p);
  /* the buffer's cap: the error sticks, later calls do nothing */
  dl_buf_free(&b);
  dl_buf_init(&b, 8);
  dl_json_init(&j, &b);
  dl_json_obj_begin(&j);
  dl_json_key(&j, "long key");
  ASSERT_EQ_ERR(j.err, DL_ELIMIT);
  dl_json_str(&j, "x");
  ASSERT_EQ_U64(b.len, 1);
  dl_buf_free(&b);
  return 0;
}

int test_arena_reuse_reset(void) {
  dl_arena a;
  dl_arena_init(&a, 64u << 10);
  void *p1 = dl_arena_alloc(&a, 10);
  ASSERT_TRUE(p1);
  ASSERT_EQ_U64((uintptr_t)p1 % alignof(max_align_t), 0);
  dl_arena_mark m = dl_arena_get_mark(&a);
  void *p2 = dl_arena_alloc(&a, 100);
  ASSERT_TRUE(p2 && p2 != p1);
  ASSERT_EQ_U64((uintptr_t)p2 % alignof(max_align_t), 0);
  memset(p2, 0xab, 100);
  dl_arena_release(&a, m);
  ASSERT_TRUE(dl_arena_alloc(&a, 100) == p2); /* the same bytes again */
  ASSERT_TRUE(dl_arena_alloc(&a, 0) != NULL);
  /* many frames of the same shape: blocks are made once */
  for (int frame = 0; frame < 50; frame++) {
    dl_arena_reset(&a);
    for (int k = 0; k < 200; k++) {
      char *q = dl_arena_alloc(&a, 300);
      ASSERT_TRUE(q);
      memset(q, k, 300);
    }
  }
  size_t made = a.blocks_made;
  for (int frame = 0; frame < 50; frame++) {
    dl_arena_reset(&a);
    for (int k = 0; k < 200; k++) ASSERT_TRUE(dl_arena_alloc(&a, 300));
  }
  ASSERT_EQ_U64(a.blocks_made, made);
  /* a huge allocation is given back at the reset (over retain), the small blocks kept */
  ASSERT_TRUE(dl_arena_alloc(&a, 8u << 20));
  ASSERT_TRUE(a.held >= (8u << 20));
  dl_arena_reset(&a);
  ASSERT_LE_U64(a.held, 64u << 10);
  ASSERT_TRUE(dl_arena_alloc(&a, SIZE_MAX - 8) == NULL);
  dl_arena_fini(&a);
  ASSERT_EQ_U64(a.held, 0);
  return 0;
}

int test_pballoc_arena_budget(void) {
  dl_pballoc *a = dl_pballoc_new(8192);
  ProtobufCAllocator *pa = dl_pballoc_allocator(a);
  dl_pballoc_mark m = dl_pballoc_get_mark(a);
  ASSERT_TRUE(pa->alloc(pa->allocator_data, 3000));
  ASSERT_TRUE(pa->alloc(pa->allocator_data, 3000));
  ASSERT_TRUE(pa->alloc(pa->allocator_data, 3000) == NULL); /* 9000 + headers > 8192 */
  ASSERT_TRUE(dl_pballoc_exceeded(a));
  ASSERT_EQ_U64(dl_pballoc_refusals(a), 1);
  dl_pballoc_release(a, m); /* budget and memory back */
  ASSERT_EQ_U64(dl_pballoc_in_use(a), 0);
  ASSERT_TRUE(pa->alloc(pa->allocator_data, 3000));
  dl_pballoc_reset(a);
  ASSERT_FALSE(dl_pballoc_exceeded(a));
  /* a shared arena: two budgets, one set of blocks */
  dl_arena shared;
  dl_arena_init(&shared, 0);
  dl_pballoc *b = dl_pballoc_new(1u << 20);
  dl_pballoc_use_arena(a, &shared);
  dl_pballoc_use_arena(b, &shared);
  Webcast__ChatMessage cm = WEBCAST__CHAT_MESSAGE__INIT;
  cm.content = "hello";
  size_t n;
  uint8_t *buf = tu_pack(&cm.base, &n);
  ProtobufCMessage *out;
  for (int k = 0; k < 100; k++) {
    dl_pballoc_reset(k % 2 ? a : b);
    ASSERT_EQ_ERR(dl_pb_unpack(&webcast__chat_message__descriptor, k % 2 ? a : b, buf, n, &out, NULL),
                  DL_EOK);
    ASSERT_EQ_STR(((Webcast__ChatMessage *)out)->content, "hello");
    protobuf_c_message_free_unpacked(out, dl_pballoc_allocator(k % 2 ? a : b)); /* harmless */
  }
  ASSERT_EQ_U64(shared.blocks_made, 1);
  free(buf);
  dl_pballoc_free(a);
  dl_pballoc_free(b);
  dl_arena_fini(&shared);
  return 0;
}

int test_inflater_reuse(void) {
  const char *text = "hello hello hello hello";
  size_t gl, ol;
  uint8_t *g = tu_gzip((const uint8_t *)text, strlen(text), &gl);
  dl_inflater *z = dl_inflater_new(0);
  const uint8_t *o;
  for (int k = 0; k < 3; k++) {
    ASSERT_EQ_ERR(dl_inflater_run(z, g, gl, 1024, 1000, &o, &ol), DL_EOK);
    ASSERT_EQ_U64(ol, strlen(text));
    ASSERT_EQ_MEM(o, text, ol);
    ASSERT_EQ_U64(o[ol], 0);
  }
  /* the same caps as dl_gunzip, also after a bigger member was inflated */
  ASSERT_EQ_ERR(dl_inflater_run(z, g, gl, strlen(text) - 1, 1000, &o, &ol), DL_EBOMB);
  ASSERT_EQ_ERR(dl_inflater_run(z, g, gl, strlen(text), 1000, &o, &ol), DL_EOK);
  ASSERT_EQ_ERR(dl_inflater_run(z, g, gl - 1, 1024, 1000, &o, &ol), DL_EGZIP);
  ASSERT_EQ_ERR(dl_inflater_run(z, g, 0, 1024, 1000, &o, &ol), DL_EEMPTY);
  ASSERT_EQ_ERR(dl_inflater_run(z, g, gl, 1024, 1000, &o, &ol), DL_EOK); /* usable after errors */
  ASSERT_EQ_MEM(o, text, ol);
  free(g);
  /* a big member: its buffer goes at the trim (above the retained capacity) */
  size_t big = 3u << 20;
  uint8_t *zeros = calloc(1, big);
  g = tu_gzip(zeros, big, &gl);
  ASSERT_EQ_ERR(dl_inflater_run(z, g, gl, 16u << 20, 0, &o, &ol), DL_EOK);
  ASSERT_EQ_U64(ol, big);
  ASSERT_EQ_ERR(dl_inflater_run(z, g, gl, 16u << 20, 100, &o, &ol), DL_EBOMB); /* ratio */
  dl_inflater_trim(z);
  free(zeros);
  free(g);
  dl_inflater_free(z);
  return 0;
}

int test_frame_into_reuse(void) {
  size_t fl;
  uint8_t *frame = tu_read_file(DYLIVE_CAPTURES_DIR "/pushframe_2024-02-26_member_like_like.bin", &fl);
  ASSERT_TRUE(frame);
  dl_decoder *d = dl_decoder_new("L", "R", NULL);
  dl_decode_scratch *s = dl_decode_scratch_new();
  dl_decoder_use_scratch(d, s);
  dl_frame ref, f;
  ASSERT_EQ_ERR(dl_decode_frame(d, frame, fl, 5, &ref), DL_EOK);
  ASSERT_TRUE(ref.n_events > 0);
  memset(&f, 0, sizeof f);
  const uint8_t *store = NULL;
  for (int k = 0; k < 5; k++) {
    ASSERT_EQ_ERR(dl_decode_frame_into(d, frame, fl, 5, &f), DL_EOK);
    if (k == 0) store = f.store.p;
    ASSERT_TRUE(f.store.p == store); /* the same storage, not grown again */
    ASSERT_EQ_U64(f.n_events, ref.n_events);
    for (size_t i = 0; i < f.n_events; i++) {
      ASSERT_EQ_U64(f.events[i].json_len, ref.events[i].json_len);
      ASSERT_EQ_STR(f.events[i].json, ref.events[i].json);
      ASSERT_EQ_STR(f.events[i].type, ref.events[i].type);
      ASSERT_EQ_U64(f.events[i].ts_ms, ref.events[i].ts_ms);
    }
    ASSERT_EQ_STR(f.cursor ? f.cursor : "", ref.cursor ? ref.cursor : "");
    ASSERT_TRUE(f.ack_ext == f.internal_ext);
  }
  /* an error leaves nothing to read but keeps the storage */
  ASSERT_EQ_ERR(dl_decode_frame_into(d, (const uint8_t *)"\x3a\x09hb", 4, 5, &f), DL_EPROTO);
  ASSERT_EQ_U64(f.n_events, 0);
  ASSERT_TRUE(f.cursor == NULL && f.internal_ext == NULL && f.ack_ext == NULL);
  ASSERT_TRUE(f.store.p == store);
  ASSERT_EQ_ERR(dl_decode_frame_into(d, frame, fl, 5, &f), DL_EOK);
  ASSERT_EQ_U64(f.n_events, ref.n_events);
  dl_frame_clear(&f);
  dl_frame_clear(&ref);
  dl_decoder_free(d);
  dl_decode_scratch_free(s);
  free(frame);
  return 0;
}
