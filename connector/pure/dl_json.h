/* dl_json — a small streaming JSON writer into a dl_buf, for the decoder's events (DESIGN §7: the
 * hot path builds events straight into a buffer it reuses, no tree, no allocation per value).
 *
 * Its output is byte for byte what cJSON_PrintUnformatted printed for the same tree (the events
 * were built with cJSON before): no whitespace; strings escaped as cJSON 1.7 does — `"` `\`
 * \b \f \n \r \t as two-character escapes, the other bytes below 0x20 as \u00xx (lower-case
 * hex), everything else (0x7f, '/', U+2028/2029, all non-ASCII) as it is — after every invalid
 * UTF-8 sequence became U+FFFD (dl_utf8: maximal subparts), so the output is valid UTF-8 whatever
 * the input. Numbers are exact integers (also above 2^53). Keys are written as given: they must
 * be plain ASCII that needs no escape (the decoder's are literals).
 *
 * Errors are sticky: the first DL_ENOMEM / DL_ELIMIT (the dl_buf's cap) is kept in err and every
 * later call does nothing, so a caller checks once at the end. */
#ifndef DL_JSON_H
#define DL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "dl_buf.h"
#include "dl_err.h"

typedef struct dl_json {
  dl_buf *b;
  int first;      /* nothing written yet in the innermost object or array */
  int after_key;  /* a key was written: the next value needs no separator */
  dl_err err;     /* DL_EOK, or the first error */
} dl_json;

/* Appends to b (which keeps what it holds). */
void dl_json_init(dl_json *j, dl_buf *b);
/* In an object: the separator and "key":. */
void dl_json_key(dl_json *j, const char *key);
/* Values (after a key, or as array elements). s NULL writes "". */
void dl_json_str(dl_json *j, const char *s);
void dl_json_strn(dl_json *j, const char *s, size_t n);
void dl_json_u64(dl_json *j, uint64_t v);    /* a number */
void dl_json_i64(dl_json *j, int64_t v);     /* a number */
void dl_json_u64s(dl_json *j, uint64_t v);   /* a decimal string ("123") */
void dl_json_bool(dl_json *j, int v);
void dl_json_obj_begin(dl_json *j);
void dl_json_obj_end(dl_json *j);
void dl_json_arr_begin(dl_json *j);
void dl_json_arr_end(dl_json *j);
/* Escapes s[0..n) as the contents of a JSON string (no quotes) onto b; the rules above. */
dl_err dl_json_escape(dl_buf *b, const char *s, size_t n);
/* Writes v in decimal into out (at least 21 bytes); returns the length (no NUL written). */
size_t dl_json_fmt_u64(char *out, uint64_t v);
size_t dl_json_fmt_i64(char *out, int64_t v);

#endif
