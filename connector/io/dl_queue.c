#include "dl_queue.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct dl_queue {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  void **ring;
  size_t cap, reserve, head, len;
  int closed;
};

dl_queue *dl_queue_new(size_t capacity, size_t reserve) {
  if (capacity == 0) return NULL;
  dl_queue *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->ring = calloc(capacity + reserve, sizeof *q->ring);
  if (!q->ring) {
    free(q);
    return NULL;
  }
  q->cap = capacity;
  q->reserve = reserve;
  pthread_mutex_init(&q->mu, NULL);
  /* timed waits measure on the monotonic clock: a step of the wall clock (NTP, an operator)
   * neither stalls nor cuts short pacing, staggering and retries */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cv, &ca);
  pthread_condattr_destroy(&ca);
  return q;
}

void dl_queue_free(dl_queue *q, void (*drop)(void *)) {
  if (!q) return;
  void *item;
  while (dl_queue_pop(q, &item, 1) == 1)
    if (drop) drop(item);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q->ring);
  free(q);
}

static dl_err push(dl_queue *q, void *item, int *was_empty, size_t limit) {
  pthread_mutex_lock(&q->mu);
  if (q->len >= limit) {
    pthread_mutex_unlock(&q->mu);
    return DL_EFULL;
  }
  if (was_empty) *was_empty = q->len == 0;
  q->ring[(q->head + q->len) % (q->cap + q->reserve)] = item;
  q->len++;
  pthread_cond_signal(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return DL_EOK;
}

dl_err dl_queue_push(dl_queue *q, void *item, int *was_empty) { return push(q, item, was_empty, q->cap); }

dl_err dl_queue_push_reserved(dl_queue *q, void *item, int *was_empty) {
  return push(q, item, was_empty, q->cap + q->reserve);
}

static size_t take(dl_queue *q, void **out, size_t max) {
  size_t n = q->len < max ? q->len : max;
  for (size_t i = 0; i < n; i++) {
    out[i] = q->ring[q->head];
    q->head = (q->head + 1) % (q->cap + q->reserve);
  }
  q->len -= n;
  return n;
}

size_t dl_queue_pop(dl_queue *q, void **out, size_t max) {
  pthread_mutex_lock(&q->mu);
  size_t n = take(q, out, max);
  pthread_mutex_unlock(&q->mu);
  return n;
}

size_t dl_queue_pop_wait(dl_queue *q, void **out, size_t max) {
  pthread_mutex_lock(&q->mu);
  while (!q->len && !q->closed) pthread_cond_wait(&q->cv, &q->mu);
  size_t n = q->closed ? 0 : take(q, out, max); /* closed: what is left goes to dl_queue_free */
  pthread_mutex_unlock(&q->mu);
  return n;
}

void dl_queue_close(dl_queue *q) {
  pthread_mutex_lock(&q->mu);
  q->closed = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

int dl_queue_wait_closed(dl_queue *q, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* the condition variable's clock (dl_queue_new) */
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
  pthread_mutex_lock(&q->mu);
  int rc = 0;
  while (!q->closed && rc == 0) rc = pthread_cond_timedwait(&q->cv, &q->mu, &ts);
  int closed = q->closed;
  pthread_mutex_unlock(&q->mu);
  return closed;
}

size_t dl_queue_len(dl_queue *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->len;
  pthread_mutex_unlock(&q->mu);
  return n;
}

size_t dl_queue_cap(dl_queue *q) { return q->cap; }
