#!lua
-- room.lua: fenced, ordered writes of one or more rooms in one call (DESIGN §3, §7 "the stream is
-- the record"). The writer groups the room writes it has ready into one call (one per Cluster
-- slot), so Redis pays the call, the argument table and the network once for many rooms.
-- KEYS, per room: P:{id}:lease  P:{id}:status  P:{id}:events
-- ARGV, per room: ten strings, then its np status strings, then its ne events:
--   token, lease TTL in ms ('0': this write leaves the lease's expiry alone: a recent write or
--   renewal refreshed it), sequence number, force (1: accept a gap), MAXLEN (~; '0': this write does
--   not trim, a recent one did), MINID (~, '' for none), release (1: give the lease up), with
--   release: expire the room's keys after this many
--   seconds (0: keep), np, ne; status strings: field, value, …; per event: type, msg_id, ts_ms, json
-- Returns one reply per room, in order: {code, written, desired}, or that room's error reply (a key
-- of the wrong type fails its room only). Codes in connector/lua/dl_lua.h: 0 applied, 1 applied
-- before, 2 out of order (predecessor missing), 3 fenced. desired is the status hash's `desired`
-- field ('' when unset): the operator's wish reaches a busy room with its writes, no extra call.
--
-- Dedupe is the worker's job (its recent-msg_id window, refilled from this stream's tail when it
-- takes the room); here only what makes a write safe: the fence, the order, and atomicity. Redis
-- scripts are not transactions, so everything that can fail (a key of the wrong type) runs before
-- the commit (the wseq update): a failed write leaves no trace and is never "applied before".
local function write(lease, status, events, a)
  local tok = ARGV[a]
  local seq = tonumber(ARGV[a + 2])
  local np, ne = tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9])
  local h = redis.call('HMGET', status, 'wseq', 'desired', 'events')
  local w = h[1]
  local last
  if w then
    if string.sub(w, 1, #tok + 1) ~= tok .. '|' then return {3, 0} end
    last = tonumber(string.sub(w, #tok + 2))
  else
    -- the status hash was deleted under us; the lease still says who owns the room
    if redis.call('GET', lease) ~= tok then return {3, 0} end
    last = seq - 1
  end
  if seq <= last then return {1, 0} end
  if seq ~= last + 1 and ARGV[a + 3] ~= '1' then return {2, 0} end
  local p = a + 10
  local e = p + np
  for i = e, e + 4 * ne - 1, 4 do
    redis.call('XADD', events, '*', 'type', ARGV[i], 'msg_id', ARGV[i + 1], 'ts_ms', ARGV[i + 2], 'json', ARGV[i + 3])
  end
  -- trimmed once per write, not per entry (a script is atomic: nobody sees the stream in between),
  -- and only by every few writes (the worker says when: '~' trims whole stream nodes anyway)
  if ne > 0 and ARGV[a + 4] ~= '0' then
    redis.call('XTRIM', events, 'MAXLEN', '~', ARGV[a + 4])
    if ARGV[a + 5] ~= '' then redis.call('XTRIM', events, 'MINID', '~', ARGV[a + 5]) end
  end
  -- the commit; the events count rides in it (read with the fence: one HSET, no HINCRBY; a count
  -- that is no whole number Lua holds exactly — 'x', 'inf', '-1', past 2^53 — starts again from
  -- this write's)
  local c = tonumber(h[3])
  if not c or c < 0 or c >= 9007199254740992 or c ~= math.floor(c) then c = 0 end
  local n = string.format('%d', c + ne)
  if ARGV[a + 6] == '1' then
    redis.call('HSET', status, 'wseq', '-|' .. seq, 'events', n, unpack(ARGV, p, e - 1))
    redis.call('DEL', lease)
    local ttl = tonumber(ARGV[a + 7])
    if ttl > 0 then
      redis.call('EXPIRE', status, ttl)
      redis.call('EXPIRE', events, ttl)
    end
  else
    redis.call('HSET', status, 'wseq', tok .. '|' .. seq, 'events', n, unpack(ARGV, p, e - 1))
    if ARGV[a + 1] ~= '0' then redis.call('SET', lease, tok, 'PX', ARGV[a + 1]) end
  end
  return {0, ne, h[2] or ''}
end

local out = {}
local a = 1
for k = 1, #KEYS, 3 do
  local ok, res = pcall(write, KEYS[k], KEYS[k + 1], KEYS[k + 2], a)
  if ok then
    out[#out + 1] = res
  else -- this room's error only (Redis's own "WRONGTYPE …", or a script error)
    out[#out + 1] = {err = type(res) == 'table' and res.err or tostring(res)}
  end
  a = a + 10 + tonumber(ARGV[a + 8]) + 4 * tonumber(ARGV[a + 9])
end
return out
