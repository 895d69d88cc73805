/* dl_rconn against a real redis-server, started here on a unix socket in a temporary directory:
 * a command bigger than the socket takes at once goes partly straight to the socket and the rest
 * through the bufferevent, commands sent behind it wait their turn, and replies that arrive split
 * across reads and across wake-ups reach their callbacks whole and in order. The server is stopped
 * (SIGSTOP) while the big one is sent, so the socket cannot take it whole: the partial write is
 * certain. Then the server reads the socket empty while the rest still waits in the bufferevent
 * (the loop has not run): a command sent now finds the socket free, and must still queue behind.
 * Usage: test_rconn /path/to/redis-server (exit 77: no redis-server, skipped). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dl_limits.h"
#include "dl_rconn.h"
#include "dl_test.h"

#define BIG (8u << 20) /* the value: many times a socket's send buffer, and 512 reads of a reply */
#define INCRS 3000     /* small commands queued behind it; their replies cut across reads */
#define TAIL "tail"

typedef struct run {
  struct event_base *base;
  dl_rconn *c;
  pid_t redis;
  char *big;
  int step; /* replies seen, in the order they must come */
  long long incr;
  int failed, finished;
  char why[300];
} run;

/* The first failure, as what went wrong and a detail. */
static void fail(run *r, const char *what, const char *detail) {
  if (!r->failed) snprintf(r->why, sizeof r->why, "%s%s", what, detail);
  r->failed = 1;
  event_base_loopbreak(r->base);
}

static int expect_step(run *r, const redisReply *rep, int step, int type) {
  char d[80];
  if (!rep) {
    snprintf(d, sizeof d, "%d", step);
    fail(r, "the connection went down before reply ", d);
    return 0;
  }
  if (r->step != step || rep->type != type) {
    snprintf(d, sizeof d, "%d (expected %d), type %d (expected %d)", r->step, step, rep->type, type);
    fail(r, "replies out of order or of the wrong type: reply ", d);
    return 0;
  }
  r->step++;
  return 1;
}

static void on_set(dl_rconn *c, const redisReply *rep, void *priv) {
  (void)c;
  run *r = priv;
  if (expect_step(r, rep, 0, REDIS_REPLY_STATUS) && strcmp(rep->str, "OK")) fail(r, "SET answered ", rep->str);
}

static void on_append(dl_rconn *c, const redisReply *rep, void *priv) {
  (void)c;
  run *r = priv;
  if (expect_step(r, rep, 1, REDIS_REPLY_INTEGER) && rep->integer != (long long)BIG + 4)
    fail(r, "APPEND: the value was not whole before it", "");
}

static void on_incr(dl_rconn *c, const redisReply *rep, void *priv) {
  (void)c;
  run *r = priv;
  if (expect_step(r, rep, 2 + (int)r->incr, REDIS_REPLY_INTEGER) && rep->integer != ++r->incr)
    fail(r, "INCR replies out of order", "");
}

static void on_get(dl_rconn *c, const redisReply *rep, void *priv) {
  (void)c;
  run *r = priv;
  if (!expect_step(r, rep, 2 + INCRS, REDIS_REPLY_STRING)) return;
  if (rep->len != BIG + 4 || memcmp(rep->str, r->big, BIG) || memcmp(rep->str + BIG, TAIL, 4))
    fail(r, "GET: the value came back changed", "");
  r->finished = 1;
  event_base_loopbreak(r->base);
}

/* A process is stopped once /proc says so (state T), awaited for 5 s at most. */
static int await_stopped(pid_t pid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  for (int i = 0; i < 500; i++) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    if (p && (p[2] == 'T' || p[2] == 't')) return 0;
    nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
  }
  return -1;
}

/* The kernel holds nothing more of ours on fd (the peer read it all), awaited for 5 s at most. */
static int await_drained(int fd) {
  for (int i = 0; fd >= 0 && i < 500; i++) {
    int queued = -1;
    if (ioctl(fd, SIOCOUTQ, &queued) != 0) return -1;
    if (queued == 0) return 0;
    nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
  }
  return -1;
}

/* Everything sent at once, in one loop pass: the big SET is partly written straight to the
 * socket, and every command after it must queue behind its rest, not jump ahead of it. */
static void on_ready(dl_rconn *c, void *ud) {
  run *r = ud;
  if (kill(r->redis, SIGSTOP) != 0 || await_stopped(r->redis) != 0) {
    fail(r, "cannot stop redis-server", "");
    return;
  }
  char hdr[64];
  int hl = snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%u\r\n", BIG);
  size_t n = (size_t)hl + BIG + 2;
  char *cmd = malloc(n);
  if (!cmd) {
    fail(r, "out of memory", "");
    return;
  }
  memcpy(cmd, hdr, (size_t)hl);
  memcpy(cmd + hl, r->big, BIG);
  memcpy(cmd + hl + BIG, "\r\n", 2);
  dl_err e = dl_rconn_send(c, cmd, n, 0, on_set, r);
  free(cmd); /* whatever the socket did not take was copied */
  kill(r->redis, SIGCONT);
  if (e == DL_EOK && await_drained(dl_rconn_fd(c)) != 0) {
    fail(r, "redis-server did not read the socket empty", "");
    return;
  }
  if (e == DL_EOK) e = dl_rconn_argv(c, 3, (const char *[]){"APPEND", "big", TAIL}, NULL, 0, on_append, r);
  for (int i = 0; e == DL_EOK && i < INCRS; i++) {
    static const char incr[] = "*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n";
    e = dl_rconn_send(c, incr, sizeof incr - 1, 0, on_incr, r);
  }
  if (e == DL_EOK) e = dl_rconn_argv(c, 2, (const char *[]){"GET", "big"}, NULL, 0, on_get, r);
  if (e != DL_EOK) fail(r, "send: ", dl_err_str(e));
}

static void on_down(dl_rconn *c, void *ud, const char *why) {
  (void)c;
  fail(ud, "connection down: ", why);
}

static pid_t start_redis(const char *server, const char *dir, const char *sock) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    execl(server, server, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir,
          (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* The server is up once its socket accepts a connection (awaited, 10 s at most). */
static int await_socket(const char *sock) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof sun.sun_path) return -1;
  memcpy(sun.sun_path, sock, strlen(sock) + 1);
  for (int i = 0; i < 1000; i++) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    if (fd >= 0) close(fd);
    if (ok) return 0;
    nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
  }
  return -1;
}

static int test_big_command_and_split_replies(const char *server) {
  char dir[] = "/tmp/dl-rconn-XXXXXX", sock[128];
  ASSERT_TRUE(mkdtemp(dir) != NULL);
  snprintf(sock, sizeof sock, "%s/redis.sock", dir);
  /* the command really is bigger than what a unix socket takes at once */
  int sp[2], sndbuf = 0;
  socklen_t sl = sizeof sndbuf;
  ASSERT_TRUE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
  getsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl);
  close(sp[0]);
  close(sp[1]);
  if (sndbuf <= 0 || (size_t)sndbuf * 4 >= BIG) {
    rmdir(dir);
    DL_TEST_FAIL_("a unix socket's send buffer of %d bytes: the test's %u-byte command could go whole", sndbuf, BIG);
  }
  pid_t pid = start_redis(server, dir, sock);
  ASSERT_TRUE(pid > 0);
  int up = await_socket(sock) == 0;

  run r = {.base = event_base_new(), .big = malloc(BIG), .redis = pid};
  for (size_t i = 0; r.big && i < BIG; i++) r.big[i] = (char)('a' + (i * 7 + i / 4093) % 26);
  dl_rconn_target t = {0};
  snprintf(t.unix_path, sizeof t.unix_path, "%s", sock);
  dl_rconn_opts o = {.connect_timeout_ms = 10000, .command_timeout_ms = 60000};
  dl_rconn_events ev = {.ready = on_ready, .down = on_down, .ud = &r};
  if (up && r.base && r.big) {
    r.c = dl_rconn_open(r.base, &t, &o, &ev);
    if (r.c) event_base_dispatch(r.base);
    dl_rconn_free(r.c);
  }
  if (r.base) event_base_free(r.base);
  free(r.big);
  kill(pid, SIGTERM);
  kill(pid, SIGCONT); /* a stopped server would keep SIGTERM pending */
  waitpid(pid, NULL, 0);
  unlink(sock);
  rmdir(dir);

  ASSERT_TRUE(up);
  ASSERT_TRUE(BIG / DL_RCONN_READ_BYTES > 4 * DL_RCONN_READS_PER_WAKE); /* the reply spans wake-ups */
  if (r.failed) DL_TEST_FAIL_("%s", r.why);
  ASSERT_TRUE(r.finished);
  ASSERT_EQ_I64(r.step, 3 + INCRS);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || access(argv[1], X_OK) != 0) {
    printf("skipped: no redis-server\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  int failures = test_big_command_and_split_replies(argv[1]);
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures != 0;
}
