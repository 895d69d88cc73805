/* dl_queue — a bounded FIFO of pointers between threads (mutex + condition variable).
 * The bound is mandatory: a push past capacity fails with DL_EFULL instead of growing. A small
 * reserve above it takes the messages that must not wait (state changes), so a full queue of
 * data never blocks or drops them. Consumers either poll (dl_queue_pop, woken by the producer's
 * own means) or block (dl_queue_pop_wait, for job queues of worker threads). */
#ifndef DL_QUEUE_H
#define DL_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"

typedef struct dl_queue dl_queue;

dl_queue *dl_queue_new(size_t capacity, size_t reserve);
/* Frees the queue; items still inside are passed to drop (may be NULL). */
void dl_queue_free(dl_queue *q, void (*drop)(void *));
/* Appends; *was_empty tells the producer whether the consumer needs a wake-up. */
dl_err dl_queue_push(dl_queue *q, void *item, int *was_empty);
/* The same, allowed into the reserve above capacity. */
dl_err dl_queue_push_reserved(dl_queue *q, void *item, int *was_empty);
/* Moves up to max items into out, oldest first; returns how many. */
size_t dl_queue_pop(dl_queue *q, void **out, size_t max);
/* Blocks until there is an item or the queue is closed; returns 0 once closed (items left behind
 * are dropped by dl_queue_free). */
size_t dl_queue_pop_wait(dl_queue *q, void **out, size_t max);
/* Wakes every waiter for good (pop_wait returns 0, wait_closed returns 1). */
void dl_queue_close(dl_queue *q);
/* Sleeps up to ms, cut short by dl_queue_close: returns 1 when closed. */
int dl_queue_wait_closed(dl_queue *q, int64_t ms);
size_t dl_queue_len(dl_queue *q);
size_t dl_queue_cap(dl_queue *q);

#endif
