/* dl_config — every option of the worker in one table (redis config.c style): flag, env var,
 * default, bounds and help text. The table also generates --help and backs --check-config. */
#ifndef DL_CONFIG_H
#define DL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dl_rurl.h"

typedef struct dl_config {
  char *redis_url;
  char *prefix;
  char *worker_id;
  long long max_rooms;
  char *douyin_http;
  char *douyin_ws;
  char *ca_file;
  char *signer;
  char *cookie_file;
  char *cookie_dir;
  char *proxy;
  long long connect_rate, connect_burst; /* new WebSocket connections per second */
  long long http_rate, http_burst;       /* HTTP requests to Douyin per second */             /* --proxy URL, "none", or "" (environment) */        /* per-room cookie profiles: <dir>/<profile>.cookies */
  long long stream_maxlen;
  char *admin;             /* "host:port" or "off" */
  char *log_level;
  char *log_format;
  char *user_agent;
  long long seen_max;      /* recent msg_ids kept per room for dedupe */
  long long queue_max;     /* events waiting between ingest and Redis before reads pause */
  long long queue_max_bytes; /* their bytes, at most */
  long long batch_max;     /* events per Redis write */
  long long heartbeat_ms;  /* client hb interval (PROTOCOL §3.5: 10 s) */
  long long max_frame_bytes;
  long long max_inflated_bytes;
  long long max_inflate_ratio;
  long long max_messages;
  long long poll_ms;       /* control-plane poll period (unassign, status) */
  long long buffer_max_bytes; /* writes held in memory while Redis is behind */
  char *spool_dir;         /* then spooled here */
  long long spool_max_bytes;  /* 0 disables the spool */
  long long watch_ended;   /* seconds between checks of an ended room; 0: release it */
  /* v1.1: production Redis (CONTRACT §2.1) */
  char *redis_ca_file;     /* CA bundle for rediss:// ("" = system store) */
  char *redis_cert, *redis_key; /* client certificate for mutual TLS */
  char *redis_sni;         /* server name for TLS ("" = the URL's host) */
  long long redis_wait_replicas; /* WAIT for N replicas before a write counts as done */
  long long stream_max_age;      /* seconds; XADD … MINID ~ (0: off) */
  long long ended_ttl;           /* seconds an ended/stopped room's keys are kept (0: forever) */
  /* v1.1: Douyin 2026 (CONTRACT §7) */
  char *proxy_file;        /* one http://[user:pass@]host:port a line: the worker's egress pool */
  long long silence_timeout;     /* seconds without a message before a fresh identity (0: off) */
  long long flush_ms;            /* linger: rooms' events written every flush_ms (0: every pass) */
  long long flush_max_ms;        /* the linger while every room trickles (frames >= 10 x this apart) */
  long long pool_keep_ms;        /* kept buffers unused this long are freed (0: kept for good) */
  char *ws_event_loop;           /* "auto", "libev" or "poll" (dl_ingest_opts.event_loop) */
  long long threads;             /* 2: WebSockets on a thread of their own; 1: one thread for all */
  int check_only;          /* --check-config: validate and exit */
} dl_config;

/* Parses argv and the environment (flags win). On a bad value prints one line naming the option
 * and the reason to stderr and returns 2; returns 1 after --help/--version (caller exits 0);
 * returns 0 on success. */
int dl_config_load(dl_config *c, int argc, char **argv);
void dl_config_free(dl_config *c);

/* Parsed "host:port". */
int dl_parse_hostport(const char *s, char *host, size_t host_cap, int *port);

#endif
