/* dl_err — the one error space of dylive (libuv style: an X-macro gives the enum and the strings). */
#ifndef DL_ERR_H
#define DL_ERR_H

#define DL_ERR_MAP(X)                                                        \
  X(OK, "success")                                                          \
  X(NOMEM, "out of memory")                                                 \
  X(LIMIT, "input exceeds a configured limit")                              \
  X(PROTO, "malformed protobuf")                                            \
  X(GZIP, "malformed gzip stream")                                          \
  X(BOMB, "inflated size or ratio over the cap")                            \
  X(EMPTY, "empty input")                                                   \
  X(INVAL, "invalid argument")                                              \
  X(NOTFOUND, "not found")                                                  \
  X(CHALLENGE, "anti-bot challenge page (no room state)")                   \
  X(NOTLIVE, "room is not live")                                            \
  X(HTTP, "HTTP request failed")                                            \
  X(TLS, "TLS verification failed")                                         \
  X(WS, "WebSocket failure")                                                \
  X(REDIS, "Redis failure")                                                 \
  X(IO, "I/O error")                                                        \
  X(FULL, "queue full")                                                     \
  X(CLOSED, "closed")

typedef enum {
#define DL_ERR_ENUM(name, str) DL_E##name,
  DL_ERR_MAP(DL_ERR_ENUM)
#undef DL_ERR_ENUM
  DL_E__COUNT
} dl_err;

/* Static, never NULL. */
const char *dl_err_str(dl_err e);
/* Short lower-case name ("bomb", "proto"), for metric labels and JSON. */
const char *dl_err_name(dl_err e);

#endif
