/* dl_wsframe — a client's WebSocket data frame, written by hand (RFC 6455 §5.2, §5.3): FIN, a
 * binary opcode, the payload length in its shortest form, the masking key, the masked payload.
 *
 * What for: a blasted room's acks (PROTOCOL §3.4) — one per pushed frame — go out as many frames
 * in one send instead of one send (and one write-readiness round) each. The bytes are those lws
 * writes for one binary message; only their grouping on the TCP stream differs, which WebSocket
 * does not see. Pure. */
#ifndef DL_WSFRAME_H
#define DL_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

/* Header bytes of a frame of `len` payload bytes (2, 4 or 10, and the 4 of the key). */
size_t dl_wsframe_header_len(size_t len);

/* Writes the frame of payload p[0..len) with masking key `key` into out; returns its length
 * (dl_wsframe_header_len(len) + len), or 0 when cap is too small. p and out must not overlap. */
size_t dl_wsframe_masked(uint8_t *out, size_t cap, const uint8_t *p, size_t len, const uint8_t key[4]);

#endif
