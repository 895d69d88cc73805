#include "dl_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const room_suffix[DL_RK__COUNT] = {"events", "status", "lease", "epoch"};

static int fmt(char *out, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *out, size_t cap, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(out, cap, f, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap) {
    if (cap) out[0] = 0;
    return -1;
  }
  return n;
}

/* "prefix:{live_id}:suffix" by hand: three of these go into every room write. */
int dl_keys_room(char *out, size_t cap, const char *prefix, const char *live_id, dl_room_key which) {
  if ((unsigned)which >= DL_RK__COUNT) {
    if (cap) out[0] = 0;
    return -1;
  }
  const char *suffix = room_suffix[which];
  size_t pl = strlen(prefix), il = strlen(live_id), sl = strlen(suffix), n = pl + il + sl + 4;
  if (n >= cap) {
    if (cap) out[0] = 0;
    return -1;
  }
  memcpy(out, prefix, pl);
  memcpy(out + pl, ":{", 2);
  memcpy(out + pl + 2, live_id, il);
  memcpy(out + pl + 2 + il, "}:", 2);
  memcpy(out + pl + 4 + il, suffix, sl);
  out[n] = 0;
  return (int)n;
}

int dl_keys_assign(char *out, size_t cap, const char *prefix) { return fmt(out, cap, "%s:assign", prefix); }

int dl_keys_claims(char *out, size_t cap, const char *prefix, const char *worker) {
  /* the whole of "P:assign" is the tag, so the claims list is in P:assign's slot (BLMOVE and the
   * requeue script move between them) */
  return fmt(out, cap, "%s:claims:%s:{%s:assign}", prefix, worker, prefix);
}

int dl_keys_worker(char *out, size_t cap, const char *prefix, const char *worker) {
  return fmt(out, cap, "%s:worker:%s", prefix, worker);
}

int dl_keys_workers(char *out, size_t cap, const char *prefix) { return fmt(out, cap, "%s:workers", prefix); }

int dl_keys_rooms(char *out, size_t cap, const char *prefix) { return fmt(out, cap, "%s:rooms", prefix); }

int dl_keys_status_pattern(char *out, size_t cap, const char *prefix) {
  return fmt(out, cap, "%s:{*}:status", prefix);
}

int dl_keys_live_id_of(const char *key, size_t n, const char *prefix, char *out, size_t cap) {
  size_t pl = strlen(prefix);
  if (n < pl + 4 || memcmp(key, prefix, pl) || key[pl] != ':' || key[pl + 1] != '{') return -1;
  const char *id = key + pl + 2, *end = memchr(id, '}', n - pl - 2);
  if (!end || end == id || (size_t)(end - id) >= cap) return -1;
  memcpy(out, id, (size_t)(end - id));
  out[end - id] = 0;
  return (int)(end - id);
}

/* CRC16-CCITT (XMODEM: poly 0x1021, init 0), bit by bit: keys are short and this is not hot. */
static unsigned crc16(const char *p, size_t n) {
  unsigned crc = 0;
  for (size_t i = 0; i < n; i++) {
    crc ^= (unsigned)(unsigned char)p[i] << 8;
    for (int b = 0; b < 8; b++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  }
  return crc & 0xffff;
}

unsigned dl_keys_slot(const char *key, size_t len) {
  const char *open = memchr(key, '{', len);
  if (open) {
    const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
    if (close && close > open + 1) return crc16(open + 1, (size_t)(close - open - 1)) % DL_SLOTS;
  }
  return crc16(key, len) % DL_SLOTS;
}
