#!lua name=livecart_holds_v1
--[[
Flash-deal stock and holds, one Redis Function per step. Every function touches only the keys of
one deal (hash-tagged, so one Redis Cluster slot) and every key it touches arrives in KEYS:

  KEYS[1] deal      hash: terms (price, limit, window, ttl) and counters available/held/sold
  KEYS[2] holds     hash: hold id -> "state|qty|expires_ms|held_until_ms|attempt|buyer|request_id"
                    (expires_ms moves while paying; held_until_ms is the hold's own deadline;
                    attempt names the one payment attempt allowed at a time)
  KEYS[3] buyers    hash: buyer -> units held, paying or sold (the per-buyer limit)
  KEYS[4] requests  hash: "buyer|request_id" -> hold id (a retried request gets the same hold)
  KEYS[5] expiry    zset: hold id scored by expires_ms, for holds still held or paying
  KEYS[6] orders    stream, never trimmed here: order.paid entries for the order pipeline
  KEYS[7] rates     hash: client address -> its reserve bucket's TAT (see reserve_admitted);
                    the whole hash expires once every bucket in it is full again
  KEYS[8] addresses hash: client address -> units in its holds still held or paying (the
                    per-address cap); a field goes when it reaches 0
  KEYS[9] hold_addresses  hash: hold id -> client address, while the hold is held or paying
  KEYS[10] restocks hash: refund key -> what lc_restock answered ("deal" or "over")
  KEYS[11] waitlist zset: buyers waiting for a unit of the sold-out deal, scored by arrival
  KEYS[12] offers   stream: "hold", "buyer" per unit handed to a waiting buyer (their notice)

Rooms are not told from here: the room ticker reads each watched deal's counters (lc_snapshot)
and publishes stock, sold-out and restock (docs/decisions/0025). The one stream written here is
the order pipeline's.

Invariant kept by every function: available + held + sold == quantity.
Hold states: held -> paying -> sold; held|paying -> expired; held -> released; paying -> held
(a declined payment returns the hold to its own deadline: paying never extends a hold for good).
]]

local KEY_COUNT = 12

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

-- A new hold's number: one past the last, and never below the clock (milliseconds x 1000).
-- A replica promoted after a failover may have missed the last holds and their counter; an id
-- issued twice would merge two buyers' sales (an order is one per hold id; decision 0040).
-- Written with fmt: a Lua number is turned into text with 14 digits otherwise.
local function take_hold_number(K, now)
  local n = math.max(tonumber(redis.call('HGET', K[1], 'next_hold') or '0') + 1, now * 1000)
  redis.call('HSET', K[1], 'next_hold', fmt(n))
  return fmt(n)
end

local function parse_hold(raw)
  local state, qty, expires, held_until, attempt, buyer, request =
    string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return { state = state, qty = tonumber(qty), expires = tonumber(expires),
           held_until = tonumber(held_until), attempt = attempt, buyer = buyer,
           request = request }
end

local function save_hold(K, id, h)
  redis.call('HSET', K[2], id,
    h.state .. '|' .. h.qty .. '|' .. fmt(h.expires) .. '|' .. fmt(h.held_until) .. '|' ..
    h.attempt .. '|' .. h.buyer .. '|' .. h.request)
end

-- A hold stops counting against its client address's cap (it closed, or it was sold).
local function release_address(K, id, qty)
  local address = redis.call('HGET', K[9], id)
  if not address then return end
  redis.call('HDEL', K[9], id)
  if redis.call('HINCRBY', K[8], address, -qty) <= 0 then redis.call('HDEL', K[8], address) end
end

-- Units that come back while buyers wait go to them first, a unit each in the order they
-- joined, as holds with their own pay window (never to the open pool while someone waits).
-- A waiter already at the per-buyer limit is passed over (and leaves the list). Not once the
-- deal is stopped or its window is over: nobody may buy then.
local function offer_to_waiters(K, now)
  if redis.call('ZCARD', K[11]) == 0 then return end
  local t = redis.call('HMGET', K[1], 'stopped', 'ends', 'limit', 'hold_ttl', 'deal')
  if t[1] == '1' or now >= tonumber(t[2]) then return end
  local limit, ttl = tonumber(t[3]), tonumber(t[4])
  while tonumber(redis.call('HGET', K[1], 'available')) > 0 do
    local first = redis.call('ZPOPMIN', K[11])
    if #first == 0 then return end
    local buyer = first[1]
    if tonumber(redis.call('HGET', K[3], buyer) or '0') < limit then
      local id = t[5] .. '-' .. take_hold_number(K, now)
      local expires = now + ttl
      save_hold(K, id, { state = 'held', qty = 1, expires = expires, held_until = expires,
                         attempt = '', buyer = buyer, request = '' })
      redis.call('HINCRBY', K[1], 'available', -1)
      redis.call('HINCRBY', K[1], 'held', 1)
      redis.call('HINCRBY', K[3], buyer, 1)
      redis.call('ZADD', K[5], expires, id)
      redis.call('XADD', K[12], 'MAXLEN', '~', 1000, '*', 'hold', id, 'buyer', buyer,
        'expires', fmt(expires))
    end
  end
end

-- Return a live hold's units to stock (to waiting buyers first) and close it with the given
-- final state.
local function close_hold(K, id, h, final_state)
  h.state = final_state
  save_hold(K, id, h)
  release_address(K, id, h.qty)
  redis.call('ZREM', K[5], id)
  redis.call('HINCRBY', K[1], 'available', h.qty)
  redis.call('HINCRBY', K[1], 'held', -h.qty)
  redis.call('HINCRBY', K[3], h.buyer, -h.qty)
  offer_to_waiters(K, now_ms())
end

-- Lazy reclaim: every lapsed hold goes back to stock before anyone reads availability.
-- Each hold is reclaimed once, so the work is bounded by the holds ever granted.
local function reclaim(K, now)
  local lapsed = redis.call('ZRANGE', K[5], '-inf', now, 'BYSCORE')
  for _, id in ipairs(lapsed) do
    local raw = redis.call('HGET', K[2], id)
    if raw then
      local h = parse_hold(raw)
      if h.state == 'held' or h.state == 'paying' then
        close_hold(K, id, h, 'expired')
      else
        redis.call('ZREM', K[5], id)
      end
    else
      redis.call('ZREM', K[5], id)
    end
  end
  return #lapsed
end

local function terms(K)
  local t = redis.call('HMGET', K[1], 'starts', 'ends', 'stopped', 'limit', 'hold_ttl',
                       'accounts_only')
  return { starts = tonumber(t[1]), ends = tonumber(t[2]), stopped = t[3] == '1',
           limit = tonumber(t[4]), hold_ttl = tonumber(t[5]), accounts_only = t[6] == '1' }
end

-- Per-address state read once per batch and written back once at its end (write_addresses):
-- a storm from one address (a farmer, a crowd behind one NAT) costs no call per request.
local function address_state(K, lim, address)
  local a = lim.addresses[address]
  if not a then
    local tat, held = redis.call('HGET', K[7], address), redis.call('HGET', K[8], address)
    a = { tat = tonumber(tat or 0), held = tonumber(held or 0), spent = false, took = false }
    lim.addresses[address] = a
  end
  return a
end

-- The address's reserve bucket in this deal (GCRA, as in limits.lua): nil when the request is
-- admitted (taking a token), else the milliseconds until it would be.
local function reserve_admitted(a, lim, now)
  local tat = math.max(a.tat, now) + lim.interval
  local ahead = tat - now
  if ahead > lim.burst * lim.interval then
    return math.ceil(ahead - lim.burst * lim.interval)
  end
  a.tat, a.spent = tat, true
  return nil
end

-- HSET field/value pairs in chunks: unpack() has a limit of a few thousand values.
local function hset_pairs(key, flat)
  for i = 1, #flat, 4000 do
    redis.call('HSET', key, unpack(flat, i, math.min(i + 3999, #flat)))
  end
end

local function write_addresses(K, lim)
  local tats, helds = {}, {}
  for address, a in pairs(lim.addresses) do
    if a.spent then
      tats[#tats + 1] = address
      tats[#tats + 1] = string.format('%.3f', a.tat)
    end
    if a.took then
      helds[#helds + 1] = address
      helds[#helds + 1] = a.held
    end
  end
  if #tats > 0 then
    hset_pairs(K[7], tats)
    -- Every bucket written is full again within burst * interval: then the hash may go.
    redis.call('PEXPIRE', K[7], math.ceil(lim.burst * lim.interval))
  end
  hset_pairs(K[8], helds)
  hset_pairs(K[9], lim.hold_addresses)
end

-- One reservation. `c` carries the deal's counters through the batch (written back once at the
-- end), so a reservation costs a handful of calls, not a dozen. Results are one string each,
-- space-separated: "ok <hold> <qty> <expires_ms> <state> <replayed>" or "<error code> <data>...".
-- `lim` has the per-address limits; an empty address (a caller inside livecart) has none.
local function reserve_one(K, d, c, lim, now, deal_id, buyer, qty, request, address)
  local a = address ~= '' and (lim.interval > 0 or lim.cap > 0) and address_state(K, lim, address)
  if a and lim.interval > 0 then
    local wait = reserve_admitted(a, lim, now)
    if wait then return 'rate_limited ' .. wait end
  end
  local request_key = buyer .. '|' .. request
  if request ~= '' then
    local existing = redis.call('HGET', K[4], request_key)
    if existing then
      local h = parse_hold(redis.call('HGET', K[2], existing))
      return table.concat({ 'ok', existing, h.qty, fmt(h.expires), h.state, 1 }, ' ')
    end
  end
  if d.stopped or now >= d.ends then return 'deal_ended ' .. fmt(d.ends) end
  if now < d.starts then return 'deal_not_started ' .. fmt(d.starts) end
  if qty == nil or qty < 1 then return 'invalid_quantity' end
  local mine = tonumber(redis.call('HGET', K[3], buyer) or '0')
  if mine + qty > d.limit then return 'limit_exceeded ' .. d.limit .. ' ' .. mine end
  local capped = a and lim.cap > 0
  if capped and a.held + qty > lim.cap then
    return 'address_hold_limit ' .. lim.cap .. ' ' .. a.held
  end
  if c.available < qty then
    if c.available == 0 then return 'sold_out ' .. qty .. ' 0' end
    return 'insufficient_stock ' .. qty .. ' ' .. c.available
  end
  c.next_hold = math.max(c.next_hold + 1, now * 1000)  -- as take_hold_number
  c.available = c.available - qty
  c.held = c.held + qty
  local id = deal_id .. '-' .. fmt(c.next_hold)
  local expires = now + d.hold_ttl
  local h = { state = 'held', qty = qty, expires = expires, held_until = expires, attempt = '',
              buyer = buyer, request = request }
  redis.call('HINCRBY', K[3], buyer, qty)
  save_hold(K, id, h)
  redis.call('ZADD', K[5], expires, id)
  if request ~= '' then redis.call('HSET', K[4], request_key, id) end
  if capped then
    a.held, a.took = a.held + qty, true
    lim.hold_addresses[#lim.hold_addresses + 1] = id
    lim.hold_addresses[#lim.hold_addresses + 1] = address
  end
  return table.concat({ 'ok', id, qty, fmt(expires), 'held', 0 }, ' ')
end

-- ARGV[1]: deal id; ARGV[2]: one line per reservation, "buyer qty request_id address\n"
-- (request_id and address may be empty). One argument for the whole batch keeps the client's
-- encoding cost flat. ARGV[3..5], the per-address limits: milliseconds to earn one reserve
-- token (0: no rate limit), the bucket's burst, and the cap on units in holds (0: none).
local function reserve_many(K, ARGV)
  local results = {}
  if redis.call('EXISTS', K[1]) == 0 then
    for _ in string.gmatch(ARGV[2], '[^\n]*\n') do table.insert(results, 'deal_not_live') end
    return results
  end
  if redis.call('HGET', K[1], 'sealed') == '1' then
    -- An auction's lot (decision 0031): only lc_award makes its holds.
    for _ in string.gmatch(ARGV[2], '[^\n]*\n') do table.insert(results, 'auction_lot') end
    return results
  end
  local now = now_ms()
  reclaim(K, now)
  local d = terms(K)
  local raw = redis.call('HMGET', K[1], 'available', 'held', 'next_hold')
  local c = { available = tonumber(raw[1]), held = tonumber(raw[2]), next_hold = tonumber(raw[3]) }
  local lim = { interval = tonumber(ARGV[3] or 0), burst = tonumber(ARGV[4] or 0),
                cap = tonumber(ARGV[5] or 0), addresses = {}, hold_addresses = {} }
  -- buyer qty request address kind: kind 'a' for an account's token, 'g' for a guest's
  local line = '([^ \n]+) ([^ \n]+) ([^ \n]*) ([^ \n]*) ([ag])\n'
  for buyer, qty, request, address, kind in string.gmatch(ARGV[2], line) do
    if d.accounts_only and kind ~= 'a' then
      table.insert(results, 'account_required')
    else
      table.insert(results,
        reserve_one(K, d, c, lim, now, ARGV[1], buyer, tonumber(qty), request, address))
    end
  end
  redis.call('HSET', K[1], 'available', c.available, 'held', c.held, 'next_hold', fmt(c.next_hold))
  write_addresses(K, lim)
  return results
end

-- Load a deal's terms and stock. Loading twice is harmless: the first load wins.
-- ARGV: field, value pairs (must include quantity).
local function load_deal(K, ARGV)
  if redis.call('EXISTS', K[1]) == 1 then return 0 end
  redis.call('HSET', K[1], unpack(ARGV))
  local q = redis.call('HGET', K[1], 'quantity')
  redis.call('HSET', K[1], 'available', q, 'held', 0, 'sold', 0, 'next_hold', 0, 'stopped', 0)
  return 1
end

-- Stop selling. Held units go back at once (a stopped deal is often a mispriced one: nobody may
-- pay for a unit at that price any more); a payment already under way finishes or fails as it
-- is. Returns the released holds as a flat list: id, buyer, id, buyer, ...
local function stop_deal(K, ARGV)
  if redis.call('EXISTS', K[1]) == 0 then return {} end
  redis.call('HSET', K[1], 'stopped', 1)
  local released = {}
  for _, id in ipairs(redis.call('ZRANGE', K[5], 0, -1)) do
    local raw = redis.call('HGET', K[2], id)
    local h = raw and parse_hold(raw)
    if h and h.state == 'held' then
      close_hold(K, id, h, 'released')
      released[#released + 1] = id
      released[#released + 1] = h.buyer
    end
  end
  return released
end

-- Find the caller's hold; a foreign hold looks exactly like a missing one.
local function own_hold(K, id, buyer)
  local raw = redis.call('HGET', K[2], id)
  if not raw then return nil end
  local h = parse_hold(raw)
  if h.buyer ~= buyer then return nil end
  return h
end

local function closed_reason(state)
  if state == 'sold' then return 'hold_already_paid' end
  if state == 'expired' then return 'hold_expired' end
  return 'hold_released'
end

-- ARGV: hold_id, buyer, attempt. held -> paying with the expiry pushed out by pay_ttl.
-- One attempt at a time: the same attempt may begin again (a retry), another one must wait.
-- Returns "ok" and the terms, "paid" and the terms (this attempt sold it before), or an error.
local function begin_payment(K, ARGV)
  local id, buyer, attempt = ARGV[1], ARGV[2], ARGV[3]
  local now = now_ms()
  local h = own_hold(K, id, buyer)
  if not h then return { 'hold_not_found' } end
  if redis.call('HGET', K[1], 'stopped') == '1' and h.state ~= 'paying' and h.state ~= 'sold' then
    if h.state == 'held' then close_hold(K, id, h, 'released') end
    return { 'deal_ended' }
  end
  if (h.state == 'held' or h.state == 'paying') and h.expires <= now then
    close_hold(K, id, h, 'expired')
  end
  local t = redis.call('HMGET', K[1], 'pay_ttl', 'price', 'currency', 'sku', 'shop')
  if h.state == 'sold' and h.attempt == attempt and attempt ~= '' then
    -- This attempt paid already (its request died before answering, or the reconciler
    -- finished it): the retry answers with the sale.
    return { 'paid', h.qty, t[2], t[3], t[4], t[5], fmt(h.expires) }
  end
  if h.state ~= 'held' and h.state ~= 'paying' then return { closed_reason(h.state) } end
  if h.state == 'paying' and h.attempt ~= attempt then return { 'payment_in_progress' } end
  h.state = 'paying'
  h.attempt = attempt
  h.expires = math.max(h.expires, now + tonumber(t[1]))
  save_hold(K, id, h)
  redis.call('ZADD', K[5], h.expires, id)
  return { 'ok', h.qty, t[2], t[3], t[4], t[5], fmt(h.expires) }
end

-- ARGV: hold_id, buyer, payment_ref, attempt, shipping (JSON, or empty). paying -> sold, and
-- order.paid goes to the pipeline, carrying the shipping address with it.
-- A paying hold is committed even if its expiry just passed: the money was taken and the
-- units were never returned. Once the sweeper has expired it, the caller must refund.
local function commit(K, ARGV)
  local id, buyer, payment_ref, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  local shipping = ARGV[5] or ''
  local h = own_hold(K, id, buyer)
  if not h then return { 'hold_not_found' } end
  if h.state == 'sold' then
    -- Sold by this attempt: a repeat (a retry, the reconciler). By another: refund this one.
    if h.attempt == attempt then return { 'ok', 1 } end
    return { 'hold_already_paid' }
  end
  if h.state ~= 'paying' then return { closed_reason(h.state) } end
  if h.attempt ~= attempt then return { 'payment_in_progress' } end
  local now = now_ms()
  h.state = 'sold'
  save_hold(K, id, h)
  redis.call('ZREM', K[5], id)
  redis.call('HINCRBY', K[1], 'held', -h.qty)
  redis.call('HINCRBY', K[1], 'sold', h.qty)
  release_address(K, id, h.qty)  -- sold units count against the buyer's limit, not the cap
  local t = redis.call('HMGET', K[1], 'deal', 'sku', 'shop', 'price', 'currency')
  redis.call('XADD', K[6], '*', 'type', 'order.paid', 'hold', id, 'deal', t[1],
    'sku', t[2], 'shop', t[3], 'buyer', buyer, 'qty', h.qty, 'unit_price', t[4],
    'currency', t[5], 'payment_ref', payment_ref, 'paid_ms', fmt(now),
    'ship', shipping)
  return { 'ok', 0 }
end

-- ARGV: hold_id, buyer, attempt. The charge failed: paying -> held, back to the hold's own
-- deadline (which may already have passed: then the next reclaim returns its units).
local function payment_failed(K, ARGV)
  local id = ARGV[1]
  local h = own_hold(K, id, ARGV[2])
  if not h or h.state ~= 'paying' or h.attempt ~= ARGV[3] then return 0 end
  h.state = 'held'
  h.attempt = ''
  h.expires = h.held_until
  save_hold(K, id, h)
  redis.call('ZADD', K[5], h.expires, id)
  return 1
end

-- ARGV: hold_id, buyer. The buyer gives the units back.
local function release(K, ARGV)
  local id = ARGV[1]
  local now = now_ms()
  local h = own_hold(K, id, ARGV[2])
  if not h then return { 'hold_not_found' } end
  if (h.state == 'held' or h.state == 'paying') and h.expires <= now then
    -- Lapsed but not yet reclaimed: its units are already back on sale in every read.
    close_hold(K, id, h, 'expired')
    return { 'hold_expired' }
  end
  if h.state == 'paying' then return { 'payment_in_progress' } end
  if h.state ~= 'held' then return { closed_reason(h.state) } end
  close_hold(K, id, h, 'released')
  return { 'ok' }
end

local function expire(K, ARGV)
  return reclaim(K, now_ms())
end

-- Counters after reclaiming lapsed holds, so a read never counts an expired hold as held.
local function snapshot(K, ARGV)
  if redis.call('EXISTS', K[1]) == 0 then return {} end
  local now = now_ms()
  reclaim(K, now)
  local v = redis.call('HMGET', K[1], 'quantity', 'available', 'held', 'sold', 'starts', 'ends',
                       'stopped', 'limit', 'price', 'currency')
  table.insert(v, fmt(now))
  return v
end

-- ARGV: hold_id, buyer. The hold as its owner sees it.
local function get_hold(K, ARGV)
  local id = ARGV[1]
  local now = now_ms()
  local h = own_hold(K, id, ARGV[2])
  if not h then return {} end
  if (h.state == 'held' or h.state == 'paying') and h.expires <= now then
    close_hold(K, id, h, 'expired')
  end
  return { h.state, h.qty, fmt(h.expires) }
end

-- ARGV: hold_id, units, refund key. A refund gives a sold hold's units back (decision 0027):
-- while the deal can still sell they go back on sale (sold -> available, and the buyer's count
-- drops: the units are no longer theirs) and the answer is "deal"; once it cannot, "over" (the
-- caller returns them to the SKU instead). The answer is kept under the refund key, so a repeat
-- after a crash answers the same and never moves the units twice.
local function restock(K, ARGV)
  local id, n, key = ARGV[1], tonumber(ARGV[2]), ARGV[3]
  local prior = redis.call('HGET', K[10], key)
  if prior then return prior end
  if redis.call('EXISTS', K[1]) == 0 then return 'over' end
  local now = now_ms()
  reclaim(K, now)
  local t = terms(K)
  local answer = 'over'
  local raw = redis.call('HGET', K[2], id)
  local sold = tonumber(redis.call('HGET', K[1], 'sold') or 0)
  if not t.stopped and now < t.ends and raw and n <= sold then
    local h = parse_hold(raw)
    redis.call('HINCRBY', K[1], 'sold', -n)
    redis.call('HINCRBY', K[1], 'available', n)
    offer_to_waiters(K, now)
    if redis.call('HINCRBY', K[3], h.buyer, -n) <= 0 then redis.call('HDEL', K[3], h.buyer) end
    answer = 'deal'
  end
  redis.call('HSET', K[10], key, answer)
  return answer
end

-- ARGV: buyer, price, request id, hold ttl ms. An auction's lot (a sealed deal of one, decision
-- 0031) goes to the round's winner: the lot's price becomes theirs and they get a hold of its
-- unit for the pay window. A repeat of the request answers the same hold. Returns {"ok", hold,
-- expires_ms} or {"lot_taken"} while an earlier round's hold still holds (or sold) the unit.
local function award(K, ARGV)
  local buyer, price, request, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
  local lot = redis.call('HMGET', K[1], 'sealed', 'stopped', 'deal')
  if lot[1] ~= '1' then return { 'deal_not_live' } end
  local existing = redis.call('HGET', K[4], buyer .. '|' .. request)
  if existing then
    local h = parse_hold(redis.call('HGET', K[2], existing))
    return { 'ok', existing, fmt(h.expires) }
  end
  if lot[2] == '1' then return { 'deal_ended' } end
  local now = now_ms()
  reclaim(K, now)
  if tonumber(redis.call('HGET', K[1], 'available')) < 1 then return { 'lot_taken' } end
  local id = lot[3] .. '-' .. take_hold_number(K, now_ms())
  local expires = now + ttl
  redis.call('HINCRBY', K[1], 'available', -1)
  redis.call('HINCRBY', K[1], 'held', 1)
  redis.call('HSET', K[1], 'price', price)
  local ends = tonumber(redis.call('HGET', K[1], 'ends'))
  local pay_ttl = tonumber(redis.call('HGET', K[1], 'pay_ttl'))
  if ends < expires + pay_ttl then redis.call('HSET', K[1], 'ends', fmt(expires + pay_ttl)) end
  save_hold(K, id, { state = 'held', qty = 1, expires = expires, held_until = expires,
                     attempt = '', buyer = buyer, request = request })
  redis.call('HINCRBY', K[3], buyer, 1)
  redis.call('ZADD', K[5], expires, id)
  redis.call('HSET', K[4], buyer .. '|' .. request, id)
  return { 'ok', id, fmt(expires) }
end

-- ARGV: buyer. Join the waitlist of a sold-out deal: {"ok", position} (from 1; joining again
-- keeps the place), or a refusal (not_sold_out: there are units, tap Buy).
local function wait(K, ARGV)
  if redis.call('EXISTS', K[1]) == 0 then return { 'deal_not_live' } end
  if redis.call('HGET', K[1], 'sealed') == '1' then return { 'auction_lot' } end
  local now = now_ms()
  reclaim(K, now)
  local d = terms(K)
  if d.stopped or now >= d.ends then return { 'deal_ended', fmt(d.ends) } end
  local buyer = ARGV[1]
  -- ARGV[2]: 'a' for an account's token: a waiting guest would be handed a hold otherwise
  if d.accounts_only and ARGV[2] ~= 'a' then return { 'account_required' } end
  local rank = redis.call('ZRANK', K[11], buyer)
  if rank then return { 'ok', rank + 1 } end
  if tonumber(redis.call('HGET', K[1], 'available')) > 0 then return { 'not_sold_out' } end
  local mine = tonumber(redis.call('HGET', K[3], buyer) or '0')
  if mine >= d.limit then return { 'limit_exceeded', d.limit, mine } end
  redis.call('ZADD', K[11], redis.call('HINCRBY', K[1], 'next_wait', 1), buyer)
  return { 'ok', redis.call('ZRANK', K[11], buyer) + 1 }
end

-- ARGV: buyer. Leave the waitlist; returns 1 if they were on it.
local function unwait(K, ARGV)
  return redis.call('ZREM', K[11], ARGV[1])
end

-- ARGV: buyer. {position (0: not waiting), how many wait}.
local function waiting(K, ARGV)
  local rank = redis.call('ZRANK', K[11], ARGV[1])
  return { rank and rank + 1 or 0, redis.call('ZCARD', K[11]) }
end

-- ARGV: hold_id, buyer, qty, unit_price, payment_ref, attempt, shipping, announce ("1":
-- append order.paid as lc_commit does). The reconciler's repair (decision 0040): SQL knows
-- this hold was paid for (a committed payment attempt, or its order) and Redis does not have it
-- sold, because a failover promoted a replica that missed the sale. A hold still held or paying
-- becomes sold with its own units; a forgotten or closed one takes qty units from what is
-- available, or, when fewer are left (sold again since), changes nothing and answers
-- "oversold" for an operator. Returns {"adopted", qty}, {"agrees"} (sold already: a repeat),
-- {"oversold", available}, {"foreign_hold"} or {"no_deal"}.
local function adopt_sale(K, ARGV)
  local id, buyer, qty, price = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
  local payment_ref, attempt, shipping, announce = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  if redis.call('EXISTS', K[1]) == 0 then return { 'no_deal' } end
  local now = now_ms()
  local raw = redis.call('HGET', K[2], id)
  local h = raw and parse_hold(raw) or nil
  if h and h.buyer ~= buyer then return { 'foreign_hold' } end
  if h and h.state == 'sold' then return { 'agrees' } end
  if h and (h.state == 'held' or h.state == 'paying') then
    redis.call('ZREM', K[5], id)
    redis.call('HINCRBY', K[1], 'held', -h.qty)
    release_address(K, id, h.qty)
  else
    local available = tonumber(redis.call('HGET', K[1], 'available'))
    if available < qty then return { 'oversold', available } end
    redis.call('HINCRBY', K[1], 'available', -qty)
    redis.call('HINCRBY', K[3], buyer, qty)
    h = h or { expires = now, held_until = now, buyer = buyer, request = '' }
    h.qty = qty
  end
  redis.call('HINCRBY', K[1], 'sold', h.qty)
  h.state = 'sold'
  h.attempt = attempt
  save_hold(K, id, h)
  if announce == '1' then
    local t = redis.call('HMGET', K[1], 'deal', 'sku', 'shop', 'currency')
    redis.call('XADD', K[6], '*', 'type', 'order.paid', 'hold', id, 'deal', t[1],
      'sku', t[2], 'shop', t[3], 'buyer', buyer, 'qty', h.qty, 'unit_price', price,
      'currency', t[4], 'payment_ref', payment_ref, 'paid_ms', fmt(now), 'ship', shipping)
  end
  return { 'adopted', h.qty }
end

-- Every function checks the KEYS layout first: a node of a version with another layout gets an
-- error, not a write to the wrong key. Counting is not enough: until decision 0025 KEYS[6] was a
-- room events stream, and until 0027 there was no KEYS[10], so that version also sent 10 keys.
-- Each key's role is the end of its name (checkout/keys.py), so the two that moved are checked.
local function ends_with(key, suffix)
  return string.sub(key, -#suffix) == suffix
end

local function register(name, fn)
  redis.register_function(name, function(K, ARGV)
    if #K ~= KEY_COUNT then
      return redis.error_reply('livecart_holds: expected ' .. KEY_COUNT .. ' keys, got ' .. #K)
    end
    if not ends_with(K[6], ':orders') or not ends_with(K[10], ':restocks')
        or not ends_with(K[11], ':waitlist') then
      return redis.error_reply('livecart_holds: KEYS[6] must be the orders stream, KEYS[10] '
        .. 'the restocks hash and KEYS[11] the waitlist (an older node?)')
    end
    return fn(K, ARGV)
  end)
end

register('lc_reserve_many', reserve_many)
register('lc_load_deal', load_deal)
register('lc_stop_deal', stop_deal)
register('lc_begin_payment', begin_payment)
register('lc_commit', commit)
register('lc_payment_failed', payment_failed)
register('lc_release', release)
register('lc_expire', expire)
register('lc_snapshot', snapshot)
register('lc_get_hold', get_hold)
register('lc_restock', restock)
register('lc_award', award)
register('lc_wait', wait)
register('lc_unwait', unwait)
register('lc_waiting', waiting)
register('lc_adopt_sale', adopt_sale)
