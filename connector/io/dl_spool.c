#include "dl_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A record never exceeds what one Redis batch can be (frame cap × a little). */
#define DL_SPOOL_RECORD_MAX (256u << 20)

struct dl_spool {
  int fd;
  char path[512];
  uint64_t max_bytes;
  uint64_t write_off, read_off, records;
};

dl_spool *dl_spool_open(const char *dir, const char *name, uint64_t max_bytes, char *why, size_t cap) {
  dl_spool *s = calloc(1, sizeof *s);
  if (!s) return snprintf(why, cap, "out of memory"), NULL;
  snprintf(s->path, sizeof s->path, "%s/%s.spool", dir, name);
  s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (s->fd < 0) {
    snprintf(why, cap, "cannot open %s: %s", s->path, strerror(errno));
    free(s);
    return NULL;
  }
  s->max_bytes = max_bytes;
  return s;
}

void dl_spool_close(dl_spool *s) {
  if (!s) return;
  close(s->fd);
  unlink(s->path);
  free(s);
}

static int write_all(int fd, const void *p, size_t n, uint64_t off) {
  const char *b = p;
  while (n) {
    ssize_t w = pwrite(fd, b, n, (off_t)off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    b += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n, uint64_t off) {
  char *b = p;
  while (n) {
    ssize_t r = pread(fd, b, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    b += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

dl_err dl_spool_append(dl_spool *s, const void *rec, uint32_t len) {
  if (len > DL_SPOOL_RECORD_MAX) return DL_ELIMIT;
  if (dl_spool_pending_bytes(s) + 4 + len > s->max_bytes) return DL_EFULL;
  unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                          (unsigned char)len};
  if (write_all(s->fd, hdr, 4, s->write_off) || write_all(s->fd, rec, len, s->write_off + 4)) return DL_EIO;
  s->write_off += 4 + (uint64_t)len;
  s->records++;
  return DL_EOK;
}

dl_err dl_spool_next(dl_spool *s, void **out, uint32_t *len) {
  if (s->read_off >= s->write_off) return DL_ENOTFOUND;
  unsigned char hdr[4];
  if (read_all(s->fd, hdr, 4, s->read_off)) return DL_EIO;
  uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
  if (n > DL_SPOOL_RECORD_MAX || s->read_off + 4 + n > s->write_off) return DL_EIO;
  void *b = malloc(n ? n : 1);
  if (!b) return DL_ENOMEM;
  if (read_all(s->fd, b, n, s->read_off + 4)) {
    free(b);
    return DL_EIO;
  }
  s->read_off += 4 + (uint64_t)n;
  s->records--;
  if (s->read_off == s->write_off) { /* caught up: give the disk back */
    s->read_off = s->write_off = 0;
    if (ftruncate(s->fd, 0) != 0) return DL_EIO;
  }
  *out = b;
  *len = n;
  return DL_EOK;
}

uint64_t dl_spool_pending_bytes(const dl_spool *s) { return s->write_off - s->read_off; }
uint64_t dl_spool_pending_records(const dl_spool *s) { return s->records; }
