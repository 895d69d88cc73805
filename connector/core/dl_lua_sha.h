/* dl_lua_sha — the EVALSHA digest of an embedded script (dl_lua.h). */
#ifndef DL_LUA_SHA_H
#define DL_LUA_SHA_H

#include "dl_lua.h"

void dl_lua_sha1(dl_lua_script s, char out[41]);

#endif
