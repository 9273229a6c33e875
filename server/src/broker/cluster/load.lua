-- Reads a room as one snapshot: its record and settings, members, pins, head and
-- newest events. KEYS: 1 room, 2 members, 3 pins, 4 log, 5 settings, 6 rows
-- (as in order.lua). ARGV: 1 how many recent events.
--
-- Returns {} when there is no such room, else {record, epoch, head, last_ts,
-- settings, members, pins, recent, rows}: settings a list of blobs, members,
-- pins and rows flat field/value lists, recent a flat seq/body list, oldest
-- first.

local meta = redis.call('HMGET', KEYS[1], 'record', 'epoch', 'head', 'last_ts')
if not meta[1] then
  return {}
end
local recent = {}
local want = tonumber(ARGV[1])
if want > 0 then
  local newest = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', want)
  for i = #newest, 1, -1 do
    local id, fields = newest[i][1], newest[i][2]
    recent[#recent + 1] = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
    recent[#recent + 1] = fields[2]
  end
end
return {
  meta[1], meta[2], meta[3], meta[4],
  redis.call('LRANGE', KEYS[5], 0, -1),
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]),
  recent,
  redis.call('HGETALL', KEYS[6]),
}
