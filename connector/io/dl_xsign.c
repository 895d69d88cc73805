#include "dl_xsign.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_buf.h"
#include "dl_queue.h"

/* A signer answers a few dozen bytes; anything bigger is not a signature. */
#define DL_XSIGN_BODY_MAX 4096
/* Jobs waiting for the signer: one per connecting room at most, so rooms × a little. */
#define DL_XSIGN_QUEUE_MAX 4096

typedef struct xjob {
  char live_id[64], stub[40], room_id[32], uid[32];
  uint64_t gen;
} xjob;

struct dl_xsign {
  char *url;
  dl_xsign_done done;
  void *ud;
  pthread_t thread;
  dl_queue *jobs; /* xjob*, closed to stop the thread */
};

/* The answer, capped at DL_XSIGN_BODY_MAX (curl's write fails past it). */
static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
  return dl_buf_add(ud, p, sz * nm) == DL_EOK ? sz * nm : 0;
}

static int sig_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 128) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("+/=-_.", *s)) return 0;
  return 1;
}

int dl_xsign_parse(const char *body, size_t len, char *out, size_t cap) {
  while (len && isspace((unsigned char)body[len - 1])) len--;
  while (len && isspace((unsigned char)*body)) body++, len--;
  if (!len) return -1;
  if (*body == '{') {
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "signature");
    if (!cJSON_IsString(s)) {
      const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
      s = cJSON_IsObject(d) ? cJSON_GetObjectItemCaseSensitive(d, "signature") : NULL;
    }
    int rc = -1;
    if (cJSON_IsString(s) && sig_ok(s->valuestring) && strlen(s->valuestring) < cap) {
      snprintf(out, cap, "%s", s->valuestring);
      rc = 0;
    }
    cJSON_Delete(o);
    return rc;
  }
  if (len >= cap) return -1;
  memcpy(out, body, len);
  out[len] = 0;
  return sig_ok(out) ? 0 : -1;
}

static void run_job(dl_xsign *x, CURL *c, const xjob *j) {
  char url[2048], sig[160] = "", why[200] = "";
  snprintf(url, sizeof url, "%s%cstub=%s&room_id=%s&user_unique_id=%s", x->url, strchr(x->url, '?') ? '&' : '?',
           j->stub, j->room_id, j->uid);
  dl_buf b;
  dl_buf_init(&b, DL_XSIGN_BODY_MAX);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  CURLcode cc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  int ok = 0;
  if (cc == CURLE_WRITE_ERROR) snprintf(why, sizeof why, "external signer: answer too long");
  else if (cc != CURLE_OK) snprintf(why, sizeof why, "external signer: %s", curl_easy_strerror(cc));
  else if (code != 200) snprintf(why, sizeof why, "external signer answered HTTP %ld", code);
  else if (dl_xsign_parse(b.len ? (const char *)b.p : "", b.len, sig, sizeof sig) != 0)
    snprintf(why, sizeof why, "external signer answered no usable signature");
  else ok = 1;
  dl_buf_free(&b);
  x->done(x->ud, j->live_id, j->gen, ok, ok ? sig : NULL, ok ? NULL : why);
}

static void *thread_main(void *arg) {
  dl_xsign *x = arg;
  CURL *c = curl_easy_init();
  void *item;
  while (dl_queue_pop_wait(x->jobs, &item, 1) == 1) {
    xjob *j = item;
    if (c) run_job(x, c, j);
    else x->done(x->ud, j->live_id, j->gen, 0, NULL, "external signer: no curl handle");
    free(j);
  }
  if (c) curl_easy_cleanup(c);
  return NULL;
}

dl_xsign *dl_xsign_new(const char *signer_url, dl_xsign_done done, void *ud) {
  dl_xsign *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->url = strdup(signer_url);
  x->done = done;
  x->ud = ud;
  x->jobs = dl_queue_new(DL_XSIGN_QUEUE_MAX, 0);
  if (!x->url || !x->jobs || pthread_create(&x->thread, NULL, thread_main, x) != 0) {
    dl_queue_free(x->jobs, NULL);
    free(x->url);
    free(x);
    return NULL;
  }
  return x;
}

void dl_xsign_submit(dl_xsign *x, const char *live_id, uint64_t gen, const char *stub, const char *room_id,
                     const char *uid) {
  xjob *j = calloc(1, sizeof *j);
  if (!j) {
    x->done(x->ud, live_id, gen, 0, NULL, "out of memory");
    return;
  }
  snprintf(j->live_id, sizeof j->live_id, "%s", live_id);
  snprintf(j->stub, sizeof j->stub, "%s", stub);
  snprintf(j->room_id, sizeof j->room_id, "%s", room_id);
  snprintf(j->uid, sizeof j->uid, "%s", uid);
  j->gen = gen;
  if (dl_queue_push(x->jobs, j, NULL) != DL_EOK) {
    free(j);
    x->done(x->ud, live_id, gen, 0, NULL, "external signer queue full");
  }
}

void dl_xsign_free(dl_xsign *x) {
  if (!x) return;
  dl_queue_close(x->jobs);
  pthread_join(x->thread, NULL);
  dl_queue_free(x->jobs, free);
  free(x->url);
  free(x);
}
