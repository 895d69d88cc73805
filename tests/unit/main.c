/* dl_unit — one executable, one named case per ctest entry: `dl_unit <case>` (or `all`). */
#include <stdio.h>
#include <string.h>

#include "dl_test.h"
#include "tu.h"

#include "dl_unit_cases.h" /* generated: every int test_<name>(void) of tests/unit/test_*.c */

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
