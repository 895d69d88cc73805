#!lua
-- requeue.lua: a dead worker's claims go back to the head of the assignment list, where the next
-- BLMOVE takes them first. Idempotent: any worker may run it for any dead worker.
-- KEYS[1] P:claims:<dead worker>:{P:assign}  KEYS[2] P:assign   Returns how many moved.
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT') do n = n + 1 end
return n
