#include "dl_page.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_proxyurl.h"

/* One unescape pass: \" → ", \\ → \, \/ → /, \u0026 → &, \u003c → <, \u003e → >. Returns the
 * number of escapes undone. */
static size_t unescape_pass(char *s) {
  size_t n = 0;
  char *w = s;
  for (char *r = s; *r;) {
    if (r[0] == '\\' && (r[1] == '"' || r[1] == '\\' || r[1] == '/')) {
      *w++ = r[1];
      r += 2;
      n++;
    } else if (r[0] == '\\' && r[1] == 'u' && r[2] == '0' && r[3] == '0' && isxdigit((unsigned char)r[4]) &&
               isxdigit((unsigned char)r[5])) {
      char hex[3] = {r[4], r[5], 0};
      *w++ = (char)strtol(hex, NULL, 16);
      r += 6;
      n++;
    } else {
      *w++ = *r++;
    }
  }
  *w = 0;
  return n;
}

static void copy_str(char *dst, size_t cap, const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (cJSON_IsString(v) && v->valuestring) snprintf(dst, cap, "%s", v->valuestring);
}

/* A number or a decimal string ("finish_time" comes either way in public dumps); 0 otherwise. */
static int64_t json_int(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 9e15) return (int64_t)v->valuedouble;
  if (cJSON_IsString(v) && v->valuestring) {
    char *end = NULL;
    long long x = strtoll(v->valuestring, &end, 10);
    if (end != v->valuestring && !*end && x > 0) return x;
  }
  return 0;
}

static int all_digits(const char *s, size_t min) {
  size_t n = 0;
  for (; *s; s++, n++)
    if (!isdigit((unsigned char)*s)) return 0;
  return n >= min;
}

static void from_room_info(const char *at, dl_page_info *out) {
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithOpts(at, &end, 0);
  if (!o) return;
  const cJSON *room = cJSON_GetObjectItemCaseSensitive(o, "room");
  if (cJSON_IsObject(room)) {
    copy_str(out->room_id, sizeof out->room_id, room, "id_str");
    if (!all_digits(out->room_id, 10)) out->room_id[0] = 0;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(room, "status");
    if (cJSON_IsNumber(st)) out->status = st->valueint;
    copy_str(out->title, sizeof out->title, room, "title");
    const cJSON *owner = cJSON_GetObjectItemCaseSensitive(room, "owner");
    if (cJSON_IsObject(owner)) copy_str(out->anchor, sizeof out->anchor, owner, "nickname");
    out->finish_time = json_int(room, "finish_time");
  }
  const cJSON *anchor = cJSON_GetObjectItemCaseSensitive(o, "anchor");
  if (!out->anchor[0] && cJSON_IsObject(anchor)) copy_str(out->anchor, sizeof out->anchor, anchor, "nickname");
  if (!out->room_id[0]) {
    copy_str(out->room_id, sizeof out->room_id, o, "roomId");
    if (!all_digits(out->room_id, 10)) out->room_id[0] = 0;
  }
  cJSON_Delete(o);
}

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

/* "id_str"\s*:\s*"?(\d+)"?\s*,\s*"status"\s*:\s*(\d+)\s*,\s*"status_str" */
static int id_status_pattern(const char *s, dl_page_info *out) {
  for (const char *p = strstr(s, "\"id_str\""); p; p = strstr(p + 1, "\"id_str\"")) {
    const char *q = skip_ws(p + 8);
    if (*q++ != ':') continue;
    q = skip_ws(q);
    if (*q == '"') q++;
    const char *d = q;
    while (isdigit((unsigned char)*q)) q++;
    size_t dl = (size_t)(q - d);
    if (!dl || dl >= sizeof out->room_id) continue;
    if (*q == '"') q++;
    q = skip_ws(q);
    if (*q++ != ',') continue;
    q = skip_ws(q);
    if (strncmp(q, "\"status\"", 8)) continue;
    q = skip_ws(q + 8);
    if (*q++ != ':') continue;
    q = skip_ws(q);
    if (!isdigit((unsigned char)*q)) continue;
    int st = atoi(q);
    while (isdigit((unsigned char)*q)) q++;
    q = skip_ws(q);
    if (*q++ != ',') continue;
    q = skip_ws(q);
    if (strncmp(q, "\"status_str\"", 12)) continue;
    memcpy(out->room_id, d, dl);
    out->room_id[dl] = 0;
    out->status = st;
    return 1;
  }
  return 0;
}

static int digits_after(const char *s, const char *marker, size_t min, char *dst, size_t cap) {
  for (const char *p = strstr(s, marker); p; p = strstr(p + 1, marker)) {
    const char *d = p + strlen(marker);
    size_t n = 0;
    while (isdigit((unsigned char)d[n])) n++;
    if (n >= min && n < cap) {
      memcpy(dst, d, n);
      dst[n] = 0;
      return 1;
    }
  }
  return 0;
}

dl_err dl_page_parse(const char *html, size_t len, dl_page_info *out) {
  memset(out, 0, sizeof *out);
  char *s = malloc(len + 1);
  if (!s) return DL_ENOMEM;
  memcpy(s, html, len);
  s[len] = 0;
  for (int i = 0; i < 6; i++) {
    const char *m = strstr(s, "\"roomStore\":{\"roomInfo\":");
    const char *at = m ? m + strlen("\"roomStore\":{\"roomInfo\":") : NULL;
    if (!at && (m = strstr(s, "\"roomInfo\":")) != NULL) at = m + strlen("\"roomInfo\":");
    if (at && *at == '{') {
      from_room_info(at, out);
      if (out->room_id[0]) break;
    }
    if (!unescape_pass(s)) break;
  }
  if (!out->room_id[0]) id_status_pattern(s, out);
  if (!out->room_id[0]) {
    static const char *const markers[] = {"room_id=", "\"room_id\":\"", "\"room_id_str\":\"", "\"roomId\":\"",
                                          "gift_effect_bg_"};
    for (size_t i = 0; i < sizeof markers / sizeof *markers && !out->room_id[0]; i++)
      digits_after(s, markers[i], 10, out->room_id, sizeof out->room_id);
  }
  if (!digits_after(s, "\"user_unique_id\":\"", 10, out->user_unique_id, sizeof out->user_unique_id) &&
      !digits_after(s, "user_unique_id=", 10, out->user_unique_id, sizeof out->user_unique_id))
    digits_after(s, "user_unique_id%3D", 10, out->user_unique_id, sizeof out->user_unique_id);
  out->offline_text = strstr(s, "直播已结束") || strstr(s, "暂未开播") || strstr(s, "未开播");
  free(s);
  if (out->finish_time > 0)
    snprintf(out->ended_by, sizeof out->ended_by, "live page: finish_time %lld", (long long)out->finish_time);
  else if (out->status && out->status != 2)
    snprintf(out->ended_by, sizeof out->ended_by, "live page: status %d", out->status);
  else if (!out->status && out->offline_text)
    snprintf(out->ended_by, sizeof out->ended_by, "live page: offline text");
  return out->room_id[0] ? DL_EOK : DL_ECHALLENGE;
}

int dl_page_is_live(const dl_page_info *p) {
  if (p->finish_time > 0) return 0;
  if (p->status) return p->status == 2;
  return !p->offline_text;
}

int dl_live_id_normalize(const char *in, char *out, size_t cap) {
  const char *p = in;
  while (*p == ' ' || *p == '\t') p++;
  const char *host = strstr(p, "live.douyin.com/");
  if (host) p = host + strlen("live.douyin.com/");
  size_t n = 0;
  while (isdigit((unsigned char)p[n])) n++;
  if (n == 0 || n >= cap || n > 24) return -1;
  const char *rest = p + n;
  if (isspace((unsigned char)*rest)) { /* trailing blanks only: "12 34" is not a live_id */
    while (isspace((unsigned char)*rest)) rest++;
    if (*rest) return -1;
  } else if (*rest && *rest != '?' && *rest != '/' && *rest != '#') {
    return -1;
  }
  memcpy(out, p, n);
  out[n] = 0;
  return 0;
}

static int profile_ok(const char *p) {
  size_t n = 0;
  for (; p[n]; n++)
    if (!isalnum((unsigned char)p[n]) && p[n] != '_' && p[n] != '-') return 0;
  return n >= 1 && n <= 64;
}

int dl_assignment_parse(const char *raw, size_t len, char *live_id, size_t cap, char *profile, size_t pcap,
                        dl_proxy_url *proxy) {
  profile[0] = 0;
  if (proxy) memset(proxy, 0, sizeof *proxy);
  if (len == 0 || len > DL_ASSIGNMENT_MAX || memchr(raw, 0, len)) return -1;
  char buf[DL_ASSIGNMENT_MAX + 1];
  memcpy(buf, raw, len);
  buf[len] = 0;
  const char *p = buf;
  while (isspace((unsigned char)*p)) p++;
  if (*p != '{') return dl_live_id_normalize(p, live_id, cap);
  cJSON *o = cJSON_Parse(p);
  int rc = -1;
  if (!cJSON_IsObject(o)) goto done;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "live_id");
  char tmp[64];
  if (cJSON_IsString(id) && id->valuestring) snprintf(tmp, sizeof tmp, "%s", id->valuestring);
  else if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < 9e15) snprintf(tmp, sizeof tmp, "%.0f", id->valuedouble);
  else goto done;
  if (dl_live_id_normalize(tmp, live_id, cap) != 0) goto done;
  const cJSON *ck = cJSON_GetObjectItemCaseSensitive(o, "cookie");
  if (ck) {
    if (!cJSON_IsString(ck) || !profile_ok(ck->valuestring) || strlen(ck->valuestring) >= pcap) goto done;
    snprintf(profile, pcap, "%s", ck->valuestring);
  }
  const cJSON *px = cJSON_GetObjectItemCaseSensitive(o, "proxy");
  if (px && proxy) {
    char why[160];
    if (!cJSON_IsString(px) || dl_proxy_url_parse(px->valuestring, proxy, why, sizeof why) != DL_EOK) goto done;
  }
  rc = 0;
done:
  if (rc && proxy) memset(proxy, 0, sizeof *proxy);
  cJSON_Delete(o);
  return rc;
}

/* web/enter's status_code for "live ended" (B; PROTOCOL §9.3). */
#define DL_ENTER_CODE_ENDED 30003

dl_err dl_enter_parse(const char *json, size_t len, dl_page_info *out) {
  memset(out, 0, sizeof *out);
  size_t i = 0;
  while (i < len && isspace((unsigned char)json[i])) i++;
  if (i == len) return DL_EEMPTY;
  cJSON *o = cJSON_ParseWithLength(json, len);
  if (!o) return DL_EPROTO;
  dl_err rc = DL_EHTTP;
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "status_code");
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
  if (cJSON_IsNumber(code) && code->valueint == DL_ENTER_CODE_ENDED) {
    out->status = 4;
    snprintf(out->ended_by, sizeof out->ended_by, "web/enter: status_code %d", DL_ENTER_CODE_ENDED);
    rc = DL_EOK;
    goto done;
  }
  if (!cJSON_IsNumber(code) || code->valueint != 0 || !cJSON_IsObject(data)) goto done;
  const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(data, "data");
  const cJSON *room = cJSON_IsArray(rooms) ? cJSON_GetArrayItem(rooms, 0) : NULL;
  int room_st = -1; /* data.data[0].status, -1 when absent */
  if (cJSON_IsObject(room)) {
    copy_str(out->room_id, sizeof out->room_id, room, "id_str");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(room, "status");
    if (cJSON_IsNumber(st)) room_st = st->valueint;
    copy_str(out->title, sizeof out->title, room, "title");
    const cJSON *owner = cJSON_GetObjectItemCaseSensitive(room, "owner");
    if (cJSON_IsObject(owner)) copy_str(out->anchor, sizeof out->anchor, owner, "nickname");
    out->finish_time = json_int(room, "finish_time");
  }
  if (!out->room_id[0]) copy_str(out->room_id, sizeof out->room_id, data, "enter_room_id");
  if (!all_digits(out->room_id, 10)) out->room_id[0] = 0;
  const cJSON *user = cJSON_GetObjectItemCaseSensitive(data, "user");
  if (cJSON_IsObject(user)) copy_str(out->anchor, sizeof out->anchor, user, "nickname");
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(data, "room_status");
  int room_status = cJSON_IsNumber(rs) ? rs->valueint : -1; /* 0 live, 2 ended (S); 1 live (B) */
  /* any explicit end marker wins; only an explicit "live" is live (J #57) */
  if (out->finish_time > 0)
    snprintf(out->ended_by, sizeof out->ended_by, "web/enter: finish_time %lld", (long long)out->finish_time);
  else if (room_st >= 0 && room_st != 2)
    snprintf(out->ended_by, sizeof out->ended_by, "web/enter: status %d", room_st);
  else if (room_status == 2)
    snprintf(out->ended_by, sizeof out->ended_by, "web/enter: room_status 2");
  if (out->ended_by[0]) out->status = room_st > 0 && room_st != 2 ? room_st : 4;
  else if (room_st == 2 || room_status == 0 || room_status == 1) out->status = 2;
  if (out->status && (out->room_id[0] || out->status != 2)) rc = DL_EOK;
done:
  cJSON_Delete(o);
  return rc;
}
