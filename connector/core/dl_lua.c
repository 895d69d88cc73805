/* The SHA1 of each embedded script, for EVALSHA (computed once at start-up). */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "dl_lua.h"
#include "dl_lua_sha.h"

void dl_lua_sha1(dl_lua_script s, char out[41]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  const char *src = dl_lua_source[s];
  EVP_Digest(src, strlen(src), d, &n, EVP_sha1(), NULL);
  for (unsigned i = 0; i < 20 && i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
  out[40] = 0;
}
