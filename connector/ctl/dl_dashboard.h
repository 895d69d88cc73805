/* dl_dashboard — `dylivectl dashboard` (CONTRACT §6): a read-only web page for the whole pool,
 * read from Redis alone.
 *
 * One thread, one poll() loop, non-blocking sockets: a small HTTP/1.1 server (GET only, one
 * request per connection, every size and time bounded) that serves the embedded page
 * (connector/ctl/dashboard/, turned into C bytes by CMake at build time), JSON views of the rooms
 * and the workers, and each room's events as server-sent events. Redis is reached only through
 * the caller's `cmd` function, one blocking command at a time, so the module does not care how
 * the connection was made (plain, TLS, Sentinel, Cluster): SSE clients are served by polling
 * their streams with non-blocking `XREAD COUNT n` every DL_DASH_SSE_TICK_MS, never `BLOCK`.
 *
 * Endpoints:
 *   GET /, /app.js, /style.css          the page
 *   GET /api/rooms                      JSON array, one object per room (P:rooms + status hashes)
 *   GET /api/workers                    JSON array, one object per live worker
 *   GET /api/rooms/<live_id>/events     text/event-stream: `id: <stream id>` + `data: <event JSON
 *                                       exactly as stored>` per new event; `?from=<stream id>` (or
 *                                       `0` for the whole backlog) or the `Last-Event-ID` header
 *                                       resume after that id
 *
 * Nothing is ever written or deleted in Redis. */
#ifndef DL_DASHBOARD_H
#define DL_DASHBOARD_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* Sends one command and returns its reply (the caller of the reply frees it with
 * freeReplyObject). NULL means the connection is lost: the dashboard stops. */
typedef redisReply *(*dl_dash_cmd_fn)(void *conn, int argc, const char **argv, const size_t *argvlen);

/* Exit statuses of dl_dashboard_run. */
enum {
  DL_DASH_STOPPED = 0,  /* SIGINT or SIGTERM */
  DL_DASH_FAILED = 1,   /* the Redis connection was lost, or the socket could not be bound */
  DL_DASH_BAD_ARG = 2   /* --listen or the prefix is not valid */
};

/* Serves until SIGINT/SIGTERM (installed here) or a lost Redis connection. `listen` is
 * "HOST:PORT" (IPv6 as "[addr]:port"; port 0 picks a free one). Prints one line
 * "dashboard listening on http://HOST:PORT/" to stdout once the socket is bound. On failure
 * writes the reason to why. */
int dl_dashboard_run(dl_dash_cmd_fn cmd, void *conn, const char *prefix, const char *listen, char *why,
                     size_t why_cap);

#endif
