#!lua name=livecart_giveaways_v1
--[[
Giveaways (decision 0032): one Redis Function per step, every key in the room's slot
({room:ID}). Entering is one SADD behind the window and eligibility checks, on Redis's clock.
The draw itself is computed outside (SHA-256 over the published entries and the revealed seed,
live/giveaway_rules.py); here it is only recorded, once.

  KEYS[1] meta      the room's hash: seq, status
  KEYS[2] log       the room's event stream
  KEYS[3] giveaway  hash: deal (the prize lot), sku, commitment (SHA-256 of the seed, public
                    from the start), seed (secret until the draw), ends, min_watch (ms a viewer
                    must have been in the room), buyers_only, accounts_only, state,
                    entries_hash, winner,
                    hold, pay_by
  KEYS[4] entrants  set: one member per entrant
  KEYS[5] seen      the room's hash: user -> when the room first saw them (ms)
  KEYS[6] active    set: the room's giveaways not finished

States: open -> drawn (a winner, the prize held for them) -> claimed | unclaimed; open -> void
(nobody entered).
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function load(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local g = {}
  for i = 1, #flat, 2 do g[flat[i]] = flat[i + 1] end
  for _, name in ipairs({ 'deal', 'sku', 'ends', 'min_watch', 'buyers_only', 'accounts_only',
                          'opened' }) do
    g[name] = tonumber(g[name] or '0')
  end
  return g
end

local function view(K, id, g)
  local v = {
    giveaway_id = tonumber(id), deal_id = g.deal, sku_id = g.sku, state = g.state,
    ends_ms = g.ends, commitment = g.commitment, min_watch_s = g.min_watch / 1000,
    buyers_only = g.buyers_only == 1, accounts_only = g.accounts_only == 1,
    entries = redis.call('SCARD', K[4]),
  }
  if g.state ~= 'open' and g.state ~= 'void' then
    v.seed, v.entries_hash, v.winner = g.seed, g.entries_hash, g.winner
  end
  return v
end

local function append(K, channel, maxlen, event)
  local seq = redis.call('HINCRBY', K[1], 'seq', 1)
  local payload = '{"seq":' .. seq .. ',' .. string.sub(cjson.encode(event), 2)
  redis.call('XADD', K[2], 'MAXLEN', '~', maxlen, seq .. '-0', 'p', payload)
  redis.call('SPUBLISH', channel, seq .. ' ' .. payload)
  return seq
end

local function announce(K, A, kind, id, g)
  return append(K, A[1], A[2], { type = kind, giveaway = view(K, id, g), ms = now_ms() })
end

-- ARGV: channel, maxlen, id, deal, sku, commitment, seed, duration ms, min_watch ms,
-- buyers_only, accounts_only. Opening twice is harmless.
local function open(K, A)
  local status = redis.call('HGET', K[1], 'status')
  if not status then return { 'room_not_found' } end
  if status ~= 'live' then return { 'room_not_live' } end
  if redis.call('EXISTS', K[3]) == 1 then return { 'exists' } end
  local now = now_ms()
  redis.call('HSET', K[3], 'deal', A[4], 'sku', A[5], 'commitment', A[6], 'seed', A[7],
    'ends', fmt(now + tonumber(A[8])), 'min_watch', A[9], 'buyers_only', A[10],
    'accounts_only', A[11] or '0',
    'state', 'open', 'opened', fmt(now), 'entries_hash', '', 'winner', '', 'hold', '',
    'pay_by', 0)
  redis.call('SADD', K[6], A[3])
  return { 'ok', announce(K, A, 'giveaway.started', A[3], load(K[3])) }
end

-- ARGV: channel, maxlen, id, user, is an account ("1"). One entry each; refused once the
-- window has passed, from a guest when it is for accounts only, or before the viewer has been
-- in the room min_watch. Returns {"ok", entries, new (1|0)}.
local function enter(K, A)
  local g = load(K[3])
  if not g then return { 'giveaway_not_found' } end
  local now = now_ms()
  if g.state ~= 'open' or now >= g.ends then return { 'giveaway_closed', fmt(g.ends) } end
  if g.accounts_only == 1 and A[5] ~= '1' then return { 'account_required' } end
  if g.min_watch > 0 then
    local seen = tonumber(redis.call('HGET', K[5], A[4]) or '0')
    if seen == 0 or now - seen < g.min_watch then
      local wait = seen == 0 and g.min_watch or g.min_watch - (now - seen)
      return { 'not_eligible', 'watch', fmt(wait) }
    end
  end
  local added = redis.call('SADD', K[4], A[4])
  return { 'ok', redis.call('SCARD', K[4]), added }
end

-- ARGV: channel, maxlen, id. The creator ends the entries now (the draw follows).
local function close_now(K, A)
  local g = load(K[3])
  if not g then return { 'giveaway_not_found' } end
  local now = now_ms()
  if g.state == 'open' and now < g.ends then redis.call('HSET', K[3], 'ends', fmt(now)) end
  return { 'ok' }
end

-- ARGV: channel, maxlen, id. Due once Redis's clock has passed the end: answers the state and,
-- while the draw is due, "due" (entries are frozen: enter refuses from the end on).
local function due(K, A)
  local g = load(K[3])
  if not g then return { 'giveaway_not_found' } end
  if g.state ~= 'open' then return { g.state } end
  if now_ms() < g.ends then return { 'not_due', fmt(g.ends) } end
  if redis.call('SCARD', K[4]) == 0 then
    redis.call('HSET', K[3], 'state', 'void')
    g.state = 'void'
    announce(K, A, 'giveaway.drawn', A[3], g)
    return { 'void' }
  end
  return { 'due', g.seed }
end

-- ARGV: channel, maxlen, id, entries_hash, winner, hold, pay_by. Records the draw once.
local function drawn(K, A)
  local g = load(K[3])
  if not g then return { 'giveaway_not_found' } end
  if g.state ~= 'open' then return { g.state } end
  if redis.call('SISMEMBER', K[4], A[5]) == 0 then return { 'not_an_entrant' } end
  redis.call('HSET', K[3], 'state', 'drawn', 'entries_hash', A[4], 'winner', A[5], 'hold', A[6],
    'pay_by', A[7])
  g.state, g.entries_hash, g.winner = 'drawn', A[4], A[5]
  announce(K, A, 'giveaway.drawn', A[3], g)
  return { 'drawn' }
end

-- ARGV: channel, maxlen, id, state (claimed | unclaimed). The prize was ordered, or lapsed.
-- It stays on the sweep's list until its lot is stopped (lc_giveaway_forget).
local function finish(K, A)
  local g = load(K[3])
  if not g then return { 'giveaway_not_found' } end
  if g.state ~= 'drawn' then return { g.state } end
  redis.call('HSET', K[3], 'state', A[4])
  redis.call('EXPIRE', K[3], 7 * 24 * 3600)
  redis.call('EXPIRE', K[4], 7 * 24 * 3600)
  return { A[4] }
end

-- ARGV: channel, maxlen, id. A finished giveaway whose lot was stopped: off the list.
local function forget(K, A)
  local g = load(K[3])
  if g and g.state ~= 'claimed' and g.state ~= 'unclaimed' and g.state ~= 'void' then return 0 end
  return redis.call('SREM', K[6], A[3])
end

-- ARGV: channel, maxlen, id. The public view (JSON), the winner's hold and pay-by.
local function read(K, A)
  local g = load(K[3])
  if not g then return nil end
  return { cjson.encode(view(K, A[3], g)), g.hold or '', g.pay_by or '0' }
end

local function register(name, fn, flags)
  redis.register_function{ function_name = name, flags = flags, callback = function(K, A)
    if #K ~= 6 then return redis.error_reply('livecart_giveaways: expected 6 keys, got ' .. #K) end
    return fn(K, A)
  end }
end

register('lc_giveaway_open', open)
register('lc_giveaway_enter', enter)
register('lc_giveaway_due', due)
register('lc_giveaway_close', close_now)
register('lc_giveaway_drawn', drawn)
register('lc_giveaway_finish', finish)
register('lc_giveaway_forget', forget)
register('lc_giveaway_read', read, { 'no-writes' })
