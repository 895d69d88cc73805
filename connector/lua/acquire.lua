#!lua
-- acquire.lua: take a room's lease (DESIGN §3: a lease with a fencing token).
-- KEYS[1] P:{id}:lease  KEYS[2] P:{id}:epoch  KEYS[3] P:{id}:status  KEYS[4] P:{id}:events
-- ARGV[1] worker id  ARGV[2] lease TTL (ms)
-- Returns {1, token} when taken, {0, holder} when another worker holds it.
--
-- The token "<worker> <epoch>" never repeats (the epoch only grows), and it is also written into
-- the status hash as wseq = "<token>|0": every room write checks wseq first, so from this moment
-- on any write still in flight from a previous owner is refused (fenced). A lease still held by
-- this same worker id is a previous incarnation's (ids repeat across restarts with --worker-id):
-- it is taken over with a new token.
redis.call('HLEN', KEYS[3]) -- fails first (writing nothing) if the status key is no hash
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then
  return {0, cur}
end
local tok = ARGV[1] .. ' ' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], tok, 'PX', ARGV[2])
redis.call('HSET', KEYS[3], 'wseq', tok .. '|0')
-- a room captured again keeps its history: cancel the expiry of an earlier end (--ended-ttl)
redis.call('PERSIST', KEYS[3])
redis.call('PERSIST', KEYS[4])
return {1, tok}
