/* dl_lua — the Lua scripts of the write path (connector/lua/<name>.lua, embedded at build time) and
 * the codes they return. The scripts are source files so they can be read, reviewed and tested
 * against a real redis-server on their own (tests/lua/). Every room script touches only keys of
 * one room (one hash tag), every pool script only keys in P:assign's slot: valid on Cluster.
 *
 * room.lua returns {code, written}; the codes are named here and nowhere else. */
#ifndef DL_LUA_H
#define DL_LUA_H

#define DL_LUA_OK 0      /* applied now; written = events appended */
#define DL_LUA_APPLIED 1 /* this sequence number was applied before (a re-send): nothing done */
#define DL_LUA_GAP 2     /* the previous sequence number never arrived: nothing done */
#define DL_LUA_FENCED 3  /* the room belongs to another lease: nothing done */

typedef enum {
  DL_LUA_ACQUIRE, /* take a room's lease: KEYS lease epoch status events; ARGV worker ttl → {1, token} | {0, holder} */
  DL_LUA_ROOM,    /* a fenced, ordered room write (see room.lua) */
  DL_LUA_RENEW,   /* keep a lease: KEYS lease status; ARGV token ttl → {1, desired} | {0, ""} (fenced) */
  DL_LUA_REQUEUE, /* a dead worker's claims back to the head of P:assign: KEYS claims assign → n */
  DL_LUA_ORPHAN,  /* a dead worker's spooled events, deduplicated against the stream's tail */
  DL_LUA__COUNT
} dl_lua_script;

/* The script sources (generated from connector/lua/<name>.lua at build time). */
extern const char *const dl_lua_source[DL_LUA__COUNT];

#endif
