#include "dl_rurl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes p[0..n) into out; -1 when it does not fit or is malformed. */
static int pct_decode(const char *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '%') {
      if (i + 2 >= n) return -1;
      int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
      if (h < 0 || l < 0) return -1;
      c = (char)(h * 16 + l);
      i += 2;
      if (!c) return -1;
    }
    if (o + 1 >= cap) return -1;
    out[o++] = c;
  }
  out[o] = 0;
  return 0;
}

static int parse_hostport(const char *p, size_t n, dl_rnode *node, char *why, size_t cap) {
  char hp[300];
  if (n == 0 || n >= sizeof hp) return snprintf(why, cap, "missing or too long host"), -1;
  memcpy(hp, p, n);
  hp[n] = 0;
  node->port = 6379;
  char *colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
  if (colon && hp[0] == '[') colon++;
  if (colon) {
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || !colon[1] || *end || port < 1 || port > 65535) return snprintf(why, cap, "bad port"), -1;
    node->port = (int)port;
    *colon = 0;
  }
  if (hp[0] == '[') {
    size_t l = strlen(hp);
    if (l < 2 || hp[l - 1] != ']') return snprintf(why, cap, "bad IPv6 address"), -1;
    hp[l - 1] = 0;
    memmove(hp, hp + 1, l - 1);
  }
  if (!hp[0] || strlen(hp) >= sizeof node->host) return snprintf(why, cap, "missing host"), -1;
  for (const char *q = hp; *q; q++)
    if ((unsigned char)*q <= ' ' || *q == '/' || *q == '@' || *q == '#')
      return snprintf(why, cap, "bad character in host"), -1;
  memcpy(node->host, hp, strlen(hp) + 1); /* fits: checked above */
  return 0;
}

static const struct {
  const char *scheme;
  dl_rurl_mode mode;
  int tls;
} schemes[] = {
    {"redis://", DL_RURL_SINGLE, 0},          {"rediss://", DL_RURL_SINGLE, 1},
    {"redis-sentinel://", DL_RURL_SENTINEL, 0}, {"rediss-sentinel://", DL_RURL_SENTINEL, 1},
    {"redis-cluster://", DL_RURL_CLUSTER, 0},   {"rediss-cluster://", DL_RURL_CLUSTER, 1},
};

int dl_redis_parse_url(const char *url, dl_redis_addr *a, char *why, size_t cap) {
  memset(a, 0, sizeof *a);
  a->port = 6379;
  if (!strncmp(url, "unix://", 7)) {
    const char *p = url + 7;
    if (*p != '/' || strlen(p) >= sizeof a->unix_path)
      return snprintf(why, cap, "unix:// needs an absolute socket path"), -1;
    snprintf(a->unix_path, sizeof a->unix_path, "%s", p);
    return 0;
  }
  const char *p = NULL;
  for (size_t i = 0; i < sizeof schemes / sizeof *schemes && !p; i++)
    if (!strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme))) {
      p = url + strlen(schemes[i].scheme);
      a->mode = schemes[i].mode;
      a->tls = schemes[i].tls;
    }
  if (!p)
    return snprintf(why, cap, "must start with redis://, rediss://, unix://, redis-sentinel://, "
                              "rediss-sentinel://, redis-cluster:// or rediss-cluster://"), -1;
  /* the fragment names the sentinel master */
  const char *hash = strchr(p, '#');
  const char *end = hash ? hash : p + strlen(p);
  if (a->mode == DL_RURL_SENTINEL) {
    if (!hash || !hash[1] || strlen(hash + 1) >= sizeof a->master)
      return snprintf(why, cap, "a sentinel URL ends with #<master name>"), -1;
    snprintf(a->master, sizeof a->master, "%s", hash + 1);
  } else if (hash) {
    return snprintf(why, cap, "unexpected #fragment"), -1;
  }
  const char *at = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == '@') at = q;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    size_t ul = (size_t)((colon ? colon : at) - p);
    if (pct_decode(p, ul, a->user, sizeof a->user) != 0) return snprintf(why, cap, "bad user name"), -1;
    if (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), a->password, sizeof a->password) != 0)
      return snprintf(why, cap, "bad or too long password"), -1;
    p = at + 1;
  }
  const char *slash = memchr(p, '/', (size_t)(end - p));
  const char *hosts_end = slash ? slash : end;
  for (const char *h = p; h < hosts_end;) {
    const char *comma = memchr(h, ',', (size_t)(hosts_end - h));
    const char *he = comma ? comma : hosts_end;
    if (a->nnodes == DL_RURL_NODES_MAX) return snprintf(why, cap, "more than %d nodes", DL_RURL_NODES_MAX), -1;
    if (parse_hostport(h, (size_t)(he - h), &a->nodes[a->nnodes], why, cap) != 0) return -1;
    a->nnodes++;
    h = comma ? comma + 1 : hosts_end;
    if (comma && h == hosts_end) return snprintf(why, cap, "empty node after ','"), -1;
  }
  if (!a->nnodes) return snprintf(why, cap, "missing host"), -1;
  if (a->mode == DL_RURL_SINGLE && a->nnodes > 1) return snprintf(why, cap, "one host only (or use redis-sentinel:// / redis-cluster://)"), -1;
  snprintf(a->host, sizeof a->host, "%s", a->nodes[0].host);
  a->port = a->nodes[0].port;
  if (slash && slash + 1 < end) {
    char *e;
    errno = 0;
    long db = strtol(slash + 1, &e, 10);
    if (errno || e != end || db < 0 || db > 100000) return snprintf(why, cap, "bad database number"), -1;
    if (a->mode == DL_RURL_CLUSTER && db != 0) return snprintf(why, cap, "Redis Cluster has only database 0"), -1;
    a->db = (int)db;
  }
  return 0;
}

static int set_pw(char *dst, size_t cap, const char *src, const char *what, char *why, size_t why_cap) {
  size_t n = strlen(src);
  if (n >= cap) return snprintf(why, why_cap, "%s: password longer than %zu bytes", what, cap - 1), -1;
  memcpy(dst, src, n + 1);
  return 0;
}

int dl_redis_addr_credentials(dl_redis_addr *a, char *why, size_t cap) {
  const char *spw = getenv("DYLIVE_SENTINEL_PASSWORD");
  if (spw && *spw && set_pw(a->sentinel_password, sizeof a->sentinel_password, spw, "DYLIVE_SENTINEL_PASSWORD", why,
                            cap) != 0)
    return -1;
  if (a->password[0]) return 0; /* the URL's wins */
  const char *pw = getenv("DYLIVE_REDIS_PASSWORD"), *file = getenv("DYLIVE_REDIS_PASSWORD_FILE");
  if (pw && *pw) return set_pw(a->password, sizeof a->password, pw, "DYLIVE_REDIS_PASSWORD", why, cap);
  if (!file || !*file) return 0;
  FILE *f = fopen(file, "re");
  if (!f) return snprintf(why, cap, "DYLIVE_REDIS_PASSWORD_FILE: cannot read %s: %s", file, strerror(errno)), -1;
  char line[sizeof a->password + 2];
  if (!fgets(line, sizeof line, f)) line[0] = 0;
  fclose(f);
  line[strcspn(line, "\r\n")] = 0;
  return set_pw(a->password, sizeof a->password, line, "DYLIVE_REDIS_PASSWORD_FILE", why, cap);
}
