-- HemoStat's safety gate: one atomic decision per remediation request.
-- Every key carries the same hash tag, so this runs on Redis Cluster.
-- KEYS:
--   1 remediation record (seed shape: {"last_action", "count"})
--   2 action log of the container: sorted set of action ids scored by epoch ms
--   3 audit list of the container (newest first)
--   4 fleet: hosts where this image was remediated, scored by epoch ms
--   5 fleet brake flag of this image
-- ARGV:
--   1 cooldown seconds   2 max actions per hour   3 command id
--   4 seed timestamp     5 record TTL seconds     6 audit entry JSON (without verdict)
--   7 audit max length   8 host                   9 fleet brake hosts (0: off)
--   10 fleet brake window seconds                 11 image
-- Returns {verdict, reason, count}; verdict is allowed, refused, brake or duplicate.
-- Redis' own clock, not the caller's: responders on different machines
-- must agree on what "an hour ago" means.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cooldown_ms = tonumber(ARGV[1]) * 1000
local max_per_hour = tonumber(ARGV[2])
local brake_hosts = tonumber(ARGV[9])
local window_ms = tonumber(ARGV[10]) * 1000
local host, image = ARGV[8], ARGV[11]

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - 3600000)
local count = redis.call('ZCARD', KEYS[2])

-- The same request delivered again (the bridge redelivers after a crash):
-- already allowed once, so not counted twice; the caller re-dispatches
-- only if the first dispatch never happened. Not audited twice either.
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  return {'duplicate', 'already allowed', count}
end

local verdict, reason = 'allowed', ''
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #last > 0 and now_ms - tonumber(last[2]) < cooldown_ms then
  verdict = 'refused'
  reason = string.format('cooldown: last action %.1fs ago, cooldown is %ss',
    (now_ms - tonumber(last[2])) / 1000, ARGV[1])
elseif count >= max_per_hour then
  verdict = 'refused'
  reason = string.format('circuit breaker: %d actions in the last hour (max %d)', count, max_per_hour)
elseif brake_hosts > 0 then
  -- One bad release crashes containers everywhere; restarting them all
  -- hides it. Past K hosts in the window, stop and say so.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms - window_ms)
  local hosts = redis.call('ZCARD', KEYS[4])
  if redis.call('EXISTS', KEYS[5]) == 1 then
    verdict = 'brake'
    reason = string.format('fleet brake: suspected bad release of %s (brake holds for %ss after it tripped)', image, ARGV[10])
  elseif not redis.call('ZSCORE', KEYS[4], host) and hosts >= brake_hosts then
    redis.call('SET', KEYS[5], tostring(now_ms), 'PX', window_ms)
    verdict = 'brake'
    reason = string.format('fleet brake: suspected bad release of %s: already remediated on %d hosts within %ss',
      image, hosts, ARGV[10])
  end
end

if verdict == 'allowed' then
  redis.call('ZADD', KEYS[2], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], 3600000)
  count = count + 1
  redis.call('SET', KEYS[1], cjson.encode({last_action = ARGV[4], count = count}), 'EX', tonumber(ARGV[5]))
  if brake_hosts > 0 then
    redis.call('ZADD', KEYS[4], now_ms, host)
    redis.call('PEXPIRE', KEYS[4], window_ms)
  end
end

local entry = cjson.decode(ARGV[6])
entry['verdict'] = verdict
entry['reason'] = reason
entry['at_ms'] = now_ms
redis.call('LPUSH', KEYS[3], cjson.encode(entry))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
redis.call('EXPIRE', KEYS[3], 7 * 24 * 3600)

return {verdict, reason, count}
