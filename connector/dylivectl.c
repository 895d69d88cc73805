/* dylivectl — the operator's CLI. Every command is a few plain Redis commands (printed by
 * --explain), so operators can do the same with redis-cli. */
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dl_config.h"
#include "dl_dashboard.h"
#include "dl_page.h"

static const char *g_prefix = "dylive";
static int g_color;

static void usage(FILE *f) {
  fprintf(f,
          "usage: dylivectl [--redis URL] [--prefix P] COMMAND [args]\n\n"
          "  assign LIVE_ID|URL...     capture these rooms (LPUSH P:assign)\n"
          "  unassign LIVE_ID...       stop capturing within 5 s (LREM P:assign + HSET P:{id}:status desired stopped)\n"
          "  rooms                     table of rooms: state, worker, events, last event age, viewers\n"
          "  workers                   table of live workers\n"
          "  tail LIVE_ID [--from-start] [--type chat,gift] [--count N]\n"
          "                            follow a room's events like tail -f\n"
          "  dashboard [--listen HOST:PORT]\n"
          "                            live web page of the pool, read-only (default 127.0.0.1:8080)\n\n"
          "--redis and --prefix default to DYLIVE_REDIS_URL / DYLIVE_PREFIX, then redis://127.0.0.1:6379/0 and "
          "dylive.\n");
}

static redisContext *connect_redis(const char *url) {
  dl_redis_addr a;
  char why[200];
  if (dl_redis_parse_url(url, &a, why, sizeof why) != 0) {
    fprintf(stderr, "dylivectl: --redis: invalid value '%s': %s\n", url, why);
    exit(2);
  }
  struct timeval tv = {5, 0};
  redisContext *c = a.unix_path[0] ? redisConnectUnixWithTimeout(a.unix_path, tv)
                                   : redisConnectWithTimeout(a.host, a.port, tv);
  if (!c || c->err) {
    fprintf(stderr, "dylivectl: cannot connect to Redis at %s: %s (is redis-server running? set --redis or "
                    "DYLIVE_REDIS_URL)\n",
            url, c ? c->errstr : "out of memory");
    exit(1);
  }
  redisReply *r = NULL;
  if (a.password[0])
    r = a.user[0] ? redisCommand(c, "AUTH %s %s", a.user, a.password) : redisCommand(c, "AUTH %s", a.password);
  if (r && r->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "dylivectl: Redis AUTH failed: %s\n", r->str);
    exit(1);
  }
  freeReplyObject(r);
  r = redisCommand(c, "SELECT %d", a.db);
  if (!r || r->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "dylivectl: Redis SELECT %d failed: %s\n", a.db, r ? r->str : c->errstr);
    exit(1);
  }
  freeReplyObject(r);
  return c;
}

static redisReply *cmd(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (!r) {
    fprintf(stderr, "dylivectl: Redis connection lost: %s\n", c->errstr);
    exit(1);
  }
  if (r->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "dylivectl: Redis error: %s\n", r->str);
    exit(1);
  }
  return r;
}

static void normalize_or_die(const char *arg, char *out, size_t cap) {
  if (dl_live_id_normalize(arg, out, cap) != 0) {
    fprintf(stderr, "dylivectl: '%s' is not a live_id (the number in https://live.douyin.com/<live_id>)\n", arg);
    exit(2);
  }
}

static int do_assign(redisContext *c, int argc, char **argv) {
  if (argc < 1) return usage(stderr), 2;
  for (int i = 0; i < argc; i++) {
    char id[64];
    normalize_or_die(argv[i], id, sizeof id);
    freeReplyObject(cmd(c, "HDEL %s:{%s}:status desired", g_prefix, id));
    freeReplyObject(cmd(c, "LPUSH %s:assign %s", g_prefix, id));
    printf("assigned %s\n", id);
  }
  return 0;
}

static int do_unassign(redisContext *c, int argc, char **argv) {
  if (argc < 1) return usage(stderr), 2;
  for (int i = 0; i < argc; i++) {
    char id[64];
    normalize_or_die(argv[i], id, sizeof id);
    freeReplyObject(cmd(c, "LREM %s:assign 0 %s", g_prefix, id));
    freeReplyObject(cmd(c, "HSET %s:{%s}:status desired stopped", g_prefix, id));
    printf("unassigned %s\n", id);
  }
  return 0;
}

static const char *hget(redisReply *h, const char *field) {
  if (!h || h->type != REDIS_REPLY_ARRAY) return "";
  for (size_t i = 0; i + 1 < h->elements; i += 2)
    if (!strcmp(h->element[i]->str, field)) return h->element[i + 1]->str ? h->element[i + 1]->str : "";
  return "";
}

static void age(char *out, size_t cap, const char *ms) {
  if (!*ms) {
    snprintf(out, cap, "-");
    return;
  }
  long long then = atoll(ms);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  long long s = (now - then) / 1000;
  if (s < 0) s = 0;
  if (s < 120) snprintf(out, cap, "%llds", s);
  else if (s < 7200) snprintf(out, cap, "%lldm", s / 60);
  else snprintf(out, cap, "%lldh", s / 3600);
}

static int do_rooms(redisContext *c) {
  char pattern[128];
  snprintf(pattern, sizeof pattern, "%s:{*}:status", g_prefix);
  printf("%-16s %-13s %-28s %10s %8s %8s\n", "LIVE_ID", "STATE", "WORKER", "EVENTS", "LAST", "VIEWERS");
  char cursor[32] = "0";
  size_t plen = strlen(g_prefix);
  do {
    redisReply *r = cmd(c, "SCAN %s MATCH %s COUNT 500", cursor, pattern);
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    redisReply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      const char *k = keys->element[i]->str;
      char id[64] = "";
      const char *open = k + plen + 2, *close = strchr(open, '}');
      if (close && (size_t)(close - open) < sizeof id) memcpy(id, open, (size_t)(close - open)), id[close - open] = 0;
      redisReply *h = cmd(c, "HGETALL %s", k);
      char last[16];
      age(last, sizeof last, hget(h, "last_event_ms"));
      const char *ev = hget(h, "events"), *vw = hget(h, "viewers");
      printf("%-16s %-13s %-28s %10s %8s %8s\n", id, hget(h, "state"), hget(h, "worker"), *ev ? ev : "0", last,
             *vw ? vw : "-");
      freeReplyObject(h);
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0"));
  return 0;
}

static int do_workers(redisContext *c) {
  redisReply *z = cmd(c, "ZRANGE %s:workers 0 -1", g_prefix);
  printf("%-28s %-20s %8s %6s %9s %10s %-9s\n", "WORKER", "HOST", "PID", "ROOMS", "CAPACITY", "HEARTBEAT", "STATE");
  for (size_t i = 0; i < z->elements; i++) {
    const char *id = z->element[i]->str;
    redisReply *h = cmd(c, "HGETALL %s:worker:%s", g_prefix, id);
    if (h->elements == 0) { /* expired: a dead worker */
      freeReplyObject(cmd(c, "ZREM %s:workers %s", g_prefix, id));
    } else {
      char hb[16];
      age(hb, sizeof hb, hget(h, "heartbeat_ms"));
      printf("%-28s %-20s %8s %6s %9s %10s %-9s\n", id, hget(h, "host"), hget(h, "pid"), hget(h, "rooms"),
             hget(h, "capacity"), hb, hget(h, "state"));
    }
    freeReplyObject(h);
  }
  freeReplyObject(z);
  return 0;
}

static int type_wanted(const char *types, const char *t) {
  if (!types) return 1;
  size_t tl = strlen(t);
  for (const char *p = types; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    if (l == tl && !strncmp(p, t, l)) return 1;
    p = comma ? comma + 1 : NULL;
  }
  return 0;
}

static const char *color_of(const char *t) {
  if (!g_color) return "";
  if (!strcmp(t, "chat") || !strcmp(t, "emoji_chat")) return "\033[36m";
  if (!strcmp(t, "gift")) return "\033[33m";
  if (!strcmp(t, "like")) return "\033[35m";
  if (!strcmp(t, "control")) return "\033[31m";
  if (!strcmp(t, "raw")) return "\033[90m";
  return "\033[32m";
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Copies s with control characters (C0, DEL, and the C1 range as UTF-8) shown as '?'. */
static void printable(char *out, size_t cap, const char *s) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && o + 1 < cap; p++) {
    if (*p < 0x20 || *p == 0x7f) {
      out[o++] = '?';
    } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
      out[o++] = '?';
      p++;
    } else {
      out[o++] = (char)*p;
    }
  }
  out[o] = 0;
}

static void print_event(const char *json) {
  cJSON *e = cJSON_Parse(json);
  if (!e) {
    printf("%s\n", json);
    return;
  }
  const char *t = jstr(e, "type");
  time_t secs = (time_t)(jnum(e, "ts_ms") / 1000);
  struct tm tm;
  char ts[16];
  localtime_r(&secs, &tm);
  strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "user");
  const char *nick = u ? jstr(u, "nickname") : "";
  char what[1024] = "";
  if (!strcmp(t, "chat") || !strcmp(t, "emoji_chat")) snprintf(what, sizeof what, "%s", jstr(e, "content"));
  else if (!strcmp(t, "gift")) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(e, "gift");
    snprintf(what, sizeof what, "sent %s x%.0f (+%.0f, %.0f diamonds each)%s", jstr(g, "name"),
             jnum(g, "repeat_count"), jnum(g, "delta"), jnum(g, "diamonds"), jnum(g, "repeat_end") ? " [end]" : "");
  } else if (!strcmp(t, "like")) snprintf(what, sizeof what, "liked x%.0f (room total %.0f)", jnum(e, "count"), jnum(e, "total"));
  else if (!strcmp(t, "member")) snprintf(what, sizeof what, "entered (%.0f viewers)", jnum(e, "member_count"));
  else if (!strcmp(t, "follow")) snprintf(what, sizeof what, "followed");
  else if (!strcmp(t, "share")) snprintf(what, sizeof what, "shared");
  else if (!strcmp(t, "viewers")) snprintf(what, sizeof what, "%.0f online, %.0f total", jnum(e, "online"), jnum(e, "total_viewers"));
  else if (!strcmp(t, "control")) snprintf(what, sizeof what, "control status %.0f%s", jnum(e, "status"), jnum(e, "status") == 3 ? " (live ended)" : "");
  else if (!strcmp(t, "raw")) snprintf(what, sizeof what, "%s", jstr(e, "method"));
  else if (!strcmp(t, "fansclub") || !strcmp(t, "room_stats")) snprintf(what, sizeof what, "%s%s", jstr(e, "content"), jstr(e, "display"));
  /* names and texts come from strangers: never let them drive the terminal */
  char safe_nick[256], safe_what[1024];
  printable(safe_nick, sizeof safe_nick, nick);
  printable(safe_what, sizeof safe_what, what);
  printf("%s %s%-10s%s %-20s %s\n", ts, color_of(t), t, g_color ? "\033[0m" : "", safe_nick, safe_what);
  cJSON_Delete(e);
}

static int do_tail(redisContext *c, int argc, char **argv) {
  const char *types = NULL;
  int from_start = 0;
  long count = -1;
  char id[64] = "";
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--from-start")) from_start = 1;
    else if (!strcmp(argv[i], "--type") && i + 1 < argc) types = argv[++i];
    else if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atol(argv[++i]);
    else if (!id[0]) normalize_or_die(argv[i], id, sizeof id);
    else return usage(stderr), 2;
  }
  if (!id[0]) return usage(stderr), 2;
  char key[128], last[64];
  snprintf(key, sizeof key, "%s:{%s}:events", g_prefix, id);
  snprintf(last, sizeof last, "%s", from_start ? "0" : "$");
  if (!from_start) { /* "$" would miss entries added between two XREADs: take the current last id */
    redisReply *r = cmd(c, "XREVRANGE %s + - COUNT 1", key);
    if (r->elements == 1) snprintf(last, sizeof last, "%s", r->element[0]->element[0]->str);
    else snprintf(last, sizeof last, "0");
    freeReplyObject(r);
  }
  long shown = 0;
  for (;;) {
    redisReply *r = cmd(c, "XREAD COUNT 500 BLOCK 1000 STREAMS %s %s", key, last);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
      redisReply *entries = r->element[0]->element[1];
      for (size_t i = 0; i < entries->elements; i++) {
        redisReply *e = entries->element[i];
        snprintf(last, sizeof last, "%s", e->element[0]->str);
        redisReply *f = e->element[1];
        const char *type = "", *json = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
          if (!strcmp(f->element[k]->str, "type")) type = f->element[k + 1]->str;
          if (!strcmp(f->element[k]->str, "json")) json = f->element[k + 1]->str;
        }
        if (!json || !type_wanted(types, type)) continue;
        print_event(json);
        if (count > 0 && ++shown >= count) {
          freeReplyObject(r);
          return 0;
        }
      }
      fflush(stdout);
    }
    freeReplyObject(r);
  }
}

/* The dashboard reaches Redis only through this, whatever the connection is. */
static redisReply *dash_cmd(void *conn, int argc, const char **argv, const size_t *argvlen) {
  return redisCommandArgv((redisContext *)conn, argc, argv, argvlen);
}

static int do_dashboard(redisContext *c, int argc, char **argv) {
  const char *listen = "127.0.0.1:8080";
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen = argv[++i];
    else if (!strncmp(argv[i], "--listen=", 9)) listen = argv[i] + 9;
    else return usage(stderr), 2;
  }
  struct timeval tv = {10, 0}; /* a Redis that stops answering ends the dashboard instead of hanging it */
  redisSetTimeout(c, tv);
  char why[256];
  int rc = dl_dashboard_run(dash_cmd, c, g_prefix, listen, why, sizeof why);
  if (rc != DL_DASH_STOPPED) fprintf(stderr, "dylivectl: dashboard: %s%s%s\n", why, c->err ? ": " : "", c->err ? c->errstr : "");
  return rc;
}

int main(int argc, char **argv) {
  const char *url = getenv("DYLIVE_REDIS_URL");
  if (!url) url = "redis://127.0.0.1:6379/0";
  if (getenv("DYLIVE_PREFIX")) g_prefix = getenv("DYLIVE_PREFIX");
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--redis") && i + 1 < argc) url = argv[++i];
    else if (!strncmp(argv[i], "--redis=", 8)) url = argv[i] + 8;
    else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) g_prefix = argv[++i];
    else if (!strncmp(argv[i], "--prefix=", 9)) g_prefix = argv[i] + 9;
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout), 0;
    else break;
  }
  if (i >= argc) return usage(stderr), 2;
  const char *verb = argv[i++];
  g_color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
  signal(SIGPIPE, SIG_DFL);
  if (strcmp(verb, "assign") && strcmp(verb, "unassign") && strcmp(verb, "rooms") && strcmp(verb, "workers") &&
      strcmp(verb, "tail") && strcmp(verb, "dashboard")) {
    fprintf(stderr, "dylivectl: unknown command '%s'\n", verb);
    usage(stderr);
    return 2;
  }
  redisContext *c = connect_redis(url);
  int rc;
  if (!strcmp(verb, "assign")) rc = do_assign(c, argc - i, argv + i);
  else if (!strcmp(verb, "unassign")) rc = do_unassign(c, argc - i, argv + i);
  else if (!strcmp(verb, "rooms")) rc = do_rooms(c);
  else if (!strcmp(verb, "workers")) rc = do_workers(c);
  else if (!strcmp(verb, "dashboard")) rc = do_dashboard(c, argc - i, argv + i);
  else rc = do_tail(c, argc - i, argv + i);
  redisFree(c);
  return rc;
}
