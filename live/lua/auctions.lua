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
  KEYS[7] waiters  zset: the lot's waitlist once it closed with a winner, users scored by
                   arrival (decision 0035)
  KEYS[8] names    hash: waiting user -> the name they go by in the room

States: open -> closed (a winner is fixed; the award is due) -> awarded (the winner holds the
lot) -> sold; awarded -> closed (the next bidder is offered it: a new round); open|closed|
awarded -> unsold. With relists left, a close without a sale opens it again instead (state
open, a new window, no bids). Amounts are integer minor units; times are Redis's milliseconds.
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

local NUMBERS = { 'deal', 'sku', 'start', 'reserve', 'buy_now', 'snipe', 'second', 'card',
                  'accounts',
                  'autopaid', 'ends',
                  'price', 'leader_max', 'bids', 'hammer', 'round', 'opened', 'duration',
                  'relists', 'relisted' }

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
    accounts_only = a.accounts == 1,
    relists_left = a.relists, relisted = a.relisted,
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
  redis.call('SPUBLISH', channel, seq .. ' ' .. payload)
  return seq
end

local function announce(K, A, kind, id, a, extra)
  local event = { type = kind, auction = view(id, a), ms = now_ms() }
  for k, v in pairs(extra or {}) do event[k] = v end
  return append(K, A[1], A[2], event)
end

-- ARGV: channel, maxlen, auction id, then terms as field, value pairs (deal, sku, seller,
-- start, steps, reserve, buy_now, mode, snipe, second, card, accounts, duration, relists).
-- Opening twice is harmless:
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
    'card', terms.card or '0', 'accounts', terms.accounts or '0', 'autopaid', 0,
    'duration', terms.duration,
    'relists', terms.relists or '0', 'relisted', 0,
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
  for i = 4, 8 do
    if i ~= 6 then redis.call('EXPIRE', K[i], 7 * 24 * 3600) end
  end
end

-- Users the lot was offered to, as a set: every round's winner so far.
local function offered_set(a)
  local offered = {}
  for u in string.gmatch(a.offered or '', '([^\n]+)\n') do offered[u] = true end
  return offered
end

-- No sale this time (no bid, the reserve not met, or nobody paid): with relists left and the
-- room still live, the lot goes up again at once on the same terms, a new window and no bids.
-- Winners who let it lapse stay on the offered list, so they may not bid on it again. Returns
-- true if it was relisted (else the caller finishes it unsold).
local function relist(K, A, id, a, reason)
  if a.relists <= 0 or redis.call('HGET', K[1], 'status') ~= 'live' then return false end
  local now = now_ms()
  a.state, a.relists, a.relisted, a.ends = 'open', a.relists - 1, a.relisted + 1, now + a.duration
  a.price, a.leader, a.leader_name, a.leader_max, a.bids = 0, '', '', 0, 0
  a.winner, a.winner_name, a.hammer, a.hold = '', '', 0, ''
  redis.call('HSET', K[4], 'state', 'open', 'relists', a.relists, 'relisted', a.relisted,
    'opened', fmt(now), 'ends', fmt(a.ends), 'price', 0, 'leader', '', 'leader_name', '',
    'leader_max', 0, 'bids', 0, 'winner', '', 'winner_name', '', 'hammer', 0, 'hold', '')
  redis.call('DEL', K[5], K[7], K[8])
  announce(K, A, 'auction.relisted', id, a, { reason = reason })
  return true
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
-- price), has a card ("1"), is an account ("1"). A bid is a maximum (proxy bidding): the price
-- moves to the least that beats the runner-up, capped by the leader's maximum. Returns {"ok",
-- outcome, price, ends_ms, seq, outbid user or "", min_bid}, outcome one of leading | raised |
-- outbid | bought, or a refusal.
local function bid(K, A)
  local id, user, max, name = A[3], A[4], tonumber(A[5]), A[6]
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  local now = now_ms()
  if a.state ~= 'open' or now >= a.ends then return { 'auction_closed', fmt(a.ends) } end
  if redis.call('HGET', K[1], 'status') ~= 'live' then return { 'room_not_live' } end
  if user == a.seller then return { 'shill_bid' } end
  if a.accounts == 1 and A[9] ~= '1' then return { 'account_required' } end
  if a.card == 1 and A[8] ~= '1' then return { 'payment_method_required' } end
  if redis.call('SISMEMBER', K[3], user) == 1 then return { 'muted' } end
  if offered_set(a)[user] then return { 'unpaid_win' } end
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
      local reason = a.leader == '' and 'no_bids' or 'reserve_not_met'
      if not relist(K, A, id, a, reason) then
        finish(K, id, a, 'unsold')
        announce(K, A, 'auction.closed', id, a, { reason = reason })
      end
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
-- above the hammer price); then the first on the lot's waitlist at the hammer price; with
-- nobody left it is relisted (relists left) or unsold. Returns {state, winner, price, round}.
local function next_round(K, A)
  local id = A[3]
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  if a.state ~= 'awarded' or a.round ~= tonumber(A[4]) then
    return { a.state, a.winner or '', fmt(a.hammer), a.round }
  end
  local best, best_max, best_no, best_name = nil, -1, 0, ''
  local offered = offered_set(a)
  if a.second == 1 then
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
    return { a.state, a.winner, fmt(a.hammer), a.round }
  end
  while true do
    local first = redis.call('ZPOPMIN', K[7])
    if #first == 0 then break end
    local name = redis.call('HGET', K[8], first[1]) or ''
    redis.call('HDEL', K[8], first[1])
    if not offered[first[1]] then
      -- The price the auction closed at (a runner-up's own lower maximum was theirs alone).
      fix_winner(K, a, first[1], name, a.price)
      announce(K, A, 'auction.offered', id, a, { waitlist = true })
      return { a.state, a.winner, fmt(a.hammer), a.round }
    end
  end
  if not relist(K, A, id, a, 'unpaid') then
    finish(K, id, a, 'unsold')
    announce(K, A, 'auction.closed', id, a, { reason = 'unpaid' })
  end
  return { a.state, a.winner or '', fmt(a.hammer), a.round }
end

-- ARGV: channel, maxlen, auction id, user, name, has a card ("1"), is an account ("1"). Join
-- the lot's waitlist
-- once it closed with a winner: if the winner (and the bidders after them) do not pay, it is
-- offered in order at the hammer price. Joining again keeps the place. Returns {"ok",
-- position, how many wait} or a refusal.
local function wait(K, A)
  local user, name = A[4], A[5]
  local a = load(K[4])
  if not a then return { 'auction_not_found' } end
  if a.state == 'open' then return { 'not_sold_out' } end
  if a.state ~= 'closed' and a.state ~= 'awarded' then return { 'auction_closed', fmt(a.ends) } end
  if redis.call('HGET', K[1], 'status') ~= 'live' then return { 'room_not_live' } end
  if user == a.seller then return { 'shill_bid' } end
  if a.accounts == 1 and A[7] ~= '1' then return { 'account_required' } end
  if a.card == 1 and A[6] ~= '1' then return { 'payment_method_required' } end
  if redis.call('SISMEMBER', K[3], user) == 1 then return { 'muted' } end
  if offered_set(a)[user] then return { 'unpaid_win' } end
  if not redis.call('ZSCORE', K[7], user) then
    redis.call('ZADD', K[7], redis.call('HINCRBY', K[4], 'next_wait', 1), user)
    redis.call('HSET', K[8], user, name)
  end
  return { 'ok', redis.call('ZRANK', K[7], user) + 1, redis.call('ZCARD', K[7]) }
end

-- ARGV: channel, maxlen, auction id, user. Leave the lot's waitlist: 1 if they were on it.
local function unwait(K, A)
  redis.call('HDEL', K[8], A[4])
  return redis.call('ZREM', K[7], A[4])
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

-- ARGV: channel, maxlen, auction id, user (optional). The public view as JSON, plus the hold,
-- pay-by, seller, the last round charged on file, the user's place on the lot's waitlist (0:
-- not on it) and how many wait.
local function read(K, A)
  local a = load(K[4])
  if not a then return nil end
  local rank = A[4] and A[4] ~= '' and redis.call('ZRANK', K[7], A[4])
  return { cjson.encode(view(A[3], a)), a.hold or '', a.pay_by or '0', a.seller,
           fmt(a.autopaid), rank and rank + 1 or 0, redis.call('ZCARD', K[7]) }
end

local function register(name, fn, flags)
  redis.register_function{ function_name = name, flags = flags, callback = function(K, A)
    if #K ~= 8 then return redis.error_reply('livecart_auctions: expected 8 keys, got ' .. #K) end
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
register('lc_auction_wait', wait)
register('lc_auction_unwait', unwait)
register('lc_auction_read', read, { 'no-writes' })
