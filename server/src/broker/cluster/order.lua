-- Orders one event of a room, atomically: the room's order lives here, not on
-- any node. Creates the room first when ARGV[1] is 'create'.
--
-- KEYS: 1 room (hash: record, epoch, cap, head, last_ts, rules: the seq of
-- the last event that changed the settings, the pins or a role, or warned
-- a member, standing:
-- the seq of the last that took a member's right to post — a leave, a
-- mute), 2 members (hash: user -> "rank:joined_at:expires"), 3 pins (hash: id -> note), 4 log (stream,
-- id "<seq>-0"), 5 and 14 the client message ids of the room's two latest
-- generations (hashes: "user\ncmid" -> "seq:ts"), 6 the cmid list of earlier
-- versions, deleted when a room first counts its cmids, 7 settings (list of
-- room_updated settings), 8 the room's sharded channel, 9 rows (hash: "table\31key" -> MessagePack; room::rows),
-- 10 the moderation log (stream, id "<seq>-0", field v), 11 when members
-- in slow mode last posted (hash: user -> ts), 12 the annotations of the
-- message the event is about (hash, `room::rows` AnnexTable::Message), 13 the
-- seqs of annotated messages (sorted set, score = seq). All hash to the
-- room's slot.
--
-- Client message ids are remembered in generations of ARGV[6] (the window):
-- the room hash's `cmids` counts them, the Nth goes to generation
-- floor(N / window), whose hash is KEYS[5] or KEYS[14] by its parity, and a
-- generation's first id empties the hash of the one two before. So a room
-- remembers its last window to 2 x window ids, for three commands per event
-- (two HGETs, one HSET) however full the window is, and one DEL a window.
--
-- ARGV: 1 mode, 2 epoch, 3 now (ms), 4 actor, 5 cmid or '', 6 cmid window,
-- 7 most events kept, 8 oldest ts kept (0: no age cap), 9 event template
-- (its part before the seq sentinel when 17 is not empty), 10 record
-- (create), 11 cap (create), 12-15 requirement (kind, user, least rank,
-- and most pins, the target user or a post's slow mode in ms), 16 the head
-- of the node's copy the event was decided on ('' when not decided on a
-- copy), 17 the template's part between its seq and time sentinels, or ''
-- when 9 is the whole template, 18 its part after the time sentinel, 19..
-- changes, three arguments each (op, a, b).
--
-- An event decided on a copy from before the room's rules last changed
-- (ARGV[16] below `rules`) is refused, and the node decides it again once
-- caught up. A post decided on a copy that had applied the room's last
-- change of standing (ARGV[16] at or past `standing`) was decided on the
-- membership and mutes the room still has: the script does not read them
-- again.
--
-- Roles are the ones in force at the event's time: a role given until a time
-- counts as member (rank 0) from then on, the owner's never ends.
--
-- The template is the event's MessagePack with the seq and the time written as
-- two sentinel uint64s, which this script replaces by the real ones. The
-- sentinels start with 0xcf 0x00, which no UTF-8 text contains.
--
-- Returns {'ok', seq, ts} or {'dup', seq, ts}, or a refusal: {'no_room'},
-- {'exists'}, {'epoch', current}, {'not_member'}, {'already_member'},
-- {'full', cap}, {'forbidden', least, held}, {'pins_full', most},
-- {'banned'}, {'muted'}, {'slow', retry_ms}, {'outranked', held, target},
-- {'invalid_invite'}, {'no_request'}, {'requests_full', most},
-- {'rules_changed'}: an event decided on a node's copy of the room that had
-- not yet applied the last change of its settings, pins, roles or warnings
-- (ARGV[16], the copy's head, is below the room's `rules`); the node
-- decides it again once caught up.
--
-- Requirement kinds: member, post, role, pin, over, admit, admit_invite (ARGV[15]
-- the invite id), approve and decide (ARGV[13] the welcomer, ARGV[15] the
-- requester), request (ARGV[15] the most pending requests), release
-- (ARGV[13] the moderator, ARGV[15] the held post's author). The room hash's
-- `requests` field counts the pending requests (rows of table `request`).

local SEQ_MARK = '\207\000\031\238\094\154\017\195\113'
-- The same seq sentinel as annotation keys write it: 20 decimal digits.
local SEQ_KEY_MARK = '00008987814357222257'
local TS_MARK = '\207\000\031\238\094\154\017\195\114'

-- Both sentinels but their last byte (113 the seq's, 114 the time's).
local MARK = string.sub(SEQ_MARK, 1, 8)

-- No function is made on a post's way through this script. Lua 5.1 makes
-- every function a script defines again on each call (a closure, and a box
-- for each local it captures): the eight a post used to make cost it about
-- 0.1 µs each, and it called none but two one-liners. So the checks that
-- read the room's members and rows are made only for events that run them,
-- and the seq and the time are formatted in place.

local room, members, pins, log, cmids, cmidq, settings, channel, rows, modlog, last_post =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local mode, epoch, now, actor, cmid = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]

local head, last_ts, cap, rules_at, standing_at, cmids_counted = 0, 0, 0, 0, 0, nil
-- The last time as the room hash holds it: the event's own when it is
-- the later, so the script formats no time (a format costs 0.3 µs).
local last_ts_text = ARGV[3]
if mode == 'create' then
  if redis.call('EXISTS', room) == 1 then
    return {'exists'}
  end
  head, last_ts, cap = 0, now, tonumber(ARGV[11])
  redis.call('HSET', room, 'record', ARGV[10], 'epoch', epoch, 'cap', ARGV[11], 'head', 0, 'last_ts', ARGV[3])
else
  local meta = redis.call('HMGET', room, 'epoch', 'head', 'last_ts', 'cap', 'rules', 'cmids', 'standing')
  if not meta[1] then
    return {'no_room'}
  end
  if meta[1] ~= epoch then
    return {'epoch', meta[1]}
  end
  head, last_ts, cap, rules_at = tonumber(meta[2]), tonumber(meta[3]), tonumber(meta[4]), tonumber(meta[5] or '0')
  cmids_counted = tonumber(meta[6])
  standing_at = tonumber(meta[7] or '0')
  last_ts_text = meta[3]
end

local cmid_key, cmid_window
if cmid ~= '' then
  cmid_key = actor .. '\n' .. cmid
  cmid_window = tonumber(ARGV[6])
  local current, previous = KEYS[5], KEYS[14]
  if math.floor((cmids_counted or 0) / cmid_window) % 2 == 1 then
    current, previous = KEYS[14], KEYS[5]
  end
  local seen = redis.call('HGET', current, cmid_key) or redis.call('HGET', previous, cmid_key)
  if seen then
    local colon = string.find(seen, ':', 1, true)
    return {'dup', tonumber(string.sub(seen, 1, colon - 1)), tonumber(string.sub(seen, colon + 1))}
  end
  cmids = current
end

-- The head of the node's copy the event was decided on; nil when it was not.
local decided_at = ARGV[16] ~= '' and tonumber(ARGV[16]) or nil
if decided_at and rules_at > decided_at then
  return {'rules_changed'}
end

local ts = math.max(now, last_ts)

-- A post's slow mode (ms); nil for any other requirement.
local kind, who, slow_ms = ARGV[12], ARGV[13], nil
-- A post decided on a copy at or past the room's `standing` was decided on
-- the membership and mutes the room still has: nothing to read again.
if not (kind == 'post' and decided_at and standing_at <= decided_at) then
  -- A member's rank in force at the event's time, or nil for a non-member.
  local function rank_of(user)
    local held = redis.call('HGET', members, user)
    if not held then
      return nil
    end
    local first = string.find(held, ':', 1, true)
    local rank = tonumber(string.sub(held, 1, first - 1))
    local expires = string.sub(held, string.find(held, ':', first + 1, true) + 1)
    if expires ~= '' and tonumber(expires) <= ts and rank < 3 then
      return 0
    end
    return rank
  end

  -- Whether the user's ban or mute (a row of `table`) is in force.
  local function sanctioned(table, user)
    local row = redis.call('HGET', rows, table .. '\31' .. user)
    if not row then
      return false
    end
    local sanction = cmsgpack.unpack(row)
    return sanction['until'] == nil or sanction['until'] > ts
  end

  -- Why `user` may not ask to join, or nil: a member already, or banned.
  local function refuse_stranger(user)
    if redis.call('HEXISTS', members, user) == 1 then
      return {'already_member'}
    end
    if sanctioned('ban', user) then
      return {'banned'}
    end
    return nil
  end

  -- Why `user` may not become a member now, or nil.
  local function refuse_admit(user)
    local refusal = refuse_stranger(user)
    if refusal then
      return refusal
    end
    if redis.call('HLEN', members) >= cap then
      return {'full', cap}
    end
    return nil
  end

  if kind == 'approve' or kind == 'decide' then
    local rank = rank_of(who)
    if not rank then
      return {'not_member'}
    end
    if rank < 1 then
      return {'forbidden', 1, rank}
    end
    if redis.call('HEXISTS', rows, 'request\31' .. ARGV[15]) == 0 then
      return {'no_request'}
    end
    if kind == 'approve' then
      local refusal = refuse_admit(ARGV[15])
      if refusal then
        return refusal
      end
    end
  elseif kind == 'admit_invite' then
    local row = redis.call('HGET', rows, 'invite\31' .. ARGV[15])
    if not row then
      return {'invalid_invite'}
    end
    local invite = cmsgpack.unpack(row)
    if (invite['expires_at'] and invite['expires_at'] <= ts) or (invite['max_uses'] and invite['uses'] >= invite['max_uses']) then
      return {'invalid_invite'}
    end
    local refusal = refuse_admit(who)
    if refusal then
      return refusal
    end
  elseif kind == 'request' then
    local refusal = refuse_stranger(who)
    if refusal then
      return refusal
    end
    local pending = tonumber(redis.call('HGET', room, 'requests') or '0')
    if redis.call('HEXISTS', rows, 'request\31' .. who) == 0 and pending >= tonumber(ARGV[15]) then
      return {'requests_full', tonumber(ARGV[15])}
    end
  elseif kind == 'post' then
    if not rank_of(who) then
      return {'not_member'}
    end
    if sanctioned('mute', who) then
      return {'muted'}
    end
  elseif kind == 'member' or kind == 'role' or kind == 'pin' or kind == 'over' or kind == 'release' then
    local least, rank = tonumber(ARGV[14]), rank_of(who)
    if not rank then
      return {'not_member'}
    end
    if kind ~= 'member' and rank < least then
      return {'forbidden', least, rank}
    end
    if kind == 'release' and not rank_of(ARGV[15]) then
      return {'not_member'}
    end
    if kind == 'pin' and redis.call('HLEN', pins) >= tonumber(ARGV[15]) then
      return {'pins_full', tonumber(ARGV[15])}
    end
    if kind == 'over' then
      local target = rank_of(ARGV[15])
      if target and target >= rank then
        return {'outranked', rank, target}
      end
    end
  elseif kind == 'admit' then
    local refusal = refuse_admit(who)
    if refusal then
      return refusal
    end
  end
end

if kind == 'post' then
  slow_ms = tonumber(ARGV[15])
  if slow_ms > 0 then
    local last = tonumber(redis.call('HGET', last_post, who) or '0')
    local next = last + slow_ms
    if last > 0 and next > ts then
      return {'slow', next - ts}
    end
  end
end

local seq = head + 1
-- MessagePack uint64s (0xcf, 8 bytes big-endian) by `struct`, in C: the
-- same bytes by a Lua loop cost a script call several microseconds.
local seq_bytes, ts_bytes = struct.pack('>BL', 207, seq), struct.pack('>BL', 207, ts)
-- Formatted once: each format costs a script call more than a command does.
local seq_text, ts_text = string.format('%.0f', seq), ts == now and ARGV[3] or last_ts_text

-- The template with every sentinel replaced, for a template the node could
-- not cut and for rows the event writes; made only for those events. Built
-- by concatenation, not a table of parts: an event has two sentinels, and
-- the table made filling one cost half as much again (1.3 µs against 0.9).
local fill
if ARGV[17] == '' or #ARGV >= 19 then
  fill = function(template)
    local filled, from, at = '', 1, string.find(template, MARK, 1, true)
    while at do
      local which = string.byte(template, at + 8)
      if which == 113 or which == 114 then
        filled = filled .. string.sub(template, from, at - 1) .. (which == 113 and seq_bytes or ts_bytes)
        from = at + 9
        at = string.find(template, MARK, from, true)
      else
        at = string.find(template, MARK, at + 1, true)
      end
    end
    if from == 1 then
      return template
    end
    return filled .. string.sub(template, from)
  end
end

-- Joined in one concatenation when the node cut the template at its
-- sentinels: each string made here is hashed byte by byte, and searching and
-- cutting made the event's bytes four times over.
local body
if ARGV[17] ~= '' then
  body = ARGV[9] .. seq_bytes .. ARGV[17] .. ts_bytes .. ARGV[18]
else
  body = fill(ARGV[9])
end

local annotates, rules_changed, standing_changed = false, false, false
for i = 19, #ARGV, 3 do
  local op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- A role is among the rules: a read-only room, slow mode and the word
  -- filter ask who is a moderator, so a post decided on a copy from before
  -- a demotion is decided again.
  if op == 'pin' or op == 'unpin' or op == 'settings' or op == 'role' then
    rules_changed = true
  elseif (op == 'put' or op == 'del') and string.sub(a, 1, 8) == 'warning\31' then
    -- A warning's escalation counts the member's warnings: one decided on
    -- a copy from before a warning was given or lifted is decided again.
    rules_changed = true
  elseif op == 'leave' or (op == 'put' and string.sub(a, 1, 5) == 'mute\31') then
    standing_changed = true
  end
  if op == 'join' then
    redis.call('HSET', members, a, b .. ':' .. ts_text .. ':')
  elseif op == 'leave' then
    redis.call('HDEL', members, a)
    redis.call('HDEL', last_post, a)
  elseif op == 'pin' then
    redis.call('HSET', pins, seq_text, fill(b))
  elseif op == 'unpin' then
    redis.call('HDEL', pins, a)
  elseif op == 'settings' then
    redis.call('RPUSH', settings, b)
    if a ~= '' then
      redis.call('HSET', room, 'cap', a)
    end
  elseif op == 'role' then
    -- b is "rank:expires"; when the member joined stays.
    local held = redis.call('HGET', members, a)
    if held then
      local first = string.find(held, ':', 1, true)
      local joined = string.sub(held, first + 1, string.find(held, ':', first + 1, true) - 1)
      local colon = string.find(b, ':', 1, true)
      redis.call('HSET', members, a, string.sub(b, 1, colon - 1) .. ':' .. joined .. ':' .. string.sub(b, colon + 1))
    end
  elseif op == 'put' then
    -- Rows keyed by the event's own seq (a report, a warning) carry the seq
    -- sentinel in their key; only those tables' keys are rewritten, so no
    -- member's text in another key (a client message id) can be.
    if string.sub(a, 1, 7) == 'report\31' or string.sub(a, 1, 8) == 'warning\31' then
      a = (string.gsub(a, SEQ_KEY_MARK, string.format('%020.0f', seq)))
    end
    if redis.call('HSET', rows, a, fill(b)) == 1 and string.sub(a, 1, 8) == 'request\31' then
      redis.call('HINCRBY', room, 'requests', 1)
    end
  elseif op == 'del' then
    if redis.call('HDEL', rows, a) == 1 and string.sub(a, 1, 8) == 'request\31' then
      redis.call('HINCRBY', room, 'requests', -1)
    end
  elseif op == 'mput' then
    annotates = true
    local key = string.gsub(a, SEQ_KEY_MARK, string.format('%020.0f', seq))
    redis.call('HSET', KEYS[12], key, fill(b))
  elseif op == 'mdel' then
    redis.call('HDEL', KEYS[12], a)
  elseif op == 'mputat' or op == 'mdelat' then
    -- An erasure's: a is "target key", the message's hash named like KEYS[12].
    local space = string.find(a, ' ', 1, true)
    local target, field = string.sub(a, 1, space - 1), string.sub(a, space + 1)
    local hash = string.sub(KEYS[12], 1, #KEYS[12] - #string.match(KEYS[12], '(%d+)$')) .. target
    if op == 'mputat' then
      redis.call('HSET', hash, field, fill(b))
      redis.call('ZADD', KEYS[13], tonumber(target), target)
    else
      redis.call('HDEL', hash, field)
    end
  elseif op == 'useinvite' then
    local row = redis.call('HGET', rows, a)
    if row then
      local invite = cmsgpack.unpack(row)
      invite['uses'] = invite['uses'] + 1
      redis.call('HSET', rows, a, cmsgpack.pack(invite))
    end
  elseif op == 'pintext' then
    -- The pins of message a show its text now: b after an edit, the
    -- placeholder after its deletion (b empty). A room has a few pins.
    local message, pinned = tonumber(a), redis.call('HGETALL', pins)
    for j = 1, #pinned, 2 do
      local note = cmsgpack.unpack(pinned[j + 1])
      if note['seq'] == message then
        if b == '' then
          note['text'] = '(deleted)'
          note['deleted'] = true
        else
          note['text'] = b
        end
        redis.call('HSET', pins, pinned[j], cmsgpack.pack(note))
      end
    end
  elseif op == 'modlog' then
    redis.call('XADD', modlog, seq_text .. '-0', 'v', fill(b))
  end
end

-- The entry's id is the seq: an id given as one number is "<number>-0".
redis.call('XADD', log, 'MAXLEN', '~', ARGV[7], seq_text, 'b', body, 't', ts_text)
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
    redis.call('XTRIM', log, 'MINID', string.format('%.0f', keep_from) .. '-0')
  end
end

if annotates then
  -- A message's annotations leave with the message: an annotating event (rare
  -- next to posts) deletes those of up to two messages already trimmed from
  -- history, so they can never pile up beyond the messages history holds.
  local target = tonumber(string.match(KEYS[12], ':msg:(%d+)$'))
  redis.call('ZADD', KEYS[13], target, string.format('%.0f', target))
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  local oldest = tonumber(string.sub(first[1], 1, string.find(first[1], '-', 1, true) - 1))
  local prefix = string.sub(KEYS[12], 1, #KEYS[12] - #string.match(KEYS[12], '(%d+)$'))
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[13], '-inf', '(' .. string.format('%.0f', oldest), 'LIMIT', 0, 2)) do
    redis.call('DEL', prefix .. gone)
    redis.call('ZREM', KEYS[13], gone)
  end
end

if cmid_key then
  local counted = cmids_counted or 0
  if cmids_counted == nil then
    -- The first count of this room's cmids: the list earlier versions kept
    -- goes (the hash it indexed is generation 0's, and stays).
    redis.call('DEL', cmidq)
  elseif counted % cmid_window == 0 then
    -- A new generation: its hash held the one two before.
    redis.call('DEL', cmids)
  end
  redis.call('HSET', cmids, cmid_key, seq_text .. ':' .. ts_text)
  redis.call('HSET', room, 'head', seq_text, 'last_ts', ts_text, 'cmids', string.format('%.0f', counted + 1))
else
  redis.call('HSET', room, 'head', seq_text, 'last_ts', ts_text)
end
if rules_changed then
  redis.call('HSET', room, 'rules', seq_text)
end
if standing_changed then
  redis.call('HSET', room, 'standing', seq_text)
end
if slow_ms and slow_ms > 0 then
  redis.call('HSET', last_post, who, ts_text)
end
redis.call('SPUBLISH', channel, body)
return {'ok', seq, ts}
