#!lua
-- renew.lua: keep rooms' leases alive, and read the operator's wish for each room, in one call per
-- --poll-ms for every idle room the worker holds (a room write renews the lease too, so busy rooms
-- are not in it). The worker groups the rooms of one Redis (of one slot on a Cluster).
-- KEYS, per room: P:{id}:lease  P:{id}:status   ARGV[1] lease TTL (ms)  ARGV[1 + i] room i's token
-- Returns one reply per room, in order: {1, desired} renewed (desired: the status hash's `desired`
-- field, '' when unset), {0, ''} fenced (another worker took the room; the caller gives it up), or
-- that room's error reply (a key of the wrong type fails its room only).
-- The fence is the status hash's wseq (see acquire.lua): if it still names our token nobody took
-- the room since, even if our lease key expired meanwhile (Redis was unreachable), so setting the
-- lease again is safe.
local function renew(lease, status, tok)
  local h = redis.call('HMGET', status, 'wseq', 'desired')
  local w = h[1]
  if w then
    if string.sub(w, 1, #tok + 1) ~= tok .. '|' then return {0, ''} end
  elseif redis.call('GET', lease) ~= tok then
    return {0, ''}
  end
  redis.call('SET', lease, tok, 'PX', ARGV[1])
  return {1, h[2] or ''}
end

local out = {}
for i = 1, #KEYS / 2 do
  local ok, res = pcall(renew, KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 1])
  if ok then
    out[i] = res
  else
    out[i] = {err = type(res) == 'table' and res.err or tostring(res)}
  end
end
return out
