#!lua name=livecart_rooms_v1
--[[
Room events: one Redis Function per step, every key of one room (hash tag {room:ID}) in KEYS.

  KEYS[1] meta   hash: ver (state version), seq (last event number), status
  KEYS[2] state  string: the room state as JSON, written only through lc_room_commit
  KEYS[3] log    stream capped near ARGV maxlen: entry "<seq>-0" with field p = event JSON

Sequence numbers are given here, inside Redis, so every node sees one order: an event is numbered,
logged and published in one step, and SPUBLISH order is log order. The channel (ARGV) shares
the room's hash tag: a sharded channel must live in the slot of the Function's keys.
]]

-- '{"type":...}' becomes '{"seq":N,"type":...}': the number goes in without re-encoding.
local function append(K, channel, maxlen, event)
  local seq = redis.call('HINCRBY', K[1], 'seq', 1)
  local payload = '{"seq":' .. seq .. ',' .. string.sub(event, 2)
  redis.call('XADD', K[3], 'MAXLEN', '~', maxlen, seq .. '-0', 'p', payload)
  redis.call('SPUBLISH', channel, seq .. ' ' .. payload)
  return seq
end

-- A creator's change: write the new state if nobody changed it since `expected` (the version
-- the caller read), then append its events. ARGV: expected, state, status, channel, maxlen,
-- events... Returns {"ok", version, last seq} or {"conflict", version}.
local function commit(K, A)
  local ver = tonumber(redis.call('HGET', K[1], 'ver') or '0')
  if ver ~= tonumber(A[1]) then return { 'conflict', ver } end
  redis.call('SET', K[2], A[2])
  redis.call('HSET', K[1], 'ver', ver + 1, 'status', A[3])
  local seq = tonumber(redis.call('HGET', K[1], 'seq') or '0')
  for i = 6, #A do seq = append(K, A[4], A[5], A[i]) end
  return { 'ok', ver + 1, seq }
end

-- An event that does not change the room state (chat, a deleted chat line). KEYS[4] muted set,
-- KEYS[5] the user's rate counter. ARGV: channel, maxlen, user, max lines, window ms, event.
-- An empty user skips the mute and rate checks (moderation by the creator).
local function post(K, A)
  local status = redis.call('HGET', K[1], 'status')
  if not status then return { 'room_not_found' } end
  if status == 'ended' then return { 'room_ended' } end
  if A[3] ~= '' then
    if redis.call('SISMEMBER', K[4], A[3]) == 1 then return { 'muted' } end
    local n = redis.call('INCR', K[5])
    if n == 1 then redis.call('PEXPIRE', K[5], A[5]) end
    if n > tonumber(A[4]) then return { 'rate_limited', redis.call('PTTL', K[5]) } end
  end
  return { 'ok', append(K, A[1], A[2], A[6]) }
end

-- State and the last sequence number it includes, read together.
local function read(K)
  local meta = redis.call('HMGET', K[1], 'ver', 'seq')
  local state = redis.call('GET', K[2])
  return { state or '', meta[1] or '0', meta[2] or '0' }
end

-- The room's one video publisher (KEYS[1] the stream key, holding the publisher's id, with a
-- short expiry the publisher's node keeps renewing). Renew and release only one's own claim.
-- ARGV: holder, ttl ms (renew). Returns 1 if the caller held it.
local function stream_renew(K, A)
  if redis.call('GET', K[1]) ~= A[1] then return 0 end
  redis.call('PEXPIRE', K[1], A[2])
  return 1
end

local function stream_release(K, A)
  if redis.call('GET', K[1]) ~= A[1] then return 0 end
  redis.call('DEL', K[1])
  return 1
end

redis.register_function('lc_room_commit', commit)
redis.register_function('lc_stream_renew', stream_renew)
redis.register_function('lc_stream_release', stream_release)
redis.register_function('lc_room_post', post)
redis.register_function{ function_name = 'lc_room_read', callback = read,
                         flags = { 'no-writes' } }
