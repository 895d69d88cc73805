#include "dl_tail.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const redisReply *field(const redisReply *fields, const char *name) {
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const redisReply *k = fields->element[i], *v = fields->element[i + 1];
    if (k && v && k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING && k->len == strlen(name) &&
        !memcmp(k->str, name, k->len))
      return v;
  }
  return NULL;
}

static uint64_t u64_of(const cJSON *v) {
  if (cJSON_IsString(v)) return dl_seen_parse_id(v->valuestring, strlen(v->valuestring));
  if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1.8e19) return (uint64_t)v->valuedouble;
  return 0;
}

/* A combo gift event as a streak: (user, gift, group) → the highest running count seen. */
static int gift_streak(const char *json, size_t len, int64_t now_ms, dl_gift_streak *s) {
  cJSON *e = cJSON_ParseWithLength(json, len);
  const cJSON *g = cJSON_GetObjectItemCaseSensitive(e, "gift"), *u = cJSON_GetObjectItemCaseSensitive(e, "user");
  int ok = cJSON_IsObject(g) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "combo"));
  if (ok) {
    memset(s, 0, sizeof *s);
    const cJSON *nick = cJSON_GetObjectItemCaseSensitive(u, "nickname");
    s->user_id = dl_gift_user_key(u64_of(cJSON_GetObjectItemCaseSensitive(u, "id")),
                                  cJSON_IsString(nick) ? nick->valuestring : "",
                                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(u, "anonymous")));
    s->gift_id = u64_of(cJSON_GetObjectItemCaseSensitive(g, "id"));
    s->group_id = u64_of(cJSON_GetObjectItemCaseSensitive(g, "group_id"));
    uint64_t rc = u64_of(cJSON_GetObjectItemCaseSensitive(g, "repeat_count"));
    uint64_t cc = u64_of(cJSON_GetObjectItemCaseSensitive(g, "combo_count"));
    s->last_seen = rc > cc ? rc : cc;
    s->last_ms = now_ms;
  }
  cJSON_Delete(e);
  return ok;
}

void dl_tail_read(const redisReply *rep, dl_seen *seen, size_t max_gifts, int64_t now_ms, dl_tail *out) {
  memset(out, 0, sizeof *out);
  if (!rep || rep->type != REDIS_REPLY_ARRAY) {
    out->skipped = 1;
    return;
  }
  for (size_t i = rep->elements; i-- > 0;) { /* newest first: walk back, oldest first */
    const redisReply *ent = rep->element[i];
    if (!ent || ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 || !ent->element[1] ||
        ent->element[1]->type != REDIS_REPLY_ARRAY) {
      out->skipped++;
      continue;
    }
    out->entries++;
    const redisReply *f = ent->element[1], *mid = field(f, "msg_id"), *type = field(f, "type"),
                     *json = field(f, "json");
    if (mid) dl_seen_add(seen, dl_seen_parse_id(mid->str, mid->len));
    if (!type || !json || type->len != 4 || memcmp(type->str, "gift", 4)) continue;
    dl_gift_streak s;
    if (!gift_streak(json->str, json->len, now_ms, &s)) continue;
    size_t k = 0;
    while (k < out->n_gifts && !(out->gifts[k].user_id == s.user_id && out->gifts[k].gift_id == s.gift_id &&
                                 out->gifts[k].group_id == s.group_id))
      k++;
    if (k < out->n_gifts) {
      if (s.last_seen > out->gifts[k].last_seen) out->gifts[k].last_seen = s.last_seen;
    } else if (out->n_gifts < max_gifts) {
      dl_gift_streak *ng = realloc(out->gifts, (out->n_gifts + 1) * sizeof *ng);
      if (!ng) continue;
      out->gifts = ng;
      out->gifts[out->n_gifts++] = s;
    }
  }
}
