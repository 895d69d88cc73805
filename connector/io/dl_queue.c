#include "dl_queue.h"

#include <pthread.h>
#include <stdlib.h>

struct dl_queue {
  pthread_mutex_t mu;
  void **ring;
  size_t cap, head, len;
};

dl_queue *dl_queue_new(size_t capacity) {
  if (capacity == 0) return NULL;
  dl_queue *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->ring = calloc(capacity, sizeof *q->ring);
  if (!q->ring) {
    free(q);
    return NULL;
  }
  q->cap = capacity;
  pthread_mutex_init(&q->mu, NULL);
  return q;
}

void dl_queue_free(dl_queue *q, void (*drop)(void *)) {
  if (!q) return;
  void *item;
  while (dl_queue_pop(q, &item, 1) == 1)
    if (drop) drop(item);
  pthread_mutex_destroy(&q->mu);
  free(q->ring);
  free(q);
}

dl_err dl_queue_push(dl_queue *q, void *item, int *was_empty) {
  pthread_mutex_lock(&q->mu);
  if (q->len == q->cap) {
    pthread_mutex_unlock(&q->mu);
    return DL_EFULL;
  }
  if (was_empty) *was_empty = q->len == 0;
  q->ring[(q->head + q->len) % q->cap] = item;
  q->len++;
  pthread_mutex_unlock(&q->mu);
  return DL_EOK;
}

size_t dl_queue_pop(dl_queue *q, void **out, size_t max) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->len < max ? q->len : max;
  for (size_t i = 0; i < n; i++) {
    out[i] = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
  }
  q->len -= n;
  pthread_mutex_unlock(&q->mu);
  return n;
}

size_t dl_queue_len(dl_queue *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->len;
  pthread_mutex_unlock(&q->mu);
  return n;
}

size_t dl_queue_cap(dl_queue *q) { return q->cap; }
