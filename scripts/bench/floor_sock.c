/* floor_sock — the machine's floor under the many-rooms shape, without dylive: what the least a
 * connector can do per pushed frame costs here. A sender process (the simulator's part) holds N
 * loopback TCP connections and writes one FRAME-byte message to each at RATE per second, spread
 * evenly; the receiver (the worker's part) waits in epoll, reads each message with one recv and,
 * with --ack-bytes, answers it with one send (Douyin's ack), nothing else: no WebSocket parsing,
 * no decoding, no Redis. Prints one JSON line: the receiver's CPU µs and system calls per frame.
 * --handoff 1 adds what dylive's two threads do around that: each frame is queued for a second
 * thread (an eventfd on the queue's empty → non-empty edge), which lingers --flush-ms on a timerfd,
 * then takes what is queued and writes one 64-byte "call" to a socket of the sender process, which
 * answers it ("+OK"), and reads the answer: the cost of the hand-off and of the writes, still with
 * no WebSocket, decoding, JSON or Redis.
 *
 *   floor_sock [--rooms 1000] [--rate 4] [--seconds 10] [--frame-bytes 160] [--ack-bytes 40]
 *              [--handoff 0|1] [--flush-ms 1]
 *
 * Built by CMake (scripts/bench/CMakeLists.txt), run by scripts/bench/cost.py --phases floors;
 * C11 + POSIX, Linux (epoll, eventfd, timerfd). It raises its own open-file limit (2 per room). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor_util.h"

/* The sender: every millisecond, one frame to each room that is due; acks read and dropped. With
 * store, fds[n] is the hand-off thread's "store" socket: each read there is answered with "+OK". */
static void sender(int *fds, int n, int store, int rate, double until, int frame_bytes) {
  char frame[65536], sink[65536];
  memset(frame, 'f', sizeof frame);
  int ep = epoll_create1(0);
  for (int i = 0; i < n + store; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
  }
  double t0 = floor_mono(), period = 1.0 / rate;
  double *due = malloc(sizeof *due * (size_t)n);
  for (int i = 0; i < n; i++) due[i] = t0 + period * i / n;
  struct epoll_event ev[256];
  while (floor_mono() < until) {
    double now = floor_mono();
    for (int i = 0; i < n; i++)
      if (due[i] <= now) {
        if (send(fds[i], frame, (size_t)frame_bytes, MSG_NOSIGNAL) < 0 && errno != EAGAIN) _exit(0);
        due[i] += period;
      }
    int k = epoll_wait(ep, ev, 256, 1);
    for (int j = 0; j < k; j++) {
      uint32_t i = ev[j].data.u32;
      ssize_t r = recv(fds[i], sink, sizeof sink, MSG_DONTWAIT);
      if (r == 0) _exit(0);
      if (r > 0 && (int)i == n) (void)!send(fds[i], "+OK\r\n", 5, MSG_NOSIGNAL);
    }
  }
  _exit(0);
}

/* The hand-off: frames queued by the receiving thread, taken by the writing thread. */
static struct {
  pthread_mutex_t mu;
  uint64_t queued, taken;
  int efd, tfd, store, flush_ms;
  atomic_int stop, measuring;
  atomic_uint_fast64_t calls; /* both threads' hand-off system calls while measuring */
} ho = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void count(unsigned n) {
  if (atomic_load_explicit(&ho.measuring, memory_order_relaxed)) atomic_fetch_add(&ho.calls, n);
}

static void handoff_push(void) {
  pthread_mutex_lock(&ho.mu);
  int was_empty = ho.queued == ho.taken;
  ho.queued++;
  pthread_mutex_unlock(&ho.mu);
  if (was_empty) {
    uint64_t one = 1;
    (void)!write(ho.efd, &one, sizeof one);
    count(1);
  }
}

static void *handoff_writer(void *arg) {
  (void)arg;
  int ep = epoll_create1(0);
  int fds[3] = {ho.efd, ho.tfd, ho.store};
  for (int i = 0; i < 3; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
  }
  char call[64], reply[4096];
  memset(call, 'c', sizeof call);
  uint64_t v;
  while (!atomic_load(&ho.stop)) {
    struct epoll_event ev[3];
    int k = epoll_wait(ep, ev, 3, 100);
    count(1);
    for (int j = 0; j < k; j++) {
      uint32_t i = ev[j].data.u32;
      if (i == 0) { /* frames: the linger starts */
        count(2);
        (void)!read(ho.efd, &v, sizeof v);
        struct itimerspec its = {{0, 0}, {ho.flush_ms / 1000, (long)(ho.flush_ms % 1000) * 1000000L}};
        timerfd_settime(ho.tfd, 0, &its, NULL);
      } else if (i == 1) { /* the linger is over: one call for what is queued */
        count(2);
        (void)!read(ho.tfd, &v, sizeof v);
        pthread_mutex_lock(&ho.mu);
        uint64_t n = ho.queued - ho.taken;
        ho.taken = ho.queued;
        pthread_mutex_unlock(&ho.mu);
        if (n) {
          (void)!send(ho.store, call, sizeof call, MSG_NOSIGNAL);
          count(1);
        }
      } else { /* the answer */
        count(1);
        if (recv(ho.store, reply, sizeof reply, MSG_DONTWAIT) == 0) atomic_store(&ho.stop, 1); /* the sender is gone */
      }
    }
  }
  close(ep);
  return NULL;
}

int main(int argc, char **argv) {
  int n = floor_opt(argc, argv, "--rooms", 1000), rate = floor_opt(argc, argv, "--rate", 4);
  int secs = floor_opt(argc, argv, "--seconds", 10), frame_bytes = floor_opt(argc, argv, "--frame-bytes", 160);
  int ack_bytes = floor_opt(argc, argv, "--ack-bytes", 40);
  int handoff = floor_opt(argc, argv, "--handoff", 0) != 0, flush_ms = floor_opt(argc, argv, "--flush-ms", 1);
  if (n < 1 || rate < 1 || secs < 1 || frame_bytes < 1 || frame_bytes > 65536 || ack_bytes < 0 || ack_bytes > 4096 ||
      flush_ms < 1 || flush_ms > 10000) {
    fprintf(stderr, "floor_sock: bad arguments\n");
    return 2;
  }
  if (floor_nofile("floor_sock", n, (rlim_t)n * 2 + 64) != 0) return 2;
  struct sockaddr_in a;
  int ls = floor_listen(&a);
  int *cl = malloc(sizeof *cl * (size_t)(n + 1)), *sv = malloc(sizeof *sv * (size_t)(n + 1));
  for (int i = 0; i < n + handoff; i++) {
    int one = 1;
    if ((cl[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(cl[i], (struct sockaddr *)&a, sizeof a))
      floor_die("connect");
    if ((sv[i] = accept(ls, NULL, NULL)) < 0) floor_die("accept");
    setsockopt(cl[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  double warm = 2.0, start = floor_mono(), until = start + warm + secs + 0.5;
  pid_t child = fork();
  if (child < 0) floor_die("fork");
  if (child == 0) {
    for (int i = 0; i < n + handoff; i++) close(cl[i]);
    sender(sv, n, handoff, rate, until, frame_bytes);
  }
  for (int i = 0; i < n + handoff; i++) close(sv[i]);
  pthread_t writer;
  if (handoff) {
    ho.efd = eventfd(0, EFD_NONBLOCK);
    ho.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    ho.store = cl[n];
    ho.flush_ms = flush_ms;
    if (ho.efd < 0 || ho.tfd < 0 || pthread_create(&writer, NULL, handoff_writer, NULL)) floor_die("hand-off thread");
  }
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cl[i], &e)) floor_die("epoll_ctl");
  }
  static char buf[16384], ack[4096];
  memset(ack, 'a', sizeof ack);
  struct epoll_event ev[64];
  uint64_t bytes = 0, calls = 0, b0 = 0, c0 = 0;
  double c_cpu0 = 0, t_0 = 0;
  int measuring = 0;
  for (;;) {
    double now = floor_mono();
    if (!measuring && now >= start + warm) {
      measuring = 1;
      atomic_store(&ho.measuring, 1);
      b0 = bytes, c0 = calls, c_cpu0 = floor_cpu_self(), t_0 = now;
    }
    if (measuring && now >= t_0 + secs) break;
    int k = epoll_wait(ep, ev, 64, 100);
    calls++;
    for (int j = 0; j < k; j++) {
      int fd = cl[ev[j].data.u32];
      ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      calls++;
      if (r == 0) {
        fprintf(stderr, "floor_sock: the sender closed a socket before the end: no figure\n");
        return 1;
      }
      if (r < 0) continue;
      bytes += (uint64_t)r;
      if (ack_bytes) {
        if (send(fd, ack, (size_t)ack_bytes, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) floor_die("send");
        calls++;
      }
      if (handoff) handoff_push(); /* its eventfd write is counted with the writer's calls */
    }
  }
  double cpu = floor_cpu_self() - c_cpu0, wall = floor_mono() - t_0;
  double frames = (double)(bytes - b0) / frame_bytes;
  atomic_store(&ho.measuring, 0);
  uint64_t hcalls = atomic_load(&ho.calls);
  if (handoff) {
    atomic_store(&ho.stop, 1);
    pthread_join(writer, NULL);
  }
  kill(child, SIGTERM);
  waitpid(child, NULL, 0);
  printf("{\"rooms\": %d, \"rate\": %d, \"frame_bytes\": %d, \"ack_bytes\": %d, \"handoff\": %d, \"window_s\": %.2f, "
         "\"frames_per_s\": %.0f, \"cpu_pct\": %.2f, \"cpu_us_per_frame\": %.2f, \"syscalls_per_frame\": %.2f",
         n, rate, frame_bytes, ack_bytes, handoff, wall, frames / wall, cpu / wall * 100, frames ? cpu / frames * 1e6 : 0,
         frames ? (double)(calls - c0) / frames : 0);
  if (handoff) /* the hand-off's own: the eventfd writes and the writing thread's calls */
    printf(", \"flush_ms\": %d, \"handoff_syscalls_per_frame\": %.2f", flush_ms, frames ? (double)hcalls / frames : 0);
  printf("}\n");
  return 0;
}
