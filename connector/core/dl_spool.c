#include "dl_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dl_cmd.h"

/* File header: identifies a dylive spool (and its format version). */
static const char file_magic[8] = {'D', 'L', 'S', 'P', 'O', 'O', 'L', '1'};
#define HDR_BYTES 8
/* Record header: magic, length, crc32 of the payload (little-endian). */
#define REC_MAGIC 0x52534c44u /* "DLSR" */
#define REC_HDR 12
/* A record never exceeds one command's record. */
#define REC_MAX DL_CMD_RECORD_MAX
/* After a bad record the reader looks this far ahead for the next magic per call, so one call
 * never scans a whole damaged file (the control thread must stay responsive). */
#define RESYNC_WINDOW (1u << 20)

struct dl_spool {
  int fd;
  char path[DL_SPOOL_PATH_MAX];
  uint64_t max_bytes;
  uint64_t write_off, read_off, records, bad;
  int keep_tail;   /* an adopted file: never truncated while read */
};

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

/* Reads up to n bytes; returns how many (short at the end of the file), -1 on error. */
static ssize_t read_upto(int fd, void *p, size_t n, uint64_t off) {
  char *b = p;
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, b + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

dl_err dl_spool_private_dir(const char *dir, char *out, size_t cap, char *why, size_t why_cap) {
  int n = snprintf(out, cap, "%s/dylive-%u", dir, (unsigned)geteuid());
  if (n < 0 || (size_t)n >= cap) return snprintf(why, why_cap, "spool directory path too long"), DL_ELIMIT;
  if (mkdir(out, 0700) != 0 && errno != EEXIST)
    return snprintf(why, why_cap, "cannot create %s: %s", out, strerror(errno)), DL_EIO;
  struct stat st;
  if (lstat(out, &st) != 0) return snprintf(why, why_cap, "cannot stat %s: %s", out, strerror(errno)), DL_EIO;
  if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode))
    return snprintf(why, why_cap, "%s is not a directory (a link or a file was planted there)", out), DL_EINVAL;
  if (st.st_uid != geteuid())
    return snprintf(why, why_cap, "%s belongs to uid %u, not to us (uid %u): refusing it", out, (unsigned)st.st_uid,
                    (unsigned)geteuid()), DL_EINVAL;
  if (st.st_mode & 077)
    return snprintf(why, why_cap, "%s is open to other users (mode %03o): make it 0700", out,
                    (unsigned)(st.st_mode & 0777)), DL_EINVAL;
  return DL_EOK;
}

static dl_spool *spool_new(int fd, const char *path, uint64_t max_bytes) {
  dl_spool *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->fd = fd;
  snprintf(s->path, sizeof s->path, "%s", path);
  s->max_bytes = max_bytes;
  return s;
}

/* A spool file must be a regular file of ours with one link (no hard link to something else). */
static int file_ok(int fd, const char *path, char *why, size_t why_cap) {
  struct stat st;
  if (fstat(fd, &st) != 0) return snprintf(why, why_cap, "cannot stat %s: %s", path, strerror(errno)), 0;
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1 || (st.st_mode & 077))
    return snprintf(why, why_cap, "%s is not a private regular file of ours: refusing it", path), 0;
  return 1;
}

dl_spool *dl_spool_create(const char *privdir, const char *name, uint64_t max_bytes, char *why, size_t why_cap) {
  if (why_cap) why[0] = 0;
  char path[DL_SPOOL_PATH_MAX];
  int n = snprintf(path, sizeof path, "%s/%s.spool", privdir, name);
  if (n < 0 || (size_t)n >= sizeof path) return snprintf(why, why_cap, "spool path too long"), NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return snprintf(why, why_cap, "cannot create %s: %s", path, strerror(errno)), NULL;
  if (!file_ok(fd, path, why, why_cap) || flock(fd, LOCK_EX | LOCK_NB) != 0 ||
      write_all(fd, file_magic, HDR_BYTES, 0) != 0) {
    if (!why[0]) snprintf(why, why_cap, "cannot set up %s: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    return NULL;
  }
  dl_spool *s = spool_new(fd, path, max_bytes);
  if (!s) {
    close(fd);
    unlink(path);
    snprintf(why, why_cap, "out of memory");
    return NULL;
  }
  s->write_off = s->read_off = HDR_BYTES;
  return s;
}

size_t dl_spool_orphans(const char *privdir, char (*paths)[DL_SPOOL_PATH_MAX], size_t max) {
  DIR *d = opendir(privdir);
  if (!d) return 0;
  size_t n = 0;
  struct dirent *e;
  while (n < max && (e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 7 || strcmp(e->d_name + l - 6, ".spool")) continue;
    char path[DL_SPOOL_PATH_MAX];
    int pl = snprintf(path, sizeof path, "%s/%s", privdir, e->d_name);
    if (pl < 0 || (size_t)pl >= sizeof path) continue;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) snprintf(paths[n++], DL_SPOOL_PATH_MAX, "%s", path);
    close(fd); /* the lock goes with it; dl_spool_adopt takes it again */
  }
  closedir(d);
  return n;
}

dl_spool *dl_spool_adopt(const char *path, char *why, size_t why_cap) {
  if (why_cap) why[0] = 0;
  int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return snprintf(why, why_cap, "cannot open %s: %s", path, strerror(errno)), NULL;
  char magic[HDR_BYTES];
  struct stat st;
  if (!file_ok(fd, path, why, why_cap) || flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &st) != 0) {
    if (!why[0]) snprintf(why, why_cap, "%s is in use by a live worker", path);
    close(fd);
    return NULL;
  }
  if (read_upto(fd, magic, HDR_BYTES, 0) != HDR_BYTES || memcmp(magic, file_magic, HDR_BYTES)) {
    snprintf(why, why_cap, "%s is not a dylive spool (or of another version)", path);
    close(fd);
    return NULL;
  }
  dl_spool *s = spool_new(fd, path, (uint64_t)st.st_size);
  if (!s) {
    close(fd);
    snprintf(why, why_cap, "out of memory");
    return NULL;
  }
  s->read_off = HDR_BYTES;
  s->write_off = (uint64_t)st.st_size;
  s->keep_tail = 1;
  s->records = s->write_off > s->read_off; /* unknown: at least one */
  return s;
}

void dl_spool_close(dl_spool *s) {
  if (!s) return;
  unlink(s->path);
  close(s->fd);
  free(s);
}

void dl_spool_detach(dl_spool *s) {
  if (!s) return;
  fdatasync(s->fd);
  close(s->fd);
  free(s);
}

dl_err dl_spool_append(dl_spool *s, const void *rec, uint32_t len) {
  if (s->keep_tail) return DL_EINVAL;
  if (len > REC_MAX) return DL_ELIMIT;
  /* the cap is on the file, not on what is unread: the file only shrinks when the reader catches
   * up, so a spool that is written and read at once must not grow past it either */
  if (s->write_off - HDR_BYTES + REC_HDR + len > s->max_bytes) return DL_EFULL;
  uint8_t hdr[REC_HDR];
  dl_le32_put(hdr, REC_MAGIC);
  dl_le32_put(hdr + 4, len);
  dl_le32_put(hdr + 8, (uint32_t)crc32(crc32(0L, Z_NULL, 0), rec, len));
  if (write_all(s->fd, hdr, REC_HDR, s->write_off) || write_all(s->fd, rec, len, s->write_off + REC_HDR))
    return DL_EIO; /* write_off unchanged: a torn record is overwritten by the next append */
  s->write_off += REC_HDR + (uint64_t)len;
  s->records++;
  return DL_EOK;
}

static void caught_up(dl_spool *s) {
  if (s->read_off < s->write_off) return;
  s->records = 0;
  if (s->keep_tail) return;
  s->read_off = s->write_off = HDR_BYTES; /* give the disk back */
  if (ftruncate(s->fd, HDR_BYTES) != 0) { /* harmless: the next append overwrites */ }
}

/* Skips a bad record: looks for the next record magic after read_off within the window. */
static dl_err resync(dl_spool *s) {
  s->bad++;
  if (s->records) s->records--;
  uint64_t from = s->read_off + 1, avail = s->write_off - from;
  size_t win = avail < RESYNC_WINDOW ? (size_t)avail : RESYNC_WINDOW;
  uint8_t *b = win ? malloc(win) : NULL;
  ssize_t got = b ? read_upto(s->fd, b, win, from) : 0;
  uint64_t next = from + (got > 0 ? (uint64_t)got : 0);
  for (ssize_t i = 0; b && i + 4 <= got; i++)
    if (dl_le32_get(b + i) == REC_MAGIC) {
      next = from + (uint64_t)i;
      break;
    }
  free(b);
  if (next > s->write_off || (got <= 0 && win)) next = s->write_off;
  s->read_off = next;
  caught_up(s);
  return DL_EPROTO;
}

/* The oldest record's length and checksum (DL_EOK), or what resync says about a bad header. */
static dl_err next_header(dl_spool *s, uint32_t *n, uint32_t *crc) {
  if (s->read_off >= s->write_off) return DL_ENOTFOUND;
  uint8_t hdr[REC_HDR];
  ssize_t got = read_upto(s->fd, hdr, REC_HDR, s->read_off);
  if (got < 0) return DL_EIO;
  uint64_t left = s->write_off - s->read_off;
  if ((size_t)got < REC_HDR || left < REC_HDR || dl_le32_get(hdr) != REC_MAGIC) return resync(s);
  *n = dl_le32_get(hdr + 4), *crc = dl_le32_get(hdr + 8);
  if (*n > REC_MAX || *n > left - REC_HDR) return resync(s);
  return DL_EOK;
}

/* The record's n bytes into dst and past it (DL_EOK), or what resync says when they are short or
 * do not match crc. */
static dl_err next_body(dl_spool *s, uint8_t *dst, uint32_t n, uint32_t crc) {
  if (read_upto(s->fd, dst, n, s->read_off + REC_HDR) != (ssize_t)n ||
      (uint32_t)crc32(crc32(0L, Z_NULL, 0), dst, n) != crc)
    return resync(s);
  s->read_off += REC_HDR + (uint64_t)n;
  if (s->records) s->records--;
  caught_up(s);
  return DL_EOK;
}

dl_err dl_spool_next(dl_spool *s, void **out, uint32_t *len) {
  uint32_t n, crc;
  dl_err e = next_header(s, &n, &crc);
  if (e != DL_EOK) return e;
  uint8_t *b = malloc(n ? n : 1);
  if (!b) return DL_ENOMEM;
  if ((e = next_body(s, b, n, crc)) != DL_EOK) {
    free(b);
    return e;
  }
  *out = b;
  *len = n;
  return DL_EOK;
}

dl_err dl_spool_next_buf(dl_spool *s, dl_buf *b) {
  dl_buf_reset(b);
  uint32_t n, crc;
  dl_err e = next_header(s, &n, &crc);
  if (e != DL_EOK) return e;
  if ((e = dl_buf_reserve(b, n)) != DL_EOK) return e; /* DL_ELIMIT: b's max is below DL_CMD_RECORD_MAX */
  if ((e = next_body(s, b->p, n, crc)) != DL_EOK) return e;
  b->len = n;
  b->p[n] = 0;
  return DL_EOK;
}

uint64_t dl_spool_pending_bytes(const dl_spool *s) { return s->write_off - s->read_off; }
uint64_t dl_spool_free_bytes(const dl_spool *s) {
  uint64_t used = s->write_off - HDR_BYTES;
  return s->keep_tail || used >= s->max_bytes ? 0 : s->max_bytes - used;
}
uint64_t dl_spool_pending_records(const dl_spool *s) { return s->read_off < s->write_off ? s->records : 0; }
uint64_t dl_spool_bad_records(const dl_spool *s) { return s->bad; }
const char *dl_spool_path(const dl_spool *s) { return s->path; }
