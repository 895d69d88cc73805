/* dylivectl — the operator's CLI. Every command is a few plain Redis commands (README lists them),
 * so operators can do the same with redis-cli. It only reads, except assign/unassign; what it
 * prints from Redis (names, titles, texts of strangers) never drives the terminal. */
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dl_dashboard.h"
#include "dl_keys.h"
#include "dl_page.h"
#include "dl_rsync.h"

static const char *g_prefix = "dylive";
static int g_color;
static dl_rsync *g_c;

static void usage(FILE *f) {
  fprintf(f,
          "usage: dylivectl [--redis URL] [--prefix P] COMMAND [args]\n\n"
          "  assign LIVE_ID|URL...     capture these rooms (LPUSH P:assign)\n"
          "  unassign LIVE_ID...       stop capturing within 5 s (LREM P:assign + HSET P:{id}:status desired stopped)\n"
          "  rooms                     table of rooms: state, worker, events, last event age, viewers\n"
          "  workers                   table of workers (read-only: dead ones are shown, live workers requeue them)\n"
          "  tail LIVE_ID [--from-start] [--type chat,gift] [--count N]\n"
          "                            follow a room's events like tail -f\n"
          "  dashboard [--listen HOST:PORT]\n"
          "                            a live web page of the pool (default 127.0.0.1:8080)\n\n"
          "--redis and --prefix default to DYLIVE_REDIS_URL / DYLIVE_PREFIX, then redis://127.0.0.1:6379/0 and "
          "dylive.\nTLS: --redis-ca-file, --redis-cert, --redis-key, --redis-sni (or DYLIVE_REDIS_CA_FILE, …); "
          "the password may come from DYLIVE_REDIS_PASSWORD or DYLIVE_REDIS_PASSWORD_FILE,\nthe sentinels' from "
          "DYLIVE_SENTINEL_PASSWORD.\n");
}

/* A reply, or exit 1 when the connection is gone (error replies are returned). */
static redisReply *cmdv(int argc, const char *const *argv) {
  redisReply *r = dl_rsync_cmd(g_c, argc, argv, NULL);
  if (!r) {
    fprintf(stderr, "dylivectl: %s\n", dl_rsync_error(g_c));
    exit(1);
  }
  return r;
}

#define CMD(...) cmdv((int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), (const char *[]){__VA_ARGS__})

/* A reply that must not be an error (the command is ours and well-formed). */
static redisReply *must(redisReply *r) {
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

static void room_key(char *out, size_t cap, const char *id, dl_room_key which) {
  if (dl_keys_room(out, cap, g_prefix, id, which) < 0) {
    fprintf(stderr, "dylivectl: --prefix too long\n");
    exit(2);
  }
}

/* Copies s with control characters (C0, DEL, the C1 range, and the Unicode line separators and
 * bidi controls that reorder or break a terminal's lines) shown as '?'. */
static void printable(char *out, size_t cap, const char *s, size_t len) {
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end && o + 1 < cap) {
    if (*p < 0x20 || *p == 0x7f) {
      out[o++] = '?';
      p++;
    } else if (*p == 0xc2 && p + 1 < end && p[1] >= 0x80 && p[1] <= 0x9f) {
      out[o++] = '?';
      p += 2;
    } else if (*p == 0xe2 && p + 2 < end &&
               ((p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9 || (p[2] >= 0xaa && p[2] <= 0xae))) ||
                (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9))) {
      out[o++] = '?'; /* U+2028/2029, U+202A–202E, U+2066–2069 */
      p += 3;
    } else {
      out[o++] = (char)*p++;
    }
  }
  out[o] = 0;
}

static int do_assign(int argc, char **argv) {
  if (argc < 1) return usage(stderr), 2;
  char key[DL_KEY_MAX], assign[DL_KEY_MAX];
  dl_keys_assign(assign, sizeof assign, g_prefix);
  for (int i = 0; i < argc; i++) {
    char id[64];
    normalize_or_die(argv[i], id, sizeof id);
    room_key(key, sizeof key, id, DL_RK_STATUS);
    redisReply *r = CMD("HDEL", key, "desired");
    if (r->type == REDIS_REPLY_ERROR) fprintf(stderr, "dylivectl: %s: cannot clear 'desired': %s\n", id, r->str);
    freeReplyObject(r);
    freeReplyObject(must(CMD("LPUSH", assign, id)));
    printf("assigned %s\n", id);
  }
  return 0;
}

static int do_unassign(int argc, char **argv) {
  if (argc < 1) return usage(stderr), 2;
  char key[DL_KEY_MAX], assign[DL_KEY_MAX];
  dl_keys_assign(assign, sizeof assign, g_prefix);
  int rc = 0;
  for (int i = 0; i < argc; i++) {
    char id[64];
    normalize_or_die(argv[i], id, sizeof id);
    freeReplyObject(must(CMD("LREM", assign, "0", id)));
    room_key(key, sizeof key, id, DL_RK_STATUS);
    redisReply *r = CMD("HSET", key, "desired", "stopped");
    if (r->type == REDIS_REPLY_ERROR) {
      fprintf(stderr, "dylivectl: %s: %s is not a hash (%s); the owning worker cannot be told\n", id, key, r->str);
      rc = 1;
    } else {
      printf("unassigned %s\n", id);
    }
    freeReplyObject(r);
  }
  return rc;
}

/* A field of an HGETALL reply, made printable into out ("" when absent). */
static const char *hget(const redisReply *h, const char *field, char *out, size_t cap) {
  out[0] = 0;
  if (!h || h->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i + 1 < h->elements; i += 2) {
    const redisReply *k = h->element[i], *v = h->element[i + 1];
    if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING && !strcmp(k->str, field)) {
      printable(out, cap, v->str, v->len);
      break;
    }
  }
  return out;
}

static void age(char *out, size_t cap, const char *ms) {
  if (!*ms) {
    snprintf(out, cap, "-");
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long s = ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - atoll(ms)) / 1000;
  if (s < 0) s = 0;
  if (s < 120) snprintf(out, cap, "%llds", s);
  else if (s < 7200) snprintf(out, cap, "%lldm", s / 60);
  else snprintf(out, cap, "%lldh", s / 3600);
}

static int do_rooms(void) {
  char pattern[DL_KEY_MAX];
  dl_keys_status_pattern(pattern, sizeof pattern, g_prefix);
  printf("%-16s %-13s %-28s %10s %8s %8s\n", "LIVE_ID", "STATE", "WORKER", "EVENTS", "LAST", "VIEWERS");
  /* on a Cluster every primary holds some rooms: scan each */
  for (int node = 0; node < dl_rsync_nodes(g_c); node++) {
    if (!dl_rsync_is_primary(g_c, node)) continue;
    char cursor[32] = "0";
    do {
      /* TYPE hash: a key of another type under the pattern is not a room status (skipped, not fatal) */
      const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500", "TYPE", "hash"};
      redisReply *r = dl_rsync_cmd_on(g_c, node, 8, scan, NULL);
      if (!r) {
        fprintf(stderr, "dylivectl: %s\n", dl_rsync_error(g_c));
        return 1;
      }
      must(r);
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "dylivectl: unexpected SCAN reply\n");
        freeReplyObject(r);
        return 1;
      }
      snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
      const redisReply *keys = r->element[1];
      for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        char id[64], safe_id[64];
        if (k->type != REDIS_REPLY_STRING || dl_keys_live_id_of(k->str, k->len, g_prefix, id, sizeof id) < 0) continue;
        printable(safe_id, sizeof safe_id, id, strlen(id));
        redisReply *h = CMD("HGETALL", k->str);
        if (h->type == REDIS_REPLY_ERROR) { /* changed type since the SCAN: say so and go on */
          printf("%-16s (unreadable: %.60s)\n", safe_id, h->str);
          freeReplyObject(h);
          continue;
        }
        char st[32], w[120], ev[32], vw[32], lm[32], last[16];
        age(last, sizeof last, hget(h, "last_event_ms", lm, sizeof lm));
        hget(h, "events", ev, sizeof ev);
        hget(h, "viewers", vw, sizeof vw);
        printf("%-16s %-13s %-28s %10s %8s %8s\n", safe_id, hget(h, "state", st, sizeof st), hget(h, "worker", w, sizeof w),
               *ev ? ev : "0", last, *vw ? vw : "-");
        freeReplyObject(h);
      }
      freeReplyObject(r);
    } while (strcmp(cursor, "0"));
  }
  return 0;
}

/* Read-only: a worker whose registry key expired is shown as dead. Live workers move its claims
 * back to the queue (requeue.lua); doing half of that here (forgetting it) would strand its rooms. */
static int do_workers(void) {
  char workers[DL_KEY_MAX];
  dl_keys_workers(workers, sizeof workers, g_prefix);
  redisReply *z = CMD("ZRANGE", workers, "0", "-1");
  if (z->type != REDIS_REPLY_ARRAY) {
    fprintf(stderr, "dylivectl: %s is not a sorted set: %s\n", workers, z->type == REDIS_REPLY_ERROR ? z->str : "?");
    freeReplyObject(z);
    return 1;
  }
  printf("%-28s %-20s %8s %6s %9s %10s %-9s\n", "WORKER", "HOST", "PID", "ROOMS", "CAPACITY", "HEARTBEAT", "STATE");
  for (size_t i = 0; i < z->elements; i++) {
    const redisReply *e = z->element[i];
    char id[DL_WORKER_ID_MAX + 1], safe[DL_WORKER_ID_MAX + 1], key[DL_KEY_MAX];
    if (e->type != REDIS_REPLY_STRING || e->len > DL_WORKER_ID_MAX) continue;
    memcpy(id, e->str, e->len);
    id[e->len] = 0;
    printable(safe, sizeof safe, e->str, e->len);
    if (dl_keys_worker(key, sizeof key, g_prefix, id) < 0) continue;
    redisReply *h = CMD("HGETALL", key);
    if (h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
      printf("%-28s %-20s %8s %6s %9s %10s %-9s\n", safe, "-", "-", "-", "-", "-",
             h->type == REDIS_REPLY_ERROR ? "unreadable" : "dead");
    } else {
      char host[80], pid[24], rooms[24], cap[24], hbs[32], hb[16], st[24];
      age(hb, sizeof hb, hget(h, "heartbeat_ms", hbs, sizeof hbs));
      printf("%-28s %-20s %8s %6s %9s %10s %-9s\n", safe, hget(h, "host", host, sizeof host), hget(h, "pid", pid, sizeof pid),
             hget(h, "rooms", rooms, sizeof rooms), hget(h, "capacity", cap, sizeof cap), hb, hget(h, "state", st, sizeof st));
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
  if (!strcmp(t, "chat") || !strcmp(t, "emoji_chat") || !strcmp(t, "screen_chat")) return "\033[36m";
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

static void print_event(const char *json, size_t len) {
  cJSON *e = cJSON_ParseWithLength(json, len);
  char safe_nick[256], safe_what[1024];
  if (!e) {
    printable(safe_what, sizeof safe_what, json, len);
    printf("%s\n", safe_what);
    return;
  }
  const char *t = jstr(e, "type");
  time_t secs = (time_t)(jnum(e, "ts_ms") / 1000);
  struct tm tm;
  char ts[16];
  localtime_r(&secs, &tm);
  strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "user");
  const char *nick = u ? jstr(u, "nickname") : jstr(e, "nickname");
  char what[1024] = "";
  if (!strcmp(t, "chat") || !strcmp(t, "emoji_chat") || !strcmp(t, "screen_chat"))
    snprintf(what, sizeof what, "%s", jstr(e, "content"));
  else if (!strcmp(t, "gift")) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(e, "gift");
    snprintf(what, sizeof what, "sent %s x%.0f (+%.0f, %.0f diamonds each)%s", jstr(g, "name"), jnum(g, "repeat_count"),
             jnum(g, "delta"), jnum(g, "diamonds"), jnum(g, "repeat_end") ? " [end]" : "");
  } else if (!strcmp(t, "like")) snprintf(what, sizeof what, "liked x%.0f (room total %.0f)", jnum(e, "count"), jnum(e, "total"));
  else if (!strcmp(t, "member")) snprintf(what, sizeof what, "entered (%.0f viewers)", jnum(e, "member_count"));
  else if (!strcmp(t, "follow")) snprintf(what, sizeof what, "followed");
  else if (!strcmp(t, "share")) snprintf(what, sizeof what, "shared");
  else if (!strcmp(t, "viewers")) snprintf(what, sizeof what, "%.0f online, %.0f total", jnum(e, "online"), jnum(e, "total_viewers"));
  else if (!strcmp(t, "control")) snprintf(what, sizeof what, "control status %.0f%s", jnum(e, "status"), jnum(e, "status") == 3 ? " (live ended)" : "");
  else if (!strcmp(t, "purchase")) snprintf(what, sizeof what, "%s", jstr(e, "text"));
  else if (!strcmp(t, "product")) snprintf(what, sizeof what, "products changed (%.0f)", jnum(e, "total"));
  else if (!strcmp(t, "raw")) snprintf(what, sizeof what, "%s", jstr(e, "method"));
  else if (!strcmp(t, "fansclub") || !strcmp(t, "room_stats")) snprintf(what, sizeof what, "%s%s", jstr(e, "content"), jstr(e, "display"));
  /* names and texts come from strangers: never let them drive the terminal */
  printable(safe_nick, sizeof safe_nick, nick, strlen(nick));
  printable(safe_what, sizeof safe_what, what, strlen(what));
  char safe_t[32];
  printable(safe_t, sizeof safe_t, t, strlen(t));
  printf("%s %s%-10s%s %-20s %s\n", ts, color_of(t), safe_t, g_color ? "\033[0m" : "", safe_nick, safe_what);
  cJSON_Delete(e);
}

static int do_tail(int argc, char **argv) {
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
  char key[DL_KEY_MAX], last[64];
  room_key(key, sizeof key, id, DL_RK_EVENTS);
  snprintf(last, sizeof last, "%s", from_start ? "0" : "$");
  if (!from_start) { /* "$" would miss entries added between two XREADs: take the current last id */
    redisReply *r = must(CMD("XREVRANGE", key, "+", "-", "COUNT", "1"));
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2 && r->element[0]->element[0]->type == REDIS_REPLY_STRING)
      snprintf(last, sizeof last, "%s", r->element[0]->element[0]->str);
    else
      snprintf(last, sizeof last, "0");
    freeReplyObject(r);
  }
  long shown = 0;
  for (;;) {
    redisReply *r = must(CMD("XREAD", "COUNT", "500", "BLOCK", "1000", "STREAMS", key, last));
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2 && r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
      const redisReply *entries = r->element[0]->element[1];
      for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
          continue;
        snprintf(last, sizeof last, "%s", e->element[0]->str);
        const redisReply *f = e->element[1];
        const char *type = "";
        const redisReply *json = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
          if (f->element[k]->type != REDIS_REPLY_STRING || f->element[k + 1]->type != REDIS_REPLY_STRING) continue;
          if (!strcmp(f->element[k]->str, "type")) type = f->element[k + 1]->str;
          if (!strcmp(f->element[k]->str, "json")) json = f->element[k + 1];
        }
        if (!json || !type_wanted(types, type)) continue;
        print_event(json->str, json->len);
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
  return dl_rsync_cmd(conn, argc, argv, argvlen);
}

static int do_dashboard(int argc, char **argv) {
  const char *listen = "127.0.0.1:8080";
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen = argv[++i];
    else if (!strncmp(argv[i], "--listen=", 9)) listen = argv[i] + 9;
    else return usage(stderr), 2;
  }
  char why[256];
  int rc = dl_dashboard_run(dash_cmd, g_c, g_prefix, listen, why, sizeof why);
  if (rc != DL_DASH_STOPPED) {
    const char *e = dl_rsync_error(g_c);
    fprintf(stderr, "dylivectl: dashboard: %s%s%s\n", why, *e ? ": " : "", e);
  }
  return rc;
}

/* --flag VALUE or --flag=VALUE at argv[*i]; advances *i past a separate value. */
static int opt(int argc, char **argv, int *i, const char *flag, const char **out) {
  size_t l = strlen(flag);
  if (!strncmp(argv[*i], flag, l) && argv[*i][l] == '=') {
    *out = argv[*i] + l + 1;
    return 1;
  }
  if (!strcmp(argv[*i], flag) && *i + 1 < argc) {
    *out = argv[++*i];
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *url = getenv("DYLIVE_REDIS_URL");
  if (!url) url = "redis://127.0.0.1:6379/0";
  if (getenv("DYLIVE_PREFIX")) g_prefix = getenv("DYLIVE_PREFIX");
  dl_rsync_opts o = {getenv("DYLIVE_REDIS_CA_FILE"), getenv("DYLIVE_REDIS_CERT"), getenv("DYLIVE_REDIS_KEY"),
                     getenv("DYLIVE_REDIS_SNI"), 10000};
  int i = 1;
  for (; i < argc; i++) {
    if (opt(argc, argv, &i, "--redis", &url) || opt(argc, argv, &i, "--prefix", &g_prefix) ||
        opt(argc, argv, &i, "--redis-ca-file", &o.ca_file) || opt(argc, argv, &i, "--redis-cert", &o.cert) ||
        opt(argc, argv, &i, "--redis-key", &o.key) || opt(argc, argv, &i, "--redis-sni", &o.sni))
      continue;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout), 0;
    break;
  }
  if (i >= argc) return usage(stderr), 2;
  if (!*g_prefix || strlen(g_prefix) > DL_PREFIX_MAX) {
    fprintf(stderr, "dylivectl: --prefix must be 1 to %d characters\n", DL_PREFIX_MAX);
    return 2;
  }
  const char *verb = argv[i++];
  g_color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
  signal(SIGPIPE, SIG_DFL);
  static const char *const verbs[] = {"assign", "unassign", "rooms", "workers", "tail", "dashboard"};
  size_t v = 0;
  while (v < sizeof verbs / sizeof *verbs && strcmp(verb, verbs[v])) v++;
  if (v == sizeof verbs / sizeof *verbs) {
    fprintf(stderr, "dylivectl: unknown command '%s'\n", verb);
    usage(stderr);
    return 2;
  }
  char why[300];
  g_c = dl_rsync_connect(url, &o, why, sizeof why);
  if (!g_c) {
    fprintf(stderr, "dylivectl: cannot connect to Redis: %s (is redis-server running? set --redis or DYLIVE_REDIS_URL)\n",
            why);
    return 1;
  }
  int rc;
  switch (v) {
  case 0: rc = do_assign(argc - i, argv + i); break;
  case 1: rc = do_unassign(argc - i, argv + i); break;
  case 2: rc = do_rooms(); break;
  case 3: rc = do_workers(); break;
  case 4: rc = do_tail(argc - i, argv + i); break;
  default: rc = do_dashboard(argc - i, argv + i); break;
  }
  dl_rsync_free(g_c);
  return rc;
}
