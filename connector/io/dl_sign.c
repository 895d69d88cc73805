#include "dl_sign.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "dl_b64.h"
#include "dl_query.h"
#include "dl_rand.h"
#include "dl_rc4.h"

static const char sign_alphabet[] = "Dkdpgh4ZKsQB80/Mfvw36XI1R25+WUAlEi7NLboqYTOPuzmFjJnryx9HVGcaStCe";

/* Bytes 14 and 15 of md5(md5("")) = 59adb24ef3cdbe0297f05b395827453f: the signed payload's
 * stand-in for an empty body, the same in every signature. */
static const unsigned char md5_md5_empty_14_15[2] = {0x45, 0x3f};

static void md5(const void *data, size_t len, unsigned char out[16]) {
  unsigned int n = 16;
  EVP_Digest(data, len, out, &n, EVP_md5(), NULL);
}

void dl_sign_stub(const char *room_id, const char *uid, char out[33]) {
  char s[512];
  int n = snprintf(s, sizeof s,
                   "live_id=1,aid=6383,version_code=180800,webcast_sdk_version=%s,room_id=%s,"
                   "sub_room_id=,sub_channel_id=,did_rule=3,user_unique_id=%s,device_platform=web,"
                   "device_type=,ac=,identity=audience",
                   DL_SDK_VERSION, room_id, uid);
  unsigned char d[16];
  md5(s, n < 0 ? 0 : (size_t)n, d);
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int unhex(const char *h, unsigned char out[16]) {
  for (int i = 0; i < 32; i++) {
    char c = h[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0) return -1;
    if (i % 2 == 0) out[i / 2] = (unsigned char)(v << 4);
    else out[i / 2] |= (unsigned char)v;
  }
  return h[32] == 0 ? 0 : -1;
}

int dl_sign_with(const char *stub_hex, unsigned counter, int flag_bit, unsigned r1, unsigned key,
                 char out[DL_SIGN_LEN + 1]) {
  unsigned char stub[16], sd[16];
  if (strlen(stub_hex) != 32 || unhex(stub_hex, stub) != 0) return -1;
  md5(stub, 16, sd);
  unsigned char b[12];
  unsigned char *p = b + 2;
  p[0] = (unsigned char)(counter & 0x3F);
  p[1] = 0;
  p[2] = 1;
  p[3] = 14;
  p[4] = md5_md5_empty_14_15[0];
  p[5] = md5_md5_empty_14_15[1];
  p[6] = sd[14];
  p[7] = sd[15];
  p[8] = (unsigned char)r1;
  p[9] = 0;
  for (int i = 0; i < 9; i++) p[9] ^= p[i];
  unsigned char k = (unsigned char)key;
  dl_rc4(&k, 1, p, 10);
  b[0] = (unsigned char)(0x40 | (flag_bit ? 0x10 : 0));
  b[1] = k;
  dl_b64_encode_alphabet(b, sizeof b, sign_alphabet, 0, out); /* 12 bytes: 16 characters, no padding */
  return 0;
}

void dl_signer_init(dl_signer *s, uint64_t seed) {
  s->counter = 0;
  s->rng = seed ? seed : 0x2545F4914F6CDD1DULL;
}

int dl_signer_sign(dl_signer *s, const char *stub_hex, char out[DL_SIGN_LEN + 1]) {
  s->counter++;
  uint64_t r = dl_rand_next(&s->rng);
  return dl_sign_with(stub_hex, s->counter, (int)(r & 1), (unsigned)((r >> 8) % 255),
                      (unsigned)((r >> 16) % 255), out);
}

size_t dl_wsurl_build(char *out, size_t cap, const char *ws_base, const char *room_id, const char *uid,
                      const char *ua, const char *cursor, const char *internal_ext, const char *signature,
                      int64_t now_ms) {
  char def_cursor[128], def_ext[512];
  if (!cursor || !*cursor) {
    snprintf(def_cursor, sizeof def_cursor, "d-1_u-1_fh-%s_t-%lld_r-1", room_id, (long long)now_ms);
    cursor = def_cursor;
  }
  if (!internal_ext || !*internal_ext) {
    snprintf(def_ext, sizeof def_ext,
             "internal_src:dim|wss_push_room_id:%s|wss_push_did:%s|first_req_ms:%lld|fetch_time:%lld|seq:1|"
             "wss_info:0-%lld-0-0|wrds_v:7382620942951772256",
             room_id, uid, (long long)now_ms - 100, (long long)now_ms, (long long)now_ms);
    internal_ext = def_ext;
  }
  const char *bv = ua && !strncmp(ua, "Mozilla/", 8) ? ua + 8 : (ua ? ua : "");
  size_t blen = strlen(ws_base);
  while (blen && ws_base[blen - 1] == '/') blen--;
  int n = snprintf(out, cap, "%.*s/webcast/im/push/v2/?", (int)blen, ws_base);
  if (n < 0 || (size_t)n >= cap) return 0;
  /* PROTOCOL §2.1 in browser order; the X-MS-STUB fields (sdk, room_id, user_unique_id) are the
   * very values dl_sign_stub hashes. Every value is percent-encoded (dl_query): the signature's
   * alphabet has '+' and '/', cursor and internal_ext carry '|' and ':'. */
  const char *const kv[] = {
      "app_name", "douyin_web", "version_code", "180800", "webcast_sdk_version", DL_SDK_VERSION,
      "update_version_code", DL_SDK_VERSION, "compress", "gzip", "device_platform", "web",
      "cookie_enabled", "true", "screen_width", "1920", "screen_height", "1080", "browser_language", "zh-CN",
      "browser_platform", "Win32", "browser_name", "Mozilla", "browser_version", bv, "browser_online", "true",
      "tz_name", "Asia/Shanghai", "cursor", cursor, "internal_ext", internal_ext, "host", "https://live.douyin.com",
      "aid", "6383", "live_id", "1", "did_rule", "3", "endpoint", "live_pc", "support_wrds", "1",
      "user_unique_id", uid, "im_path", "/webcast/im/fetch/", "identity", "audience",
      "need_persist_msg_count", "15", "insert_task_id", "", "live_reason", "", "room_id", room_id,
      "heartbeatDuration", "0", "signature", signature ? signature : ""};
  /* the query starts after the '?': dl_query_add joins with '&' only past its first pair */
  char *q = out + n;
  size_t qcap = cap - (size_t)n, qlen = 0;
  for (size_t i = 0; i < sizeof kv / sizeof *kv; i += 2)
    if (dl_query_add(q, qcap, &qlen, kv[i], kv[i + 1]) != DL_EOK) return 0;
  return (size_t)n + qlen;
}
