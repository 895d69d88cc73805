/* floor_sock — the machine's floor under the many-rooms shape, without dylive: what the least a
 * connector can do per pushed frame costs here. A sender process (the simulator's part) holds N
 * loopback TCP connections and writes one FRAME-byte message to each at RATE per second, spread
 * evenly; the receiver (the worker's part) waits in epoll, reads each message with one recv and,
 * with --ack-bytes, answers it with one send (Douyin's ack), nothing else: no WebSocket parsing,
 * no decoding, no Redis. Prints one JSON line: the receiver's CPU µs and system calls per frame.
 *
 *   floor_sock [--rooms 1000] [--rate 4] [--seconds 10] [--frame-bytes 160] [--ack-bytes 40]
 *
 * Built and run by scripts/bench/floors.py (cc -O2); plain C11 + POSIX, Linux (epoll). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_self(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int opt(int argc, char **argv, const char *name, int def) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return atoi(argv[i + 1]);
  return def;
}

/* The sender: every millisecond, one frame to each room that is due; acks read and dropped. */
static void sender(int *fds, int n, int rate, double until, int frame_bytes) {
  char frame[65536], sink[65536];
  memset(frame, 'f', sizeof frame);
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
  }
  double t0 = mono(), period = 1.0 / rate;
  double *due = malloc(sizeof *due * (size_t)n);
  for (int i = 0; i < n; i++) due[i] = t0 + period * i / n;
  struct epoll_event ev[256];
  while (mono() < until) {
    double now = mono();
    for (int i = 0; i < n; i++)
      if (due[i] <= now) {
        if (send(fds[i], frame, (size_t)frame_bytes, MSG_NOSIGNAL) < 0 && errno != EAGAIN) _exit(0);
        due[i] += period;
      }
    int k = epoll_wait(ep, ev, 256, 1);
    for (int j = 0; j < k; j++)
      if (recv(fds[ev[j].data.u32], sink, sizeof sink, MSG_DONTWAIT) == 0) _exit(0);
  }
  _exit(0);
}

int main(int argc, char **argv) {
  int n = opt(argc, argv, "--rooms", 1000), rate = opt(argc, argv, "--rate", 4);
  int secs = opt(argc, argv, "--seconds", 10), frame_bytes = opt(argc, argv, "--frame-bytes", 160);
  int ack_bytes = opt(argc, argv, "--ack-bytes", 40);
  if (n < 1 || rate < 1 || secs < 1 || frame_bytes < 1 || frame_bytes > 65536 || ack_bytes < 0 || ack_bytes > 4096) {
    fprintf(stderr, "floor_sock: bad arguments\n");
    return 2;
  }
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096) ||
      getsockname(ls, (struct sockaddr *)&a, &al))
    die("listen");
  int *cl = malloc(sizeof *cl * (size_t)n), *sv = malloc(sizeof *sv * (size_t)n);
  for (int i = 0; i < n; i++) {
    int one = 1;
    if ((cl[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(cl[i], (struct sockaddr *)&a, sizeof a))
      die("connect");
    if ((sv[i] = accept(ls, NULL, NULL)) < 0) die("accept");
    setsockopt(cl[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  double warm = 2.0, start = mono(), until = start + warm + secs + 0.5;
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (int i = 0; i < n; i++) close(cl[i]);
    sender(sv, n, rate, until, frame_bytes);
  }
  for (int i = 0; i < n; i++) close(sv[i]);
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cl[i], &e)) die("epoll_ctl");
  }
  static char buf[16384], ack[4096];
  memset(ack, 'a', sizeof ack);
  struct epoll_event ev[64];
  uint64_t bytes = 0, calls = 0, b0 = 0, c0 = 0;
  double c_cpu0 = 0, t_0 = 0;
  int measuring = 0;
  for (;;) {
    double now = mono();
    if (!measuring && now >= start + warm) {
      measuring = 1;
      b0 = bytes, c0 = calls, c_cpu0 = cpu_self(), t_0 = now;
    }
    if (measuring && now >= t_0 + secs) break;
    int k = epoll_wait(ep, ev, 64, 100);
    calls++;
    for (int j = 0; j < k; j++) {
      int fd = cl[ev[j].data.u32];
      ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      calls++;
      if (r <= 0) continue;
      bytes += (uint64_t)r;
      if (ack_bytes) {
        if (send(fd, ack, (size_t)ack_bytes, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) die("send");
        calls++;
      }
    }
  }
  double cpu = cpu_self() - c_cpu0, wall = mono() - t_0;
  double frames = (double)(bytes - b0) / frame_bytes;
  kill(child, SIGTERM);
  waitpid(child, NULL, 0);
  printf("{\"rooms\": %d, \"rate\": %d, \"frame_bytes\": %d, \"ack_bytes\": %d, \"window_s\": %.2f, "
         "\"frames_per_s\": %.0f, \"cpu_pct\": %.2f, \"cpu_us_per_frame\": %.2f, \"syscalls_per_frame\": %.2f}\n",
         n, rate, frame_bytes, ack_bytes, wall, frames / wall, cpu / wall * 100, frames ? cpu / frames * 1e6 : 0,
         frames ? (double)(calls - c0) / frames : 0);
  return 0;
}
