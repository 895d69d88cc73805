#!lua
-- orphan.lua: the events a worker spooled and never wrote before it died, replayed by its
-- successor (a worker started with the same --spool-dir). The room may belong to another worker
-- by now, which never received these messages unless Douyin re-pushed them: an event is appended
-- only when its msg_id is not among the stream's last ARGV[1] entries. Such entries carry
-- replayed=1 (they arrive after newer ones).
-- KEYS[1] P:{id}:events  KEYS[2] P:{id}:status  ARGV[1] window  ARGV[2] MAXLEN (~)
-- then per event: type, msg_id, ts_ms, json.   Returns {written, duplicates}.
local seen = {}
for _, e in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'msg_id' then seen[f[i + 1]] = true end
  end
end
local n, d = 0, 0
for i = 3, #ARGV, 4 do
  local id = ARGV[i + 1]
  if id ~= '0' and seen[id] then
    d = d + 1
  else
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'type', ARGV[i], 'msg_id', id,
               'ts_ms', ARGV[i + 2], 'json', ARGV[i + 3], 'replayed', '1')
    seen[id] = true
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'events', n) end
return {n, d}
