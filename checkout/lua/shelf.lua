#!lua name=livecart_shelf_v1
--[[
A shop's list-price stock and its cart holds (decision 0028), one Redis Function per step. Every
key is hash-tagged by the shop ({shop:ID}), so one function can hold several SKUs of the shop
all or nothing in one Redis Cluster slot. Every key a function touches arrives in KEYS:

  KEYS[1] stock     hash: "<sku>:quantity|available|held|sold" per SKU, its sale terms
                    "<sku>:price|currency|sale|product" (as SQL has them, pushed by
                    lc_shelf_terms: a checkout prices its lines from here, with no SQL on its
                    path), the shop's "shipping" rule ("kind:fee:free_over") and "promos" (its
                    promotions as checkout/promotions.py encodes them), and next_hold
  KEYS[2] holds     hash: hold id -> "state|expires_ms|held_until_ms|attempt|buyer|request|
                    currency|shipping_fee|shipping_off|voucher|voucher_off|lines", lines being
                    "sku:qty:unit_price:off" joined by "," (off: the line's discount, of which
                    voucher_off in all is the voucher's)
  KEYS[3] requests  hash: "buyer|request_id" -> hold id (a retried request gets the same hold)
  KEYS[4] expiry    zset: hold id scored by expires_ms, for holds still held or paying
  KEYS[5] orders    stream: order.paid entries for the order pipeline
  KEYS[6] moves     hash: move tag -> what lc_shelf_move answered, so a repeat answers the same
  KEYS[7] vouchers  hash: "<code>:left|per_buyer|starts|ends|room" per voucher of the shop
  KEYS[8] claims    hash: "<code>|<buyer>" -> claims that buyer made, "<code>|<buyer>|used" ->
                    how many of them a live hold or an order redeems
  KEYS[9] addresses hash: "<client address>|<sku>" -> units of the SKU held from that address
                    (held or paying), for the per-address cap (checkout/limits.py)
  KEYS[10] hold_addresses  hash: hold id -> the client address it counts against
  KEYS[11] waitlist zset, every member scored 0 so it sorts by name: "<sku>|<number>|<buyer>",
                    the number 12 digits of arrival order, so one SKU's line is a lex range
                    in order (decision 0036)
  KEYS[12] waiters  hash: "<sku>|<buyer>" -> "<member>\t<channel>", the waiter's member and
                    the room channel that tells them of an offer ("" for none)

Units reach the shelf from SQL's free stock and leave it for a deal only through lc_shelf_move
(SQL's shelf_moves rows name the tags). Invariant per SKU: available + held + sold == quantity.
Hold states as a deal hold's: held -> paying -> sold; held|paying -> expired; held -> released;
paying -> held when a charge fails. And offered -> expired|released: a unit kept for the first
waiter of a sold-out SKU, unpriced; the waiter's next checkout of that SKU takes it (the offer
is deleted and its unit goes into the checkout's priced hold).

Pricing is checkout/pricing.py's, in Python: a checkout reads the terms (lc_shelf_quote), prices
the lines, and lc_shelf_hold_many stores that answer after checking the prices it used are
still the shelf's. Lua adds amounts up; it never decides a discount.
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

local function parse_lines(text)
  local lines = {}
  for sku, qty, price, off in string.gmatch(text, '(%d+):(%d+):(%d+):(%d+)') do
    lines[#lines + 1] = { sku = sku, qty = tonumber(qty), price = tonumber(price),
                          off = tonumber(off) }
  end
  return lines
end

local function parse_hold(raw)
  local state, expires, held_until, attempt, buyer, request, currency, fee, fee_off, voucher,
    voucher_off, lines = string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|'
      .. '([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return { state = state, expires = tonumber(expires), held_until = tonumber(held_until),
           attempt = attempt, buyer = buyer, request = request, currency = currency,
           fee = tonumber(fee), fee_off = tonumber(fee_off), voucher = voucher,
           voucher_off = tonumber(voucher_off), lines_text = lines, lines = parse_lines(lines) }
end

local function save_hold(K, id, h)
  redis.call('HSET', K[2], id, table.concat({ h.state, fmt(h.expires), fmt(h.held_until),
    h.attempt, h.buyer, h.request, h.currency, fmt(h.fee), fmt(h.fee_off), h.voucher,
    fmt(h.voucher_off), h.lines_text }, '|'))
end

local function units(h)
  local n = 0
  for _, line in ipairs(h.lines) do n = n + line.qty end
  return n
end

-- What the buyer pays: the lines less their discounts, plus shipping less its discount.
local function total(h)
  local n = h.fee - h.fee_off
  for _, line in ipairs(h.lines) do n = n + line.qty * line.price - line.off end
  return n
end

local function counter(K, sku, name)
  return tonumber(redis.call('HGET', K[1], sku .. ':' .. name) or '0')
end

local function add(K, sku, name, n)
  redis.call('HINCRBY', K[1], sku .. ':' .. name, n)
end

-- A hold stops counting against its client address's cap (it closed, or it was sold).
local function release_address(K, id, h)
  local address = redis.call('HGET', K[10], id)
  if not address then return end
  redis.call('HDEL', K[10], id)
  for _, line in ipairs(h.lines) do
    local key = address .. '|' .. line.sku
    if redis.call('HINCRBY', K[9], key, -line.qty) <= 0 then redis.call('HDEL', K[9], key) end
  end
end

local function live(h)
  return h.state == 'held' or h.state == 'paying' or h.state == 'offered'
end

local function offer_key(buyer, sku)
  return buyer .. '|offer:' .. sku
end

-- The buyer's live offer of the SKU (a unit kept for them from its waitlist), if any.
local function offer_of(K, buyer, sku, now)
  local id = redis.call('HGET', K[3], offer_key(buyer, sku))
  if not id then return nil end
  local raw = redis.call('HGET', K[2], id)
  local h = raw and parse_hold(raw)
  if not h or h.state ~= 'offered' or h.expires <= now then return nil end
  return id, h
end

-- The first waiter of a SKU: their member of the waitlist and the buyer, or nil.
local function first_waiter(K, sku)
  local first = redis.call('ZRANGE', K[11], '[' .. sku .. '|', '(' .. sku .. '|~', 'BYLEX',
    'LIMIT', 0, 1)
  if #first == 0 then return nil end
  return first[1], string.match(first[1], '^%d+|%d+|(.*)$')
end

local close_hold

-- Units of the SKU on the shelf go to its waiters first, a unit each in the order they joined:
-- kept for them as an offer (a hold in state offered, unpriced, for the shelf's hold window)
-- and told on the room channel they joined from. Never to the open pool while someone waits.
local function hand_on(K, sku, now)
  local ttl = tonumber(redis.call('HGET', K[1], 'offer_ttl') or '0')
  local shop = string.match(K[1], '{shop:(%d+)}')
  while ttl > 0 and counter(K, sku, 'available') > 0 do
    local member, buyer = first_waiter(K, sku)
    if not member then return end
    redis.call('ZREM', K[11], member)
    local entry = redis.call('HGET', K[12], sku .. '|' .. buyer) or ''
    redis.call('HDEL', K[12], sku .. '|' .. buyer)
    local id = 's' .. shop .. '-' .. take_hold_number(K, now)
    local h = { state = 'offered', expires = now + ttl, held_until = now + ttl, attempt = '',
                buyer = buyer, request = '', currency = '', fee = 0, fee_off = 0,
                voucher = '', voucher_off = 0, lines_text = sku .. ':1:0:0' }
    save_hold(K, id, h)
    add(K, sku, 'available', -1)
    add(K, sku, 'held', 1)
    redis.call('ZADD', K[4], h.expires, id)
    redis.call('HSET', K[3], offer_key(buyer, sku), id)
    local channel = string.match(entry, '\t(.*)$') or ''
    if channel ~= '' then
      redis.call('PUBLISH', channel, '@' .. buyer .. ' ' .. cjson.encode({
        type = 'waitlist.offered', sku_id = tonumber(sku), shop_id = tonumber(shop),
        hold = { id = id, qty = 1, state = 'offered', expires_ms = h.expires } }))
    end
  end
end

-- Return a live hold's units to the shelf (to the SKUs' waiters first) and close it with the
-- given final state. A voucher it redeemed is the buyer's to use again (the claim stays made).
close_hold = function(K, id, h, final_state)
  local was = h.state
  h.state = final_state
  save_hold(K, id, h)
  release_address(K, id, h)
  redis.call('ZREM', K[4], id)
  if was == 'offered' then redis.call('HDEL', K[3], offer_key(h.buyer, h.lines[1].sku)) end
  for _, line in ipairs(h.lines) do
    add(K, line.sku, 'available', line.qty)
    add(K, line.sku, 'held', -line.qty)
  end
  if h.voucher ~= '' then
    redis.call('HINCRBY', K[8], h.voucher .. '|' .. h.buyer .. '|used', -1)
  end
  local now = now_ms()
  for _, line in ipairs(h.lines) do hand_on(K, line.sku, now) end
end

-- Lazy reclaim, as for a deal: every lapsed hold goes back before anyone reads availability.
local function reclaim(K, now)
  local lapsed = redis.call('ZRANGE', K[4], '-inf', now, 'BYSCORE')
  for _, id in ipairs(lapsed) do
    local raw = redis.call('HGET', K[2], id)
    local h = raw and parse_hold(raw)
    if h and live(h) then
      close_hold(K, id, h, 'expired')
    else
      redis.call('ZREM', K[4], id)
    end
  end
  return #lapsed
end

-- ARGV: sku, units (+ onto the shelf, - off it), tag. Units come off only while available
-- (never a held or sold one). The answer is kept under the tag: "ok" or "short <available>".
local function move(K, ARGV)
  local sku, n, tag = ARGV[1], tonumber(ARGV[2]), ARGV[3]
  local prior = redis.call('HGET', K[6], tag)
  if prior then return prior end
  local answer = 'ok'
  if n < 0 then reclaim(K, now_ms()) end
  local available = counter(K, sku, 'available')
  if n < 0 and available < -n then
    answer = 'short ' .. available
  else
    add(K, sku, 'quantity', n)
    add(K, sku, 'available', n)
    if n > 0 then hand_on(K, sku, now_ms()) end
  end
  redis.call('HSET', K[6], tag, answer)
  return answer
end

-- ARGV: groups of sku, price, currency, sale ("1" on sale, "0" not), product: the SKUs' terms
-- as SQL has them now. Units already held keep the price they were held at.
local function set_terms(K, ARGV)
  for i = 1, #ARGV, 5 do
    local sku = ARGV[i]
    redis.call('HSET', K[1], sku .. ':price', ARGV[i + 1], sku .. ':currency', ARGV[i + 2],
      sku .. ':sale', ARGV[i + 3], sku .. ':product', ARGV[i + 4])
  end
  return #ARGV / 5
end

-- ARGV[1]: the shop's shipping rule, "kind:fee:free_over", as SQL has it now.
local function set_shipping(K, ARGV)
  redis.call('HSET', K[1], 'shipping', ARGV[1])
  return 1
end

-- ARGV[1]: the shop's promotions, as checkout/promotions.py encodes them from SQL now.
local function set_promotions(K, ARGV)
  redis.call('HSET', K[1], 'promos', ARGV[1])
  return 1
end

-- ARGV: the buyer ("" for none), then SKU ids. What pricing needs: the shop's shipping rule
-- and promotions ("" if never pushed), then per SKU its price, currency, sale, product and
-- units available ("" where the shelf has none), counting a unit kept for the buyer.
local function quote(K, ARGV)
  local now = now_ms()
  reclaim(K, now)
  local out = { redis.call('HGET', K[1], 'shipping') or '',
                redis.call('HGET', K[1], 'promos') or '' }
  local buyer = ARGV[1]
  for i = 2, #ARGV do
    local sku = ARGV[i]
    local t = redis.call('HMGET', K[1], sku .. ':price', sku .. ':currency', sku .. ':sale',
      sku .. ':product', sku .. ':available')
    if buyer ~= '' and t[5] and offer_of(K, buyer, sku, now) then
      t[5] = fmt(tonumber(t[5]) + 1)
    end
    for j = 1, 5 do out[#out + 1] = t[j] or '' end
  end
  return out
end

-- One use of a voucher for a hold, or the refusal's word: an unused claim of the buyer's, or
-- (a voucher not bound to a live room) a claim made here and now, as lc_shelf_claim would.
local function redeem(K, code, buyer, now)
  local v = redis.call('HMGET', K[7], code .. ':left', code .. ':per_buyer', code .. ':starts',
    code .. ':ends', code .. ':room')
  if not v[1] then return { 'voucher_not_found' } end
  if now < tonumber(v[3]) then return { 'voucher_not_started', v[3] } end
  if now >= tonumber(v[4]) then return { 'voucher_ended', v[4] } end
  local key = code .. '|' .. buyer
  local mine = tonumber(redis.call('HGET', K[8], key) or '0')
  local used = tonumber(redis.call('HGET', K[8], key .. '|used') or '0')
  if used < mine then
    redis.call('HINCRBY', K[8], key .. '|used', 1)
    return nil
  end
  if v[5] ~= '' then return { 'voucher_not_claimed', v[5] } end
  if mine >= tonumber(v[2]) then return { 'voucher_used', v[2] } end
  if tonumber(v[1]) <= 0 then return { 'voucher_exhausted' } end
  redis.call('HINCRBY', K[7], code .. ':left', -1)
  redis.call('HINCRBY', K[8], key, 1)
  redis.call('HINCRBY', K[8], key .. '|used', 1)
  return nil
end

-- One hold of a batch (see hold_many): `f` is its fields, `cap` the units of one SKU a client
-- address may hold at once (0: no cap). The answer is a list of words.
local function hold_one(K, shop, ttl, cap, now, f)
  local buyer, request, address = f[1], f[2], f[3]
  local fee, fee_off, voucher_off = string.match(f[4], '^(%d+):(%d+):(%d+)$')
  local voucher, rule, priced_in, promos = f[5], f[6], f[7], f[8]
  local request_key = buyer .. '|' .. request
  if request ~= '' then
    local existing = redis.call('HGET', K[3], request_key)
    if existing then
      local h = parse_hold(redis.call('HGET', K[2], existing))
      return { 'ok', existing, fmt(h.expires), h.state, '1', fmt(total(h)), h.currency,
               h.lines_text, fmt(h.fee), fmt(h.fee_off), h.voucher, fmt(h.voucher_off) }
    end
  end
  local capped = cap > 0 and address ~= ''
  local text = {}
  local short, off, over = { 'short' }, { 'off_sale' }, { 'address_hold_limit', fmt(cap) }
  local currency = nil
  local mixed = false
  local taking = {}  -- offers of the buyer's this hold takes (a unit kept for them each)
  local repriced = (redis.call('HGET', K[1], 'shipping') or '') ~= rule
    or (redis.call('HGET', K[1], 'promos') or '') ~= promos
  for line in string.gmatch(f[9], '[^,]+') do
    local sku, qty, price = string.match(line, '^(%d+):(%d+):(%d+):%d+$')
    qty = tonumber(qty)
    local t = redis.call('HMGET', K[1], sku .. ':price', sku .. ':currency', sku .. ':sale',
      sku .. ':available')
    local available = tonumber(t[4] or '0')
    local offer = offer_of(K, buyer, sku, now)
    if offer then
      available = available + 1
      taking[#taking + 1] = offer
    end
    if not t[1] then
      short[#short + 1] = sku .. ':' .. qty .. ':0'
    elseif t[3] ~= '1' then
      off[#off + 1] = sku
    else
      if currency and currency ~= t[2] then mixed = true end
      currency = currency or t[2]
      if available < qty then short[#short + 1] = sku .. ':' .. qty .. ':' .. available end
      if t[1] ~= price or t[2] ~= priced_in then repriced = true end
      if capped then
        local held = tonumber(redis.call('HGET', K[9], address .. '|' .. sku) or '0')
        if held + qty > cap then over[#over + 1] = sku .. ':' .. held end
      end
    end
    text[#text + 1] = line
  end
  if #off > 1 then return off end
  if #over > 2 then return over end
  if #short > 1 then return short end
  if mixed then return { 'mixed_currencies' } end
  if repriced then return { 'repriced' } end
  if voucher ~= '' then
    local refused = redeem(K, voucher, buyer, now)
    if refused then return refused end
  end
  local h = { state = 'held', attempt = '', buyer = buyer, request = request,
              currency = currency, fee = tonumber(fee), fee_off = tonumber(fee_off),
              voucher = voucher, voucher_off = tonumber(voucher_off),
              lines_text = table.concat(text, ',') }
  h.lines = parse_lines(h.lines_text)
  for _, offer in ipairs(taking) do
    -- The kept unit goes into this hold: back on the shelf for a moment, taken just below.
    local kept = parse_hold(redis.call('HGET', K[2], offer))
    redis.call('HDEL', K[2], offer)
    redis.call('ZREM', K[4], offer)
    redis.call('HDEL', K[3], offer_key(buyer, kept.lines[1].sku))
    add(K, kept.lines[1].sku, 'available', 1)
    add(K, kept.lines[1].sku, 'held', -1)
  end
  local id = 's' .. shop .. '-' .. take_hold_number(K, now)
  for _, line in ipairs(h.lines) do
    add(K, line.sku, 'available', -line.qty)
    add(K, line.sku, 'held', line.qty)
    if capped then redis.call('HINCRBY', K[9], address .. '|' .. line.sku, line.qty) end
  end
  if capped then redis.call('HSET', K[10], id, address) end
  h.expires = now + ttl
  h.held_until = h.expires
  save_hold(K, id, h)
  redis.call('ZADD', K[4], h.expires, id)
  if request ~= '' then redis.call('HSET', K[3], request_key, id) end
  return { 'ok', id, fmt(h.expires), 'held', '0', fmt(total(h)), currency, h.lines_text,
           fmt(h.fee), fmt(h.fee_off), voucher, fmt(h.voucher_off) }
end

-- Several checkouts' holds of one shop, decided one after another in arrival order (the
-- caller batches those that arrive while a call is in flight, as reservations are batched).
-- ARGV[1]: shop id; ARGV[2]: hold ttl ms; ARGV[3]: units of one SKU a client address may hold
-- at once (0: no cap); ARGV[4..]: one hold each, its fields joined by tabs (one argument per
-- hold keeps the client's encoding cost low): buyer, request id (may be empty), client address
-- (empty: none, uncapped), "shipping_fee:shipping_off:voucher_off", voucher code ("" for
-- none), the shipping rule, the currency and the promotions the lines were priced with, and
-- the lines "sku:qty:unit_price:off" joined by commas, one SKU each, as checkout/pricing.py
-- priced them from terms read with lc_shelf_quote (maybe a moment ago). Every line of a hold
-- is held at that price, or none is. One answer per hold, its words joined by tabs:
--   ok <hold> <expires_ms> <state> <replayed> <total> <currency> <lines> <fee> <fee_off> <voucher>
--      <voucher_off>
--   off_sale sku ...                     (its product was archived or the SKU deleted)
--   address_hold_limit cap sku:held ...  (the client address holds too many of these SKUs)
--   short sku:wanted:available ...       (a SKU the shelf has no terms for counts as 0 left)
--   mixed_currencies
--   repriced                             (a price, currency, the shipping rule or the
--                                         promotions moved since the terms were read: read
--                                         them again)
--   voucher_* ...                        (the voucher cannot be used: see redeem)
local function hold_many(K, ARGV)
  local shop, ttl, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
  local now = now_ms()
  reclaim(K, now)
  local answers = {}
  for i = 4, #ARGV do
    local f = {}
    for part in string.gmatch(ARGV[i] .. '\t', '([^\t]*)\t') do f[#f + 1] = part end
    answers[#answers + 1] = table.concat(hold_one(K, shop, ttl, cap, now, f), '\t')
  end
  return answers
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

local function terms(h)
  return { fmt(units(h)), fmt(total(h)), h.currency, h.lines_text, fmt(h.expires) }
end

-- ARGV: hold id, buyer, attempt, pay ttl ms. As a deal hold's: held -> paying, one attempt at a
-- time. Returns "ok" or "paid" (this attempt sold it before) with units, total, currency,
-- lines and expiry; or a refusal.
local function begin_payment(K, ARGV)
  local id, buyer, attempt, pay_ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
  local now = now_ms()
  local h = own_hold(K, id, buyer)
  if not h then return { 'hold_not_found' } end
  if live(h) and h.expires <= now then
    close_hold(K, id, h, 'expired')
  end
  if h.state == 'offered' then return { 'checkout_required' } end
  if h.state == 'sold' and h.attempt == attempt and attempt ~= '' then
    local answer = terms(h)
    table.insert(answer, 1, 'paid')
    return answer
  end
  if h.state ~= 'held' and h.state ~= 'paying' then return { closed_reason(h.state) } end
  if h.state == 'paying' and h.attempt ~= attempt then return { 'payment_in_progress' } end
  h.state = 'paying'
  h.attempt = attempt
  h.expires = math.max(h.expires, now + pay_ttl)
  save_hold(K, id, h)
  redis.call('ZADD', K[4], h.expires, id)
  local answer = terms(h)
  table.insert(answer, 1, 'ok')
  return answer
end

-- ARGV: hold id, buyer, payment ref, attempt, shipping (JSON, or empty), shop id.
-- paying -> sold, and order.paid goes to the pipeline with every line.
local function commit(K, ARGV)
  local id, buyer, payment_ref, attempt, shipping, shop =
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] or '', ARGV[6]
  local h = own_hold(K, id, buyer)
  if not h then return { 'hold_not_found' } end
  if h.state == 'sold' then
    if h.attempt == attempt then return { 'ok', 1 } end
    return { 'hold_already_paid' }
  end
  if h.state ~= 'paying' then return { closed_reason(h.state) } end
  if h.attempt ~= attempt then return { 'payment_in_progress' } end
  -- A charge that outlasted the pay window sells nothing (the caller refunds it), as a deal's:
  -- no sweeper closes a shelf's holds on time, so the commit checks the clock itself.
  if h.expires <= now_ms() then
    close_hold(K, id, h, 'expired')
    return { 'hold_expired' }
  end
  h.state = 'sold'
  save_hold(K, id, h)
  release_address(K, id, h)
  redis.call('ZREM', K[4], id)
  for _, line in ipairs(h.lines) do
    add(K, line.sku, 'held', -line.qty)
    add(K, line.sku, 'sold', line.qty)
  end
  redis.call('XADD', K[5], '*', 'type', 'order.paid', 'hold', id, 'shop', shop,
    'buyer', buyer, 'lines', h.lines_text, 'currency', h.currency,
    'payment_ref', payment_ref, 'paid_ms', fmt(now_ms()), 'ship', shipping,
    'shipping_fee', fmt(h.fee), 'shipping_off', fmt(h.fee_off), 'voucher', h.voucher,
    'voucher_off', fmt(h.voucher_off))
  return { 'ok', 0 }
end

-- ARGV: hold id, buyer, attempt. The charge failed: paying -> held, to its own deadline.
local function payment_failed(K, ARGV)
  local id = ARGV[1]
  local h = own_hold(K, id, ARGV[2])
  if not h or h.state ~= 'paying' or h.attempt ~= ARGV[3] then return 0 end
  h.state = 'held'
  h.attempt = ''
  h.expires = h.held_until
  save_hold(K, id, h)
  redis.call('ZADD', K[4], h.expires, id)
  return 1
end

-- ARGV: hold id, buyer. The buyer gives the units back.
local function release(K, ARGV)
  local id = ARGV[1]
  local h = own_hold(K, id, ARGV[2])
  if not h then return { 'hold_not_found' } end
  if live(h) and h.expires <= now_ms() then
    close_hold(K, id, h, 'expired')
    return { 'hold_expired' }
  end
  if h.state == 'paying' then return { 'payment_in_progress' } end
  if h.state ~= 'held' and h.state ~= 'offered' then return { closed_reason(h.state) } end
  close_hold(K, id, h, 'released')
  return { 'ok' }
end

-- ARGV: hold id, buyer. The hold as its owner sees it: state, units, expiry, lines, and what
-- it charges (total, currency, shipping fee and discount, voucher and its part).
local function get_hold(K, ARGV)
  local id = ARGV[1]
  local h = own_hold(K, id, ARGV[2])
  if not h then return {} end
  if live(h) and h.expires <= now_ms() then
    close_hold(K, id, h, 'expired')
  end
  return { h.state, fmt(units(h)), fmt(h.expires), h.lines_text, fmt(total(h)), h.currency,
           fmt(h.fee), fmt(h.fee_off), h.voucher, fmt(h.voucher_off) }
end

-- Lapsed holds back on the shelf (to waiters first); returns how many buyers still wait.
local function expire(K, ARGV)
  reclaim(K, now_ms())
  return redis.call('ZCARD', K[11])
end

-- ARGV: SKU ids. Each one's quantity, available, held and sold after lapsed holds went back.
local function stock(K, ARGV)
  reclaim(K, now_ms())
  local out = {}
  for _, sku in ipairs(ARGV) do
    for _, name in ipairs({ 'quantity', 'available', 'held', 'sold' }) do
      out[#out + 1] = fmt(counter(K, sku, name))
    end
  end
  return out
end

-- ARGV: code, budget, per buyer, starts ms, ends ms, room id ("" for none). Loading twice is
-- harmless: the first load wins (its uses left are the budget less the claims since).
local function load_voucher(K, ARGV)
  local code = ARGV[1]
  if redis.call('HEXISTS', K[7], code .. ':left') == 1 then return 0 end
  redis.call('HSET', K[7], code .. ':left', ARGV[2], code .. ':per_buyer', ARGV[3],
    code .. ':starts', ARGV[4], code .. ':ends', ARGV[5], code .. ':room', ARGV[6])
  return 1
end

-- ARGV: code, buyer, "1" if the voucher's room is live now (as the caller read it). One use of
-- the budget per claim, at most per_buyer claims each. Answers "ok <left> <mine>" or the
-- refusal's word with what it concerns.
local function claim(K, ARGV)
  local code, buyer, room_live = ARGV[1], ARGV[2], ARGV[3]
  local v = redis.call('HMGET', K[7], code .. ':left', code .. ':per_buyer', code .. ':starts',
    code .. ':ends', code .. ':room')
  if not v[1] then return { 'voucher_not_found' } end
  local now = now_ms()
  if now < tonumber(v[3]) then return { 'voucher_not_started', v[3] } end
  if now >= tonumber(v[4]) then return { 'voucher_ended', v[4] } end
  if v[5] ~= '' and room_live ~= '1' then return { 'room_not_live', v[5] } end
  local key = code .. '|' .. buyer
  local mine = tonumber(redis.call('HGET', K[8], key) or '0')
  if mine >= tonumber(v[2]) then return { 'voucher_claimed', v[2], fmt(mine) } end
  if tonumber(v[1]) <= 0 then return { 'voucher_exhausted' } end
  local left = redis.call('HINCRBY', K[7], code .. ':left', -1)
  mine = redis.call('HINCRBY', K[8], key, 1)
  return { 'ok', fmt(left), fmt(mine) }
end

-- ARGV: buyer, codes. For showing a cart: per code, the claims the buyer made, how many of them
-- a live hold or an order redeems, and the uses left ("" for a voucher never loaded).
local function usable(K, ARGV)
  local buyer, out = ARGV[1], {}
  for i = 2, #ARGV do
    local key = ARGV[i] .. '|' .. buyer
    out[#out + 1] = redis.call('HGET', K[8], key) or '0'
    out[#out + 1] = redis.call('HGET', K[8], key .. '|used') or '0'
    out[#out + 1] = redis.call('HGET', K[7], ARGV[i] .. ':left') or ''
  end
  return out
end

-- ARGV: codes. Each one's uses left ("" for one never loaded).
local function vouchers_left(K, ARGV)
  local out = {}
  for _, code in ipairs(ARGV) do out[#out + 1] = redis.call('HGET', K[7], code .. ':left') or '' end
  return out
end

-- ARGV: buyer, SKU, room channel ("" for none), hold ttl ms. Join the SKU's waitlist while it
-- is sold out: {"ok", place, waiting} (joining again keeps the place; a new channel replaces
-- the old), {"offered", hold, expires_ms} while a unit is kept for the buyer, or a refusal:
-- not_sold_out (units left: check out), off_sale (no terms, or not on sale).
local function wait(K, ARGV)
  local buyer, sku, channel = ARGV[1], ARGV[2], ARGV[3]
  local now = now_ms()
  reclaim(K, now)
  redis.call('HSET', K[1], 'offer_ttl', ARGV[4])
  local offer, kept = offer_of(K, buyer, sku, now)
  if offer then return { 'offered', offer, fmt(kept.expires) } end
  local t = redis.call('HMGET', K[1], sku .. ':price', sku .. ':sale', sku .. ':available')
  if not t[1] or t[2] ~= '1' then return { 'off_sale' } end
  local key = sku .. '|' .. buyer
  local entry = redis.call('HGET', K[12], key)
  local member = entry and string.match(entry, '^([^\t]*)')
  if not member then
    if tonumber(t[3] or '0') > 0 then return { 'not_sold_out' } end
    member = sku .. '|' .. string.format('%012d', redis.call('HINCRBY', K[1], 'next_wait', 1))
      .. '|' .. buyer
    redis.call('ZADD', K[11], 0, member)
  end
  redis.call('HSET', K[12], key, member .. '\t' .. channel)
  local place = redis.call('ZLEXCOUNT', K[11], '[' .. sku .. '|', '[' .. member)
  return { 'ok', place, redis.call('ZLEXCOUNT', K[11], '[' .. sku .. '|', '(' .. sku .. '|~') }
end

-- ARGV: buyer, SKU. Leave its waitlist: 1 if they were on it.
local function unwait(K, ARGV)
  local key = ARGV[2] .. '|' .. ARGV[1]
  local entry = redis.call('HGET', K[12], key)
  if not entry then return 0 end
  redis.call('HDEL', K[12], key)
  return redis.call('ZREM', K[11], string.match(entry, '^([^\t]*)'))
end

-- ARGV: buyer, SKU. {place (0: not waiting), how many wait, the hold kept for them ("" for
-- none), its expiry ms}.
local function waiting(K, ARGV)
  local buyer, sku = ARGV[1], ARGV[2]
  local now = now_ms()
  reclaim(K, now)
  local all = redis.call('ZLEXCOUNT', K[11], '[' .. sku .. '|', '(' .. sku .. '|~')
  local entry = redis.call('HGET', K[12], sku .. '|' .. buyer)
  local place = 0
  if entry then
    place = redis.call('ZLEXCOUNT', K[11], '[' .. sku .. '|', '[' .. string.match(entry, '^([^\t]*)'))
  end
  local offer, kept = offer_of(K, buyer, sku, now)
  return { place, all, offer or '', offer and fmt(kept.expires) or '0' }
end

-- The layout check, as holds.lua's: a node of another version gets an error, not a write to the
-- wrong key.
local function ends_with(key, suffix)
  return string.sub(key, -#suffix) == suffix
end

local function register(name, fn)
  redis.register_function(name, function(K, ARGV)
    if #K ~= KEY_COUNT or not ends_with(K[1], ':shelf') or not ends_with(K[8], ':claims')
        or not ends_with(K[11], ':waitlist') then
      return redis.error_reply('livecart_shelf: expected the 12 shelf keys, got ' .. #K)
    end
    return fn(K, ARGV)
  end)
end

register('lc_shelf_move', move)
register('lc_shelf_terms', set_terms)
register('lc_shelf_shipping', set_shipping)
register('lc_shelf_promotions', set_promotions)
register('lc_shelf_quote', quote)
register('lc_shelf_hold_many', hold_many)
register('lc_shelf_begin_payment', begin_payment)
register('lc_shelf_commit', commit)
register('lc_shelf_payment_failed', payment_failed)
register('lc_shelf_release', release)
register('lc_shelf_get_hold', get_hold)
register('lc_shelf_expire', expire)
register('lc_shelf_stock', stock)
register('lc_shelf_wait', wait)
register('lc_shelf_unwait', unwait)
register('lc_shelf_waiting', waiting)
register('lc_shelf_load_voucher', load_voucher)
register('lc_shelf_claim', claim)
register('lc_shelf_vouchers_left', vouchers_left)
register('lc_shelf_usable', usable)
