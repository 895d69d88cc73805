/* dylive-sim-bench: a minimal WebSocket client that measures how fast dylive-sim pushes.
 * usage: dylive-sim-bench --port P --live-id L --room-id R [--frames N] [--seconds S]
 * Connects, upgrades, reads N data frames (or for S seconds), answers pings, then reads
 * /_sim/stats to turn frames into messages. Prints one line of key=value results. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* GET /_sim/stats?live_id=L and pull two counters out of the JSON */
static int get_stats(unsigned port, const char *live, uint64_t *frames, uint64_t *msgs) {
  int fd = dial(port);
  if (fd < 0) return -1;
  char req[256];
  snprintf(req, sizeof req, "GET /_sim/stats?live_id=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", live);
  if (write_all(fd, req, strlen(req)) < 0) {
    close(fd);
    return -1;
  }
  static char buf[1 << 16];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = 0;
  const char *f = strstr(buf, "\"frames_sent\":");
  const char *m = strstr(buf, "\"messages_sent\":");
  if (!f || !m) return -1;
  *frames = strtoull(f + 14, NULL, 10);
  *msgs = strtoull(m + 16, NULL, 10);
  return 0;
}

int main(int argc, char **argv) {
  unsigned port = 0;
  const char *live = NULL, *room = NULL;
  uint64_t want = 0;
  double seconds = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = (unsigned)atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--live-id")) live = argv[i + 1];
    else if (!strcmp(argv[i], "--room-id")) room = argv[i + 1];
    else if (!strcmp(argv[i], "--frames")) want = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!port || !live || !room || (!want && seconds <= 0)) {
    fprintf(stderr, "usage: dylive-sim-bench --port P --live-id L --room-id R [--frames N] [--seconds S]\n");
    return 2;
  }
  uint64_t f0, m0, f1, m1;
  if (get_stats(port, live, &f0, &m0) < 0) {
    fprintf(stderr, "bench: cannot read /_sim/stats\n");
    return 1;
  }
  int fd = dial(port);
  if (fd < 0) {
    perror("connect");
    return 1;
  }
  int rcv = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  char req[1024];
  snprintf(req, sizeof req,
           "GET /webcast/im/push/v2/?app_name=douyin_web&compress=gzip&room_id=%s&signature=bench+sig/00 HTTP/1.1\r\n"
           "Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           "User-Agent: dylive-sim-bench\r\n\r\n",
           room);
  if (write_all(fd, req, strlen(req)) < 0) return 1;
  size_t cap = 8 << 20;
  uint8_t *buf = malloc(cap);
  if (!buf) return 1;
  size_t len = 0, off = 0;
  /* response head */
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - len);
    if (n <= 0) {
      fprintf(stderr, "bench: handshake failed\n");
      return 1;
    }
    len += (size_t)n;
    uint8_t *e = memmem(buf, len, "\r\n\r\n", 4);
    if (e) {
      if (strncmp((char *)buf, "HTTP/1.1 101", 12)) {
        fprintf(stderr, "bench: no 101: %.*s\n", (int)(e - buf), buf);
        return 1;
      }
      off = (size_t)(e - buf) + 4;
      break;
    }
  }
  double t0 = now_s(), tend = seconds > 0 ? t0 + seconds : 0;
  uint64_t frames = 0, bytes = 0, skip = 0;
  bool done = false;
  while (!done) {
    /* consume */
    for (;;) {
      if (skip) {
        uint64_t take = len - off < skip ? len - off : skip;
        off += take;
        skip -= take;
        if (skip) break;
      }
      size_t avail = len - off;
      if (avail < 2) break;
      uint8_t *p = buf + off;
      int op = p[0] & 15;
      uint64_t pl = p[1] & 127;
      size_t hl = 2;
      if (pl == 126) {
        if (avail < 4) break;
        pl = ((uint64_t)p[2] << 8) | p[3];
        hl = 4;
      } else if (pl == 127) {
        if (avail < 10) break;
        pl = 0;
        for (int i = 0; i < 8; i++) pl = (pl << 8) | p[2 + i];
        hl = 10;
      }
      if (op >= 8) {
        if (avail < hl + pl) break;
        if (op == 9) { /* pong, masked with a zero key */
          uint8_t pong[2 + 4 + 125];
          pong[0] = 0x8a;
          pong[1] = (uint8_t)(0x80 | pl);
          memset(pong + 2, 0, 4);
          memcpy(pong + 6, p + hl, pl);
          write_all(fd, pong, 6 + pl);
        } else if (op == 8) {
          fprintf(stderr, "bench: server closed\n");
          done = true;
        }
        off += hl + pl;
        continue;
      }
      off += hl;
      skip = pl;
      bytes += pl;
      frames++;
      if (want && frames >= want) {
        done = true;
        break;
      }
    }
    if (done) break;
    if (off == len) {
      off = len = 0;
    } else if (off > cap / 2) {
      memmove(buf, buf + off, len - off);
      len -= off;
      off = 0;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n <= 0) {
      fprintf(stderr, "bench: connection ended after %" PRIu64 " frames\n", frames);
      break;
    }
    len += (size_t)n;
    if (tend && (frames & 63) == 0 && now_s() >= tend) break;
  }
  double dt = now_s() - t0;
  if (get_stats(port, live, &f1, &m1) < 0) return 1;
  double per = f1 > f0 ? (double)(m1 - m0) / (double)(f1 - f0) : 0;
  double msgs = per * (double)frames;
  printf("frames=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f frames_per_s=%.0f messages=%.0f messages_per_s=%.0f MBps=%.1f\n",
         frames, bytes, dt, frames / dt, msgs, msgs / dt, bytes / dt / 1e6);
  close(fd);
  free(buf);
  return 0;
}
