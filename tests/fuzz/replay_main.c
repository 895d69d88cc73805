/* Standalone driver for fuzz_decode.c (no libFuzzer needed, builds with gcc): runs the target
 * over every file given (or every file in a directory given), plus deterministic mutations of
 * each (every truncation point up to a bound, single-byte flips), so the fuzz entry point runs
 * in every normal build.
 *   fuzz_decode_replay [--no-mutate] PATH...      a PATH ending in .frames is a frames file
 *                                                 (CONTRACT §5): its first records and their
 *                                                 inflated Responses are the seeds
 *   fuzz_decode_replay --emit-responses OUTDIR PATH...   writes each capture's inflated Response
 *                                                        (seeds for the wrapped-Response path) */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dl_gunzip.h"
#include "webcast.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Mutations per seed: enough to walk every parser branch near the seed, few enough to stay
 * well under a second per seed under ASan. */
#define REPLAY_MAX_TRUNCATIONS 256
#define REPLAY_FLIPS 512
/* Records of a frames file used as seeds: a fixture room's first 64 frames already hold every
 * message type (its "cover" messages come first), more would only repeat them. */
#define REPLAY_MAX_RECORDS 64
/* Inflated Response cap for the seeds (the decoder's default). */
#define REPLAY_MAX_INFLATED (16u << 20)

static size_t n_inputs;
static int mutate = 1;
static const char *emit_dir;

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long sz = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
  if (b && fread(b, 1, (size_t)sz, fp) != (size_t)sz) {
    free(b);
    b = NULL;
  }
  fclose(fp);
  *len = sz > 0 ? (size_t)sz : 0;
  return b;
}

static void emit_response(const char *path, const uint8_t *b, size_t len) {
  Webcast__PushFrame *pf = webcast__push_frame__unpack(NULL, len, b);
  if (!pf) return;
  uint8_t *out;
  size_t ol;
  if (pf->has_payload && dl_gunzip(pf->payload.data, pf->payload.len, 16u << 20, 0, &out, &ol) == DL_EOK) {
    const char *base = strrchr(path, '/');
    char dst[4096];
    snprintf(dst, sizeof dst, "%s/response_%s", emit_dir, base ? base + 1 : path);
    FILE *fp = fopen(dst, "wb");
    if (fp) {
      fwrite(out, 1, ol, fp);
      fclose(fp);
    }
    free(out);
  }
  webcast__push_frame__free_unpacked(pf, NULL);
}

/* One seed and (unless --no-mutate) its deterministic mutations. */
static void run_buf(const uint8_t *b, size_t len) {
  LLVMFuzzerTestOneInput(b, len);
  n_inputs++;
  if (mutate && len) {
    uint8_t *m = malloc(len);
    size_t step = len / REPLAY_MAX_TRUNCATIONS + 1;
    for (size_t cut = 0; cut < len; cut += step) {
      memcpy(m, b, cut);
      LLVMFuzzerTestOneInput(m, cut);
      n_inputs++;
    }
    uint32_t x = 2463534242u; /* xorshift32: the same mutations on every run */
    for (int i = 0; i < REPLAY_FLIPS; i++) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      memcpy(m, b, len);
      m[x % len] ^= (uint8_t)(1u << (x >> 29));
      LLVMFuzzerTestOneInput(m, len);
      n_inputs++;
    }
    free(m);
  }
}

static uint8_t *must_read(const char *path, size_t *len) {
  uint8_t *b = read_file(path, len);
  if (!b) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(1);
  }
  return b;
}

static void run_one(const char *path) {
  size_t len;
  uint8_t *b = must_read(path, &len);
  if (emit_dir)
    emit_response(path, b, len);
  else
    run_buf(b, len);
  free(b);
}

/* The first records of a frames file ([u32 BE length][PushFrame]…), each as it is and as its
 * inflated Response (which the target wraps in a plain PushFrame, so mutations reach the
 * message parsers instead of the gzip CRC). */
static void run_frames(const char *path) {
  size_t len, off = 0;
  uint8_t *b = must_read(path, &len);
  for (int rec = 0; rec < REPLAY_MAX_RECORDS && len - off >= 4; rec++) {
    size_t n = (size_t)b[off] << 24 | (size_t)b[off + 1] << 16 | (size_t)b[off + 2] << 8 | b[off + 3];
    off += 4;
    if (n > len - off) break;
    run_buf(b + off, n);
    Webcast__PushFrame *pf = webcast__push_frame__unpack(NULL, n, b + off);
    uint8_t *resp;
    size_t rl;
    if (pf && pf->has_payload &&
        dl_gunzip(pf->payload.data, pf->payload.len, REPLAY_MAX_INFLATED, 0, &resp, &rl) == DL_EOK) {
      run_buf(resp, rl);
      free(resp);
    }
    if (pf) webcast__push_frame__free_unpacked(pf, NULL);
    off += n;
  }
  free(b);
}

static void run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "cannot stat %s\n", path);
    exit(1);
  }
  size_t pl = strlen(path);
  if (!S_ISDIR(st.st_mode) && !emit_dir && pl > 7 && strcmp(path + pl - 7, ".frames") == 0) {
    run_frames(path);
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    run_one(path);
    return;
  }
  DIR *dir = opendir(path);
  struct dirent *de;
  while (dir && (de = readdir(dir))) {
    if (de->d_name[0] == '.') continue;
    size_t nl = strlen(de->d_name);
    if (nl < 4 || strcmp(de->d_name + nl - 4, ".bin") != 0) continue; /* seeds are *.bin */
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", path, de->d_name);
    run_one(p);
  }
  if (dir) closedir(dir);
}

int main(int argc, char **argv) {
  int i = 1;
  if (i < argc && strcmp(argv[i], "--no-mutate") == 0) {
    mutate = 0;
    i++;
  }
  if (i + 1 < argc && strcmp(argv[i], "--emit-responses") == 0) {
    emit_dir = argv[i + 1];
    i += 2;
  }
  if (i >= argc) {
    fprintf(stderr, "usage: %s [--no-mutate | --emit-responses OUTDIR] PATH...\n", argv[0]);
    return 2;
  }
  for (; i < argc; i++) run_path(argv[i]);
  if (!emit_dir) printf("replayed %zu inputs\n", n_inputs);
  if (!emit_dir && n_inputs == 0) { /* an empty seed directory or a frames file cut at its first record */
    fprintf(stderr, "no input replayed: the corpus is empty or unreadable\n");
    return 1;
  }
  return 0;
}
