/* dl_test — typed asserts that print both sides and file:line (libuv test/task.h style).
 * A failed assert prints and aborts the case (return 1 from the enclosing int function). */
#ifndef DL_TEST_H
#define DL_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_TEST_FAIL_(fmt, ...)                                                          \
  do {                                                                                   \
    fprintf(stderr, "%s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__);                \
    return 1;                                                                            \
  } while (0)

#define ASSERT_TRUE(c)                                                                   \
  do {                                                                                   \
    if (!(c)) DL_TEST_FAIL_("ASSERT_TRUE(%s) failed", #c);                               \
  } while (0)

#define ASSERT_FALSE(c)                                                                  \
  do {                                                                                   \
    if (c) DL_TEST_FAIL_("ASSERT_FALSE(%s) failed", #c);                                 \
  } while (0)

#define ASSERT_EQ_U64(a, b)                                                              \
  do {                                                                                   \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                     \
    if (a_ != b_)                                                                        \
      DL_TEST_FAIL_("ASSERT_EQ_U64(%s, %s): %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);   \
  } while (0)

#define ASSERT_EQ_I64(a, b)                                                              \
  do {                                                                                   \
    int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                        \
    if (a_ != b_)                                                                        \
      DL_TEST_FAIL_("ASSERT_EQ_I64(%s, %s): %" PRId64 " != %" PRId64, #a, #b, a_, b_);   \
  } while (0)

#define ASSERT_LE_U64(a, b)                                                              \
  do {                                                                                   \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                     \
    if (!(a_ <= b_))                                                                     \
      DL_TEST_FAIL_("ASSERT_LE_U64(%s, %s): %" PRIu64 " > %" PRIu64, #a, #b, a_, b_);    \
  } while (0)

#define ASSERT_EQ_STR(a, b)                                                              \
  do {                                                                                   \
    const char *a_ = (a), *b_ = (b);                                                     \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                               \
      DL_TEST_FAIL_("ASSERT_EQ_STR(%s, %s): \"%s\" != \"%s\"", #a, #b,                   \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                             \
  } while (0)

#define ASSERT_EQ_MEM(a, b, n)                                                           \
  do {                                                                                   \
    const unsigned char *a_ = (const unsigned char *)(a), *b_ = (const unsigned char *)(b); \
    size_t n_ = (n);                                                                     \
    for (size_t i_ = 0; i_ < n_; i_++)                                                   \
      if (a_[i_] != b_[i_])                                                              \
        DL_TEST_FAIL_("ASSERT_EQ_MEM(%s, %s): byte %zu: %02x != %02x", #a, #b, i_,       \
                      a_[i_], b_[i_]);                                                   \
  } while (0)

/* Error codes printed by name. */
#define ASSERT_EQ_ERR(a, b)                                                              \
  do {                                                                                   \
    dl_err a_ = (a), b_ = (b);                                                           \
    if (a_ != b_)                                                                        \
      DL_TEST_FAIL_("ASSERT_EQ_ERR(%s, %s): %s != %s", #a, #b, dl_err_name(a_),          \
                    dl_err_name(b_));                                                    \
  } while (0)

/* Runs a sub-check that returns non-zero on failure (helpers written with the asserts). */
#define CHECK(call)                                                                      \
  do {                                                                                   \
    if ((call) != 0) DL_TEST_FAIL_("  from %s", #call);                                  \
  } while (0)

/* A whole file into a NUL-terminated malloc'd buffer (fixtures, captures); NULL when unreadable. */
static inline char *dl_test_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
  if (b) b[n] = 0;
  fclose(f);
  *len = n > 0 ? (size_t)n : 0;
  return b;
}

typedef int (*dl_test_fn)(void);
typedef struct dl_test_case {
  const char *name;
  dl_test_fn fn;
} dl_test_case;

#endif
