-- What a room listing shows of one room, for one user. KEYS: 1 room,
-- 2 members, 3 settings (as in order.lua). ARGV: 1 the user.
--
-- Returns {} when there is no such room, else {record, member count, the
-- user's member value or '', settings}.

local record = redis.call('HGET', KEYS[1], 'record')
if not record then
  return {}
end
return {
  record,
  redis.call('HLEN', KEYS[2]),
  redis.call('HGET', KEYS[2], ARGV[1]) or '',
  redis.call('LRANGE', KEYS[3], 0, -1),
}
