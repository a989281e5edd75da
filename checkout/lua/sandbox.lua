#!lua name=livecart_sandbox_v1
--[[
The sandbox payment provider, shaped like Stripe (decision 0027): charges, refunds, payouts and
disputes, each an object with a provider id, the caller's idempotency key, minor-unit amounts, a status and
a version raised by one on each change. Every call changes its objects and appends the events a
real provider would send, in one step (the outbox the webhook deliverer and the reconciler read).

  KEYS[1] objects  hash: provider id -> the object as JSON
  KEYS[2] keys     hash: "<kind>|<idempotency key>" -> provider id
  KEYS[3] events   stream: type, object (JSON as of the change), created_ms

Every key shares the {sandbox} hash tag: one Redis Cluster slot.
]]

local KEY_COUNT = 3

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function save(K, obj)
  local raw = cjson.encode(obj)
  redis.call('HSET', K[1], obj.id, raw)
  return raw
end

local function emit(K, kind, raw)
  redis.call('XADD', K[3], '*', 'type', kind, 'object', raw,
             'created_ms', string.format('%.0f', now_ms()))
end

local function load(K, id)
  local raw = redis.call('HGET', K[1], id)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function by_key(K, kind, key)
  local id = redis.call('HGET', K[2], kind .. '|' .. key)
  if not id then return nil end
  return load(K, id)
end

-- A charge's dispute (one per charge, as at Stripe): the buyer's bank takes back all that is
-- not refunded, at once. The dispute already made, if any; nil when nothing is left to take.
local function dispute_charge(K, ch, new_id)
  if ch.dispute then return load(K, ch.dispute) end
  local amount = ch.amount - ch.amount_refunded
  if amount <= 0 then return nil end
  local obj = { id = new_id, object = 'dispute', charge = ch.id, amount = amount,
                currency = ch.currency, status = 'needs_response', version = 1,
                created_ms = now_ms() }
  ch.dispute = obj.id
  ch.version = ch.version + 1
  save(K, ch)
  emit(K, 'charge.dispute.created', save(K, obj))
  return obj
end

-- ARGV: key, amount, currency, status, new id, new dispute id ("" for none: only the dispute
-- card's approved charges are disputed, in the same step). A repeated key with the same amount
-- and currency answers the first charge; with others, an error (as Stripe refuses a key
-- reused with other parameters).
local function charge(K, ARGV)
  local key = ARGV[1]
  local found = by_key(K, 'charge', key)
  if found then
    if found.amount ~= tonumber(ARGV[2]) or found.currency ~= ARGV[3] then
      return { 'idempotency_key_reused' }
    end
    return { 'ok', redis.call('HGET', K[1], found.id) }
  end
  local obj = { id = ARGV[5], object = 'charge', key = key, amount = tonumber(ARGV[2]),
                currency = ARGV[3], status = ARGV[4], amount_refunded = 0, version = 1,
                created_ms = now_ms() }
  redis.call('HSET', K[2], 'charge|' .. key, obj.id)
  local raw = save(K, obj)
  emit(K, obj.status == 'approved' and 'charge.succeeded' or 'charge.failed', raw)
  if obj.status == 'approved' and ARGV[6] and ARGV[6] ~= '' then
    dispute_charge(K, obj, ARGV[6])
    raw = cjson.encode(obj)
  end
  return { 'ok', raw }
end

-- ARGV: key, charge id, amount, reason, new id, status ("succeeded" or "pending").
-- A repeated key with the same charge and amount answers the first refund; with others, an error.
local function refund(K, ARGV)
  local key, charge_id, amount = ARGV[1], ARGV[2], tonumber(ARGV[3])
  local found = by_key(K, 'refund', key)
  if found then
    if found.charge ~= charge_id or found.amount ~= amount then
      return { 'idempotency_key_reused' }
    end
    return { 'ok', cjson.encode(found) }
  end
  local ch = load(K, charge_id)
  if not ch or ch.object ~= 'charge' or ch.status ~= 'approved' then return { 'no_such_charge' } end
  if amount <= 0 then return { 'invalid_amount' } end
  local left = ch.amount - ch.amount_refunded
  if ch.dispute then
    -- An open dispute: the bank holds the money now. A lost one took its amount for good.
    local dp = load(K, ch.dispute)
    if dp.status == 'needs_response' then return { 'charge_disputed' } end
    if dp.status == 'lost' then left = left - dp.amount end
  end
  if amount > left then return { 'refund_exceeds_charge', string.format('%.0f', left) } end
  ch.amount_refunded = ch.amount_refunded + amount
  ch.version = ch.version + 1
  emit(K, 'charge.refunded', save(K, ch))
  local obj = { id = ARGV[5], object = 'refund', key = key, charge = charge_id, amount = amount,
                currency = ch.currency, reason = ARGV[4], status = ARGV[6], version = 1,
                created_ms = now_ms() }
  redis.call('HSET', K[2], 'refund|' .. key, obj.id)
  local raw = save(K, obj)
  emit(K, 'refund.created', raw)
  return { 'ok', raw }
end

-- ARGV: refund id, status ("succeeded" or "failed"). A pending refund finishes (the sandbox's
-- "a moment later").
local function finish_refund(K, ARGV)
  if ARGV[2] ~= 'succeeded' and ARGV[2] ~= 'failed' then return { 'invalid_status' } end
  local obj = load(K, ARGV[1])
  if not obj or obj.object ~= 'refund' or obj.status ~= 'pending' then return { 'not_pending' } end
  obj.status = ARGV[2]
  obj.version = obj.version + 1
  if obj.status == 'failed' then
    local ch = load(K, obj.charge)
    ch.amount_refunded = ch.amount_refunded - obj.amount
    ch.version = ch.version + 1
    emit(K, 'charge.refunded', save(K, ch))
  end
  local raw = save(K, obj)
  emit(K, 'refund.updated', raw)
  return { 'ok', raw }
end

-- ARGV: key, destination, amount, currency, new id, status ("paid" or "failed").
local function payout(K, ARGV)
  local key = ARGV[1]
  local found = by_key(K, 'payout', key)
  if found then
    if found.destination ~= ARGV[2] or found.amount ~= tonumber(ARGV[3]) then
      return { 'idempotency_key_reused' }
    end
    return { 'ok', cjson.encode(found) }
  end
  local obj = { id = ARGV[5], object = 'payout', key = key, destination = ARGV[2],
                amount = tonumber(ARGV[3]), currency = ARGV[4], status = ARGV[6], version = 1,
                created_ms = now_ms() }
  redis.call('HSET', K[2], 'payout|' .. key, obj.id)
  local raw = save(K, obj)
  emit(K, 'payout.' .. obj.status, raw)
  return { 'ok', raw }
end

-- ARGV: charge id, new dispute id. The sandbox's control: the buyer disputes the charge now.
local function open_dispute(K, ARGV)
  local ch = load(K, ARGV[1])
  if not ch or ch.object ~= 'charge' or ch.status ~= 'approved' then return { 'no_such_charge' } end
  local obj = dispute_charge(K, ch, ARGV[2])
  if not obj then return { 'nothing_to_dispute' } end
  return { 'ok', cjson.encode(obj) }
end

-- ARGV: dispute id, status ("won" or "lost"). The sandbox's control: the bank decides.
local function close_dispute(K, ARGV)
  if ARGV[2] ~= 'won' and ARGV[2] ~= 'lost' then return { 'invalid_status' } end
  local obj = load(K, ARGV[1])
  if not obj or obj.object ~= 'dispute' or obj.status ~= 'needs_response' then
    return { 'not_open' }
  end
  obj.status = ARGV[2]
  obj.version = obj.version + 1
  local raw = save(K, obj)
  emit(K, 'charge.dispute.closed', raw)
  return { 'ok', raw }
end

-- ARGV: kind, key. The object made under the key, or nothing.
local function find(K, ARGV)
  local id = redis.call('HGET', K[2], ARGV[1] .. '|' .. ARGV[2])
  if not id then return false end
  return redis.call('HGET', K[1], id)
end

local function register(name, fn)
  redis.register_function(name, function(K, ARGV)
    if #K ~= KEY_COUNT then
      return redis.error_reply('livecart_sandbox: expected ' .. KEY_COUNT .. ' keys, got ' .. #K)
    end
    return fn(K, ARGV)
  end)
end

register('sb_charge', charge)
register('sb_refund', refund)
register('sb_finish_refund', finish_refund)
register('sb_payout', payout)
register('sb_open_dispute', open_dispute)
register('sb_close_dispute', close_dispute)
register('sb_find', find)
