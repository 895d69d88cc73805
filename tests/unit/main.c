/* dl_unit — one executable, one named case per ctest entry: `dl_unit <case>` (or `all`). */
#include <stdio.h>
#include <string.h>

#include "dl_test.h"
#include "tu.h"

#define DL_TEST_CASES(X)             \
  X(capture_chat_2022_12_27)         \
  X(capture_chat_2022_12_28)         \
  X(capture_member_like_like)        \
  X(capture_gift_frame)              \
  X(capture_member_2026)             \
  X(capture_ack_roundtrip)           \
  X(client_frames)                   \
  X(b64)                             \
  X(utf8)                            \
  X(gunzip_ok)                       \
  X(gunzip_corrupt)                  \
  X(gunzip_bomb)                     \
  X(pballoc_budget)                  \
  X(pbscrub_wrong_wire_types)        \
  X(malformed_table)                 \
  X(bad_message_becomes_raw)         \
  X(limits)                          \
  X(normalize_types)                 \
  X(normalize_strings)               \
  X(normalize_fallbacks)             \
  X(gift_streaks)                    \
  X(gift_eviction)                   \
  X(gift_export_import)              \
  X(gift_decoder_integration)

#define DECL(name) int test_##name(void);
DL_TEST_CASES(DECL)
#undef DECL

static const dl_test_case cases[] = {
#define ENTRY(name) {#name, test_##name},
    DL_TEST_CASES(ENTRY)
#undef ENTRY
};

#ifndef DYLIVE_CAPTURES_DIR
#define DYLIVE_CAPTURES_DIR "../shared/captures"
#endif
const char *tu_captures_dir = DYLIVE_CAPTURES_DIR;

int main(int argc, char **argv) {
  const char *want = argc > 1 ? argv[1] : "all";
  int failed = 0, ran = 0;
  if (argc > 2) tu_captures_dir = argv[2];
  if (strcmp(want, "--list") == 0) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) puts(cases[i].name);
    return 0;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (strcmp(want, "all") != 0 && strcmp(want, cases[i].name) != 0) continue;
    ran++;
    int r = cases[i].fn();
    printf("%s %s\n", r ? "FAIL" : "ok  ", cases[i].name);
    failed += r != 0;
  }
  if (!ran) {
    fprintf(stderr, "no test case named %s\n", want);
    return 2;
  }
  return failed ? 1 : 0;
}
