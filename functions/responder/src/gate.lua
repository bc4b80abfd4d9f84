-- HemoStat's safety gate: one atomic decision per remediation request.
-- KEYS (one hash tag, so this runs on Redis Cluster):
--   1 remediation record (seed shape: {"last_action", "count"})
--   2 action log: sorted set of action ids scored by epoch ms
--   3 audit list (newest first)
-- ARGV:
--   1 cooldown seconds   2 max actions per hour   3 command id
--   4 seed timestamp     5 record TTL seconds     6 audit entry JSON (without verdict)
--   7 audit max length
-- Returns {verdict, reason, count}; verdict is allowed, refused or duplicate.
-- Redis' own clock, not the caller's: responders on different machines
-- must agree on what "an hour ago" means.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cooldown_ms = tonumber(ARGV[1]) * 1000
local max_per_hour = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - 3600000)
local count = redis.call('ZCARD', KEYS[2])
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')

local verdict, reason = 'allowed', ''
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  -- The same request delivered again (the bridge redelivers after a crash):
  -- already allowed once, so not counted twice; the caller re-dispatches
  -- only if the first dispatch never happened.
  return {'duplicate', 'already allowed', count}
elseif #last > 0 and now_ms - tonumber(last[2]) < cooldown_ms then
  verdict = 'refused'
  reason = string.format('cooldown: last action %.1fs ago, cooldown is %ss',
    (now_ms - tonumber(last[2])) / 1000, ARGV[1])
elseif count >= max_per_hour then
  verdict = 'refused'
  reason = string.format('circuit breaker: %d actions in the last hour (max %d)', count, max_per_hour)
end

if verdict == 'allowed' then
  redis.call('ZADD', KEYS[2], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], 3600000)
  count = count + 1
  redis.call('SET', KEYS[1], cjson.encode({last_action = ARGV[4], count = count}), 'EX', tonumber(ARGV[5]))
end

local entry = cjson.decode(ARGV[6])
entry['verdict'] = verdict
entry['reason'] = reason
entry['at_ms'] = now_ms
redis.call('LPUSH', KEYS[3], cjson.encode(entry))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
redis.call('EXPIRE', KEYS[3], 7 * 24 * 3600)

return {verdict, reason, count}
