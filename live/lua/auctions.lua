#!lua name=livecart_auctions_v1
--[[
Auctions (decision 0031): one Redis Function per step, every key in the room's slot ({room:ID}),
so a bid is checked, applied and announced on the room's event log in one step, on Redis's clock.

  KEYS[1] meta     the room's hash: seq (last event number), status
  KEYS[2] log      the room's event stream (entry "<seq>-0", field p = event JSON)
  KEYS[3] muted    the room's set of muted users
  KEYS[4] auction  hash: terms (deal, sku, seller, start, steps, reserve, buy_now, mode, snipe,
                   second) and state: state, ends, price, leader, leader_name, leader_max, bids,
                   winner, winner_name, hammer, round, hold, offered (users offered the lot, one
                   per line)
  KEYS[5] bidders  hash: user -> "<maximum>|<bid number>|<name>", each bidder's best maximum
  KEYS[6] active   set: the room's auctions not yet forgotten (the room sweep's work list): a
                   sold or unsold one stays until its lot is stopped (lc_auction_forget)

States: open -> closed (a winner is fixed; the award is due) -> awarded (the winner holds the
lot) -> sold; awarded -> closed (the next bidder is offered it: a new round); open|closed|
awarded -> unsold. Amounts are integer minor units; times are Redis's milliseconds.
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

local NUMBERS = { 'deal', 'sku', 'start', 'reserve', 'buy_now', 'snipe', 'second', 'card',
                  'autopaid', 'ends',
                  'price', 'leader_max', 'bids', 'hammer', 'round', 'opened' }

local function load(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local a = {}
  for i = 1, #flat, 2 do a[flat[i]] = flat[i + 1] end
  for _, name in ipairs(NUMBERS) do a[name] = tonumber(a[name] or '0') end
  return a
end

-- The increment at a price: steps is "from:step,from:step,..." by rising from.
local function step_at(steps, price)
  local step = 1
  for from, s in string.gmatch(steps, '(%d+):(%d+)') do
    if price >= tonumber(from) then step = tonumber(s) end
  end
  return step
end

-- The least a new bid may be: the start price before any bid, else one increment over the price.
local function minimum(a)
  if a.bids == 0 then return a.start end
  return a.price + step_at(a.steps, a.price)
end

-- The public view of an auction, as events and reads carry it (never a leader's maximum).
local function view(id, a)
  local v = {
    auction_id = tonumber(id), deal_id = a.deal, sku_id = a.sku, state = a.state,
    mode = a.mode, start_price = a.start, price = a.price, bids = a.bids,
    min_bid = minimum(a), ends_ms = a.ends, snipe_s = a.snipe / 1000,
    reserve_met = a.reserve == 0 or (a.bids > 0 and a.price >= a.reserve),
    has_reserve = a.reserve > 0, buy_now_price = a.buy_now, leader = a.leader,
    leader_name = a.leader_name or '', round = a.round, card_required = a.card == 1,
  }
  if a.winner and a.winner ~= '' then
    v.winner, v.winner_name, v.hammer_price = a.winner, a.winner_name or '', a.hammer
  end
  return v
end

-- The event goes on the room's log with the room's next number and out on its channel (as
-- rooms.lua's append: the same log, so one order for every viewer on every node).
local function append(K, channel, maxlen, event)
  local seq = redis.call('HINCRBY', K[1], 'seq', 1)
  local payload = '{"seq":' .. seq .. ',' .. string.sub(cjson.encode(event), 2)
  redis.call('XADD', K[2], 'MAXLEN', '~', maxlen, seq .. '-0', 'p', payload)
  redis.call('PUBLISH', channel, seq .. ' ' .. payload)
  return seq
end

local function announce(K, A, kind, id, a, extra)
  local event = { type = kind, auction = view(id, a), ms = now_ms() }
  for k, v in pairs(extra or {}) do event[k] = v end
  return append(K, A[1], A[2], event)
end

-- ARGV: channel, maxlen, auction id, then terms as field, value pairs (deal, sku, seller,
-- start, steps, reserve, buy_now, mode, snipe, second, duration). Opening twice is harmless:
-- the first wins. Returns {"ok", seq} or {"exists"}, or a refusal.
local function open(K, A)
  local status = redis.call('HGET', K[1], 'status')
  if not status then return { 'room_not_found' } end
  if status ~= 'live' then return { 'room_not_live' } end
  if redis.call('EXISTS', K[4]) == 1 then return { 'exists' } end
  local now = now_ms()
  local terms = {}
  for i = 4, #A, 2 do terms[A[i]] = A[i + 1] end
  redis.call('HSET', K[4], 'deal', terms.deal, 'sku', terms.sku, 'seller', terms.seller,
    'start', terms.start, 'steps', terms.steps, 'reserve', terms.reserve,
    'buy_now', terms.buy_now, 'mode', terms.mode, 'snipe', terms.snipe, 'second', terms.second,
    'card', terms.card or '0', 'autopaid', 0,
    'state', 'open', 'opened', fmt(now), 'ends', fmt(now + tonumber(terms.duration)),
    'price', 0, 'leader', '', 'leader_name', '', 'leader_max', 0, 'bids', 0, 'winner', '',
    'winner_name', '', 'hammer', 0, 'round', 0, 'hold', '', 'offered', '')
  redis.call('SADD', K[6], A[3])
  return { 'ok', announce(K, A, 'auction.started', A[3], load(K[4])) }
end

-- Sold or unsold; its keys stay a week for the room's history. It leaves the sweep's list
-- only once its lot is stopped (lc_auction_forget), so a crash in between is finished later.
local function finish(K, id, a, state)
  a.state = state
  redis.call('HSET', K[4], 'state', state)
  redis.call('EXPIRE', K[4], 7 * 24 * 3600)
  redis.call('EXPIRE', K[5], 7 * 24 * 3600)
end

-- ARGV: channel, maxlen, auction id. A finished auction whose lot was stopped: off the list.
local function forget(K, A)
  local a = load(K[4])
  if a and a.state ~= 'sold' and a.state ~= 'unsold' then return 0 end
  return redis.call('SREM', K[6], A[3])
end

-- Close with a winner at a price (a hammer, or a buy-it-now): the award is due.
local function fix_winner(K, a, user, name, price)
  a.state, a.winner, a.winner_name, a.hammer, a.round = 'closed', user, name, price, a.round + 1
  redis.call('HSET', K[4], 'state', 'closed', 'winner', user, 'winner_name', name,
    'hammer', price, 'round', a.round, 'offered', (a.offered or '') .. user .. '\n')
end

-- ARGV: channel, maxlen, auction id, user, maximum, name, buy_now ("1": take the buy-it-now
-- price). A bid is a maximum (proxy bidding): the price moves to the least that beats the
-- runner-up, capped by the leader's maximum. Returns {"ok", outcome, price, ends_ms, seq,
-- outbid user or "", min_bid}, outcome one of leading | raised | outbid | bought, or a refusal.
local function bid(K, A)
  local id, user, max, name = A[3], A[4], tonumber(A[5]), A[6]
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  local now = now_ms()
  if a.state ~= 'open' or now >= a.ends then return { 'auction_closed', fmt(a.ends) } end
  if redis.call('HGET', K[1], 'status') ~= 'live' then return { 'room_not_live' } end
  if user == a.seller then return { 'shill_bid' } end
  if a.card == 1 and A[8] ~= '1' then return { 'payment_method_required' } end
  if redis.call('SISMEMBER', K[3], user) == 1 then return { 'muted' } end
  if A[7] == '1' then
    if a.buy_now == 0 then return { 'no_buy_now' } end
    if a.bids > 0 then return { 'buy_now_gone' } end
    a.bids, a.price = 1, a.buy_now
    redis.call('HSET', K[4], 'bids', 1, 'price', a.buy_now)
    redis.call('HSET', K[5], user, fmt(a.buy_now) .. '|1|' .. name)
    fix_winner(K, a, user, name, a.buy_now)
    local seq = announce(K, A, 'auction.closed', id, a, { bought_now = true })
    return { 'ok', 'bought', fmt(a.price), fmt(a.ends), seq, '', fmt(minimum(a)) }
  end
  local least = minimum(a)
  if not max or max < least then return { 'bid_too_low', fmt(least) } end
  local outcome, outbid = 'leading', ''
  if a.leader == '' then
    a.leader, a.leader_name, a.leader_max, a.price = user, name, max, a.start
  elseif user == a.leader then
    if max <= a.leader_max then return { 'bid_not_higher', fmt(a.leader_max) } end
    a.leader_max, outcome = max, 'raised'
  elseif max > a.leader_max then
    outbid = a.leader
    a.price = math.min(max, a.leader_max + step_at(a.steps, a.leader_max))
    a.leader, a.leader_name, a.leader_max = user, name, max
  else
    -- The leader's hidden maximum beats it (ties go to the earlier bid): the price rises to
    -- one increment over this bid, and this bidder is outbid at once.
    a.price = math.min(a.leader_max, max + step_at(a.steps, max))
    outcome = 'outbid'
  end
  if a.reserve > 0 and a.price < a.reserve and a.leader_max >= a.reserve then
    a.price = a.reserve  -- a maximum that meets the reserve takes the price to it
  end
  a.bids = a.bids + 1
  local extended = false
  if a.mode == 'standard' and a.ends - now < a.snipe then
    a.ends, extended = now + a.snipe, true
  end
  redis.call('HSET', K[4], 'price', fmt(a.price), 'leader', a.leader,
    'leader_name', a.leader_name, 'leader_max', fmt(a.leader_max), 'bids', a.bids,
    'ends', fmt(a.ends))
  local prior = redis.call('HGET', K[5], user)
  if not prior or tonumber(string.match(prior, '^(%d+)')) < max then
    redis.call('HSET', K[5], user, fmt(max) .. '|' .. a.bids .. '|' .. name)
  end
  local seq = announce(K, A, 'auction.bid', id, a, { extended = extended })
  return { 'ok', outcome, fmt(a.price), fmt(a.ends), seq, outbid, fmt(minimum(a)) }
end

-- ARGV: channel, maxlen, auction id. The room ended: the close is now (the leader still wins;
-- the close itself follows).
local function close_now(K, A)
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  local now = now_ms()
  if a.state == 'open' and now < a.ends then redis.call('HSET', K[4], 'ends', fmt(now)) end
  return { 'ok' }
end

-- ARGV: channel, maxlen, auction id. Close once Redis's clock has passed the end: the leader
-- wins at the price if it meets the reserve. Returns {"closed"|"unsold"|..., state, winner,
-- hammer, round} (the state as it is, when it was closed before), or {"auction_not_due",
-- ends_ms}.
local function close(K, A)
  local id = A[3]
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  if a.state == 'open' then
    if now_ms() < a.ends then return { 'auction_not_due', fmt(a.ends) } end
    if a.leader ~= '' and (a.reserve == 0 or a.price >= a.reserve) then
      fix_winner(K, a, a.leader, a.leader_name, a.price)
      announce(K, A, 'auction.closed', id, a)
    else
      finish(K, id, a, 'unsold')
      local reason = a.leader == '' and 'no_bids' or 'reserve_not_met'
      announce(K, A, 'auction.closed', id, a, { reason = reason })
    end
  end
  return { a.state, a.winner or '', fmt(a.hammer), a.round }
end

-- ARGV: channel, maxlen, auction id, round, hold id, pay-by ms. The round's winner holds the lot.
local function awarded(K, A)
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  if a.state ~= 'closed' or a.round ~= tonumber(A[4]) then return { a.state } end
  redis.call('HSET', K[4], 'state', 'awarded', 'hold', A[5], 'pay_by', A[6])
  return { 'awarded' }
end

-- ARGV: channel, maxlen, auction id, round. The round's winner let the hold lapse: with second
-- chance on, the best bidder not yet offered is offered the lot at their own maximum (never
-- above the hammer price); else, or with nobody left, it is unsold. Returns {state, winner,
-- price, round}.
local function next_round(K, A)
  local id = A[3]
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  if a.state ~= 'awarded' or a.round ~= tonumber(A[4]) then
    return { a.state, a.winner or '', fmt(a.hammer), a.round }
  end
  local best, best_max, best_no, best_name = nil, -1, 0, ''
  if a.second == 1 then
    local offered = {}
    for u in string.gmatch(a.offered or '', '([^\n]+)\n') do offered[u] = true end
    local flat = redis.call('HGETALL', K[5])
    for i = 1, #flat, 2 do
      local m, no, name = string.match(flat[i + 1], '^(%d+)|(%d+)|(.*)$')
      m, no = tonumber(m), tonumber(no)
      if not offered[flat[i]] and (m > best_max or (m == best_max and no < best_no)) then
        best, best_max, best_no, best_name = flat[i], m, no, name
      end
    end
  end
  if best and (a.reserve == 0 or best_max >= a.reserve) then
    fix_winner(K, a, best, best_name, math.min(best_max, a.hammer))
    announce(K, A, 'auction.offered', id, a)
  else
    finish(K, id, a, 'unsold')
    announce(K, A, 'auction.closed', id, a, { reason = 'unpaid' })
  end
  return { a.state, a.winner or '', fmt(a.hammer), a.round }
end

-- ARGV: channel, maxlen, auction id, round. The round's hold was paid: the lot is sold.
local function sold(K, A)
  local id = A[3]
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  if a.state ~= 'awarded' or a.round ~= tonumber(A[4]) then return { a.state } end
  finish(K, id, a, 'sold')
  announce(K, A, 'auction.sold', id, a)
  return { 'sold' }
end

-- ARGV: channel, maxlen, auction id, round. The round's winner was charged on file (or the
-- charge was refused): not again.
local function autopaid(K, A)
  if redis.call('EXISTS', K[4]) == 0 then return 0 end
  redis.call('HSET', K[4], 'autopaid', A[4])
  return 1
end

-- ARGV: channel, maxlen, auction id. The public view as JSON, plus the hold, pay-by, seller
-- and the last round charged on file.
local function read(K, A)
  local a = load(K[4])
  if not a then return nil end
  return { cjson.encode(view(A[3], a)), a.hold or '', a.pay_by or '0', a.seller,
           fmt(a.autopaid) }
end

local function register(name, fn, flags)
  redis.register_function{ function_name = name, flags = flags, callback = function(K, A)
    if #K ~= 6 then return redis.error_reply('livecart_auctions: expected 6 keys, got ' .. #K) end
    return fn(K, A)
  end }
end

register('lc_auction_open', open)
register('lc_auction_bid', bid)
register('lc_auction_close', close)
register('lc_auction_close_now', close_now)
register('lc_auction_forget', forget)
register('lc_auction_autopaid', autopaid)
register('lc_auction_awarded', awarded)
register('lc_auction_next', next_round)
register('lc_auction_sold', sold)
register('lc_auction_read', read, { 'no-writes' })
