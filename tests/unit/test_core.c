/* The write path as data: keys, the dedupe window, commands and their spool records, the spool
 * file, the outbox (order across tiers, gap repair, fencing, retries), backoff, capped buffers.
 * No Redis, no sockets: milliseconds. */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dl_backoff.h"
#include "dl_buf.h"
#include "dl_cmd.h"
#include "dl_keys.h"
#include "dl_lua.h"
#include "dl_outbox.h"
#include "dl_seen.h"
#include "dl_spool.h"
#include "dl_tail.h"
#include "dl_test.h"

/* ---------- helpers ---------- */

static char g_tmp[256];

static void rmtree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* A failed ASSERT returns before the case's own rmtree: the last temp dir goes at exit anyway. */
static void rm_tmp_at_exit(void) {
  if (g_tmp[0]) rmtree(g_tmp);
}

static const char *tmpdir(void) {
  static int registered;
  if (g_tmp[0]) rmtree(g_tmp); /* an earlier case's, if it failed before cleaning up */
  if (!registered) registered = atexit(rm_tmp_at_exit) == 0;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/dl-unit-XXXXXX");
  if (!mkdtemp(g_tmp)) return g_tmp[0] = 0, NULL;
  return g_tmp;
}

static dl_cmd *room_cmd(const char *id, uint64_t seq, int nevents) {
  dl_cmd *c = dl_cmd_room_new(id, "w1 7");
  if (!c) return NULL;
  c->seq = seq;
  for (int i = 0; i < nevents; i++) {
    char mid[32], json[64];
    snprintf(mid, sizeof mid, "%llu", (unsigned long long)(seq * 100 + (uint64_t)i));
    snprintf(json, sizeof json, "{\"v\":1,\"seq\":%llu,\"i\":%d}", (unsigned long long)seq, i);
    if (dl_cmd_add_event(c, "chat", mid, 1700000000000LL + i, json, strlen(json)) != DL_EOK) return NULL;
  }
  dl_cmd_add_pair(c, "state", "live");
  return c;
}

static const dl_cmd_env ENV = {"dylive", "0123456789012345678901234567890123456789",
                               "9876543210987654321098765432109876543210", 100, 3500, 100000, 0};

/* Parses a RESP command (as encoded) into argv strings with hiredis's reader. */
static redisReply *parse_cmd(const dl_buf *b) {
  redisReader *rd = redisReaderCreate();
  /* a command is an array of bulk strings: the reader parses it like a reply */
  redisReaderFeed(rd, (const char *)b->p, b->len);
  void *r = NULL;
  if (redisReaderGetReply(rd, &r) != REDIS_OK) r = NULL;
  redisReaderFree(rd);
  return r;
}

static redisReply *mk_int_pair(long long a, long long b) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = REDIS_REPLY_ARRAY;
  r->elements = 2;
  r->element = calloc(2, sizeof *r->element);
  for (int i = 0; i < 2; i++) {
    r->element[i] = calloc(1, sizeof **r->element);
    r->element[i]->type = REDIS_REPLY_INTEGER;
    r->element[i]->integer = i ? b : a;
  }
  return r;
}

static redisReply *mk_err(const char *s) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = REDIS_REPLY_ERROR;
  r->str = strdup(s);
  r->len = strlen(s);
  return r;
}

static redisReply *mk_status(const char *s) {
  redisReply *r = mk_err(s);
  r->type = REDIS_REPLY_STATUS;
  return r;
}

/* Sends what the outbox offers and answers each with the given room code (a toy Redis). */
static void answer(dl_outbox *ob, dl_cmd *c, redisReply *r) {
  dl_outbox_classify(c, r, &c->reply);
  dl_outbox_replied(ob, c);
  freeReplyObject(r);
}

/* ---------- keys ---------- */

int test_keys_names(void) {
  char k[DL_KEY_MAX], id[64];
  ASSERT_TRUE(dl_keys_room(k, sizeof k, "dylive", "261378947940", DL_RK_EVENTS) > 0);
  ASSERT_EQ_STR(k, "dylive:{261378947940}:events");
  dl_keys_room(k, sizeof k, "p", "1", DL_RK_STATUS);
  ASSERT_EQ_STR(k, "p:{1}:status");
  dl_keys_claims(k, sizeof k, "dylive", "host-1");
  ASSERT_EQ_STR(k, "dylive:claims:host-1:{dylive:assign}");
  dl_keys_assign(k, sizeof k, "dylive");
  ASSERT_EQ_STR(k, "dylive:assign");
  dl_keys_rooms(k, sizeof k, "dylive");
  ASSERT_EQ_STR(k, "dylive:rooms");
  dl_keys_status_pattern(k, sizeof k, "dylive");
  ASSERT_EQ_STR(k, "dylive:{*}:status");
  ASSERT_EQ_I64(dl_keys_room(k, 10, "dylive", "261378947940", DL_RK_EVENTS), -1); /* never truncated */
  ASSERT_EQ_I64(dl_keys_live_id_of("dylive:{123}:status", 19, "dylive", id, sizeof id), 3);
  ASSERT_EQ_STR(id, "123");
  ASSERT_EQ_I64(dl_keys_live_id_of("other:{123}:status", 18, "dylive", id, sizeof id), -1);
  ASSERT_EQ_I64(dl_keys_live_id_of("dylive:{}:status", 16, "dylive", id, sizeof id), -1);
  return 0;
}

/* Redis Cluster slots (values from Redis's own documentation and CLUSTER KEYSLOT). */
int test_keys_slots(void) {
  ASSERT_EQ_U64(dl_keys_slot("123456789", 9), 0x31C3 % DL_SLOTS); /* the CRC16 check value */
  ASSERT_EQ_U64(dl_keys_slot("foo", 3), 12182);
  ASSERT_EQ_U64(dl_keys_slot("{user1000}.following", 20), dl_keys_slot("user1000", 8));
  ASSERT_EQ_U64(dl_keys_slot("foo{}{bar}", 10), dl_keys_slot("foo{}{bar}", 10)); /* "{}": the whole key */
  ASSERT_EQ_U64(dl_keys_slot("foo{}{bar}", 10), 8363);
  ASSERT_EQ_U64(dl_keys_slot("foo{{bar}}zap", 13), dl_keys_slot("{bar", 4));
  char a[DL_KEY_MAX], b[DL_KEY_MAX];
  dl_keys_room(a, sizeof a, "dylive", "261378947940", DL_RK_EVENTS);
  dl_keys_room(b, sizeof b, "dylive", "261378947940", DL_RK_LEASE);
  ASSERT_EQ_U64(dl_keys_slot(a, strlen(a)), dl_keys_slot(b, strlen(b))); /* a room's keys: one slot */
  dl_keys_assign(a, sizeof a, "dylive");
  dl_keys_claims(b, sizeof b, "dylive", "w1");
  ASSERT_EQ_U64(dl_keys_slot(a, strlen(a)), dl_keys_slot(b, strlen(b))); /* the pool's: P:assign's */
  return 0;
}

/* ---------- the dedupe window ---------- */

int test_seen_window(void) {
  dl_seen *s = dl_seen_new(100);
  ASSERT_TRUE(s != NULL);
  size_t small = dl_seen_bytes(s);
  for (uint64_t i = 1; i <= 100; i++) ASSERT_EQ_ERR(dl_seen_add(s, i * 7919), DL_EOK);
  ASSERT_EQ_U64(dl_seen_len(s), 100);
  for (uint64_t i = 1; i <= 100; i++) ASSERT_TRUE(dl_seen_has(s, i * 7919));
  ASSERT_FALSE(dl_seen_has(s, 3));
  ASSERT_TRUE(dl_seen_bytes(s) > small); /* grew on demand */
  /* past the max the oldest go first, and the rest stay findable (deletion keeps probe chains) */
  for (uint64_t i = 101; i <= 150; i++) dl_seen_add(s, i * 7919);
  ASSERT_EQ_U64(dl_seen_len(s), 100);
  for (uint64_t i = 1; i <= 50; i++) ASSERT_FALSE(dl_seen_has(s, i * 7919));
  for (uint64_t i = 51; i <= 150; i++) ASSERT_TRUE(dl_seen_has(s, i * 7919));
  /* adding a present id is a no-op (it does not refresh or duplicate), and insert says so */
  int present = 0;
  ASSERT_EQ_ERR(dl_seen_insert(s, 51 * 7919, &present), DL_EOK);
  ASSERT_TRUE(present);
  ASSERT_EQ_U64(dl_seen_len(s), 100);
  ASSERT_EQ_ERR(dl_seen_insert(s, 151 * 7919, &present), DL_EOK); /* a new one: added, 51 evicted */
  ASSERT_FALSE(present);
  ASSERT_TRUE(dl_seen_has(s, 151 * 7919) && !dl_seen_has(s, 51 * 7919));
  for (uint64_t i = 52; i <= 151; i++) ASSERT_TRUE(dl_seen_has(s, i * 7919));
  ASSERT_FALSE(dl_seen_has(s, 0)); /* 0: no msg_id, never deduplicated */
  dl_seen_add(s, 0);
  ASSERT_FALSE(dl_seen_has(s, 0));
  dl_seen_free(s);
  ASSERT_EQ_U64(dl_seen_parse_id("7628380564663882771", 19), 7628380564663882771ULL);
  ASSERT_EQ_U64(dl_seen_parse_id("18446744073709551615", 20), UINT64_MAX);
  ASSERT_EQ_U64(dl_seen_parse_id("18446744073709551616", 20), 0);
  ASSERT_EQ_U64(dl_seen_parse_id("12a", 3), 0);
  ASSERT_EQ_U64(dl_seen_parse_id("", 0), 0);
  return 0;
}

/* Colliding ids and heavy churn: the window is always exactly the last max ids. */
int test_seen_churn(void) {
  dl_seen *s = dl_seen_new(37);
  uint64_t x = 88172645463325252ULL, hist[5000];
  for (int i = 0; i < 5000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    hist[i] = (x % 64) * 1024 + 1; /* few distinct values: lots of repeats and collisions */
    dl_seen_add(s, hist[i]);
  }
  /* recompute the expected window: distinct ids in insertion order of first appearance since
   * eviction, simulated with a plain array */
  uint64_t win[37];
  size_t n = 0;
  for (int i = 0; i < 5000; i++) {
    int present = 0;
    for (size_t k = 0; k < n; k++) present |= win[k] == hist[i];
    if (present) continue;
    if (n == 37) {
      memmove(win, win + 1, 36 * sizeof *win);
      n--;
    }
    win[n++] = hist[i];
  }
  ASSERT_EQ_U64(dl_seen_len(s), n);
  for (size_t k = 0; k < n; k++) ASSERT_TRUE(dl_seen_has(s, win[k]));
  dl_seen_free(s);
  return 0;
}

/* ---------- commands ---------- */

int test_cmd_encode_room(void) {
  dl_cmd *c = room_cmd("261378947940", 5, 2);
  ASSERT_TRUE(c != NULL);
  c->release = 1;
  c->expire_s = 604800;
  dl_buf b;
  dl_buf_init(&b, 1 << 20);
  dl_cmd_env env = ENV;
  env.minid_ms = 1700000000000LL;
  ASSERT_EQ_ERR(dl_cmd_encode(c, &env, &b), DL_EOK);
  redisReply *r = parse_cmd(&b);
  ASSERT_TRUE(r && r->type == REDIS_REPLY_ARRAY);
  const char *want[] = {"EVALSHA", ENV.room_sha, "3", "dylive:{261378947940}:lease", "dylive:{261378947940}:status",
                        "dylive:{261378947940}:events", "w1 7", "3500", "5", "0", "100000", "1700000000000", "1",
                        "604800", "2", "2", "state", "live", "chat", "500", "1700000000000", "{\"v\":1,\"seq\":5,\"i\":0}",
                        "chat", "501", "1700000000001", "{\"v\":1,\"seq\":5,\"i\":1}"};
  ASSERT_EQ_U64(r->elements, sizeof want / sizeof *want);
  for (size_t i = 0; i < r->elements; i++) ASSERT_EQ_STR(r->element[i]->str, want[i]);
  freeReplyObject(r);
  /* the force flag is not frozen into bytes: set after a gap, it shows in the next encoding */
  c->force = 1;
  dl_buf_reset(&b);
  dl_cmd_encode(c, &env, &b);
  r = parse_cmd(&b);
  ASSERT_EQ_STR(r->element[9]->str, "1");
  freeReplyObject(r);
  dl_buf_free(&b);
  dl_cmd_free(c);
  return 0;
}

/* A freed command is kept for the next one (no calloc + realloc chain per room write): it comes
 * back with every field cleared and its buffers empty, and encodes as a fresh one does. */
int test_cmd_pool_reuse(void) {
  dl_cmd_pool_drain();
  dl_cmd *a = room_cmd("111", 5, 40);
  ASSERT_TRUE(a != NULL);
  a->release = 1;
  a->keep_lease = 1;
  a->force = 1;
  size_t cap = a->body.cap;
  dl_cmd_free(a);
  dl_cmd *b = dl_cmd_room_new("222", "w2 9");
  ASSERT_TRUE(b == a); /* the same object, reused */
  ASSERT_EQ_U64(b->body.len, 0);
  ASSERT_EQ_U64(b->body.cap, cap);
  ASSERT_TRUE(!b->release && !b->keep_lease && !b->force && !b->nevents && !b->npairs && !b->seq && !b->then);
  ASSERT_EQ_STR(b->live_id, "222");
  dl_cmd *fresh = room_cmd("222", 1, 1), *reused = b;
  const char *json = "{\"v\":1,\"seq\":1,\"i\":0}";
  ASSERT_EQ_ERR(dl_cmd_add_event(reused, "chat", "100", 1700000000000LL, json, strlen(json)), DL_EOK);
  dl_cmd_add_pair(reused, "state", "live");
  reused->seq = 1;
  snprintf(reused->token, sizeof reused->token, "w1 7");
  dl_buf x, y;
  dl_buf_init(&x, 1 << 20);
  dl_buf_init(&y, 1 << 20);
  ASSERT_EQ_ERR(dl_cmd_encode(fresh, &ENV, &x), DL_EOK);
  ASSERT_EQ_ERR(dl_cmd_encode(reused, &ENV, &y), DL_EOK);
  ASSERT_TRUE(x.len == y.len && !memcmp(x.p, y.p, x.len));
  dl_buf_free(&x);
  dl_buf_free(&y);
  dl_cmd_free(fresh);
  dl_cmd_free(reused);
  dl_cmd_pool_drain();
  return 0;
}

/* The one RESP encoder: an argv as the array header and its bulk strings, lengths given or strlen. */
int test_cmd_resp_argv(void) {
  dl_buf b;
  dl_buf_init(&b, 1 << 20);
  ASSERT_EQ_ERR(dl_cmd_resp_argv(&b, 3, (const char *[]){"SET", "k", "v\r\nx"}, NULL), DL_EOK);
  ASSERT_EQ_STR((const char *)b.p, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\nx\r\n");
  dl_buf_reset(&b);
  ASSERT_EQ_ERR(dl_cmd_resp_argv(&b, 2, (const char *[]){"GET", "a\0b"}, (const size_t[]){3, 3}), DL_EOK);
  ASSERT_EQ_MEM(b.p, "*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n", b.len);
  ASSERT_EQ_U64(b.len, 22);
  dl_buf_reset(&b);
  char big[12345];
  memset(big, 'x', sizeof big);
  ASSERT_EQ_ERR(dl_cmd_resp_bulk(&b, big, sizeof big), DL_EOK);
  ASSERT_EQ_U64(b.len, 1 + 5 + 2 + sizeof big + 2);
  ASSERT_EQ_MEM(b.p, "$12345\r\nxx", 10);
  dl_buf_free(&b);
  return 0;
}

/* --pool-keep-ms: a decay frees the kept commands none took since the one before (the bottom of the
 * stack), and only those: what steady work keeps using stays, the rest of a burst goes. */
int test_cmd_pool_decay(void) {
  dl_cmd_pool_drain();
  dl_cmd *c[5];
  for (int i = 0; i < 5; i++) ASSERT_TRUE((c[i] = room_cmd("111", 5, 40)) != NULL);
  size_t each = c[0]->head.cap + c[0]->body.cap;
  for (int i = 0; i < 5; i++) dl_cmd_free(c[i]); /* a burst's five, kept */
  ASSERT_EQ_U64(dl_cmd_pool_decay(), 0); /* none known unused yet: the period starts */
  dl_cmd *a = dl_cmd_room_new("222", "w2 9"), *b = dl_cmd_room_new("222", "w2 9"); /* steady work: two */
  ASSERT_TRUE(a == c[4] && b == c[3]);
  dl_cmd_free(b);
  dl_cmd_free(a);
  ASSERT_EQ_U64(dl_cmd_pool_decay(), 3 * each); /* the three nobody took */
  dl_cmd *again = dl_cmd_room_new("333", "w2 9");
  ASSERT_TRUE(again == c[4]); /* the two taken stayed */
  dl_cmd_free(again);
  ASSERT_EQ_U64(dl_cmd_pool_decay(), each); /* of those, the one not taken this time */
  ASSERT_EQ_U64(dl_cmd_pool_decay(), each); /* and then the last */
  ASSERT_EQ_U64(dl_cmd_pool_decay(), 0);
  ASSERT_TRUE((again = dl_cmd_room_new("444", "w2 9")) != NULL); /* an empty pool still makes commands */
  dl_cmd_free(again);
  dl_cmd_pool_drain();
  return 0;
}

/* Room writes ready together go in one room.lua call: keys three per room, then each room's ten
 * header strings, pairs and events; a write that need not renew the lease says TTL 0. */
int test_cmd_encode_rooms_group(void) {
  dl_cmd *a = room_cmd("111", 5, 2), *b = room_cmd("222", 9, 1);
  ASSERT_TRUE(a && b);
  b->keep_lease = 1;
  b->skip_trim = 1;
  dl_buf buf;
  dl_buf_init(&buf, 1 << 20);
  const dl_cmd *g[] = {a, b};
  ASSERT_EQ_ERR(dl_cmd_encode_rooms(g, 2, &ENV, &buf), DL_EOK);
  redisReply *r = parse_cmd(&buf);
  ASSERT_TRUE(r && r->type == REDIS_REPLY_ARRAY);
  /* 3 + 6 keys + (10 + 2 + 8) + (10 + 2 + 4) */
  ASSERT_EQ_U64(r->elements, 3 + 6 + 20 + 16);
  ASSERT_EQ_STR(r->element[2]->str, "6");
  ASSERT_EQ_STR(r->element[3]->str, "dylive:{111}:lease");
  ASSERT_EQ_STR(r->element[6]->str, "dylive:{222}:lease");
  ASSERT_EQ_STR(r->element[8]->str, "dylive:{222}:events");
  ASSERT_EQ_STR(r->element[9 + 1]->str, "3500"); /* a renews the lease */
  ASSERT_EQ_STR(r->element[9 + 9]->str, "2");    /* a's events */
  ASSERT_EQ_STR(r->element[29]->str, b->token);
  ASSERT_EQ_STR(r->element[29 + 1]->str, "0");   /* b leaves it alone */
  ASSERT_EQ_STR(r->element[29 + 2]->str, "9");
  ASSERT_EQ_STR(r->element[9 + 4]->str, "100000"); /* a trims */
  ASSERT_EQ_STR(r->element[29 + 4]->str, "0");      /* b does not */
  ASSERT_EQ_STR(r->element[29 + 9]->str, "1");
  freeReplyObject(r);
  /* only room writes group; a group of none is refused */
  ASSERT_EQ_ERR(dl_cmd_encode_rooms(g, 0, &ENV, &buf), DL_EINVAL);
  dl_buf_free(&buf);
  dl_cmd_free(a);
  dl_cmd_free(b);
  return 0;
}

static int same_encoding(const dl_cmd *a, const dl_cmd *b) {
  dl_buf x, y;
  dl_buf_init(&x, 1 << 24);
  dl_buf_init(&y, 1 << 24);
  ASSERT_EQ_ERR(dl_cmd_encode(a, &ENV, &x), DL_EOK);
  ASSERT_EQ_ERR(dl_cmd_encode(b, &ENV, &y), DL_EOK);
  ASSERT_EQ_U64(x.len, y.len);
  ASSERT_EQ_MEM(x.p, y.p, x.len);
  dl_buf_free(&x);
  dl_buf_free(&y);
  return 0;
}

int test_cmd_record_roundtrip(void) {
  const char *argv[] = {"LREM", "dylive:claims:w1:{dylive:assign}", "1", "{\"live_id\":\"1\",\"cookie\":\"x\"}"};
  dl_cmd *cs[3] = {room_cmd("42", 9, 3), dl_cmd_plain_new(4, argv, NULL), room_cmd("43", 1, 2)};
  cs[0]->force = 1;
  cs[0]->release = 1;
  cs[0]->expire_s = 77;
  dl_cmd_to_orphan(cs[2]);
  for (int i = 0; i < 3; i++) {
    dl_buf rec;
    dl_buf_init(&rec, DL_CMD_RECORD_MAX);
    ASSERT_EQ_ERR(dl_cmd_to_record(cs[i], &rec), DL_EOK);
    dl_cmd *back = NULL;
    char why[160] = "";
    if (dl_cmd_from_record(rec.p, rec.len, "dylive", &back, why, sizeof why) != DL_EOK)
      DL_TEST_FAIL_("record %d refused: %s", i, why);
    ASSERT_EQ_U64(back->kind, cs[i]->kind);
    ASSERT_EQ_U64(back->seq, cs[i]->seq); /* the hole: spooled writes kept no sequence index */
    ASSERT_EQ_U64(back->force, cs[i]->force);
    ASSERT_EQ_U64(back->nevents, cs[i]->nevents);
    ASSERT_EQ_STR(back->live_id, cs[i]->live_id);
    CHECK(same_encoding(cs[i], back));
    dl_cmd_free(back);
    dl_buf_free(&rec);
    dl_cmd_free(cs[i]);
  }
  return 0;
}

/* Every truncation and every single-byte change of a record is refused or decodes to a valid
 * command (never a crash, never an out-of-prefix or foreign command). */
int test_cmd_record_hostile(void) {
  dl_cmd *c = room_cmd("42", 3, 2);
  dl_buf rec;
  dl_buf_init(&rec, DL_CMD_RECORD_MAX);
  dl_cmd_to_record(c, &rec);
  char why[160];
  dl_cmd *back = NULL;
  for (size_t n = 0; n < rec.len; n++) {
    ASSERT_EQ_ERR(dl_cmd_from_record(rec.p, n, "dylive", &back, why, sizeof why), DL_EPROTO);
    ASSERT_TRUE(back == NULL);
  }
  for (size_t i = 0; i < rec.len; i++)
    for (int bit = 0; bit < 8; bit++) {
      rec.p[i] ^= (uint8_t)(1 << bit);
      if (dl_cmd_from_record(rec.p, rec.len, "dylive", &back, why, sizeof why) == DL_EOK) {
        ASSERT_TRUE(back->kind == DL_CMD_ROOM || back->kind == DL_CMD_ORPHAN);
        dl_cmd_free(back);
        back = NULL;
      }
      rec.p[i] ^= (uint8_t)(1 << bit);
    }
  dl_buf_free(&rec);
  dl_cmd_free(c);
  /* plain commands: only the verbs the outbox writes, only on keys of the prefix (and P:rooms,
   * P:assign where that is the only key dylive writes with the verb) */
  const char *bad[][7] = {{"FLUSHALL", NULL},
                          {"CONFIG", "SET", "dir", "/tmp", NULL},
                          {"DEL", "other:key", NULL},
                          {"DEL", "dylive:{42}:events", NULL},
                          {"ZREM", "dylive:workers", "w1", NULL},
                          {"HSET", "dylive:{42}:status", "wseq", "w2 9|1", NULL},
                          {"CLIENT", "KILL", "127.0.0.1:6379", NULL},
                          {"RPUSH", "dylive:{42}:events", "x", NULL},
                          {"XADD", "dylive:{42}:events", "*", "msg_id", "1", "type", NULL},
                          {"HDEL", "dylive:{42}:status", "wseq", "state", NULL},
                          {"RPUSH", "dylive", "x", NULL},
                          {"LREM", "dylive:assign", "0", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int argc = 0;
    while (bad[i][argc]) argc++;
    dl_cmd *p = dl_cmd_plain_new(argc, bad[i], NULL);
    dl_buf_init(&rec, DL_CMD_RECORD_MAX);
    dl_cmd_to_record(p, &rec);
    ASSERT_EQ_ERR(dl_cmd_from_record(rec.p, rec.len, "dylive", &back, why, sizeof why), DL_EPROTO);
    dl_buf_free(&rec);
    dl_cmd_free(p);
  }
  return 0;
}

/* ---------- the spool file ---------- */

int test_spool_private_dir(void) {
  const char *t = tmpdir();
  ASSERT_TRUE(t != NULL);
  ASSERT_TRUE(t != NULL);
  char priv[512], why[300];
  ASSERT_EQ_ERR(dl_spool_private_dir(t, priv, sizeof priv, why, sizeof why), DL_EOK);
  struct stat st;
  ASSERT_EQ_I64(lstat(priv, &st), 0);
  ASSERT_EQ_U64(st.st_mode & 0777, 0700);
  /* open to others: refused */
  chmod(priv, 0777);
  ASSERT_EQ_ERR(dl_spool_private_dir(t, priv, sizeof priv, why, sizeof why), DL_EINVAL);
  ASSERT_TRUE(strstr(why, "open to other users") != NULL);
  rmdir(priv);
  /* a planted symlink: refused, its target untouched */
  char target[600];
  snprintf(target, sizeof target, "%s/elsewhere", t);
  mkdir(target, 0700);
  ASSERT_EQ_I64(symlink(target, priv), 0);
  ASSERT_EQ_ERR(dl_spool_private_dir(t, priv, sizeof priv, why, sizeof why), DL_EINVAL);
  unlink(priv);
  if (geteuid() == 0) { /* a directory of another user (only root can make one here) */
    mkdir(priv, 0700);
    ASSERT_EQ_I64(chown(priv, 4242, 4242), 0);
    ASSERT_EQ_ERR(dl_spool_private_dir(t, priv, sizeof priv, why, sizeof why), DL_EINVAL);
    ASSERT_TRUE(strstr(why, "belongs to uid 4242") != NULL);
  }
  rmtree(t);
  return 0;
}

int test_spool_refuses_planted_files(void) {
  const char *t = tmpdir();
  ASSERT_TRUE(t != NULL);
  char priv[512], why[300], path[700], victim[700];
  ASSERT_EQ_ERR(dl_spool_private_dir(t, priv, sizeof priv, why, sizeof why), DL_EOK);
  /* a symlink where the spool goes: creation fails and the target keeps its content (the old
   * spool truncated it) */
  snprintf(victim, sizeof victim, "%s/victim", t);
  FILE *f = fopen(victim, "w");
  fputs("precious", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/w1.spool", priv);
  ASSERT_EQ_I64(symlink(victim, path), 0);
  ASSERT_TRUE(dl_spool_create(priv, "w1", 1 << 20, why, sizeof why) == NULL);
  struct stat st;
  ASSERT_EQ_I64(stat(victim, &st), 0);
  ASSERT_EQ_U64(st.st_size, 8);
  /* a pre-created file (someone else's data, or a trap): never reused */
  unlink(path);
  f = fopen(path, "w");
  fclose(f);
  ASSERT_TRUE(dl_spool_create(priv, "w1", 1 << 20, why, sizeof why) == NULL);
  rmtree(t);
  return 0;
}

static dl_spool *spool_with(const char *priv, const char *name, int n, uint32_t *lens) {
  char why[300];
  dl_spool *s = dl_spool_create(priv, name, 1 << 20, why, sizeof why);
  for (int i = 0; s && i < n; i++) {
    char rec[64];
    int l = snprintf(rec, sizeof rec, "record-%d-%s", i, i % 2 ? "odd" : "even-longer");
    lens[i] = (uint32_t)l;
    dl_spool_append(s, rec, (uint32_t)l);
  }
  return s;
}

/* A fresh temp dir *t, its private spool directory priv, and a spool "w1" in it holding n records
 * (spool_with); NULL when any step fails (*t is then removed, or NULL). */
static dl_spool *spool_in_tmp(const char **t, char *priv, size_t cap, int n, uint32_t *lens) {
  char why[300];
  if (!(*t = tmpdir())) return NULL;
  dl_spool *s = NULL;
  if (dl_spool_private_dir(*t, priv, cap, why, sizeof why) == DL_EOK) s = spool_with(priv, "w1", n, lens);
  if (!s) rmtree(*t);
  return s;
}

/* A fresh temp dir t, its private spool directory priv (cap bytes), a spool "w1" of spool_max
 * bytes in it and an outbox on it; NULL (and nothing to free) when any step fails. */
static dl_outbox *outbox_on_spool(const dl_outbox_limits *lim, uint64_t spool_max, const char **t, char *priv,
                                  size_t cap, dl_spool **sp) {
  char why[300];
  *sp = NULL;
  if (!(*t = tmpdir()) || dl_spool_private_dir(*t, priv, cap, why, sizeof why) != DL_EOK ||
      !(*sp = dl_spool_create(priv, "w1", spool_max, why, sizeof why)))
    return NULL;
  dl_outbox *ob = dl_outbox_new(lim, *sp, "dylive");
  if (!ob) {
    dl_spool_close(*sp);
    *sp = NULL;
  }
  return ob;
}

/* The hole: one corrupted length made the reader retry the same bytes forever (100 % CPU). */
int test_spool_corrupt_length_skipped(void) {
  const char *t;
  char priv[512];
  uint32_t lens[3];
  dl_spool *s = spool_in_tmp(&t, priv, sizeof priv, 3, lens);
  ASSERT_TRUE(s != NULL);
  /* the second record's length field: 8 (file header) + 12 + lens[0] + 4 */
  int fd = open(dl_spool_path(s), O_RDWR);
  uint8_t huge[4] = {0xff, 0xff, 0xff, 0x7f};
  ASSERT_EQ_I64(pwrite(fd, huge, 4, 8 + 12 + lens[0] + 4), 4);
  close(fd);
  void *rec;
  uint32_t n;
  int ok = 0, bad = 0, calls = 0;
  dl_err e;
  while ((e = dl_spool_next(s, &rec, &n)) != DL_ENOTFOUND) {
    ASSERT_TRUE(++calls < 10); /* progress on every call */
    if (e == DL_EOK) {
      ok++;
      ASSERT_TRUE(!memcmp(rec, "record-", 7));
      free(rec);
    } else {
      ASSERT_EQ_ERR(e, DL_EPROTO);
      bad++;
    }
  }
  ASSERT_EQ_I64(ok, 2); /* the first and, after resync, the third */
  ASSERT_EQ_I64(bad, 1);
  ASSERT_EQ_U64(dl_spool_bad_records(s), 1);
  dl_spool_close(s);
  rmtree(t);
  return 0;
}

/* The outbox reads spooled records into one buffer it keeps (no malloc per record): every record
 * comes back whole into it, a damaged one is skipped with the buffer left empty, and a record
 * bigger than what the buffer held before grows it. */
int test_spool_next_into_kept_buffer(void) {
  const char *t;
  char priv[512];
  uint32_t lens[4];
  dl_spool *s = spool_in_tmp(&t, priv, sizeof priv, 4, lens);
  ASSERT_TRUE(s != NULL);
  char big[5000];
  memset(big, 'b', sizeof big);
  ASSERT_EQ_ERR(dl_spool_append(s, big, sizeof big), DL_EOK);
  int fd = open(dl_spool_path(s), O_RDWR);
  uint8_t x = 'X';
  ASSERT_EQ_I64(pwrite(fd, &x, 1, 8 + 12 + lens[0] + 12 + 2), 1); /* a byte of the second payload */
  close(fd);
  dl_buf b;
  dl_buf_init(&b, DL_CMD_RECORD_MAX);
  ASSERT_EQ_ERR(dl_spool_next_buf(s, &b), DL_EOK);
  ASSERT_EQ_U64(b.len, lens[0]);
  ASSERT_TRUE(!memcmp(b.p, "record-0-even-longer", lens[0]));
  uint8_t *kept = b.p;
  ASSERT_EQ_ERR(dl_spool_next_buf(s, &b), DL_EPROTO); /* crc */
  ASSERT_EQ_U64(b.len, 0);
  ASSERT_EQ_ERR(dl_spool_next_buf(s, &b), DL_EOK);
  ASSERT_EQ_U64(b.len, lens[2]);
  ASSERT_TRUE(!memcmp(b.p, "record-2-even-longer", lens[2]));
  ASSERT_TRUE(b.p == kept); /* the same buffer, not a new one */
  ASSERT_EQ_ERR(dl_spool_next_buf(s, &b), DL_EOK);
  ASSERT_TRUE(!memcmp(b.p, "record-3-odd", lens[3]));
  ASSERT_EQ_ERR(dl_spool_next_buf(s, &b), DL_EOK);
  ASSERT_EQ_U64(b.len, sizeof big);
  ASSERT_TRUE(b.cap > sizeof big && !memcmp(b.p, big, sizeof big));
  ASSERT_EQ_ERR(dl_spool_next_buf(s, &b), DL_ENOTFOUND);
  ASSERT_EQ_U64(b.len, 0);
  dl_buf_free(&b);
  dl_spool_close(s);
  rmtree(t);
  return 0;
}

int test_spool_crc_and_truncation(void) {
  const char *t;
  char priv[512];
  uint32_t lens[3];
  dl_spool *s = spool_in_tmp(&t, priv, sizeof priv, 3, lens);
  ASSERT_TRUE(s != NULL);
  int fd = open(dl_spool_path(s), O_RDWR);
  uint8_t x = 'X';
  ASSERT_EQ_I64(pwrite(fd, &x, 1, 8 + 12 + 3), 1); /* a byte of the first payload */
  struct stat st;
  fstat(fd, &st);
  ASSERT_EQ_I64(ftruncate(fd, st.st_size - 2), 0); /* the last record torn */
  close(fd);
  void *rec;
  uint32_t n;
  ASSERT_EQ_ERR(dl_spool_next(s, &rec, &n), DL_EPROTO); /* crc */
  ASSERT_EQ_ERR(dl_spool_next(s, &rec, &n), DL_EOK);
  ASSERT_EQ_U64(n, lens[1]);
  free(rec);
  dl_err e;
  int calls = 0;
  while ((e = dl_spool_next(s, &rec, &n)) == DL_EPROTO) ASSERT_TRUE(++calls < 4);
  ASSERT_EQ_ERR(e, DL_ENOTFOUND);
  dl_spool_close(s);
  rmtree(t);
  return 0;
}

int test_spool_orphans_and_cap(void) {
  const char *t = tmpdir();
  ASSERT_TRUE(t != NULL);
  char priv[512], why[300];
  ASSERT_EQ_ERR(dl_spool_private_dir(t, priv, sizeof priv, why, sizeof why), DL_EOK);
  uint32_t lens[2];
  dl_spool *live = spool_with(priv, "alive", 2, lens);
  /* a dead worker's spool: same bytes, no lock holder */
  char dead[700], cmd[1600];
  snprintf(dead, sizeof dead, "%s/dead.spool", priv);
  snprintf(cmd, sizeof cmd, "cp -p '%s' '%s'", dl_spool_path(live), dead);
  ASSERT_EQ_I64(system(cmd), 0);
  char paths[4][DL_SPOOL_PATH_MAX];
  ASSERT_EQ_U64(dl_spool_orphans(priv, paths, 4), 1);
  ASSERT_EQ_STR(paths[0], dead);
  dl_spool *o = dl_spool_adopt(dead, why, sizeof why);
  ASSERT_TRUE(o != NULL);
  ASSERT_TRUE(dl_spool_adopt(dead, why, sizeof why) == NULL); /* one successor per orphan */
  void *rec;
  uint32_t n;
  int got = 0;
  while (dl_spool_next(o, &rec, &n) == DL_EOK) got++, free(rec);
  ASSERT_EQ_I64(got, 2);
  dl_spool_close(o);
  ASSERT_TRUE(access(dead, F_OK) != 0); /* removed once replayed */
  /* the cap is on the file: appends past it fail with FULL */
  char big[1000] = {0};
  dl_spool *c = dl_spool_create(priv, "capped", 2500, why, sizeof why);
  ASSERT_EQ_ERR(dl_spool_append(c, big, sizeof big), DL_EOK);
  ASSERT_EQ_ERR(dl_spool_append(c, big, sizeof big), DL_EOK);
  ASSERT_EQ_ERR(dl_spool_append(c, big, sizeof big), DL_EFULL);
  ASSERT_EQ_ERR(dl_spool_next(c, &rec, &n), DL_EOK);
  free(rec);
  ASSERT_EQ_ERR(dl_spool_append(c, big, sizeof big), DL_EFULL); /* not until the reader catches up */
  ASSERT_EQ_ERR(dl_spool_next(c, &rec, &n), DL_EOK);
  free(rec);
  ASSERT_EQ_ERR(dl_spool_append(c, big, sizeof big), DL_EOK); /* file truncated, room again */
  dl_spool_close(c);
  dl_spool_close(live);
  rmtree(t);
  return 0;
}

/* ---------- the outbox ---------- */

/* Order across memory → spool → memory, with sequence numbers intact. */
int test_outbox_order_across_tiers(void) {
  const char *t;
  char priv[512];
  dl_spool *sp;
  dl_outbox_limits lim = {2, 1 << 20};
  dl_outbox *ob = outbox_on_spool(&lim, 1 << 24, &t, priv, sizeof priv, &sp);
  ASSERT_TRUE(ob != NULL);
  for (uint64_t s = 1; s <= 7; s++) dl_outbox_push(ob, room_cmd("42", s, 3));
  ASSERT_EQ_U64(dl_outbox_mem_cmds(ob), 2);
  ASSERT_EQ_U64(dl_outbox_pending(ob), 7);
  ASSERT_EQ_U64(dl_outbox_stats_get(ob)->spooled, 5);
  uint64_t want = 1;
  dl_cmd *c;
  while ((c = dl_outbox_next(ob))) {
    answer(ob, c, mk_int_pair(DL_LUA_OK, 3));
    dl_cmd *done;
    while ((done = dl_outbox_pop(ob))) {
      ASSERT_EQ_U64(done->seq, want);
      ASSERT_EQ_U64(done->nevents, 3);
      want++;
      dl_cmd_free(done);
    }
  }
  ASSERT_EQ_U64(want, 8);
  ASSERT_EQ_U64(dl_outbox_pending(ob), 0);
  dl_outbox_free(ob);
  dl_spool_close(sp);
  rmtree(t);
  return 0;
}

/* A room write of about `bytes` bytes (one event). */
static dl_cmd *sized_cmd(uint64_t seq, size_t bytes) {
  static char json[65536];
  dl_cmd *c = dl_cmd_room_new("42", "w1 7");
  if (!c || bytes < 200 || bytes - 150 >= sizeof json) return c;
  c->seq = seq;
  memset(json, 'x', bytes - 150);
  dl_cmd_add_event(c, "chat", "1", 1700000000000LL, json, bytes - 150);
  return c;
}

/* The worker's policy (dl_worker.c frames_fit): as many frames as the tiers can hold at their
 * largest, halving from a batch; failing one, one while any room is left. Returns how many;
 * pushes that many writes of real_bytes each. */
static size_t take_batch(dl_outbox *ob, uint64_t per, size_t real_bytes, uint64_t *seq) {
  size_t want = 256;
  while (want > 1 && !dl_outbox_accepting(ob, want * per, want)) want /= 2;
  if (want == 1 && !dl_outbox_accepting(ob, 1, 1)) want = 0;
  for (size_t i = 0; i < want; i++) dl_outbox_push(ob, sized_cmd(++*seq, real_bytes));
  return want;
}

/* Back-pressure covers what is taken: frames are taken only while the tiers can hold them, so
 * memory (no spool) and the spool pass their caps by one frame at most: memory alone never
 * needs the overflow list, and with a spool it holds one frame at most.
 * The old check (with a hint of one frame) said yes while memory had room for less than one,
 * and the worker then took a whole batch of 256 frames past the cap. */
int test_outbox_accepting_bounds_batches(void) {
  const uint64_t per = 4096; /* a frame's write at its largest */
  dl_outbox_limits lim = {64, 32 * 1024};
  dl_outbox *ob = dl_outbox_new(&lim, NULL, "dylive");
  ASSERT_TRUE(ob != NULL);
  uint64_t seq = 0;
  for (int i = 0; i < 8; i++) dl_outbox_push(ob, sized_cmd(++seq, 3900)); /* 31 KB of 32: not full */
  ASSERT_TRUE(dl_outbox_mem_bytes(ob) < lim.max_bytes && dl_outbox_mem_bytes(ob) + per > lim.max_bytes);
  ASSERT_FALSE(dl_outbox_accepting(ob, per, 1)); /* no room for a frame */
  for (int round = 0; round < 20; round++) {
    take_batch(ob, per, 3500, &seq);
    ASSERT_TRUE(dl_outbox_mem_bytes(ob) <= lim.max_bytes + per);
    ASSERT_EQ_U64(dl_outbox_pending(ob), dl_outbox_mem_cmds(ob)); /* no overflow */
    dl_cmd *c = dl_outbox_next(ob); /* Redis takes one write per round */
    if (c) answer(ob, c, mk_int_pair(DL_LUA_OK, 1));
    dl_cmd_free(dl_outbox_pop(ob));
  }
  dl_outbox_free(ob);
  /* with a spool: memory, then the spool up to its cap, never the overflow list */
  const char *t;
  char priv[512];
  dl_spool *sp;
  dl_outbox_limits small = {4, 8 * 1024};
  ob = outbox_on_spool(&small, 64 * 1024, &t, priv, sizeof priv, &sp);
  ASSERT_TRUE(ob != NULL);
  size_t taken = 0, n;
  while ((n = take_batch(ob, per, 3500, &seq)) > 0) {
    taken += n;
    ASSERT_TRUE(dl_outbox_spool_bytes(ob) <= 64 * 1024);
    ASSERT_TRUE(dl_outbox_pending(ob) - dl_outbox_mem_cmds(ob) - dl_spool_pending_records(sp) <= 1); /* overflow */
    ASSERT_TRUE(taken < 1000);
  }
  ASSERT_TRUE(taken >= 10); /* and it did take frames until the spool was near its cap */
  ASSERT_TRUE(dl_outbox_spool_bytes(ob) > 64 * 1024 - 2 * per);
  dl_outbox_free(ob);
  dl_spool_close(sp);
  rmtree(t);
  return 0;
}

/* A refused write (OOM) with later ones pipelined behind it: the later write of the same room
 * answers GAP, which is not a real gap while its predecessor is pending; only the head is sent
 * until it succeeds (probing); order is kept. */
int test_outbox_retry_probe_and_order(void) {
  dl_outbox_limits lim = {100, 1 << 20};
  dl_outbox *ob = dl_outbox_new(&lim, NULL, "dylive");
  for (uint64_t s = 1; s <= 3; s++) dl_outbox_push(ob, room_cmd("42", s, 1));
  dl_cmd *c1 = dl_outbox_next(ob), *c2 = dl_outbox_next(ob), *c3 = dl_outbox_next(ob);
  ASSERT_TRUE(c1 && c2 && c3 && !dl_outbox_next(ob));
  answer(ob, c1, mk_err("OOM command not allowed when used memory > 'maxmemory'."));
  answer(ob, c2, mk_int_pair(DL_LUA_GAP, 0));
  answer(ob, c3, mk_int_pair(DL_LUA_GAP, 0));
  ASSERT_TRUE(dl_outbox_probing(ob));
  ASSERT_EQ_U64(dl_outbox_stats_get(ob)->gaps, 0); /* not a real gap */
  ASSERT_FALSE(c2->force);
  ASSERT_TRUE(dl_outbox_next(ob) == c1); /* the probe */
  ASSERT_TRUE(dl_outbox_next(ob) == NULL);
  answer(ob, c1, mk_int_pair(DL_LUA_OK, 1));
  ASSERT_FALSE(dl_outbox_probing(ob));
  ASSERT_TRUE(dl_outbox_next(ob) == c2);
  ASSERT_TRUE(dl_outbox_next(ob) == c3);
  answer(ob, c2, mk_int_pair(DL_LUA_OK, 1));
  answer(ob, c3, mk_int_pair(DL_LUA_APPLIED, 0)); /* Redis had it (a re-send): fine */
  for (uint64_t s = 1; s <= 3; s++) {
    dl_cmd *d = dl_outbox_pop(ob);
    ASSERT_TRUE(d != NULL);
    ASSERT_EQ_U64(d->seq, s);
    ASSERT_EQ_I64(d->reply.cls, DL_RC_OK);
    dl_cmd_free(d);
  }
  dl_outbox_free(ob);
  return 0;
}

/* A write whose predecessor was lost on our side (a bad spool record): at the head its GAP is
 * real, it is re-sent with force, and the encoding says so — the old code rewrote the sequence
 * argument by index, which after the spool pointed at the wrong argument ("!EVALSHA"). */
int test_outbox_gap_repair_after_spool(void) {
  const char *t;
  char priv[512];
  dl_spool *sp;
  dl_outbox_limits lim = {1, 1 << 20};
  dl_outbox *ob = outbox_on_spool(&lim, 1 << 24, &t, priv, sizeof priv, &sp);
  ASSERT_TRUE(ob != NULL);
  dl_outbox_push(ob, room_cmd("42", 1, 1));
  dl_outbox_push(ob, room_cmd("42", 2, 1)); /* spooled */
  dl_outbox_push(ob, room_cmd("42", 3, 1)); /* spooled */
  /* damage the first spooled record (seq 2): it will be skipped */
  int fd = open(dl_spool_path(sp), O_RDWR);
  uint8_t junk[4] = {1, 2, 3, 4};
  ASSERT_EQ_I64(pwrite(fd, junk, 4, 8 + 12 + 10), 4);
  close(fd);
  dl_cmd *c = dl_outbox_next(ob);
  answer(ob, c, mk_int_pair(DL_LUA_OK, 1));
  dl_cmd_free(dl_outbox_pop(ob)); /* refills: seq 2 is bad, seq 3 comes in */
  ASSERT_EQ_U64(dl_outbox_stats_get(ob)->spool_bad, 1);
  c = dl_outbox_next(ob);
  ASSERT_EQ_U64(c->seq, 3);
  answer(ob, c, mk_int_pair(DL_LUA_GAP, 0));
  ASSERT_EQ_U64(dl_outbox_stats_get(ob)->gaps, 1);
  ASSERT_TRUE(c->force);
  ASSERT_TRUE(dl_outbox_next(ob) == c);
  dl_buf b;
  dl_buf_init(&b, 1 << 20);
  dl_cmd_encode(c, &ENV, &b);
  redisReply *r = parse_cmd(&b);
  ASSERT_EQ_STR(r->element[0]->str, "EVALSHA");
  ASSERT_EQ_STR(r->element[8]->str, "3");
  ASSERT_EQ_STR(r->element[9]->str, "1");
  freeReplyObject(r);
  dl_buf_free(&b);
  answer(ob, c, mk_int_pair(DL_LUA_OK, 1));
  dl_cmd *d = dl_outbox_pop(ob);
  ASSERT_EQ_I64(d->reply.cls, DL_RC_OK);
  dl_cmd_free(d);
  dl_outbox_free(ob);
  dl_spool_close(sp);
  rmtree(t);
  return 0;
}

/* Fenced and fatal writes finish (never retried); a lost connection re-sends in order; the
 * conditional follow-up goes only after success. */
int test_outbox_fenced_fatal_disconnect(void) {
  dl_outbox_limits lim = {100, 1 << 20};
  dl_outbox *ob = dl_outbox_new(&lim, NULL, "dylive");
  dl_cmd *a = room_cmd("1", 1, 1), *b = room_cmd("2", 1, 1), *c = room_cmd("3", 1, 1);
  const char *x[] = {"XADD", "dylive:rooms", "MAXLEN", "~", "10000", "*", "live_id", "1", "state", "live"};
  a->then = dl_cmd_plain_new(10, x, NULL);
  b->then = dl_cmd_plain_new(10, x, NULL);
  dl_outbox_push(ob, a);
  dl_outbox_push(ob, b);
  dl_outbox_push(ob, c);
  ASSERT_TRUE(dl_outbox_next(ob) == a);
  ASSERT_TRUE(dl_outbox_next(ob) == b);
  dl_outbox_disconnected(ob);
  ASSERT_TRUE(dl_outbox_next(ob) == a); /* again, from the oldest */
  ASSERT_TRUE(dl_outbox_next(ob) == b);
  ASSERT_TRUE(dl_outbox_next(ob) == c);
  answer(ob, a, mk_int_pair(DL_LUA_FENCED, 0));
  answer(ob, b, mk_err("WRONGTYPE Operation against a key holding the wrong kind of value script: 1ab, on @user_script:12."));
  answer(ob, c, mk_int_pair(DL_LUA_OK, 1));
  ASSERT_FALSE(dl_outbox_probing(ob)); /* final answers are not retried */
  dl_cmd *d = dl_outbox_pop(ob);
  ASSERT_EQ_I64(d->reply.cls, DL_RC_FENCED);
  dl_cmd_free(d);
  d = dl_outbox_pop(ob);
  ASSERT_EQ_I64(d->reply.cls, DL_RC_FATAL);
  dl_cmd_free(d);
  d = dl_outbox_pop(ob);
  ASSERT_EQ_I64(d->reply.cls, DL_RC_OK);
  dl_cmd_free(d);
  ASSERT_TRUE(dl_outbox_next(ob) == NULL); /* neither follow-up: their writes did not succeed */
  ASSERT_EQ_U64(dl_outbox_pending(ob), 0);
  /* and after a success it goes */
  dl_cmd *e = room_cmd("4", 1, 1);
  e->then = dl_cmd_plain_new(10, x, NULL);
  dl_outbox_push(ob, e);
  answer(ob, dl_outbox_next(ob), mk_int_pair(DL_LUA_OK, 1));
  dl_cmd_free(dl_outbox_pop(ob));
  d = dl_outbox_next(ob);
  ASSERT_TRUE(d != NULL && d->kind == DL_CMD_PLAIN);
  answer(ob, d, mk_status("1-0"));
  dl_cmd_free(dl_outbox_pop(ob));
  dl_outbox_free(ob);
  return 0;
}

/* A follow-up marked then_always goes after a refused write too (a failed room's P:rooms entry),
 * once, from pop and from save alike. */
int test_outbox_then_always(void) {
  dl_outbox_limits lim = {100, 1 << 20};
  dl_outbox *ob = dl_outbox_new(&lim, NULL, "dylive");
  const char *x[] = {"XADD", "dylive:rooms", "MAXLEN", "~", "10000", "*", "live_id", "1", "state", "error"};
  dl_cmd *a = room_cmd("1", 1, 0);
  a->then = dl_cmd_plain_new(10, x, NULL);
  a->then_always = 1;
  dl_outbox_push(ob, a);
  ASSERT_TRUE(dl_outbox_next(ob) == a);
  answer(ob, a, mk_err("WRONGTYPE Operation against a key holding the wrong kind of value"));
  dl_cmd *d = dl_outbox_pop(ob);
  ASSERT_TRUE(d == a && d->reply.cls == DL_RC_FATAL && d->then == NULL);
  dl_cmd_free(d);
  d = dl_outbox_next(ob);
  ASSERT_TRUE(d != NULL && d->kind == DL_CMD_PLAIN);
  answer(ob, d, mk_status("1-0"));
  dl_cmd_free(dl_outbox_pop(ob));
  ASSERT_TRUE(dl_outbox_next(ob) == NULL);
  ASSERT_EQ_U64(dl_outbox_pending(ob), 0);
  dl_outbox_free(ob);
  return 0;
}

/* --redis-wait-replicas: applied is not done until a WAIT covers it; after a failover the
 * applied-but-unconfirmed writes go again (to the new primary), in order. */
int test_outbox_wait_replicas(void) {
  dl_outbox_limits lim = {100, 1 << 20};
  dl_outbox *ob = dl_outbox_new(&lim, NULL, "dylive");
  dl_outbox_set_confirm(ob, 1);
  for (uint64_t s = 1; s <= 3; s++) dl_outbox_push(ob, room_cmd("42", s, 1));
  dl_cmd *a = dl_outbox_next(ob), *b = dl_outbox_next(ob);
  uint64_t barrier = dl_outbox_last_sendno(ob); /* a WAIT sent now covers a and b */
  dl_cmd *c = dl_outbox_next(ob);
  answer(ob, a, mk_int_pair(DL_LUA_OK, 1));
  answer(ob, b, mk_int_pair(DL_LUA_OK, 1));
  answer(ob, c, mk_int_pair(DL_LUA_OK, 1));
  ASSERT_TRUE(dl_outbox_pop(ob) == NULL); /* applied, not yet on a replica */
  ASSERT_EQ_U64(dl_outbox_unconfirmed(ob), 3);
  dl_outbox_confirm(ob, 0, barrier);
  dl_cmd *d = dl_outbox_pop(ob);
  ASSERT_TRUE(d == a);
  dl_cmd_free(d);
  d = dl_outbox_pop(ob);
  ASSERT_TRUE(d == b);
  dl_cmd_free(d);
  ASSERT_TRUE(dl_outbox_pop(ob) == NULL); /* c was sent after the WAIT */
  /* the primary fails over before a WAIT covers c: c goes again, to the new primary */
  dl_outbox_resend_unconfirmed(ob);
  ASSERT_TRUE(dl_outbox_next(ob) == c);
  answer(ob, c, mk_int_pair(DL_LUA_APPLIED, 0)); /* the replica had it after all: fine */
  dl_outbox_confirm(ob, 0, dl_outbox_last_sendno(ob));
  d = dl_outbox_pop(ob);
  ASSERT_TRUE(d == c);
  dl_cmd_free(d);
  /* a fenced write is final without a WAIT */
  dl_outbox_push(ob, room_cmd("43", 1, 1));
  dl_cmd *e = dl_outbox_next(ob);
  answer(ob, e, mk_int_pair(DL_LUA_FENCED, 0));
  d = dl_outbox_pop(ob);
  ASSERT_TRUE(d == e);
  dl_cmd_free(d);
  dl_outbox_free(ob);
  return 0;
}

/* One call's reply for grouped room writes: each command gets its own element's meaning; an error
 * reply, a lost connection or an array of the wrong size answers them all. */
int test_outbox_classify_group(void) {
  dl_cmd *c[3] = {room_cmd("1", 1, 1), room_cmd("2", 4, 2), room_cmd("3", 2, 1)};
  redisReply *r = calloc(1, sizeof *r);
  r->type = REDIS_REPLY_ARRAY;
  r->elements = 3;
  r->element = calloc(3, sizeof *r->element);
  r->element[0] = mk_int_pair(DL_LUA_OK, 1);
  r->element[1] = mk_err("WRONGTYPE Operation against a key holding the wrong kind of value");
  r->element[2] = mk_int_pair(DL_LUA_FENCED, 0);
  ASSERT_EQ_I64(dl_outbox_classify_group(c, 3, r), 0);
  ASSERT_EQ_I64(c[0]->reply.cls, DL_RC_OK);
  ASSERT_EQ_I64(c[0]->reply.written, 1);
  ASSERT_EQ_I64(c[1]->reply.cls, DL_RC_FATAL);
  ASSERT_TRUE(strstr(c[1]->reply.why, "WRONGTYPE") == c[1]->reply.why);
  ASSERT_EQ_I64(c[2]->reply.cls, DL_RC_FENCED);
  /* fewer elements than commands: never OK */
  r->elements = 2;
  ASSERT_EQ_I64(dl_outbox_classify_group(c, 3, r), 1);
  for (int i = 0; i < 3; i++) ASSERT_EQ_I64(c[i]->reply.cls, DL_RC_FATAL);
  r->elements = 3;
  freeReplyObject(r);
  redisReply *oom = mk_err("OOM command not allowed when used memory > 'maxmemory'.");
  ASSERT_EQ_I64(dl_outbox_classify_group(c, 3, oom), 1);
  for (int i = 0; i < 3; i++) ASSERT_TRUE(c[i]->reply.cls == DL_RC_RETRY && c[i]->reply.err == DL_RERR_OOM);
  freeReplyObject(oom);
  ASSERT_EQ_I64(dl_outbox_classify_group(c, 3, NULL), 1);
  for (int i = 0; i < 3; i++) ASSERT_EQ_I64(c[i]->reply.cls, DL_RC_RETRY);
  for (int i = 0; i < 3; i++) dl_cmd_free(c[i]);
  return 0;
}

int test_outbox_classify_errors(void) {
  dl_cmd *c = room_cmd("1", 1, 0);
  struct {
    const char *err;
    dl_reply_class cls;
    dl_rerr kind;
  } t[] = {
      {"OOM command not allowed", DL_RC_RETRY, DL_RERR_OOM},
      {"READONLY You can't write against a read only replica.", DL_RC_RETRY, DL_RERR_READONLY},
      {"MOVED 3999 127.0.0.1:6381", DL_RC_RETRY, DL_RERR_MOVED},
      {"ASK 3999 127.0.0.1:6381", DL_RC_RETRY, DL_RERR_ASK},
      {"NOSCRIPT No matching script. Please use EVAL.", DL_RC_RETRY, DL_RERR_NOSCRIPT},
      {"LOADING Redis is loading the dataset in memory", DL_RC_RETRY, DL_RERR_OTHER},
      {"TRYAGAIN Multiple keys request during rehashing of slot", DL_RC_RETRY, DL_RERR_OTHER},
      {"WRONGTYPE Operation against a key holding the wrong kind of value", DL_RC_FATAL, DL_RERR_OTHER},
      {"ERR user_script:1: Script attempted to access nonexistent global variable", DL_RC_FATAL, DL_RERR_OTHER},
      {"OOMX not a real code", DL_RC_FATAL, DL_RERR_OTHER},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    redisReply *r = mk_err(t[i].err);
    dl_reply_info ri;
    dl_outbox_classify(c, r, &ri);
    if (ri.cls != t[i].cls || ri.err != t[i].kind) DL_TEST_FAIL_("%s: class %d kind %d", t[i].err, ri.cls, ri.err);
    ASSERT_TRUE(strstr(ri.why, t[i].err) == ri.why || strlen(t[i].err) > 230);
    freeReplyObject(r);
  }
  dl_reply_info ri;
  dl_outbox_classify(c, NULL, &ri);
  ASSERT_EQ_I64(ri.cls, DL_RC_RETRY);
  redisReply *odd = mk_status("OK"); /* a room write answered with something else: never OK */
  dl_outbox_classify(c, odd, &ri);
  ASSERT_EQ_I64(ri.cls, DL_RC_FATAL);
  freeReplyObject(odd);
  ASSERT_EQ_STR(dl_rerr_name(DL_RERR_NOSCRIPT), "noscript");
  dl_cmd_free(c);
  return 0;
}

/* ---------- small pieces ---------- */

int test_backoff_and_buf(void) {
  dl_backoff b;
  dl_backoff_init(&b, 1000, 8000, 42);
  int64_t caps[] = {1000, 2000, 4000, 8000, 8000, 8000};
  for (int i = 0; i < 6; i++) {
    int64_t d = dl_backoff_next(&b);
    ASSERT_TRUE(d >= caps[i] / 2 && d <= caps[i]);
  }
  ASSERT_EQ_U64(b.failures, 6);
  dl_backoff_reset(&b);
  ASSERT_TRUE(dl_backoff_next(&b) <= 1000);
  dl_buf x;
  dl_buf_init(&x, 10);
  ASSERT_EQ_ERR(dl_buf_adds(&x, "0123456789"), DL_EOK);
  ASSERT_EQ_ERR(dl_buf_addc(&x, 'x'), DL_ELIMIT);
  ASSERT_EQ_U64(x.len, 10);
  dl_buf_consume(&x, 4);
  ASSERT_EQ_STR((char *)x.p, "456789");
  ASSERT_EQ_ERR(dl_buf_printf(&x, "%d", 1234), DL_EOK);
  ASSERT_EQ_ERR(dl_buf_printf(&x, "%d", 5), DL_ELIMIT);
  dl_buf_free(&x);
  return 0;
}

/* ---------- the stream's tail (what a new owner learns) ---------- */

static redisReply *mk_strr(const char *s) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = REDIS_REPLY_STRING;
  r->str = strdup(s);
  r->len = strlen(s);
  return r;
}

static redisReply *mk_arr(size_t n, redisReply **items) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = REDIS_REPLY_ARRAY;
  r->elements = n;
  r->element = calloc(n ? n : 1, sizeof *r->element);
  for (size_t i = 0; i < n; i++) r->element[i] = items[i];
  return r;
}

static redisReply *mk_int(long long v) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = REDIS_REPLY_INTEGER;
  r->integer = v;
  return r;
}

/* One XREVRANGE entry: [id, [type, T, msg_id, M, json, J]]. */
static redisReply *mk_entry(const char *id, const char *type, const char *mid, const char *json) {
  redisReply *f[6] = {mk_strr("type"), mk_strr(type), mk_strr("msg_id"), mk_strr(mid), mk_strr("json"), mk_strr(json)};
  redisReply *e[2] = {mk_strr(id), mk_arr(6, f)};
  return mk_arr(2, e);
}

/* The hole: a reply element of an unexpected type crashed the old streak loader. */
int test_tail_hostile_replies(void) {
  dl_seen *s = dl_seen_new(100);
  dl_tail t;
  redisReply *odd[] = {mk_int(7), NULL, NULL, NULL, NULL};
  dl_tail_read(odd[0], s, 10, 1, &t);
  ASSERT_EQ_U64(t.skipped, 1);
  freeReplyObject(odd[0]);
  redisReply *weird_fields[4] = {mk_int(1), mk_strr("msg_id"), mk_strr("type"), mk_int(5)};
  redisReply *e_bad[2] = {mk_strr("1-0"), mk_arr(4, weird_fields)};
  redisReply *e_nilf[2] = {mk_strr("2-0"), mk_int(0)};
  redisReply *items[] = {mk_int(3), mk_arr(2, e_bad), mk_arr(2, e_nilf), mk_arr(0, NULL),
                         mk_entry("5-0", "chat", "777", "{}"), mk_entry("6-0", "gift", "778", "not json")};
  redisReply *rep = mk_arr(6, items);
  dl_tail_read(rep, s, 10, 1, &t);
  ASSERT_EQ_U64(t.entries, 3);  /* the two good ones and the one with odd fields */
  ASSERT_EQ_U64(t.skipped, 3);  /* an integer, an entry without fields, an empty entry */
  ASSERT_TRUE(dl_seen_has(s, 777) && dl_seen_has(s, 778));
  ASSERT_EQ_U64(t.n_gifts, 0);
  free(t.gifts);
  freeReplyObject(rep);
  dl_seen_free(s);
  return 0;
}

int test_tail_gift_streaks(void) {
  dl_seen *s = dl_seen_new(100);
  const char *g1 = "{\"user\":{\"id\":\"42\",\"nickname\":\"a\",\"anonymous\":false},"
                   "\"gift\":{\"id\":463,\"group_id\":\"1776121373\",\"repeat_count\":5,\"combo_count\":3,\"combo\":true}}";
  const char *g1_later = "{\"user\":{\"id\":\"42\"},\"gift\":{\"id\":463,\"group_id\":\"1776121373\",\"repeat_count\":7,\"combo\":true}}";
  const char *anon = "{\"user\":{\"id\":\"111111\",\"nickname\":\"紫***\",\"anonymous\":true},"
                     "\"gift\":{\"id\":463,\"group_id\":\"1776121373\",\"repeat_count\":2,\"combo\":true}}";
  const char *plain = "{\"user\":{\"id\":\"43\"},\"gift\":{\"id\":1,\"group_id\":\"9\",\"repeat_count\":1,\"combo\":false}}";
  /* newest first, as XREVRANGE answers */
  redisReply *items[] = {mk_entry("4-0", "gift", "4", g1_later), mk_entry("3-0", "gift", "3", anon),
                         mk_entry("2-0", "gift", "2", plain), mk_entry("1-0", "gift", "1", g1)};
  redisReply *rep = mk_arr(4, items);
  dl_tail t;
  dl_tail_read(rep, s, 10, 99, &t);
  ASSERT_EQ_U64(t.n_gifts, 2);
  ASSERT_EQ_U64(t.gifts[0].user_id, 42);
  ASSERT_EQ_U64(t.gifts[0].gift_id, 463);
  ASSERT_EQ_U64(t.gifts[0].group_id, 1776121373);
  ASSERT_EQ_U64(t.gifts[0].last_seen, 7); /* the highest running count of the streak */
  /* an anonymous sender's streak is keyed the way the decoder keys it, not by 111111 */
  ASSERT_EQ_U64(t.gifts[1].user_id, dl_gift_user_key(111111, "紫***", 1));
  ASSERT_TRUE(t.gifts[1].user_id != 111111);
  free(t.gifts);
  dl_tail_read(rep, s, 1, 99, &t); /* the bound holds */
  ASSERT_EQ_U64(t.n_gifts, 1);
  free(t.gifts);
  freeReplyObject(rep);
  dl_seen_free(s);
  return 0;
}
