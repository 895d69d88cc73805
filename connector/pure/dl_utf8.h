/* dl_utf8 — make hostile strings valid UTF-8 before they reach JSON.
 *
 * Douyin strings are protobuf `string`s, which the wire does not validate. cJSON escapes quotes,
 * backslashes and control characters but copies other bytes through, so an invalid byte would
 * make the event invalid UTF-8. Each maximal invalid subsequence (Unicode §3.9, "substitution of
 * maximal subparts") becomes U+FFFD; overlongs, surrogates and code points above U+10FFFF are
 * invalid. */
#ifndef DL_UTF8_H
#define DL_UTF8_H

#include <stddef.h>

/* 1 when s[0..len) is valid UTF-8, else 0. */
int dl_utf8_valid(const char *s, size_t len);

/* A malloc'd NUL-terminated copy of s[0..len) with every invalid sequence replaced by U+FFFD
 * (EF BF BD). NULL on allocation failure. *out_len gets the length when out_len is not NULL. */
char *dl_utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* The step both of the above take: the length of the valid UTF-8 sequence at s[i..len) (1 for
 * ASCII), or 0 when the bytes there are not one; on 0, *skip gets the length of the maximal
 * invalid subpart that one U+FFFD replaces (at least 1). i < len. */
size_t dl_utf8_seq(const unsigned char *s, size_t i, size_t len, size_t *skip);

#endif
