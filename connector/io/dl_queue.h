/* dl_queue — a bounded FIFO of pointers between two threads (mutex; the caller wakes the peer).
 * The bound is mandatory: a push past capacity fails with DL_EFULL instead of growing. */
#ifndef DL_QUEUE_H
#define DL_QUEUE_H

#include <stddef.h>

#include "dl_err.h"

typedef struct dl_queue dl_queue;

dl_queue *dl_queue_new(size_t capacity);
/* Frees the queue; items still inside are passed to drop (may be NULL). */
void dl_queue_free(dl_queue *q, void (*drop)(void *));
/* Appends; *was_empty tells the producer whether the consumer needs a wake-up. */
dl_err dl_queue_push(dl_queue *q, void *item, int *was_empty);
/* Moves up to max items into out, oldest first; returns how many. */
size_t dl_queue_pop(dl_queue *q, void **out, size_t max);
size_t dl_queue_len(dl_queue *q);
size_t dl_queue_cap(dl_queue *q);

#endif
