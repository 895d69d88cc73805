#include "dl_pbscrub.h"

#include <stdlib.h>
#include <string.h>

/* protobuf wire types (protobuf-c's enum leaves out the group ones). */
enum { WT_VARINT = 0, WT_64BIT = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_32BIT = 5 };

/* Encoded varints: at most 10 bytes for 64 bits; tags at most 5 bytes (field numbers < 2^29). */
#define VARINT_MAX_BYTES 10
#define TAG_MAX_BYTES 5
#define FIELD_NUMBER_MAX 0x1FFFFFFFu

typedef struct pb_field {
  uint32_t number;
  unsigned wt;
  size_t start;     /* offset of the tag */
  size_t tag_end;   /* offset after the tag */
  size_t val;       /* offset of the value (after the length prefix for WT_LEN) */
  size_t end;       /* offset after the field */
  uint64_t varint;  /* value for WT_VARINT, length for WT_LEN */
} pb_field;

static int read_varint(const uint8_t *in, size_t len, size_t *pos, unsigned max_bytes,
                       uint64_t *v) {
  uint64_t r = 0;
  for (unsigned i = 0; i < max_bytes; i++) {
    if (*pos >= len) return -1;
    uint8_t b = in[(*pos)++];
    r |= (uint64_t)(b & 0x7F) << (7 * i);
    if (!(b & 0x80)) {
      *v = r;
      return 0;
    }
  }
  return -1;
}

static size_t write_varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

static int next_field(const uint8_t *in, size_t len, size_t *pos, pb_field *f, unsigned depth);

/* Skips a group body up to and including the END_GROUP of `number`. */
static int skip_group(const uint8_t *in, size_t len, size_t *pos, uint32_t number,
                      unsigned depth) {
  if (depth >= DL_PBSCRUB_MAX_DEPTH) return -1;
  for (;;) {
    pb_field g;
    size_t before = *pos;
    uint64_t tag;
    if (read_varint(in, len, pos, TAG_MAX_BYTES, &tag) < 0) return -1;
    if ((tag & 7) == WT_EGROUP) return (tag >> 3) == number ? 0 : -1;
    *pos = before;
    if (next_field(in, len, pos, &g, depth + 1) <= 0) return -1;
  }
}

/* 1: a field was read into *f; 0: end of input; -1: malformed. */
static int next_field(const uint8_t *in, size_t len, size_t *pos, pb_field *f, unsigned depth) {
  uint64_t tag, n;
  if (*pos >= len) return 0;
  f->start = *pos;
  if (read_varint(in, len, pos, TAG_MAX_BYTES, &tag) < 0) return -1;
  f->tag_end = *pos;
  f->number = (uint32_t)(tag >> 3);
  f->wt = (unsigned)(tag & 7);
  if (f->number == 0 || (tag >> 3) > FIELD_NUMBER_MAX) return -1;
  f->varint = 0;
  switch (f->wt) {
  case WT_VARINT:
    if (read_varint(in, len, pos, VARINT_MAX_BYTES, &f->varint) < 0) return -1;
    f->val = f->start;
    break;
  case WT_64BIT:
    if (len - *pos < 8) return -1;
    f->val = *pos;
    *pos += 8;
    break;
  case WT_32BIT:
    if (len - *pos < 4) return -1;
    f->val = *pos;
    *pos += 4;
    break;
  case WT_LEN:
    if (read_varint(in, len, pos, VARINT_MAX_BYTES, &n) < 0) return -1;
    if (n > len - *pos) return -1;
    f->varint = n;
    f->val = *pos;
    *pos += (size_t)n;
    break;
  case WT_SGROUP:
    f->val = *pos;
    if (skip_group(in, len, pos, f->number, depth) < 0) return -1;
    break;
  default: /* END_GROUP without a start, or the reserved wire types 6 and 7 */
    return -1;
  }
  f->end = *pos;
  return 1;
}

/* Wire type a scalar field of this type is encoded with. */
static unsigned scalar_wire_type(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
    return WT_32BIT;
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return WT_64BIT;
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
    return WT_LEN;
  default: /* int32, sint32, uint32, int64, sint64, uint64, bool, enum */
    return WT_VARINT;
  }
}

/* Whether a packed run of this scalar type is well-formed, so protobuf-c will accept it. */
static int packed_ok(ProtobufCType t, const uint8_t *p, size_t n) {
  unsigned wt = scalar_wire_type(t);
  if (wt == WT_32BIT) return n % 4 == 0;
  if (wt == WT_64BIT) return n % 8 == 0;
  size_t pos = 0;
  uint64_t v;
  while (pos < n)
    if (read_varint(p, n, &pos, VARINT_MAX_BYTES, &v) < 0) return 0;
  return 1;
}

/* Scrubs in[0..len) as desc into out (room for len bytes); *out_len gets the bytes written.
 * 0, or -1 when the input is not protobuf at this level. */
static int scrub(const ProtobufCMessageDescriptor *desc, const uint8_t *in, size_t len,
                 uint8_t *out, size_t *out_len, unsigned depth, size_t *dropped) {
  size_t pos = 0, o = 0;
  pb_field f;
  int r;
  while ((r = next_field(in, len, &pos, &f, depth)) == 1) {
    const ProtobufCFieldDescriptor *fd =
        desc ? protobuf_c_message_descriptor_get_field(desc, f.number) : NULL;
    if (f.wt == WT_SGROUP) {
      (*dropped)++; /* protobuf-c refuses groups, known or not */
      continue;
    }
    if (!fd) { /* unknown: protobuf-c keeps it as an unknown field */
      memcpy(out + o, in + f.start, f.end - f.start);
      o += f.end - f.start;
      continue;
    }
    unsigned want = scalar_wire_type(fd->type);
    int packable = fd->label == PROTOBUF_C_LABEL_REPEATED && want != WT_LEN;
    if (f.wt != want && !(packable && f.wt == WT_LEN)) {
      (*dropped)++;
      continue;
    }
    if (packable && f.wt == WT_LEN && !packed_ok(fd->type, in + f.val, (size_t)f.varint)) {
      (*dropped)++;
      continue;
    }
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE && depth + 1 < DL_PBSCRUB_MAX_DEPTH) {
      /* the new length is at most the old one, so it fits where the old prefix was */
      size_t tag_len = f.tag_end - f.start;
      size_t reserve = f.val - f.tag_end;
      size_t sub_len = 0, field_start = o;
      memcpy(out + o, in + f.start, tag_len);
      o += tag_len;
      if (scrub(fd->descriptor, in + f.val, (size_t)f.varint, out + o + reserve, &sub_len,
                depth + 1, dropped) < 0) {
        (*dropped)++; /* not a message at all: skip it like a mistyped field */
        o = field_start;
        continue;
      }
      size_t vl = write_varint(out + o, sub_len);
      if (vl < reserve) memmove(out + o + vl, out + o + reserve, sub_len);
      o += vl + sub_len;
      continue;
    }
    memcpy(out + o, in + f.start, f.end - f.start);
    o += f.end - f.start;
  }
  *out_len = o;
  return r < 0 ? -1 : 0;
}

dl_err dl_pbscrub(const ProtobufCMessageDescriptor *desc, const uint8_t *in, size_t len,
                  uint8_t **out, size_t *out_len, size_t *dropped) {
  size_t dummy = 0;
  uint8_t *buf = malloc(len ? len : 1);
  *out = NULL;
  *out_len = 0;
  if (!dropped) dropped = &dummy;
  *dropped = 0;
  if (!buf) return DL_ENOMEM;
  if (scrub(desc, in, len, buf, out_len, 0, dropped) < 0) {
    free(buf);
    *out_len = 0;
    return DL_EPROTO;
  }
  *out = buf;
  return DL_EOK;
}

dl_err dl_pb_unpack(const ProtobufCMessageDescriptor *desc, dl_pballoc *a, const uint8_t *buf,
                    size_t len, ProtobufCMessage **out, int *scrubbed) {
  ProtobufCAllocator *pa = dl_pballoc_allocator(a);
  uint8_t *clean = NULL;
  size_t clean_len = 0, dropped = 0;
  const size_t refusals = dl_pballoc_refusals(a); /* to tell a budget failure of this call */
  const dl_pballoc_mark mark = dl_pballoc_get_mark(a);
  dl_err rc;

  if (scrubbed) *scrubbed = 0;
  *out = protobuf_c_message_unpack(desc, pa, len, buf);
  if (*out) return DL_EOK;
  dl_pballoc_release(a, mark); /* what the failed unpack took (its frees are no-ops) */
  if (dl_pballoc_refusals(a) != refusals) return DL_ELIMIT;

  rc = dl_pbscrub(desc, buf, len, &clean, &clean_len, &dropped);
  if (rc != DL_EOK) return rc;
  if (dropped == 0) { /* nothing to fix: it is malformed in a way the scrub cannot help */
    rc = DL_EPROTO;
    goto cleanup;
  }
  *out = protobuf_c_message_unpack(desc, pa, clean_len, clean);
  if (!*out) {
    dl_pballoc_release(a, mark);
    rc = dl_pballoc_refusals(a) != refusals ? DL_ELIMIT : DL_EPROTO;
    goto cleanup;
  }
  if (scrubbed) *scrubbed = 1;
  rc = DL_EOK;
cleanup:
  free(clean);
  return rc;
}

dl_err dl_pb_count_field(const uint8_t *buf, size_t len, uint32_t field, size_t *count) {
  size_t pos = 0;
  pb_field f;
  int r;
  *count = 0;
  while ((r = next_field(buf, len, &pos, &f, 0)) == 1)
    if (f.number == field) (*count)++;
  return r < 0 ? DL_EPROTO : DL_EOK;
}

dl_err dl_pb_find_bytes(const uint8_t *buf, size_t len, uint32_t field, const uint8_t **val,
                        size_t *val_len) {
  size_t pos = 0;
  pb_field f;
  int r, found = 0;
  while ((r = next_field(buf, len, &pos, &f, 0)) == 1) {
    if (f.number == field && f.wt == WT_LEN) {
      *val = buf + f.val;
      *val_len = (size_t)f.varint;
      found = 1;
    }
  }
  if (r < 0) return DL_EPROTO;
  return found ? DL_EOK : DL_ENOTFOUND;
}

dl_err dl_pb_unknown_varint(const ProtobufCMessage *m, uint32_t field, uint64_t *v) {
  const ProtobufCMessageUnknownField *hit = NULL;
  for (unsigned i = 0; i < m->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
    if (u->tag != field) continue;
    if (hit || u->wire_type != PROTOBUF_C_WIRE_TYPE_VARINT) return DL_ENOTFOUND;
    hit = u;
  }
  if (!hit) return DL_ENOTFOUND;
  size_t pos = 0; /* protobuf-c keeps a varint's bytes without the tag */
  if (read_varint(hit->data, hit->len, &pos, VARINT_MAX_BYTES, v) < 0 || pos != hit->len)
    return DL_EPROTO;
  return DL_EOK;
}
