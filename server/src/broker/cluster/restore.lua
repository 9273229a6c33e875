-- Makes a room again from a node's copy, after Redis lost it (restarted
-- empty): same members, pins and settings, a new epoch, and the seq going on
-- from the node's head, so no position is ever reused. The first node to get
-- here wins; the others load what it made.
--
-- KEYS: 1 room, 2 members, 3 pins, 4 rows (as in order.lua). ARGV: 1 record,
-- 2 epoch, 3 cap, 4 head, 5 last_ts, 6 how many members, 7 how many pins,
-- then user/value pairs, then pin id/note pairs, then row field/value pairs.
-- Returns 1 if this call made it, 0 if it existed.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'epoch', ARGV[2], 'cap', ARGV[3], 'head', ARGV[4], 'last_ts', ARGV[5])
local i = 8
for _ = 1, tonumber(ARGV[6]) do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, tonumber(ARGV[7]) do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  if string.sub(ARGV[i], 1, 8) == 'request\31' then
    redis.call('HINCRBY', KEYS[1], 'requests', 1)
  end
  i = i + 2
end
return 1
