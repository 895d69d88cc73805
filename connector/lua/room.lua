#!lua
-- room.lua: one write of a room, fenced and in order (DESIGN §3, §7 "the stream is the record").
-- KEYS[1] P:{id}:lease  KEYS[2] P:{id}:status  KEYS[3] P:{id}:events
-- ARGV[1] token  ARGV[2] lease TTL (ms)  ARGV[3] sequence number  ARGV[4] force (1: accept a gap)
-- ARGV[5] MAXLEN (~)  ARGV[6] MINID (~, '' for none)  ARGV[7] release (1: give the lease up)
-- ARGV[8] with release: expire the room's keys after this many seconds (0: keep)
-- ARGV[9] n = how many status strings follow; ARGV[10 .. 9+n] status field, value, …
-- then per event: type, msg_id, ts_ms, json
-- Returns {code, written, desired}; codes in connector/lua/dl_lua.h: 0 applied, 1 applied before,
-- 2 out of order (predecessor missing), 3 fenced. desired is the status hash's `desired` field (''
-- when unset): the operator's wish reaches a busy room with its writes, no extra call.
--
-- Dedupe is the worker's job (its recent-msg_id window, refilled from this stream's tail when it
-- takes the room); here only what makes a write safe: the fence, the order, and atomicity. Redis
-- scripts are not transactions, so everything that can fail (a key of the wrong type) runs before
-- the commit (the wseq update): a failed write leaves no trace and is never "applied before".
local tok = ARGV[1]
local seq = tonumber(ARGV[3])
local w = redis.call('HGET', KEYS[2], 'wseq')
local last
if w then
  if string.sub(w, 1, #tok + 1) ~= tok .. '|' then return {3, 0} end
  last = tonumber(string.sub(w, #tok + 2))
else
  -- the status hash was deleted under us; the lease still says who owns the room
  if redis.call('GET', KEYS[1]) ~= tok then return {3, 0} end
  last = seq - 1
end
if seq <= last then return {1, 0} end
if seq ~= last + 1 and ARGV[4] ~= '1' then return {2, 0} end
local np = tonumber(ARGV[9])
local n = 0
for i = 10 + np, #ARGV, 4 do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
             'type', ARGV[i], 'msg_id', ARGV[i + 1], 'ts_ms', ARGV[i + 2], 'json', ARGV[i + 3])
  n = n + 1
end
if n > 0 and ARGV[6] ~= '' then redis.call('XTRIM', KEYS[3], 'MINID', '~', ARGV[6]) end
-- the commit
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[2], 'wseq', '-|' .. seq, unpack(ARGV, 10, 9 + np))
  redis.call('DEL', KEYS[1])
  local ttl = tonumber(ARGV[8])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[2], ttl)
    redis.call('EXPIRE', KEYS[3], ttl)
  end
else
  redis.call('HSET', KEYS[2], 'wseq', tok .. '|' .. seq, unpack(ARGV, 10, 9 + np))
  redis.call('SET', KEYS[1], tok, 'PX', ARGV[2])
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'events', n) end
return {0, n, redis.call('HGET', KEYS[2], 'desired') or ''}
