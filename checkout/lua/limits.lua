#!lua name=livecart_limits_v1
--[[
Per-address rate limits: one token bucket per key, kept as GCRA's single number, the
"theoretical arrival time" (TAT): the moment the bucket would be full again. A bucket of
`burst` tokens that refills one token every `interval_ms` admits a request at `now` when taking
one token leaves TAT no more than burst * interval_ms ahead of now. The key expires when the
bucket is full again, so an idle address leaves nothing behind.

  KEYS[1]  string: the bucket's TAT in milliseconds (Redis TIME is the clock)
  ARGV[1]  interval_ms: time to earn one token (1000 / rate per second)
  ARGV[2]  burst: tokens a full bucket holds

Returns { 1, 0 } when admitted, { 0, retry_after_ms } when not (a refused request takes no
token, so retrying after retry_after_ms succeeds unless someone else spent the token first).
checkout/lua/holds.lua applies the same rule to its per-deal buckets.
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function take(KEYS, ARGV)
  local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
  local now = now_ms()
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now) + interval
  local ahead = tat - now
  if ahead > burst * interval then
    return { 0, math.ceil(ahead - burst * interval) }
  end
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(ahead))
  return { 1, 0 }
end

redis.register_function('lc_rate_take', take)
