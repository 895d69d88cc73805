/* dl_tlist — a list of timers kept in due order, for many timers of the same period (every room's
 * heartbeat): a new deadline is nearly always the latest, so insertion walks from the tail and
 * costs O(1) where a walk from the head (libwebsockets' own timer list) visits every connection's
 * timer. Intrusive: the node lives in its owner; the list allocates nothing. */
#ifndef DL_TLIST_H
#define DL_TLIST_H

#include <stdint.h>

typedef struct dl_tnode {
  struct dl_tnode *prev, *next;
  int64_t due;   /* when it is due, in the caller's clock */
  int linked;
} dl_tnode;

typedef struct dl_tlist {
  dl_tnode *head, *tail;
} dl_tlist;

/* Links n due at `due` (unlinking it first if it is linked), after every node due no later. */
void dl_tlist_add(dl_tlist *l, dl_tnode *n, int64_t due);
/* Unlinks n; a node not linked is left alone. */
void dl_tlist_del(dl_tlist *l, dl_tnode *n);
/* The earliest node when it is due at `now` (due <= now), unlinked; NULL when none is. */
dl_tnode *dl_tlist_pop_due(dl_tlist *l, int64_t now);

#endif
