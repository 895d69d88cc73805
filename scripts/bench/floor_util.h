/* floor_util.h — what the floor benches (floor_sock.c, floor_lws.c) share: clocks, this process's
 * CPU time, integer options, a loopback listener, the open-file limit. Header-only: each bench is one file. */
#ifndef DL_FLOOR_UTIL_H
#define DL_FLOOR_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

static inline double floor_mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* This process's CPU seconds, user + system, every thread (not the sender's: a child). */
static inline double floor_cpu_self(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static inline void floor_die(const char *what) {
  perror(what);
  exit(1);
}

/* "--name N" from argv, else def. */
static inline int floor_opt(int argc, char **argv, const char *name, int def) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return atoi(argv[i + 1]);
  return def;
}

/* A listening TCP socket on a free loopback port (its address in *a); exits on failure. */
static inline int floor_listen(struct sockaddr_in *a) {
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof *a;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0 || bind(ls, (struct sockaddr *)a, sizeof *a) || listen(ls, 4096) || getsockname(ls, (struct sockaddr *)a, &al))
    floor_die("listen");
  return ls;
}

/* Raises the open-file limit to need; 0, or -1 (said on stderr) when the hard limit is lower. */
static inline int floor_nofile(const char *prog, int rooms, rlim_t need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need) {
      fprintf(stderr, "%s: %d rooms need %llu open files; the limit is %llu\n", prog, rooms, (unsigned long long)need,
              (unsigned long long)rl.rlim_cur);
      return -1;
    }
  }
  return 0;
}

#endif
