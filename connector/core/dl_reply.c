#include "dl_reply.h"

#include <stdlib.h>
#include <string.h>

/* size classes 16, 32, …, DL_REPLY_POOLED_MAX bytes */
#define MIN_SHIFT 4
#define NCLASS 9

typedef struct block {
  struct block *next;
} block;

typedef struct pool {
  block *nodes;
  size_t nnodes;
  block *bytes[NCLASS];
  size_t nbytes[NCLASS];
} pool;

static _Thread_local pool P;

static int class_of(size_t n) {
  if (n > DL_REPLY_POOLED_MAX) return -1;
  int c = 0;
  while (((size_t)1 << (c + MIN_SHIFT)) < n) c++;
  return c;
}

static void *bytes_get(size_t n) {
  int c = class_of(n);
  if (c < 0) return malloc(n);
  block *b = P.bytes[c];
  if (b) {
    P.bytes[c] = b->next;
    P.nbytes[c]--;
    return b;
  }
  return malloc((size_t)1 << (c + MIN_SHIFT));
}

static void bytes_put(void *p, size_t n) {
  if (!p) return;
  int c = class_of(n);
  if (c < 0 || P.nbytes[c] >= (DL_REPLY_POOL_CLASS_BYTES >> (c + MIN_SHIFT))) {
    free(p);
    return;
  }
  block *b = p;
  b->next = P.bytes[c];
  P.bytes[c] = b;
  P.nbytes[c]++;
}

static redisReply *node_get(int type) {
  redisReply *r;
  if (P.nodes) {
    r = (redisReply *)(void *)P.nodes;
    P.nodes = P.nodes->next;
    P.nnodes--;
  } else if (!(r = malloc(sizeof *r))) {
    return NULL;
  }
  memset(r, 0, sizeof *r);
  r->type = type;
  return r;
}

static void node_put(redisReply *r) {
  if (P.nnodes >= DL_REPLY_POOL_NODES) {
    free(r);
    return;
  }
  block *b = (block *)(void *)r;
  b->next = P.nodes;
  P.nodes = b;
  P.nnodes++;
}

/* As hiredis does: an element of an array is linked into its parent when it is made. */
static void *linked(const redisReadTask *task, redisReply *r) {
  if (task->parent) {
    redisReply *parent = task->parent->obj;
    parent->element[task->idx] = r;
  }
  return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len) {
  redisReply *r = node_get(task->type);
  if (!r) return NULL;
  if (!(r->str = bytes_get(len + 1))) {
    node_put(r);
    return NULL;
  }
  memcpy(r->str, str, len);
  r->str[len] = 0;
  r->len = len;
  return linked(task, r);
}

static void *create_array(const redisReadTask *task, int elements) {
  redisReply *r = node_get(REDIS_REPLY_ARRAY);
  if (!r) return NULL;
  if (elements > 0) {
    size_t n = (size_t)elements * sizeof(redisReply *);
    if (n / sizeof(redisReply *) != (size_t)elements || !(r->element = bytes_get(n))) {
      node_put(r);
      return NULL;
    }
    memset(r->element, 0, n); /* a reply cut short is freed with the elements it has */
  }
  r->elements = elements > 0 ? (size_t)elements : 0;
  return linked(task, r);
}

static void *create_integer(const redisReadTask *task, long long value) {
  redisReply *r = node_get(REDIS_REPLY_INTEGER);
  if (!r) return NULL;
  r->integer = value;
  return linked(task, r);
}

static void *create_nil(const redisReadTask *task) {
  redisReply *r = node_get(REDIS_REPLY_NIL);
  return r ? linked(task, r) : NULL;
}

void dl_reply_free(void *reply) {
  redisReply *r = reply;
  if (!r) return;
  switch (r->type) {
  case REDIS_REPLY_ARRAY:
    for (size_t i = 0; i < r->elements; i++) dl_reply_free(r->element[i]);
    bytes_put(r->element, r->elements * sizeof(redisReply *));
    break;
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
  case REDIS_REPLY_ERROR:
    bytes_put(r->str, r->len + 1);
    break;
  default:
    break;
  }
  node_put(r);
}

static redisReplyObjectFunctions fns = {create_string, create_array, create_integer, create_nil, dl_reply_free};

redisReplyObjectFunctions *dl_reply_fns(void) { return &fns; }

void dl_reply_pool_drain(void) {
  block *b;
  while ((b = P.nodes)) {
    P.nodes = b->next;
    free(b);
  }
  P.nnodes = 0;
  for (int c = 0; c < NCLASS; c++) {
    while ((b = P.bytes[c])) {
      P.bytes[c] = b->next;
      free(b);
    }
    P.nbytes[c] = 0;
  }
}

size_t dl_reply_pool_held(void) {
  size_t n = P.nnodes;
  for (int c = 0; c < NCLASS; c++) n += P.nbytes[c];
  return n;
}
