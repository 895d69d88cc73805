/* dl_pbscrub — protobuf-c unpack that survives fields of the wrong wire type.
 *
 * protobuf-c fails a whole message when a field it knows arrives with another wire type (e.g.
 * ChatMessage.chat_by is a string in one public schema and a varint in another). PROTOCOL §8
 * asks to skip such a field instead. dl_pb_unpack() tries protobuf-c first; only when that fails
 * it rewrites the bytes, walking the message descriptors (generic, no per-type code): known
 * fields whose wire type does not match their descriptor are dropped (length-delimited is
 * accepted for packed repeated scalars), groups are dropped (protobuf-c cannot parse them),
 * sub-messages are scrubbed recursively and their lengths re-encoded, a sub-message that is not
 * protobuf at all is dropped. Unknown fields are copied. Then it unpacks again.
 */
#ifndef DL_PBSCRUB_H
#define DL_PBSCRUB_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "dl_err.h"
#include "dl_pballoc.h"

/* Nesting the scrubber follows (sub-messages and groups). The Douyin schema nests about 5 deep;
 * 32 leaves room for growth and keeps the C stack bounded against hostile nesting. Deeper
 * sub-messages are copied as they are, deeper groups make the input malformed. */
#define DL_PBSCRUB_MAX_DEPTH 32

/* Unpacks buf[0..len) as desc with a's allocator, scrubbing on failure (see above).
 * *scrubbed (may be NULL) is set to 1 when the scrub pass was needed and it succeeded.
 * Errors: DL_ELIMIT (a's budget refused an allocation), DL_EPROTO (malformed even after the
 * scrub), DL_ENOMEM. *out lives in a's arena: release it with dl_pballoc_release (to a mark
 * taken before) or dl_pballoc_reset. A failed call leaves a's bytes in use as they were. */
dl_err dl_pb_unpack(const ProtobufCMessageDescriptor *desc, dl_pballoc *a, const uint8_t *buf,
                    size_t len, ProtobufCMessage **out, int *scrubbed);

/* The rewrite alone: *out (malloc'd, at most len bytes, caller frees) and *out_len get the
 * scrubbed bytes, *dropped (may be NULL) the number of fields dropped.
 * Errors: DL_EPROTO when the top level is not protobuf, DL_ENOMEM. */
dl_err dl_pbscrub(const ProtobufCMessageDescriptor *desc, const uint8_t *in, size_t len,
                  uint8_t **out, size_t *out_len, size_t *dropped);

/* Counts the top-level occurrences of field number `field` without allocating (used to refuse a
 * Response with too many messages before protobuf-c sizes arrays for it). DL_EPROTO when buf is
 * not protobuf. */
dl_err dl_pb_count_field(const uint8_t *buf, size_t len, uint32_t field, size_t *count);

/* The value of the last top-level length-delimited occurrence of `field` (protobuf merge
 * semantics aside, the last one wins for scalars). DL_ENOTFOUND when absent, DL_EPROTO when buf
 * is not protobuf. *val points into buf. */
dl_err dl_pb_find_bytes(const uint8_t *buf, size_t len, uint32_t field, const uint8_t **val,
                        size_t *val_len);

/* The value of field `field` among m's unknown fields (fields its descriptor does not declare)
 * when it occurs there exactly once and as a varint. DL_ENOTFOUND when absent, repeated or of
 * another wire type (e.g. a packed list), DL_EPROTO when the varint is malformed. */
dl_err dl_pb_unknown_varint(const ProtobufCMessage *m, uint32_t field, uint64_t *v);

#endif
