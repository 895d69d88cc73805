#include "dl_tlist.h"

#include <stddef.h>

void dl_tlist_del(dl_tlist *l, dl_tnode *n) {
  if (!n->linked) return;
  if (n->prev) n->prev->next = n->next;
  else l->head = n->next;
  if (n->next) n->next->prev = n->prev;
  else l->tail = n->prev;
  n->prev = n->next = NULL;
  n->linked = 0;
}

void dl_tlist_add(dl_tlist *l, dl_tnode *n, int64_t due) {
  dl_tlist_del(l, n);
  n->due = due;
  dl_tnode *p = l->tail; /* the last node due no later than n: n goes after it */
  while (p && p->due > due) p = p->prev;
  n->prev = p;
  n->next = p ? p->next : l->head;
  if (n->next) n->next->prev = n;
  else l->tail = n;
  if (p) p->next = n;
  else l->head = n;
  n->linked = 1;
}

dl_tnode *dl_tlist_pop_due(dl_tlist *l, int64_t now) {
  dl_tnode *n = l->head;
  if (!n || n->due > now) return NULL;
  dl_tlist_del(l, n);
  return n;
}
