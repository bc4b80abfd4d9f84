-- The safety gate, first step: the container's own limits, in the
-- container's slot (every key carries the tag {host/name}).
-- KEYS:
--   1 remediation record (seed shape: {"last_action", "count"})
--   2 action log of the container: sorted set of command ids scored by epoch ms
--   3 audit list of the container (newest first)
--   4 pending: command id -> the record before it, for actions allowed here
--     that still wait for the fleet brake's answer (step two, another slot)
--   5 the open circuit breaker: its reason, set when the hourly cap is hit
--     (the fixes did not hold), expiring after ARGV[10] seconds
-- ARGV:
--   1 cooldown seconds   2 max actions per hour   3 command id
--   4 seed timestamp     5 record TTL seconds     6 audit entry JSON (without verdict)
--   7 audit max length   8 1 when the fleet brake must still decide
--   9 a refusal decided before the gate (a silence holding for the
--     container, its notify-only policy), or empty
--  10 how long an opened circuit breaker stays open, seconds
-- Returns {verdict, reason, count}; verdict is allowed, reserved (allowed
-- here, the fleet brake decides next), refused, opened (refused, and the
-- circuit breaker opened by this very request), duplicate or pending (a
-- redelivered request whose fleet decision never finished).
-- Redis' own clock, not the caller's: responders on different machines
-- must agree on what "an hour ago" means.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cooldown_ms = tonumber(ARGV[1]) * 1000
local max_per_hour = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - 3600000)
local count = redis.call('ZCARD', KEYS[2])

-- The same request delivered again (the bridge redelivers after a crash):
-- already allowed once, so not counted twice; the caller re-dispatches
-- only if the first dispatch never happened. Not audited twice either.
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  if redis.call('HEXISTS', KEYS[4], ARGV[3]) == 1 then
    return {'pending', '', count}
  end
  return {'duplicate', 'already allowed', count}
end

local verdict, reason = 'allowed', ''
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local open = redis.call('GET', KEYS[5])
if ARGV[9] ~= nil and ARGV[9] ~= '' then
  -- An operator's silence or the owner's policy comes first: either says
  -- why better than a cooldown.
  verdict = 'refused'
  reason = ARGV[9]
elseif #last > 0 and now_ms - tonumber(last[2]) < cooldown_ms then
  verdict = 'refused'
  reason = string.format('cooldown: last action %.1fs ago, cooldown is %ss',
    (now_ms - tonumber(last[2])) / 1000, ARGV[1])
elseif open then
  -- Open until it expires or an operator resets it, even once the actions
  -- that opened it have left the hour.
  verdict = 'refused'
  reason = open
elseif count >= max_per_hour then
  -- This many fixes within the hour, and the container needs another: they
  -- did not hold. Open the breaker; the caller raises a critical alert.
  verdict = 'opened'
  reason = string.format('circuit breaker open: %d actions in the last hour did not hold (max %d), open for %ss or until hemostat reset', count, max_per_hour, ARGV[10])
  redis.call('SET', KEYS[5], reason, 'EX', tonumber(ARGV[10]))
end

if verdict == 'allowed' then
  -- Taken now, so a concurrent request for this container sees the
  -- cooldown even while the fleet brake is still deciding.
  local before = redis.call('GET', KEYS[1]) or ''
  redis.call('ZADD', KEYS[2], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], 3600000)
  count = count + 1
  redis.call('SET', KEYS[1], cjson.encode({last_action = ARGV[4], count = count}), 'EX', tonumber(ARGV[5]))
  if ARGV[8] == '1' then
    redis.call('HSET', KEYS[4], ARGV[3], before)
    redis.call('PEXPIRE', KEYS[4], 3600000)
    return {'reserved', '', count}
  end
end

local entry = cjson.decode(ARGV[6])
-- An opening is a refusal; its reason says the breaker opened.
entry['verdict'] = (verdict == 'opened') and 'refused' or verdict
entry['reason'] = reason
entry['at_ms'] = now_ms
redis.call('LPUSH', KEYS[3], cjson.encode(entry))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
redis.call('EXPIRE', KEYS[3], 7 * 24 * 3600)

return {verdict, reason, count}
