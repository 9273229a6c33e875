-- Orders one event of a room, atomically: the room's order lives here, not on
-- any node. Creates the room first when ARGV[1] is 'create'.
--
-- KEYS: 1 room (hash: record, epoch, cap, head, last_ts), 2 members (hash:
-- user -> "rank:joined_at:expires"), 3 pins (hash: id -> note), 4 log (stream,
-- id "<seq>-0"), 5 cmids (hash: "user\ncmid" -> "seq:ts"), 6 cmid queue (list,
-- oldest first), 7 settings (list of room_updated settings), 8 the room's
-- sharded channel. All hash to the room's slot.
--
-- ARGV: 1 mode, 2 epoch, 3 now (ms), 4 actor, 5 cmid or '', 6 cmid window,
-- 7 most events kept, 8 oldest ts kept (0: no age cap), 9 event template,
-- 10 record (create), 11 cap (create), 12-15 requirement (kind, user, rank,
-- most pins), 16.. changes, three arguments each (op, a, b).
--
-- The template is the event's MessagePack with the seq and the time written as
-- two sentinel uint64s, which this script replaces by the real ones. The
-- sentinels start with 0xcf 0x00, which no UTF-8 text contains.
--
-- Returns {'ok', seq, ts} or {'dup', seq, ts}, or a refusal: {'no_room'},
-- {'exists'}, {'epoch', current}, {'not_member'}, {'already_member'},
-- {'full', cap}, {'forbidden', least, held}, {'pins_full', most}.

local SEQ_MARK = '\207\000\031\238\094\154\017\195\113'
local TS_MARK = '\207\000\031\238\094\154\017\195\114'

local room, members, pins, log, cmids, cmidq, settings, channel =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local mode, epoch, now, actor, cmid = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]

local function uint64(n)
  local bytes = {}
  for i = 8, 1, -1 do
    bytes[i] = n % 256
    n = math.floor(n / 256)
  end
  return string.char(207, unpack(bytes))
end

local function decimal(n)
  return string.format('%.0f', n)
end

-- The template with every sentinel replaced.
local function fill(template, seq_bytes, ts_bytes)
  local parts, from = {}, 1
  while true do
    local s = string.find(template, SEQ_MARK, from, true)
    local t = string.find(template, TS_MARK, from, true)
    local at, with
    if s and (not t or s < t) then
      at, with = s, seq_bytes
    elseif t then
      at, with = t, ts_bytes
    else
      break
    end
    parts[#parts + 1] = string.sub(template, from, at - 1)
    parts[#parts + 1] = with
    from = at + 9
  end
  parts[#parts + 1] = string.sub(template, from)
  return table.concat(parts)
end

local head, last_ts, cap
if mode == 'create' then
  if redis.call('EXISTS', room) == 1 then
    return {'exists'}
  end
  head, last_ts, cap = 0, now, tonumber(ARGV[11])
  redis.call('HSET', room, 'record', ARGV[10], 'epoch', epoch, 'cap', ARGV[11], 'head', 0, 'last_ts', ARGV[3])
else
  local meta = redis.call('HMGET', room, 'epoch', 'head', 'last_ts', 'cap')
  if not meta[1] then
    return {'no_room'}
  end
  if meta[1] ~= epoch then
    return {'epoch', meta[1]}
  end
  head, last_ts, cap = tonumber(meta[2]), tonumber(meta[3]), tonumber(meta[4])
end

local cmid_key
if cmid ~= '' then
  cmid_key = actor .. '\n' .. cmid
  local seen = redis.call('HGET', cmids, cmid_key)
  if seen then
    local colon = string.find(seen, ':', 1, true)
    return {'dup', tonumber(string.sub(seen, 1, colon - 1)), tonumber(string.sub(seen, colon + 1))}
  end
end

local kind, who = ARGV[12], ARGV[13]
if kind == 'member' or kind == 'role' or kind == 'pin' then
  local held = redis.call('HGET', members, who)
  if not held then
    return {'not_member'}
  end
  local rank = tonumber(string.sub(held, 1, string.find(held, ':', 1, true) - 1))
  if (kind == 'role' or kind == 'pin') and rank < tonumber(ARGV[14]) then
    return {'forbidden', tonumber(ARGV[14]), rank}
  end
  if kind == 'pin' and redis.call('HLEN', pins) >= tonumber(ARGV[15]) then
    return {'pins_full', tonumber(ARGV[15])}
  end
elseif kind == 'admit' then
  if redis.call('HEXISTS', members, who) == 1 then
    return {'already_member'}
  end
  if redis.call('HLEN', members) >= cap then
    return {'full', cap}
  end
end

local seq = head + 1
local ts = math.max(now, last_ts)
local seq_bytes, ts_bytes = uint64(seq), uint64(ts)
local body = fill(ARGV[9], seq_bytes, ts_bytes)

for i = 16, #ARGV, 3 do
  local op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'join' then
    redis.call('HSET', members, a, b .. ':' .. decimal(ts) .. ':')
  elseif op == 'leave' then
    redis.call('HDEL', members, a)
  elseif op == 'pin' then
    redis.call('HSET', pins, decimal(seq), fill(b, seq_bytes, ts_bytes))
  elseif op == 'unpin' then
    redis.call('HDEL', pins, a)
  elseif op == 'settings' then
    redis.call('RPUSH', settings, b)
    if a ~= '' then
      redis.call('HSET', room, 'cap', a)
    end
  end
end

redis.call('XADD', log, 'MAXLEN', '~', ARGV[7], decimal(seq) .. '-0', 'b', body, 't', decimal(ts))
local oldest_kept = tonumber(ARGV[8])
if oldest_kept > 0 then
  -- Trims by age a few entries at a time: the cost per event stays constant.
  local old = redis.call('XRANGE', log, '-', '+', 'COUNT', 8)
  local keep_from
  for _, entry in ipairs(old) do
    local fields = entry[2]
    if tonumber(fields[4]) < oldest_kept then
      keep_from = tonumber(string.sub(entry[1], 1, string.find(entry[1], '-', 1, true) - 1)) + 1
    end
  end
  if keep_from then
    redis.call('XTRIM', log, 'MINID', decimal(keep_from) .. '-0')
  end
end

redis.call('HSET', room, 'head', decimal(seq), 'last_ts', decimal(ts))
if cmid_key then
  redis.call('HSET', cmids, cmid_key, decimal(seq) .. ':' .. decimal(ts))
  redis.call('RPUSH', cmidq, cmid_key)
  if redis.call('LLEN', cmidq) > tonumber(ARGV[6]) then
    redis.call('HDEL', cmids, redis.call('LPOP', cmidq))
  end
end
redis.call('SPUBLISH', channel, body)
return {'ok', seq, ts}
