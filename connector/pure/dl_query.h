/* dl_query — query strings as a browser builds them (URLSearchParams), so that a standard query
 * parser on the other side reads back exactly the bytes we meant.
 *
 * Every value (and name) is percent-encoded: only A–Z a–z 0–9 and "*-._" stay as they are, every
 * other byte becomes %XX (upper-case hex), UTF-8 multi-byte characters byte by byte. The one
 * difference from URLSearchParams is the space: %20 (what Douyin's web client and J send, PROTOCOL
 * §9.3) instead of '+'. A raw '+' would be read as a space by every standard parser: the WebSocket
 * signature alphabet contains '+' and '/', so a raw signature breaks about one connection in five.
 *
 * Pure: no I/O, no allocation. */
#ifndef DL_QUERY_H
#define DL_QUERY_H

#include <stddef.h>

#include "dl_err.h"

/* Appends "name=<escaped value>" at out[*len], preceded by '&' unless *len is 0. value NULL is
 * the empty value. DL_ELIMIT (nothing appended) when it does not fit. */
dl_err dl_query_add(char *out, size_t cap, size_t *len, const char *name, const char *value);

#endif
