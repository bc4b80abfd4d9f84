-- The safety gate, second step: the fleet brake, in the image's slot
-- (both keys carry the tag {image}). One bad release crashes containers
-- everywhere; restarting them all hides it. Past K hosts in the window,
-- stop and say so. Atomic per image, so racing responders on any number
-- of hosts admit exactly K.
-- KEYS:
--   1 fleet: hosts where this image was remediated, scored by epoch ms
--   2 fleet brake flag of this image
-- ARGV:
--   1 host   2 fleet brake hosts   3 window seconds   4 image
-- Returns {verdict, reason}; verdict is admitted or brake.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local host, brake_hosts, image = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local window_ms = tonumber(ARGV[3]) * 1000

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
local hosts = redis.call('ZCARD', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'brake', string.format('fleet brake: suspected bad release of %s (brake holds for %ss after it tripped)', image, ARGV[3])}
end
if not redis.call('ZSCORE', KEYS[1], host) and hosts >= brake_hosts then
  redis.call('SET', KEYS[2], tostring(now_ms), 'PX', window_ms)
  return {'brake', string.format('fleet brake: suspected bad release of %s: already remediated on %d hosts within %ss',
    image, hosts, ARGV[3])}
end
redis.call('ZADD', KEYS[1], now_ms, host)
redis.call('PEXPIRE', KEYS[1], window_ms)
return {'admitted', ''}
