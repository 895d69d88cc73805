#include "dl_config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dl_log.h"
#include "dl_proxyurl.h"

#ifndef DYLIVE_VERSION
#define DYLIVE_VERSION "0.1.0"
#endif

/* The real push host (PROTOCOL §2.1: the hosts the browser used in 2026). */
#define DL_DEFAULT_WS "wss://webcast100-ws-web-lq.douyin.com"
#define DL_DEFAULT_UA                                                                       \
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "      \
  "Chrome/140.0.0.0 Safari/537.36"

typedef enum { OPT_STR, OPT_INT, OPT_FLAG } opt_kind;
typedef int (*opt_check)(const char *val, char *why, size_t cap);

typedef struct opt {
  const char *flag;
  const char *env;
  opt_kind kind;
  const char *def;
  long long min, max;
  opt_check check;
  size_t off;
  const char *help;
} opt;

static int check_redis(const char *v, char *why, size_t cap) {
  dl_redis_addr a;
  return dl_redis_parse_url(v, &a, why, cap);
}

static int check_prefix(const char *v, char *why, size_t cap) {
  if (!*v || strlen(v) > 64) return snprintf(why, cap, "must be 1 to 64 characters"), -1;
  for (const char *p = v; *p; p++)
    if (*p == '{' || *p == '}' || *p <= ' ')
      return snprintf(why, cap, "must not contain braces, spaces or control characters"), -1;
  return 0;
}

static int check_worker(const char *v, char *why, size_t cap) {
  if (strlen(v) > 100) return snprintf(why, cap, "must be at most 100 characters"), -1;
  for (const char *p = v; *p; p++)
    if (*p == '{' || *p == '}' || *p <= ' ')
      return snprintf(why, cap, "must not contain braces, spaces or control characters"), -1;
  return 0;
}

static int check_http_url(const char *v, char *why, size_t cap) {
  if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
    return snprintf(why, cap, "must start with http:// or https://"), -1;
  return 0;
}

/* The push host that answers 200 instead of 101 (BU #1567, 2025-12) and was reported dead
 * (B #369, 2026-03): PROTOCOL §9.4. Refused rather than retried forever. */
#define DL_DEAD_PUSH_HOST "webcast5-ws-web-lf."

static int check_ws_url(const char *v, char *why, size_t cap) {
  if (strncmp(v, "ws://", 5) && strncmp(v, "wss://", 6))
    return snprintf(why, cap, "must start with ws:// or wss://"), -1;
  if (strstr(v, DL_DEAD_PUSH_HOST))
    return snprintf(why, cap, "webcast5-ws-web-lf refuses WebSocket upgrades since 2025-12; use "
                              "wss://webcast100-ws-web-lq.douyin.com (or -hl, -lf)"), -1;
  return 0;
}

static int check_readable(const char *v, char *why, size_t cap) {
  if (!*v) return 0;
  if (access(v, R_OK) != 0) return snprintf(why, cap, "cannot read %s: %s", v, strerror(errno)), -1;
  return 0;
}

static int check_dir(const char *v, char *why, size_t cap) {
  if (!*v) return 0;
  if (access(v, W_OK | X_OK) != 0) return snprintf(why, cap, "not a writable directory: %s", strerror(errno)), -1;
  return 0;
}

static int check_proxy(const char *v, char *why, size_t cap) {
  if (!*v || !strcmp(v, "none") || !strncmp(v, "socks5://", 9) || !strncmp(v, "socks5h://", 10) ||
      !strncmp(v, "socks4://", 9))
    return 0;
  if (strncasecmp(v, "http://", 7))
    return snprintf(why, cap, "must be http://host:port, socks5://host:port, socks5h://host:port or none"), -1;
  /* the parser the WebSocket and the pages take it apart with: what passes here, both accept */
  dl_proxy_url u;
  int rc = dl_proxy_url_parse(v, &u, why, cap) == DL_EOK ? 0 : -1;
  memset(&u, 0, sizeof u);
  return rc;
}

static int check_signer(const char *v, char *why, size_t cap) {
  if (!strcmp(v, "builtin") || !strcmp(v, "none") || !strncmp(v, "http://", 7) ||
      !strncmp(v, "https://", 8))
    return 0;
  return snprintf(why, cap, "must be builtin, none or an http(s):// URL"), -1;
}

static int check_admin(const char *v, char *why, size_t cap) {
  if (!strcmp(v, "off")) return 0;
  char host[256];
  int port;
  if (dl_parse_hostport(v, host, sizeof host, &port) != 0)
    return snprintf(why, cap, "must be HOST:PORT (port 0-65535) or off"), -1;
  return 0;
}

static int check_event_loop(const char *v, char *why, size_t cap) {
  if (strcmp(v, "auto") && strcmp(v, "libev") && strcmp(v, "poll"))
    return snprintf(why, cap, "must be auto, libev or poll"), -1;
  return 0;
}

static int check_level(const char *v, char *why, size_t cap) {
  dl_log_level l;
  if (dl_log_parse_level(v, &l) != 0) return snprintf(why, cap, "must be debug, info, warn or error"), -1;
  return 0;
}

static int check_format(const char *v, char *why, size_t cap) {
  if (strcmp(v, "json") && strcmp(v, "text")) return snprintf(why, cap, "must be json or text"), -1;
  return 0;
}

#define OFF(f) offsetof(dl_config, f)
static const opt opts[] = {
    {"--redis", "DYLIVE_REDIS_URL", OPT_STR, "redis://127.0.0.1:6379/0", 0, 0, check_redis, OFF(redis_url),
     "redis://[user[:password]@]host[:port][/db] or unix:///path.sock"},
    {"--prefix", "DYLIVE_PREFIX", OPT_STR, "dylive", 0, 0, check_prefix, OFF(prefix), "prefix of every key"},
    {"--worker-id", "DYLIVE_WORKER_ID", OPT_STR, "", 0, 0, check_worker, OFF(worker_id),
     "name in status hashes and the registry (default <hostname>-<pid>)"},
    {"--max-rooms", "DYLIVE_MAX_ROOMS", OPT_INT, "200", 1, 100000, NULL, OFF(max_rooms),
     "rooms held at once; claims stop at this number"},
    {"--douyin-http", "DYLIVE_DOUYIN_HTTP", OPT_STR, "https://live.douyin.com", 0, 0, check_http_url,
     OFF(douyin_http), "base of the web pages and web APIs"},
    {"--douyin-ws", "DYLIVE_DOUYIN_WS", OPT_STR, DL_DEFAULT_WS, 0, 0, check_ws_url, OFF(douyin_ws),
     "base of the push WebSocket (/webcast/im/push/v2/ and the query are appended)"},
    {"--ca-file", "DYLIVE_CA_FILE", OPT_STR, "", 0, 0, check_readable, OFF(ca_file),
     "extra CA bundle for TLS to the Douyin endpoints"},
    {"--signer", "DYLIVE_SIGNER", OPT_STR, "builtin", 0, 0, check_signer, OFF(signer),
     "builtin, none, or http://... (external signer)"},
    {"--cookie-file", "DYLIVE_COOKIE_FILE", OPT_STR, "", 0, 0, check_readable, OFF(cookie_file),
     "cookies sent to Douyin (never logged)"},
    {"--cookie-dir", "DYLIVE_COOKIE_DIR", OPT_STR, "", 0, 0, check_readable, OFF(cookie_dir),
     "per-room cookie profiles: an assignment {\"live_id\":…,\"cookie\":\"NAME\"} uses <dir>/NAME.cookies"},
    {"--proxy", "DYLIVE_PROXY", OPT_STR, "", 0, 0, check_proxy, OFF(proxy),
     "http://[user:pass@]host:port (HTTP CONNECT; pages and WebSocket) or socks5h://… (pages only); none: direct. "
     "Default: https_proxy/http_proxy/all_proxy and no_proxy"},
    {"--connect-rate", "DYLIVE_CONNECT_RATE", OPT_INT, "5", 1, 10000, NULL, OFF(connect_rate),
     "new WebSocket connections per second (token bucket; bursts of connects get IPs limited)"},
    {"--connect-burst", "DYLIVE_CONNECT_BURST", OPT_INT, "20", 1, 100000, NULL, OFF(connect_burst),
     "connections allowed at once before --connect-rate applies"},
    {"--http-rate", "DYLIVE_HTTP_RATE", OPT_INT, "5", 1, 10000, NULL, OFF(http_rate),
     "HTTP requests to Douyin per second (token bucket)"},
    {"--http-burst", "DYLIVE_HTTP_BURST", OPT_INT, "10", 1, 100000, NULL, OFF(http_burst),
     "HTTP requests allowed at once before --http-rate applies"},
    {"--stream-maxlen", "DYLIVE_STREAM_MAXLEN", OPT_INT, "100000", 1, 1000000000LL, NULL, OFF(stream_maxlen),
     "approximate MAXLEN of each room stream"},
    {"--admin", "DYLIVE_ADMIN", OPT_STR, "127.0.0.1:9464", 0, 0, check_admin, OFF(admin),
     "HOST:PORT of /metrics, /healthz, /readyz; off disables"},
    {"--log-level", "DYLIVE_LOG_LEVEL", OPT_STR, "info", 0, 0, check_level, OFF(log_level),
     "debug, info, warn, error"},
    {"--log-format", "DYLIVE_LOG_FORMAT", OPT_STR, "json", 0, 0, check_format, OFF(log_format), "json or text"},
    {"--user-agent", "DYLIVE_USER_AGENT", OPT_STR, DL_DEFAULT_UA, 0, 0, NULL, OFF(user_agent),
     "browser User-Agent sent to Douyin"},
    {"--seen-max", "DYLIVE_SEEN_MAX", OPT_INT, "1000", 16, 1000000, NULL, OFF(seen_max),
     "recent msg_ids kept per room for dedupe, in memory and read back from the stream when a room is taken (Douyin re-pushes ~15 on each connect)"},
    {"--queue-max", "DYLIVE_QUEUE_MAX", OPT_INT, "4096", 16, 1000000, NULL, OFF(queue_max),
     "frames waiting between the WebSocket thread and Redis before socket reads pause"},
    {"--queue-max-bytes", "DYLIVE_QUEUE_MAX_BYTES", OPT_INT, "8388608", 1048576, 17179869184LL, NULL,
     OFF(queue_max_bytes), "bytes of decoded frames waiting between the WebSocket thread and Redis before socket reads pause"},
    {"--batch-max", "DYLIVE_BATCH_MAX", OPT_INT, "512", 1, 100000, NULL, OFF(batch_max),
     "events per Redis write (one script call)"},
    {"--heartbeat-ms", "DYLIVE_HEARTBEAT_MS", OPT_INT, "10000", 1000, 60000, NULL, OFF(heartbeat_ms),
     "client heartbeat interval (the browser sends one every 10 s)"},
    {"--max-frame-bytes", "DYLIVE_MAX_FRAME_BYTES", OPT_INT, "4194304", 1024, 268435456LL, NULL,
     OFF(max_frame_bytes), "largest WebSocket message accepted"},
    {"--max-inflated-bytes", "DYLIVE_MAX_INFLATED_BYTES", OPT_INT, "16777216", 4096, 1073741824LL, NULL,
     OFF(max_inflated_bytes), "largest gunzipped Response accepted (gzip bombs stop here)"},
    {"--max-inflate-ratio", "DYLIVE_MAX_INFLATE_RATIO", OPT_INT, "1000", 10, 100000, NULL, OFF(max_inflate_ratio),
     "largest inflated/compressed ratio of a frame (real frames are ~3-10; zeros compress ~1000x)"},
    {"--max-messages", "DYLIVE_MAX_MESSAGES", OPT_INT, "10000", 1, 1000000, NULL, OFF(max_messages),
     "messages accepted in one frame (real frames carry 1-50)"},
    {"--poll-ms", "DYLIVE_POLL_MS", OPT_INT, "1000", 50, 60000, NULL, OFF(poll_ms),
     "period of the control-plane checks (unassign requests, status refresh)"},
    {"--buffer-max-bytes", "DYLIVE_BUFFER_MAX_BYTES", OPT_INT, "8388608", 1048576, 17179869184LL, NULL,
     OFF(buffer_max_bytes), "writes held in memory while Redis is unreachable or slow"},
    {"--spool-dir", "DYLIVE_SPOOL_DIR", OPT_STR, "", 0, 0, check_dir, OFF(spool_dir),
     "where writes past --buffer-max-bytes are spooled, in a private subdirectory dylive-<uid> (default: "
     "$STATE_DIRECTORY, else /var/tmp); a worker started on the same directory replays what a stopped one left"},
    {"--spool-max-bytes", "DYLIVE_SPOOL_MAX_BYTES", OPT_INT, "1073741824", 0, 1099511627776LL, NULL,
     OFF(spool_max_bytes), "spool size cap; past it socket reads pause; 0 disables the spool"},
    {"--watch-ended", "DYLIVE_WATCH_ENDED", OPT_INT, "0", 0, 86400, NULL, OFF(watch_ended),
     "keep an ended room and check its live page every N seconds; capture again when live (0: off)"},
    {"--redis-ca-file", "DYLIVE_REDIS_CA_FILE", OPT_STR, "", 0, 0, check_readable, OFF(redis_ca_file),
     "CA bundle for rediss:// (TLS to Redis); verification is always on"},
    {"--redis-cert", "DYLIVE_REDIS_CERT", OPT_STR, "", 0, 0, check_readable, OFF(redis_cert),
     "client certificate for Redis TLS (mutual TLS; with --redis-key)"},
    {"--redis-key", "DYLIVE_REDIS_KEY", OPT_STR, "", 0, 0, check_readable, OFF(redis_key),
     "private key of --redis-cert"},
    {"--redis-sni", "DYLIVE_REDIS_SNI", OPT_STR, "", 0, 0, NULL, OFF(redis_sni),
     "server name for Redis TLS (default: the URL's host)"},
    {"--redis-wait-replicas", "DYLIVE_REDIS_WAIT_REPLICAS", OPT_INT, "0", 0, 64, NULL, OFF(redis_wait_replicas),
     "a write counts as done once N replicas acknowledged it (WAIT); re-sent after a failover until then"},
    {"--stream-max-age", "DYLIVE_STREAM_MAX_AGE", OPT_INT, "0", 0, 315360000LL, NULL, OFF(stream_max_age),
     "entries older than S seconds are trimmed (XADD ... MINID ~), beside --stream-maxlen; 0: off"},
    {"--ended-ttl", "DYLIVE_ENDED_TTL", OPT_INT, "604800", 0, 315360000LL, NULL, OFF(ended_ttl),
     "an ended or stopped room keeps its stream and status this many seconds, then they expire; 0: forever"},
    {"--proxy-file", "DYLIVE_PROXY_FILE", OPT_STR, "", 0, 0, check_readable, OFF(proxy_file),
     "one http://[user:pass@]host:port proxy a line: rooms are spread over them, sticky per room"},
    {"--silence-timeout", "DYLIVE_SILENCE_TIMEOUT", OPT_INT, "90", 0, 86400, NULL, OFF(silence_timeout),
     "a live room that delivers no message for S seconds is reconnected with a fresh identity; 0: off"},
    {"--flush-ms", "DYLIVE_FLUSH_MS", OPT_INT, "1", 0, 10000, NULL, OFF(flush_ms),
     "N: a room's events are written at most N ms after the first of them arrived, every room's write of that "
     "moment in one Redis call (fewer, larger writes; up to N ms of latency); 0: as soon as the worker takes them "
     "(one write per room per pass)"},
    {"--flush-max-ms", "DYLIVE_FLUSH_MAX_MS", OPT_INT, "5", 0, 10000, NULL, OFF(flush_max_ms),
     "N: while no room's frames come less than 10 x N ms apart (rooms that trickle, as a real room's pushes "
     "do), the linger is N ms instead of --flush-ms: more rooms in each Redis call, at most N ms of latency for "
     "a frame that waits a tenth of its room's frame interval or less; one fast room brings --flush-ms back for "
     "2 s; 0 or not above --flush-ms: always --flush-ms"},
    {"--pool-keep-ms", "DYLIVE_POOL_KEEP_MS", OPT_INT, "30000", 0, 86400000LL, NULL, OFF(pool_keep_ms),
     "every this many ms, the commands and frames the worker kept for reuse (up to 1.5 x --buffer-max-bytes and "
     "--queue-max-bytes) that none took since the last time are freed and the heap gives free pages back: after a "
     "burst, memory returns to what the rooms use; 0: kept for good"},
    {"--ws-event-loop", "DYLIVE_WS_EVENT_LOOP", OPT_STR, "auto", 0, 0, check_event_loop, OFF(ws_event_loop),
     "the WebSocket thread's event loop: libev (epoll; needs Debian's libwebsockets-evlib-ev), poll (lws's own: "
     "polls every socket on each wake-up), or auto: libev when its plugin loads, else poll with a warning"},
    {"--threads", "DYLIVE_THREADS", OPT_INT, "2", 1, 2, NULL, OFF(threads),
     "2: the WebSockets (reads, decoding, acks) on a thread of their own beside the one writing to Redis (a "
     "busy worker uses two cores); 1: one thread does both (one core: a worker per core, or a one-CPU "
     "container; the same CPU per event as measured; needs the libev loop)"},
    {"--check-config", NULL, OPT_FLAG, "0", 0, 1, NULL, OFF(check_only), "validate the options and exit"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void usage(void) {
  printf("usage: dylive-connector [options]\n\nEvery option is also an environment variable; flags win.\n\n");
  for (size_t i = 0; i < NOPTS; i++)
    printf("  %-22s %-26s %s (default: %s)\n", opts[i].flag, opts[i].env ? opts[i].env : "", opts[i].help,
           opts[i].def[0] ? opts[i].def : "none");
}

static int set_opt(dl_config *c, const opt *o, const char *val, const char *src) {
  char why[300] = "";
  char *base = (char *)c;
  if (o->kind == OPT_FLAG) {
    *(int *)(base + o->off) = strcmp(val, "0") != 0;
    return 0;
  }
  if (o->kind == OPT_INT) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || !*val || *end || v < o->min || v > o->max) {
      fprintf(stderr, "dylive-connector: %s (%s): invalid value '%s': must be an integer from %lld to %lld\n",
              o->flag, src, val, o->min, o->max);
      return 2;
    }
    *(long long *)(base + o->off) = v;
    return 0;
  }
  if (o->check && o->check(val, why, sizeof why) != 0) {
    fprintf(stderr, "dylive-connector: %s (%s): invalid value '%s': %s\n", o->flag, src,
            o->off == OFF(cookie_file) || o->off == OFF(redis_url) || o->off == OFF(proxy) ? "<hidden>" : val, why);
    return 2;
  }
  char **slot = (char **)(base + o->off);
  free(*slot);
  *slot = strdup(val);
  return *slot ? 0 : 2;
}

int dl_config_load(dl_config *c, int argc, char **argv) {
  memset(c, 0, sizeof *c);
  const char *given[NOPTS];
  memset(given, 0, sizeof given);
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      usage();
      return 1;
    }
    if (!strcmp(arg, "--version")) {
      printf("dylive-connector %s\n", DYLIVE_VERSION);
      return 1;
    }
    size_t which = NOPTS;
    const char *val = NULL;
    for (size_t i = 0; i < NOPTS && which == NOPTS; i++) {
      size_t fl = strlen(opts[i].flag);
      if (!strncmp(arg, opts[i].flag, fl) && (arg[fl] == 0 || arg[fl] == '=')) {
        which = i;
        if (arg[fl] == '=') val = arg + fl + 1;
      }
    }
    if (which == NOPTS) {
      fprintf(stderr, "dylive-connector: %s: unknown option (see --help)\n", arg);
      return 2;
    }
    if (opts[which].kind == OPT_FLAG) {
      val = "1";
    } else if (!val) {
      if (a + 1 >= argc) {
        fprintf(stderr, "dylive-connector: %s: missing value\n", opts[which].flag);
        return 2;
      }
      val = argv[++a];
    }
    given[which] = val;
  }
  /* flags win over the environment, which wins over the defaults */
  for (size_t i = 0; i < NOPTS; i++) {
    const char *env = opts[i].env ? getenv(opts[i].env) : NULL;
    int rc = given[i] ? set_opt(c, &opts[i], given[i], "flag")
             : env    ? set_opt(c, &opts[i], env, opts[i].env)
                      : set_opt(c, &opts[i], opts[i].def, "default");
    if (rc) return rc;
  }
  if (!c->worker_id[0]) {
    char host[200] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    for (char *p = host; *p; p++)
      if (*p == '{' || *p == '}' || *p <= ' ') *p = '_';
    char id[240];
    snprintf(id, sizeof id, "%s-%ld", host, (long)getpid());
    free(c->worker_id);
    c->worker_id = strdup(id);
  }
  return 0;
}

void dl_config_free(dl_config *c) {
  for (size_t i = 0; i < NOPTS; i++)
    if (opts[i].kind == OPT_STR) {
      char **slot = (char **)((char *)c + opts[i].off);
      free(*slot);
      *slot = NULL;
    }
}

int dl_parse_hostport(const char *s, char *host, size_t host_cap, int *port) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= host_cap) return -1;
  char *end;
  errno = 0;
  long p = strtol(colon + 1, &end, 10);
  if (errno || !colon[1] || *end || p < 0 || p > 65535) return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = 0;
  }
  *port = (int)p;
  return 0;
}
