/* dl_page — what the live page (GET https://live.douyin.com/<live_id>) says about a room.
 * Pure: text in, facts out (PROTOCOL §1.2). The page carries its state as escaped JSON inside
 * self.__pace_f.push([1,"…"]) scripts; we unescape (up to 6 levels) and look for, in order:
 * the roomInfo object, the id_str/status/status_str pattern, then bare room id markers. */
#ifndef DL_PAGE_H
#define DL_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "dl_err.h"
#include "dl_proxyurl.h"

typedef struct dl_page_info {
  char room_id[32];
  int status;            /* 2 = live; 4 = ended; 0 = unknown */
  int offline_text;      /* 直播已结束 / 暂未开播 / 未开播 seen */
  int64_t finish_time;   /* room.finish_time / data.data[0].finish_time (Unix s); > 0 means ended
                            even while status still says 2 (PROTOCOL §9.7) */
  char ended_by[96];     /* which end marker said "not live", in words ("" when none) */
  char title[256];
  char anchor[128];
  char user_unique_id[32];
} dl_page_info;

/* DL_EOK with room_id filled; DL_ECHALLENGE when the page has no room state (an anti-bot page,
 * not "not found"); DL_ENOMEM. */
dl_err dl_page_parse(const char *html, size_t len, dl_page_info *out);
/* The same facts from the JSON of GET /webcast/room/web/enter/ (PROTOCOL §1.3, §9.3, §9.7): room
 * id (data.data[0].id_str, else data.enter_room_id), title (data.data[0].title), anchor
 * (data.user.nickname, else data.data[0].owner.nickname) and the live status:
 *   ended (status 4, ended_by says why) on any explicit end marker: status_code 30003,
 *     data.data[0].status present and not 2, data.room_status 2, data.data[0].finish_time > 0;
 *   live (status 2) on data.data[0].status 2, else data.room_status 0 (or 1, B's "live radio").
 * Returns DL_EOK with one of those; DL_EEMPTY for an empty body (risk control or a refused
 * a_bogus: never "ended"); DL_EPROTO for something that is not JSON; DL_EHTTP for another
 * status_code or an answer without any status (J #57: unknown is not live, and not ended either:
 * ask again later). */
dl_err dl_enter_parse(const char *json, size_t len, dl_page_info *out);

/* 1 when the facts say the room is live now (finish_time > 0 never is). */
int dl_page_is_live(const dl_page_info *p);

/* Extracts the live_id from "123", "https://live.douyin.com/123" or ".../123?x=y".
 * Returns 0 and fills out (digits only), or -1. */
int dl_live_id_normalize(const char *in, char *out, size_t cap);

/* An assignment as found in P:assign: a live_id, a live URL, or a JSON object
 * {"live_id": "…", "cookie": "<profile>", "proxy": "http://[user:pass@]host:port"} (the profile
 * names a file in --cookie-dir; the proxy carries this room's pages and WebSocket instead of the
 * --proxy-file pool; both are optional).
 * Returns 0 with live_id (and profile, "" when none; proxy taken apart, port 0 when none, when
 * proxy is not NULL) filled, or -1 when it is neither, or its proxy is not a valid HTTP proxy URL
 * (dl_proxy_url_parse). */
#define DL_ASSIGNMENT_MAX 4096
int dl_assignment_parse(const char *raw, size_t len, char *live_id, size_t cap, char *profile, size_t pcap,
                        dl_proxy_url *proxy);

#endif
