#!lua
-- renew.lua: keep a room's lease alive, and read the operator's wish for the room, in one call
-- per room per --poll-ms (a room write renews the lease too).
-- KEYS[1] P:{id}:lease  KEYS[2] P:{id}:status  ARGV[1] token  ARGV[2] lease TTL (ms)
-- Returns {1, desired} renewed (desired: the status hash's `desired` field, '' when unset),
-- {0, ''} fenced (another worker took the room; the caller gives it up).
-- The fence is the status hash's wseq (see acquire.lua): if it still names our token nobody took
-- the room since, even if our lease key expired meanwhile (Redis was unreachable), so setting the
-- lease again is safe.
local tok = ARGV[1]
local w = redis.call('HGET', KEYS[2], 'wseq')
if w then
  if string.sub(w, 1, #tok + 1) ~= tok .. '|' then return {0, ''} end
elseif redis.call('GET', KEYS[1]) ~= tok then
  return {0, ''}
end
redis.call('SET', KEYS[1], tok, 'PX', ARGV[2])
return {1, redis.call('HGET', KEYS[2], 'desired') or ''}
