-- Counts a room toward its owner's limit, unless the owner is at it.
-- KEYS: 1 the owner's count. ARGV: 1 the limit.
-- Returns 1 when counted, 0 when the owner is at the limit.

local owned = tonumber(redis.call('GET', KEYS[1]) or '0')
if owned >= tonumber(ARGV[1]) then
  return 0
end
redis.call('INCR', KEYS[1])
return 1
